//! Batches held by an open transaction (`transport/postgres/hold/`): a worker killed while
//! it holds one gives the rows back at once, not after their TTR; a settle returns only once
//! committed, whatever the rest of its batch does, but for the worker's ack (`send_ack`),
//! which `acks_answered` waits for; a batch past its limit is leased.
//!
//! The child is this test binary run again with `MQ_PG_HOLD_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use mq::transport::postgres::PostgresTransport;
use mq::transport::{PutOptions, Transport};
use mq_tests::postgres::FreshDb;
use sqlx::PgConnection;

const ROLE: &str = "MQ_PG_HOLD_CHILD";
const URL: &str = "MQ_PG_HOLD_CHILD_URL";

fn work() -> Vec<String> {
    vec!["work".to_owned()]
}

/// How many rows of `work` are in each state, as the table says.
async fn states(conn: &mut PgConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT state, count(*) FROM mq.mq_messages WHERE queue = 'work' \
         GROUP BY state ORDER BY state",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The child's part: reserve all 50 messages, say so, and hold them without settling any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "hold-and-hang");
    let queue = PostgresTransport::connect(&std::env::var(URL).unwrap())
        .await
        .unwrap();
    let jobs = queue
        .reserve(&work(), 50, Duration::from_secs(5))
        .await
        .unwrap();
    println!("reserved {}", jobs.len());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// A process killed with SIGKILL while its batch is held (before the batch's hold runs
/// out): PostgreSQL rolls its transaction back when the connection drops, and every
/// message is reservable again at once, though their TTR is a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_holding_a_batch_gives_it_back_at_once() {
    let db = FreshDb::create().await;
    let url = db.url("");
    let queue = PostgresTransport::connect(&url).await.unwrap();
    let options = PutOptions::default().with_ttr(Duration::from_secs(60));
    for n in 0..50 {
        queue
            .put("work", format!("m-{n}").into(), options)
            .await
            .unwrap();
    }
    let mut child = mq_tests::child_process(ROLE, "hold-and-hang")
        .env(URL, &url)
        .spawn()
        .unwrap();
    let held = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once("reserved ")?.1.trim().parse::<usize>().ok());
    assert_eq!(held, Some(50), "the child says what it reserved");
    let stats = mq_tests::queue_stats(&queue, "work").await;
    assert_eq!(
        (stats.ready, stats.reserved),
        (0, 50),
        "held, counted as reserved"
    );
    assert!(
        queue
            .reserve(&work(), 50, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "a held message was handed out twice"
    );
    child.kill().unwrap(); // SIGKILL, well within the batch's hold of 1 s
    child.wait().unwrap();
    let killed_at = Instant::now();

    let mut back = Vec::new();
    while back.len() < 50 && killed_at.elapsed() < Duration::from_secs(20) {
        back.extend(
            queue
                .reserve(&work(), 50, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    let waited = killed_at.elapsed();
    assert_eq!(back.len(), 50, "every held message came back");
    assert!(
        waited < Duration::from_secs(10),
        "the messages came back after {waited:?}, as if leased for their TTR of 60 s"
    );
    for job in &back {
        queue.ack(job).await.unwrap();
    }
    println!("held batch back {waited:?} after the SIGKILL");
}

/// An ack returns once committed: a second transport (as another process) sees the row
/// gone when it returns, though the other item of the batch is still running; that one
/// went over to a lease meanwhile, and settles as a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_returns_once_committed_while_its_batch_runs_on() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    let other = PostgresTransport::connect(&db.url("")).await.unwrap();
    let mut conn = db.connect().await;
    for body in ["fast", "slow"] {
        queue
            .put("work", body.into(), PutOptions::default())
            .await
            .unwrap();
    }
    let jobs = queue.reserve(&work(), 2, Duration::ZERO).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(states(&mut conn).await, [("ready".to_owned(), 2)], "held");

    let started = Instant::now();
    queue.ack(&jobs[0]).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        states(&mut conn).await,
        [("reserved".to_owned(), 1)],
        "the ack is committed and the running item leased"
    );
    let seen = mq_tests::queue_stats(&other, "work").await;
    assert_eq!((seen.ready, seen.reserved), (0, 1));
    assert!(
        other
            .reserve(&work(), 2, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "the leased item was handed out again"
    );
    queue.keep_alive(&jobs[1]).await.unwrap();
    queue.ack(&jobs[1]).await.unwrap();
    assert!(states(&mut conn).await.is_empty());
    assert!(matches!(
        queue.ack(&jobs[0]).await,
        Err(mq::Error::ReservationLost(_))
    ));
    println!("ack with its batch still running returned after {took:?}");
}

/// A retry and a fail inside a held batch are committed with it: the new row and the
/// failure record are there, the old rows gone, once both calls returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_fail_in_a_held_batch_are_committed() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    let mut conn = db.connect().await;
    for body in ["again", "broken"] {
        queue
            .put("work", body.into(), PutOptions::default())
            .await
            .unwrap();
    }
    let jobs = queue.reserve(&work(), 2, Duration::ZERO).await.unwrap();
    let later = PutOptions::default().with_delay(Duration::from_secs(30));
    let failure = mq::transport::Failure::new(
        Vec::new(),
        "undecodable".to_owned(),
        1,
        std::time::SystemTime::now(),
    );
    let (retried, failed) = tokio::join!(
        queue.retry(&jobs[0], "again, attempt 2".into(), later),
        queue.fail(
            &jobs[1],
            jobs[1].body.clone(),
            PutOptions::default(),
            failure
        ),
    );
    retried.unwrap();
    failed.unwrap();
    assert_eq!(states(&mut conn).await, [("delayed".to_owned(), 1)]);
    let (body, deliveries, wait_s): (Vec<u8>, i64, f64) = sqlx::query_as(
        "SELECT body, deliveries, extract(epoch FROM due_at - now())::float8 \
         FROM mq.mq_messages",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(body, b"again, attempt 2");
    assert_eq!(deliveries, 1, "the held delivery is counted in the retry");
    assert!(
        wait_s > 29.0,
        "the delay runs from the retry: {wait_s} s left"
    );
    let failed = queue.failure_store().list(None, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(&failed[0].body[..], b"broken");
}

/// With a pool of 4 connections, one batch may be held at a time (the listener and the
/// other statements keep the rest): a second reservation meanwhile is leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_open_batches_limit_a_reservation_is_leased() {
    let db = FreshDb::create().await;
    let queue = PostgresTransport::connect(&db.url("pool=4")).await.unwrap();
    let mut conn = db.connect().await;
    for n in 0..4 {
        queue
            .put("work", format!("m-{n}").into(), PutOptions::default())
            .await
            .unwrap();
    }
    let first = queue.reserve(&work(), 2, Duration::ZERO).await.unwrap();
    let second = queue.reserve(&work(), 2, Duration::ZERO).await.unwrap();
    assert_eq!((first.len(), second.len()), (2, 2));
    assert_eq!(
        states(&mut conn).await,
        [("ready".to_owned(), 2), ("reserved".to_owned(), 2)],
        "one batch held, the other leased"
    );
    for job in first.iter().chain(&second) {
        queue.ack(job).await.unwrap();
    }
    assert!(states(&mut conn).await.is_empty());
}

/// A row whose lease ran out goes to a held batch as a lease at once: its old holder, still
/// running, settles at once with `ReservationLost` rather than waiting on the batch's row
/// lock for its whole hold (5 s here), and the new holder's settles go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_does_not_wait_for_a_held_batch() {
    let db = FreshDb::create().await;
    let old = PostgresTransport::connect(&db.url("hold=0")).await.unwrap();
    let new = PostgresTransport::connect(&db.url("hold=5s"))
        .await
        .unwrap();
    let options = PutOptions::default().with_ttr(Duration::from_secs(1));
    old.put("work", "slow".into(), options).await.unwrap();
    let stale = old.reserve(&work(), 1, Duration::ZERO).await.unwrap();
    assert_eq!(stale.len(), 1);
    let again = new
        .reserve(&work(), 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the item after its lease ran out");
    assert_eq!(again[0].id, stale[0].id);

    let started = Instant::now();
    let acked = old.ack(&stale[0]).await;
    let took = started.elapsed();
    assert!(
        matches!(acked, Err(mq::Error::ReservationLost(_))),
        "{acked:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the stale ack waited {took:?} on the held batch's lock"
    );
    new.keep_alive(&again[0]).await.unwrap();
    new.ack(&again[0]).await.unwrap();
    let mut conn = db.connect().await;
    assert!(states(&mut conn).await.is_empty());
}

/// The worker's ack (`send_ack`) of a held item returns without waiting for its batch's
/// commit, and `acks_answered` waits for it: a trigger makes the commit's `DELETE` take
/// 800 ms, which `ack` would wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_ack_does_not_wait_for_the_commit_and_acks_answered_does() {
    let db = FreshDb::create().await;
    let (queue, mut conn, jobs) = two_held_with_slow_deletes(&db, "0.8").await;

    let started = Instant::now();
    queue.send_ack(&jobs[0]).await.unwrap();
    let returned = started.elapsed();
    tokio::time::timeout(Duration::from_secs(10), queue.acks_answered())
        .await
        .expect("answered once the batch commits");
    let answered = started.elapsed();
    assert!(
        returned < Duration::from_millis(400),
        "send_ack waited {returned:?}, as for the commit"
    );
    assert!(
        answered >= Duration::from_millis(800),
        "acks_answered returned after {answered:?}, before the commit's DELETE ended"
    );
    assert_eq!(
        states(&mut conn).await,
        [("reserved".to_owned(), 1)],
        "the ack is committed and the running item leased"
    );
    queue.send_ack(&jobs[1]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), queue.acks_answered())
        .await
        .expect("a leased item's ack is answered at once");
    assert!(states(&mut conn).await.is_empty());
}

