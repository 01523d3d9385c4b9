//! The worker of the trace tests: `run_worker` over the `Traced` slots, with the
//! OpenTelemetry layer of `mq_tests::otel` installed first (finished spans go to
//! `$MQ_TEST_SPANS`). `traced_ok` records `n` in `$MQ_TEST_RECORD` inside a span of its own;
//! `traced_flaky` fails its first attempt of a message that asks it to.

use mq_tests::otel::Traced;

/// A synchronous slot (it runs on the blocking pool) with a span of its own, which must be a
/// child of its `mq.slot`.
#[mq::slot]
fn traced_ok(msg: &Traced) {
    let _work = tracing::info_span!("traced_ok.work").entered();
    if let Some(path) = std::env::var_os("MQ_TEST_RECORD") {
        mq_tests::worker_process::record(path.as_ref(), msg.n);
    }
}

#[mq::slot]
fn traced_flaky(msg: &Traced, ctx: mq::Context) -> Result<(), String> {
    if msg.fail_first && ctx.attempt() == 1 {
        return Err(format!("message {} fails its first attempt", msg.n));
    }
    Ok(())
}

#[tokio::main(worker_threads = 2)]
async fn main() -> mq::Result<()> {
    let provider = mq_tests::otel::install();
    let result = mq::run_worker().await;
    let _ = provider.shutdown();
    result
}
