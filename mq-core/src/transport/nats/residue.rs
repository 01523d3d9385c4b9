//! Handled items a restarted server brought back.
//!
//! nats-server 2.9 keeps the deletes of a work-queue stream in memory for a while before
//! its file store writes them; the consumer's state (its ack floor) is written sooner.
//! Killed in between (SIGKILL, power) and restarted, the stream holds again items that were
//! acked, while the consumer counts them as done: they are never delivered again, never
//! deleted, and counted as ready forever. Confirmed acks do not help: the server confirms
//! the ack before its file store has the delete.
//!
//! When a consumer holds nothing delivered and unacked, every item up to the last it
//! delivered was acked, so such items are removed: when a band (or the delayed subject)
//! holds more items than its consumer has not delivered yet (`num_pending`), and
//! `num_ack_pending` is 0, the items of its subject up to the ack floor (then the last
//! delivered item) are purged. While anything is pending the floor is no bound: 2.9 moves
//! it past an older item that waits for redelivery when a newer one is acked, so purging
//! below it then would delete an item that never ran.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use tokio::time::Instant;

use super::nats_by;
use crate::Result;

/// How often a consumer's subject is looked at, at most.
const EVERY: Duration = Duration::from_secs(1);

/// When each consumer was last looked at.
#[derive(Debug, Default)]
pub(super) struct Sweeps {
    last: Mutex<HashMap<String, Instant>>,
}

impl Sweeps {
    /// Whether `consumer` may be looked at now (at most once per [`EVERY`]); if so, records
    /// that it is.
    pub(super) fn due(&self, consumer: &str) -> bool {
        // Every mutation is a single insert: a panic leaves the map consistent.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match last.get(consumer) {
            Some(at) if now.duration_since(*at) < EVERY => false,
            _ => {
                last.insert(consumer.to_owned(), now);
                true
            }
        }
    }
}

/// Removes the acked items `subject` still holds up to the ack floor of `consumer`, when
/// the subject's `count` says there are any and the consumer holds nothing pending;
/// returns how many were removed.
pub(super) async fn sweep(
    stream: &Stream,
    consumer: &str,
    subject: &str,
    count: u64,
) -> Result<u64> {
    let info = stream
        .consumer_info(consumer)
        .await
        .map_err(|error| nats_by(format!("consumer `{consumer}`"), error))?;
    // With nothing pending the two are equal; the lower is the safe one.
    let floor = info
        .ack_floor
        .stream_sequence
        .min(info.delivered.stream_sequence);
    if info.num_ack_pending > 0 || count <= info.num_pending || floor == 0 {
        return Ok(0);
    }
    let purged = stream
        .purge()
        .filter(subject)
        .sequence(floor + 1)
        .await
        .map_err(|error| nats_by(format!("purge of acked items of `{subject}`"), error))?
        .purged;
    if purged > 0 {
        tracing::warn!(
            consumer,
            purged,
            ack_floor = floor,
            "removed items the server kept after a restart although they were acked"
        );
    }
    Ok(purged)
}
