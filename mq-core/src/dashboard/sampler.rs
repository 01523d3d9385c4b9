//! The last hour of counts, sampled in memory: where the chart's backlog and throughput
//! come from.
//!
//! The `Transport` seam has counts (ready, reserved, delayed, failed) but no counter of
//! finished messages, so the dashboard samples the counts every
//! [`Options::sample_every`](super::Options::sample_every) while it runs and keeps an hour
//! of them. Throughput is estimated from them as the backlog that went away between two
//! samples: a lower bound, since messages that arrive and finish between two samples are
//! not seen. Failures per minute come from the failure store's own timestamps instead (see
//! [`chart`](super::chart)). The history starts empty when the dashboard starts.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::state::Shared;
use crate::transport::QueueStats;

/// How long samples are kept.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// One sample of the totals over every queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: SystemTime,
    /// Ready + reserved + delayed.
    pub(crate) backlog: u64,
}

/// The samples of the last hour, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub(crate) samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample of `stats` taken `at`, dropping those older than the window.
    pub(crate) fn record(&mut self, at: SystemTime, stats: &[QueueStats]) {
        let backlog = stats.iter().map(|q| q.ready + q.reserved + q.delayed).sum();
        self.samples.push_back(Sample { at, backlog });
        while let Some(first) = self.samples.front() {
            match at.duration_since(first.at) {
                Ok(age) if age > WINDOW => drop(self.samples.pop_front()),
                _ => break,
            }
        }
    }
}

/// Starts the sampling task of `shared` once, if a tokio runtime runs here (else the first
/// request starts it). The task holds the state weakly: it ends when the router is dropped.
pub(crate) fn ensure_started(shared: &Arc<Shared>) {
    if shared.sampler.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    if shared.sampler.set(()).is_err() {
        return;
    }
    let weak = Arc::downgrade(shared);
    let every = shared.options.sample_every;
    tokio::spawn(run(weak, every));
}

async fn run(weak: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        // A backend that is away leaves a gap; the pages show the outage themselves.
        if let Ok(stats) = shared.stats().await {
            shared.history().record(SystemTime::now(), &stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_hour() {
        let mut history = History::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut stats = QueueStats::new("a");
        stats.ready = 3;
        stats.failed = 1;
        for minute in 0..90 {
            history.record(start + Duration::from_secs(60 * minute), &[stats.clone()]);
        }
        assert_eq!(history.samples.len(), 61);
        assert_eq!(history.samples[0].backlog, 3);
    }
}
