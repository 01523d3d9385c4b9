//! Where a transport's next pick of ready rows starts: after the last row it picked.
//!
//! The ready rows of a queue are picked in the order of the index `(queue, priority, id)`,
//! and a pick walks every entry before the first row it can take. Those are the rows of
//! batches still open (locked: skipped) and of batches committed a moment ago (deleted:
//! their index entries stay until a scan finds them dead to every transaction). With
//! several batches open at once, one that commits late keeps the rows of all those
//! committed after it from that; the picks then walked about 17 index entries per row
//! they took, against 2 for a loop of one connection (docs/performance.md). So each pick
//! starts after the last ready row this transport picked: the more urgent priorities
//! first, then the cursor's priority after it, then behind it, then the less urgent ones
//! (see `HeldSql::pick`).
//!
//! A row can be ready again behind a cursor: released or handed back, or unlocked when a
//! batch is rolled back. This transport's releases, hand-backs and abandoned batches reset
//! its cursors once the rows are free (the next pick is a whole one). The rest (another
//! process's, a batch whose connection was lost, a retry or a dispatch whose id was taken
//! before a later one committed) are taken by the pick's part behind the cursor whenever
//! the parts before it do not fill the batch, and by a whole pick at least every
//! [`WHOLE_EVERY`]. So priority holds, and a row that came back behind the cursor of a
//! busy queue waits at most that long beyond its place.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a pick is a whole one, from the start of the queue, whatever the cursor.
pub(super) const WHOLE_EVERY: Duration = Duration::from_millis(100);

/// The key `(priority, id)` a pick starts after; [`Key::WHOLE`] for a whole pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) priority: i64,
    pub(super) id: i64,
}

impl Key {
    /// Before every row (priorities are 32-bit): the pick's parts before and at the
    /// cursor's priority find nothing, and its last part takes the queue from the start.
    pub(super) const WHOLE: Key = Key {
        priority: i64::MIN,
        id: i64::MIN,
    };
}

/// A transport's cursors, one per queue.
#[derive(Debug, Default)]
pub(in crate::transport::postgres) struct Cursors {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Counts the resets, so that a pick that began before one does not set a cursor.
    resets: u64,
    queues: HashMap<String, Cursor>,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    after: Key,
    /// When the last whole pick of the queue began.
    whole_at: Instant,
}

/// Where one pick starts, and what it needs to move the cursor afterwards.
#[derive(Debug)]
pub(super) struct PickFrom {
    pub(super) after: Key,
    resets: u64,
    /// When this pick began, if it is a whole one.
    whole_at: Option<Instant>,
}

/// What a pick found, for its cursor.
#[derive(Debug)]
pub(super) struct Picked {
    /// The greatest key of the ready rows it took.
    pub(super) last_ready: Option<Key>,
    /// Whether its ready parts ran: it took a ready row, or fewer rows than it had room
    /// for (rows whose lease ran out and delayed rows come first, and may fill it alone).
    pub(super) reached_ready: bool,
}

impl Cursors {
    /// Where the next pick of `queue` starts.
    pub(super) fn start(&self, queue: &str) -> PickFrom {
        let inner = self.lock();
        let now = Instant::now();
        match inner.queues.get(queue) {
            Some(cursor) if now.duration_since(cursor.whole_at) < WHOLE_EVERY => PickFrom {
                after: cursor.after,
                resets: inner.resets,
                whole_at: None,
            },
            _ => PickFrom {
                after: Key::WHOLE,
                resets: inner.resets,
                whole_at: Some(now),
            },
        }
    }

    /// Moves the cursor of `queue` after a pick that began at `from` and found `picked`:
    /// to the last ready row it took (none: the cursor stays). A whole pick whose ready
    /// parts did not run leaves the next pick whole too.
    pub(super) fn picked(&self, queue: &str, from: &PickFrom, picked: Picked) {
        let mut inner = self.lock();
        if inner.resets != from.resets {
            return;
        }
        let whole_at = from.whole_at.filter(|_| picked.reached_ready);
        match inner.queues.get_mut(queue) {
            Some(cursor) => {
                cursor.after = picked.last_ready.unwrap_or(cursor.after);
                cursor.whole_at = whole_at.unwrap_or(cursor.whole_at);
            }
            None => {
                if let Some(whole_at) = whole_at {
                    let after = picked.last_ready.unwrap_or(Key::WHOLE);
                    inner
                        .queues
                        .insert(queue.to_owned(), Cursor { after, whole_at });
                }
            }
        }
    }

    /// A row may be ready again behind a cursor (released, or its batch rolled back): the
    /// next pick of every queue is a whole one.
    pub(in crate::transport::postgres) fn reset(&self) {
        let mut inner = self.lock();
        inner.resets += 1;
        inner.queues.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays whole whatever panicked while it was locked.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(priority: i64, id: i64) -> Key {
        Key { priority, id }
    }

    fn took(priority: i64, id: i64) -> Picked {
        Picked {
            last_ready: Some(key(priority, id)),
            reached_ready: true,
        }
    }

    const NONE_READY: Picked = Picked {
        last_ready: None,
        reached_ready: true,
    };

    /// Filled by rows whose lease ran out or delayed rows before its ready parts ran.
    const FILLED: Picked = Picked {
        last_ready: None,
        reached_ready: false,
    };

    #[test]
    fn a_pick_starts_after_the_last_row_the_previous_one_took() {
        let cursors = Cursors::default();
        let first = cursors.start("q");
        assert_eq!(first.after, Key::WHOLE);
        cursors.picked("q", &first, took(100, 64));
        let second = cursors.start("q");
        assert_eq!(second.after, key(100, 64));
        // A pick that took no ready row leaves the cursor where it was.
        cursors.picked("q", &second, NONE_READY);
        assert_eq!(cursors.start("q").after, key(100, 64));
        // Another queue has its own.
        assert_eq!(cursors.start("other").after, Key::WHOLE);
    }

    #[test]
    fn a_reset_makes_the_next_pick_whole_and_outdates_the_picks_begun_before_it() {
        let cursors = Cursors::default();
        let first = cursors.start("q");
        cursors.picked("q", &first, took(100, 64));
        let before = cursors.start("q");
        cursors.reset();
        cursors.picked("q", &before, took(100, 128));
        assert_eq!(cursors.start("q").after, Key::WHOLE);
    }

    #[test]
    fn a_pick_is_whole_again_after_whole_every() {
        let cursors = Cursors::default();
        let first = cursors.start("q");
        cursors.picked("q", &first, took(100, 64));
        std::thread::sleep(WHOLE_EVERY + Duration::from_millis(20));
        let late = cursors.start("q");
        assert_eq!(late.after, Key::WHOLE);
        cursors.picked("q", &late, took(100, 200));
        assert_eq!(cursors.start("q").after, key(100, 200));
    }

    #[test]
    fn a_whole_pick_filled_before_its_ready_parts_leaves_the_next_one_whole() {
        let cursors = Cursors::default();
        let first = cursors.start("q");
        cursors.picked("q", &first, FILLED);
        assert_eq!(cursors.start("q").after, Key::WHOLE);
        let first = cursors.start("q");
        cursors.picked("q", &first, took(100, 64));
        std::thread::sleep(WHOLE_EVERY + Duration::from_millis(20));
        let whole = cursors.start("q");
        assert_eq!(whole.after, Key::WHOLE);
        cursors.picked("q", &whole, FILLED);
        assert_eq!(
            cursors.start("q").after,
            Key::WHOLE,
            "still due a whole pick"
        );
    }
}
