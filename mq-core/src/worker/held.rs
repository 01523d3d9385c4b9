//! What the worker holds: reserved items whose handling has not ended, kept alive while
//! their slots run, and handed back when the worker stops.
//!
//! Keep-alive runs in a task of its own ([`keep_alive`]), never in a message's task: a slot
//! that blocks the thread its message runs on (an async slot that never yields) cannot stop
//! its reservation from being renewed, so its message is not handed to a second worker while
//! it still runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::transport::{Job, Transport};

/// How often the keep-alive task looks for reservations to renew.
const TICK: Duration = Duration::from_millis(100);

/// The reserved items of a worker, by id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    items: Mutex<HashMap<u64, Item>>,
}

#[derive(Debug)]
struct Item {
    job: Job,
    /// While slots run: how often to renew the reservation, and when next.
    renew: Option<(Duration, Instant)>,
    /// When the item was reserved.
    reserved_at: Instant,
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Item>> {
        // Each critical section is one map operation: the map stays consistent.
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A newly reserved item.
    pub(crate) fn insert(&self, job: Job) {
        let item = Item {
            job,
            renew: None,
            reserved_at: Instant::now(),
        };
        self.lock().insert(item.job.id, item);
    }

    /// The slots of item `id` start: renew its reservation every half `ttr` (counted from
    /// when it was reserved) until [`Held::slots_done`].
    pub(crate) fn slots_started(&self, id: u64, ttr: Duration) {
        // A hand-written `impl Message` may set a zero TTR; renew at most every millisecond.
        let every = (ttr / 2).max(Duration::from_millis(1));
        if let Some(item) = self.lock().get_mut(&id) {
            // A TTR too long for the clock (a hand-written impl) needs no renewal.
            item.renew = item
                .reserved_at
                .checked_add(every)
                .map(|next| (every, next));
        }
    }

    /// The slots of item `id` are done: no more renewals (its ack, retry or failure is on
    /// the way).
    pub(crate) fn slots_done(&self, id: u64) {
        if let Some(item) = self.lock().get_mut(&id) {
            item.renew = None;
        }
    }

    /// The handling of item `id` ended; the item, if it was still held.
    pub(crate) fn remove(&self, id: u64) -> Option<Job> {
        self.lock().remove(&id).map(|item| item.job)
    }

    /// Every item still held, no longer held.
    pub(crate) fn drain(&self) -> Vec<Job> {
        self.lock().drain().map(|(_, item)| item.job).collect()
    }

    /// Whether item `id` is held and its slots still run: a renewal decided a moment ago
    /// is sent only then (its ack may have gone out meanwhile).
    fn renewing(&self, id: u64) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|item| item.renew.is_some())
    }

    /// The items whose renewal is due at `now`, their next renewal moved on.
    fn due(&self, now: Instant) -> Vec<Job> {
        let mut items = self.lock();
        let mut due = Vec::new();
        for item in items.values_mut() {
            if let Some((every, next)) = &mut item.renew {
                if *next <= now {
                    // `now + every` fits: `every` fitted after the reservation, long ago.
                    *next = now.checked_add(*every).unwrap_or(*next);
                    due.push(item.job.clone());
                }
            }
        }
        due
    }
}

/// Renews the reservations of items whose slots still run, until dropped (abort it).
/// Each round's renewals go out at once in a task of their own, so a server that does not
/// answer delays no later round.
pub(crate) async fn keep_alive(held: Arc<Held>, transport: Arc<dyn Transport>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tick.tick().await;
        let due = held.due(now);
        if due.is_empty() {
            continue;
        }
        let (held, transport) = (held.clone(), transport.clone());
        tokio::spawn(async move {
            let renewals = due.iter().map(|job| async {
                if !held.renewing(job.id) {
                    return;
                }
                tracing::debug!(item = job.id, "keep-alive: slots still running");
                if let Err(error) = transport.keep_alive(job).await {
                    tracing::warn!(
                        item = job.id,
                        %error,
                        "keep-alive failed; the message may be handed out again (at-least-once)"
                    );
                }
            });
            futures_util::future::join_all(renewals).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64) -> Job {
        Job::new(id, "q", bytes::Bytes::new(), 1)
    }

    #[test]
    fn renews_every_half_ttr_while_slots_run_only() {
        let held = Held::default();
        held.insert(job(1));
        held.insert(job(2));
        held.slots_started(1, Duration::from_secs(2));
        let start = Instant::now();
        assert!(held.due(start).is_empty());
        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(held.due(start + Duration::from_secs(1))), vec![1]);
        assert!(held.due(start + Duration::from_millis(1500)).is_empty());
        assert_eq!(ids(held.due(start + Duration::from_secs(2))), vec![1]);
        held.slots_done(1);
        assert!(held.due(start + Duration::from_secs(10)).is_empty());
        assert!(!held.renewing(1));
        held.slots_started(2, Duration::MAX);
        assert!(
            !held.renewing(2),
            "a TTR past the clock's end needs no renewal"
        );
        assert_eq!(held.remove(1).map(|j| j.id), Some(1));
        assert_eq!(ids(held.drain()), vec![2]);
        assert!(held.remove(2).is_none());
    }
}
