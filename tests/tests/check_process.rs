//! `test-worker check` as a real process against an SQLite file and a real beanstalkd:
//! every item this build reads, exit 0; an unknown name, a newer version, a body that does
//! not decode (in a queue and in the failure store), each named with its version and reason,
//! exit 3.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::SystemTime;

use mq::transport::{Failure, PutOptions, Transport};
use mq::Bus;
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::worker_process::Work;

fn check(url: &str) -> Output {
    check_with(url, &[])
}

fn check_with(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_test-worker"))
        .arg("check")
        .args(args)
        .env("MQ_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("test-worker runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn raw(name: &str, version: u32, body: &str) -> bytes::Bytes {
    format!(
        r#"{{"v":1,"name":"{name}","id":"raw","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","message_version":{version},"body":{body}}}"#
    )
    .into_bytes()
    .into()
}

async fn scenario(url: &str) {
    let transport: Arc<dyn Transport> = mq::transport::connect(url).await.unwrap();
    let bus = Bus::new(transport.clone());
    for n in 0..3 {
        bus.dispatch(Work {
            n,
            sleep_ms: 0,
            panic: false,
        })
        .await
        .unwrap();
    }
    let readable = check(url);
    assert_eq!(readable.status.code(), Some(0), "{}", text(&readable));
    let out = String::from_utf8_lossy(&readable.stdout);
    assert!(
        out.contains("3 messages readable, 0 not readable by this build"),
        "{}",
        text(&readable)
    );

    let put = |bytes| {
        let transport = transport.clone();
        async move {
            transport
                .put("work", bytes, PutOptions::default())
                .await
                .unwrap()
        }
    };
    put(raw("Ghost", 1, "{}")).await;
    put(raw("Work", 2, r#"{"n":9,"sleep_ms":0,"panic":false}"#)).await;
    put(raw("Work", 1, r#"{"n":"nine"}"#)).await;
    transport
        .failure_store()
        .store(
            "work",
            raw("Work", 1, r#"{"n":-1,"sleep_ms":0,"panic":false}"#),
            PutOptions::default(),
            Failure::new(Vec::new(), "slot failed".into(), 1, SystemTime::now()),
        )
        .await
        .unwrap();

    let unreadable = check(url);
    let all = text(&unreadable);
    assert_eq!(unreadable.status.code(), Some(3), "{all}");
    let out = String::from_utf8_lossy(&unreadable.stdout);
    for expected in [
        "queue work: Ghost version 1 (1 item): no message type named `Ghost` in this build",
        "queue work: Work version 2 (1 item): `Work` version 2 was dispatched by a newer build",
        "queue work: Work version 1 (1 item): body does not decode as `mq_tests::worker_process::Work`: invalid type: string \"nine\"",
        "failure store (queue work): Work version 1 (1 item): body does not decode as `mq_tests::worker_process::Work`: invalid value: integer `-1`",
        "3 messages readable, 4 not readable by this build",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{all}");
    }
    let json = check_with(url, &["--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["readable"], 3, "{report}");
    let ghost = &report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "Ghost")
        .cloned()
        .unwrap();
    assert_eq!(
        (&ghost["place"], &ghost["version"], &ghost["count"]),
        (&"queue work".into(), &1.into(), &1.into()),
        "{report}"
    );
    // Nothing was consumed.
    let stats = mq_tests::queue_stats(transport.as_ref(), "work").await;
    assert_eq!(stats.ready, 6, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_what_an_sqlite_file_holds_that_this_build_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    scenario(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_what_a_beanstalkd_holds_that_this_build_cannot_read() {
    let server = Beanstalkd::start();
    scenario(&server.url()).await;
}

#[test]
fn check_of_a_missing_queue_file_exits_1_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let output = check(&format!("sqlite://{}", path.display()));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(!path.exists());
}
