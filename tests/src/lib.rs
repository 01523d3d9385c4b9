//! Shared pieces of mq's end-to-end tests: the transport conformance suite, the beanstalkd
//! and NATS server harnesses, the test worker binary as a process, a backend of its own
//! (`faulty://`), fresh PostgreSQL databases, a PostgreSQL server of a test's own, an
//! OpenTelemetry pipeline that writes spans to a file, a scraper of the metrics endpoint,
//! queue counts, and `mq dashboard` as a process with a small HTTP client for it.

pub mod beanstalkd;
pub mod dashboard;
pub mod faulty;
pub mod http;
pub mod nats;
pub mod nats_jwt;
pub mod otel;
pub mod pg_server;
pub mod postgres;
pub mod scrape;
mod server;
pub mod suite;
pub mod tls;
pub mod unique;
pub mod worker_process;

pub use server::free_port;

use std::time::Duration;

use mq::transport::{QueueStats, Transport};

/// Connects to `url`, checks that `describe()` shows none of `secrets`, puts one item on
/// queue `round-trip`, reserves and acks it; returns the transport (for the credential
/// and TLS tests).
pub async fn round_trip(url: &str, secrets: &[&str]) -> std::sync::Arc<dyn Transport> {
    let transport = mq::transport::connect(url).await.expect("connect");
    let described = transport.describe();
    for secret in secrets {
        assert!(
            !described.contains(secret),
            "describe() shows a secret: {described}"
        );
    }
    let options = mq::transport::PutOptions::new(10, Duration::ZERO, Duration::from_secs(30));
    let body = bytes::Bytes::from_static(b"{}");
    transport
        .put("round-trip", body, options)
        .await
        .expect("put");
    let queues = ["round-trip".to_owned()];
    let jobs = transport
        .reserve(&queues, 1, Duration::from_secs(5))
        .await
        .expect("reserve");
    assert_eq!(jobs.len(), 1, "the item put is reserved");
    transport.ack(&jobs[0]).await.expect("ack");
    transport
}

/// The counts of `queue` (all zero when the transport does not list it).
pub async fn queue_stats(transport: &dyn Transport, queue: &str) -> QueueStats {
    let stats = transport.stats().await.expect("stats");
    stats
        .into_iter()
        .find(|s| s.queue == queue)
        .unwrap_or_default()
}

/// A child process's part in the SIGKILL tests: reserves up to 50 items of `work`, prints
/// `reserved N`, then moves them to `done` one by one, slowly (20 ms each), and sleeps
/// until it is killed.
pub async fn hold_until_killed(queue: &dyn Transport) {
    let jobs = queue
        .reserve(&["work".to_owned()], 50, std::time::Duration::from_secs(5))
        .await
        .expect("reserve");
    println!("reserved {}", jobs.len());
    for job in jobs {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let options = mq::transport::PutOptions::default();
        queue
            .put("done", job.body.clone(), options)
            .await
            .expect("put");
        queue.ack(&job).await.expect("ack");
    }
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
}

/// This test executable run again as a child process that runs only its `child_process`
/// test, with `role_var` set to `role` (the child reads it to know what to do); stdout is
/// piped, stderr inherited.
pub fn child_process(role_var: &str, role: &str) -> std::process::Command {
    let mut command =
        std::process::Command::new(std::env::current_exe().expect("the test executable's path"));
    command
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(role_var, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    command
}

/// [`child_process`] started with `record_var` set to `record` (the file its slots append
/// to) and its stdout discarded: a worker of a process test.
pub fn spawn_recording_child(
    role_var: &str,
    role: &str,
    record_var: &str,
    record: &std::path::Path,
) -> std::process::Child {
    let mut command = child_process(role_var, role);
    command
        .env(record_var, record)
        .stdout(std::process::Stdio::null());
    command.spawn().expect("start the child process")
}

/// Kills `child` with SIGKILL and reaps it.
pub fn sigkill(child: &mut std::process::Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the child");
}

/// The most runs that overlapped, from their `(start, end)` times as the slots of a process
/// test record them; ends sort before starts at one instant, so touching runs do not
/// overlap.
pub fn most_at_once(runs: &[(u128, u128)]) -> i32 {
    let mut edges: Vec<(u128, i32)> = runs
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    edges.sort();
    let (mut running, mut most) = (0, 0);
    for (_, step) in edges {
        running += step;
        most = most.max(running);
    }
    most
}

/// Appends `line` and a newline to the file the variable `record_var` names (one write, so
/// the lines of several processes do not mix): what the slots of a process test record.
pub fn append_line(record_var: &str, line: &str) {
    use std::io::Write as _;
    let path = std::env::var(record_var).expect("the record file's variable");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open the record file");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("append to the record file");
}
