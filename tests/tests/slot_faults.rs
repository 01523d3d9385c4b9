//! Slots that never return, in a real worker process on a real beanstalkd: a synchronous
//! slot that blocks its thread, an async slot that never yields. The worker keeps their
//! messages reserved while they run (never handed to a second run), counts their timeout,
//! and exits on SIGTERM although their threads cannot be stopped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mq::Bus;
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::queue_stats;
use mq_tests::worker_process::{
    recorded, wait_until_recorded, Blocks, BlocksWithoutTimeout, NeverYields,
    NeverYieldsWithoutTimeout, WorkerProcess,
};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Longer than two TTRs (2 s) of the stuck messages: time enough to be handed out again if
/// the reservation were not kept alive.
const TWO_TTRS_AND_MORE: Duration = Duration::from_secs(5);

/// How long a worker may take to exit after SIGTERM with `--grace 1s`: the grace, the
/// hand-back, and a loaded machine.
const EXIT_AFTER_TERM: Duration = Duration::from_secs(6);

/// Waits until the failure store of `stuck` holds `count` entries; their reasons.
async fn wait_for_failed(bus: &Bus, count: usize, limit: Duration) -> Vec<String> {
    let until = Instant::now() + limit;
    loop {
        let failed = bus
            .transport()
            .failure_store()
            .list(Some("stuck"), 100)
            .await
            .expect("failed list");
        if failed.len() >= count {
            return failed.into_iter().map(|f| f.failure.reason).collect();
        }
        assert!(
            Instant::now() < until,
            "the failure store has {} entries after {limit:?}",
            failed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM; the worker must exit with 0 within [`EXIT_AFTER_TERM`].
fn terminate(worker: &mut WorkerProcess) -> Duration {
    let asked = Instant::now();
    worker.signal("TERM");
    let status = worker
        .wait_for(EXIT_AFTER_TERM)
        .unwrap_or_else(|| panic!("the worker did not exit within {EXIT_AFTER_TERM:?} of SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status}");
    asked.elapsed()
}

/// A worker process consuming `stuck` (`--grace 1s`) on a beanstalkd of its own, given one
/// stuck message. Fields drop in order: the worker goes before its server.
struct Stuck {
    worker: WorkerProcess,
    bus: Bus,
    record: PathBuf,
    _dir: tempfile::TempDir,
    _server: Beanstalkd,
}

async fn dispatch_stuck(message: impl mq::Message) -> Stuck {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let worker = WorkerProcess::start(
        WORKER,
        &server.url(),
        &record,
        &["--queues", "stuck", "--grace", "1s"],
    );
    let bus = Bus::new(
        mq::transport::connect(&server.url())
            .await
            .expect("connect"),
    );
    bus.dispatch(message).await.expect("dispatch");
    Stuck {
        worker,
        bus,
        record,
        _dir: dir,
        _server: server,
    }
}

/// A stuck slot with a timeout: it times out once, its message fails (`retries = 0`) and
/// never runs again, and SIGTERM still ends the worker.
async fn times_out_once_and_the_worker_still_exits(message: impl mq::Message, n: u64) {
    let mut stuck = dispatch_stuck(message).await;
    let (bus, record) = (stuck.bus.clone(), stuck.record.clone());
    let reasons = wait_for_failed(&bus, 1, Duration::from_secs(15)).await;
    assert!(reasons[0].contains("timed out after 1s"), "{reasons:?}");
    tokio::time::sleep(TWO_TTRS_AND_MORE).await;
    assert_eq!(recorded(&record), vec![n], "the slot ran more than once");
    let took = terminate(&mut stuck.worker);
    eprintln!("exited {took:?} after SIGTERM");
}

/// A stuck slot without a timeout: its message stays reserved (kept alive), is never handed
/// out again, and goes back to ready when SIGTERM's grace runs out.
async fn keeps_its_message_and_goes_back_on_sigterm(message: impl mq::Message, n: u64) {
    let mut stuck = dispatch_stuck(message).await;
    let (bus, record) = (stuck.bus.clone(), stuck.record.clone());
    wait_until_recorded(&record, 1);
    tokio::time::sleep(TWO_TTRS_AND_MORE).await;
    assert_eq!(recorded(&record), vec![n], "handed out again while it ran");
    assert_eq!(
        queue_stats(bus.transport().as_ref(), "stuck")
            .await
            .reserved,
        1
    );
    terminate(&mut stuck.worker);
    let stats = queue_stats(bus.transport().as_ref(), "stuck").await;
    assert_eq!((stats.ready, stats.reserved), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_slot_past_its_timeout_fails_once_and_the_worker_still_exits() {
    times_out_once_and_the_worker_still_exits(Blocks { n: 1 }, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_slot_without_timeout_keeps_its_message_and_goes_back_on_sigterm() {
    keeps_its_message_and_goes_back_on_sigterm(BlocksWithoutTimeout { n: 2 }, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_slot_that_never_yields_times_out_once_and_the_worker_still_exits() {
    times_out_once_and_the_worker_still_exits(NeverYields { n: 3 }, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_slot_that_never_yields_keeps_its_message_alive_and_goes_back_on_sigterm() {
    keeps_its_message_and_goes_back_on_sigterm(NeverYieldsWithoutTimeout { n: 4 }, 4).await;
}
