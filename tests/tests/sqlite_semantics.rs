//! The SQLite transport's semantics, operation by operation, on real files in temporary
//! folders: put/reserve/ack, priorities, delays, release, retry, leases and keep-alive,
//! stale reservations, the failure store, stats, peek, flush, reopening, wake-up latency.

use std::time::{Duration, Instant, SystemTime};

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{Failure, Job, PutOptions, SlotFailure, Transport};
use mq::Error;
use tempfile::TempDir;

async fn open() -> (TempDir, SqliteTransport) {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteTransport::open(dir.path().join("mq.db"))
        .await
        .unwrap();
    (dir, queue)
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn with(priority: u32, delay: Duration, ttr: Duration) -> PutOptions {
    PutOptions::new(priority, delay, ttr)
}

fn bodies(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .map(|job| String::from_utf8(job.body.to_vec()).unwrap())
        .collect()
}

async fn reserve_now(queue: &SqliteTransport, names: &[&str], max: usize) -> Vec<Job> {
    queue
        .reserve(&queues(names), max, Duration::ZERO)
        .await
        .unwrap()
}

fn failure() -> Failure {
    Failure::new(
        vec![SlotFailure {
            slot: "shop::mail::send".into(),
            error: "smtp down".into(),
        }],
        "slot shop::mail::send failed 3 times".into(),
        3,
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
    )
}

fn assert_lost(result: mq::Result<()>, id: u64) {
    match result {
        Err(Error::ReservationLost(lost)) => assert_eq!(lost, id),
        other => panic!("expected ReservationLost({id}), got {other:?}"),
    }
}

#[tokio::test]
async fn put_reserve_ack_and_describe() {
    let (dir, queue) = open().await;
    let expected = format!(
        "sqlite://{}",
        dir.path().canonicalize().unwrap().join("mq.db").display()
    );
    assert_eq!(queue.describe(), expected);
    assert!(queue.describe().starts_with("sqlite:///"));

    let id = queue
        .put("emails", "hello".into(), PutOptions::default())
        .await
        .unwrap();
    let jobs = reserve_now(&queue, &["emails"], 10).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert_eq!(jobs[0].queue, "emails");
    assert_eq!(&jobs[0].body[..], b"hello");
    assert_eq!(jobs[0].deliveries, 1);
    assert!(
        reserve_now(&queue, &["emails"], 10).await.is_empty(),
        "reserved twice"
    );
    queue.ack(&jobs[0]).await.unwrap();
    assert_lost(queue.ack(&jobs[0]).await, id);
    assert!(queue.stats().await.unwrap().is_empty());
}

#[tokio::test]
async fn priorities_then_age_and_earlier_queues_first() {
    let (_dir, queue) = open().await;
    let zero = Duration::ZERO;
    let ttr = Duration::from_secs(60);
    queue
        .put("b", "b-urgent".into(), with(0, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "a-late-1".into(), with(100, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "a-urgent".into(), with(1, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "a-late-2".into(), with(100, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "a-mid".into(), with(50, zero, ttr))
        .await
        .unwrap();

    let jobs = reserve_now(&queue, &["a", "b"], 10).await;
    assert_eq!(
        bodies(&jobs),
        ["a-urgent", "a-mid", "a-late-1", "a-late-2", "b-urgent"]
    );
    for job in &jobs {
        queue.ack(job).await.unwrap();
    }

    queue
        .put("a", "1".into(), with(5, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "2".into(), with(5, zero, ttr))
        .await
        .unwrap();
    queue
        .put("a", "3".into(), with(5, zero, ttr))
        .await
        .unwrap();
    assert_eq!(bodies(&reserve_now(&queue, &["a"], 2).await), ["1", "2"]);
    assert_eq!(bodies(&reserve_now(&queue, &["a"], 2).await), ["3"]);
    assert!(reserve_now(&queue, &["nothing-here"], 2).await.is_empty());
}

#[tokio::test]
async fn a_delayed_message_waits_and_a_waiting_reserve_gets_it_on_time() {
    let (_dir, queue) = open().await;
    let delay = Duration::from_millis(300);
    let put_at = Instant::now();
    queue
        .put(
            "q",
            "later".into(),
            with(10, delay, Duration::from_secs(60)),
        )
        .await
        .unwrap();
    queue
        .put(
            "q",
            "now".into(),
            with(10, Duration::ZERO, Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(bodies(&reserve_now(&queue, &["q"], 10).await), ["now"]);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats[0].ready, stats[0].reserved, stats[0].delayed),
        (0, 1, 1)
    );
    assert!(queue.peek("q").await.unwrap().is_none());

    let jobs = queue
        .reserve(&queues(&["q"]), 10, Duration::from_secs(5))
        .await
        .unwrap();
    let waited = put_at.elapsed();
    assert_eq!(bodies(&jobs), ["later"]);
    assert!(
        waited >= delay,
        "handed out after {waited:?}, before its delay of {delay:?}"
    );
    assert!(
        waited < delay + Duration::from_millis(250),
        "woke late: {waited:?}"
    );
}

#[tokio::test]
async fn release_hands_back_at_once_and_counts_the_next_delivery() {
    let (_dir, queue) = open().await;
    let id = queue
        .put("q", "x".into(), PutOptions::default())
        .await
        .unwrap();
    let first = reserve_now(&queue, &["q"], 1).await.remove(0);
    queue.release(&first).await.unwrap();
    let second = reserve_now(&queue, &["q"], 1).await.remove(0);
    assert_eq!((second.id, second.deliveries), (id, 2));
    assert_lost(queue.release(&first).await, id);
    assert_lost(queue.ack(&first).await, id);
    queue.ack(&second).await.unwrap();
}

#[tokio::test]
async fn retry_replaces_the_message_in_one_step_with_its_delay() {
    let (_dir, queue) = open().await;
    let id = queue
        .put("q", "attempt-1".into(), PutOptions::default())
        .await
        .unwrap();
    let job = reserve_now(&queue, &["q"], 1).await.remove(0);
    let options = with(7, Duration::from_millis(200), Duration::from_secs(60));
    queue
        .retry(&job, "attempt-2".into(), options)
        .await
        .unwrap();
    assert_lost(queue.ack(&job).await, id);
    assert_lost(queue.retry(&job, "again".into(), options).await, id);
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats[0].ready, stats[0].reserved, stats[0].delayed),
        (0, 0, 1)
    );

    let again = queue
        .reserve(&queues(&["q"]), 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(bodies(&again), ["attempt-2"]);
    assert_ne!(again[0].id, id);
    assert_eq!(
        again[0].deliveries, 2,
        "the delivery count carries over a retry"
    );
    queue.ack(&again[0]).await.unwrap();
}

#[tokio::test]
async fn a_lease_that_runs_out_is_handed_out_again_and_the_old_holder_is_refused() {
    let (_dir, queue) = open().await;
    let ttr = Duration::from_millis(250);
    let id = queue
        .put("q", "x".into(), with(10, Duration::ZERO, ttr))
        .await
        .unwrap();
    let reserved_at = Instant::now();
    let stale = reserve_now(&queue, &["q"], 1).await.remove(0);
    assert!(reserve_now(&queue, &["q"], 1).await.is_empty());

    let fresh = queue
        .reserve(&queues(&["q"]), 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    assert!(reserved_at.elapsed() >= ttr);
    assert_eq!((fresh.id, fresh.deliveries), (id, 2));

    assert_lost(queue.ack(&stale).await, id);
    assert_lost(queue.keep_alive(&stale).await, id);
    assert_lost(queue.release(&stale).await, id);
    assert_lost(
        queue.retry(&stale, "y".into(), PutOptions::default()).await,
        id,
    );
    assert_lost(
        queue
            .fail(&stale, "y".into(), PutOptions::default(), failure())
            .await,
        id,
    );
    assert!(queue
        .failure_store()
        .list(None, 10)
        .await
        .unwrap()
        .is_empty());

    queue.ack(&fresh).await.unwrap();
    assert!(queue.stats().await.unwrap().is_empty());
}

#[tokio::test]
async fn keep_alive_renews_the_lease() {
    let (_dir, queue) = open().await;
    let ttr = Duration::from_millis(300);
    queue
        .put("q", "slow".into(), with(10, Duration::ZERO, ttr))
        .await
        .unwrap();
    let job = reserve_now(&queue, &["q"], 1).await.remove(0);
    let start = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        queue.keep_alive(&job).await.unwrap();
        assert!(
            reserve_now(&queue, &["q"], 1).await.is_empty(),
            "handed out while kept alive"
        );
    }
    assert!(start.elapsed() > ttr * 2);
    queue.ack(&job).await.unwrap();
}

#[tokio::test]
async fn a_lease_that_ran_out_unnoticed_can_still_be_settled() {
    let (_dir, queue) = open().await;
    queue
        .put(
            "q",
            "x".into(),
            with(10, Duration::ZERO, Duration::from_millis(50)),
        )
        .await
        .unwrap();
    let job = reserve_now(&queue, &["q"], 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Nobody reserved it again: the holder may still finish it.
    queue.keep_alive(&job).await.unwrap();
    queue.ack(&job).await.unwrap();
}

#[tokio::test]
async fn failure_store_list_show_retry_remove() {
    let (_dir, queue) = open().await;
    let options = with(42, Duration::from_secs(3), Duration::from_secs(90));
    for (name, body) in [("emails", "e1"), ("index", "i1"), ("emails", "e2")] {
        queue
            .put(name, body.into(), PutOptions::default())
            .await
            .unwrap();
        let job = reserve_now(&queue, &[name], 1).await.remove(0);
        let kept = format!("{body}-for-retry");
        queue
            .fail(&job, kept.into(), options, failure())
            .await
            .unwrap();
        assert_lost(queue.ack(&job).await, job.id);
    }

    let all = queue.failure_store().list(None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all.iter().map(|f| f.queue.as_str()).collect::<Vec<_>>(),
        ["emails", "index", "emails"],
        "oldest first"
    );
    let emails = queue
        .failure_store()
        .list(Some("emails"), 10)
        .await
        .unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(queue.failure_store().list(None, 1).await.unwrap().len(), 1);

    let shown = queue
        .failure_store()
        .show(all[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&shown.body[..], b"e1-for-retry");
    assert_eq!(shown.options, options);
    assert_eq!(shown.failure, failure());
    assert!(queue.failure_store().show(9999).await.unwrap().is_none());

    let stats = queue.stats().await.unwrap();
    let emails_stats = stats.iter().find(|s| s.queue == "emails").unwrap();
    assert_eq!((emails_stats.ready, emails_stats.failed), (0, 2));

    let new_id = queue.failure_store().retry(all[0].id).await.unwrap();
    let job = reserve_now(&queue, &["emails"], 10).await.remove(0);
    assert_eq!(job.id, new_id);
    assert_eq!(
        &job.body[..],
        b"e1-for-retry",
        "retried at once, whatever its delay was"
    );
    assert!(
        matches!(queue.failure_store().retry(all[0].id).await, Err(Error::NotFound(id)) if id == all[0].id)
    );

    assert!(queue.failure_store().remove(all[1].id).await.unwrap());
    assert!(!queue.failure_store().remove(all[1].id).await.unwrap());
    let left = queue.failure_store().list(None, 10).await.unwrap();
    assert_eq!(left.iter().map(|f| f.id).collect::<Vec<_>>(), [all[2].id]);
}

#[tokio::test]
async fn stats_peek_and_flush() {
    let (_dir, queue) = open().await;
    let ttr = Duration::from_secs(60);
    queue
        .put("a", "r1".into(), with(5, Duration::ZERO, ttr))
        .await
        .unwrap();
    queue
        .put("a", "r2".into(), with(1, Duration::ZERO, ttr))
        .await
        .unwrap();
    queue
        .put("a", "r3".into(), with(9, Duration::ZERO, ttr))
        .await
        .unwrap();
    queue
        .put("a", "d1".into(), with(0, Duration::from_secs(60), ttr))
        .await
        .unwrap();
    queue
        .put("b", "b1".into(), PutOptions::default())
        .await
        .unwrap();

    let peeked = queue.peek("a").await.unwrap().unwrap();
    assert_eq!(&peeked.body[..], b"r2");
    assert_eq!(
        queue.peek("a").await.unwrap().unwrap().id,
        peeked.id,
        "peek does not reserve"
    );
    assert!(queue.peek("nothing").await.unwrap().is_none());

    let held = reserve_now(&queue, &["a"], 1).await.remove(0);
    assert_eq!(held.id, peeked.id);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].queue, "a");
    assert_eq!(
        (
            stats[0].ready,
            stats[0].reserved,
            stats[0].delayed,
            stats[0].failed
        ),
        (2, 1, 1, 0)
    );
    assert_eq!((stats[1].queue.as_str(), stats[1].ready), ("b", 1));

    assert_eq!(
        queue.flush("a").await.unwrap(),
        3,
        "two ready and one delayed"
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats[0].ready, stats[0].reserved, stats[0].delayed),
        (0, 1, 0)
    );
    queue.ack(&held).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().len(), 1, "only b is left");
}

#[tokio::test]
async fn messages_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    {
        let queue = SqliteTransport::open(&path).await.unwrap();
        for n in 0..10 {
            queue
                .put("q", format!("{n}").into(), PutOptions::default())
                .await
                .unwrap();
        }
        let held = reserve_now(&queue, &["q"], 3).await;
        queue.ack(&held[0]).await.unwrap();
    }
    let queue = SqliteTransport::open(&path).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats[0].ready, stats[0].reserved), (7, 2));
    // Ids are never reused, even after the newest row was deleted.
    let last = reserve_now(&queue, &["q"], 10).await;
    let max_id = last.iter().map(|job| job.id).max().unwrap();
    for job in &last {
        queue.ack(job).await.unwrap();
    }
    let new_id = queue
        .put("q", "new".into(), PutOptions::default())
        .await
        .unwrap();
    assert!(new_id > max_id);
}

