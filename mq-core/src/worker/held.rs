//! What the worker holds: reserved items whose handling has not ended, kept alive while
//! their slots run, and handed back when the worker stops.
//!
//! A message that took a per-key concurrency permit has it renewed with its reservation,
//! for its TTR each time, so that a slot running past its TTR keeps its key's count.
//!
//! Keep-alive runs in a task of its own ([`keep_alive`]), never in a message's task: a slot
//! that blocks the thread its message runs on (an async slot that never yields) cannot stop
//! its reservation from being renewed, so its message is not handed to a second worker while
//! it still runs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::id_map::IdMap;
use crate::transport::{Job, Transport};

/// How often the keep-alive task looks for reservations to renew.
const TICK: Duration = Duration::from_millis(100);

/// The reserved items of a worker, by id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    items: Mutex<IdMap<Item>>,
}

#[derive(Debug)]
struct Item {
    job: Job,
    /// While slots run: how often to renew the reservation, and when next.
    renew: Option<(Duration, Instant)>,
    /// The concurrency permit its slots run under (key, token), renewed with it.
    permit: Option<(String, u64)>,
    /// When the item was reserved.
    reserved_at: Instant,
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, IdMap<Item>> {
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
            permit: None,
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

    /// Item `id` runs under the concurrency permit `token` of `key`: renew it with the
    /// reservation.
    pub(crate) fn permit_taken(&self, id: u64, key: &str, token: u64) {
        if let Some(item) = self.lock().get_mut(&id) {
            item.permit = Some((key.to_owned(), token));
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
    fn due(&self, now: Instant) -> Vec<Renewal> {
        let mut items = self.lock();
        let mut due = Vec::new();
        for item in items.values_mut() {
            if let Some((every, next)) = &mut item.renew {
                if *next <= now {
                    // `now + every` fits: `every` fitted after the reservation, long ago.
                    *next = now.checked_add(*every).unwrap_or(*next);
                    due.push(Renewal {
                        job: item.job.clone(),
                        permit: item.permit.clone(),
                        // The TTR, of which `every` is half.
                        lease: every.saturating_mul(2),
                    });
                }
            }
        }
        due
    }
}

/// One item's renewal: its reservation and, if it has one, its concurrency permit.
struct Renewal {
    job: Job,
    permit: Option<(String, u64)>,
    lease: Duration,
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
            let (held, transport) = (&held, &transport);
            let renewals = due.iter().map(|Renewal { job, permit, lease }| async move {
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
                if let Some((key, token)) = permit {
                    renew_permit(&**transport, job.id, key, *token, *lease).await;
                }
            });
            futures_util::future::join_all(renewals).await;
        });
    }
}

/// Renews a running item's concurrency permit; one already gone lets one more message of
/// its key start, which is worth a warning.
async fn renew_permit(
    transport: &dyn Transport,
    item: u64,
    key: &str,
    token: u64,
    lease: Duration,
) {
    match transport.renew_permit(key, token, lease).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            item,
            key,
            "the concurrency permit ran out before its renewal; one more message of the key \
             may start meanwhile"
        ),
        Err(error) => tracing::warn!(
            item,
            key,
            %error,
            "cannot renew the concurrency permit; it frees itself after the TTR"
        ),
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
        let ids = |due: Vec<Renewal>| due.into_iter().map(|r| r.job.id).collect::<Vec<_>>();
        assert_eq!(ids(held.due(start + Duration::from_secs(1))), vec![1]);
        assert!(held.due(start + Duration::from_millis(1500)).is_empty());
        held.permit_taken(1, "customer-7", 9);
        let renewal = held.due(start + Duration::from_secs(2));
        assert_eq!(renewal[0].permit, Some(("customer-7".to_owned(), 9)));
        assert_eq!(renewal[0].lease, Duration::from_secs(2), "the TTR");
        held.slots_done(1);
        assert!(held.due(start + Duration::from_secs(10)).is_empty());
        assert!(!held.renewing(1));
        held.slots_started(2, Duration::MAX);
        assert!(
            !held.renewing(2),
            "a TTR past the clock's end needs no renewal"
        );
        assert_eq!(held.remove(1).map(|j| j.id), Some(1));
        assert_eq!(
            held.drain().into_iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(held.remove(2).is_none());
    }
}
