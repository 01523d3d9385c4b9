//! Leases: the items this process holds, their TTR kept by the transport. A reaper task
//! sends `in_progress` (`+WPI`) for held items every third of AckWait and hands back
//! (`-NAK`) those whose TTR ran out; `hold` records a reserved message, `take` ends its
//! lease (an ack, retry, release or failure).

use std::collections::HashMap;
use std::sync::{MutexGuard, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::Subject;
use bytes::Bytes;
use tokio::time::Instant;

use super::{header_u64, layout, nats, Shared, POLL};
use crate::transport::Job;
use crate::{Error, Result};

#[derive(Debug)]
pub(super) struct Held {
    pub(super) reply: Subject,
    pub(super) ttr: Duration,
    /// When the reservation runs out unless kept alive.
    pub(super) until: Instant,
    /// When `in_progress` was last sent.
    pub(super) progressed: Instant,
}

/// Keeps held items alive on the server (`in_progress`) and hands back those whose TTR ran
/// out (`nak`), until the transport is dropped.
pub(super) async fn reap(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.link.is_up(&shared.client) {
            // Nothing would arrive; TTRs still run out below, and the server hands the
            // items out again after AckWait.
            let now = Instant::now();
            shared.lock_held().retain(|_, item| item.until > now);
            continue;
        }
        let now = Instant::now();
        let every = shared.settings.ack_wait / 3;
        let mut expired = Vec::new();
        let mut progress = Vec::new();
        {
            let mut held = shared.lock_held();
            held.retain(|_, item| {
                if item.until <= now {
                    expired.push(item.reply.clone());
                    return false;
                }
                if now.duration_since(item.progressed) >= every {
                    item.progressed = now;
                    progress.push(item.reply.clone());
                }
                true
            });
        }
        for reply in expired {
            let _ = shared
                .client
                .publish(reply, Bytes::from_static(b"-NAK"))
                .await;
        }
        for reply in progress {
            let _ = shared
                .client
                .publish(reply, Bytes::from_static(b"+WPI"))
                .await;
        }
    }
}

impl Shared {
    pub(super) fn lock_held(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        // Every mutation is a single insert or remove: a panic leaves the map consistent.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reserved message and turns it into a job.
    pub(super) fn hold(&self, queue: &str, message: jetstream::Message) -> Result<Job> {
        let info = message.info().map_err(nats)?;
        let id = info.stream_sequence;
        let deliveries = u32::try_from(info.delivered).unwrap_or(u32::MAX);
        let ttr = header_u64(message.headers.as_ref(), layout::TTR)
            .map_or(crate::message::DEFAULT_TTR, Duration::from_millis);
        let reply = message
            .reply
            .clone()
            .ok_or_else(|| nats("a JetStream message came without a reply subject"))?;
        let now = Instant::now();
        self.lock_held().insert(
            id,
            Held {
                reply,
                ttr,
                until: now + ttr,
                progressed: now,
            },
        );
        Ok(Job {
            id,
            queue: queue.to_owned(),
            body: message.payload.clone(),
            deliveries,
        })
    }

    pub(super) fn take(&self, job: &Job) -> Result<Held> {
        self.lock_held()
            .remove(&job.id)
            .ok_or(Error::ReservationLost(job.id))
    }
}
