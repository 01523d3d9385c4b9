//! Unique messages under real concurrency: 64 producers in four processes dispatch the
//! same key at once, on SQLite (one file) and on PostgreSQL; exactly one message is queued
//! and every producer gets its id.
//!
//! The child processes are this test binary run again with `MQ_UNIQUE_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const ROLE: &str = "MQ_UNIQUE_CHILD";
const PROCESSES: usize = 4;
const TASKS: usize = 16;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "refunds", unique = "order_id")]
struct Refund {
    order_id: u64,
    producer: String,
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The child's part: `URL START_MS`: connects, waits for the shared start time, then
/// dispatches from 16 tasks at once and prints each answer as `id: ...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let (url, start) = role.split_once(' ').unwrap();
    let start: u128 = start.parse().unwrap();
    let bus = mq::Bus::connect(url).await.unwrap();
    let wait = start.saturating_sub(epoch_ms());
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap())).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let producer = format!("{}-{n}", std::process::id());
                bus.dispatch(Refund {
                    order_id: 7,
                    producer,
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        println!("id: {}", task.await.unwrap());
    }
}

/// Starts four producer processes on `url`, all dispatching at the same instant; checks that
/// all 64 got one id and that one message is queued.
async fn one_of_sixty_four(url: &str) {
    let start = epoch_ms() + 2_000;
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            mq_tests::child_process(ROLE, &format!("{url} {start}"))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for mut child in children {
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success(), "a producer failed");
        ids.extend(
            out.lines()
                .filter_map(|line| line.split_once("id: ").map(|(_, id)| id.trim().to_owned())),
        );
    }
    assert_eq!(ids.len(), PROCESSES * TASKS, "every producer answered");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id for all: {ids:?}");
    let transport = mq::transport::connect(url).await.unwrap();
    let stats = transport.stats().await.unwrap();
    let refunds = stats.iter().find(|s| s.queue == "refunds").expect("queued");
    assert_eq!(refunds.ready, 1, "{stats:?}");
    let job = transport.peek("refunds").await.unwrap().expect("the one");
    assert_eq!(mq::Envelope::decode(&job.body).unwrap().id, ids[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_producers_in_four_processes_queue_one_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    mq::transport::connect(&url).await.unwrap(); // created before the race
    one_of_sixty_four(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_producers_in_four_processes_queue_one_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    let url = db.url("");
    mq::transport::connect(&url).await.unwrap(); // migrated before the race
    one_of_sixty_four(&url).await;
}
