//! One message, start to end: decode the envelope, emit it to its slots (each caught for
//! panics and timed out on its own), then let `decide` say what follows and `settle` do it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::capacity::Busy;
use super::decide::{decide, decide_unknown, Policy, SlotOutcome};
use super::run::Shared;
use super::settle::{fail_unreadable, settle};
use super::shutdown::AbortOnDrop;
use crate::context::Context;
use crate::envelope::Envelope;
use crate::event::{Event, EventKind, Hook};
use crate::registry::Route;
use crate::retry::random_unit;
use crate::slot::SlotDef;
#[cfg(feature = "metrics")]
use crate::telemetry::metrics;
use crate::telemetry::spans;
use crate::transport::Job;
use crate::Result;

/// How the handling of one message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every slot succeeded.
    Finished,
    /// Some slots failed and run again later.
    Retried,
    /// The message is in the failure store.
    Failed,
    /// A limit of its keys or its queue was reached: put back unchanged (see `limits`).
    HeldBack,
}

#[cfg(feature = "metrics")]
impl Outcome {
    /// The `outcome` label of `mq_messages_total`.
    fn label(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::HeldBack => "held_back",
        }
    }
}

/// Handles one reserved item. Errors of the transport are logged here: the item comes back
/// by itself when its reservation runs out, so nothing is lost.
///
/// The rare paths (an unreadable item, a refused signature, an unknown name, a held-back
/// message) are boxed, so that their futures do not size every message's.
pub(crate) async fn handle(shared: Arc<Shared>, job: Job, busy: Busy) -> Outcome {
    let envelope = match Envelope::decode(&job.body) {
        Ok(envelope) => envelope,
        Err(reason) => {
            drop(busy);
            let outcome = Box::pin(fail_unreadable(&shared, &job, reason)).await;
            #[cfg(feature = "metrics")]
            metrics::settled(job.queue.clone().into(), "".into(), outcome.label(), &[]);
            return outcome;
        }
    };
    if let Err(refusal) = shared.verifier.check(&envelope) {
        drop(busy);
        return Box::pin(super::trust::refuse(&shared, &job, &envelope, refusal)).await;
    }
    let span = spans::process(
        shared.system,
        &job.queue,
        &envelope.name,
        &envelope.id,
        envelope.attempt,
    );
    #[cfg(feature = "otel")]
    crate::telemetry::otel::continue_trace(&span, &envelope.headers);
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
        return Box::pin(unknown_name(&shared, &job, envelope)).await;
    };
    let info = route.info();
    if let Err(error) = info.reads(envelope.message_version) {
        drop(busy);
        return Box::pin(unreadable_version(&shared, &job, envelope, error)).await;
    }
    #[cfg(feature = "metrics")]
    let queue_label = metrics::queue_label(&job.queue, info.options.queue);
    #[cfg(feature = "metrics")]
    if envelope.attempt == 1 {
        metrics::queue_wait(queue_label.clone(), info.name, envelope.dispatched_at);
    }
    let permit = match super::limits::enter(&shared, &job.queue, &envelope, info.options.ttr).await
    {
        super::limits::Gate::Open(permit) => {
            if let Some((key, token)) = &permit {
                shared.held.permit_taken(job.id, key, *token);
            }
            permit
        }
        super::limits::Gate::HeldBack => {
            drop(busy);
            let (priority, ttr) = (info.options.priority, info.options.ttr);
            return Box::pin(super::limits::hold_back(&shared, &job, priority, ttr)).await;
        }
    };
    let started = Instant::now();
    let failures = run_slots(&shared, &job, &envelope, route).await;
    let elapsed = started.elapsed();
    super::limits::leave(&shared, permit).await;
    drop(busy);

    let policy = Policy {
        priority: info.options.priority,
        ttr: info.options.ttr,
        retries: info.options.retries.unwrap_or(shared.options.retries),
        backoff: info.options.backoff.unwrap_or(shared.options.backoff),
    };
    let slot_count = route.slots().count();
    #[cfg(feature = "metrics")]
    let failed_slots: Vec<String> = failures.iter().map(|f| f.slot.clone()).collect();
    let decision = decide(&envelope, failures, slot_count, &policy, random_unit());
    let event = |kind| Event {
        elapsed: Some(elapsed),
        ..event(kind)
    };
    let outcome = settle(&shared, &job, decision, event).await;
    #[cfg(feature = "metrics")]
    metrics::settled(
        queue_label,
        info.name.into(),
        outcome.label(),
        &failed_slots,
    );
    outcome
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
    #[cfg(feature = "metrics")]
    let (queue_label, message) = (
        metrics::queue_label(&job.queue, route.info().options.queue),
        route.info().name,
    );
    shared.held.slots_started(job.id, route.info().options.ttr);
    // Made for the first slot that needs a task of its own: a quick slot allocates nothing.
    let mut running = None;
    for slot in selected {
        // Decoding runs the message type's Deserialize, user code that may panic too.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            slot.start(&envelope.body, envelope.message_version, context.clone())
        }));
        let future: crate::slot::SlotFuture = match started {
            Ok(future) => future,
            Err(payload) => {
                let text = format!("decoding panicked: {}", panic_text(payload.as_ref()));
                Box::pin(std::future::ready(Err(crate::SlotError::retry(text))))
            }
        };
        let path = slot.path();
        let span = spans::slot(path, envelope.attempt);
        let alive = SlotAlive::enter(&shared.slots_alive);
        #[cfg(feature = "metrics")]
        let queue_label = queue_label.clone();
        let mut slot_run: SlotRun = Box::pin(
            async move {
                let _alive = alive;
                #[cfg(feature = "metrics")]
                let started = Instant::now();
                let result = catch_panic(future).await;
                #[cfg(feature = "metrics")]
                metrics::slot_ran(
                    queue_label,
                    message,
                    path,
                    started.elapsed(),
                    result.is_ok(),
                );
                if let Err(failure) = &result {
                    spans::record_slot_error(&tracing::Span::current(), failure);
                }
                result
            }
            .instrument(span),
        );
        if timeout.is_none() {
            if let Some(done) = futures_poll_once(&mut slot_run).await {
                record(shared, job, envelope, (path, done), &mut failures);
                continue;
            }
        }
        running
            .get_or_insert_with(futures_util::stream::FuturesUnordered::new)
            .push(watch_slot(path, tokio::spawn(slot_run), timeout));
    }
    if let Some(mut running) = running {
        while let Some(done) = futures_util::StreamExt::next(&mut running).await {
            record(shared, job, envelope, done, &mut failures);
        }
    }
    shared.held.slots_done(job.id);
    failures
}

