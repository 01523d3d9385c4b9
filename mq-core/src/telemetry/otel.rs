//! The W3C trace context in the envelope's headers (feature `otel`): [`inject`] at dispatch
//! writes the current span's `traceparent` and `tracestate`, [`continue_trace`] in the
//! worker makes the message's span a child of the producer's.
//!
//! The format is W3C Trace Context, always: the envelope is a wire format read by workers
//! of other builds and languages, so it does not follow whatever global propagator the
//! application set (`opentelemetry_sdk`'s `TraceContextPropagator`, used directly). The
//! spans themselves reach OpenTelemetry through the application's `tracing-opentelemetry`
//! layer; without that layer nothing is written and nothing is continued.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::envelope::Headers;

/// Writes the trace context of the current span into `headers`; nothing when the current
/// span is disabled or not part of a trace.
pub(crate) fn inject(headers: &mut Headers) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

/// Makes `span` (not yet entered) a child of the trace context in `headers`, if any.
pub(crate) fn continue_trace(span: &tracing::Span, headers: &Headers) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeadersRef(headers));
    // Fails only without the OpenTelemetry layer, where there is no trace to continue.
    let _ = span.set_parent(parent);
}

/// The envelope's headers as a propagator writes them.
struct HeadersMut<'a>(&'a mut Headers);

impl Injector for HeadersMut<'_> {
    /// An empty value is not written: the propagator always sets `tracestate`, and an empty
    /// one means the same as none (W3C Trace Context) for 16 bytes of every envelope.
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key.to_owned(), value);
        }
    }
}

/// The envelope's headers as a propagator reads them.
struct HeadersRef<'a>(&'a Headers);

impl Extractor for HeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the OpenTelemetry layer there is no context: nothing is written.
    #[test]
    fn without_a_layer_nothing_is_injected() {
        let mut headers = Headers::new();
        inject(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn an_empty_tracestate_is_not_written() {
        let mut headers = Headers::new();
        headers.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        let propagator = TraceContextPropagator::new();
        let context = propagator.extract(&HeadersRef(&headers));
        let mut written = Headers::new();
        propagator.inject_context(&context, &mut HeadersMut(&mut written));
        assert_eq!(written, headers, "no `tracestate` beside the `traceparent`");
    }

    #[test]
    fn the_propagator_reads_what_it_wrote() {
        let mut headers = Headers::new();
        headers.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        headers.insert("tracestate".into(), "shop=1".into());
        let propagator = TraceContextPropagator::new();
        let context = propagator.extract(&HeadersRef(&headers));
        let mut written = Headers::new();
        propagator.inject_context(&context, &mut HeadersMut(&mut written));
        assert_eq!(written, headers);
    }
}
