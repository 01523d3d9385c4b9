//! Carrying out a [`Decision`]: ack, retry or fail through the transport, with the log line
//! and the lifecycle event of each. A transport error is logged, never fatal: the item
//! comes back by itself when its reservation runs out, so nothing is lost.

use std::time::SystemTime;

use super::decide::Decision;
use super::emit::Outcome;
use super::run::Shared;
use crate::envelope::Envelope;
use crate::event::{Event, EventKind, Hook};
use crate::transport::{Failure, Job, PutOptions, SlotFailure};
use crate::{Error, Result};

/// Carries out `decision` for `job`; `event` makes the lifecycle event of what was done.
/// A retry and a failure are boxed: their futures would size every ack's.
pub(super) async fn settle(
    shared: &Shared,
    job: &Job,
    decision: Decision,
    event: impl Fn(EventKind) -> Event,
) -> Outcome {
    match decision {
        Decision::Ack => {
            log_transport(shared.transport.send_ack(job).await, "ack", job);
            // The event copies the names: made only for a log line or a hook that wants it.
            let elapsed_ms = || {
                let elapsed = event(EventKind::Finished).elapsed;
                elapsed.map_or(0, |e| u64::try_from(e.as_millis()).unwrap_or(u64::MAX))
            };
            tracing::debug!(elapsed_ms = elapsed_ms(), "finished");
            Hook::emit(&shared.hook, || event(EventKind::Finished));
            Outcome::Finished
        }
        Decision::Retry {
            next,
            options,
            error,
            note,
            slots,
        } => {
            let retried = Event {
                slots,
                ..event(EventKind::Retried)
            };
            Box::pin(put_back(shared, job, &next, options, error, &note, retried)).await
        }
        Decision::Fail {
            next,
            options,
            reason,
            slots,
        } => {
            let attempts = next.attempt.saturating_sub(1);
            let failed = Event {
                slots: slots.clone(),
                ..event(EventKind::Failed)
            };
            let failure = failure(slots, reason, attempts);
            Box::pin(move_to_failure_store(
                shared,
                job,
                next.encode(),
                options,
                failure,
                failed,
            ))
            .await
        }
    }
}

/// An item that is not an envelope: straight to the failure store, unchanged.
pub(super) async fn fail_unreadable(shared: &Shared, job: &Job, reason: String) -> Outcome {
    tracing::error!(queue = %job.queue, item = job.id, "unreadable item");
    let failure = failure(Vec::new(), reason, 1);
    let failed = Event::new(EventKind::Failed, "", "", &job.queue, 1);
    let body = job.body.clone();
    move_to_failure_store(shared, job, body, PutOptions::default(), failure, failed).await
}

/// Moves an envelope refused before its slots (its signature) to the failure store with
/// `reason`, unchanged.
pub(super) async fn fail_refused(
    shared: &Shared,
    job: &Job,
    envelope: &Envelope,
    reason: String,
) -> Outcome {
    let failure = failure(Vec::new(), reason, envelope.attempt);
    let failed = Event::new(
        EventKind::Failed,
        &envelope.name,
        &envelope.id,
        &job.queue,
        envelope.attempt,
    );
    let body = job.body.clone();
    move_to_failure_store(shared, job, body, PutOptions::default(), failure, failed).await
}

/// A failure record of now.
fn failure(slots: Vec<SlotFailure>, reason: String, attempts: u32) -> Failure {
    Failure {
        slots,
        reason,
        attempts,
        failed_at: SystemTime::now(),
    }
}

/// Moves the item to the failure store, logs it and reports `event` with the reason.
async fn move_to_failure_store(
    shared: &Shared,
    job: &Job,
    body: bytes::Bytes,
    put: PutOptions,
    failure: Failure,
    event: Event,
) -> Outcome {
    let reason = failure.reason.clone();
    log_transport(
        shared.transport.fail(job, body, put, failure).await,
        "fail",
        job,
    );
    tracing::error!(
        message = %event.name,
        id = %event.id,
        %reason,
        "failed: moved to the failure store"
    );
    Hook::emit(&shared.hook, || Event {
        error: Some(reason),
        ..event
    });
    Outcome::Failed
}

/// Replaces the item by the next attempt `next`, ready after `put.delay`; logs `note` and
/// reports `event` with the error and the delay.
async fn put_back(
    shared: &Shared,
    job: &Job,
    next: &Envelope,
    put: PutOptions,
    error: String,
    note: &str,
    event: Event,
) -> Outcome {
    let body = next.encode();
    // A test's worker runs the next attempt at once; the event still says the backoff.
    let queued = if shared.options.retry_now {
        put.with_delay(std::time::Duration::ZERO)
    } else {
        put
    };
    match shared.transport.retry(job, body.clone(), queued).await {
        // The next attempt cannot be queued (it grew past the backend's size limit): retrying
        // would run every slot again each TTR, forever. The failure store keeps it.
        Err(refused @ Error::TooLarge { .. }) => {
            let reason = format!("cannot queue the next attempt ({refused}); last error: {error}");
            let attempts = next.attempt.saturating_sub(1);
            let failure = failure(Vec::new(), reason, attempts);
            let failed = Event {
                kind: EventKind::Failed,
                ..event
            };
            return move_to_failure_store(shared, job, body, put, failure, failed).await;
        }
        result => log_transport(result, "retry", job),
    }
    tracing::warn!(
        message = %event.name,
        id = %event.id,
        %error,
        delay_ms = put.delay.as_millis() as u64,
        "{note}"
    );
    Hook::emit(&shared.hook, || Event {
        error: Some(error),
        delay: Some(put.delay),
        ..event
    });
    Outcome::Retried
}

fn log_transport(result: Result<()>, operation: &str, job: &Job) {
    match result {
        Ok(()) => {}
        Err(Error::ReservationLost(item)) => tracing::warn!(
            queue = %job.queue,
            item,
            "{operation}: the reservation was lost; the message may run again (at-least-once)"
        ),
        Err(error) => tracing::error!(
            queue = %job.queue,
            item = job.id,
            %error,
            "{operation} failed; the message comes back when its reservation runs out"
        ),
    }
}
