//! Per-key concurrency and rate limits on the worker's side: a message dispatched with
//! `.concurrency_key(key, n)` carries the key and the limit in its headers; before its slots
//! run, the worker takes one of the key's `n` permits from the backend (leased for the
//! message's TTR) and gives it back after. `.rate_limit(key, r)` is the same with permits
//! leased for one second and never given back: at most `r` starts in any second. When no
//! permit is free the message goes back on its queue unchanged, ready again after a short
//! pause: no attempt is counted, no retry spent, and no failure reported.
//!
//! A message type's own limits (`#[message(concurrency = 2, concurrency_key = "customer")]`)
//! are written into the same headers at dispatch. A worker's queue rate
//! ([`WorkerBuilder::rate_limit`], `--rate-limit QUEUE=R`) is the worker's own: every
//! message it reserves from the queue takes a rate permit of key `queue/<name>` first.

use std::sync::Arc;
use std::time::Duration;

use super::builder::WorkerBuilder;
use super::emit::Outcome;
use super::options::Options;
use super::run::Shared;
use crate::envelope::Envelope;
use crate::retry::random_unit;
use crate::transport::{self, Job, PutOptions, Transport};
use crate::{Error, Result};

/// The header naming a message's concurrency key.
pub(crate) const LIMIT_KEY: &str = "mq-limit-key";
/// The header giving how many messages of that key may run at once.
pub(crate) const LIMIT: &str = "mq-limit";
/// The header naming a message's rate key.
pub(crate) const RATE_KEY: &str = "mq-rate-key";
/// The header giving how many messages of that key may start per second.
pub(crate) const RATE: &str = "mq-rate";

/// How long a rate permit lasts: the window the rate is counted in.
const SECOND: Duration = Duration::from_secs(1);

/// How long a held-back message waits before it is ready again (half to all of it).
const PAUSE: Duration = Duration::from_millis(100);

/// What a message's limit allows.
pub(super) enum Gate {
    /// Run its slots; with the permit to give back after, if it has a limit.
    Open(Option<(String, u64)>),
    /// Every permit of its key is taken.
    HeldBack,
}

/// Takes a permit of the worker's rate of `queue`, one for `envelope`'s rate key and one
/// for its concurrency key, as far as there are such limits.
pub(super) async fn enter(
    shared: &Shared,
    queue: &str,
    envelope: &Envelope,
    ttr: Duration,
) -> Gate {
    let headers = &envelope.headers;
    if let Some(rate) = shared.options.queue_rate(queue) {
        if !take_rate(shared, &format!("queue/{queue}"), rate).await {
            return Gate::HeldBack;
        }
    }
    if let (Some(key), Some(rate)) = (headers.get(RATE_KEY), headers.get(RATE)) {
        let rate = rate.parse::<u32>().unwrap_or(1).max(1);
        if !take_rate(shared, key, rate).await {
            return Gate::HeldBack;
        }
    }
    let (Some(key), Some(limit)) = (headers.get(LIMIT_KEY), headers.get(LIMIT)) else {
        return Gate::Open(None);
    };
    let limit = limit.parse::<u32>().unwrap_or(1).max(1);
    match shared.transport.acquire_permit(key, limit, ttr).await {
        Ok(Some(token)) => Gate::Open(Some((key.clone(), token))),
        Ok(None) => Gate::HeldBack,
        Err(error) => {
            tracing::warn!(%error, key, "cannot take a concurrency permit; holding the message back");
            Gate::HeldBack
        }
    }
}

/// Takes one of the `rate` permits of this second of the rate key `key`; whether one was
/// free (a backend's error holds the message back too).
async fn take_rate(shared: &Shared, key: &str, rate: u32) -> bool {
    let key = format!("rate/{key}");
    match shared.transport.acquire_permit(&key, rate, SECOND).await {
        Ok(taken) => taken.is_some(),
        Err(error) => {
            tracing::warn!(%error, key, "cannot take a rate permit; holding the message back");
            false
        }
    }
}

/// Gives back the permit `enter` took.
pub(super) async fn leave(shared: &Shared, permit: Option<(String, u64)>) {
    if let Some((key, token)) = permit {
        if let Err(error) = shared.transport.release_permit(&key, token).await {
            tracing::warn!(%error, key, "cannot give back a concurrency permit; it frees itself after the TTR");
        }
    }
}

