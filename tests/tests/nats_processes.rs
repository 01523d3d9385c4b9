//! Real processes on NATS: a worker killed with SIGKILL (its items come back after the
//! consumers' AckWait), and a three-node cluster with replicas 3 that loses a node mid-run.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq::transport::PutOptions;
use mq::Bus;
use mq_tests::nats::{NatsCluster, NatsServer};
use mq_tests::worker_process::{recorded, Work, WorkerProcess};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn start_worker(url: &str, record: &Path) -> WorkerProcess {
    WorkerProcess::start(WORKER, url, record, &["--concurrency", "16"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_loses_nothing_its_items_come_back_after_ack_wait() {
    let server = NatsServer::start();
    let url = format!("{}?ack_wait=3s", server.url());
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&url).await.unwrap();
    for n in 0..200 {
        bus.dispatch(Work {
            n,
            sleep_ms: 200,
            panic: false,
        })
        .await
        .unwrap();
    }
    let mut first = start_worker(&url, &record);
    let until = Instant::now() + Duration::from_secs(30);
    while recorded(&record).len() < 20 {
        assert!(
            Instant::now() < until,
            "the first worker handled too little"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.0.kill().expect("SIGKILL");
    first.0.wait().unwrap();
    let killed_at = Instant::now();
    let done_by_first = recorded(&record).len();
    assert!(
        done_by_first < 200,
        "the first worker must die holding messages"
    );

    let _second = start_worker(&url, &record);
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let done: BTreeSet<u64> = recorded(&record).into_iter().collect();
        if done.len() == 200 {
            break;
        }
        assert!(
            Instant::now() < until,
            "only {} of 200 handled after the kill",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the first worker held came back only after AckWait (3 s).
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "{:?}",
        killed_at.elapsed()
    );
    let stats = bus.transport().stats().await.unwrap();
    let work = stats.iter().find(|s| s.queue == "work").expect("listed");
    assert_eq!(
        (work.ready, work.delayed, work.failed),
        (0, 0, 0),
        "{work:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_replicas_3_loses_a_node_mid_run_and_no_message() {
    const TOTAL: usize = 300;
    let mut cluster = NatsCluster::start();
    let url = format!("{}?replicas=3&ack_wait=5s", cluster.url());
    // The meta leader needs a moment after start: creating the stream is retried.
    let t = mq::transport::connect(&url).await.unwrap();
    let opts = PutOptions::new(1, Duration::ZERO, Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(30);
    while let Err(error) = t.put("ha", Bytes::from("0"), opts).await {
        assert!(Instant::now() < until, "no replicated stream: {error}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let producer = {
        let t = t.clone();
        tokio::spawn(async move {
            for n in 1..TOTAL {
                // A put during the fail-over may fail (then it is sent again) or be stored
                // twice: the consumer counts distinct bodies.
                while t.put("ha", Bytes::from(n.to_string()), opts).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen = BTreeSet::new();
    let mut killed = false;
    let until = Instant::now() + Duration::from_secs(90);
    while seen.len() < TOTAL {
        assert!(
            Instant::now() < until,
            "only {} of {TOTAL} handled",
            seen.len()
        );
        if !killed && seen.len() >= TOTAL / 3 {
            // The node the client is not necessarily on: kill the first; the client
            // reconnects to another seed when it was on it.
            cluster.nodes[0].kill();
            killed = true;
        }
        let Ok(jobs) = t
            .reserve(&["ha".to_owned()], 32, Duration::from_millis(500))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for job in jobs {
            seen.insert(String::from_utf8(job.body.to_vec()).unwrap());
            let _ = t.ack(&job).await;
        }
    }
    assert!(killed);
    producer.await.unwrap();
    assert_eq!(seen.len(), TOTAL);
}