/// Awaits a slot's task, within `timeout`; a slot past it is aborted and counts as failed.
/// The abort takes effect at the slot's next `.await`: one that never yields keeps its
/// thread busy, but its message goes on. Dropping this future (the message's task cancelled
/// when a stop's grace ran out) aborts the slot's task too.
async fn watch_slot(
    path: &'static str,
    task: tokio::task::JoinHandle<Result<(), SlotFailed>>,
    timeout: Option<Duration>,
) -> (&'static str, Result<(), SlotFailed>) {
    let mut task = AbortOnDrop(task);
    let joined = match timeout {
        Some(limit) => match tokio::time::timeout(limit, &mut task.0).await {
            Ok(joined) => joined,
            Err(_) => return (path, Err(SlotFailed::Timeout(limit))),
        },
        None => (&mut task.0).await,
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
        tracing::warn!(
            slot = path,
            message = %envelope.name,
            id = %envelope.id,
            "timed out after {limit:?}: cancelled"
        );
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
        tracing::warn!(
            slot = path,
            message = %envelope.name,
            id = %envelope.id,
            error = %failure,
            "slot failed"
        );
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
async fn catch_panic(future: crate::slot::SlotFuture) -> Result<(), SlotFailed> {
    match futures_catch_unwind(future).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(SlotFailed::Error(error)),
        Err(payload) => Err(SlotFailed::Panic(panic_text(payload.as_ref()))),
    }
}

/// `catch_unwind` for a future, polled in place (no extra task).
///
/// A wrapper, not an `async fn`: an `async fn` keeps its argument and its pinned copy side
/// by side, doubling the size of every message's task.
pub(crate) fn futures_catch_unwind<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = std::thread::Result<F::Output>> {
    futures_util::FutureExt::catch_unwind(AssertUnwindSafe(future))
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

/// A name this binary has no route for: retried with a long backoff (a newer worker of a
/// rolling deploy may know it), then moved to the failure store.
async fn unknown_name(shared: &Arc<Shared>, job: &Job, envelope: Envelope) -> Outcome {
    let reason = unknown_reason(shared, &envelope);
    let retries = shared.options.unknown_retries;
    not_for_this_build(shared, job, envelope, reason, retries).await
}

/// A `message_version` this build does not read. A newer one is retried as an unknown name
/// is (a worker of the newer build may take it); an older one without a reader goes to the
/// failure store at once: no build to come reads it.
async fn unreadable_version(
    shared: &Arc<Shared>,
    job: &Job,
    envelope: Envelope,
    error: crate::DecodeError,
) -> Outcome {
    let retries = if error.is_newer() {
        shared.options.unknown_retries
    } else {
        0
    };
    not_for_this_build(shared, job, envelope, error.to_string(), retries).await
}

fn unknown_reason(shared: &Shared, envelope: &Envelope) -> String {
    if shared.registry.route(&envelope.name).is_some() {
        format!("no slot for `{}` in this worker", envelope.name)
    } else {
        format!(
            "no message type named `{}` in this worker (it knows: {})",
            envelope.name,
            shared.known_names()
        )
    }
}

/// A message this build cannot handle, for `reason`: retried `retries` times with the
/// unknown names' backoff, then moved to the failure store.
async fn not_for_this_build(
    shared: &Arc<Shared>,
    job: &Job,
    envelope: Envelope,
    reason: String,
    retries: u32,
) -> Outcome {
    let event = |kind| {
        Event::new(
            kind,
            &envelope.name,
            &envelope.id,
            &job.queue,
            envelope.attempt,
        )
    };
    let decision = decide_unknown(
        &envelope,
        reason,
        retries,
        shared.options.unknown_backoff,
        random_unit(),
    );
    let outcome = settle(shared, job, decision, event).await;
    #[cfg(feature = "metrics")]
    metrics::settled(
        job.queue.clone().into(),
        envelope.name.clone().into(),
        outcome.label(),
        &[],
    );
    outcome
}
