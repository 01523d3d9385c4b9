//! The transport conformance suite: one set of checks every backend must pass.
//!
//! A backend's test file calls [`transport_suite!`](crate::transport_suite) with an async
//! expression that opens a fresh, empty transport; each check becomes a `#[tokio::test]`.
//! Checks use whole seconds where time matters, since beanstalkd counts in seconds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mq::transport::{Failure, PutOptions, SlotFailure, Transport};

type Dyn = Arc<dyn Transport>;

const SHORT: Duration = Duration::from_millis(200);

fn opts(priority: u32) -> PutOptions {
    PutOptions::new(priority, Duration::ZERO, Duration::from_secs(30))
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|q| (*q).to_owned()).collect()
}

async fn reserve_all(t: &Dyn, q: &[String], max: usize) -> Vec<mq::transport::Job> {
    t.reserve(q, max, SHORT).await.expect("reserve")
}

/// Put three, reserve them, ack them: nothing is left.
pub async fn put_reserve_ack(t: Dyn) {
    let q = queues(&["suite-a"]);
    for body in ["one", "two", "three"] {
        t.put("suite-a", Bytes::from(body), opts(10)).await.unwrap();
    }
    let mut jobs = Vec::new();
    while jobs.len() < 3 {
        let batch = reserve_all(&t, &q, 10).await;
        assert!(
            !batch.is_empty(),
            "three items were put, got {} back",
            jobs.len()
        );
        jobs.extend(batch);
    }
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| &j.body[..]).collect();
    assert_eq!(
        bodies,
        [&b"one"[..], b"two", b"three"],
        "same priority: oldest first"
    );
    assert!(jobs.iter().all(|j| j.queue == "suite-a"));
    for job in &jobs {
        t.ack(job).await.unwrap();
    }
    assert!(reserve_all(&t, &q, 10).await.is_empty());
    let stats = t.stats().await.unwrap();
    let a = stats.iter().find(|s| s.queue == "suite-a");
    assert!(
        a.is_none_or(|a| a.ready + a.reserved + a.delayed == 0),
        "{stats:?}"
    );
}

/// The worker's acks: `send_ack` may return before the backend's answer, and once
/// `acks_answered` resolves every one of them took effect; one of an item not reserved, or
/// already acked and answered, is refused.
pub async fn sent_acks_are_answered(t: Dyn) {
    let q = queues(&["suite-sent"]);
    for body in ["one", "two", "three"] {
        t.put("suite-sent", Bytes::from(body), opts(10))
            .await
            .unwrap();
    }
    let peeked = t.peek("suite-sent").await.unwrap().expect("a ready item");
    assert!(matches!(
        t.send_ack(&peeked).await,
        Err(mq::Error::ReservationLost(_))
    ));
    let mut jobs = Vec::new();
    while jobs.len() < 3 {
        let batch = reserve_all(&t, &q, 10).await;
        assert!(
            !batch.is_empty(),
            "three items were put, got {}",
            jobs.len()
        );
        jobs.extend(batch);
    }
    for job in &jobs {
        t.send_ack(job).await.unwrap();
    }
    t.acks_answered().await;
    // Answered, so settled: a backend that had not heard back would still hold the item.
    assert!(matches!(
        t.send_ack(&jobs[0]).await,
        Err(mq::Error::ReservationLost(_))
    ));
    let stats = t.stats().await.unwrap();
    let sent = stats.iter().find(|s| s.queue == "suite-sent");
    assert!(
        sent.is_none_or(|s| s.ready + s.reserved + s.delayed == 0),
        "{stats:?}"
    );
}

/// A batch put answers one id per item, in order, and the items come out in that order.
pub async fn put_many_in_order(t: Dyn) {
    let q = queues(&["suite-batch"]);
    let bodies: Vec<Bytes> = (0..600).map(|n| Bytes::from(n.to_string())).collect();
    let answers = t
        .put_many("suite-batch", bodies, opts(10))
        .await
        .expect("a batch put");
    let ids: Vec<u64> = answers.into_iter().map(|a| a.expect("each put")).collect();
    assert_eq!(ids.len(), 600);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        600,
        "one id per item"
    );
    let mut jobs = Vec::new();
    while jobs.len() < 600 {
        let batch = reserve_all(&t, &q, 600 - jobs.len()).await;
        assert!(!batch.is_empty(), "600 were put, got {} back", jobs.len());
        jobs.extend(batch);
    }
    let numbers: Vec<usize> = jobs
        .iter()
        .map(|j| std::str::from_utf8(&j.body).unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..600).collect::<Vec<_>>(),
        "same priority: in order"
    );
    assert_eq!(
        jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids,
        "the ids the put answered"
    );
    for job in &jobs {
        t.ack(job).await.unwrap();
    }
    let empty = t.put_many("suite-batch", Vec::new(), opts(10)).await;
    assert!(empty.expect("an empty batch").is_empty());
}

