//! Backoff between attempts: exponential, capped, with full jitter on the upper half.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! let backoff = mq::retry::Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
//! let worker = mq::Worker::builder().retries(10).backoff(backoff);
//! assert!(backoff.delay(20) <= Duration::from_secs(1));
//! ```

use std::time::Duration;

/// Exponential backoff: attempt `n` (1-based, the one that just failed) waits
/// `min(base * 2^(n-1), max)`, then jitter draws uniformly from half that to all of it.
///
/// ```
/// use mq::Message as _;
/// # use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(backoff = "2s", backoff_max = "1m")]
/// struct Reindex { shard: u32 }
///
/// let backoff = Reindex::OPTIONS.backoff.unwrap();
/// assert_eq!(backoff, mq::Backoff { base: Duration::from_secs(2), max: Duration::from_secs(60) });
/// // The third attempt failed: 8 s, jittered into [4 s, 8 s].
/// let wait = backoff.delay(3);
/// assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure, before jitter.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// 1 s, doubling, at most 10 minutes.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert_eq!(mq::Backoff::DEFAULT, mq::Backoff::default());
    /// assert_eq!(mq::Backoff::DEFAULT.delay_with(20, 1.0), Duration::from_secs(600));
    /// ```
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(600),
    };

    /// The wait before the attempt after `failed_attempt`, jitter drawn from `unit` in
    /// `[0, 1)`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let backoff = mq::Backoff { base: Duration::from_secs(1), max: Duration::from_secs(10) };
    /// assert_eq!(backoff.delay_with(1, 0.0), Duration::from_millis(500)); // half of 1 s
    /// assert_eq!(backoff.delay_with(3, 0.0), Duration::from_secs(2)); // half of 4 s
    /// assert_eq!(backoff.delay_with(9, 0.0), Duration::from_secs(5)); // half of the cap
    /// ```
    pub fn delay_with(&self, failed_attempt: u32, unit: f64) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(31);
        let full = self
            .base
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.max)
            .min(self.max);
        let half = full / 2;
        half + (full - half).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before the attempt after `failed_attempt`, with random jitter.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let wait = mq::Backoff::DEFAULT.delay(2); // 2 s before jitter
    /// assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2));
    /// ```
    pub fn delay(&self, failed_attempt: u32) -> Duration {
        self.delay_with(failed_attempt, random_unit())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A number in `[0, 1)` from the random bits of a fresh UUID (no extra dependency).
pub(crate) fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(
            backoff.delay_with(1, 0.999_999),
            Duration::from_micros(999_999) + Duration::from_nanos(500)
        );
        assert_eq!(backoff.delay_with(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff.delay_with(3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff.delay_with(5, 0.0), Duration::from_secs(5));
        assert_eq!(backoff.delay_with(40, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        for attempt in 1..20 {
            let delay = Backoff::DEFAULT.delay(attempt);
            assert!(delay <= Backoff::DEFAULT.max);
            assert!(delay >= Backoff::DEFAULT.base / 2);
        }
    }
}
