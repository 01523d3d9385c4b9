//! Interoperability with an independent client (the blocking `beanstalkc` crate), both
//! ways, and real workers on a real server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beanstalkc::Beanstalkc;
use mq::{Exit, Message, Registry, SlotDef, Transport, Worker};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize};

fn beanstalkc(server: &Beanstalkd) -> Beanstalkc {
    Beanstalkc::new()
        .host("127.0.0.1")
        .port(server.port())
        .connect()
        .unwrap()
}

#[derive(Message, Serialize, Deserialize, Debug, PartialEq)]
#[message(queue = "interop-out", priority = 42)]
struct OrderPlaced {
    order_id: u64,
    to: String,
}

#[tokio::test]
async fn a_message_dispatched_by_mq_is_read_by_beanstalkc() {
    let server = Beanstalkd::start();
    let bus = mq::Bus::connect(&server.url()).await.unwrap();
    let id = bus
        .dispatch(OrderPlaced {
            order_id: 7,
            to: "ada@example.com".into(),
        })
        .await
        .unwrap();

    let mut client = beanstalkc(&server);
    client.watch("interop-out").unwrap();
    let mut job = client.reserve_with_timeout(Duration::from_secs(2)).unwrap();
    let envelope: serde_json::Value = serde_json::from_slice(job.body()).unwrap();
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["name"], "OrderPlaced");
    assert_eq!(envelope["id"], id.as_str());
    assert_eq!(envelope["attempt"], 1);
    assert!(envelope["dispatched_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        envelope["body"],
        serde_json::json!({"order_id": 7, "to": "ada@example.com"})
    );
    let stats = job.stats().unwrap();
    assert_eq!(stats["pri"], "42");
    assert_eq!(stats["tube"], "interop-out");
    job.delete().unwrap();
}

#[derive(Message, Serialize, Deserialize)]
#[message(queue = "interop-in")]
struct Greeting {
    who: String,
}

static GREETED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[mq::slot]
fn greet(msg: Greeting) {
    GREETED.lock().unwrap().push(msg.who);
}

#[tokio::test]
async fn an_envelope_written_by_hand_and_put_by_beanstalkc_is_handled_by_an_mq_worker() {
    let server = Beanstalkd::start();
    assert_eq!(Greeting::NAME, "Greeting");
    // Per docs/wire-format.md, by hand, as a producer in another language would.
    let envelope = br#"{"v":1,"name":"Greeting","id":"0193a8f2-7c4e-7d1a-9b1e-2f4c6a8e0b12","attempt":1,"dispatched_at":"2026-11-28T09:30:00.000Z","body":{"who":"beanstalkc"}}"#;
    let mut client = beanstalkc(&server);
    client.use_tube("interop-in").unwrap();
    client
        .put(envelope, 100, Duration::ZERO, Duration::from_secs(60))
        .unwrap();

    let transport: Arc<dyn Transport> = mq::transport::connect(&server.url()).await.unwrap();
    let exit = Worker::builder()
        .transport(transport.clone())
        .registry(Registry::from_slots([SlotDef::of::<greet>()]).unwrap())
        .handle_signals(false)
        .limit(1)
        .time_limit(Duration::from_secs(20))
        .run()
        .await
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert_eq!(*GREETED.lock().unwrap(), ["beanstalkc"]);
    let stats = client.stats_tube("interop-in").unwrap();
    assert_eq!(stats["current-jobs-ready"], "0");
    assert_eq!(stats["current-jobs-reserved"], "0");
    assert_eq!(stats["total-jobs"], "1", "handled once and deleted");
}

#[derive(Message, Serialize, Deserialize)]
#[message(queue = "slow", ttr = "2s")]
struct Slow {
    n: u32,
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[mq::slot]
async fn run_slowly(_msg: Slow) {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(4500)).await;
}

#[tokio::test]
async fn a_slot_slower_than_its_ttr_is_kept_alive_and_runs_once() {
    let server = Beanstalkd::start();
    let bus = mq::Bus::connect(&server.url()).await.unwrap();
    bus.dispatch(Slow { n: 1 }).await.unwrap();
    let worker = |limit: Option<u64>| {
        let url = server.url();
        async move {
            let mut builder = Worker::builder()
                .url(url)
                .registry(Registry::from_slots([SlotDef::of::<run_slowly>()]).unwrap())
                .handle_signals(false)
                .time_limit(Duration::from_secs(8));
            if let Some(limit) = limit {
                builder = builder.limit(limit);
            }
            builder.run().await.unwrap()
        }
    };
    // Two workers on the queue: the second must never get the message that the first
    // keeps alive past its 2 s TTR.
    let first = tokio::spawn(worker(Some(1)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn(worker(None));
    assert_eq!(first.await.unwrap(), Exit::Limit);
    assert_eq!(second.await.unwrap(), Exit::TimeLimit);
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    let mut client = beanstalkc(&server);
    assert_eq!(
        client.stats_tube("slow").unwrap()["current-jobs-ready"],
        "0"
    );
    assert_eq!(client.stats_tube("slow").unwrap()["total-jobs"], "1");
}
