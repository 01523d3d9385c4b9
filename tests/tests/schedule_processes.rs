//! Recurring messages on several workers: three worker processes run one schedule ticking
//! every second for a minute of ticks; each tick is dispatched exactly once (one message id per tick, every tick
//! there), and still so after one of them is killed with SIGKILL. On SQLite (one file) and
//! on PostgreSQL.
//!
//! The workers are this test binary run again with `MQ_SCHEDULE_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq::schedule::Schedule;
use serde::{Deserialize, Serialize};

const ROLE: &str = "MQ_SCHEDULE_CHILD";
const RECORD: &str = "MQ_SCHEDULE_RECORD";

/// One tick's message; a short TTR, so that what a killed worker held comes back soon.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "ticks", ttr = "2s")]
struct Tick {
    at_ms: u64,
}

/// Appends `tick-ms message-id` to the record file.
#[mq::slot]
fn record(msg: &Tick, ctx: mq::Context) {
    mq_tests::append_line(RECORD, &format!("{} {}", msg.at_ms, ctx.id()));
}

fn ms(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The child's part: a worker on the URL of `MQ_SCHEDULE_CHILD` with the schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(url) = std::env::var(ROLE) else {
        return;
    };
    let every_second = Schedule::every("ticks", Duration::from_secs(1), |tick| Tick {
        at_ms: ms(tick),
    })
    .unwrap();
    mq::Worker::builder()
        .url(&url)
        .registry(mq::Registry::from_slots([mq::SlotDef::of::<record>()]).unwrap())
        .schedule(every_second)
        .poll_interval(Duration::from_millis(100))
        .run()
        .await
        .unwrap();
}

fn worker(url: &str, record: &std::path::Path) -> Child {
    mq_tests::spawn_recording_child(ROLE, url, RECORD, record)
}

/// Three workers for 68 s, one of them killed with SIGKILL after 20 s; every tick from
/// 3 s after the start to 5 s before the end (a minute of ticks) was handled, each with one
/// message id.
async fn each_tick_once(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let started = SystemTime::now();
    let mut workers: Vec<Child> = (0..3).map(|_| worker(url, &record)).collect();
    tokio::time::sleep(Duration::from_secs(20)).await;
    mq_tests::sigkill(&mut workers[0]);
    tokio::time::sleep(Duration::from_secs(48)).await;
    let ended = SystemTime::now();
    for child in &mut workers[1..] {
        mq_tests::sigkill(child);
    }
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    let mut ids: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let (tick, id) = line.split_once(' ').unwrap();
        ids.entry(tick.parse().unwrap())
            .or_default()
            .insert(id.to_owned());
    }
    for (tick, ids) in &ids {
        assert_eq!(
            ids.len(),
            1,
            "tick {tick} was dispatched {} times: {ids:?}",
            ids.len()
        );
        assert_eq!(tick % 1000, 0, "ticks are whole seconds");
    }
    let first = ms(started + Duration::from_secs(3)).div_ceil(1000) * 1000;
    let last = ms(ended - Duration::from_secs(5)) / 1000 * 1000;
    let missing: Vec<u64> = (first..=last)
        .step_by(1000)
        .filter(|tick| !ids.contains_key(tick))
        .collect();
    assert!(
        missing.is_empty(),
        "ticks never handled: {missing:?} (of {first}..={last})"
    );
    assert!(last - first >= 59_000, "a minute of ticks, across the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_dispatch_each_tick_once_even_after_a_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    mq::transport::connect(&url).await.unwrap(); // created before the workers race
    each_tick_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_dispatch_each_tick_once_even_after_a_sigkill_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    let url = db.url("");
    mq::transport::connect(&url).await.unwrap(); // migrated before the workers race
    each_tick_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_on_beanstalkd_is_refused_at_start_up() {
    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let every = Schedule::every("ticks", Duration::from_secs(1), |_| Tick { at_ms: 0 }).unwrap();
    let error = mq::Worker::builder()
        .url(server.url())
        .registry(mq::Registry::from_slots([mq::SlotDef::of::<record>()]).unwrap())
        .schedule(every)
        .handle_signals(false)
        .build()
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("schedule `ticks`"), "{text}");
    assert!(
        text.contains("use a backend that can: sqlite, postgres, memory"),
        "{text}"
    );
}

/// A message type with its own schedule, checked at compile time.
#[derive(mq::Message, Serialize, Deserialize, Default)]
#[message(
    queue = "beats",
    schedule = "* * * * * *",
    schedule_zone = "Europe/Berlin"
)]
struct Beat;

#[derive(Default)]
struct Beats {
    count: std::sync::atomic::AtomicU32,
}

#[mq::slot]
fn beat(_msg: &Beat, beats: mq::State<Beats>) {
    beats
        .count
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_its_own_schedule_is_run_by_the_worker_that_handles_it() {
    let beats = std::sync::Arc::new(Beats::default());
    let worker = mq::Worker::builder()
        .url("memory://own-schedule")
        .registry(mq::Registry::from_slots([mq::SlotDef::of::<beat>()]).unwrap())
        .state_arc(beats.clone())
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
        .time_limit(Duration::from_millis(2500))
        .build()
        .await
        .unwrap();
    assert_eq!(worker.schedules()[0].name(), "Beat");
    assert_eq!(
        worker.schedules()[0].describe(),
        "cron \"* * * * * *\" in Europe/Berlin"
    );
    worker.run().await.unwrap();
    let handled = beats.count.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&handled), "{handled} ticks in 2.5 s");
}
