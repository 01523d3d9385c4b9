//! The worker on a real beanstalkd, where the server's limits shape what a retry can do.

use std::time::Duration;

use mq::{Bus, Registry, SlotDef, Worker};
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
                if event.kind == mq::worker::EventKind::Reserved {
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
    let stats = bus.transport().stats().await.unwrap();
    let big = stats
        .iter()
        .find(|s| s.queue == "big")
        .cloned()
        .unwrap_or_default();
    assert_eq!((big.ready, big.reserved, big.delayed), (0, 0, 0), "{big:?}");
    let server_stats = bus.transport().server_stats().await.unwrap();
    let buried = server_stats
        .iter()
        .find(|(k, _)| k == "current-jobs-buried")
        .unwrap();
    assert_eq!(buried.1, "1", "kept, buried: {server_stats:?}");
}
