//! OpenTelemetry in the trace tests' processes (`otel-producer`, `otel-worker`): a tracer
//! provider whose exporter appends each finished span as a JSON line to a file, for the test
//! to read back ([`SpanLine`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// A message of the trace tests, with two slots in `otel-worker`: `traced_ok`, and
/// `traced_flaky`, which fails its first attempt when `fail_first`.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "traced", retries = 2, backoff = "10ms", backoff_max = "10ms")]
pub struct Traced {
    /// Recorded by `traced_ok`.
    pub n: u64,
    /// Whether `traced_flaky` fails its first attempt.
    pub fail_first: bool,
}

/// One finished span as the exporter writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanLine {
    /// The span's name (`mq.publish`, `mq.process`, `mq.slot`, ...).
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; zeros for a root span.
    pub parent_span_id: String,
    /// `Producer`, `Consumer`, `Internal`, ...
    pub kind: String,
    /// `Unset`, `Ok` or `Error`.
    pub status: String,
    /// Every attribute, as text.
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl SpanLine {
    /// The attribute `key`, or "".
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// Every span written to `path` so far.
pub fn read_spans(path: &Path) -> Vec<SpanLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_terminator('\n')
        .map(|line| serde_json::from_str(line).expect("a span per line"))
        .collect()
}

/// Appends finished spans to a file, one JSON line each (one `write` per line).
#[derive(Debug)]
struct FileExporter {
    path: PathBuf,
    lock: Mutex<()>,
}

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("open the spans file");
        for span in batch {
            let line = SpanLine {
                name: span.name.to_string(),
                trace_id: span.span_context.trace_id().to_string(),
                span_id: span.span_context.span_id().to_string(),
                parent_span_id: span.parent_span_id.to_string(),
                kind: format!("{:?}", span.span_kind),
                status: match span.status {
                    opentelemetry::trace::Status::Unset => "Unset".into(),
                    opentelemetry::trace::Status::Ok => "Ok".into(),
                    opentelemetry::trace::Status::Error { .. } => "Error".into(),
                },
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), text(&kv.value)))
                    .collect(),
            };
            let mut text = serde_json::to_string(&line).expect("a span serializes");
            text.push('\n');
            file.write_all(text.as_bytes()).expect("append a span");
        }
        Ok(())
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Installs `tracing` with the OpenTelemetry layer (and warnings to stderr) for this
/// process; finished spans go to the file `$MQ_TEST_SPANS`. Shut the returned provider down
/// before the process ends.
pub fn install() -> SdkTracerProvider {
    let path = std::env::var_os("MQ_TEST_SPANS").expect("MQ_TEST_SPANS names the spans file");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(FileExporter {
            path: path.into(),
            lock: Mutex::new(()),
        })
        .build();
    let tracer = provider.tracer("mq-tests");
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .init();
    provider
}
