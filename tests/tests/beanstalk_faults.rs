//! beanstalkd faults, on real processes: a server that accepts and never answers (a fake on
//! `127.0.0.1:0`, or a real beanstalkd stopped with SIGSTOP mid-run), a server that is not
//! beanstalkd, queue names the backend cannot serve. Each call must fail within its
//! deadline with an error that says what happened; a worker must log, recover, and stop.

mod cli_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq::transport::beanstalk::MAX_QUEUE_NAME;
use mq::transport::PutOptions;
use mq::{Bus, Error};
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::worker_process::{wait_for_log, wait_until_recorded, Work, WorkerProcess};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The reply deadline (5 s), the watchdog's tick, and a loaded machine.
const WITHIN_DEADLINE: Duration = Duration::from_secs(9);

/// A server on `127.0.0.1:0` that hands each connection to `serve` on a thread of its own;
/// it stops accepting when the listener is dropped with the test.
fn fake_server(serve: fn(TcpStream)) -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let accepting = listener.try_clone().expect("clone the listener");
    std::thread::spawn(move || {
        for stream in accepting.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve(stream));
        }
    });
    (listener, format!("beanstalk://{address}"))
}

/// A server that accepts connections and never answers; it reads what it gets, so that
/// nothing backs up.
fn silent_server() -> (TcpListener, String) {
    fake_server(|mut stream| {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// A server that answers every request as an HTTP server would.
fn http_server() -> (TcpListener, String) {
    fake_server(|mut stream| {
        let mut request = [0u8; 4096];
        if matches!(stream.read(&mut request), Ok(n) if n > 0) {
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    })
}

#[track_caller]
fn assert_silent_error(error: &Error, took: Duration) {
    assert!(
        matches!(error, Error::Unreachable { .. }),
        "not Unreachable: {error:?}"
    );
    assert!(error.to_string().contains("no reply within"), "{error}");
    assert!(took < WITHIN_DEADLINE, "took {took:?}: {error}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_connect_the_cli_and_the_worker_within_the_deadline() {
    let (_server, url) = silent_server();

    let started = Instant::now();
    let error = mq::transport::connect(&url)
        .await
        .expect_err("connected to a silent server");
    assert_silent_error(&error, started.elapsed());

    cli_support::binary(); // built on first use: not part of what is timed
    let started = Instant::now();
    let run = cli_support::mq(&url, &["stats"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("no reply within"), "{run:?}");
    assert!(took < WITHIN_DEADLINE, "mq stats took {took:?}");

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let started = Instant::now();
    let output = Command::new(WORKER)
        .env("MQ_URL", &url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("run the worker");
    let took = started.elapsed();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(output.code(), Some(1), "{said}");
    assert!(said.contains("mq worker connecting"), "{said}");
    assert!(said.contains("no reply within"), "{said}");
    assert!(
        took < WITHIN_DEADLINE,
        "the worker took {took:?} to give up:\n{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_run_fails_dispatch_within_the_deadline_and_serves_again_after() {
    let server = Beanstalkd::start();
    let bus = Bus::connect(&server.url()).await.expect("connect");
    bus.dispatch(Work {
        n: 1,
        sleep_ms: 0,
        panic: false,
    })
    .await
    .expect("dispatch");

    server.pause();
    let started = Instant::now();
    let error = bus
        .dispatch(Work {
            n: 2,
            sleep_ms: 0,
            panic: false,
        })
        .await
        .expect_err("a stopped server took a dispatch");
    assert_silent_error(&error, started.elapsed());
    let started = Instant::now();
    let error = bus
        .transport()
        .stats()
        .await
        .expect_err("stats of a stopped server");
    assert_silent_error(&error, started.elapsed());

    server.resume();
    bus.dispatch(Work {
        n: 3,
        sleep_ms: 0,
        panic: false,
    })
    .await
    .expect("dispatch after the server came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_server_stalls_says_so_recovers_and_stops_on_sigterm() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let (record, log) = (dir.path().join("record"), dir.path().join("log"));
    let mut worker =
        WorkerProcess::start_logged(WORKER, &server.url(), &record, &["--queues", "work"], &log);
    let bus = Bus::connect(&server.url()).await.expect("connect");
    let work = |n| Work {
        n,
        sleep_ms: 0,
        panic: false,
    };
    bus.dispatch_all((0..20).map(work)).await.expect("dispatch");
    wait_until_recorded(&record, 20);

    server.pause();
    let paused = Instant::now();
    wait_for_log(&log, "no reply within", WITHIN_DEADLINE);
    eprintln!(
        "the worker said so {:?} after the server stopped",
        paused.elapsed()
    );
    wait_for_log(&log, "reserve failed", WITHIN_DEADLINE);

    server.resume();
    bus.dispatch_all((20..40).map(work))
        .await
        .expect("dispatch");
    wait_until_recorded(&record, 40);
    // Every ack answered first: a `delete` the stopped server never answers would rightly
    // hold the exit back until the connection's reply timeout (5 s).
    let acked = Instant::now();
    loop {
        let stats = mq_tests::queue_stats(bus.transport().as_ref(), "work").await;
        if stats.ready + stats.reserved == 0 {
            break;
        }
        assert!(acked.elapsed() < WITHIN_DEADLINE, "not acked: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stopped again: SIGTERM must not wait on the network.
    server.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(4))
        .unwrap_or_else(|| panic!("no exit within 4 s of SIGTERM; log:\n{}", read(&log)));
    assert_eq!(status.code(), Some(0), "{}", read(&log));
    eprintln!("exited {:?} after SIGTERM", asked.elapsed());
    server.resume();
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_server_that_is_not_beanstalkd_is_a_protocol_error_not_unreachable() {
    let (_server, url) = http_server();
    let error = mq::transport::connect(&url)
        .await
        .expect_err("connected to HTTP");
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(
        error.to_string().contains("is this a beanstalkd server?"),
        "{error}"
    );

    let run = cli_support::mq(&url, &["stats"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("protocol error from beanstalkd"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("cannot reach"), "{run:?}");
}

#[tokio::test]
async fn queue_names_it_cannot_serve_are_refused_at_dispatch_with_the_limit() {
    let server = Beanstalkd::start();
    let transport = mq::transport::connect(&server.url())
        .await
        .expect("connect");
    let put = |queue: String| {
        let transport = transport.clone();
        async move {
            transport
                .put(&queue, Bytes::from_static(b"{}"), PutOptions::default())
                .await
        }
    };

    // The failure store's namespace: `mq-failed.faults` is where `faults` keeps failures.
    let error = put("mq-failed.faults".into())
        .await
        .expect_err("took mq-failed.");
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(error.to_string().contains("failure store"), "{error}");
    let run = cli_support::mq(
        &server.url(),
        &[
            "publish",
            "Job",
            r#"{"id":2}"#,
            "--queue",
            "mq-failed.faults",
        ],
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("failure store"), "{run:?}");
    let stats = cli_support::mq(&server.url(), &["stats", "--json"]).json();
    assert!(!stats.to_string().contains("faults"), "{stats}");

    // Too long for its failure tube: refused, with the limit.
    let error = put("q".repeat(MAX_QUEUE_NAME + 1))
        .await
        .expect_err("too long");
    assert!(
        error
            .to_string()
            .contains(&format!("at most {MAX_QUEUE_NAME} bytes")),
        "{error}"
    );
    // The longest allowed name works end to end, its failures included.
    let longest = "q".repeat(MAX_QUEUE_NAME);
    put(longest.clone()).await.expect("the longest queue name");
    let job = transport
        .reserve(std::slice::from_ref(&longest), 1, Duration::from_secs(2))
        .await
        .expect("reserve")
        .pop()
        .expect("the item");
    let failure =
        mq::transport::Failure::new(Vec::new(), "test".into(), 1, std::time::SystemTime::now());
    transport
        .fail(&job, job.body.clone(), PutOptions::default(), failure)
        .await
        .expect("fail into mq-failed.<longest>");
    let failed = transport
        .failure_store()
        .list(Some(&longest), 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
}
