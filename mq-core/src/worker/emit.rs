//! One message, start to end: decode the envelope, emit it to its slots, then ack, retry
//! the slots that failed, or move it to the failure store.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::Instrument;

use super::capacity::Busy;
use super::event::{Event, EventKind, Hook};
use super::Shared;
use crate::context::Context;
use crate::envelope::Envelope;
use crate::registry::Route;
use crate::slot::SlotDef;
use crate::transport::{Failure, Job, PutOptions, SlotFailure};
use crate::{Error, Result};

/// How the handling of one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every slot succeeded.
    Finished,
    /// Some slots failed and run again later.
    Retried,
    /// The message is in the failure store.
    Failed,
}

/// Handles one reserved item. Errors of the transport are logged here: the item comes back
/// by itself when its reservation runs out, so nothing is lost.
pub(crate) async fn handle(shared: Arc<Shared>, job: Job, busy: Busy) -> Outcome {
    let envelope = match Envelope::decode(&job.body) {
        Ok(envelope) => envelope,
        Err(reason) => {
            drop(busy);
            return fail_unreadable(&shared, &job, reason).await;
        }
    };
    let span = tracing::info_span!(
        "message",
        name = %envelope.name,
        id = %envelope.id,
        queue = %job.queue,
        attempt = envelope.attempt,
    );
    emit(shared, job, envelope, busy).instrument(span).await
}

/// Runs the slots of `job`; gives `busy` back once they are done, before the ack, retry
/// or failure goes to the transport.
async fn emit(shared: Arc<Shared>, job: Job, envelope: Envelope, busy: Busy) -> Outcome {
    let event = |kind| {
        Event::new(
            kind,
            &envelope.name,
            &envelope.id,
            &job.queue,
            envelope.attempt,
        )
    };
    tracing::debug!("reserved");
    Hook::emit(&shared.hook, || event(EventKind::Reserved));

    // A type linked here without a slot here is someone else's: as good as unknown.
    let route = shared.registry.route(&envelope.name);
    let Some(route) = route.filter(|route| route.slots().next().is_some()) else {
        drop(busy);
        return unknown_name(&shared, &job, envelope).await;
    };
    let started = Instant::now();
    let failures = run_slots(&shared, &job, &envelope, route).await;
    let elapsed = started.elapsed();
    drop(busy);

    if failures.is_empty() {
        log_transport(shared.transport.ack(&job).await, "ack");
        tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "finished");
        Hook::emit(&shared.hook, || Event {
            elapsed: Some(elapsed),
            ..event(EventKind::Finished)
        });
        return Outcome::Finished;
    }

    let options = route.info().options;
    let put = PutOptions {
        priority: options.priority,
        delay: Duration::ZERO,
        ttr: options.ttr,
    };
    let retries = options.retries.unwrap_or(shared.options.retries);
    let permanent = failures.iter().any(|failure| failure.permanent);
    let summary = summarize(&failures);
    let next = Envelope {
        attempt: envelope.attempt.saturating_add(1),
        slots: Some(failures.iter().map(|f| f.slot.clone()).collect()),
        ..envelope.clone()
    };

    if permanent || envelope.attempt > retries {
        let reason = if permanent {
            format!("permanent failure: {summary}")
        } else {
            let attempts = envelope.attempt;
            let plural = if attempts == 1 { "" } else { "s" };
            format!("failed after {attempts} attempt{plural}: {summary}")
        };
        let slots = failures
            .into_iter()
            .map(|f| SlotFailure {
                slot: f.slot,
                error: f.error,
            })
            .collect();
        let failure = failure(slots, reason, envelope.attempt);
        let failed = Event {
            elapsed: Some(elapsed),
            ..event(EventKind::Failed)
        };
        return move_to_failure_store(&shared, &job, next.encode(), put, failure, failed).await;
    }

    let backoff = options.backoff.unwrap_or(shared.options.backoff);
    let retry = PutOptions {
        delay: backoff.delay(envelope.attempt),
        ..put
    };
    let note = format!(
        "retried: {} of {} slots failed",
        next.slots.as_ref().map_or(0, Vec::len),
        route.slots().count()
    );
    let retried = Event {
        elapsed: Some(elapsed),
        ..event(EventKind::Retried)
    };
    put_back(&shared, &job, &next, retry, summary, &note, retried).await
}

/// A failed slot of this attempt.
#[derive(Debug)]
struct SlotOutcome {
    slot: String,
    error: String,
    permanent: bool,
}

