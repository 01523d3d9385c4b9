//! `faulty://`, a backend written outside mq-core (`tests/src/faulty.rs`): it plugs in by
//! URL scheme, passes the conformance suite, and its injected faults reach the producer and
//! the worker as a server's would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mq::transport::Transport;
use mq::{Bus, Error, Exit, Registry, SlotDef, Worker};
use mq_tests::faulty::{fail_next, Op};
use serde::{Deserialize, Serialize};

/// A name no other test of this process uses.
fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn fresh() -> ((), Arc<dyn Transport>) {
    let url = format!("faulty://{}", unique("suite"));
    (
        (),
        mq::transport::connect(&url)
            .await
            .expect("faulty:// plugs in"),
    )
}

mq_tests::transport_suite!(fresh());

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "faulty")]
struct Ping {
    n: u64,
}

#[mq::slot]
async fn pong(_msg: Ping) {}

#[tokio::test]
async fn the_scheme_is_listed_and_a_failed_put_is_the_backends_error() {
    assert!(mq::transport::scheme::usages().contains("faulty://NAME"));
    let name = unique("put");
    let bus = Bus::connect(&format!("faulty://{name}"))
        .await
        .expect("connect");
    fail_next(&name, Op::Put, 1);
    let error = bus
        .dispatch(Ping { n: 1 })
        .await
        .expect_err("an injected fault");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    bus.dispatch(Ping { n: 2 })
        .await
        .expect("the next put works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_retries_failed_reservations_and_goes_on() {
    let name = unique("worker");
    let url = format!("faulty://{name}");
    Bus::connect(&url)
        .await
        .expect("connect")
        .dispatch(Ping { n: 1 })
        .await
        .expect("dispatch");
    fail_next(&name, Op::Reserve, 3);
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        Worker::builder()
            .url(url)
            .registry(Registry::from_slots([SlotDef::of::<pong>()]).expect("registry"))
            .handle_signals(false)
            .limit(1)
            .run(),
    )
    .await
    .expect("the worker went on after 3 failed reservations")
    .expect("run");
    assert_eq!(exit, Exit::Limit);
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "faulty-urgent", priority = 5)]
struct Urgent {
    n: u64,
}

#[mq::slot]
async fn on_urgent(_msg: Urgent) {}

#[tokio::test]
async fn a_backend_without_priorities_refuses_a_priority_at_dispatch_and_at_worker_start() {
    let url = format!("faulty://{}?priorities=none", unique("nopri"));
    let bus = Bus::connect(&url).await.expect("connect");
    let error = bus
        .dispatch(Urgent { n: 1 })
        .await
        .expect_err("a priority it cannot hold");
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(error.to_string().contains("priority 5"), "{error}");
    let error = bus
        .dispatch(Ping { n: 1 })
        .priority(7)
        .await
        .expect_err("an explicit priority too");
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    bus.dispatch(Ping { n: 2 })
        .await
        .expect("the default priority is fine");
    let stats = bus.transport().stats().await.expect("stats");
    let ready: u64 = stats.iter().map(|q| q.ready).sum();
    assert_eq!(
        ready, 1,
        "only the message without a priority was put: {stats:?}"
    );

    let error = Worker::builder()
        .url(&url)
        .registry(Registry::from_slots([SlotDef::of::<on_urgent>()]).expect("registry"))
        .build()
        .await
        .expect_err("a worker whose message asks for a priority");
    let text = error.to_string();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(
        text.contains("cannot hold") && text.contains("priority 5"),
        "{text}"
    );
    Worker::builder()
        .url(&url)
        .registry(Registry::from_slots([SlotDef::of::<pong>()]).expect("registry"))
        .build()
        .await
        .expect("a worker whose messages ask for none starts");
}

#[tokio::test]
async fn the_failure_stores_namespace_is_no_queue_for_messages() {
    let url = format!("faulty://{}", unique("ns"));
    let error = Worker::builder()
        .url(&url)
        .registry(Registry::from_slots([SlotDef::of::<pong>()]).expect("registry"))
        .queues(["mq-failed.faulty"])
        .build()
        .await
        .expect_err("a worker on failure records");
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(error.to_string().contains("failure store"), "{error}");
}
