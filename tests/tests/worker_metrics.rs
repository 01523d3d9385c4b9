//! A real worker process (`test-worker`) with `--metrics-addr`, against a real beanstalkd:
//! its `/metrics` is scraped and parsed, and its counts match what it handled; its
//! `/healthz` turns 503 while the backend is gone longer than `--health-timeout`, and 200
//! again once it is back; a bad or taken address stops it with a message that says so.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mq::Bus;
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::free_port;
use mq_tests::scrape::{get, parse, sum};
use mq_tests::worker_process::{wait_until_recorded, Work, WorkerProcess};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn start_worker(url: &str, record: &Path, port: u16) -> WorkerProcess {
    let addr = format!("127.0.0.1:{port}");
    WorkerProcess::start(
        WORKER,
        url,
        record,
        &["--metrics-addr", &addr, "--health-timeout", "2s"],
    )
}

/// Polls `GET path` until `check` accepts its answer (at most 30 s); that answer.
fn wait_for(port: u16, path: &str, what: &str, check: impl Fn(u16, &str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = get(port, path);
        if let Some((status, body)) = &answer {
            if check(*status, body) {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < until,
            "no {what} within 30 s; last: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_handled_and_healthz_follows_the_backend() {
    let mut server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let port = free_port();
    let _worker = start_worker(&server.url(), &record, port);

    let bus = Bus::connect(&server.url()).await.unwrap();
    for n in 0..5 {
        bus.dispatch(Work {
            n,
            sleep_ms: 0,
            panic: false,
        })
        .await
        .unwrap();
    }
    // `Work` has retries = 0: the panicking one goes to the failure store at once.
    bus.dispatch(Work {
        n: 99,
        sleep_ms: 0,
        panic: true,
    })
    .await
    .unwrap();
    wait_until_recorded(&record, 5);

    let failed_message = r#"outcome="failed""#;
    let text = wait_for(
        port,
        "/metrics",
        "the failed message counted",
        |status, body| {
            status == 200 && sum(&parse(body), "mq_messages_total", &[failed_message]) == 1.0
        },
    );
    let samples = parse(&text);
    let work = [r#"message="Work""#, r#"queue="work""#];
    let slot = r#"slot="test_worker::nested::deeper::do_work""#;
    let with =
        |extra: &[&'static str]| -> Vec<&str> { work.iter().chain(extra).copied().collect() };
    assert_eq!(
        sum(&samples, "mq_handled_total", &with(&[slot])),
        5.0,
        "{text}"
    );
    assert_eq!(
        sum(&samples, "mq_failed_total", &with(&[slot])),
        1.0,
        "{text}"
    );
    assert_eq!(sum(&samples, "mq_retried_total", &work), 0.0, "{text}");
    let finished = with(&[r#"outcome="finished""#]);
    assert_eq!(sum(&samples, "mq_messages_total", &finished), 5.0, "{text}");
    assert_eq!(
        sum(&samples, "mq_slot_duration_seconds_count", &with(&[slot])),
        6.0,
        "{text}"
    );
    assert_eq!(
        sum(&samples, "mq_queue_wait_seconds_count", &work),
        6.0,
        "{text}"
    );
    assert!(text.contains("# TYPE mq_handled_total counter"), "{text}");
    assert!(text.contains("mq_slot_duration_seconds_bucket{"), "{text}");
    // The depth gauges come from beanstalkd's counts, sampled every 5 s: the queue is
    // empty now (nothing ready, nothing reserved: a sample taken while the six were still
    // reserved is an older one), and the failure store holds one.
    let ready = [r#"queue="work""#, r#"state="ready""#];
    let reserved = [r#"queue="work""#, r#"state="reserved""#];
    let text = wait_for(port, "/metrics", "an empty queue's depth", |_, body| {
        let samples = parse(body);
        body.contains("mq_queue_depth{")
            && sum(&samples, "mq_queue_depth", &ready) == 0.0
            && sum(&samples, "mq_queue_depth", &reserved) == 0.0
    });
    let failed = [r#"queue="work""#, r#"state="failed""#];
    assert_eq!(sum(&parse(&text), "mq_queue_depth", &failed), 1.0, "{text}");

    assert_eq!(get(port, "/healthz").map(|(status, _)| status), Some(200));
    server.kill();
    let why = wait_for(port, "/healthz", "a 503", |status, _| status == 503);
    assert!(why.contains("unreachable"), "{why}");
    server.restart();
    wait_for(port, "/healthz", "a 200 again", |status, _| status == 200);
}

/// Runs the worker with `args` until it exits (at most 30 s): its exit code and stderr.
fn run_to_exit(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(WORKER)
        .args(args)
        .env("MQ_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker");
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the worker did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_taken_or_malformed_metrics_address_stops_the_worker_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(&url, &["--metrics-addr", &addr]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("pick another --metrics-addr"), "{stderr}");

    let (code, stderr) = run_to_exit(&url, &["--metrics-addr", "localhost"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("write e.g. 127.0.0.1:9464"), "{stderr}");
}
