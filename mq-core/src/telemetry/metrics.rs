//! What mq counts and times, on the `metrics` facade (feature `metrics`); every name and
//! label is here, and [`guide::observability`](crate::guide::observability) lists them.
//!
//! Why the facade rather than OpenTelemetry metrics: with no recorder installed a metric
//! call is a load of the global recorder and a return (no exporter, no SDK, no allocation
//! for mq's static labels), and the exporter (Prometheus, StatsD, OpenTelemetry through
//! `metrics-exporter-opentelemetry`, ...) is the application's choice, made once in its
//! `main`. The worker's `--metrics-addr` installs the Prometheus recorder
//! (`metrics-exporter-prometheus`, feature `prometheus`).
//!
//! Labels: `queue`, `message` (the wire name) and, per slot run, `slot` (its path).

use std::time::{Duration, SystemTime};

use metrics::SharedString;

#[cfg(feature = "prometheus")]
use crate::transport::QueueStats;

/// Messages put on their queue (`queue`, `message`).
pub(crate) const DISPATCHED: &str = "mq_dispatched_total";
/// Slot runs that succeeded (`queue`, `message`, `slot`).
pub(crate) const HANDLED: &str = "mq_handled_total";
/// Slot runs that failed and run again at the next attempt (`queue`, `message`, `slot`).
pub(crate) const RETRIED: &str = "mq_retried_total";
/// Slot runs that failed for good: the message went to the failure store (`queue`,
/// `message`, `slot`; `slot` empty when no slot ran: an unknown name, an unreadable item).
pub(crate) const FAILED: &str = "mq_failed_total";
/// Attempts of messages by how they ended (`queue`, `message`, `outcome`: `finished`,
/// `retried`, `failed`).
pub(crate) const MESSAGES: &str = "mq_messages_total";
/// Seconds from dispatch to the start of the first attempt's slots (`queue`, `message`).
pub(crate) const QUEUE_WAIT: &str = "mq_queue_wait_seconds";
/// Seconds one slot run took, failed or not (`queue`, `message`, `slot`).
pub(crate) const SLOT_DURATION: &str = "mq_slot_duration_seconds";
/// Envelopes whose signature a worker refused, sent to the failure store without running a
/// slot (`queue`, `reason`: `unsigned`, `malformed`, `unknown_key`, `mismatch`). No
/// `message` label: whoever forges envelopes chooses their names, and would choose many.
pub(crate) const SIGNATURE_REFUSALS: &str = "mq_signature_refusals_total";
/// Items of a queue by state (`queue`, `state`: `ready`, `delayed`, `reserved`,
/// `failed`), sampled by the worker from the backend's counts.
pub(crate) const QUEUE_DEPTH: &str = "mq_queue_depth";

/// A queue label: the message's declared queue as it is (no allocation), another as a copy.
pub(crate) fn queue_label(queue: &str, declared: &'static str) -> SharedString {
    if queue == declared {
        SharedString::const_str(declared)
    } else {
        SharedString::from_owned(queue.to_owned())
    }
}

/// `count` messages of `message` put on `queue`.
pub(crate) fn dispatched(queue: &'static str, message: &'static str, count: u64) {
    metrics::counter!(DISPATCHED, "queue" => queue, "message" => message).increment(count);
}

/// The first attempt of a message dispatched at `dispatched_at` starts its slots now.
pub(crate) fn queue_wait(queue: SharedString, message: &'static str, dispatched_at: SystemTime) {
    // A producer's clock ahead of the worker's counts as no wait.
    let wait = SystemTime::now()
        .duration_since(dispatched_at)
        .unwrap_or(Duration::ZERO);
    metrics::histogram!(QUEUE_WAIT, "queue" => queue, "message" => message).record(wait);
}

/// One slot run ended after `took`; `ok` when it succeeded (its failure is counted when the
/// attempt is settled, as retried or failed).
pub(crate) fn slot_ran(
    queue: SharedString,
    message: &'static str,
    slot: &'static str,
    took: Duration,
    ok: bool,
) {
    let labels = [
        ("queue", queue),
        ("message", message.into()),
        ("slot", slot.into()),
    ];
    metrics::histogram!(SLOT_DURATION, &labels).record(took);
    if ok {
        metrics::counter!(HANDLED, &labels).increment(1);
    }
}

/// How one attempt of a message ended (`finished`, `retried`, `failed`), with the slots
/// that failed.
pub(crate) fn settled(
    queue: SharedString,
    message: SharedString,
    outcome: &'static str,
    failed_slots: &[String],
) {
    metrics::counter!(
        MESSAGES,
        "queue" => queue.clone(),
        "message" => message.clone(),
        "outcome" => outcome
    )
    .increment(1);
    let name = match outcome {
        "retried" => RETRIED,
        "failed" => FAILED,
        _ => return,
    };
    let slots = failed_slots.iter().map(String::as_str);
    let slots: Vec<&str> = if failed_slots.is_empty() {
        vec![""]
    } else {
        slots.collect()
    };
    for slot in slots {
        metrics::counter!(
            name,
            "queue" => queue.clone(),
            "message" => message.clone(),
            "slot" => slot.to_owned()
        )
        .increment(1);
    }
}

/// An envelope on `queue` whose signature was refused.
pub(crate) fn signature_refused(queue: &str, refusal: &crate::signing::Refusal) {
    use crate::signing::Refusal;
    let reason = match refusal {
        Refusal::Unsigned => "unsigned",
        Refusal::Malformed(_) => "malformed",
        Refusal::UnknownKey(_) => "unknown_key",
        Refusal::Mismatch(_) => "mismatch",
    };
    metrics::counter!(
        SIGNATURE_REFUSALS,
        "queue" => queue.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

/// The counts of the worker's queues, as gauges (sampled by a worker that serves
/// `--metrics-addr`).
#[cfg(feature = "prometheus")]
pub(crate) fn queue_depths(stats: &[QueueStats]) {
    for stats in stats {
        for (state, count) in [
            ("ready", stats.ready),
            ("delayed", stats.delayed),
            ("reserved", stats.reserved),
            ("failed", stats.failed),
        ] {
            metrics::gauge!(QUEUE_DEPTH, "queue" => stats.queue.clone(), "state" => state)
                .set(count as f64);
        }
    }
}

/// Describes every metric to the recorder (its `# HELP` lines); at each worker's start.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(DISPATCHED, "messages put on their queue");
    describe_counter!(HANDLED, "slot runs that succeeded");
    describe_counter!(
        RETRIED,
        "slot runs that failed and run again at the next attempt"
    );
    describe_counter!(FAILED, "slot runs that failed for good (failure store)");
    describe_counter!(MESSAGES, "attempts of messages, by outcome");
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "time from dispatch to the first attempt's slots starting"
    );
    describe_histogram!(SLOT_DURATION, Unit::Seconds, "time one slot run took");
    describe_counter!(
        SIGNATURE_REFUSALS,
        "envelopes whose signature was refused (failure store, no slot ran)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "items of a queue by state, sampled from the backend"
    );
}
