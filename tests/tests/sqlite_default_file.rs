//! With `MQ_URL` unset, each process uses `mq.db` in its own working directory: a worker
//! and a producer started in different folders use different files. Both say, at `info`,
//! which file they opened, by its absolute path.
//!
//! The producer is this test binary run again with `MQ_DEFAULT_FILE_CHILD` set (its test
//! `child_process` connects the bus and is a no-op in a normal run); the worker is the real
//! `test-worker`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mq_tests::worker_process::{wait_for_log, WorkerProcess};

const ROLE: &str = "MQ_DEFAULT_FILE_CHILD";

/// What the log must name: the file in `dir`, with its folder's links resolved.
fn default_file_in(dir: &Path) -> String {
    let folder = dir.canonicalize().expect("the temp dir resolves");
    format!("sqlite://{}", folder.join("mq.db").display())
}

/// The producer's part: connect the bus from the environment, as `mq::dispatch` does.
#[tokio::test]
async fn child_process() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    mq::init_logging();
    mq::Bus::from_env().await.expect("the bus connects");
}

#[test]
fn a_producer_names_the_file_it_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = mq_tests::child_process(ROLE, "produce")
        .current_dir(dir.path())
        .env_remove("MQ_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .output()
        .expect("run the producer");
    assert!(output.status.success(), "{output:?}");
    let log = String::from_utf8_lossy(&output.stderr);
    let line = log
        .lines()
        .find(|line| line.contains("mq bus connected"))
        .unwrap_or_else(|| panic!("no `mq bus connected` line in:\n{log}"));
    let file = default_file_in(dir.path());
    assert!(line.contains(&file), "{file} not named in: {line}");
}

#[test]
fn a_worker_names_the_file_it_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("worker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_test-worker"))
        .current_dir(dir.path())
        .env_remove("MQ_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .spawn()
        .expect("start the test worker");
    let _worker = WorkerProcess(child);
    let seen = wait_for_log(&log, "mq worker started", Duration::from_secs(30));
    let line = seen
        .lines()
        .find(|line| line.contains("mq worker started"))
        .unwrap_or_default();
    let file = default_file_in(dir.path());
    assert!(line.contains(&file), "{file} not named in: {line}");
}
