//! The worker on a real beanstalkd, where the server's limits shape what a retry can do and
//! acks take a round trip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mq::{Bus, Exit, Registry, SlotDef, Worker};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(
    queue = "big",
    ttr = "1s",
    retries = 3,
    backoff = "10ms",
    backoff_max = "20ms"
)]
struct Big {
    pad: String,
}

#[mq::slot]
fn first_of_two(_: &Big) {}

#[mq::slot]
fn always_refuses(_: &Big) -> Result<(), String> {
    Err("no".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_grown_past_max_job_size_is_kept_not_retried_forever() {
    let server = Beanstalkd::start_with(&["-z", "600"]);
    let bus = Bus::connect(&server.url()).await.unwrap();
    // An envelope just under the limit: the retry adds the failed slot's path and does not
    // fit; nor does a failure record, which carries the envelope. beanstalkd keeps it buried.
    let mut pad = 400;
    loop {
        bus.dispatch(Big {
            pad: "x".repeat(pad),
        })
        .await
        .unwrap();
        let size = bus
            .transport()
            .peek("big")
            .await
            .unwrap()
            .unwrap()
            .body
            .len();
        if size > 570 {
            break;
        }
        bus.transport().flush("big").await.unwrap();
        pad += 10;
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let registry = Registry::from_slots([
        SlotDef::of::<first_of_two>(),
        SlotDef::of::<always_refuses>(),
    ])
    .unwrap();
    Worker::builder()
        .transport(bus.transport().clone())
        .registry(registry)
        .handle_signals(false)
        .on_event({
            let runs = runs.clone();
            move |event| {
                if event.kind == mq::EventKind::Reserved {
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
        .time_limit(Duration::from_secs(4))
        .run()
        .await
        .unwrap();
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "handled once, not again"
    );
    let big = mq_tests::queue_stats(bus.transport().as_ref(), "big").await;
    assert_eq!((big.ready, big.reserved, big.delayed), (0, 0, 0), "{big:?}");
    let server_stats = bus.transport().server_stats().await.unwrap();
    let buried = server_stats
        .iter()
        .find(|(k, _)| k == "current-jobs-buried")
        .unwrap();
    assert_eq!(buried.1, "1", "kept, buried: {server_stats:?}");
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "bounded")]
struct Bounded {
    n: u32,
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

#[mq::slot]
async fn occupy(_: Bounded) {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
}

/// On a real server, with acks a round trip away, the slots running at once never exceed
/// the concurrency, and every message is acked. (`worker_memory` pins that a place comes
/// back before the ack is answered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_running_at_once_never_exceed_the_concurrency() {
    let server = Beanstalkd::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    bus.dispatch_all((0..400).map(|n| Bounded { n }))
        .await
        .unwrap();
    let exit = Worker::builder()
        .url(server.url())
        .registry(Registry::from_slots([SlotDef::of::<occupy>()]).unwrap())
        .handle_signals(false)
        .concurrency(8)
        .limit(400)
        .run()
        .await
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    let most = MOST_RUNNING.load(Ordering::SeqCst);
    assert!(
        most <= 8,
        "{most} slots ran at once with a concurrency of 8"
    );
    assert!(most >= 2, "the slots never ran side by side");
    let bounded = mq_tests::queue_stats(bus.transport().as_ref(), "bounded").await;
    assert_eq!(
        (bounded.ready, bounded.reserved),
        (0, 0),
        "every message acked"
    );
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "answered")]
struct Answered;

#[mq::slot]
fn answered(_: &Answered) {}

/// The worker returns only once beanstalkd answered its acks: the server is stopped
/// (SIGSTOP) while the message runs, so its ack goes out unanswered, and let run again
/// 300 ms later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_returns_only_after_its_acks_are_answered() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let server = Arc::new(Beanstalkd::start());
    let bus = Bus::connect(&server.url()).await.unwrap();
    bus.dispatch(Answered).await.unwrap();
    let resumed = Arc::new(AtomicBool::new(false));
    let exit = Worker::builder()
        .transport(bus.transport().clone())
        .registry(Registry::from_slots([SlotDef::of::<answered>()]).unwrap())
        .handle_signals(false)
        .limit(1)
        .on_event({
            let (server, resumed) = (server.clone(), resumed.clone());
            move |event| {
                if event.kind == mq::EventKind::Reserved {
                    server.pause();
                    let (server, resumed) = (server.clone(), resumed.clone());
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        resumed.store(true, Ordering::SeqCst);
                        server.resume();
                    });
                }
            }
        })
        .run()
        .await
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert!(
        resumed.load(Ordering::SeqCst),
        "the worker returned before the server could answer its ack"
    );
    assert!(bus.transport().peek("answered").await.unwrap().is_none());
    let stats = bus.transport().stats().await.unwrap();
    assert!(stats.iter().all(|queue| queue.reserved == 0), "{stats:?}");
}
