//! Several processes on one SQLite file: two producer and two consumer processes at once,
//! and a consumer killed with SIGKILL while it holds reservations.
//!
//! The child processes are this test binary run again with `MQ_SQLITE_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{PutOptions, Transport};

const ROLE: &str = "MQ_SQLITE_CHILD";
const DB: &str = "MQ_SQLITE_CHILD_DB";
const STOP: &str = "stop";

fn spawn(role: &str, db: &Path) -> Child {
    mq_tests::child_process(ROLE, role)
        .env(DB, db)
        .spawn()
        .unwrap()
}

/// Waits for a child's line containing `prefix` and returns what follows it (libtest may
/// print its own `test child_process ... ` before it on the same line).
fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once(prefix) {
            return rest.trim().to_owned();
        }
    }
    panic!("child exited without printing `{prefix}`");
}

fn text(body: &[u8]) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

/// The child's part, chosen by `MQ_SQLITE_CHILD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let db = std::env::var(DB).unwrap();
    let queue = SqliteTransport::open(&db).await.unwrap();
    let work = vec!["work".to_string()];
    match role.split(':').collect::<Vec<_>>()[..] {
        ["produce", prefix, count] => {
            for n in 0..count.parse::<usize>().unwrap() {
                let body = format!("{prefix}-{n}");
                queue
                    .put("work", body.into(), PutOptions::default())
                    .await
                    .unwrap();
            }
        }
        // Moves every message of `work` to `done`, until it reserves a stop message.
        ["consume"] => {
            let mut handled = 0;
            let mut stopping = false;
            while !stopping {
                let jobs = queue
                    .reserve(&work, 16, Duration::from_secs(1))
                    .await
                    .unwrap();
                for job in jobs {
                    if &job.body[..] == STOP.as_bytes() {
                        if stopping {
                            queue.release(&job).await.unwrap(); // another consumer's
                        } else {
                            stopping = true;
                            queue.ack(&job).await.unwrap();
                        }
                        continue;
                    }
                    queue
                        .put("done", job.body.clone(), PutOptions::default())
                        .await
                        .unwrap();
                    queue.ack(&job).await.unwrap();
                    handled += 1;
                }
            }
            println!("handled {handled}");
        }
        // Reserves a batch, says so, then works through it slowly until it is killed.
        ["hold"] => mq_tests::hold_until_killed(&queue).await,
        _ => panic!("unknown child role {role}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producer_and_two_consumer_processes_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mq.db");
    let queue = SqliteTransport::open(&db).await.unwrap();
    let per_producer = 1_500;

    let mut consumers = vec![spawn("consume", &db), spawn("consume", &db)];
    let producers = vec![
        spawn(&format!("produce:p0:{per_producer}"), &db),
        spawn(&format!("produce:p1:{per_producer}"), &db),
    ];
    for mut producer in producers {
        assert!(producer.wait().unwrap().success(), "a producer failed");
    }
    // Lowest urgency: reserved only once every real message was.
    let last = PutOptions::default().with_priority(u32::MAX);
    for _ in &consumers {
        queue.put("work", STOP.into(), last).await.unwrap();
    }
    let mut handled = Vec::new();
    for consumer in &mut consumers {
        handled.push(wait_for_line(consumer, "handled").parse::<usize>().unwrap());
        assert!(consumer.wait().unwrap().success(), "a consumer failed");
    }

    let done = queue
        .reserve(&["done".into()], 10_000, Duration::ZERO)
        .await
        .unwrap();
    let bodies: Vec<String> = done.iter().map(|job| text(&job.body)).collect();
    let unique: HashSet<&String> = bodies.iter().collect();
    let expected: HashSet<String> = (0..per_producer)
        .flat_map(|n| [format!("p0-{n}"), format!("p1-{n}")])
        .collect();
    assert_eq!(
        bodies.len(),
        2 * per_producer,
        "some message was handled twice or never"
    );
    assert_eq!(unique.len(), 2 * per_producer);
    assert_eq!(unique, expected.iter().collect());
    assert_eq!(handled.iter().sum::<usize>(), 2 * per_producer);
    assert!(
        handled.iter().all(|&n| n > 0),
        "one consumer did nothing: {handled:?}"
    );
    let stats = queue.stats().await.unwrap();
    let work = stats.iter().find(|s| s.queue == "work");
    assert!(work.is_none(), "left on work: {work:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_holding_reservations_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mq.db");
    let total = 200;
    let ttr = Duration::from_secs(1);
    {
        let queue = SqliteTransport::open(&db).await.unwrap();
        let options = PutOptions::default().with_ttr(ttr);
        for n in 0..total {
            queue
                .put("work", format!("m-{n}").into(), options)
                .await
                .unwrap();
        }
    }

    let mut child = spawn("hold", &db);
    let held: usize = wait_for_line(&mut child, "reserved").parse().unwrap();
    assert_eq!(held, 50);
    tokio::time::sleep(Duration::from_millis(150)).await; // mid-run: a few acked, most held
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let killed_at = Instant::now();

    // A fresh connection: the file opens after the kill.
    let queue = SqliteTransport::open(&db).await.unwrap();
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut redelivered = 0;
    while seen.len() + done_count(&queue).await < total {
        let jobs = queue
            .reserve(&["work".into()], 64, Duration::from_secs(3))
            .await
            .unwrap();
        assert!(
            !jobs.is_empty() || killed_at.elapsed() < ttr * 5,
            "messages missing after the lease: {} of {total} seen",
            seen.len() + done_count(&queue).await
        );
        for job in jobs {
            if job.deliveries > 1 {
                redelivered += 1;
            }
            seen.insert(text(&job.body), job.deliveries);
            queue.ack(&job).await.unwrap();
        }
    }
    let done = queue
        .reserve(&["done".into()], 1_000, Duration::ZERO)
        .await
        .unwrap();
    let done: HashSet<String> = done.iter().map(|job| text(&job.body)).collect();
    let all: HashSet<String> = seen.keys().cloned().chain(done.iter().cloned()).collect();
    assert_eq!(
        all.len(),
        total,
        "every message was handled, by the child or after it"
    );
    assert!(
        redelivered > 0,
        "the killed child held reservations that came back"
    );
    assert!(
        redelivered + done.len() >= held,
        "what the child held was handed out again"
    );
    eprintln!(
        "child finished {} before SIGKILL; {redelivered} came back after its lease",
        done.len()
    );
}

async fn done_count(queue: &SqliteTransport) -> usize {
    let stats = queue.stats().await.unwrap();
    stats
        .iter()
        .find(|s| s.queue == "done")
        .map_or(0, |s| usize::try_from(s.ready + s.reserved).unwrap())
}
