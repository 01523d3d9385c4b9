//! Throughput of the SQLite transport alone (no worker, no registry): a benchmark, not a
//! test. Run it with
//! `cargo test --release -p mq-tests --test sqlite_bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{PutOptions, Transport};

const N: usize = 20_000;
const BODY: &str = r#"{"v":1,"name":"bench.Noop","id":"0190a5b2-7c1e-7d2a-9f00-000000000000","attempt":1,"dispatched_at":1700000000000,"body":{"n":1}}"#;

fn rate(what: &str, count: usize, took: Duration) {
    eprintln!(
        "{what:<48} {count:>6} in {took:>10.2?}: {:>8.0}/s",
        count as f64 / took.as_secs_f64()
    );
}

async fn drain(queue: Arc<SqliteTransport>, concurrency: usize) -> usize {
    let names = vec!["bench".to_string()];
    let mut done = 0;
    loop {
        let jobs = queue
            .reserve(&names, concurrency, Duration::from_millis(100))
            .await
            .unwrap();
        if jobs.is_empty() {
            return done;
        }
        done += jobs.len();
        let mut acks = tokio::task::JoinSet::new();
        for job in jobs {
            let queue = queue.clone();
            acks.spawn(async move { queue.ack(&job).await.unwrap() });
        }
        while let Some(ack) = acks.join_next().await {
            ack.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        SqliteTransport::open(dir.path().join("mq.db"))
            .await
            .unwrap(),
    );

    // In a task of its own, as a web handler awaits its dispatch.
    let one = queue.clone();
    let took = tokio::spawn(async move {
        let start = Instant::now();
        for _ in 0..N {
            one.put("bench", BODY.into(), PutOptions::default())
                .await
                .unwrap();
        }
        start.elapsed()
    })
    .await
    .unwrap();
    rate("put, one task, one at a time", N, took);

    let start = Instant::now();
    let done = drain(queue.clone(), 64).await;
    rate(
        "reserve 64 + ack each (concurrently)",
        done,
        start.elapsed(),
    );

    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let queue = queue.clone();
        tasks.spawn(async move {
            for _ in 0..N / 64 {
                queue
                    .put("bench", BODY.into(), PutOptions::default())
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
    rate("put, 64 tasks at once", N / 64 * 64, start.elapsed());

    let start = Instant::now();
    let done = drain(queue.clone(), 256).await;
    rate(
        "reserve 256 + ack each (concurrently)",
        done,
        start.elapsed(),
    );
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn idle_cost_and_wake_up_from_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    let consumer = SqliteTransport::open(&path).await.unwrap();
    let producer = SqliteTransport::open(&path).await.unwrap();
    let names = vec!["idle".to_string()];

    let before = cpu_time();
    let idle = Duration::from_secs(5);
    assert!(consumer.reserve(&names, 1, idle).await.unwrap().is_empty());
    let used = cpu_time() - before;
    eprintln!(
        "idle reserve for {idle:?}: {used:?} of CPU ({:.2} % of a core)",
        used.as_secs_f64() / idle.as_secs_f64() * 100.0
    );

    let mut samples = Vec::new();
    for n in 0..50u64 {
        let reserve = consumer.reserve(&names, 1, Duration::from_secs(5));
        let put = async {
            tokio::time::sleep(Duration::from_millis(20 + n % 7)).await;
            producer
                .put("idle", "x".into(), PutOptions::default())
                .await
                .unwrap();
            Instant::now()
        };
        let (jobs, put_at) = tokio::join!(reserve, put);
        samples.push(put_at.elapsed());
        consumer.ack(&jobs.unwrap()[0]).await.unwrap();
    }
    samples.sort();
    eprintln!(
        "wake-up from another connection, 50 samples: median {:?}, 90th {:?}, max {:?}",
        samples[25], samples[45], samples[49]
    );
}
