//! Whether the worker can reach its backend, for `/healthz` (feature `prometheus`): the
//! reservation loop reports each reserve's result; the worker is unhealthy once reserves
//! have failed without a success in between for longer than a bound (`--health-timeout`,
//! default [`DEFAULT_HEALTH_TIMEOUT`]).
//!
//! A worker whose slots hold all its capacity does not reserve, and stays healthy: the
//! last thing it heard from the backend was good. One failed reserve is not yet unhealthy
//! either: the loop retries with a backoff, and a restarted server or a moved leader is
//! back within seconds; the bound says how long an orchestrator lets that take.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default for `--health-timeout`: how long reserves may fail before `/healthz` says 503.
///
/// ```
/// assert_eq!(mq::worker::DEFAULT_HEALTH_TIMEOUT.as_secs(), 30);
/// ```
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the reservation loop reported last.
#[derive(Debug)]
pub(crate) struct Health {
    bound: Duration,
    /// When reserves began to fail, and the last error; `None` while they succeed.
    failing: Mutex<Option<(Instant, String)>>,
}

impl Health {
    /// A healthy state that turns unhealthy after `bound` of failing reserves.
    pub(crate) fn new(bound: Duration) -> Health {
        Health {
            bound,
            failing: Mutex::new(None),
        }
    }

    /// A reserve succeeded (with or without items).
    pub(crate) fn reserved(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.is_some() {
            *failing = None;
        }
    }

    /// A reserve failed with `error`.
    pub(crate) fn reserve_failed(&self, error: &dyn std::fmt::Display) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let since = failing
            .as_ref()
            .map_or_else(Instant::now, |(since, _)| *since);
        *failing = Some((since, error.to_string()));
    }

    /// `Ok` while healthy at `now`; else why not, for the body of the 503.
    pub(crate) fn check(&self, now: Instant) -> Result<(), String> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match &*failing {
            Some((since, error)) if now.saturating_duration_since(*since) > self.bound => {
                Err(format!(
                    "the backend has been unreachable for {}s (bound {}s): {error}",
                    now.saturating_duration_since(*since).as_secs(),
                    self.bound.as_secs()
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_only_after_failing_longer_than_the_bound() {
        let health = Health::new(Duration::from_secs(30));
        let start = Instant::now();
        assert!(health.check(start).is_ok());
        health.reserve_failed(&"connection refused");
        assert!(health.check(start + Duration::from_secs(29)).is_ok());
        health.reserve_failed(&"connection refused again");
        let error = health
            .check(Instant::now() + Duration::from_secs(31))
            .unwrap_err();
        assert!(error.contains("connection refused again"), "{error}");
        assert!(error.contains("bound 30s"), "{error}");
        health.reserved();
        assert!(health
            .check(Instant::now() + Duration::from_secs(60))
            .is_ok());
    }
}