/// Lower priority first; within one priority, oldest first.
pub async fn priority_then_age(t: Dyn) {
    let q = queues(&["suite-p"]);
    for (body, priority) in [
        ("late-5", 5),
        ("first-1", 1),
        ("later-5", 5),
        ("second-1", 1),
    ] {
        t.put("suite-p", Bytes::from(body), opts(priority))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        let job = reserve_all(&t, &q, 1).await.pop().expect("an item");
        order.push(String::from_utf8(job.body.to_vec()).unwrap());
        t.ack(&job).await.unwrap();
    }
    assert_eq!(order, ["first-1", "second-1", "late-5", "later-5"]);
}

/// Earlier queues of the list are served first.
pub async fn queues_in_order(t: Dyn) {
    t.put("suite-low", Bytes::from("low"), opts(1))
        .await
        .unwrap();
    t.put("suite-high", Bytes::from("high"), opts(1000))
        .await
        .unwrap();
    let q = queues(&["suite-high", "suite-low"]);
    let job = reserve_all(&t, &q, 1).await.pop().expect("an item");
    assert_eq!(&job.body[..], b"high");
    assert_eq!(job.queue, "suite-high");
    t.ack(&job).await.unwrap();
    let job = reserve_all(&t, &q, 1).await.pop().expect("an item");
    assert_eq!(job.queue, "suite-low");
    t.ack(&job).await.unwrap();
}

/// A delayed item is invisible until its delay passed, and never earlier.
pub async fn delay_is_never_shorter(t: Dyn) {
    let q = queues(&["suite-d"]);
    let put_at = Instant::now();
    let options = opts(1).with_delay(Duration::from_secs(1));
    t.put("suite-d", Bytes::from("later"), options)
        .await
        .unwrap();
    assert!(
        reserve_all(&t, &q, 1).await.is_empty(),
        "delayed item came early"
    );
    let delayed: u64 = t.stats().await.unwrap().iter().map(|s| s.delayed).sum();
    assert_eq!(delayed, 1);
    let job = t
        .reserve(&q, 1, Duration::from_secs(4))
        .await
        .unwrap()
        .pop()
        .expect("the delayed item after its delay");
    assert!(
        put_at.elapsed() >= Duration::from_secs(1),
        "came after {:?}",
        put_at.elapsed()
    );
    t.ack(&job).await.unwrap();
}

/// A released item is ready again at once.
pub async fn release_hands_back(t: Dyn) {
    let q = queues(&["suite-r"]);
    t.put("suite-r", Bytes::from("again"), opts(1))
        .await
        .unwrap();
    let job = reserve_all(&t, &q, 1).await.pop().unwrap();
    t.release(&job).await.unwrap();
    let again = reserve_all(&t, &q, 1)
        .await
        .pop()
        .expect("released item is ready");
    assert_eq!(&again.body[..], b"again");
    if job.deliveries > 0 {
        assert_eq!(again.deliveries, job.deliveries + 1);
    }
    t.ack(&again).await.unwrap();
}

/// Retry replaces the item by the new body; the old one is gone.
pub async fn retry_replaces(t: Dyn) {
    let q = queues(&["suite-t"]);
    t.put("suite-t", Bytes::from("attempt-1"), opts(1))
        .await
        .unwrap();
    let job = reserve_all(&t, &q, 1).await.pop().unwrap();
    t.retry(&job, Bytes::from("attempt-2"), opts(1))
        .await
        .unwrap();
    let next = reserve_all(&t, &q, 10).await;
    assert_eq!(next.len(), 1, "exactly the new item");
    assert_eq!(&next[0].body[..], b"attempt-2");
    t.ack(&next[0]).await.unwrap();
    assert!(reserve_all(&t, &q, 10).await.is_empty());
}

/// An item whose reservation ran out (a dead worker) is handed out again.
pub async fn expired_reservation_comes_back(t: Dyn) {
    let q = queues(&["suite-x"]);
    let options = opts(1).with_ttr(Duration::from_secs(1));
    t.put("suite-x", Bytes::from("orphan"), options)
        .await
        .unwrap();
    let first = reserve_all(&t, &q, 1).await.pop().unwrap();
    let again = t
        .reserve(&q, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .pop()
        .expect("the item after its TTR ran out");
    assert_eq!(&again.body[..], b"orphan");
    assert_eq!(again.id, first.id, "the same item, not a copy");
    t.ack(&again).await.unwrap();
}

/// Keep-alive extends a reservation: the item is not handed out while it is renewed.
pub async fn keep_alive_holds(t: Dyn) {
    let q = queues(&["suite-k"]);
    let options = opts(1).with_ttr(Duration::from_secs(1));
    t.put("suite-k", Bytes::from("slow"), options)
        .await
        .unwrap();
    let job = reserve_all(&t, &q, 1).await.pop().unwrap();
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        t.keep_alive(&job).await.unwrap();
        let stolen = t.reserve(&q, 1, Duration::from_millis(300)).await.unwrap();
        assert!(stolen.is_empty(), "a kept-alive item was handed out again");
    }
    t.ack(&job).await.unwrap();
}

