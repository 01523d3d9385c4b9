//! Maps and sets keyed by the ids a backend gives reserved items (`Job::id`), hashed with
//! one multiplication instead of the standard library's SipHash.
//!
//! SipHash resists keys chosen to collide; these keys are not chosen by a client but
//! handed out by the queue server (a counter, a stream sequence, a row id), and the worker
//! looks them up several times per message, where SipHash cost more than the lookups.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by job id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A set of job ids.
#[cfg_attr(not(feature = "beanstalk"), allow(dead_code))]
pub(crate) type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing: the id times 2⁶⁴/φ. Distinct ids that differ in their low bits (a
/// counter's do) land in distinct buckets, and the high bits, which the table also reads,
/// depend on every bit of the id.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `u64` keys; correct for anything else all the same.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn a_set_of_counter_ids_holds_each_once() {
        let mut ids = IdSet::default();
        for id in (1..=10_000u64).chain(u64::MAX - 100..=u64::MAX) {
            assert!(ids.insert(id));
        }
        assert!(!ids.insert(5_000));
        assert_eq!(ids.len(), 10_101);
        assert!(ids.remove(&u64::MAX));
        assert!(!ids.contains(&u64::MAX));
    }
}
