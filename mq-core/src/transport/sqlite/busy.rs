//! Waiting out another connection's lock where SQLite does not.
//!
//! SQLite's busy handler (the busy timeout) is not called for every lock: switching a new
//! file to WAL mode takes an exclusive lock, and a connection that meets another one
//! creating the file or the WAL index gets `SQLITE_BUSY` at once. [`retry`] runs such a
//! step again, with a short capped backoff, until it succeeds or the busy timeout has passed
//! since the first try, and says how long it waited.

use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use crate::Backoff;

/// Waits between tries: 1 ms doubling to 50 ms, with jitter so that processes that collided
/// once do not collide again in step.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(1),
    max: Duration::from_millis(50),
};

/// Whether SQLite failed because another connection holds a lock on the file.
pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A step that still found the file locked when the busy timeout ran out.
#[derive(Debug)]
pub(super) struct GaveUp<E> {
    /// The last try's error.
    pub(super) error: E,
    /// How long it tried, from the first try to the end of the last.
    pub(super) waited: Duration,
}

/// Runs `step` until it succeeds, fails for a reason `busy` does not accept, or `timeout`
/// has passed since the first try. A failure that is not a lock comes back at once.
pub(super) fn retry<T, E>(
    timeout: Duration,
    busy: impl Fn(&E) -> bool,
    mut step: impl FnMut() -> Result<T, E>,
) -> Result<T, GaveUp<E>> {
    let start = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match step() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let waited = start.elapsed();
        if !busy(&error) || waited >= timeout {
            return Err(GaveUp { error, waited });
        }
        std::thread::sleep(BACKOFF.delay(tries).min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_again_until_the_step_succeeds() {
        let mut left = 3;
        let done = retry(
            Duration::from_secs(5),
            |_: &()| true,
            || {
                left -= 1;
                if left == 0 {
                    Ok("done")
                } else {
                    Err(())
                }
            },
        );
        assert_eq!(done.unwrap(), "done");
    }

    #[test]
    fn gives_up_after_the_timeout_and_says_how_long_it_waited() {
        let timeout = Duration::from_millis(30);
        let mut tries = 0;
        let gave_up = retry(
            timeout,
            |_: &()| true,
            || {
                tries += 1;
                Err::<(), ()>(())
            },
        )
        .unwrap_err();
        assert!(gave_up.waited >= timeout, "{gave_up:?}");
        assert!(tries > 1, "tried {tries} times");
    }

    #[test]
    fn another_failure_comes_back_at_once() {
        let mut tries = 0;
        let gave_up = retry(
            Duration::from_secs(5),
            |_: &u8| false,
            || {
                tries += 1;
                Err::<(), u8>(7)
            },
        )
        .unwrap_err();
        assert_eq!((gave_up.error, tries), (7, 1));
    }
}
