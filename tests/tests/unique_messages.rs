//! Unique messages through the bus and the worker: a retried message keeps its key, a
//! rolled-back dispatch frees it (PostgreSQL's `within`; SQLite's transaction when the put
//! fails), a key given at dispatch, and the refusals on a backend that cannot keep a key
//! (at dispatch and at worker start-up), which name the backends that can.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::{Registry, SlotDef, Worker};
use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(
    queue = "flaky",
    unique = "order_id",
    retries = 2,
    backoff = "1500ms",
    backoff_max = "2s"
)]
struct Flaky {
    order_id: u64,
}

/// Counts the attempts; the first one of every message fails.
#[derive(Default)]
struct Attempts {
    count: AtomicU32,
}

#[mq::slot]
async fn flaky(
    _msg: &Flaky,
    ctx: mq::Context,
    attempts: mq::State<Attempts>,
) -> Result<(), String> {
    attempts.count.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() == 1 {
        return Err("the first attempt fails".into());
    }
    Ok(())
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A unique message whose first attempt fails keeps its key while it waits for its retry
/// and while the retry runs; once acked, the key is free.
async fn retry_keeps_the_key(url: &str) {
    let bus = mq::Bus::connect(url).await.unwrap();
    let first = bus.dispatch(Flaky { order_id: 1 }).await.unwrap();
    let attempts = Arc::new(Attempts::default());
    let worker = Worker::builder()
        .transport(bus.transport().clone())
        .registry(Registry::from_slots([SlotDef::of::<flaky>()]).unwrap())
        .state_arc(attempts.clone())
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let worker = Arc::new(worker);
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });
    wait_until("the first attempt failed", async || {
        attempts.count.load(Ordering::SeqCst) == 1
    })
    .await;
    let again = bus.dispatch(Flaky { order_id: 1 }).await.unwrap();
    assert_eq!(again, first, "the retried message keeps its key");
    let transport = bus.transport().clone();
    wait_until("the retry succeeded", async || {
        let stats = transport.stats().await.unwrap();
        attempts.count.load(Ordering::SeqCst) == 2
            && stats.iter().all(|s| s.ready + s.reserved + s.delayed == 0)
    })
    .await;
    let after = bus.dispatch(Flaky { order_id: 1 }).await.unwrap();
    assert_ne!(after, first, "the key is free once the message was acked");
    worker.stop();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_unique_message_keeps_its_key_on_memory() {
    retry_keeps_the_key("memory://unique-retry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_unique_message_keeps_its_key_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    retry_keeps_the_key(&format!("sqlite://{}", dir.path().join("mq.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_unique_message_keeps_its_key_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    retry_keeps_the_key(&db.url("")).await;
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "refunds")]
struct Refund {
    order_id: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_at_dispatch_is_per_message_type() {
    let bus = mq::Bus::connect("memory://unique-at-dispatch")
        .await
        .unwrap();
    let a = bus
        .dispatch(Refund { order_id: 1 })
        .unique("k")
        .await
        .unwrap();
    assert_eq!(
        bus.dispatch(Refund { order_id: 2 })
            .unique("k")
            .await
            .unwrap(),
        a
    );
    let other_type = bus
        .dispatch(Flaky { order_id: 1 })
        .unique("k")
        .await
        .unwrap();
    assert_ne!(other_type, a, "keys are per message type");
    let no_key = bus.dispatch(Refund { order_id: 1 }).await.unwrap();
    assert_ne!(no_key, a, "without a key, no uniqueness");
    let stats = bus.transport().stats().await.unwrap();
    let refunds = stats.iter().find(|s| s.queue == "refunds").unwrap();
    assert_eq!(refunds.ready, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_unique_dispatch_frees_the_key_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    let url = db.url("");
    let bus = mq::Bus::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let rolled_back = bus
        .dispatch(Flaky { order_id: 9 })
        .within(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let committed = bus.dispatch(Flaky { order_id: 9 }).await.unwrap();
    assert_ne!(
        committed, rolled_back,
        "the rolled-back dispatch kept no key"
    );
    let mut tx = pool.begin().await.unwrap();
    let inside = bus
        .dispatch(Flaky { order_id: 9 })
        .within(&mut tx)
        .await
        .unwrap();
    assert_eq!(
        inside, committed,
        "within a transaction, the held key is seen"
    );
    tx.commit().await.unwrap();
    let stats = bus.transport().stats().await.unwrap();
    assert_eq!(stats.iter().find(|s| s.queue == "flaky").unwrap().ready, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_dispatch_whose_transaction_fails_keeps_no_key_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    // Room for the schema and one small message, none for 256 KiB.
    let small = mq::transport::sqlite::SqliteOptions::default().max_size(128 * 1024);
    let transport = mq::transport::sqlite::SqliteTransport::open_with(&path, small)
        .await
        .unwrap();
    let bus = mq::Bus::new(Arc::new(transport));
    #[derive(mq::Message, Serialize, Deserialize)]
    #[message(queue = "big", unique = "order_id")]
    struct Big {
        order_id: u64,
        blob: String,
    }
    let too_big = Big {
        order_id: 1,
        blob: "x".repeat(256 * 1024),
    };
    let error = bus.dispatch(too_big).await.expect_err("the file is full");
    assert!(
        error.to_string().contains("full") || error.to_string().contains("size"),
        "{error}"
    );
    let fits = Big {
        order_id: 1,
        blob: "x".into(),
    };
    let id = bus.dispatch(fits).await.unwrap();
    let job = bus.transport().peek("big").await.unwrap().expect("queued");
    assert_eq!(
        mq::Envelope::decode(&job.body).unwrap().id,
        id.as_str(),
        "the key was free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beanstalkd_refuses_unique_messages_at_dispatch_and_at_worker_start_up() {
    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let url = server.url();
    let bus = mq::Bus::connect(&url).await.unwrap();
    let error = bus
        .dispatch(Flaky { order_id: 1 })
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(matches!(error, mq::Error::Unsupported { .. }), "{text}");
    assert!(
        text.contains("use a backend that can: sqlite, postgres, memory"),
        "{text}"
    );
    assert!(bus
        .transport()
        .stats()
        .await
        .unwrap()
        .iter()
        .all(|s| s.ready == 0));
    let error = Worker::builder()
        .url(&url)
        .registry(Registry::from_slots([SlotDef::of::<flaky>()]).unwrap())
        .state(Attempts::default())
        .handle_signals(false)
        .build()
        .await
        .expect_err("refused at start-up");
    let text = error.to_string();
    assert!(text.contains("unique messages"), "{text}");
    assert!(text.contains("sqlite, postgres, memory"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounced_burst_runs_once_with_its_last_body_and_is_refused_where_it_cannot_be() {
    let dir = tempfile::tempdir().unwrap();
    let bus = mq::Bus::connect(&format!("sqlite://{}", dir.path().join("mq.db").display()))
        .await
        .unwrap();
    let (quiet, max_wait) = (Duration::from_millis(300), Duration::from_secs(10));
    let mut ids = Vec::new();
    for order_id in 1..=20 {
        let refund = Refund { order_id };
        ids.push(
            bus.dispatch(refund)
                .debounce("shop-7", quiet, max_wait)
                .await
                .unwrap(),
        );
    }
    let stats = bus.transport().stats().await.unwrap();
    assert_eq!(
        stats.iter().find(|s| s.queue == "refunds").unwrap().delayed,
        1
    );
    let queues = vec!["refunds".to_owned()];
    let job = bus
        .transport()
        .reserve(&queues, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(job.len(), 1);
    let envelope = mq::Envelope::decode(&job[0].body).unwrap();
    assert_eq!(envelope.id, ids[19].as_str(), "the last dispatch's message");
    assert_eq!(envelope.body.get(), r#"{"order_id":20}"#);
    let both = bus
        .dispatch(Flaky { order_id: 1 })
        .debounce("k", quiet, max_wait)
        .await;
    assert!(both
        .unwrap_err()
        .to_string()
        .contains("either unique or debounced"));

    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let beanstalk = mq::Bus::connect(&server.url()).await.unwrap();
    let refused = beanstalk
        .dispatch(Refund { order_id: 1 })
        .debounce("k", quiet, max_wait)
        .await;
    let text = refused.unwrap_err().to_string();
    assert!(
        text.contains("use a backend that can: sqlite, postgres, memory"),
        "{text}"
    );
}
