//! The outbox: dispatch inside the application's PostgreSQL transaction while the workers
//! run on beanstalkd or NATS, and `mq relay` moving what committed to the broker. A
//! rollback relays nothing; a relay killed with SIGKILL mid-run loses nothing and puts at
//! most one batch twice (on NATS the copies are dropped by `Nats-Msg-Id`); two relays at
//! once put each message once.

mod cli_support;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::transport::Transport;
use mq::{Bus, Envelope};
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::nats::NatsServer;
use mq_tests::postgres::FreshDb;
use serde::{Deserialize, Serialize};
use sqlx::Connection;

#[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
#[message(queue = "emails")]
struct SendOrderConfirmation {
    order_id: i64,
}

/// The batch the relays of these tests take: the most a killed one may put twice.
const BATCH: usize = 64;

fn emails() -> Vec<String> {
    vec!["emails".to_owned()]
}

async fn outbox_of(db: &FreshDb) -> Arc<dyn Transport> {
    mq::transport::connect(&db.url("schema=outbox"))
        .await
        .expect("open the outbox")
}

/// What is left in the outbox: ready, reserved or delayed rows.
async fn left_in(outbox: &dyn Transport) -> u64 {
    let stats = mq_tests::queue_stats(outbox, "emails").await;
    stats.ready + stats.reserved + stats.delayed
}

