//! The worker of `scripts/bench --deployed`'s `mq_worker_process`: a `main` on
//! `mq::run_worker()` as a newcomer writes it, built with mq's default features (the bench's
//! own binary carries every feature, OpenTelemetry and metrics among them). One no-op slot
//! for the bench's message; `scripts/bench` builds it with
//! `cargo build --release -p mq-core --example bench_worker` and runs it with `--limit N`.

use serde::{Deserialize, Serialize};

/// The bench's message (`Bench` on the queue `bench`).
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "bench")]
struct Bench {
    seq: u64,
    pad: String,
}

#[mq::slot]
async fn noop(_message: Bench) {}

fn main() -> mq::Result<()> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|error| mq::Error::Config(error.to_string()))?;
    runtime.block_on(mq::run_worker())
}
