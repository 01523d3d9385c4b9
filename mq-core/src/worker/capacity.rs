//! How many messages may have slots running at once (`--concurrency`).
//!
//! A message holds a [`Busy`] from its reservation until its slots are done, not while its
//! ack is on the way: the worker reserves the next messages during that round trip, and
//! their reservations go out in the same write as those acks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The worker's count of busy messages, against its concurrency.
#[derive(Debug)]
pub(crate) struct Capacity {
    limit: usize,
    shared: Arc<Counter>,
}

#[derive(Debug, Default)]
struct Counter {
    busy: AtomicUsize,
    freed: Notify,
}

/// One message's share of the capacity; given back when dropped.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Counter>);

impl Capacity {
    pub(crate) fn new(limit: usize) -> Capacity {
        Capacity {
            limit,
            shared: Arc::default(),
        }
    }

    /// How many more messages may start now.
    pub(crate) fn free(&self) -> usize {
        self.limit
            .saturating_sub(self.shared.busy.load(Ordering::Acquire))
    }

    /// Marks one more message busy (the caller checked [`free`](Capacity::free)).
    pub(crate) fn take(&self) -> Busy {
        self.shared.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.shared.clone())
    }

    /// Resolves when a message gives its share back (or at once if one did since the
    /// last call).
    pub(crate) async fn freed(&self) {
        self.shared.freed.notified().await;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_share_given_back_frees_a_place_and_wakes_the_waiter() {
        let capacity = Capacity::new(2);
        let first = capacity.take();
        let second = capacity.take();
        assert_eq!(capacity.free(), 0);
        drop(first);
        assert_eq!(capacity.free(), 1);
        // The release before the wait is not lost.
        tokio::time::timeout(std::time::Duration::from_secs(1), capacity.freed())
            .await
            .expect("woken by the earlier release");
        drop(second);
        assert_eq!(capacity.free(), 2);
    }
}
