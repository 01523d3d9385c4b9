//! The throughput bench's `--telemetry` and `--signing` sections: what tracing, metrics and
//! signed envelopes cost.
//!
//! `mq_dispatch` and `mq_process` run in child processes (the bench binary again), each in
//! one of the modes, in turns, so that each mode gets the same server and the same moments
//! of the shared machine: `off` (mq built with `otel` and `prometheus`, nothing installed:
//! what every user without a subscriber or recorder pays), `trace` (the
//! `tracing-opentelemetry` layer on an SDK tracer with a batch processor that discards:
//! every span is built, the trace context written and read), `metrics` (the Prometheus
//! recorder installed: every counter and histogram recorded) and `both`; for `--signing`,
//! `off` and `signed` (`MQ_SIGNING_KEYS` set in the child: the bus signs every envelope, the
//! worker checks every signature before decoding).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::{check_drained, line, median, mq_dispatch_in, mq_process_in, ratio, Server, R};

/// The modes of `--telemetry`, `off` first: the ratios divide by it.
pub const MODES: [&str; 4] = ["off", "trace", "metrics", "both"];

/// The modes of `--signing`.
pub const SIGNING_MODES: [&str; 2] = ["off", "signed"];

/// The keys of the `signed` mode: the signing one and an older one, as during a rotation.
pub const SIGNING_KEYS: &str = "k2:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100,\
                                k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The `MQ_SIGNING_KEYS` of a child in `mode`: empty (unset) but in `signed`.
pub fn signing_keys(mode: &str) -> &'static str {
    if mode == "signed" {
        SIGNING_KEYS
    } else {
        ""
    }
}

/// Installs what `mode` (from `MQ_BENCH_TELEMETRY`, default `off`) asks for in this
/// process; the tracer provider to shut down at the end, if any.
pub fn install_from_env() -> Option<SdkTracerProvider> {
    let mode = std::env::var("MQ_BENCH_TELEMETRY").unwrap_or_else(|_| "off".into());
    if mode == "metrics" || mode == "both" {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).expect("the first recorder of the process");
    }
    if mode == "trace" || mode == "both" {
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
            .init();
        return Some(provider);
    }
    None
}

/// An exporter that drops every span: the cost measured is mq's and the layer's, not an
/// exporter's.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// `mq_dispatch` and `mq_process` on beanstalkd in each mode of `modes` (`off` first), in
/// turns, `rounds` times; medians, and each mode's ratio to `off`.
pub fn costs(n: usize, rounds: usize, modes: &[&str]) -> R<()> {
    let server = Server::start()?;
    let url = server.url();
    let runtime = tokio::runtime::Runtime::new()?;
    eprintln!(
        "throughput: {}, beanstalkd on port {}, N = {n}",
        modes.join(" / "),
        server.port
    );
    let mut dispatches = vec![Vec::new(); modes.len()];
    let mut processes = vec![Vec::new(); modes.len()];
    for round in 1..=rounds {
        for (index, mode) in modes.iter().enumerate() {
            let dispatch = mq_dispatch_in(&url, n, mode)?;
            let process = mq_process_in(&url, n, mode)?.per_second;
            runtime.block_on(check_drained(&url, "bench"))?;
            eprintln!(
                "throughput: round {round}, {mode}: mq_dispatch {dispatch:.0}, \
                 mq_process {process:.0} msg/s"
            );
            dispatches[index].push(dispatch);
            processes[index].push(process);
        }
    }
    let dispatch: Vec<f64> = dispatches.iter_mut().map(|v| median(v)).collect();
    let process: Vec<f64> = processes.iter_mut().map(|v| median(v)).collect();
    for (index, mode) in modes.iter().enumerate() {
        line(&format!("mq_dispatch_{mode}"), dispatch[index], "msg/s");
        line(&format!("mq_process_{mode}"), process[index], "msg/s");
    }
    for (index, mode) in modes.iter().enumerate().skip(1) {
        ratio(
            &format!("mq_dispatch_{mode}/off"),
            dispatch[index] / dispatch[0],
        );
        ratio(
            &format!("mq_process_{mode}/off"),
            process[index] / process[0],
        );
    }
    Ok(())
}