/// Runs the slots the envelope asks for, all at once, and returns the failures.
///
/// A slot without a timeout is polled once here: one that finishes at once (the common case
/// of a quick slot) costs no task; the others then run each in its own task. A slot with a
/// timeout runs in its own task from the start, and this task counts its timeout: a slot
/// that never yields (busy code in an async fn) cannot keep its own timer from firing. The
/// reservation is renewed meanwhile by the worker's keep-alive task ([`super::held`]).
async fn run_slots(
    shared: &Arc<Shared>,
    job: &Job,
    envelope: &Envelope,
    route: &Route,
) -> Vec<SlotOutcome> {
    let mut failures = Vec::new();
    let selected: Vec<&SlotDef> = match &envelope.slots {
        None => route.slots().collect(),
        Some(paths) => {
            let mut selected = Vec::new();
            for path in paths {
                match route.slot(path) {
                    Some(slot) => selected.push(slot),
                    None => failures.push(SlotOutcome {
                        slot: path.clone(),
                        error: format!("this worker has no slot `{path}` for `{}`", envelope.name),
                        permanent: false,
                    }),
                }
            }
            selected
        }
    };

    let context = Context::new(
        envelope.id.clone(),
        envelope.attempt,
        job.queue.clone(),
        envelope.name.clone(),
        shared.bus.clone(),
        shared.states.clone(),
    );
    let timeout = route.info().options.timeout;
    shared.held.slots_started(job.id, route.info().options.ttr);
    let mut running = futures_util::stream::FuturesUnordered::new();
    for slot in selected {
        // Decoding runs the message type's Deserialize, user code that may panic too.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            slot.start(&envelope.body, context.clone())
        }));
        let future: crate::SlotFuture = match started {
            Ok(future) => future,
            Err(payload) => {
                let text = format!("decoding panicked: {}", panic_text(payload.as_ref()));
                Box::pin(std::future::ready(Err(crate::SlotError::retry(text))))
            }
        };
        let path = slot.path();
        let span = tracing::info_span!("slot", slot = path);
        let alive = SlotAlive::enter(&shared.slots_alive);
        let mut slot_run: SlotRun = Box::pin(
            async move {
                let _alive = alive;
                catch_panic(future).await
            }
            .instrument(span),
        );
        if timeout.is_none() {
            if let Some(done) = futures_poll_once(&mut slot_run).await {
                record(shared, job, envelope, (path, done), &mut failures);
                continue;
            }
        }
        running.push(watch_slot(path, tokio::spawn(slot_run), timeout));
    }
    while let Some(done) = futures_util::StreamExt::next(&mut running).await {
        record(shared, job, envelope, done, &mut failures);
    }
    shared.held.slots_done(job.id);
    failures
}

/// Awaits a slot's task, within `timeout`; a slot past it is aborted and counts as failed.
/// The abort takes effect at the slot's next `.await`: one that never yields keeps its
/// thread busy, but its message goes on.
async fn watch_slot(
    path: &'static str,
    mut task: tokio::task::JoinHandle<Result<(), SlotFailed>>,
    timeout: Option<Duration>,
) -> (&'static str, Result<(), SlotFailed>) {
    let joined = match timeout {
        Some(limit) => match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                task.abort();
                return (path, Err(SlotFailed::Timeout(limit)));
            }
        },
        None => task.await,
    };
    let result = joined.unwrap_or_else(|error| {
        // Slot tasks catch their own panics; only a runtime shutting down cancels one, and
        // then this message is not acked.
        Err(SlotFailed::Panic(format!("slot task ended: {error}")))
    });
    (path, result)
}

/// Counts one slot run of the worker until dropped: when its future ends, or is dropped
/// after a cancel (at its next `.await`).
struct SlotAlive(Arc<AtomicUsize>);

impl SlotAlive {
    fn enter(count: &Arc<AtomicUsize>) -> SlotAlive {
        count.fetch_add(1, Ordering::AcqRel);
        SlotAlive(count.clone())
    }
}

impl Drop for SlotAlive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One slot running, with its panic guard.
type SlotRun = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SlotFailed>> + Send>>;

