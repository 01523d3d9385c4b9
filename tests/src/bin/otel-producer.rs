//! The producer of the trace tests: within a root span `request` (as a web request's), it
//! dispatches one `Traced` per argument (`N` or `N:fail-first`) on `$MQ_URL`, prints the
//! trace id of `request`, and ends; finished spans go to `$MQ_TEST_SPANS`.

use mq_tests::otel::Traced;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> mq::Result<()> {
    let provider = mq_tests::otel::install();
    let request = tracing::info_span!("request");
    let trace_id = request.context().span().span_context().trace_id();
    let bus = mq::Bus::from_env().await?;
    async {
        for arg in std::env::args().skip(1) {
            let (n, fail_first) = match arg.split_once(':') {
                Some((n, _)) => (n, true),
                None => (arg.as_str(), false),
            };
            let n: u64 = n.parse().expect("a number");
            bus.dispatch(Traced { n, fail_first }).await?;
        }
        Ok::<(), mq::Error>(())
    }
    .instrument(request)
    .await?;
    println!("{trace_id}");
    let _ = provider.shutdown();
    Ok(())
}
