//! Faults a worker on NATS must survive, each on real processes: the server's own figures
//! on the server version the docs name, a queue name NATS cannot serve, a server killed
//! with SIGKILL mid-run and restarted on its store, and a worker stopped during an outage.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq::transport::PutOptions;
use mq::Bus;
use mq_tests::nats::NatsServer;
use mq_tests::worker_process::{recorded, Work, WorkerProcess};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// How soon a dispatch during an outage must fail: the client knows at once that its
/// connection is gone, so this is generous for a loaded machine and far below the 5 s a
/// publish waits for the stream's acknowledgement.
const OUTAGE_BOUND: Duration = Duration::from_secs(3);

fn opts() -> PutOptions {
    PutOptions::new(1, Duration::ZERO, Duration::from_secs(30))
}

fn start_worker(url: &str, record: &Path) -> WorkerProcess {
    WorkerProcess::start(WORKER, url, record, &["--concurrency", "16"])
}

fn work(n: u64) -> Work {
    Work {
        n,
        sleep_ms: 0,
        panic: false,
    }
}

/// The stream's state, the consumer's of `work` and the first items left, for a failure.
async fn describe(server: &NatsServer) -> String {
    let client = async_nats::connect(server.address())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("MQ").await.expect("stream MQ");
    let state = stream.info().await.expect("stream info").state.clone();
    let consumer = stream.consumer_info("work_p0000001024").await;
    let mut left = Vec::new();
    let mut from = 1;
    while left.len() < 20 {
        let next = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject("mq.>".to_owned())
            .send()
            .await;
        let Ok(message) = next else { break };
        left.push(message.sequence);
        from = message.sequence + 1;
    }
    format!("stream {state:?}; consumer {consumer:?}; first left {left:?}")
}

/// The `MQ` stream's message count, straight from the server: what `stats` cannot hide.
async fn stream_messages(server: &NatsServer) -> u64 {
    let client = async_nats::connect(server.address())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("MQ").await.expect("stream MQ");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_work_on_nats_server_2_9() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    t.put("figures", Bytes::from("x"), opts()).await.unwrap();
    let figures = t.server_stats().await.expect("server figures");
    let get = |key: &str| {
        figures
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} missing: {figures:?}"))
    };
    assert!(!get("version").is_empty(), "{figures:?}");
    assert_eq!(get("jetstream_streams"), "1", "{figures:?}");
    assert!(
        get("jetstream_storage_bytes").parse::<u64>().unwrap() > 0,
        "{figures:?}"
    );
}

/// The longest queue name NATS can serve (its consumer names, `<queue>_p<band>`, are at
/// most 255 characters) works end to end; one byte more, or fewer characters that the
/// escaping triples, is refused at put with the limit in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_name_nats_cannot_serve_is_refused_at_put() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    let longest = "q".repeat(243);
    t.put(&longest, Bytes::from("x"), opts()).await.unwrap();
    let jobs = t
        .reserve(std::slice::from_ref(&longest), 1, Duration::from_secs(2))
        .await
        .expect("the longest name can be consumed");
    assert_eq!(jobs.len(), 1);
    t.ack(&jobs[0]).await.unwrap();
    let delayed = opts().with_delay(Duration::from_millis(1));
    t.put(&longest, Bytes::from("late"), delayed).await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let jobs = t
            .reserve(
                std::slice::from_ref(&longest),
                1,
                Duration::from_millis(200),
            )
            .await
            .expect("the delayed consumer of the longest name");
        if let Some(job) = jobs.first() {
            t.ack(job).await.unwrap();
            break;
        }
        assert!(Instant::now() < until, "the delayed item never came");
    }

    for name in ["q".repeat(244), "q".repeat(300), "ü".repeat(41)] {
        let error = t.put(&name, Bytes::from("x"), opts()).await.unwrap_err();
        assert!(matches!(error, mq::Error::Config(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("243") && text.contains("255"), "{text}");
        let error = t
            .put_many(&name, vec![Bytes::from("x")], opts())
            .await
            .unwrap_err();
        assert!(matches!(error, mq::Error::Config(_)), "{error:?}");
    }
    let names: Vec<String> = t
        .stats()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.queue)
        .collect();
    assert_eq!(names, [longest], "nothing else reached the server");
}