/// Polls `future` once; its output if it finished.
async fn futures_poll_once<T>(
    future: &mut std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>,
) -> Option<T> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(done) => std::task::Poll::Ready(Some(done)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Notes how one slot ended.
fn record(
    shared: &Shared,
    job: &Job,
    envelope: &Envelope,
    (path, result): (&'static str, Result<(), SlotFailed>),
    failures: &mut Vec<SlotOutcome>,
) {
    let Err(failure) = result else { return };
    if let SlotFailed::Timeout(limit) = &failure {
        tracing::warn!(slot = path, "timed out after {limit:?}: cancelled");
        Hook::emit(&shared.hook, || Event {
            slot: Some(path.to_owned()),
            error: Some(failure.to_string()),
            ..Event::new(
                EventKind::Timeout,
                &envelope.name,
                &envelope.id,
                &job.queue,
                envelope.attempt,
            )
        });
    } else {
        tracing::warn!(slot = path, error = %failure, "slot failed");
    }
    failures.push(SlotOutcome {
        slot: path.to_owned(),
        permanent: failure.is_permanent(),
        error: failure.to_string(),
    });
}

/// Why one slot failed.
enum SlotFailed {
    Error(crate::SlotError),
    Panic(String),
    Timeout(Duration),
}

impl SlotFailed {
    fn is_permanent(&self) -> bool {
        matches!(self, SlotFailed::Error(error) if error.is_permanent())
    }
}

impl std::fmt::Display for SlotFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotFailed::Error(error) => write!(f, "{error}"),
            SlotFailed::Panic(text) => write!(f, "panicked: {text}"),
            SlotFailed::Timeout(limit) => {
                write!(f, "timed out after {}", humantime::format_duration(*limit))
            }
        }
    }
}

/// Awaits a slot, turning a panic into its failure.
async fn catch_panic(future: crate::SlotFuture) -> Result<(), SlotFailed> {
    match futures_catch_unwind(future).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(SlotFailed::Error(error)),
        Err(payload) => Err(SlotFailed::Panic(panic_text(payload.as_ref()))),
    }
}

/// `catch_unwind` for a future, polled in place (no extra task).
pub(crate) async fn futures_catch_unwind<F: std::future::Future>(
    future: F,
) -> std::thread::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(Ok(result)),
            Err(payload) => std::task::Poll::Ready(Err(payload)),
        }
    })
    .await
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn summarize(failures: &[SlotOutcome]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.slot, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A name this binary has no route for: retried with a long backoff (a newer worker of a
/// rolling deploy may know it), then moved to the failure store.
async fn unknown_name(shared: &Arc<Shared>, job: &Job, envelope: Envelope) -> Outcome {
    let reason = if shared.registry.route(&envelope.name).is_some() {
        format!("no slot for `{}` in this worker", envelope.name)
    } else {
        format!(
            "no message type named `{}` in this worker (it knows: {})",
            envelope.name,
            shared.known_names()
        )
    };
    let event = |kind| {
        Event::new(
            kind,
            &envelope.name,
            &envelope.id,
            &job.queue,
            envelope.attempt,
        )
    };
    let next = Envelope {
        attempt: envelope.attempt.saturating_add(1),
        ..envelope.clone()
    };
    let put = PutOptions::default();
    if envelope.attempt > shared.options.unknown_retries {
        let failure = failure(Vec::new(), reason, envelope.attempt);
        let failed = event(EventKind::Failed);
        return move_to_failure_store(shared, job, next.encode(), put, failure, failed).await;
    }
    let retry = PutOptions {
        delay: shared.options.unknown_backoff.delay(envelope.attempt),
        ..put
    };
    let retried = event(EventKind::Retried);
    let note = "retried: unknown message";
    put_back(shared, job, &next, retry, reason, note, retried).await
}

/// An item that is not an envelope: straight to the failure store, unchanged.
async fn fail_unreadable(shared: &Arc<Shared>, job: &Job, reason: String) -> Outcome {
    tracing::error!(queue = %job.queue, item = job.id, "unreadable item");
    let failure = failure(Vec::new(), reason, 1);
    let failed = Event::new(EventKind::Failed, "", "", &job.queue, 1);
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
    log_transport(shared.transport.fail(job, body, put, failure).await, "fail");
    tracing::error!(%reason, "failed: moved to the failure store");
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
    match shared.transport.retry(job, body.clone(), put).await {
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
        result => log_transport(result, "retry"),
    }
    tracing::warn!(%error, delay_ms = put.delay.as_millis() as u64, "{note}");
    Hook::emit(&shared.hook, || Event {
        error: Some(error),
        delay: Some(put.delay),
        ..event
    });
    Outcome::Retried
}

fn log_transport(result: Result<()>, operation: &str) {
    match result {
        Ok(()) => {}
        Err(Error::ReservationLost(item)) => tracing::warn!(
            item,
            "{operation}: the reservation was lost; the message may run again (at-least-once)"
        ),
        Err(error) => tracing::error!(
            %error,
            "{operation} failed; the message comes back when its reservation runs out"
        ),
    }
}
