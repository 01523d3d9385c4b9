//! A real worker process (`test-worker`) against a real beanstalkd: signals, panics, SIGKILL,
//! `--list` and `--help`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mq::transport::Transport;
use mq::Bus;
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::worker_process::{recorded, wait_until_recorded, Work, WorkerProcess};
use serde::{Deserialize, Serialize};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn start_worker(url: &str, record: &Path, args: &[&str]) -> WorkerProcess {
    WorkerProcess::start(WORKER, url, record, args)
}

async fn dispatch(bus: &Bus, range: std::ops::Range<u64>, sleep_ms: u64, panic_on: Option<u64>) {
    for n in range {
        bus.dispatch(Work {
            n,
            sleep_ms,
            panic: Some(n) == panic_on,
        })
        .await
        .unwrap();
    }
}

async fn counts(transport: &dyn Transport) -> (u64, u64, u64) {
    let work = mq_tests::queue_stats(transport, "work").await;
    (work.ready, work.reserved, work.failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_0_and_every_message_is_done_or_back() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&server.url()).await.unwrap();
    dispatch(&bus, 0..300, 40, None).await;

    let mut worker = start_worker(
        &server.url(),
        &record,
        &["--concurrency", "16", "--grace", "10s"],
    );
    wait_until_recorded(&record, 30);
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(10))
        .expect("exit within the grace");
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");

    let done = recorded(&record);
    let unique: BTreeSet<u64> = done.iter().copied().collect();
    assert_eq!(unique.len(), done.len(), "no message ran twice");
    let (ready, reserved, failed) = counts(bus.transport().as_ref()).await;
    assert_eq!(reserved, 0, "nothing stays reserved");
    assert_eq!(failed, 0);
    assert_eq!(
        done.len() as u64 + ready,
        300,
        "every message is done or back in the queue"
    );
    assert!(ready > 0, "the stop came before the queue was empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once_and_the_message_comes_back() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&server.url()).await.unwrap();
    dispatch(&bus, 0..1, 60_000, None).await;

    let mut worker = start_worker(&server.url(), &record, &["--grace", "120s"]);
    let until = Instant::now() + Duration::from_secs(10);
    while counts(bus.transport().as_ref()).await.1 == 0 {
        assert!(
            Instant::now() < until,
            "the worker never reserved the message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the first signal waits for the slot"
    );
    let sent = Instant::now();
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(5))
        .expect("the second signal exits");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(recorded(&record).is_empty());
    // The connection closed with the process, so beanstalkd put the job back at once.
    let (ready, reserved, _) = counts(bus.transport().as_ref()).await;
    assert_eq!((ready, reserved), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_slot_leaves_the_other_messages_processed() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&server.url()).await.unwrap();
    dispatch(&bus, 0..20, 0, Some(7)).await;

    let mut worker = start_worker(&server.url(), &record, &["--limit", "20"]);
    let status = worker
        .wait_for(Duration::from_secs(30))
        .expect("worker stops at --limit");
    assert_eq!(status.code(), Some(0));
    let done: BTreeSet<u64> = recorded(&record).into_iter().collect();
    let expected: BTreeSet<u64> = (0..20).filter(|n| *n != 7).collect();
    assert_eq!(done, expected);
    let failed = bus
        .transport()
        .failure_store()
        .list(None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    let error = &failed[0].failure.slots[0].error;
    assert_eq!(error, "panicked: work item 7 exploded");
}

/// Kills a worker with SIGKILL mid-run; a second worker finishes every message.
async fn sigkill_loses_nothing(url: &str, record: &Path) {
    let bus = Bus::connect(url).await.unwrap();
    dispatch(&bus, 0..200, 20, None).await;

    let mut first = start_worker(url, record, &["--concurrency", "16"]);
    wait_until_recorded(record, 20);
    first.0.kill().expect("SIGKILL");
    first.0.wait().unwrap();

    let mut second = start_worker(url, record, &["--concurrency", "16"]);
    // beanstalkd redelivers when the connection drops; SQLite when the 5 s lease runs out.
    // A message the first worker handled but had not yet acked is handled again: every
    // number must be recorded and the queue must drain, in whichever order the two happen.
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let done: BTreeSet<u64> = recorded(record).into_iter().collect();
        let (ready, reserved, failed) = counts(bus.transport().as_ref()).await;
        if done.len() == 200 && (ready, reserved) == (0, 0) {
            assert_eq!(failed, 0, "nothing goes to the failure store");
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of 200 handled, {ready} ready and {reserved} reserved, 40 s after the kill",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.signal("TERM");
    assert_eq!(
        second
            .wait_for(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    let (ready, reserved, failed) = counts(bus.transport().as_ref()).await;
    assert_eq!((ready, reserved, failed), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_loses_nothing_on_beanstalkd() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    sigkill_loses_nothing(&server.url(), &dir.path().join("record")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    sigkill_loses_nothing(&url, &dir.path().join("record")).await;
    // The file survived the kill and opens.
    let reopened = mq::transport::connect(&url)
        .await
        .expect("the file opens after SIGKILL");
    assert!(reopened.stats().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let bus = Bus::connect(&url).await.unwrap();
    dispatch(&bus, 0..400, 2, None).await;
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|_| start_worker(&url, &record, &["--concurrency", "8"]))
        .collect();
    wait_until_recorded(&record, 400);
    for worker in &mut workers {
        worker.signal("TERM");
        assert_eq!(
            worker
                .wait_for(Duration::from_secs(10))
                .and_then(|s| s.code()),
            Some(0)
        );
    }
    let done = recorded(&record);
    let unique: BTreeSet<u64> = done.iter().copied().collect();
    assert_eq!(
        (unique.len(), done.len()),
        (400, 400),
        "each message handled exactly once"
    );
}

#[test]
fn list_prints_the_routing_table_with_slots_of_every_linked_crate() {
    let output = Command::new(WORKER)
        .arg("--list")
        .env("MQ_URL", "memory://")
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("MESSAGE"), "{table}");
    assert!(
        table.contains("test_worker::nested::deeper::do_work"),
        "{table}"
    );
    assert!(
        table.contains("extra_slots::private::greet_customer"),
        "{table}"
    );
    assert!(table.contains("accounts"), "{table}");
}

#[test]
fn help_documents_every_flag_and_variable() {
    let output = Command::new(WORKER).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in mq_tests::worker_process::HELP_MENTIONS {
        assert!(help.contains(needle), "--help does not mention {needle}");
    }
}

#[test]
fn a_bad_url_is_one_clear_error_and_exit_1() {
    let output = Command::new(WORKER)
        .env("MQ_URL", "beanstalk://no-such-host.invalid:99999")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
}

/// The same wire format as the worker binary's slot-less `HandledElsewhere`.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "work")]
struct HandledElsewhere {
    n: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_slot_is_in_another_worker_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let bus = Bus::connect(&url).await.unwrap();
    bus.dispatch(HandledElsewhere { n: 1 }).await.unwrap();
    let mut worker = start_worker(&url, &record, &["--limit", "1"]);
    let status = worker
        .wait_for(Duration::from_secs(30))
        .expect("stops at --limit");
    assert_eq!(status.code(), Some(0));
    // Put back with a delay for a worker that has the slot, not acked.
    let stats = bus.transport().stats().await.unwrap();
    let work = stats
        .iter()
        .find(|s| s.queue == "work")
        .expect("the queue is listed");
    assert_eq!((work.ready + work.delayed, work.failed), (1, 0), "{work:?}");
}
