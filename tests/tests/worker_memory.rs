//! The worker on `memory://`: routing, fan-out, retries, the failure store, panics,
//! timeouts, keep-alive, parameters, limits and lifecycle events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mq::transport::memory::MemoryTransport;
use mq::transport::{Capabilities, Failure, FailureStore, Job, PutOptions, QueueStats, Transport};
use mq::EventKind;
use mq::{Bus, Context, Exit, Registry, SlotDef, SlotError, State, Worker};
use serde::{Deserialize, Serialize};

/// Runs per slot and message, shared with the test through `State<Runs>`.
#[derive(Default)]
struct Runs(Mutex<HashMap<(&'static str, u64), u32>>);

impl Runs {
    fn record(&self, slot: &'static str, n: u64) {
        *self.0.lock().unwrap().entry((slot, n)).or_default() += 1;
    }

    fn count(&self, slot: &'static str, n: u64) -> u32 {
        self.0.lock().unwrap().get(&(slot, n)).copied().unwrap_or(0)
    }
}

fn worker(
    transport: &Arc<MemoryTransport>,
    slots: impl IntoIterator<Item = SlotDef>,
) -> mq::WorkerBuilder {
    Worker::builder()
        .transport(transport.clone())
        .registry(Registry::from_slots(slots).expect("registry"))
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
}

// ---------------------------------------------------------------------------------------
// Fan-out of thousands of messages: every slot sees each message exactly once.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "ticks")]
struct Tick {
    n: u64,
}

#[mq::slot]
async fn tick_async(msg: Tick, runs: State<Runs>) {
    runs.record("async", msg.n);
}

#[mq::slot]
fn tick_sync(msg: &Tick, runs: State<Runs>) {
    runs.record("sync", msg.n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_messages_reach_every_slot_exactly_once() {
    const COUNT: u64 = 5_000;
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    for n in 0..COUNT {
        bus.dispatch(Tick { n }).await.unwrap();
    }
    let runs = Arc::new(Runs::default());
    let exit = worker(
        &transport,
        [SlotDef::of::<tick_async>(), SlotDef::of::<tick_sync>()],
    )
    .state_arc(runs.clone())
    .limit(COUNT)
    .run()
    .await
    .unwrap();
    assert_eq!(exit, Exit::Limit);
    for n in 0..COUNT {
        assert_eq!(runs.count("async", n), 1, "async slot, message {n}");
        assert_eq!(runs.count("sync", n), 1, "sync slot, message {n}");
    }
    let stats = transport.stats().await.unwrap();
    assert!(stats.iter().all(|s| s.ready + s.reserved == 0), "{stats:?}");
}

// ---------------------------------------------------------------------------------------
// Fan-out with isolation: only failed slots run again.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "flaky", retries = 3, backoff = "10ms", backoff_max = "20ms")]
struct Flaky {
    n: u64,
}

#[mq::slot]
async fn steady(msg: Flaky, runs: State<Runs>) {
    runs.record("steady", msg.n);
}

#[mq::slot]
async fn fails_twice(msg: Flaky, runs: State<Runs>, ctx: Context) -> Result<(), std::io::Error> {
    runs.record("fails_twice", msg.n);
    if ctx.attempt() <= 2 {
        return Err(std::io::Error::other(format!(
            "attempt {} fails",
            ctx.attempt()
        )));
    }
    Ok(())
}

#[tokio::test]
async fn only_failed_slots_are_retried() {
    let transport = MemoryTransport::new();
    Bus::new(transport.clone())
        .dispatch(Flaky { n: 1 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let exit = worker(
        &transport,
        [SlotDef::of::<steady>(), SlotDef::of::<fails_twice>()],
    )
    .state_arc(runs.clone())
    .on_event(move |event| seen.lock().unwrap().push(event.kind))
    .limit(3)
    .run()
    .await
    .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert_eq!(
        runs.count("steady", 1),
        1,
        "the slot that succeeded ran once"
    );
    assert_eq!(
        runs.count("fails_twice", 1),
        3,
        "the failing slot ran until it succeeded"
    );
    let kinds: Vec<EventKind> = events
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|k| *k != EventKind::Reserved)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Retried, EventKind::Retried, EventKind::Finished]
    );
    assert!(transport
        .failure_store()
        .list(None, 10)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// Retries run out: the failure store has the slot, error, attempts and time.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "doomed", retries = 2, backoff = "10ms", backoff_max = "20ms")]
struct Doomed {
    n: u64,
}

#[mq::slot]
async fn doomed_ok(msg: Doomed, runs: State<Runs>) {
    runs.record("doomed_ok", msg.n);
}

#[mq::slot]
async fn always_fails(msg: Doomed, runs: State<Runs>) -> Result<(), String> {
    runs.record("always_fails", msg.n);
    Err("smtp server said 550".to_owned())
}

#[tokio::test]
async fn exhausted_retries_go_to_the_failure_store() {
    let transport = MemoryTransport::new();
    Bus::new(transport.clone())
        .dispatch(Doomed { n: 9 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let slots = [SlotDef::of::<doomed_ok>(), SlotDef::of::<always_fails>()];
    worker(&transport, slots)
        .state_arc(runs.clone())
        .limit(3)
        .run()
        .await
        .unwrap();
    assert_eq!(
        runs.count("always_fails", 9),
        3,
        "first attempt and two retries"
    );
    assert_eq!(runs.count("doomed_ok", 9), 1);

    let failed = transport.failure_store().list(None, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    let entry = &failed[0];
    assert_eq!(entry.queue, "doomed");
    assert_eq!(entry.failure.attempts, 3);
    assert_eq!(entry.failure.slots.len(), 1);
    assert!(
        entry.failure.slots[0].slot.ends_with("::always_fails"),
        "{:?}",
        entry.failure
    );
    assert_eq!(entry.failure.slots[0].error, "smtp server said 550");
    assert!(
        entry.failure.reason.contains("failed after 3 attempts"),
        "{}",
        entry.failure.reason
    );
    let age = std::time::SystemTime::now()
        .duration_since(entry.failure.failed_at)
        .unwrap();
    assert!(age < Duration::from_secs(60));
    let envelope = mq::Envelope::decode(&entry.body).unwrap();
    assert_eq!(
        envelope.slots.as_ref().unwrap().len(),
        1,
        "only the failed slot runs on retry"
    );

    // A retry from the store runs only the failed slot, once more.
    transport.failure_store().retry(entry.id).await.unwrap();
    worker(&transport, slots)
        .state_arc(runs.clone())
        .limit(1)
        .run()
        .await
        .unwrap();
    assert_eq!(runs.count("always_fails", 9), 4);
    assert_eq!(runs.count("doomed_ok", 9), 1);
    assert_eq!(
        transport
            .failure_store()
            .list(None, 10)
            .await
            .unwrap()
            .len(),
        1,
        "failed again"
    );
}

// ---------------------------------------------------------------------------------------
// Permanent errors, panics, timeouts.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(
    queue = "hazards",
    retries = 5,
    backoff = "10ms",
    backoff_max = "20ms",
    timeout = "200ms"
)]
struct Hazard {
    n: u64,
    kind: String,
}

#[mq::slot]
async fn hazardous(msg: Hazard, runs: State<Runs>) -> Result<(), SlotError> {
    runs.record("hazardous", msg.n);
    match msg.kind.as_str() {
        "permanent" => Err(SlotError::permanent("card number is invalid")),
        "panic" => panic!("boom in message {}", msg.n),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[tokio::test]
async fn permanent_errors_skip_retries_and_panics_and_timeouts_are_failures() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    for (n, kind) in [
        (1, "fine"),
        (2, "permanent"),
        (3, "panic"),
        (4, "fine"),
        (5, "slow"),
    ] {
        bus.dispatch(Hazard {
            n,
            kind: kind.into(),
        })
        .await
        .unwrap();
    }
    let runs = Arc::new(Runs::default());
    let timeouts = Arc::new(Mutex::new(0));
    let counted = timeouts.clone();
    // 5 messages: 1 and 4 finish; 2 fails at once; 3 and 5 run 6 times each: 15 handlings.
    worker(&transport, [SlotDef::of::<hazardous>()])
        .state_arc(runs.clone())
        .on_event(move |e| {
            if e.kind == EventKind::Timeout {
                *counted.lock().unwrap() += 1;
            }
        })
        .limit(2 + 1 + 6 + 6)
        .time_limit(Duration::from_secs(60))
        .run()
        .await
        .unwrap();
    assert_eq!(runs.count("hazardous", 1), 1);
    assert_eq!(runs.count("hazardous", 4), 1);
    assert_eq!(
        runs.count("hazardous", 2),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(
        runs.count("hazardous", 3),
        6,
        "a panic is a failure like any other"
    );
    assert_eq!(runs.count("hazardous", 5), 6);
    assert_eq!(*timeouts.lock().unwrap(), 6);

    let failed = transport.failure_store().list(None, 10).await.unwrap();
    let reasons: Vec<(u32, &str)> = failed
        .iter()
        .map(|f| (f.failure.attempts, f.failure.slots[0].error.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.contains(&(1, "card number is invalid")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(6, "panicked: boom in message 3")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(6, "timed out after 200ms")),
        "{reasons:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Keep-alive: a slot slower than its TTR is not handed out twice.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "slow", ttr = "1s")]
struct Slow {
    n: u64,
}

#[mq::slot]
async fn takes_longer_than_ttr(msg: Slow, runs: State<Runs>) {
    runs.record("slow", msg.n);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
}

#[tokio::test]
async fn a_slot_slower_than_its_ttr_is_kept_alive_and_runs_once() {
    let transport = MemoryTransport::new();
    Bus::new(transport.clone())
        .dispatch(Slow { n: 1 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    worker(&transport, [SlotDef::of::<takes_longer_than_ttr>()])
        .state_arc(runs.clone())
        .time_limit(Duration::from_secs(4))
        .run()
        .await
        .unwrap();
    assert_eq!(runs.count("slow", 1), 1);
    let stats = transport.stats().await.unwrap();
    assert!(
        stats.iter().all(|s| s.ready + s.reserved == 0),
        "acked: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Bad input: never dropped, never retried forever.

async fn put_raw(transport: &MemoryTransport, queue: &str, body: &str) {
    transport
        .put(queue, Bytes::from(body.to_owned()), PutOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn undecodable_items_go_to_the_failure_store_with_the_reason() {
    let transport = MemoryTransport::new();
    put_raw(&transport, "ticks", "this is not json").await;
    put_raw(
        &transport,
        "ticks",
        r#"{"v":1,"name":"Tick","id":"x1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","body":{"n":"not a number"}}"#,
    )
    .await;
    let runs = Arc::new(Runs::default());
    worker(&transport, [SlotDef::of::<tick_async>()])
        .state_arc(runs.clone())
        .limit(2)
        .run()
        .await
        .unwrap();
    let failed = transport.failure_store().list(None, 10).await.unwrap();
    let reasons: Vec<String> = failed
        .iter()
        .map(|f| {
            let slot_errors: Vec<&str> = f.failure.slots.iter().map(|s| s.error.as_str()).collect();
            format!("{} | {}", f.failure.reason, slot_errors.join(";"))
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not an mq envelope")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("does not decode")),
        "{reasons:?}"
    );
    let garbage = failed
        .iter()
        .find(|f| f.failure.reason.contains("not an mq envelope"))
        .unwrap();
    assert_eq!(&garbage.body[..], b"this is not json", "kept unchanged");
}

#[tokio::test]
async fn unknown_names_are_retried_then_failed() {
    let transport = MemoryTransport::new();
    put_raw(
        &transport,
        "ticks",
        r#"{"v":1,"name":"FromTheFuture","id":"x2","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","body":{}}"#,
    )
    .await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let fast = mq::Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    worker(&transport, [SlotDef::of::<tick_async>()])
        .state(Runs::default())
        .unknown_retries(2, fast)
        .on_event(move |e| seen.lock().unwrap().push(e.kind))
        .limit(3)
        .run()
        .await
        .unwrap();
    let kinds: Vec<EventKind> = events
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|k| *k != EventKind::Reserved)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Retried, EventKind::Retried, EventKind::Failed]
    );
    let failed = transport.failure_store().list(None, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .failure
            .reason
            .contains("no message type named `FromTheFuture`"),
        "{}",
        failed[0].failure.reason
    );
}

// ---------------------------------------------------------------------------------------
// Start-up checks.

#[tokio::test]
async fn a_missing_state_is_a_start_up_error_naming_slot_and_type() {
    let error = worker(&MemoryTransport::new(), [SlotDef::of::<tick_async>()])
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("worker_memory::tick_async"), "{error}");
    assert!(error.contains("mq::State<worker_memory::Runs>"), "{error}");
    assert!(error.contains(".state("), "{error}");
}

mod v1 {
    #[derive(mq::Message, serde::Serialize, serde::Deserialize)]
    #[message(name = "OrderPlaced")]
    pub struct OrderPlaced;

    #[mq::slot]
    pub fn on_v1(_: OrderPlaced) {}
}

mod v2 {
    #[derive(mq::Message, serde::Serialize, serde::Deserialize)]
    #[message(name = "OrderPlaced")]
    pub struct OrderPlacedAgain;

    #[mq::slot]
    pub fn on_v2(_: OrderPlacedAgain) {}
}

#[test]
fn a_duplicate_wire_name_names_both_types() {
    let error = Registry::from_slots([SlotDef::of::<v1::on_v1>(), SlotDef::of::<v2::on_v2>()])
        .unwrap_err()
        .to_string();
    assert!(error.contains("`OrderPlaced`"), "{error}");
    assert!(error.contains("worker_memory::v1::OrderPlaced"), "{error}");
    assert!(
        error.contains("worker_memory::v2::OrderPlacedAgain"),
        "{error}"
    );
    // The same mistake among everything linked into this binary.
    let linked = Registry::linked().unwrap_err().to_string();
    assert_eq!(linked, error);
}

// ---------------------------------------------------------------------------------------
// Context: ids, attempts, follow-up messages.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "orders")]
struct PlaceOrder {
    n: u64,
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "shipping", priority = 5)]
struct ShipOrder {
    n: u64,
    placed_by: String,
}

#[mq::slot]
async fn place(msg: PlaceOrder, ctx: Context) -> Result<(), mq::Error> {
    assert_eq!(
        (ctx.name(), ctx.queue(), ctx.attempt()),
        ("PlaceOrder", "orders", 1)
    );
    ctx.dispatch(ShipOrder {
        n: msg.n,
        placed_by: ctx.id().to_owned(),
    })
    .await?;
    Ok(())
}

#[mq::slot]
fn ship(msg: ShipOrder, runs: State<Runs>) {
    assert!(!msg.placed_by.is_empty());
    runs.record("ship", msg.n);
}

#[tokio::test]
async fn slots_dispatch_follow_ups_through_the_context() {
    let transport = MemoryTransport::new();
    let id = Bus::new(transport.clone())
        .dispatch(PlaceOrder { n: 7 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let submitted = Arc::new(Mutex::new(Vec::new()));
    let seen = submitted.clone();
    worker(&transport, [SlotDef::of::<place>(), SlotDef::of::<ship>()])
        .state_arc(runs.clone())
        .on_event(move |e| {
            if e.kind == EventKind::Submitted {
                seen.lock().unwrap().push(e.name.clone());
            }
        })
        .limit(2)
        .run()
        .await
        .unwrap();
    assert_eq!(runs.count("ship", 7), 1);
    assert_eq!(*submitted.lock().unwrap(), ["ShipOrder"]);
    assert!(!id.as_str().is_empty());
}

// ---------------------------------------------------------------------------------------
// Limits and stop.

#[tokio::test]
async fn limits_stop_the_worker_with_their_exit_codes() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    for n in 0..20 {
        bus.dispatch(Tick { n }).await.unwrap();
    }
    let slots = [SlotDef::of::<tick_async>()];
    let exit = worker(&transport, slots)
        .state(Runs::default())
        .concurrency(4)
        .limit(10)
        .run()
        .await;
    assert_eq!(exit.unwrap(), Exit::Limit);
    let ready: u64 = transport
        .stats()
        .await
        .unwrap()
        .iter()
        .map(|s| s.ready)
        .sum();
    assert_eq!(ready, 10, "exactly --limit messages were taken");

    let exit = worker(&transport, slots)
        .state(Runs::default())
        .memory_limit(1)
        .run()
        .await;
    assert_eq!(exit.unwrap(), Exit::MemoryLimit);
    assert_eq!(Exit::MemoryLimit.code(), 3);

    let exit = worker(&transport, slots)
        .state(Runs::default())
        .time_limit(Duration::from_millis(300))
        .run()
        .await;
    assert_eq!(exit.unwrap(), Exit::TimeLimit);

    Bus::new(transport.clone())
        .dispatch(Doomed { n: 1 })
        .await
        .unwrap();
    let exit = worker(&transport, [SlotDef::of::<always_fails>()])
        .state(Runs::default())
        .failure_limit(1)
        .run()
        .await;
    assert_eq!(exit.unwrap(), Exit::FailureLimit);
    assert_eq!(Exit::FailureLimit.code(), 4);
}

/// Runs `worker`, stops it after `running`, and returns how it exited.
async fn stop_after(worker: &Worker, running: Duration) -> Exit {
    let run = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });
    tokio::time::sleep(running).await;
    worker.stop();
    run.await.expect("the worker's task").expect("run")
}

#[tokio::test]
async fn stop_lets_running_slots_finish() {
    let transport = MemoryTransport::new();
    Bus::new(transport.clone())
        .dispatch(Slow { n: 3 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let worker = worker(&transport, [SlotDef::of::<takes_longer_than_ttr>()])
        .state_arc(runs.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(
        stop_after(&worker, Duration::from_millis(500)).await,
        Exit::Stopped
    );
    assert_eq!(runs.count("slow", 3), 1);
    let stats = transport.stats().await.unwrap();
    assert!(
        stats.iter().all(|s| s.ready + s.reserved == 0),
        "finished and acked: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// User code that panics while the body decodes is a failure of the slot, not of the worker.

fn panicky<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    assert!(n != 13, "unlucky number {n}");
    Ok(n)
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "fragile", retries = 0)]
struct Fragile {
    #[serde(deserialize_with = "panicky")]
    n: u64,
}

#[mq::slot]
fn fragile_slot(msg: Fragile, runs: State<Runs>) {
    runs.record("fragile", msg.n);
}

#[tokio::test]
async fn a_panic_while_decoding_goes_to_the_failure_store() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    bus.dispatch(Fragile { n: 12 }).await.unwrap();
    bus.dispatch(Fragile { n: 13 }).await.unwrap();
    let runs = Arc::new(Runs::default());
    worker(&transport, [SlotDef::of::<fragile_slot>()])
        .state_arc(runs.clone())
        .limit(2)
        .time_limit(Duration::from_secs(30))
        .run()
        .await
        .unwrap();
    assert_eq!(runs.count("fragile", 12), 1);
    let failed = transport.failure_store().list(None, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    let error = &failed[0].failure.slots[0].error;
    assert!(
        error.contains("decoding panicked: unlucky number 13"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// A stale reservation cannot ack what another reservation now holds.

#[tokio::test]
async fn a_stale_reservation_cannot_ack_the_new_one() {
    let transport = MemoryTransport::new();
    let options = PutOptions::default().with_ttr(Duration::from_millis(200));
    transport.put("q", Bytes::from("x"), options).await.unwrap();
    let queues = ["q".to_owned()];
    let first = transport
        .reserve(&queues, 1, Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let second = transport
        .reserve(&queues, 1, Duration::from_secs(2))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.id, second.id);
    assert!(matches!(
        transport.ack(&first).await,
        Err(mq::Error::ReservationLost(_))
    ));
    assert!(matches!(
        transport.keep_alive(&first).await,
        Err(mq::Error::ReservationLost(_))
    ));
    assert!(matches!(
        transport.release(&first).await,
        Err(mq::Error::ReservationLost(_))
    ));
    transport.ack(&second).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Concurrency: a message gives its place back when its slots are done, before its ack is
// answered; at most twice the concurrency are held.

/// `memory://` whose acks wait at a gate the test opens.
#[derive(Debug)]
struct GatedAcks {
    inner: Arc<MemoryTransport>,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl Transport for GatedAcks {
    fn describe(&self) -> String {
        "memory:// with gated acks".into()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        self.inner.failure_store()
    }
    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> mq::Result<u64> {
        self.inner.put(queue, body, options).await
    }
    async fn reserve(
        &self,
        queues: &[String],
        max: usize,
        timeout: Duration,
    ) -> mq::Result<Vec<Job>> {
        self.inner.reserve(queues, max, timeout).await
    }
    async fn ack(&self, job: &Job) -> mq::Result<()> {
        self.gate.acquire().await.expect("gate open").forget();
        self.inner.ack(job).await
    }
    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> mq::Result<()> {
        self.inner.retry(job, body, options).await
    }
    async fn release(&self, job: &Job) -> mq::Result<()> {
        self.inner.release(job).await
    }
    async fn keep_alive(&self, job: &Job) -> mq::Result<()> {
        self.inner.keep_alive(job).await
    }
    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> mq::Result<()> {
        self.inner.fail(job, body, options, failure).await
    }
    async fn stats(&self) -> mq::Result<Vec<QueueStats>> {
        self.inner.stats().await
    }
    async fn browse(&self, queue: &str, after: u64, limit: usize) -> mq::Result<Vec<Job>> {
        self.inner.browse(queue, after, limit).await
    }
    async fn peek(&self, queue: &str) -> mq::Result<Option<Job>> {
        self.inner.peek(queue).await
    }
    async fn flush(&self, queue: &str) -> mq::Result<u64> {
        self.inner.flush(queue).await
    }
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "gated")]
struct Gated {
    n: u64,
}

#[mq::slot]
async fn gated_slot(msg: Gated, runs: State<Runs>) {
    runs.record("gated", msg.n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_come_back_before_the_ack_and_twice_the_concurrency_are_held_at_most() {
    let inner = MemoryTransport::new();
    let transport = Arc::new(GatedAcks {
        inner: inner.clone(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let bus = Bus::new(inner.clone());
    bus.dispatch_all((0..20).map(|n| Gated { n }))
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let worker = Worker::builder()
        .transport(transport.clone())
        .registry(Registry::from_slots([SlotDef::of::<gated_slot>()]).unwrap())
        .state_arc(runs.clone())
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
        .concurrency(3)
        .limit(20)
        .build()
        .await
        .unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run().await }
    });
    let ran = || (0..20).filter(|n| runs.count("gated", *n) > 0).count();
    // No ack is answered: the slots of 3 messages run, give their places back, and 3 more
    // run; then the 6 held messages stop the worker from reserving.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while ran() < 6 {
        assert!(std::time::Instant::now() < until, "only {} ran", ran());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ran(), 6, "twice the concurrency held, no more");
    transport.gate.add_permits(20);
    let exit = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker finishes once acks are answered")
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert_eq!(ran(), 20);
    let left = inner.stats().await.unwrap();
    assert!(
        left.iter().all(|s| s.ready + s.reserved == 0),
        "every message acked: {left:?}"
    );
}

// ---------------------------------------------------------------------------------------
// When a stop's grace runs out, a slot still awaiting is cancelled, not left running while
// its message is handed back to another worker.

/// Set when the slot's future is dropped (cancelled) before it finished.
#[derive(Default)]
struct Cancelled(std::sync::atomic::AtomicBool);

struct SetOnDrop(Arc<Cancelled>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0 .0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "sleepy")]
struct Sleepy;

#[mq::slot]
async fn sleeps_an_hour(_msg: Sleepy, cancelled: State<Cancelled>) {
    let _guard = SetOnDrop(cancelled.0.clone());
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn a_slot_still_running_when_the_grace_runs_out_is_cancelled_and_its_message_handed_back() {
    let transport = MemoryTransport::new();
    Bus::new(transport.clone()).dispatch(Sleepy).await.unwrap();
    let cancelled = Arc::new(Cancelled::default());
    let worker = worker(&transport, [SlotDef::of::<sleeps_an_hour>()])
        .state_arc(cancelled.clone())
        .grace(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    assert_eq!(
        stop_after(&worker, Duration::from_millis(300)).await,
        Exit::Stopped
    );
    assert!(
        cancelled.0.load(std::sync::atomic::Ordering::SeqCst),
        "the slot still runs after the worker stopped"
    );
    assert_eq!(worker.slots_left_running(), 0);
    let stats = transport.stats().await.unwrap();
    let sleepy = stats.iter().find(|s| s.queue == "sleepy").unwrap();
    assert_eq!(
        (sleepy.ready, sleepy.reserved),
        (1, 0),
        "handed back: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// `run` spawns its loop: dropping the future it returned must still end the loop.

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "dropped-run")]
struct Late {
    n: u64,
}

#[mq::slot]
async fn late(msg: Late, runs: State<Runs>) {
    runs.record("late", msg.n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_of_run_ends_its_loop() {
    let transport = MemoryTransport::new();
    let bus = Bus::new(transport.clone());
    let runs = Arc::new(Runs::default());
    let worker = worker(&transport, [SlotDef::of::<late>()])
        .state_arc(runs.clone())
        .build()
        .await
        .unwrap();
    bus.dispatch(Late { n: 0 }).await.unwrap();
    let first_handled = async {
        while runs.count("late", 0) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        exit = worker.run() => panic!("the worker stopped by itself: {exit:?}"),
        () = first_handled => {}
    }
    // The future of `run` is dropped: a message dispatched now stays queued, however many
    // polls (50 ms each) go by.
    bus.dispatch(Late { n: 1 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        runs.count("late", 1),
        0,
        "the loop went on without its future"
    );
    let stats = transport.stats().await.unwrap();
    let queue = stats
        .iter()
        .find(|s| s.queue == "dropped-run")
        .expect("the queue");
    assert_eq!((queue.ready, queue.reserved), (1, 0), "{stats:?}");
}

/// The loop's own log lines, recorded by a subscriber given to the future of `run` only.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_logs_in_the_callers_span_and_a_queue_named_twice_is_consumed_once() {
    use tracing::instrument::WithSubscriber as _;
    use tracing::Instrument as _;
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let lines = lines.clone();
            move || lines.clone()
        })
        .with_ansi(false)
        .finish();
    let transport = MemoryTransport::new();
    Bus::new(transport.clone())
        .dispatch(Late { n: 7 })
        .await
        .unwrap();
    let runs = Arc::new(Runs::default());
    let worker = worker(&transport, [SlotDef::of::<late>()])
        .state_arc(runs.clone())
        // Named twice: consumed once.
        .queues(["dropped-run", "dropped-run"])
        .limit(1)
        .build()
        .await
        .unwrap();
    let dispatch = tracing::Dispatch::new(subscriber);
    // A span of that subscriber: made while it is the default.
    let span =
        tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("emails_worker"));
    let exit = worker
        .run()
        .instrument(span)
        .with_subscriber(dispatch)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Limit);
    assert_eq!(runs.count("late", 7), 1);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let started = text
        .lines()
        .find(|line| line.contains("mq worker started"))
        .unwrap_or_else(|| {
            panic!("the loop's start line reached the caller's subscriber:\n{text}")
        });
    assert!(
        started.contains("emails_worker"),
        "in the caller's span: {started}"
    );
    assert!(
        started.contains("queues=dropped-run "),
        "the queue once: {started}"
    );
}