/// A worker consumes while the server is killed with SIGKILL (nothing flushed) and
/// restarted on the same port and store. Every message runs at least once, the stream ends
/// empty (no handled item stays behind below a consumer's ack floor), and a dispatch during
/// the outage fails within [`OUTAGE_BOUND`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_mid_run_loses_nothing_and_keeps_nothing_handled() {
    const TOTAL: u64 = 3_000;
    let mut server = NatsServer::start();
    let url = format!("{}?ack_wait=3s", server.url());
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&url).await.unwrap();
    bus.dispatch_all((0..TOTAL).map(work)).await.unwrap();
    let _worker = start_worker(&url, &record);
    let until = Instant::now() + Duration::from_secs(60);
    while (recorded(&record).len() as u64) < TOTAL / 3 {
        assert!(Instant::now() < until, "the worker handled too little");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    server.kill();
    let before = recorded(&record).len() as u64;
    assert!(before < TOTAL, "the server must die mid-run");
    // Give the client a moment to see its connection close, as any dispatch after an
    // outage began would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let outage = tokio::time::timeout(Duration::from_secs(10), bus.dispatch(work(TOTAL))).await;
    let took = started.elapsed();
    eprintln!("a dispatch during the outage returned after {took:?}");
    let outcome = outage.expect("a dispatch during the outage returns");
    assert!(
        outcome.is_err(),
        "a dispatch with the server down succeeded"
    );
    assert!(
        took < OUTAGE_BOUND,
        "a dispatch during the outage took {took:?} to fail"
    );
    server.restart();
    let restarted = Instant::now();

    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let done: BTreeSet<u64> = recorded(&record).into_iter().collect();
        if (0..TOTAL).all(|n| done.contains(&n)) {
            break;
        }
        assert!(
            Instant::now() < until,
            "only {} of {TOTAL} ran after the restart",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "every message ran {:?} after the restart",
        restarted.elapsed()
    );
    // Items whose acks the server lost come back after AckWait and run again; handled
    // items the server forgot it had deleted must be gone.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = stream_messages(&server).await;
        // The bus reconnects by itself; until it has, stats fail.
        let stats = bus.transport().stats().await.map(|all| {
            let work = all.into_iter().find(|s| s.queue == "work");
            work.map(|s| (s.ready, s.reserved, s.delayed))
        });
        if left == 0 && matches!(stats, Ok(Some((0, 0, 0)))) {
            break;
        }
        if Instant::now() > until {
            panic!(
                "{left} items stay in the stream after every message ran; (ready, reserved, \
                 delayed): {stats:?}; {}",
                describe(&server).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "the stream was empty {:?} after the restart",
        restarted.elapsed()
    );
    assert!(bus.transport().peek("work").await.unwrap().is_none());
}

/// SIGTERM to a worker whose server is gone: the worker must not wait on the network, so
/// it exits 0 within the poll interval (1 s), bounded at 2 s for a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage_stops_the_worker_within_the_poll_interval() {
    let mut server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = Bus::connect(&url).await.unwrap();
    bus.dispatch_all((0..20).map(work)).await.unwrap();
    let mut worker = start_worker(&url, &record);
    mq_tests::worker_process::wait_until_recorded(&record, 20);
    server.kill();
    // The worker is now in a reserve call that lost its server, or about to start one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker must outlive its server"
    );
    let started = Instant::now();
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(10))
        .expect("the worker exits");
    let took = started.elapsed();
    eprintln!("SIGTERM during the outage: exited {status} after {took:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "the worker took {took:?} to stop during the outage"
    );
}

/// Dispatches go out one after another when the server is killed: the one in flight (or
/// the next) fails within [`OUTAGE_BOUND`] of the kill, not after the 5 s a publish waits
/// for the stream's acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_in_flight_when_the_server_dies_fails_within_the_bound() {
    let mut server = NatsServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    bus.dispatch(work(0)).await.unwrap();
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            match bus.dispatch(work(sent)).await {
                Ok(_) => sent += 1,
                Err(error) => return (Instant::now(), sent, error),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    server.kill();
    let (failed_at, sent, error) = tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("the producer's dispatch fails")
        .unwrap();
    let took = failed_at.saturating_duration_since(killed);
    eprintln!("after {sent} dispatches, the one at the kill failed {took:?} after it: {error}");
    assert!(
        sent > 0,
        "the producer must be dispatching when the server dies"
    );
    assert!(matches!(error, mq::Error::Unreachable { .. }), "{error:?}");
    assert!(
        took < OUTAGE_BOUND,
        "the dispatch failed {took:?} after the kill"
    );
}
