//! The unique-message, key-limit and debounce checks every backend that declares
//! `Feature::Unique`, `Feature::KeyLimits` and `Feature::Debounce` must pass, and the
//! refusal every other backend must give; [`unique_suite!`](crate::unique_suite) makes
//! each a `#[tokio::test]`, as `transport_suite!` does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mq::transport::{Debounce, Feature, Put, PutOptions, Transport, Unique};

type Dyn = Arc<dyn Transport>;

const SHORT: Duration = Duration::from_millis(200);

fn opts() -> PutOptions {
    PutOptions::new(10, Duration::ZERO, Duration::from_secs(30))
}

async fn put(t: &Dyn, queue: &str, key: &str, id: &str) -> Put {
    let unique = Unique::new(key, id);
    t.put_unique(queue, Bytes::from(id.to_owned()), opts(), &unique)
        .await
        .expect("a unique put")
}

fn queued(put: &Put) -> bool {
    matches!(put, Put::Queued(_))
}

/// A key is held while its message is queued and while it runs, and free once it is acked;
/// other keys are independent.
pub async fn unique_held_until_acked(t: Dyn) {
    assert!(t.capabilities().supports(Feature::Unique));
    let q = vec!["uq-a".to_owned()];
    assert!(queued(&put(&t, "uq-a", "k", "first").await));
    assert_eq!(
        put(&t, "uq-a", "k", "second").await,
        Put::Existing("first".into())
    );
    assert!(queued(&put(&t, "uq-a", "other", "third").await));
    let mut jobs = t.reserve(&q, 10, SHORT).await.unwrap();
    jobs.sort_by_key(|job| job.body.clone());
    assert_eq!(jobs.len(), 2, "one per key");
    assert_eq!(&jobs[0].body[..], b"first");
    assert_eq!(
        put(&t, "uq-a", "k", "fourth").await,
        Put::Existing("first".into()),
        "running"
    );
    t.ack(&jobs[0]).await.unwrap();
    assert!(
        queued(&put(&t, "uq-a", "k", "fifth").await),
        "free after the ack"
    );
    t.ack(&jobs[1]).await.unwrap();
}

/// A retried message keeps its key until its replacement is acked; a failed one frees it.
pub async fn unique_retry_keeps_key(t: Dyn) {
    let q = vec!["uq-r".to_owned()];
    assert!(queued(&put(&t, "uq-r", "k", "first").await));
    let job = t.reserve(&q, 1, SHORT).await.unwrap().remove(0);
    let later = opts().with_delay(Duration::from_millis(300));
    t.retry(&job, job.body.clone(), later).await.unwrap();
    assert_eq!(
        put(&t, "uq-r", "k", "second").await,
        Put::Existing("first".into())
    );
    let again = t
        .reserve(&q, 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        put(&t, "uq-r", "k", "third").await,
        Put::Existing("first".into())
    );
    let failure = mq::transport::Failure::new(
        Vec::new(),
        "gave up".into(),
        2,
        std::time::SystemTime::now(),
    );
    t.fail(&again, again.body.clone(), opts(), failure)
        .await
        .unwrap();
    assert!(
        queued(&put(&t, "uq-r", "k", "fourth").await),
        "free after the failure"
    );
}

/// With a hold, the key stays taken for that long after the ack, then is free.
pub async fn unique_hold_after(t: Dyn) {
    let q = vec!["uq-h".to_owned()];
    let unique = Unique::new("k", "first").hold_after(Duration::from_millis(700));
    let first = t
        .put_unique("uq-h", Bytes::from_static(b"1"), opts(), &unique)
        .await
        .unwrap();
    assert!(queued(&first));
    let job = t.reserve(&q, 1, SHORT).await.unwrap().remove(0);
    t.ack(&job).await.unwrap();
    assert_eq!(
        put(&t, "uq-h", "k", "second").await,
        Put::Existing("first".into()),
        "held"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        queued(&put(&t, "uq-h", "k", "third").await),
        "free after the hold"
    );
}

/// Flushing a queue frees the keys of what it deleted.
pub async fn unique_flush_frees(t: Dyn) {
    assert!(queued(&put(&t, "uq-f", "k", "first").await));
    assert_eq!(t.flush("uq-f").await.unwrap(), 1);
    assert!(queued(&put(&t, "uq-f", "k", "second").await));
}

