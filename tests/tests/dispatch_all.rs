//! Batch dispatch (`Bus::dispatch_all`): ids in order, every message handled once, errors
//! found before sending queue nothing, and a batch the server cuts short says what went in.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::transport::memory::MemoryTransport;
use mq::transport::Transport;
use mq::{Bus, Error, Exit, Registry, SlotDef, State, Worker};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize, Serializer};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "batch")]
struct Item {
    n: u64,
    /// Encoding fails when set: a message serde cannot write.
    #[serde(serialize_with = "refuse_if_set")]
    broken: bool,
    pad: String,
}

fn refuse_if_set<S: Serializer>(broken: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    if *broken {
        return Err(serde::ser::Error::custom("this item refuses to be encoded"));
    }
    serializer.serialize_bool(false)
}

fn items(range: std::ops::Range<u64>) -> impl Iterator<Item = Item> {
    range.map(|n| Item {
        n,
        broken: false,
        pad: String::new(),
    })
}

#[derive(Default)]
struct Seen(AtomicU64);

#[mq::slot]
async fn count(_item: Item, seen: State<Seen>) {
    let seen: &Seen = &seen;
    seen.0.fetch_add(1, Ordering::Relaxed);
}

async fn counts(transport: &dyn Transport) -> (u64, u64) {
    let batch = mq_tests::queue_stats(transport, "batch").await;
    (batch.ready, batch.delayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_handled_once_each_with_ids_in_order() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    let ids = bus.dispatch_all(items(0..1_000)).await.unwrap();
    assert_eq!(ids.len(), 1_000);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1_000);
    let queues = vec!["batch".to_owned()];
    let jobs = transport
        .reserve(&queues, 1_000, Duration::from_secs(1))
        .await
        .unwrap();
    let queued: Vec<String> = jobs
        .iter()
        .map(|job| mq::Envelope::decode(&job.body).unwrap().id)
        .collect();
    let answered: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    assert_eq!(
        queued, answered,
        "the ids of the messages, in the batch's order"
    );
    for job in &jobs {
        transport.release(job).await.unwrap();
    }

    let seen = Arc::new(Seen::default());
    let exit = Worker::builder()
        .transport(transport.clone())
        .registry(Registry::from_slots([SlotDef::of::<count>()]).unwrap())
        .state_arc(seen.clone())
        .handle_signals(false)
        .limit(1_000)
        .run()
        .await
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert_eq!(seen.0.load(Ordering::Relaxed), 1_000);
    assert_eq!(counts(transport.as_ref()).await, (0, 0));
}

#[tokio::test]
async fn delay_and_priority_apply_to_every_message_of_the_batch() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    bus.dispatch_all(items(0..5))
        .delay(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(counts(transport.as_ref()).await, (0, 5));
    assert!(bus.dispatch_all(items(0..0)).await.unwrap().is_empty());

    bus.dispatch_all(items(10..13)).await.unwrap();
    bus.dispatch_all(items(20..23)).priority(1).await.unwrap();
    let queues = vec!["batch".to_owned()];
    let jobs = transport
        .reserve(&queues, 6, Duration::from_secs(1))
        .await
        .unwrap();
    let numbers: Vec<u64> = jobs
        .iter()
        .map(|job| {
            let envelope = mq::Envelope::decode(&job.body).unwrap();
            let body: serde_json::Value = serde_json::from_str(envelope.body.get()).unwrap();
            body["n"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        numbers,
        [20, 21, 22, 10, 11, 12],
        "priority 1 before the default 1024"
    );
}

#[tokio::test]
async fn a_message_that_cannot_be_encoded_queues_none_of_the_batch() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    let mut batch: Vec<Item> = items(0..10).collect();
    batch[7].broken = true;
    let error = bus.dispatch_all(batch).await.unwrap_err();
    assert!(matches!(error, Error::Encode { .. }), "{error}");
    assert!(
        error.to_string().contains("refuses to be encoded"),
        "{error}"
    );
    assert_eq!(counts(transport.as_ref()).await, (0, 0));
}

#[tokio::test]
async fn a_message_over_the_size_limit_queues_none_of_the_batch() {
    let server = Beanstalkd::start_with(&["-z", "1000"]);
    let bus = Bus::connect(&server.url()).await.unwrap();
    let mut batch: Vec<Item> = items(0..10).collect();
    batch[3].pad = "x".repeat(2_000);
    let error = bus.dispatch_all(batch).await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error}");
    assert_eq!(counts(bus.transport().as_ref()).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_sqlite_is_queued_whole() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let bus = Bus::connect(&url).await.unwrap();
    let ids = bus.dispatch_all(items(0..2_000)).await.unwrap();
    assert_eq!(ids.len(), 2_000);
    assert_eq!(counts(bus.transport().as_ref()).await, (2_000, 0));
}

/// beanstalkd in drain mode refuses puts: a batch sent while it switches is cut short, and
/// the error lists exactly the messages the server kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_short_by_the_server_lists_what_was_queued() {
    let mut size = 100_000;
    for _ in 0..4 {
        let server = Beanstalkd::start();
        let bus = Bus::connect(&server.url()).await.unwrap();
        let watcher = mq::transport::connect(&server.url()).await.unwrap();
        let batch: Vec<Item> = items(0..size).collect();
        let sending = tokio::spawn({
            let bus = bus.clone();
            async move { bus.dispatch_all(batch).await }
        });
        // Drain as soon as the first messages are in.
        let until = Instant::now() + Duration::from_secs(30);
        while counts(watcher.as_ref()).await.0 == 0 && !sending.is_finished() {
            assert!(Instant::now() < until, "nothing was queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.drain();
        match sending.await.unwrap() {
            // The whole batch went in before the signal: try a larger one.
            Ok(ids) => {
                assert_eq!(ids.len() as u64, size);
                size *= 2;
            }
            Err(Error::PartlyQueued {
                queued,
                total,
                source,
            }) => {
                assert_eq!(total as u64, size);
                assert!(!queued.is_empty() && queued.len() < total);
                assert!(source.to_string().contains("DRAINING"), "{source}");
                let (ready, _) = counts(watcher.as_ref()).await;
                assert_eq!(
                    queued.len() as u64,
                    ready,
                    "the error lists what the server has"
                );
                let indices: Vec<usize> = queued.iter().map(|(index, _)| *index).collect();
                assert_eq!(indices, (0..queued.len()).collect::<Vec<_>>());
                return;
            }
            Err(other) => panic!("expected PartlyQueued, got {other}"),
        }
    }
    panic!("every batch went in whole before drain mode began");
}

/// Many batches at once on NATS (64 of 1,000: more acks pending together than the 5,000 the
/// client allows) must wait their turn, not wait for each other for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_on_nats_all_go_in() {
    let server = mq_tests::nats::NatsServer::start();
    let bus = Bus::connect(&server.url()).await.unwrap();
    let mut batches = tokio::task::JoinSet::new();
    for batch in 0..64 {
        let bus = bus.clone();
        batches.spawn(async move {
            let start = batch * 1_000;
            bus.dispatch_all(items(start..start + 1_000)).await
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut ids = 0;
        while let Some(done) = batches.join_next().await {
            ids += done.unwrap().unwrap().len();
        }
        ids
    })
    .await
    .expect("every batch finishes");
    assert_eq!(all, 64_000);
    assert_eq!(counts(bus.transport().as_ref()).await, (64_000, 0));
}
