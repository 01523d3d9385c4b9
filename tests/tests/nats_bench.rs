//! Throughput of the NATS transport alone (no worker, no registry): a benchmark, not a
//! test. Run it with
//! `cargo test --release -p mq-tests --test nats_bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq::transport::{PutOptions, Transport};
use mq_tests::nats::NatsServer;

const COUNT: usize = 5_000;

fn rate(what: &str, count: usize, took: Duration) {
    let per_second = count as f64 / took.as_secs_f64();
    println!("nats {what}: {count} in {took:.2?} = {per_second:.0}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn nats_dispatch_and_process() {
    let server = NatsServer::start();
    let t: Arc<dyn Transport> = mq::transport::connect(&server.url()).await.unwrap();
    let body = Bytes::from(vec![b'x'; 200]);

    // Dispatch: one put at a time (the stream's ack awaited), then 16 producers at once.
    let started = Instant::now();
    for _ in 0..COUNT {
        t.put("bench", body.clone(), PutOptions::default())
            .await
            .unwrap();
    }
    rate("dispatch, 1 producer", COUNT, started.elapsed());
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (t, body) = (t.clone(), body.clone());
        producers.spawn(async move {
            for _ in 0..COUNT / 16 {
                t.put("bench", body.clone(), PutOptions::default())
                    .await
                    .unwrap();
            }
        });
    }
    while producers.join_next().await.transpose().unwrap().is_some() {}
    rate("dispatch, 16 producers", COUNT / 16 * 16, started.elapsed());

    // Process: reserve batches of 64, ack each.
    let total = COUNT + COUNT / 16 * 16;
    let queues = vec!["bench".to_owned()];
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let jobs = t
            .reserve(&queues, 64, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!jobs.is_empty(), "only {done} of {total}");
        for job in &jobs {
            t.ack(job).await.unwrap();
        }
        done += jobs.len();
    }
    rate("process (reserve 64 + ack)", done, started.elapsed());
}