/// Waits up to 30 s until nothing is left in the outbox; fails with `what` if it is not.
async fn wait_until_empty(outbox: &dyn Transport, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while left_in(outbox).await > 0 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes everything on the broker's `emails` queue until it stays empty for `quiet`;
/// returns how many times each order id came.
async fn drain(broker: &dyn Transport, quiet: Duration) -> BTreeMap<i64, u32> {
    let mut seen = BTreeMap::new();
    loop {
        let jobs = broker
            .reserve(&emails(), 256, quiet)
            .await
            .expect("reserve");
        if jobs.is_empty() {
            return seen;
        }
        for job in jobs {
            let envelope = Envelope::decode(&job.body).expect("an envelope");
            let message: SendOrderConfirmation =
                serde_json::from_str(envelope.body.get()).expect("the message");
            *seen.entry(message.order_id).or_insert(0) += 1;
            broker.ack(&job).await.expect("ack");
        }
    }
}

fn relay_process(outbox_url: &str, broker_url: &str) -> Child {
    cli_support::command(&[
        "--url",
        broker_url,
        "relay",
        "--outbox",
        outbox_url,
        "--batch",
        &BATCH.to_string(),
        "--lease",
        "2s",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start mq relay")
}

/// A relay from `outbox` to `broker` in a task; send on the sender to stop it.
fn spawn_relay(
    outbox: &Arc<dyn Transport>,
    broker: &Arc<dyn Transport>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<mq::Result<mq::relay::RelayStats>>,
) {
    let relay = mq::relay::Relay::new(outbox.clone(), broker.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relaying = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, relaying)
}

/// Fills the outbox with orders `0..n` (as committed transactions would).
async fn fill(outbox: &Arc<dyn Transport>, n: i64) {
    let bus = Bus::new(outbox.clone());
    bus.dispatch_all((0..n).map(|order_id| SendOrderConfirmation { order_id }))
        .await
        .expect("fill the outbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_relays_nothing_and_a_commit_reaches_the_broker() {
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let broker = mq::transport::connect(&beanstalkd.url()).await.unwrap();
    let outbox = outbox_of(&db).await;
    let bus = Bus::new(broker.clone())
        .with_outbox(outbox.clone())
        .unwrap();
    let (stop, relaying) = spawn_relay(&outbox, &broker);

    let mut app = sqlx::PgConnection::connect(&db.url("")).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    bus.dispatch(SendOrderConfirmation { order_id: 1 })
        .within(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = app.begin().await.unwrap();
    for order_id in [2, 3] {
        bus.dispatch(SendOrderConfirmation { order_id })
            .within(&mut tx)
            .await
            .unwrap();
    }
    let committed = Instant::now();
    tx.commit().await.unwrap();
    let first = broker
        .reserve(&emails(), 1, Duration::from_secs(10))
        .await
        .unwrap();
    println!("commit to the broker's reserve: {:?}", committed.elapsed());
    assert_eq!(first.len(), 1, "the commit was relayed");
    broker.release(&first[0]).await.unwrap();
    let seen = drain(&*broker, Duration::from_millis(500)).await;
    assert_eq!(
        seen,
        BTreeMap::from([(2, 1), (3, 1)]),
        "the rolled back one never"
    );
    assert_eq!(left_in(&*outbox).await, 0, "relayed rows leave the outbox");

    stop.send(()).unwrap();
    let stats = relaying.await.unwrap().unwrap();
    assert_eq!(stats.relayed, 2);
}

/// A bus on a broker without an outbox says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_without_an_outbox_says_how_to_get_one() {
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let bus = Bus::connect(&beanstalkd.url()).await.unwrap();
    let mut app = sqlx::PgConnection::connect(&db.url("")).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    let error = bus
        .dispatch(SendOrderConfirmation { order_id: 1 })
        .within(&mut tx)
        .await
        .expect_err("no outbox");
    assert!(matches!(error, mq::Error::Unsupported { .. }), "{error}");
    assert!(error.to_string().contains("MQ_OUTBOX"), "{error}");
}

/// Kills a relay process once `at_least` messages reached the broker, then lets a second
/// relay finish; returns how often each order came, once the outbox is empty.
async fn kill_one_relay_mid_run(
    outbox_url: &str,
    broker_url: &str,
    total: i64,
    at_least: u64,
) -> BTreeMap<i64, u32> {
    let outbox = mq::transport::connect(outbox_url).await.unwrap();
    let broker = mq::transport::connect(broker_url).await.unwrap();
    fill(&outbox, total).await;
    let mut first = relay_process(outbox_url, broker_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = mq_tests::queue_stats(&*broker, "emails").await;
        if stats.ready >= at_least {
            break;
        }
        assert!(Instant::now() < deadline, "the relay relays: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let killed_with = left_in(&*outbox).await;
    println!("relay killed with {killed_with} messages left in the outbox");
    assert!(killed_with > 0, "killed mid-run, not after");

    let mut second = relay_process(outbox_url, broker_url);
    wait_until_empty(&*outbox, "the second relay empties the outbox").await;
    second.kill().unwrap();
    second.wait().unwrap();
    drain(&*broker, Duration::from_millis(500)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_run_loses_nothing_and_repeats_at_most_one_batch() {
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let total = 3000;
    let seen =
        kill_one_relay_mid_run(&db.url("schema=outbox"), &beanstalkd.url(), total, 500).await;
    let orders: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(
        orders,
        (0..total).collect::<Vec<_>>(),
        "every committed message arrived"
    );
    let copies: u32 = seen.values().map(|n| n - 1).sum();
    println!("beanstalkd: {copies} duplicates after the kill (batch {BATCH})");
    assert!(
        copies as usize <= BATCH,
        "{copies} duplicates: more than one batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_a_killed_relays_copies_are_dropped_by_message_id() {
    let db = FreshDb::create().await;
    let nats = NatsServer::start();
    let total = 2000;
    let seen = kill_one_relay_mid_run(&db.url("schema=outbox"), &nats.url(), total, 300).await;
    let orders: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(
        orders,
        (0..total).collect::<Vec<_>>(),
        "every committed message arrived"
    );
    let twice: Vec<i64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(o, _)| *o)
        .collect();
    assert!(twice.is_empty(), "NATS kept copies of {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_put_each_message_once() {
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let outbox_url = db.url("schema=outbox");
    let outbox = outbox_of(&db).await;
    let broker = mq::transport::connect(&beanstalkd.url()).await.unwrap();
    let total = 3000;
    let mut relays = [
        relay_process(&outbox_url, &beanstalkd.url()),
        relay_process(&outbox_url, &beanstalkd.url()),
    ];
    fill(&outbox, total).await;
    wait_until_empty(&*outbox, "the relays empty the outbox").await;
    for relay in &mut relays {
        relay.kill().unwrap();
        relay.wait().unwrap();
    }
    let seen = drain(&*broker, Duration::from_millis(500)).await;
    assert_eq!(seen.len() as i64, total, "every message arrived");
    let copies: u32 = seen.values().map(|n| n - 1).sum();
    assert_eq!(copies, 0, "two relays doubled {copies} messages");
}

/// What the relay counts on: NATS keeps one of two puts with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_keeps_one_of_two_puts_with_the_same_key() {
    let nats = NatsServer::start();
    let broker = mq::transport::connect(&nats.url()).await.unwrap();
    let options = mq::transport::PutOptions::default();
    for body in ["first", "again"] {
        broker
            .put_keyed("keyed", bytes::Bytes::from(body), options, "message-1")
            .await
            .unwrap();
    }
    broker
        .put_keyed("keyed", bytes::Bytes::from("other"), options, "message-2")
        .await
        .unwrap();
    let mut bodies = Vec::new();
    loop {
        let jobs = broker
            .reserve(&["keyed".to_owned()], 10, Duration::from_millis(500))
            .await
            .unwrap();
        if jobs.is_empty() {
            break;
        }
        for job in jobs {
            bodies.push(String::from_utf8(job.body.to_vec()).unwrap());
            broker.ack(&job).await.unwrap();
        }
    }
    assert_eq!(bodies, ["first", "other"]);
}

/// A worker started with `--outbox` relays what commits there to its own queue and
/// handles it: no `mq relay` needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_an_outbox_relays_and_handles_what_commits() {
    use mq_tests::worker_process::{recorded, wait_until_recorded, Work, WorkerProcess};
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let outbox_url = db.url("schema=outbox");
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let mut worker = WorkerProcess::start(
        env!("CARGO_BIN_EXE_test-worker"),
        &beanstalkd.url(),
        &record,
        &["--outbox", &outbox_url],
    );
    let broker = mq::transport::connect(&beanstalkd.url()).await.unwrap();
    let bus = Bus::new(broker).with_outbox(outbox_of(&db).await).unwrap();
    let mut app = sqlx::PgConnection::connect(&db.url("")).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    for n in 0..50 {
        let work = Work {
            n,
            sleep_ms: 0,
            panic: false,
        };
        bus.dispatch(work).within(&mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    tokio::task::spawn_blocking(move || wait_until_recorded(&record, 50))
        .await
        .unwrap();
    let mut handled = recorded(&dir.path().join("record"));
    handled.sort_unstable();
    assert_eq!(handled, (0..50).collect::<Vec<_>>());
    worker.signal("TERM");
    assert!(worker
        .wait_for(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

/// A row the broker refused goes back to the outbox with what is left of its delay, not
/// due at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delayed_message_keeps_its_delay_in_the_outbox() {
    let db = FreshDb::create().await;
    let outbox = outbox_of(&db).await;
    let options = mq::transport::PutOptions::default().with_delay(Duration::from_secs(3600));
    outbox
        .put("emails", bytes::Bytes::from("later"), options)
        .await
        .unwrap();
    let postgres = outbox
        .as_any()
        .downcast_ref::<mq::transport::postgres::PostgresTransport>()
        .unwrap();
    let taken = postgres
        .take_for_relay(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        taken[0].options.delay > Duration::from_secs(3500),
        "{:?}",
        taken[0].options
    );
    postgres.untake(&taken[0].job).await.unwrap();
    let stats = mq_tests::queue_stats(&*outbox, "emails").await;
    assert_eq!((stats.ready, stats.delayed), (0, 1), "{stats:?}");
}

/// A relay onto its own outbox is refused however the URL is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_onto_its_own_outbox_is_refused() {
    let db = FreshDb::create().await;
    let error =
        mq::relay::Relay::connect(&db.url("schema=outbox"), &db.url("schema=outbox&pool=20"))
            .await
            .expect_err("a loop");
    assert!(matches!(error, mq::Error::Unsupported { .. }), "{error}");
    assert!(
        mq::relay::Relay::connect(&db.url("schema=outbox"), &db.url("schema=work"))
            .await
            .is_ok()
    );
}

/// A message the broker can never take (over beanstalkd's job size) is moved to the
/// outbox's failure store with the reason, and does not hold back the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_broker_can_never_take_goes_to_the_outbox_failure_store() {
    let db = FreshDb::create().await;
    let beanstalkd = Beanstalkd::start();
    let broker = mq::transport::connect(&beanstalkd.url()).await.unwrap();
    let outbox = outbox_of(&db).await;
    let big = Envelope::new(
        "shop.Big",
        serde_json::value::to_raw_value(&"x".repeat(100_000)).unwrap(),
    );
    outbox
        .put("emails", big.encode(), mq::transport::PutOptions::default())
        .await
        .unwrap();
    fill(&outbox, 3).await;
    let (stop, relaying) = spawn_relay(&outbox, &broker);
    let seen = drain(&*broker, Duration::from_secs(2)).await;
    assert_eq!(seen, BTreeMap::from([(0, 1), (1, 1), (2, 1)]));
    stop.send(()).unwrap();
    let stats = relaying.await.unwrap().unwrap();
    assert_eq!((stats.relayed, stats.refused), (3, 1));
    let failed = outbox.failure_store().list(None, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].failure.reason.contains("refused"),
        "{:?}",
        failed[0].failure
    );
    assert_eq!(left_in(&*outbox).await, 0);
}
