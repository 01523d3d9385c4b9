//! Dispatch inside the application's own PostgreSQL transaction: a rollback leaves nothing
//! queued, a commit wakes an idle worker, and the order row and its message commit together.

use std::time::{Duration, Instant};

use mq::{Bus, Error};
use mq_tests::postgres::FreshDb;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Executor};

#[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
#[message(queue = "emails")]
struct SendOrderConfirmation {
    order_id: i64,
}

fn emails() -> Vec<String> {
    vec!["emails".to_owned()]
}

/// The application's own table, in its own schema (`public`), beside mq's (`mq`).
async fn orders(db: &FreshDb) -> sqlx::PgConnection {
    let mut app = db.connect().await;
    app.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, total bigint NOT NULL)")
        .await
        .expect("create orders");
    app
}

async fn place_order(tx: &mut sqlx::PgConnection, bus: &Bus) -> i64 {
    let order_id: i64 = sqlx::query_scalar("INSERT INTO orders (total) VALUES (100) RETURNING id")
        .fetch_one(&mut *tx)
        .await
        .expect("insert order");
    bus.dispatch(SendOrderConfirmation { order_id })
        .within(tx)
        .await
        .expect("dispatch within");
    order_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_leaves_neither_the_order_nor_its_message() {
    let db = FreshDb::create().await;
    let bus = Bus::connect(&db.url("")).await.expect("bus");
    let mut app = orders(&db).await;

    let mut tx = app.begin().await.expect("begin");
    place_order(&mut tx, &bus).await;
    // Not committed: no worker sees it.
    let seen = bus
        .transport()
        .reserve(&emails(), 10, Duration::from_millis(200))
        .await
        .expect("reserve");
    assert!(
        seen.is_empty(),
        "an uncommitted message was handed out: {seen:?}"
    );
    tx.rollback().await.expect("rollback");

    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut app)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let stats = bus.transport().stats().await.expect("stats");
    assert!(
        stats.iter().all(|q| q.ready + q.delayed + q.reserved == 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_an_idle_worker_with_the_message() {
    let db = FreshDb::create().await;
    let bus = Bus::connect(&db.url("")).await.expect("bus");
    let worker_side = mq::transport::connect(&db.url("")).await.expect("worker");
    let mut app = orders(&db).await;

    let waiting = tokio::spawn(async move {
        let jobs = worker_side
            .reserve(&emails(), 10, Duration::from_secs(20))
            .await
            .expect("reserve");
        (jobs, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = app.begin().await.expect("begin");
    let order_id = place_order(&mut tx, &bus).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the worker saw the message before the commit"
    );
    let committed = Instant::now();
    tx.commit().await.expect("commit");

    let (jobs, woke) = waiting.await.expect("worker task");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let envelope = mq::Envelope::decode(&jobs[0].body).expect("an envelope");
    let message: SendOrderConfirmation =
        serde_json::from_str(envelope.body.get()).expect("the message");
    assert_eq!(message, SendOrderConfirmation { order_id });
    // Woken by the commit's NOTIFY, not by the 20 s timeout (the figure is printed; the
    // benchmark is where its size is judged).
    let latency = woke.duration_since(committed);
    println!("commit to reservation: {latency:?}");
    assert!(latency < Duration::from_secs(5), "{latency:?}");
}

#[tokio::test]
async fn within_on_a_bus_that_is_not_postgres_is_refused_and_leaves_the_transaction_alone() {
    let db = FreshDb::create().await;
    let mut app = orders(&db).await;
    let bus = Bus::connect("memory://within-refused").await.expect("bus");
    let mut tx = app.begin().await.expect("begin");
    let error = bus
        .dispatch(SendOrderConfirmation { order_id: 1 })
        .within(&mut tx)
        .await
        .expect_err("memory:// has no PostgreSQL transaction");
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(error.to_string().contains("postgres://"), "{error}");
    sqlx::query("INSERT INTO orders (total) VALUES (1)")
        .execute(&mut *tx)
        .await
        .expect("the transaction goes on");
    tx.commit().await.expect("commit");
}

/// A transaction on another database than the bus's: the error says which database the
/// bus is on, not PostgreSQL's bare "relation does not exist".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_a_transaction_on_another_database_says_where_the_bus_is() {
    let queues = FreshDb::create().await;
    let elsewhere = FreshDb::create().await;
    let bus = Bus::connect(&queues.url("")).await.expect("bus");
    let mut app = orders(&elsewhere).await;
    let mut tx = app.begin().await.expect("begin");
    let error = bus
        .dispatch(SendOrderConfirmation { order_id: 1 })
        .within(&mut tx)
        .await
        .expect_err("no mq tables in that database");
    let text = error.to_string();
    assert!(matches!(error, Error::Postgres { .. }), "{text}");
    assert!(text.contains("mq.mq_messages"), "{text}");
    assert!(
        text.contains(queues.name()),
        "names the bus's database: {text}"
    );
    tx.rollback().await.expect("rollback");
}