fn failure(slot: &str) -> Failure {
    Failure::new(
        vec![SlotFailure {
            slot: slot.to_owned(),
            error: "smtp said no".to_owned(),
        }],
        "failed 4 times".to_owned(),
        4,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
    )
}

/// fail → list, show, retry, remove.
pub async fn failure_store(t: Dyn) {
    let q = queues(&["suite-f"]);
    for body in ["f1", "f2"] {
        t.put("suite-f", Bytes::from(body), opts(7)).await.unwrap();
    }
    for (n, job) in reserve_all(&t, &q, 2).await.into_iter().enumerate() {
        let stored = Bytes::from(format!("stored-{}", n + 1));
        t.fail(&job, stored, opts(7), failure("shop::mail::send"))
            .await
            .unwrap();
    }
    assert!(
        reserve_all(&t, &q, 10).await.is_empty(),
        "failed items are not ready"
    );
    let listed = t.failure_store().list(None, 100).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].queue, "suite-f");
    assert_eq!(listed[0].failure, failure("shop::mail::send"));
    assert_eq!(listed[0].options.priority, 7);
    assert_eq!(
        t.failure_store()
            .list(Some("suite-f"), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(t
        .failure_store()
        .list(Some("elsewhere"), 10)
        .await
        .unwrap()
        .is_empty());
    let failed: u64 = t.stats().await.unwrap().iter().map(|s| s.failed).sum();
    assert_eq!(failed, 2);

    let first = t
        .failure_store()
        .show(listed[0].id)
        .await
        .unwrap()
        .expect("shown");
    assert_eq!(first.body, listed[0].body);
    t.failure_store().retry(first.id).await.unwrap();
    let back = reserve_all(&t, &q, 10).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, first.body);
    t.ack(&back[0]).await.unwrap();

    assert!(t.failure_store().remove(listed[1].id).await.unwrap());
    assert!(!t.failure_store().remove(listed[1].id).await.unwrap());
    assert!(t.failure_store().list(None, 100).await.unwrap().is_empty());
    assert!(t
        .failure_store()
        .show(listed[1].id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        t.failure_store().retry(listed[1].id).await,
        Err(mq::Error::NotFound(_))
    ));
}

/// Peek shows without reserving; flush empties ready and delayed items.
pub async fn peek_and_flush(t: Dyn) {
    t.put("suite-pf", Bytes::from("a"), opts(2)).await.unwrap();
    t.put("suite-pf", Bytes::from("b"), opts(1)).await.unwrap();
    let delayed = opts(1).with_delay(Duration::from_secs(60));
    t.put("suite-pf", Bytes::from("c"), delayed).await.unwrap();
    let peeked = t.peek("suite-pf").await.unwrap().expect("a ready item");
    assert_eq!(&peeked.body[..], b"b");
    assert!(t.peek("suite-empty").await.unwrap().is_none());
    assert_eq!(t.flush("suite-pf").await.unwrap(), 3);
    assert!(reserve_all(&t, &queues(&["suite-pf"]), 10).await.is_empty());
}

