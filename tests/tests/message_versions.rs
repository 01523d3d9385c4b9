//! Message versions on real backends (an SQLite file, a beanstalkd): an envelope an older
//! build left in the queue (raw bytes, no `message_version`) is handled by a version-2
//! worker through its upcaster; a newer version and an older one without a reader go to the
//! failure store with a reason that says what to do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq::transport::{FailedMessage, PutOptions, Transport};
use mq::{Backoff, Bus, Registry, SlotDef, Worker};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize};

/// The first shape of `OrderPlaced`, as the build before wrote it.
#[derive(Deserialize)]
struct OrderPlacedV1 {
    id: u64,
    total: f64,
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "orders", version = 2, previous(1 = OrderPlacedV1))]
struct OrderPlaced {
    id: u64,
    total_cents: u64,
}

impl From<OrderPlacedV1> for OrderPlaced {
    fn from(old: OrderPlacedV1) -> Self {
        OrderPlaced {
            id: old.id,
            total_cents: (old.total * 100.0).round() as u64,
        }
    }
}

/// A message at version 3 that reads version 2 only: its version 1 has no reader.
#[derive(Deserialize)]
struct RefundV2 {
    id: u64,
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "orders", version = 3, previous(2 = RefundV2))]
struct Refund {
    id: u64,
    reason: String,
}

impl From<RefundV2> for Refund {
    fn from(old: RefundV2) -> Self {
        Refund {
            id: old.id,
            reason: String::new(),
        }
    }
}

/// What `record` saw, by test (each test uses its own ids).
static SEEN: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

#[mq::slot]
fn record(msg: &OrderPlaced) {
    SEEN.lock().unwrap().push((msg.id, msg.total_cents));
}

#[mq::slot]
fn refund(_: Refund) {}

fn seen(ids: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    let mut seen: Vec<(u64, u64)> = SEEN
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(id, _)| ids.contains(id))
        .collect();
    seen.sort_unstable();
    seen
}