#[tokio::test]
async fn connect_shares_one_transport_per_file_in_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let one = mq::transport::connect(&url).await.unwrap();
    let two = mq::transport::connect(&url).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&one, &two));
    assert_eq!(
        one.describe(),
        format!(
            "sqlite://{}",
            dir.path().canonicalize().unwrap().join("mq.db").display()
        )
    );
}

/// How long an idle `reserve` takes to return after a put from `producer`, slowest of 5.
async fn wake_latency(consumer: &SqliteTransport, producer: &SqliteTransport) -> Duration {
    let mut samples = Vec::new();
    let names = queues(&["wake"]);
    for n in 0..5 {
        let reserve = consumer.reserve(&names, 1, Duration::from_secs(5));
        let put = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            producer
                .put("wake", format!("{n}").into(), PutOptions::default())
                .await
                .unwrap();
            Instant::now()
        };
        let (jobs, put_at) = tokio::join!(reserve, put);
        let jobs = jobs.unwrap();
        samples.push(put_at.elapsed());
        assert_eq!(jobs.len(), 1);
        consumer.ack(&jobs[0]).await.unwrap();
    }
    samples.into_iter().max().expect("five samples")
}

/// An idle `reserve` is woken by a put, from this transport or another connection, instead
/// of finding it at the next tick of a one-second sleep loop. The 50 ms target is measured
/// by the benchmark (`sqlite_wake_p50_ms`, `sqlite_wake_max_ms`), not here: a timed test
/// would fail on a loaded machine without telling anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reserve_is_woken_without_a_sleep_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    let consumer = SqliteTransport::open(&path).await.unwrap();
    let same = wake_latency(&consumer, &consumer).await;
    // A second transport is a second connection, as another process would have.
    let other = SqliteTransport::open(&path).await.unwrap();
    let across = wake_latency(&consumer, &other).await;
    eprintln!("wake-up latency: same transport {same:?}, other connection {across:?}");
    // With a one-second sleep loop, each of the five waits is uniform over 0 to 1 s: all
    // five under 250 ms happens once in a thousand runs.
    assert!(same < Duration::from_millis(250), "{same:?}");
    assert!(across < Duration::from_millis(250), "{across:?}");
}

#[tokio::test]
async fn a_dropped_reserve_hands_its_messages_back_at_once() {
    let (_dir, queue) = open().await;
    let names = queues(&["q"]);
    for round in 0..20 {
        let id = queue
            .put("q", format!("{round}").into(), PutOptions::default())
            .await
            .unwrap();
        // Polled once (the request goes out), then dropped: before or after the answer.
        let dropped = tokio::time::timeout(
            Duration::ZERO,
            queue.reserve(&names, 1, Duration::from_secs(5)),
        )
        .await;
        if let Ok(jobs) = dropped {
            // The answer was already there when polled: nothing was dropped.
            queue.ack(&jobs.unwrap()[0]).await.unwrap();
            continue;
        }
        let start = Instant::now();
        let jobs = queue
            .reserve(&names, 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(jobs[0].id, id);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "came back only after {:?}",
            start.elapsed()
        );
        queue.ack(&jobs[0]).await.unwrap();
    }
}
