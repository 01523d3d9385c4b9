//! `mq::check` in code on the backends the process tests do not run it on (memory, a real
//! nats-server, a real PostgreSQL), with more items than one page of `browse`: every queued
//! and failed item is read once, what this build cannot decode is named.

use std::sync::Arc;
use std::time::SystemTime;

use mq::transport::{Failure, PutOptions, Transport};
use mq::{Bus, Registry};
use mq_tests::nats::NatsServer;
use mq_tests::postgres::FreshDb;
use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "checked", version = 2)]
struct Checked {
    n: u64,
}

fn raw(name: &str, version: u32, body: &str) -> bytes::Bytes {
    format!(
        r#"{{"v":1,"name":"{name}","id":"raw","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","message_version":{version},"body":{body}}}"#
    )
    .into_bytes()
    .into()
}

async fn reads_everything_once(transport: Arc<dyn Transport>, readable: u64) {
    let bus = Bus::new(transport.clone());
    bus.dispatch_all((0..readable).map(|n| Checked { n }))
        .await
        .unwrap();
    transport
        .put(
            "other",
            raw("Checked", 1, r#"{"n":1}"#),
            PutOptions::default(),
        )
        .await
        .unwrap();
    transport
        .put("checked", raw("Unknown", 1, "{}"), PutOptions::default())
        .await
        .unwrap();
    transport
        .failure_store()
        .store(
            "checked",
            raw("Checked", 3, r#"{"n":1}"#),
            PutOptions::default(),
            Failure::new(Vec::new(), "failed".into(), 1, SystemTime::now()),
        )
        .await
        .unwrap();

    let registry = Registry::linked().unwrap();
    let report = mq::check(transport.as_ref(), &registry).await.unwrap();
    assert_eq!(report.readable, readable, "{report}");
    let lines: Vec<String> = report.unreadable.iter().map(|u| u.to_string()).collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].starts_with(
        "failure store (queue checked): Checked version 3 (1 item): `Checked` version 3 was \
         dispatched by a newer build"
    ));
    assert!(lines[1]
        .starts_with("queue checked: Unknown version 1 (1 item): no message type named `Unknown`"));
    assert!(lines[2].starts_with(
        "queue other: Checked version 1 (1 item): `Checked` version 1 has no reader in this \
         build (it reads version 2)"
    ));
    assert!(!report.all_readable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_pages_through_a_memory_queue() {
    let transport = mq::transport::connect("memory://check-backends")
        .await
        .unwrap();
    reads_everything_once(transport, 1_234).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_nats_stream_without_consuming_it() {
    let server = NatsServer::start();
    let transport = mq::transport::connect(&server.url()).await.unwrap();
    reads_everything_once(transport.clone(), 620).await;
    let stats = mq_tests::queue_stats(transport.as_ref(), "checked").await;
    assert_eq!(stats.ready, 621, "nothing consumed: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_postgres_queue() {
    let db = FreshDb::create().await;
    let transport = mq::transport::connect(&db.url("")).await.unwrap();
    reads_everything_once(transport, 620).await;
}