/// Browse lists every item of a queue (ready, delayed, reserved) by ascending id, page by
/// page, without reserving any, and nothing of another queue.
pub async fn browse_pages_through_a_queue(t: Dyn) {
    let mut ids = Vec::new();
    for body in ["a", "b", "c", "d", "e"] {
        ids.push(t.put("suite-br", Bytes::from(body), opts(5)).await.unwrap());
        t.put("suite-br-other", Bytes::from("x"), opts(5))
            .await
            .unwrap();
    }
    let delayed = opts(1).with_delay(Duration::from_secs(60));
    ids.push(t.put("suite-br", Bytes::from("f"), delayed).await.unwrap());
    let held = reserve_all(&t, &queues(&["suite-br"]), 1).await;
    assert_eq!(&held[0].body[..], b"a");

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = t.browse("suite-br", after, 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit` items");
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page.iter().map(|job| (job.id, job.body.clone())));
        assert!(page.iter().all(|job| job.queue == "suite-br"));
    }
    let bodies: Vec<&[u8]> = seen.iter().map(|(_, body)| &body[..]).collect();
    let reserved_shown: &[&[u8]] = &[b"a", b"b", b"c", b"d", b"e", b"f"];
    let reserved_hidden: &[&[u8]] = &[b"b", b"c", b"d", b"e", b"f"];
    assert!(
        bodies == reserved_shown || bodies == reserved_hidden,
        "in id order, every item: {bodies:?}"
    );
    let listed: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "ascending ids");
    assert!(t.browse("suite-br-none", 0, 10).await.unwrap().is_empty());
    // Nothing was reserved by browsing: the four ready items are still there.
    assert_eq!(reserve_all(&t, &queues(&["suite-br"]), 10).await.len(), 4);
}

/// A job that holds no reservation (peeked, or already settled) settles nothing: the
/// receipt decides, not the id.
pub async fn only_a_reservation_settles(t: Dyn) {
    t.put("suite-rc", Bytes::from("a"), opts(1)).await.unwrap();
    let peeked = t.peek("suite-rc").await.unwrap().expect("a ready item");
    assert!(matches!(
        t.ack(&peeked).await,
        Err(mq::Error::ReservationLost(_))
    ));
    assert!(matches!(
        t.release(&peeked).await,
        Err(mq::Error::ReservationLost(_))
    ));
    let jobs = reserve_all(&t, &queues(&["suite-rc"]), 10).await;
    assert_eq!(jobs.len(), 1, "the peeked ack deleted nothing");
    assert_eq!(jobs[0].id, peeked.id);
    t.ack(&jobs[0]).await.unwrap();
    assert!(matches!(
        t.ack(&jobs[0]).await,
        Err(mq::Error::ReservationLost(_))
    ));
    assert!(matches!(
        t.keep_alive(&jobs[0]).await,
        Err(mq::Error::ReservationLost(_))
    ));
}

/// Counts per queue.
pub async fn stats_count(t: Dyn) {
    t.put("suite-s", Bytes::from("r1"), opts(1)).await.unwrap();
    t.put("suite-s", Bytes::from("r2"), opts(1)).await.unwrap();
    let delayed = opts(1).with_delay(Duration::from_secs(60));
    t.put("suite-s", Bytes::from("d"), delayed).await.unwrap();
    let job = reserve_all(&t, &queues(&["suite-s"]), 1)
        .await
        .pop()
        .unwrap();
    let stats = t.stats().await.unwrap();
    let s = stats
        .iter()
        .find(|s| s.queue == "suite-s")
        .expect("queue listed");
    assert_eq!(
        (s.ready, s.reserved, s.delayed, s.failed),
        (1, 1, 1, 0),
        "{s:?}"
    );
    t.ack(&job).await.unwrap();
}

/// Many producers and consumers at once: every item is handed out exactly once.
pub async fn concurrent_exactly_once(t: Dyn) {
    const PRODUCERS: usize = 8;
    const EACH: usize = 250;
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let t = t.clone();
        producers.spawn(async move {
            for n in 0..EACH {
                let body = Bytes::from(format!("{p}-{n}"));
                t.put("suite-c", body, opts(1)).await.unwrap();
            }
        });
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let t = t.clone();
        let seen = seen.clone();
        consumers.spawn(async move {
            let q = queues(&["suite-c"]);
            let mut idle = 0;
            while idle < 5 {
                let jobs = t.reserve(&q, 64, SHORT).await.unwrap();
                if jobs.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                for job in jobs {
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8(job.body.to_vec()).unwrap());
                    t.ack(&job).await.unwrap();
                }
            }
        });
    }
    while producers.join_next().await.transpose().unwrap().is_some() {}
    while consumers.join_next().await.transpose().unwrap().is_some() {}
    let seen = seen.lock().unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), PRODUCERS * EACH, "every item seen");
    assert_eq!(seen.len(), PRODUCERS * EACH, "no item seen twice");
}

/// Expands to one `#[tokio::test]` per check of the suite; `$open` is an async expression
/// giving `(guard, transport)`: a fresh, empty `Arc<dyn Transport>` and whatever must live
/// as long as it (a server process, a temporary folder).
#[macro_export]
macro_rules! transport_suite {
    ($open:expr) => {
        $crate::transport_suite!(@cases $open;
            put_reserve_ack sent_acks_are_answered put_many_in_order priority_then_age queues_in_order delay_is_never_shorter
            release_hands_back retry_replaces expired_reservation_comes_back keep_alive_holds
            failure_store peek_and_flush browse_pages_through_a_queue only_a_reservation_settles
            stats_count
            concurrent_exactly_once);
    };
    (@cases $open:expr; $($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, transport) = $open.await;
                $crate::suite::$case(transport).await;
            }
        )*
    };
}
