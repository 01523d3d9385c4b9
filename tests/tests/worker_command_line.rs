//! A worker binary on the builder with state and the command line (`state-worker`): its
//! `--help`, `--version` and `--list`, and the precedence of a flag over its `MQ_*` variable
//! over what the code set. Real processes on a temporary SQLite file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mq::Bus;
use mq_tests::worker_process::{recorded, Work, WorkerProcess, HELP_MENTIONS};

const STATE_WORKER: &str = env!("CARGO_BIN_EXE_state-worker");
const TEST_WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn output(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary)
        .args(args)
        .env("MQ_URL", "memory://")
        .env_remove("MQ_LIMIT")
        .env_remove("MQ_CONCURRENCY")
        .output()
        .expect("run the worker");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    (output.status.code(), stdout)
}

#[test]
fn help_lists_the_flags_the_variables_and_the_codes_defaults() {
    let (code, help) = output(STATE_WORKER, &["--help"]);
    assert_eq!(code, Some(0));
    let this_worker = [
        "Usage: state-worker",
        // What the code set, shown as the defaults an operator may override.
        "Stop after handling N messages [default: 1000]",
        "Messages whose slots run at once [default: 3]",
    ];
    for needle in HELP_MENTIONS.iter().chain(&this_worker) {
        assert!(
            help.contains(needle),
            "--help does not mention {needle}:\n{help}"
        );
    }
}

#[test]
fn version_names_the_application() {
    let (code, version) = output(STATE_WORKER, &["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        version,
        format!("state-worker {}\n", env!("CARGO_PKG_VERSION"))
    );
    // run_worker() cannot know the application's version: the name, and mq's.
    let (code, version) = output(TEST_WORKER, &["--version"]);
    assert_eq!(code, Some(0));
    assert!(version.starts_with("test-worker (mq "), "{version}");
}

#[test]
fn list_prints_the_routing_table_and_exits_0_without_connecting() {
    let output = Command::new(STATE_WORKER)
        .arg("--list")
        .env("MQ_URL", "beanstalk://127.0.0.1:1")
        .output()
        .expect("run the worker");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(table.starts_with("MESSAGE"), "{table}");
    assert!(table.contains("state_worker::record_work"), "{table}");
    assert!(table.contains("work"), "{table}");
}

#[test]
fn schedules_prints_each_schedule_with_its_next_tick_and_exits_0_without_connecting() {
    let output = Command::new(STATE_WORKER)
        .arg("--schedules")
        .env("MQ_URL", "beanstalk://127.0.0.1:1")
        .env("MQ_TEST_SCHEDULE", "1")
        .output()
        .expect("run the worker");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SCHEDULE"), "{table}");
    assert!(lines[1].starts_with("nightly-work"), "{table}");
    assert!(
        lines[1].contains("cron \"0 30 3 * * *\" in Europe/Berlin"),
        "{table}"
    );
    // 03:30 in Berlin is 01:30 or 02:30 UTC.
    assert!(
        lines[1].contains("T01:30:00Z") || lines[1].contains("T02:30:00Z"),
        "{table}"
    );
}

#[test]
fn a_bad_flag_exits_2() {
    let output = Command::new(STATE_WORKER)
        .arg("--limit=many")
        .output()
        .expect("run the worker");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(stderr.contains("--limit"), "{stderr}");
}

/// Starts the worker on `url` with `args` and `env`, recording to `record`; waits for it to
/// stop on its own (at a limit) and returns its exit code.
fn run_until_it_stops(url: &str, record: &Path, args: &[&str], env: &[(&str, &str)]) -> i32 {
    let mut command = Command::new(STATE_WORKER);
    command
        .args(args)
        .env("MQ_URL", url)
        .env("MQ_TEST_RECORD", record)
        .env("RUST_LOG", "warn")
        .env_remove("MQ_LIMIT")
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut worker = WorkerProcess(command.spawn().expect("start the worker"));
    let status = worker
        .wait_for(Duration::from_secs(30))
        .expect("the worker stops at its limit, not at the code's 1000");
    status.code().expect("an exit code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_beats_its_variable_which_beats_the_code_and_the_slot_gets_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let bus = Bus::connect(&url).await.unwrap();
    for n in 0..10 {
        let work = Work {
            n,
            sleep_ms: 0,
            panic: false,
        };
        bus.dispatch(work).await.unwrap();
    }

    // --limit 2 over MQ_LIMIT=5 over the code's 1000; --limit's exit code is 0.
    let code = run_until_it_stops(&url, &record, &["--limit", "2"], &[("MQ_LIMIT", "5")]);
    assert_eq!(code, 0);
    // The slot writes to the file its mq::State<Record> names, and to no other.
    assert_eq!(recorded(&record).len(), 2, "the slot got its state");

    // MQ_LIMIT=3 over the code's 1000.
    let code = run_until_it_stops(&url, &record, &[], &[("MQ_LIMIT", "3")]);
    assert_eq!(code, 0);
    assert_eq!(recorded(&record).len(), 5);
    let work = mq_tests::queue_stats(bus.transport().as_ref(), "work").await;
    assert_eq!((work.ready, work.reserved), (5, 0));
}
