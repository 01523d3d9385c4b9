//! A real worker on beanstalkd while the server is killed and restarted with its binlog.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mq::{Exit, Message, Registry, SlotDef, Worker};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize};

#[derive(Message, Serialize, Deserialize)]
#[message(queue = "resilient", ttr = "5s")]
struct Numbered {
    n: u32,
}

static HANDLED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

#[mq::slot]
async fn handle(msg: Numbered) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    HANDLED.lock().unwrap().insert(msg.n);
}

fn handled() -> usize {
    HANDLED.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_resumes_after_a_server_restart_and_nothing_is_lost() {
    let binlog = tempfile::tempdir().unwrap();
    let mut server = Beanstalkd::with_binlog(binlog.path());
    let bus = mq::Bus::connect(&server.url()).await.unwrap();
    for n in 0..200 {
        bus.dispatch(Numbered { n }).await.unwrap();
    }
    let worker = Worker::builder()
        .url(server.url())
        .registry(Registry::from_slots([SlotDef::of::<handle>()]).unwrap())
        .handle_signals(false)
        .concurrency(4)
        .poll_interval(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    while handled() < 20 {
        assert!(Instant::now() < deadline, "worker did not start handling");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.restart();

    // Dispatching works again too (the producing connection reconnects).
    for n in 200..210 {
        let mut tries = 0;
        while let Err(error) = bus.dispatch(Numbered { n }).await {
            tries += 1;
            assert!(tries < 50, "dispatch after restart: {error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while handled() < 210 {
        assert!(
            Instant::now() < deadline,
            "only {} of 210 handled after the restart",
            handled()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop();
    assert_eq!(running.await.unwrap().unwrap(), Exit::Stopped);
    assert_eq!(
        *HANDLED.lock().unwrap(),
        (0..210).collect::<BTreeSet<u32>>()
    );
}
