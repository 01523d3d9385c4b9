//! Shared pieces of mq's end-to-end tests: the transport conformance suite, the beanstalkd
//! and NATS server harnesses, the test worker binary as a process, a backend of its own
//! (`faulty://`), and queue counts.

pub mod beanstalkd;
pub mod faulty;
pub mod nats;
mod server;
pub mod suite;
pub mod worker_process;

use mq::transport::{QueueStats, Transport};

/// The counts of `queue` (all zero when the transport does not list it).
pub async fn queue_stats(transport: &dyn Transport, queue: &str) -> QueueStats {
    let stats = transport.stats().await.expect("stats");
    stats
        .into_iter()
        .find(|s| s.queue == queue)
        .unwrap_or_default()
}
