//! Per-key concurrency limits under real concurrency: three worker processes handle 200
//! messages dispatched with `.concurrency_key("customer-7", 2)`; the slots record when they
//! start and end, and at no instant do more than two run. On SQLite (one file) and on
//! PostgreSQL. A held-back message costs no attempt: every message runs on attempt 1.
//!
//! A slot that runs past its TTR keeps its permit: the keep-alive renews it with the
//! reservation, so a limit of 1 still holds with slots of 2.5 s and a TTR of 1 s.
//!
//! And a rate limit of 50 a second on three workers holds within 10% over 10 s.
//!
//! The workers are this test binary run again with `MQ_LIMIT_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const ROLE: &str = "MQ_LIMIT_CHILD";
const RECORD: &str = "MQ_LIMIT_RECORD";
const COUNT: u64 = 200;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "api-calls", retries = 0)]
struct CallApi {
    n: u64,
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Records `n attempt start-us end-us` after a short call.
#[mq::slot]
async fn call_api(msg: CallApi, ctx: mq::Context) {
    let start = now_us();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let end = now_us();
    let line = format!("{} {} {start} {end}", msg.n, ctx.attempt());
    mq_tests::append_line(RECORD, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(url) = std::env::var(ROLE) else {
        return;
    };
    mq::Worker::builder()
        .url(&url)
        .registry(
            mq::Registry::from_slots([
                mq::SlotDef::of::<call_api>(),
                mq::SlotDef::of::<geocode>(),
                mq::SlotDef::of::<long_call>(),
            ])
            .unwrap(),
        )
        .concurrency(8)
        .poll_interval(Duration::from_millis(50))
        .run()
        .await
        .unwrap();
}

fn worker(url: &str, record: &std::path::Path) -> Child {
    mq_tests::spawn_recording_child(ROLE, url, RECORD, record)
}

/// Runs `workers` worker processes until the record holds `count` distinct messages;
/// its lines.
async fn handled(url: &str, workers: usize, count: u64, within: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let mut workers: Vec<Child> = (0..workers).map(|_| worker(url, &record)).collect();
    let until = Instant::now() + within;
    let lines = loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        let done: BTreeSet<u64> = text
            .lines()
            .map(|line| line.split(' ').next().unwrap().parse().unwrap())
            .collect();
        if done.len() as u64 == count {
            break text;
        }
        assert!(
            Instant::now() < until,
            "{} of {count} handled in time",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for child in &mut workers {
        mq_tests::sigkill(child);
    }
    lines
}

/// The most slots that ran at once, from the record's start and end times; every run on
/// attempt 1.
fn most_at_once(lines: &str) -> i32 {
    let mut runs = Vec::new();
    for line in lines.lines() {
        let fields: Vec<u128> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[1], 1, "held back costs no attempt: {line}");
        runs.push((fields[2], fields[3]));
    }
    mq_tests::most_at_once(&runs)
}

async fn never_more_than_two(url: &str) {
    let bus = mq::Bus::connect(url).await.unwrap();
    for n in 0..COUNT {
        bus.dispatch(CallApi { n })
            .concurrency_key("customer-7", 2)
            .await
            .unwrap();
    }
    let lines = handled(url, 3, COUNT, Duration::from_secs(40)).await;
    let most = most_at_once(&lines);
    assert!(most <= 2, "{most} slots of one key ran at once");
    assert_eq!(most, 2, "the limit is used");
}

/// A call that takes 2.5 s, with a TTR of 1 s: its reservation and its permit live on
/// the keep-alive's renewals.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "long-calls", ttr = "1s", retries = 0)]
struct LongCall {
    n: u64,
}

#[mq::slot]
async fn long_call(msg: LongCall, ctx: mq::Context) {
    let start = now_us();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let line = format!("{} {} {start} {}", msg.n, ctx.attempt(), now_us());
    mq_tests::append_line(RECORD, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_longer_than_its_ttr_keeps_its_permit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let bus = mq::Bus::connect(&url).await.unwrap();
    for n in 0..3 {
        bus.dispatch(LongCall { n })
            .concurrency_key("slow-api", 1)
            .await
            .unwrap();
    }
    let lines = handled(&url, 2, 3, Duration::from_secs(30)).await;
    let most = most_at_once(&lines);
    assert_eq!(
        most, 1,
        "{most} slots of a key limited to 1 ran at once:\n{lines}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_of_two_holds_across_three_workers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    never_more_than_two(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_of_two_holds_across_three_workers_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    never_more_than_two(&db.url("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_on_beanstalkd_or_of_zero_is_refused_at_dispatch() {
    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let bus = mq::Bus::connect(&server.url()).await.unwrap();
    let error = bus
        .dispatch(CallApi { n: 1 })
        .concurrency_key("customer-7", 2)
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("use a backend that can: sqlite, postgres, memory"),
        "{text}"
    );
    let memory = mq::Bus::connect("memory://key-limit-zero").await.unwrap();
    let zero = memory
        .dispatch(CallApi { n: 1 })
        .concurrency_key("k", 0)
        .await;
    assert!(zero.unwrap_err().to_string().contains("limit of 0"));
}

/// A geocoding call limited to 50 a second; records when it started.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "geocode", retries = 0)]
struct Geocode {
    n: u64,
}

#[mq::slot]
fn geocode(msg: &Geocode, ctx: mq::Context) {
    let line = format!("{} {} {} 0", msg.n, ctx.attempt(), now_us());
    mq_tests::append_line(RECORD, &line);
}

/// 700 messages limited to 50 a second on three workers: over the 10 s after the first
/// second, 500 start, within 10%; and no window of 950 ms sees more than 50 (the permits'
/// clock is read at the start of the writer's batch, a few milliseconds before a slot
/// records its start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_of_fifty_per_second_holds_within_ten_percent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let record = dir.path().join("record");
    let bus = mq::Bus::connect(&url).await.unwrap();
    let calls = (0..700).map(|n| bus.dispatch(Geocode { n }).rate_limit("geo-api", 50));
    for call in calls {
        call.await.unwrap();
    }
    let mut workers: Vec<Child> = (0..3)
        .map(|_| mq_tests::spawn_recording_child(ROLE, &url, RECORD, &record))
        .collect();
    tokio::time::sleep(Duration::from_secs(13)).await;
    for child in &mut workers {
        mq_tests::sigkill(child);
    }
    let text = std::fs::read_to_string(&record).unwrap();
    let mut starts: Vec<u128> = Vec::new();
    for line in text.lines() {
        let fields: Vec<u128> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[1], 1, "held back costs no attempt: {line}");
        starts.push(fields[2]);
    }
    starts.sort_unstable();
    let first = starts[0];
    let from = first + 1_000_000;
    let to = from + 10_000_000;
    let in_ten_seconds = starts.iter().filter(|&&s| s >= from && s < to).count();
    println!("{in_ten_seconds} started in the 10 s at a limit of 50/s");
    assert!(
        (450..=550).contains(&in_ten_seconds),
        "{in_ten_seconds} started in 10 s at 50/s"
    );
    for (i, start) in starts.iter().enumerate() {
        let window = starts[i..]
            .iter()
            .take_while(|&&s| s < start + 950_000)
            .count();
        assert!(window <= 50, "{window} started within 950 ms");
    }
}

/// Held-back messages are not counted by `--limit`: a worker with a limit of 3 and room
/// for four, on messages of one key limited to 1, handles three and stops (it once
/// reserved three, held two back, and waited for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_limit_counts_handled_messages_not_held_back_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let record = dir.path().join("record");
    std::env::set_var(RECORD, &record);
    let bus = mq::Bus::connect(&url).await.unwrap();
    for n in 0..6 {
        bus.dispatch(CallApi { n })
            .concurrency_key("one-at-a-time", 1)
            .await
            .unwrap();
    }
    let worker = mq::Worker::builder()
        .url(&url)
        .registry(mq::Registry::from_slots([mq::SlotDef::of::<call_api>()]).unwrap())
        .concurrency(4)
        .limit(3)
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("the worker stops after three handled")
        .unwrap();
    let lines = std::fs::read_to_string(&record).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}
