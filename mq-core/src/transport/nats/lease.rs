//! Leases: the items this process holds, their TTR kept by the transport. A reaper task
//! sends `in_progress` (`+WPI`) for held items every third of AckWait and hands back
//! (`-NAK`) those whose TTR ran out; `hold` records a reserved message, `take` ends its
//! lease (an ack, retry, release or failure). A job's [`Delivery`] receipt names the
//! delivery it came from, so a job whose TTR ran out cannot settle a later delivery of the
//! same message to this process.

use std::collections::HashMap;
use std::sync::{MutexGuard, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::Subject;
use bytes::Bytes;
use tokio::time::Instant;

use super::{header_u64, layout, nats, nats_error, Shared, POLL};
use crate::transport::{Job, Receipt};
use crate::{Error, Result};

/// The receipt of a reservation: the reply subject of the delivery it came from.
#[derive(Debug)]
pub(super) struct Delivery(Subject);

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
        let info = message.info().map_err(nats_error)?;
        let id = info.stream_sequence;
        let deliveries = u32::try_from(info.delivered).unwrap_or(u32::MAX);
        let ttr = header_u64(message.headers.as_ref(), layout::TTR)
            .map_or(crate::message::DEFAULT_TTR, Duration::from_millis);
        let reply = message
            .reply
            .clone()
            .ok_or_else(|| nats("a JetStream message came without a reply subject"))?;
        let now = Instant::now();
        // A TTR too long for the clock never runs out here (the server's AckWait still
        // hands the item out again if this process dies).
        let until = now
            .checked_add(ttr)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let receipt = Receipt::new(Delivery(reply.clone()));
        self.lock_held().insert(
            id,
            Held {
                reply,
                ttr,
                until,
                progressed: now,
            },
        );
        let job = Job::new(id, queue, message.payload.clone(), deliveries);
        Ok(job.with_receipt(receipt))
    }

    /// Ends the lease of `job`, if its delivery is still held.
    pub(super) fn take(&self, job: &Job) -> Result<Held> {
        let Delivery(reply) = job.token()?;
        let mut held = self.lock_held();
        match held.get(&job.id) {
            Some(item) if item.reply == *reply => {
                held.remove(&job.id).ok_or(Error::ReservationLost(job.id))
            }
            _ => Err(Error::ReservationLost(job.id)),
        }
    }

    /// Renews the lease of `job` by its TTR; the subject to send `in_progress` to.
    pub(super) fn renew(&self, job: &Job) -> Result<Subject> {
        let Delivery(reply) = job.token()?;
        let mut held = self.lock_held();
        let item = held
            .get_mut(&job.id)
            .filter(|item| item.reply == *reply)
            .ok_or(Error::ReservationLost(job.id))?;
        let now = Instant::now();
        item.until = now.checked_add(item.ttr).unwrap_or(item.until);
        item.progressed = now;
        Ok(item.reply.clone())
    }
}
