//! Why a worker stops: its limits (`--limit`, `--time-limit`, `--memory-limit`,
//! `--failure-limit`), the counts they are checked against, and the exit codes.

use std::time::Instant;

use super::emit::Outcome;
use super::memory;
use super::options::Options;

/// Why a worker stopped; [`Exit::code`] is the process exit code `run_worker` uses.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> mq::Result<()> {
/// match mq::Worker::builder().run().await? {
///     mq::Exit::Stopped => eprintln!("stopped"),
///     mq::Exit::MemoryLimit => eprintln!("over the memory limit: a supervisor restarts us"),
///     other => eprintln!("stopped for {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// SIGINT or SIGTERM (or [`Worker::stop`](super::Worker::stop)): stopped gracefully.
    Stopped,
    /// `--limit` messages were handled.
    Limit,
    /// `--time-limit` passed.
    TimeLimit,
    /// Resident memory passed `--memory-limit`.
    MemoryLimit,
    /// `--failure-limit` messages failed.
    FailureLimit,
}

impl Exit {
    /// 0 for a stop or the message and time limits, 3 for memory, 4 for failures.
    ///
    /// ```
    /// use mq::Exit;
    ///
    /// assert_eq!(Exit::Stopped.code(), 0);
    /// assert_eq!(Exit::Limit.code(), 0);
    /// assert_eq!(Exit::MemoryLimit.code(), 3);
    /// assert_eq!(Exit::FailureLimit.code(), 4);
    /// ```
    pub fn code(self) -> i32 {
        match self {
            Exit::Stopped | Exit::Limit | Exit::TimeLimit => 0,
            Exit::MemoryLimit => 3,
            Exit::FailureLimit => 4,
        }
    }
}

/// Counts kept by the reservation loop.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Messages reserved whose handling began, less those held back: what `--limit`
    /// counts against.
    pub(super) started: u64,
    pub(super) finished: u64,
    pub(super) retried: u64,
    pub(super) failed: u64,
    /// Held back by a concurrency limit: neither handled nor failed.
    pub(super) held_back: u64,
}

impl Tally {
    pub(super) fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Finished => self.finished += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::HeldBack => {
                // Put back, not handled: the worker may reserve another in its place, or
                // `--limit` would stop reserving before its count is handled.
                self.held_back += 1;
                self.started = self.started.saturating_sub(1);
            }
        }
    }

    /// Messages whose handling ended: finished, retried or failed.
    pub(super) fn handled(&self) -> u64 {
        self.finished + self.retried + self.failed
    }
}

/// The limit that `tally` and the time since `started_at` reached, if any.
pub(super) fn limit_reached(options: &Options, tally: &Tally, started_at: Instant) -> Option<Exit> {
    if options.limit.is_some_and(|limit| tally.handled() >= limit) {
        return Some(Exit::Limit);
    }
    if options
        .time_limit
        .is_some_and(|limit| started_at.elapsed() >= limit)
    {
        return Some(Exit::TimeLimit);
    }
    if options
        .failure_limit
        .is_some_and(|limit| tally.retried + tally.failed >= limit)
    {
        return Some(Exit::FailureLimit);
    }
    if let Some(limit) = options.memory_limit {
        if memory::resident_bytes().is_some_and(|rss| rss > limit) {
            return Some(Exit::MemoryLimit);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_what_ended() {
        let options = Options {
            limit: Some(3),
            failure_limit: Some(2),
            ..Options::default()
        };
        let now = Instant::now();
        let mut tally = Tally {
            started: 10,
            finished: 2,
            ..Tally::default()
        };
        assert_eq!(limit_reached(&options, &tally, now), None);
        tally.record(Outcome::Retried);
        assert_eq!(limit_reached(&options, &tally, now), Some(Exit::Limit));
        let options = Options {
            limit: None,
            ..options
        };
        assert_eq!(limit_reached(&options, &tally, now), None);
        tally.record(Outcome::Failed);
        assert_eq!(
            limit_reached(&options, &tally, now),
            Some(Exit::FailureLimit)
        );
        assert_eq!(Exit::FailureLimit.code(), 4);
        assert_eq!(Exit::MemoryLimit.code(), 3);
        assert_eq!(Exit::Limit.code(), 0);
    }
}
