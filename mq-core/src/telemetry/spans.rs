//! The spans of a message's path, one constructor each, so that producer and worker name
//! and attribute them alike (OpenTelemetry messaging semantic conventions): `mq.publish`
//! at dispatch (kind producer), `mq.process` per reserved message (kind consumer) and
//! `mq.slot` per slot run, with its attempt. `otel.kind` and `otel.status_code` are the
//! fields `tracing-opentelemetry` reads for the span kind and status.

use tracing::field::Empty;
use tracing::Span;

/// The producer's span of one dispatch (or one batch) of `name` to `queue`; the message id
/// is recorded once the envelope exists ([`record_message_id`]).
pub(crate) fn publish(system: &'static str, queue: &str, name: &str, count: usize) -> Span {
    tracing::info_span!(
        "mq.publish",
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "publish",
        messaging.destination.name = queue,
        messaging.message.id = Empty,
        messaging.batch.message_count = count,
        mq.message = name,
    )
}

/// Notes the id of the message a [`publish`] span put (the first, for a batch).
pub(crate) fn record_message_id(span: &Span, id: &str) {
    span.record("messaging.message.id", id);
}

/// The worker's span of one reserved message, from reservation to ack, retry or failure.
pub(crate) fn process(system: &str, queue: &str, name: &str, id: &str, attempt: u32) -> Span {
    tracing::info_span!(
        "mq.process",
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.destination.name = queue,
        messaging.message.id = id,
        mq.message = name,
        mq.attempt = attempt,
    )
}

/// One slot's run within a [`process`] span; `attempt` is the envelope's (1 for the first).
pub(crate) fn slot(path: &str, attempt: u32) -> Span {
    tracing::info_span!(
        "mq.slot",
        mq.slot = path,
        mq.attempt = attempt,
        otel.status_code = Empty,
        error.message = Empty,
    )
}

/// Marks the current slot span failed with `error`.
pub(crate) fn record_slot_error(span: &Span, error: &dyn std::fmt::Display) {
    span.record("otel.status_code", "error");
    span.record("error.message", tracing::field::display(error));
}
