//! Where a held pick starts (`transport/postgres/hold/cursor.rs`): after the last ready row
//! the transport picked, so that it does not walk the rows it just took; yet a more urgent
//! message comes first, a message this transport released comes back at its place at
//! once, and one that came back behind the cursor from elsewhere is picked when the rows
//! after the cursor run short, or by the whole pick at least every 100 ms.

use std::time::{Duration, Instant};

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
    // Sent acks leave the batch open (an ack waits for its commit, 5 ms, which would lease
    // the rest): the release is its last settle, inside the transaction, which commits;
    // m1 is ready again behind the cursor (m2).
    queue.send_ack(&first[0]).await.unwrap();
    queue.send_ack(&first[2]).await.unwrap();
    queue.release(&first[1]).await.unwrap();
    let next = reserve(&queue, 1).await;
    assert_eq!(bodies(&next), ["m1"], "the release reset the cursor");
    ack_all(&queue, &next).await;
}

/// How often a pick is whole (`hold/cursor.rs`, `WHOLE_EVERY`).
const WHOLE_EVERY: Duration = Duration::from_millis(100);

/// Another process's transaction locks the first row and rolls back after this
/// transport's pick passed it: the row is behind the cursor, and is taken once the rows
/// after the cursor do not fill a pick, before those of a less urgent priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_came_back_from_elsewhere_is_picked_when_the_rest_runs_short() {
    within_a_whole_pick(|db, queue| async move {
        put_numbered(&queue, "m", 8).await;
        queue
            .put(
                "work",
                "low".into(),
                PutOptions::default().with_priority(u32::MAX),
            )
            .await
            .unwrap();
        let started = lock_then_pass(&db, &queue, "m").await;
        let next = reserve(&queue, 2).await;
        ack_all(&queue, &next).await;
        let in_time = started.elapsed() < WHOLE_EVERY;
        let rest = reserve(&queue, 4).await;
        ack_all(&queue, &rest).await;
        (in_time, move || {
            assert_eq!(
                bodies(&next),
                ["m3", "m4"],
                "the pick starts after the cursor while the rows there fill it"
            );
            assert_eq!(
                bodies(&rest),
                ["m0", "m5", "m6", "m7"],
                "m0 is taken once the rows after the cursor run short, before a less \
                 urgent priority"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_came_back_from_elsewhere_is_picked_by_the_next_whole_pick() {
    within_a_whole_pick(|db, queue| async move {
        put_numbered(&queue, "n", 8).await;
        let started = lock_then_pass(&db, &queue, "n").await;
        let in_time = started.elapsed() < WHOLE_EVERY;
        let next = reserve(&queue, 1).await;
        ack_all(&queue, &next).await;
        (in_time, move || {
            assert_eq!(bodies(&next), ["n3"], "the pick starts after the cursor");
        })
    })
    .await;
    // The same, past the window.
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    put_numbered(&queue, "n", 8).await;
    lock_then_pass(&db, &queue, "n").await;
    tokio::time::sleep(WHOLE_EVERY + Duration::from_millis(50)).await;
    let whole = reserve(&queue, 1).await;
    assert_eq!(bodies(&whole), ["n0"], "a whole pick at least every 100 ms");
    ack_all(&queue, &whole).await;
}

/// Runs `scenario` on a fresh database and transport, then its checks if it says its last
/// pick began within [`WHOLE_EVERY`] of its first (the whole one), else runs it again: a
/// loaded machine can stretch the scenario past the next whole pick, which would take the
/// rows behind the cursor first. Five tries.
async fn within_a_whole_pick<S, F, C>(scenario: S)
where
    S: Fn(FreshDb, PostgresTransport) -> F,
    F: std::future::Future<Output = (bool, C)>,
    C: FnOnce(),
{
    for _ in 0..5 {
        let db = FreshDb::create().await;
        let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
        let (in_time, checks) = scenario(db, queue).await;
        if in_time {
            return checks();
        }
        println!("the scenario outlasted a whole pick's period; once more");
    }
    panic!("five tries each took over {WHOLE_EVERY:?}: the machine is too slow for this test");
}

/// `<prefix>0` locked by another connection, `<prefix>1` and `<prefix>2` picked (the
/// transport's first pick, a whole one) and acked, then the other connection rolls back:
/// `<prefix>0` is ready behind the cursor. Returns when the first pick began.
async fn lock_then_pass(db: &FreshDb, queue: &PostgresTransport, prefix: &str) -> Instant {
    let mut other = db.connect().await;
    other
        .execute(
            format!(
                "BEGIN; SELECT id FROM mq.mq_messages WHERE body = '{prefix}0'::bytea FOR UPDATE"
            )
            .as_str(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let first = reserve(queue, 2).await;
    assert_eq!(
        bodies(&first),
        [format!("{prefix}1"), format!("{prefix}2")],
        "the first is locked elsewhere"
    );
    ack_all(queue, &first).await;
    other.execute("ROLLBACK").await.unwrap();
    started
}
