//! Many tasks putting and reserving on one SQLite file at once: every message is handed out
//! exactly once, and concurrent puts are committed in groups.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{PutOptions, Transport};
use tokio::sync::Mutex;

const PRODUCERS: usize = 8;
const PER_PRODUCER: usize = 1_000;
const CONSUMERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_put_and_reserve_and_every_message_comes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        SqliteTransport::open(dir.path().join("mq.db"))
            .await
            .unwrap(),
    );
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let total = PRODUCERS * PER_PRODUCER;
    let start = Instant::now();

    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let queue = queue.clone();
        let seen = seen.clone();
        consumers.push(tokio::spawn(async move {
            let names = vec!["a".to_string(), "b".to_string()];
            loop {
                let jobs = queue
                    .reserve(&names, 16, Duration::from_millis(500))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    if seen.lock().await.len() >= total {
                        return;
                    }
                    continue;
                }
                for job in &jobs {
                    queue.ack(job).await.unwrap();
                }
                let mut seen = seen.lock().await;
                seen.extend(
                    jobs.iter()
                        .map(|job| String::from_utf8(job.body.to_vec()).unwrap()),
                );
            }
        }));
    }

    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let queue = queue.clone();
        producers.push(tokio::spawn(async move {
            for n in 0..PER_PRODUCER {
                let name = if n % 2 == 0 { "a" } else { "b" };
                let body = format!("{producer}-{n}");
                queue
                    .put(name, body.into(), PutOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let put_took = start.elapsed();
    for consumer in consumers {
        tokio::time::timeout(Duration::from_secs(60), consumer)
            .await
            .unwrap()
            .unwrap();
    }
    let took = start.elapsed();

    let seen = seen.lock().await;
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        seen.len(),
        total,
        "handed out {} times for {total} messages",
        seen.len()
    );
    assert_eq!(unique.len(), total, "some messages came out twice");
    assert!(
        queue.stats().await.unwrap().is_empty(),
        "{:?}",
        queue.stats().await.unwrap()
    );
    eprintln!(
        "{total} messages: all put in {put_took:?}, all put and acked in {took:?} ({:.0}/s)",
        total as f64 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transports_on_one_file_share_the_work_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    let first = SqliteTransport::open(&path).await.unwrap();
    let second = SqliteTransport::open(&path).await.unwrap();
    for n in 0..2_000 {
        let to = if n % 2 == 0 { &first } else { &second };
        to.put("q", format!("{n}").into(), PutOptions::default())
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(drain(&first), drain(&second));
    let all: HashSet<String> = a.iter().chain(&b).cloned().collect();
    assert_eq!(a.len() + b.len(), 2_000);
    assert_eq!(all.len(), 2_000);
}

async fn drain(queue: &SqliteTransport) -> Vec<String> {
    let names = vec!["q".to_string()];
    let mut got = Vec::new();
    loop {
        let jobs = queue
            .reserve(&names, 32, Duration::from_millis(200))
            .await
            .unwrap();
        if jobs.is_empty() {
            return got;
        }
        for job in jobs {
            queue.ack(&job).await.unwrap();
            got.push(String::from_utf8(job.body.to_vec()).unwrap());
        }
    }
}