/// Puts a held-back message back unchanged, ready after a short pause.
pub(super) async fn hold_back(
    shared: &Arc<Shared>,
    job: &Job,
    priority: u32,
    ttr: Duration,
) -> Outcome {
    let pause = PAUSE.mul_f64(0.5 + random_unit() / 2.0);
    let options = PutOptions::new(priority, pause, ttr);
    tracing::debug!(
        id = job.id,
        "a limit of its key or queue is reached; held back"
    );
    if let Err(error) = shared.transport.retry(job, job.body.clone(), options).await {
        tracing::warn!(%error, "cannot hold the message back; it comes back after its TTR");
    }
    Outcome::HeldBack
}

impl WorkerBuilder {
    /// Starts the slots of at most `per_second` messages of `queue` per second: every
    /// message this worker reserves from the queue first takes a permit of the rate key
    /// `queue/<name>` from the backend (leased for one second), and is held back (put back
    /// unchanged, ready again after 100–200 ms; no failure, no retry spent) when none is
    /// free. The permits are the backend's, so the rate holds across workers only if every
    /// worker of the queue is given the same rate (`--rate-limit QUEUE=R`,
    /// `MQ_RATE_LIMIT`): a worker without it does not ask. A second call for one queue
    /// replaces the first. [`build`](WorkerBuilder::build) refuses a rate of 0, and a
    /// backend that cannot keep permits (see
    /// [`Feature::KeyLimits`](crate::transport::Feature::KeyLimits)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "geocode")]
    /// # struct Geocode { address: String }
    /// # #[mq::slot] fn geocode(_: Geocode) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<geocode>()])?;
    /// let worker = mq::Worker::builder()
    ///     .url("memory://builder-rate-limit-doc")
    ///     .registry(registry.clone())
    ///     .rate_limit("geocode", 50) // the geocoding API takes 50 calls a second
    ///     .build()
    ///     .await?;
    ///
    /// let zero = mq::Worker::builder().url("memory://").registry(registry).rate_limit("geocode", 0);
    /// assert!(matches!(zero.build().await, Err(mq::Error::Config(_))));
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(mut self, queue: impl Into<String>, per_second: u32) -> Self {
        self.options.set_queue_rate(queue.into(), per_second);
        self
    }
}

impl Options {
    /// The rate this worker holds `queue` to, if any.
    pub(crate) fn queue_rate(&self, queue: &str) -> Option<u32> {
        self.rates.iter().find(|(q, _)| q == queue).map(|(_, r)| *r)
    }

    /// Sets the rate of `queue`, over one set before.
    pub(crate) fn set_queue_rate(&mut self, queue: String, per_second: u32) {
        match self.rates.iter_mut().find(|(q, _)| *q == queue) {
            Some(rate) => rate.1 = per_second,
            None => self.rates.push((queue, per_second)),
        }
    }
}

/// Checks the worker's queue rates at start-up: none of 0, each queue's name valid, and a
/// backend that keeps permits. Each is logged (so that an operator can see every worker
/// of a queue has the same), a rate of a queue the worker does not consume as a warning.
///
/// # Errors
///
/// [`Error::Config`] for a rate of 0 or a bad queue name; [`Error::Unsupported`], naming
/// the backends that can, on a backend without `Feature::KeyLimits`.
pub(super) fn check_rates(options: &Options, transport: &dyn Transport) -> Result<()> {
    for (queue, rate) in &options.rates {
        transport::check_queue_name(queue)?;
        if *rate == 0 {
            return Err(Error::Config(format!(
                "a rate limit of 0 for queue `{queue}` would never run its messages; give 1 \
                 or more, or no rate limit"
            )));
        }
        let what = format!("rate limit of queue `{queue}` ({rate} a second)");
        transport.capabilities().require(
            transport::Feature::KeyLimits,
            &what,
            &transport.describe(),
        )?;
        if options.queues.contains(queue) {
            tracing::info!(queue, rate, "rate limit: permits of key queue/{queue}");
        } else {
            tracing::warn!(
                queue,
                rate,
                "a rate limit for a queue this worker does not consume: it changes nothing here"
            );
        }
    }
    Ok(())
}
