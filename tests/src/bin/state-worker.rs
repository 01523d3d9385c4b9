//! A worker whose slot needs state, on the builder with the command line: its slot records
//! each `Work` in the file that its `mq::State<Record>` names (`main` reads it from
//! `$MQ_TEST_RECORD`). The code sets a limit of 1000 and a concurrency of 3: defaults that the
//! `MQ_*` variables and the flags override (see `tests/tests/worker_command_line.rs`).

use std::path::PathBuf;

use mq_tests::worker_process::{record, Work};

/// The slot's state: where it records what it handled.
struct Record {
    path: Option<PathBuf>,
}

#[mq::slot]
fn record_work(msg: &Work, state: mq::State<Record>) {
    if let Some(path) = &state.path {
        record(path, msg.n);
    }
}

#[tokio::main]
async fn main() -> mq::Result<()> {
    let record = Record {
        path: std::env::var_os("MQ_TEST_RECORD").map(PathBuf::from),
    };
    mq::Worker::builder()
        .state(record)
        .limit(1000)
        .concurrency(3)
        .app_version(env!("CARGO_PKG_VERSION"))
        .command_line()
        .run_and_exit()
        .await
}
