//! Debounce keeps about one row per waiting burst, not one per key ever used: a new burst
//! deletes the rows of bursts that ended, and never the row of a burst still waiting. On
//! SQLite and PostgreSQL, counted in their `mq_debounce` tables.

use std::time::Duration;

use bytes::Bytes;
use mq::transport::{Debounce, Put, PutOptions, Transport};

fn opts() -> PutOptions {
    PutOptions::new(10, Duration::ZERO, Duration::from_secs(30))
}

async fn put(t: &dyn Transport, key: &str, quiet: Duration) -> u64 {
    let debounce = Debounce::new(key, quiet, quiet * 2);
    match t
        .put_debounced("purge-q", Bytes::from_static(b"{}"), opts(), &debounce)
        .await
        .unwrap()
    {
        Put::Queued(id) => id,
        Put::Existing(id) => panic!("debounce answered an existing message {id}"),
    }
}

/// 200 short bursts end; a long one waits; four new bursts purge the ended ones and leave
/// the waiting one, which still takes the next dispatch of its key. `rows` counts the
/// table's rows.
async fn ended_bursts_are_purged<F, Fut>(t: &dyn Transport, rows: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let long = Duration::from_secs(30);
    let waiting = put(t, "waiting", long).await;
    for n in 0..200 {
        put(t, &format!("short-{n}"), Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..4 {
        put(t, &format!("new-{n}"), long).await;
    }
    assert_eq!(rows().await, 5, "the ended bursts' rows are gone");
    assert_eq!(
        put(t, "waiting", long).await,
        waiting,
        "the burst still waits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_bursts_are_purged_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    let t = mq::transport::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = || async {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT count(*) FROM mq_debounce", [], |row| row.get(0))
            .unwrap()
    };
    ended_bursts_are_purged(&*t, rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_bursts_are_purged_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    let t = mq::transport::connect(&db.url("")).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url("")).await.unwrap();
    let rows = || async {
        sqlx::query_scalar("SELECT count(*) FROM mq.mq_debounce")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    ended_bursts_are_purged(&*t, rows).await;
}
