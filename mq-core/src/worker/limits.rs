//! Per-key concurrency and rate limits on the worker's side: a message dispatched with
//! `.concurrency_key(key, n)` carries the key and the limit in its headers; before its slots
//! run, the worker takes one of the key's `n` permits from the backend (leased for the
//! message's TTR) and gives it back after. `.rate_limit(key, r)` is the same with permits
//! leased for one second and never given back: at most `r` starts in any second. When no
//! permit is free the message goes back on its queue unchanged, ready again after a short
//! pause: no attempt is counted, no retry spent, and no failure reported.

use std::sync::Arc;
use std::time::Duration;

use super::emit::Outcome;
use super::run::Shared;
use crate::envelope::Envelope;
use crate::retry::random_unit;
use crate::transport::{Job, PutOptions};

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

/// Takes a permit for `envelope`'s rate key and one for its concurrency key, if it has
/// them.
pub(super) async fn enter(shared: &Shared, envelope: &Envelope, ttr: Duration) -> Gate {
    let headers = &envelope.headers;
    if let (Some(key), Some(rate)) = (headers.get(RATE_KEY), headers.get(RATE)) {
        let rate = rate.parse::<u32>().unwrap_or(1).max(1);
        let key = format!("rate/{key}");
        match shared.transport.acquire_permit(&key, rate, SECOND).await {
            Ok(Some(_)) => {}
            Ok(None) => return Gate::HeldBack,
            Err(error) => {
                tracing::warn!(%error, key, "cannot take a rate permit; holding the message back");
                return Gate::HeldBack;
            }
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
    tracing::debug!(id = job.id, "concurrency limit reached; held back");
    if let Err(error) = shared.transport.retry(job, job.body.clone(), options).await {
        tracing::warn!(%error, "cannot hold the message back; it comes back after its TTR");
    }
    Outcome::HeldBack
}
