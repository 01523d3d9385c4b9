//! A worker whose slot needs state, on the builder with the command line: its slot records
//! each `Work` in the file that its `mq::State<Record>` names (`main` reads it from
//! `$MQ_TEST_RECORD`). The code sets a limit of 1000 and a concurrency of 3: defaults that the
//! `MQ_*` variables and the flags override (see `tests/tests/worker_command_line.rs`). With
//! `$MQ_TEST_SCHEDULE` set, it also has a schedule (for `--schedules`).

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
    let mut builder = mq::Worker::builder();
    if std::env::var_os("MQ_TEST_SCHEDULE").is_some() {
        // A schedule for `--schedules` to list (see `worker_command_line.rs`).
        let nightly = mq::schedule::Schedule::cron("nightly-work", "0 30 3 * * *", |_| Work {
            n: 0,
            sleep_ms: 0,
            panic: false,
        })?
        .in_zone("Europe/Berlin")?;
        builder = builder.schedule(nightly);
    }
    builder
        .state(record)
        .limit(1000)
        .concurrency(3)
        .app_version(env!("CARGO_PKG_VERSION"))
        .command_line()
        .run_and_exit()
        .await
}
