//! Where a held pick starts (`transport/postgres/hold/cursor.rs`): after the last ready row
//! the transport picked, so that it does not walk the rows it just took; yet a more urgent
//! message comes first, a message this transport released comes back at its place at
//! once, and one that came back behind the cursor from elsewhere is picked when the rows
//! after the cursor run short, or by the whole pick at least every 100 ms.

use std::time::Duration;

use mq::transport::postgres::PostgresTransport;
use mq::transport::{Job, PutOptions, Transport};
use mq_tests::postgres::FreshDb;
use sqlx::Executor;

fn work() -> Vec<String> {
    vec!["work".to_owned()]
}

fn bodies(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .map(|job| String::from_utf8_lossy(&job.body).into_owned())
        .collect()
}

async fn put_numbered(queue: &PostgresTransport, prefix: &str, count: usize) {
    for n in 0..count {
        queue
            .put("work", format!("{prefix}{n}").into(), PutOptions::default())
            .await
            .unwrap();
    }
}

async fn reserve(queue: &PostgresTransport, max: usize) -> Vec<Job> {
    queue.reserve(&work(), max, Duration::ZERO).await.unwrap()
}

async fn ack_all(queue: &PostgresTransport, jobs: &[Job]) {
    for job in jobs {
        queue.ack(job).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_more_urgent_message_put_after_a_pick_comes_first() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    put_numbered(&queue, "m", 6).await;
    let first = reserve(&queue, 2).await;
    assert_eq!(bodies(&first), ["m0", "m1"]);
    ack_all(&queue, &first).await;
    queue
        .put(
            "work",
            "urgent".into(),
            PutOptions::default().with_priority(1),
        )
        .await
        .unwrap();
    queue
        .put(
            "work",
            "later".into(),
            PutOptions::default().with_priority(u32::MAX),
        )
        .await
        .unwrap();
    let next = reserve(&queue, 10).await;
    assert_eq!(bodies(&next), ["urgent", "m2", "m3", "m4", "m5", "later"]);
    ack_all(&queue, &next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_message_comes_back_at_its_place_at_once() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    put_numbered(&queue, "m", 6).await;
    let first = reserve(&queue, 3).await;
    assert_eq!(bodies(&first), ["m0", "m1", "m2"]);
    queue.ack(&first[0]).await.unwrap();
    queue.ack(&first[2]).await.unwrap();
    // The batch's last settle: it commits, and m1 is ready again behind the cursor (m2).
    queue.release(&first[1]).await.unwrap();
    let next = reserve(&queue, 1).await;
    assert_eq!(bodies(&next), ["m1"], "the release reset the cursor");
    ack_all(&queue, &next).await;
}

/// Another process's transaction locks the first row and rolls back after this
/// transport's pick passed it: the row is behind the cursor, and is taken once the rows
/// after the cursor do not fill a pick, or by the next whole pick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_came_back_from_elsewhere_is_picked_when_the_rest_runs_short() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    put_numbered(&queue, "m", 8).await;
    let mut other = db.connect().await;
    lock_then_pass(&queue, &mut other, "m").await;

    let next = reserve(&queue, 2).await;
    assert_eq!(
        bodies(&next),
        ["m3", "m4"],
        "the pick starts after the cursor while the rows there fill it"
    );
    ack_all(&queue, &next).await;
    let rest = reserve(&queue, 10).await;
    assert_eq!(
        bodies(&rest),
        ["m0", "m5", "m6", "m7"],
        "m0 is taken once the rows after the cursor run short, in its place"
    );
    ack_all(&queue, &rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_came_back_from_elsewhere_is_picked_by_the_next_whole_pick() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    put_numbered(&queue, "n", 8).await;
    let mut other = db.connect().await;
    lock_then_pass(&queue, &mut other, "n").await;

    let next = reserve(&queue, 1).await;
    assert_eq!(bodies(&next), ["n3"], "the pick starts after the cursor");
    ack_all(&queue, &next).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let whole = reserve(&queue, 1).await;
    assert_eq!(bodies(&whole), ["n0"], "a whole pick at least every 100 ms");
    ack_all(&queue, &whole).await;
}

/// `<prefix>0` locked by `other`, `<prefix>1` and `<prefix>2` picked and acked, then
/// `other` rolls back: `<prefix>0` is ready behind the cursor.
async fn lock_then_pass(queue: &PostgresTransport, other: &mut sqlx::PgConnection, prefix: &str) {
    other
        .execute(
            format!(
                "BEGIN; SELECT id FROM mq.mq_messages WHERE body = '{prefix}0'::bytea FOR UPDATE"
            )
            .as_str(),
        )
        .await
        .unwrap();
    let first = reserve(queue, 2).await;
    assert_eq!(
        bodies(&first),
        [format!("{prefix}1"), format!("{prefix}2")],
        "the first is locked elsewhere"
    );
    ack_all(queue, &first).await;
    other.execute("ROLLBACK").await.unwrap();
}
