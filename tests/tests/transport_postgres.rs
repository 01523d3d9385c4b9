//! The transport conformance suite on PostgreSQL, a fresh database per check, and what is
//! PostgreSQL's own: the URL's schema, migrations, LISTEN/NOTIFY wake-ups and polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq::transport::postgres::PostgresTransport;
use mq::transport::{PutOptions, Transport};
use mq_tests::postgres::FreshDb;
use sqlx::Executor;

async fn fresh() -> (FreshDb, Arc<dyn Transport>) {
    let db = FreshDb::create().await;
    let transport = mq::transport::connect(&db.url("")).await.expect("connect");
    (db, transport)
}

mq_tests::transport_suite!(fresh());
mq_tests::unique_suite!(fresh());

/// The suite again with every reservation leased at once (`?hold=0`): the path a batch
/// takes when it outlives its hold, or when the transport has too many batches open.
mod leased {
    use super::*;

    async fn fresh() -> (FreshDb, Arc<dyn Transport>) {
        let db = FreshDb::create().await;
        let transport = mq::transport::connect(&db.url("hold=0"))
            .await
            .expect("connect");
        (db, transport)
    }

    mq_tests::transport_suite!(fresh());
    mq_tests::unique_suite!(fresh());
}

fn queue(name: &str) -> Vec<String> {
    vec![name.to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schemas_are_two_independent_queues() {
    let db = FreshDb::create().await;
    let a = mq::transport::connect(&db.url("schema=team_a"))
        .await
        .unwrap();
    let b = mq::transport::connect(&db.url("schema=team_b"))
        .await
        .unwrap();
    assert!(a.describe().contains("schema=team_a"), "{}", a.describe());
    a.put("jobs", Bytes::from("for a"), PutOptions::default())
        .await
        .unwrap();
    assert!(b
        .reserve(&queue("jobs"), 10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    assert!(b.stats().await.unwrap().is_empty());
    let got = a
        .reserve(&queue("jobs"), 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    a.ack(&got[0]).await.unwrap();
    let mut conn = db.connect().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'mq_messages'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 2, "one table per schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let db = FreshDb::create().await;
    drop(mq::transport::connect(&db.url("")).await.unwrap());
    let mut conn = db.connect().await;
    conn.execute("UPDATE mq.mq_schema SET version = 99, compatible_from = 98")
        .await
        .unwrap();
    let error = mq::transport::connect(&db.url(""))
        .await
        .expect_err("a schema from a newer mq");
    let text = error.to_string();
    assert!(matches!(error, mq::Error::Postgres { .. }), "{text}");
    assert!(text.contains("version 99"), "{text}");
    assert!(text.contains("at least version 98"), "{text}");
    let ours = mq::transport::postgres::migrations().len();
    assert!(text.contains(&format!("version {ours}")), "{text}");
    let version: i32 = sqlx::query_scalar("SELECT version FROM mq.mq_schema")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 99, "never migrated down");
}

/// A rolling deploy: tables migrated by a newer mq that declares this build compatible are
/// used as they are, never migrated down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_compatible_schema_is_used_as_it_is() {
    let db = FreshDb::create().await;
    drop(mq::transport::connect(&db.url("")).await.unwrap());
    let mut conn = db.connect().await;
    let ours = i32::try_from(mq::transport::postgres::migrations().len()).unwrap();
    conn.execute(
        format!("UPDATE mq.mq_schema SET version = 99, compatible_from = {ours}").as_str(),
    )
    .await
    .unwrap();
    let transport = mq::transport::connect(&db.url("")).await.unwrap();
    transport
        .put(
            "work",
            Bytes::from("on newer tables"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let got = transport
        .reserve(&queue("work"), 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let version: (i32, i32) = sqlx::query_as("SELECT version, compatible_from FROM mq.mq_schema")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, (99, ours), "never migrated down");
}

/// Tables of version 1 (as mq 0.1's first PostgreSQL build made them) with a delayed item
/// and a ready one are migrated on connect: both are still there, the delayed one still
/// waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_one_tables_are_migrated_with_their_items() {
    let db = FreshDb::create().await;
    let mut conn = db.connect().await;
    let (_, v1) = mq::transport::postgres::migrations()[0];
    conn.execute(
        format!(
            "CREATE SCHEMA mq; SET search_path TO mq; \
             CREATE TABLE mq_schema (version integer NOT NULL); {v1} \
             INSERT INTO mq_schema (version) VALUES (1); \
             INSERT INTO mq_messages (queue, priority, due_at, ttr_ms, body) VALUES \
             ('work', 1, now(), 60000, 'ready'), \
             ('work', 1, now() + interval '1 hour', 60000, 'later')"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let transport = mq::transport::connect(&db.url("")).await.unwrap();
    let stats = mq_tests::queue_stats(&*transport, "work").await;
    assert_eq!((stats.ready, stats.delayed), (1, 1));
    let got = transport
        .reserve(&queue("work"), 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"ready");
    let stats = mq_tests::queue_stats(&*transport, "work").await;
    assert_eq!((stats.ready, stats.reserved, stats.delayed), (0, 1, 1));
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM mq.mq_messages ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    // Held by the reservation's open transaction (`hold`), the row is still `ready`.
    assert_eq!(states, ["ready", "delayed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_twice_at_once_migrates_once() {
    let db = FreshDb::create().await;
    let url = db.url("schema=racy");
    let (a, b) = tokio::join!(mq::transport::connect(&url), mq::transport::connect(&url));
    a.unwrap();
    b.unwrap();
    let mut conn = db.connect().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM racy.mq_schema")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// Reserves on `worker` with a 10 s timeout while `producer`, another transport, puts an
/// item after 300 ms: the reserve must return with it well before its timeout.
async fn reserve_sees_a_put_from_elsewhere(worker: PostgresTransport, producer: PostgresTransport) {
    let queues = queue("wake");
    let started = Instant::now();
    let (got, ()) = tokio::join!(worker.reserve(&queues, 1, Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        producer
            .put("wake", Bytes::from("now"), PutOptions::default())
            .await
            .unwrap();
    });
    let got = got.unwrap();
    assert_eq!(got.len(), 1, "woken by the put");
    // A correctness check (woken, not timed out), not a timing target.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    worker.ack(&got[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reserve_wakes_on_a_put_from_another_connection() {
    let db = FreshDb::create().await;
    let worker = PostgresTransport::connect(&db.url("")).await.unwrap();
    let producer = PostgresTransport::connect(&db.url("")).await.unwrap();
    reserve_sees_a_put_from_elsewhere(worker, producer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_listen_it_polls() {
    let db = FreshDb::create().await;
    let worker = PostgresTransport::connect(&db.url("listen=false&poll=100ms"))
        .await
        .unwrap();
    assert!(
        worker.describe().contains("listen=false"),
        "{}",
        worker.describe()
    );
    let producer = PostgresTransport::connect(&db.url("")).await.unwrap();
    reserve_sees_a_put_from_elsewhere(worker, producer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reserve_loses_nothing() {
    let db = FreshDb::create().await;
    let t = PostgresTransport::connect(&db.url("")).await.unwrap();
    let ttr = PutOptions::default().with_ttr(Duration::from_secs(600));
    for n in 0..50 {
        t.put("drop", Bytes::from(format!("{n}")), ttr)
            .await
            .unwrap();
    }
    // Reserves dropped at every point of their run: what they reserved comes back at once,
    // not after the 10-minute TTR.
    let queues = queue("drop");
    for n in 0..40u64 {
        let reserving = t.reserve(&queues, 50, Duration::from_secs(1));
        // One that finished in time handed its items to this test: give them back.
        if let Ok(jobs) = tokio::time::timeout(Duration::from_micros(n * 250), reserving).await {
            for job in jobs.unwrap() {
                t.release(&job).await.unwrap();
            }
        }
    }
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen < 50 && Instant::now() < deadline {
        let jobs = t
            .reserve(&queue("drop"), 50, Duration::from_millis(200))
            .await
            .unwrap();
        for job in &jobs {
            t.ack(job).await.unwrap();
        }
        seen += jobs.len();
    }
    assert_eq!(seen, 50, "every item is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_declares_its_size_limit_and_refuses_what_is_over_it_whichever_way_it_comes() {
    let db = FreshDb::create().await;
    let t = mq::transport::connect(&db.url("")).await.unwrap();
    let limit = mq::transport::postgres::MAX_MESSAGE_SIZE;
    assert_eq!(t.capabilities().max_message_size, Some(limit));
    let over = Bytes::from(vec![b'x'; limit + 1]);
    let error = t
        .put("big", over.clone(), PutOptions::default())
        .await
        .expect_err("over the limit");
    assert!(
        matches!(error, mq::Error::TooLarge { size, .. } if size == limit + 1),
        "{error:?}"
    );
    let error = t
        .put_many(
            "big",
            vec![Bytes::from("small"), over],
            PutOptions::default(),
        )
        .await
        .expect_err("a batch with one over the limit");
    assert!(matches!(error, mq::Error::TooLarge { .. }), "{error:?}");
    let stats = mq_tests::queue_stats(t.as_ref(), "big").await;
    assert_eq!(stats.ready, 0, "nothing of the refused batch was put");
}

#[tokio::test]
async fn an_unknown_database_says_how_to_create_it() {
    let url = format!("{}/mq_no_such_database", mq_tests::postgres::server());
    let error = mq::transport::connect(&url).await.expect_err("no database");
    let text = error.to_string();
    assert!(text.contains("createdb mq_no_such_database"), "{text}");
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    // Port 1 on loopback: nothing listens there.
    let error = mq::transport::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, mq::Error::Unreachable { .. }), "{error}");
    assert!(
        error.to_string().contains("is PostgreSQL running"),
        "{error}"
    );
}

#[tokio::test]
async fn a_malformed_url_says_how_to_write_it() {
    let error = mq::transport::connect("postgres://127.0.0.1/x")
        .await
        .expect_err("no user");
    assert!(matches!(error, mq::Error::InvalidUrl { .. }), "{error}");
    assert!(error.to_string().contains("USER"), "{error}");
}