/// An envelope as raw bytes, as a build of another version wrote it.
fn raw(name: &str, version: Option<u32>, body: &str) -> bytes::Bytes {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let version = version.map_or(String::new(), |v| format!(r#""message_version":{v},"#));
    format!(
        r#"{{"v":1,"name":"{name}","id":"raw-{id}","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z",{version}"body":{body}}}"#
    )
    .into_bytes()
    .into()
}

async fn run_worker(transport: Arc<dyn Transport>, messages: u64) {
    let registry =
        Registry::from_slots([SlotDef::of::<record>(), SlotDef::of::<refund>()]).unwrap();
    Worker::builder()
        .transport(transport)
        .registry(registry)
        .handle_signals(false)
        .unknown_retries(0, Backoff::DEFAULT)
        .limit(messages)
        .time_limit(Duration::from_secs(20))
        .run()
        .await
        .unwrap();
}

async fn failed(transport: &dyn Transport) -> Vec<FailedMessage> {
    let mut failed = transport
        .failure_store()
        .list(Some("orders"), 100)
        .await
        .unwrap();
    failed.sort_by_key(|f| f.failure.reason.clone());
    failed
}

/// The old and the new shape side by side: both reach the slot as today's type.
async fn old_and_new_are_handled(transport: Arc<dyn Transport>, first: u64) {
    let bus = Bus::new(transport.clone());
    bus.dispatch(OrderPlaced {
        id: first + 1,
        total_cents: 700,
    })
    .await
    .unwrap();
    let written = transport.peek("orders").await.unwrap().unwrap();
    let written = String::from_utf8(written.body.to_vec()).unwrap();
    assert!(written.contains(r#""message_version":2,"#), "{written}");
    let old = raw(
        "OrderPlaced",
        None,
        &format!(r#"{{"id":{first},"total":12.5}}"#),
    );
    transport
        .put("orders", old, PutOptions::default())
        .await
        .unwrap();

    run_worker(transport.clone(), 2).await;
    assert_eq!(seen(first..=first + 1), [(first, 1250), (first + 1, 700)]);
    assert!(failed(transport.as_ref()).await.is_empty());
}

/// A newer version and an older one without a reader: in the failure store, each with why.
async fn unreadable_versions_are_failed_with_their_reason(transport: Arc<dyn Transport>) {
    let newer = raw("OrderPlaced", Some(3), r#"{"id":900,"total_cents":1}"#);
    let unread = raw("Refund", None, r#"{"id":901}"#);
    let broken = raw("OrderPlaced", None, r#"{"id":902,"total":"twelve"}"#);
    for item in [newer, unread, broken] {
        transport
            .put("orders", item, PutOptions::default())
            .await
            .unwrap();
    }
    run_worker(transport.clone(), 3).await;
    assert!(seen(900..=902).is_empty());
    let failed = failed(transport.as_ref()).await;
    let reasons: Vec<&str> = failed.iter().map(|f| f.failure.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    assert!(
        reasons[0].starts_with(
            "`OrderPlaced` version 3 was dispatched by a newer build: this build reads up to \
             version 2"
        ),
        "{reasons:#?}"
    );
    assert!(
        reasons[1].starts_with(
            "`Refund` version 1 has no reader in this build (it reads versions 2, 3): add its \
             old shape as `previous(1 = RefundV1)`"
        ),
        "{reasons:#?}"
    );
    assert!(
        reasons[2].contains("body of version 1 does not decode as `message_versions::OrderPlacedV1`: invalid type: string \"twelve\""),
        "{reasons:#?}"
    );
    // The failure store keeps the item as it came: a retry from it reads the same version.
    assert!(String::from_utf8_lossy(&failed[0].body).contains(r#""message_version":3"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_message_left_in_an_sqlite_queue_is_handled_by_a_version_2_worker() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let transport = mq::transport::connect(&url).await.unwrap();
    old_and_new_are_handled(transport, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_message_left_in_a_beanstalk_tube_is_handled_by_a_version_2_worker() {
    let server = Beanstalkd::start();
    let transport = mq::transport::connect(&server.url()).await.unwrap();
    old_and_new_are_handled(transport, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_versions_go_to_the_sqlite_failure_store_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let transport = mq::transport::connect(&url).await.unwrap();
    unreadable_versions_are_failed_with_their_reason(transport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_versions_go_to_the_beanstalk_failure_store_with_their_reason() {
    let server = Beanstalkd::start();
    let transport = mq::transport::connect(&server.url()).await.unwrap();
    unreadable_versions_are_failed_with_their_reason(transport).await;
}

/// A newer version is retried as an unknown name is (a worker of the newer build may take
/// it); an older one without a reader goes to the failure store at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_is_retried_an_older_one_without_reader_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let transport = mq::transport::connect(&url).await.unwrap();
    let newer = raw("OrderPlaced", Some(3), r#"{"id":950,"total_cents":1}"#);
    let unread = raw("Refund", None, r#"{"id":951}"#);
    for item in [newer, unread] {
        transport
            .put("orders", item, PutOptions::default())
            .await
            .unwrap();
    }
    let registry =
        Registry::from_slots([SlotDef::of::<record>(), SlotDef::of::<refund>()]).unwrap();
    let later = Backoff {
        base: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    };
    Worker::builder()
        .transport(transport.clone())
        .registry(registry)
        .handle_signals(false)
        .unknown_retries(5, later)
        .limit(2)
        .time_limit(Duration::from_secs(20))
        .run()
        .await
        .unwrap();
    let failed = failed(transport.as_ref()).await;
    assert_eq!(failed.len(), 1, "only the one without reader");
    assert!(failed[0]
        .failure
        .reason
        .starts_with("`Refund` version 1 has no reader"));
    let orders = mq_tests::queue_stats(transport.as_ref(), "orders").await;
    assert_eq!(
        orders.delayed, 1,
        "the newer one waits for a newer worker: {orders:?}"
    );
    let waiting = transport.browse("orders", 0, 10).await.unwrap();
    let waiting = String::from_utf8_lossy(&waiting[0].body).into_owned();
    assert!(
        waiting.contains(r#""attempt":2"#) && waiting.contains(r#""message_version":3"#),
        "{waiting}"
    );
}
