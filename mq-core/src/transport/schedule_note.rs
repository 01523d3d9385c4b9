//! What a backend keeps of the schedules its workers run, for `mq schedules`: the `mq`
//! command does not link the application's code, so the workers write down each schedule
//! they run (its name, message, when it ticks, the next and the last tick) and the command
//! reads it back. A note is informational: the schedule's guarantee (each tick once) comes
//! from the tick's unique key, never from the note.

use std::time::{Duration, SystemTime};

/// How late after its time a tick is still dispatched (`mq::schedule::LATE`): a note whose
/// next tick is further past than this has no worker running its schedule.
pub(crate) const LATE: Duration = Duration::from_secs(60);

/// One schedule as the workers running it last wrote it down.
///
/// ```
/// use mq::transport::ScheduleNote;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let note = ScheduleNote::new("purge-carts", "PurgeCarts", "cron \"0 30 3 * * *\" in UTC")
///     .next(Some(UNIX_EPOCH + Duration::from_secs(60)));
/// assert_eq!(note.name, "purge-carts");
/// assert!(note.last.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleNote {
    /// The schedule's name: the notes of one name are one entry.
    pub name: String,
    /// The wire name of the message each tick makes.
    pub message: String,
    /// When it ticks, as `Schedule::describe` says it (`every 5m`, `cron "0 30 3 * * *" in
    /// UTC`).
    pub when: String,
    /// The next tick, as the worker that wrote the note computed it; `None` for a schedule
    /// that never ticks again.
    pub next: Option<SystemTime>,
    /// The last tick a worker dispatched; `None` before the first. Writing a note with
    /// `None` keeps the one written before.
    pub last: Option<SystemTime>,
    /// When a worker last wrote the note (set by the backend on write).
    pub seen: SystemTime,
}

impl ScheduleNote {
    /// A note of schedule `name`, of `message`, ticking `when`, seen now; no tick yet.
    pub fn new(
        name: impl Into<String>,
        message: impl Into<String>,
        when: impl Into<String>,
    ) -> ScheduleNote {
        ScheduleNote {
            name: name.into(),
            message: message.into(),
            when: when.into(),
            next: None,
            last: None,
            seen: SystemTime::now(),
        }
    }

    /// With the next tick.
    #[must_use]
    pub fn next(mut self, next: Option<SystemTime>) -> ScheduleNote {
        self.next = next;
        self
    }

    /// With the last tick dispatched.
    #[must_use]
    pub fn last(mut self, last: Option<SystemTime>) -> ScheduleNote {
        self.last = last;
        self
    }

    /// With when it was seen.
    #[must_use]
    pub fn seen(mut self, seen: SystemTime) -> ScheduleNote {
        self.seen = seen;
        self
    }

    /// Whether its next tick is more than a minute before `now`, the longest a tick is
    /// still dispatched late: no worker runs the schedule now.
    ///
    /// ```
    /// use mq::transport::ScheduleNote;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let now = SystemTime::now();
    /// let note = ScheduleNote::new("poll", "Poll", "every 5m");
    /// assert!(!note.clone().next(Some(now - Duration::from_secs(30))).is_overdue(now));
    /// assert!(note.clone().next(Some(now - Duration::from_secs(90))).is_overdue(now));
    /// assert!(!note.is_overdue(now), "a schedule that never ticks again");
    /// ```
    pub fn is_overdue(&self, now: SystemTime) -> bool {
        self.next.is_some_and(|next| next + LATE < now)
    }
}