/// 64 tasks on one transport put the same key at once: exactly one is queued, and every
/// task gets its id.
pub async fn unique_concurrent_one(t: Dyn) {
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let (t, start) = (t.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                match put(&t, "uq-c", "k", &format!("id-{n}")).await {
                    Put::Queued(_) => format!("id-{n}"),
                    Put::Existing(id) => id,
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every task got the one id: {ids:?}");
    let stats = t.stats().await.unwrap();
    let queue = stats.iter().find(|s| s.queue == "uq-c").expect("the queue");
    assert_eq!(queue.ready, 1, "{stats:?}");
}

/// At most `limit` permits of a key at once; a released one is free again, and so is one
/// whose lease ran out; keys are independent.
pub async fn key_limit_permits(t: Dyn) {
    assert!(t.capabilities().supports(Feature::KeyLimits));
    let lease = Duration::from_secs(30);
    let a = t
        .acquire_permit("k", 2, lease)
        .await
        .unwrap()
        .expect("first");
    let b = t
        .acquire_permit("k", 2, lease)
        .await
        .unwrap()
        .expect("second");
    assert_ne!(a, b);
    assert!(
        t.acquire_permit("k", 2, lease).await.unwrap().is_none(),
        "a third"
    );
    assert!(
        t.acquire_permit("other", 2, lease).await.unwrap().is_some(),
        "another key"
    );
    t.release_permit("k", a).await.unwrap();
    assert!(
        t.acquire_permit("k", 2, lease).await.unwrap().is_some(),
        "after a release"
    );
    let short = Duration::from_millis(300);
    assert!(t.acquire_permit("brief", 1, short).await.unwrap().is_some());
    assert!(t.acquire_permit("brief", 1, short).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = Duration::from_secs(1);
    let late = t.acquire_permit("brief", 1, second).await.unwrap();
    let late = late.expect("free after the lease");
    // Renewed before its lease ends, a permit stays taken past its first lease.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            t.renew_permit("brief", late, second).await.unwrap(),
            "renewed"
        );
    }
    assert!(
        t.acquire_permit("brief", 1, short).await.unwrap().is_none(),
        "kept by its renewals, 1.2 s into a lease of 1 s"
    );
    assert!(
        !t.renew_permit("brief", late + 1_000_000, short)
            .await
            .unwrap(),
        "a token never taken"
    );
    t.release_permit("brief", late).await.unwrap();
    assert!(
        !t.renew_permit("brief", late, short).await.unwrap(),
        "given back"
    );
    let lapsed = t.acquire_permit("brief", 1, short).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !t.renew_permit("brief", lapsed, short).await.unwrap(),
        "a lapsed permit is not brought back"
    );
}

/// A burst becomes one message with the last body, run a quiet period after the last
/// dispatch; a burst that goes on is cut at the maximum wait, and what comes after starts a
/// new message.
pub async fn debounce_coalesces_a_burst(t: Dyn) {
    assert!(t.capabilities().supports(Feature::Debounce));
    let q = vec!["db-q".to_owned()];
    let debounce = Debounce::new(
        "k",
        Duration::from_millis(1000),
        Duration::from_millis(1500),
    );
    let started = std::time::Instant::now();
    let mut put_at = Vec::new();
    for (n, at) in [0u64, 600, 1200, 2300].into_iter().enumerate() {
        let wait = Duration::from_millis(at).saturating_sub(started.elapsed());
        tokio::time::sleep(wait).await;
        put_at.push(started.elapsed());
        let body = Bytes::from(format!("body-{n}"));
        t.put_debounced("db-q", body, opts(), &debounce)
            .await
            .unwrap();
        if n == 2 {
            let stats = t.stats().await.unwrap();
            let queue = stats.iter().find(|s| s.queue == "db-q").unwrap();
            assert_eq!(
                (queue.delayed, queue.ready),
                (1, 0),
                "one message for the burst"
            );
        }
    }
    // The burst's message was due at 1.5 s (the maximum wait), before the fourth dispatch.
    let first = t.reserve(&q, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(&first[0].body[..], b"body-2", "the burst's last body");
    assert!(
        put_at[3] < Duration::from_millis(2700),
        "the test itself ran late: {put_at:?}"
    );
    let second = t.reserve(&q, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        &second[0].body[..],
        b"body-3",
        "a new burst after the message was due"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(3300),
        "run after its quiet period"
    );
}

/// A backend that does not declare `Feature::Unique` refuses a unique put, naming the
/// backends that can.
pub async fn unique_refused(t: Dyn) {
    assert!(!t.capabilities().supports(Feature::Unique));
    let unique = Unique::new("k", "first");
    let error = t
        .put_unique("uq-no", Bytes::from_static(b"1"), opts(), &unique)
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(matches!(error, mq::Error::Unsupported { .. }), "{text}");
    assert!(
        text.contains("use a backend that can: sqlite, postgres"),
        "{text}"
    );
    let stats = t.stats().await.unwrap();
    assert!(
        stats.iter().all(|s| s.queue != "uq-no" || s.ready == 0),
        "{stats:?}"
    );
}

/// Each check of this module as a `#[tokio::test]` on the transport `$open` gives.
#[macro_export]
macro_rules! unique_suite {
    ($open:expr) => {
        $crate::unique_suite!(@cases $open;
            unique_held_until_acked unique_retry_keeps_key unique_hold_after
            unique_flush_frees unique_concurrent_one key_limit_permits debounce_coalesces_a_burst);
    };
    (refused $open:expr) => {
        $crate::unique_suite!(@cases $open; unique_refused);
    };
    (@cases $open:expr; $($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, transport) = $open.await;
                $crate::unique::$case(transport).await;
            }
        )*
    };
}