/// A batch whose transaction is lost after the worker's ack returned (its backend ended
/// during the commit's `DELETE`): `acks_answered` still returns, and both messages are
/// there again, to be delivered again (at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_ack_whose_batch_is_lost_is_answered_and_its_message_comes_back() {
    let db = FreshDb::create().await;
    let (queue, mut conn, jobs) = two_held_with_slow_deletes(&db, "30").await;
    queue.send_ack(&jobs[0]).await.unwrap();

    // The batch commits 5 ms later, leasing the running item: its DELETE hangs.
    let started = Instant::now();
    let backend: i32 = loop {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'DELETE FROM%' \
             AND pid <> pg_backend_pid()",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no commit seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(backend)
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), queue.acks_answered())
        .await
        .expect("a lost batch answers its sent acks");
    assert_eq!(
        states(&mut conn).await,
        [("ready".to_owned(), 2)],
        "rolled back: the acked message comes back, and the running one"
    );
}

/// Two messages reserved as one held batch, on a database whose `DELETE` of a message
/// sleeps `seconds` first (a trigger): the transport, a connection of the test's own, and
/// the two jobs.
async fn two_held_with_slow_deletes(
    db: &FreshDb,
    seconds: &str,
) -> (PostgresTransport, PgConnection, Vec<mq::transport::Job>) {
    let queue = PostgresTransport::connect(&db.url("")).await.unwrap();
    let mut conn = db.connect().await;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION mq.slow_delete() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep({seconds}); RETURN OLD; END $$; \
         CREATE TRIGGER slow_delete BEFORE DELETE ON mq.mq_messages \
         FOR EACH ROW EXECUTE FUNCTION mq.slow_delete()"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    for body in ["acked", "running"] {
        queue
            .put("work", body.into(), PutOptions::default())
            .await
            .unwrap();
    }
    let jobs = queue.reserve(&work(), 2, Duration::ZERO).await.unwrap();
    assert_eq!(jobs.len(), 2, "one batch of two");
    (queue, conn, jobs)
}
