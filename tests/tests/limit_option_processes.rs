//! The limits a message type and a worker declare themselves, under real concurrency, on
//! worker processes of the `limit-worker` binary:
//!
//! - `#[message(concurrency = 2, concurrency_key = "customer")]`: 200 messages of one
//!   customer and 40 of another, dispatched with plain `dispatch` (and `dispatch_all`), on
//!   three workers: the slots' own start and end times never overlap more than twice for
//!   one customer, while the two customers' run beside each other; each on attempt 1.
//!   SQLite and PostgreSQL.
//! - `--rate-limit lookups=50` on three workers: within 10% of 50 a second.
//! - Both refused on beanstalkd: at dispatch, and at worker start-up.

#[path = "../src/bin/limit-worker/messages.rs"]
mod messages;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use messages::{CallCustomerApi, Lookup};
use mq_tests::worker_process::WorkerProcess;

const WORKER: &str = env!("CARGO_BIN_EXE_limit-worker");

/// The recorded lines, each split at its spaces: `KEY N ATTEMPT START END`.
fn records(record: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let lines = text.split_terminator('\n');
    lines
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect()
}

fn microseconds(field: &str) -> u128 {
    field.parse().unwrap()
}

async fn two_per_customer_at_most(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let bus = mq::Bus::connect(url).await.unwrap();
    for n in 0..200 {
        let customer = "acme".to_owned();
        bus.dispatch(CallCustomerApi { customer, n }).await.unwrap();
        if n % 5 == 0 {
            let customer = "globex".to_owned();
            let batch = [CallCustomerApi { customer, n }];
            bus.dispatch_all(batch).await.unwrap();
        }
    }
    let args = ["--queues", "customer-calls"];
    let _workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(WORKER, url, &record, &args))
        .collect();
    let until = Instant::now() + Duration::from_secs(40);
    let lines = loop {
        let lines = records(&record);
        let done: BTreeSet<(String, String)> =
            lines.iter().map(|f| (f[0].clone(), f[1].clone())).collect();
        if done.len() == 240 {
            break lines;
        }
        assert!(Instant::now() < until, "{} of 240 handled", done.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut runs: BTreeMap<String, Vec<(u128, u128)>> = BTreeMap::new();
    for fields in &lines {
        assert_eq!(fields[2], "1", "held back costs no attempt: {fields:?}");
        let run = (microseconds(&fields[3]), microseconds(&fields[4]));
        runs.entry(fields[0].clone()).or_default().push(run);
    }
    assert_eq!(
        mq_tests::most_at_once(&runs["acme"]),
        2,
        "at most 2, and used"
    );
    assert!(mq_tests::most_at_once(&runs["globex"]) <= 2);
    let all: Vec<(u128, u128)> = runs.values().flatten().copied().collect();
    let most = mq_tests::most_at_once(&all);
    assert!(
        most > 2,
        "each customer has permits of its own: {most} at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_types_concurrency_holds_across_three_workers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    two_per_customer_at_most(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_types_concurrency_holds_across_three_workers_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    two_per_customer_at_most(&db.url("")).await;
}

/// 450 lookups, with no limit of their own, on three workers started with
/// `--rate-limit lookups=50`: over the 6 s after the first second, 300 start, within 10%;
/// no 950 ms sees more than 50 (see `key_limit_processes.rs` for the margin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_queue_rate_holds_within_ten_percent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let record = dir.path().join("record");
    let bus = mq::Bus::connect(&url).await.unwrap();
    bus.dispatch_all((0..450).map(|n| Lookup { n }))
        .await
        .unwrap();
    let args = ["--queues", "lookups", "--rate-limit", "lookups=50"];
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(WORKER, &url, &record, &args))
        .collect();
    tokio::time::sleep(Duration::from_millis(8500)).await;
    drop(workers);
    let mut starts: Vec<u128> = Vec::new();
    for fields in records(&record) {
        assert_eq!(fields[2], "1", "held back costs no attempt: {fields:?}");
        starts.push(microseconds(&fields[3]));
    }
    starts.sort_unstable();
    let from = starts[0] + 1_000_000;
    let to = from + 6_000_000;
    let in_six_seconds = starts.iter().filter(|&&s| s >= from && s < to).count();
    println!("{in_six_seconds} started in the 6 s at a limit of 50/s");
    assert!(
        (270..=330).contains(&in_six_seconds),
        "{in_six_seconds} started in 6 s at 50/s"
    );
    for (i, start) in starts.iter().enumerate() {
        let window = starts[i..].iter().take_while(|&&s| s < start + 950_000);
        assert!(window.count() <= 50, "more than 50 started within 950 ms");
    }
}

/// Every dispatch path writes the type's limit into the envelope's headers, keyed by the
/// wire name and the customer: `dispatch`, `dispatch_all`, `.within(tx)`, a slot's
/// `ctx.dispatch`; a dispatch's own `.concurrency_key` takes its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dispatch_path_carries_the_types_limit_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    let bus = mq::Bus::connect(&db.url("")).await.unwrap();
    let call = |n| CallCustomerApi {
        customer: "acme".into(),
        n,
    };
    bus.dispatch(call(1)).await.unwrap();
    bus.dispatch_all([call(2)]).await.unwrap();
    let mut tx = db.connect().await;
    bus.dispatch(call(3)).within(&mut tx).await.unwrap();
    let recording = mq::testing::RecordingBus::on(bus.transport().clone());
    let ctx = recording.context::<Lookup>().build();
    ctx.dispatch(call(4)).await.unwrap();
    bus.dispatch(call(5))
        .concurrency_key("vip", 5)
        .await
        .unwrap();
    let queues = ["customer-calls".to_owned()];
    let jobs = bus.transport().reserve(&queues, 10, Duration::from_secs(5));
    let mut limits: Vec<(u64, String, String)> = jobs
        .await
        .unwrap()
        .iter()
        .map(|job| {
            let envelope = mq::Envelope::decode(&job.body).unwrap();
            let body: CallCustomerApi = serde_json::from_str(envelope.body.get()).unwrap();
            let header = |name: &str| envelope.headers.get(name).cloned().unwrap_or_default();
            (body.n, header("mq-limit-key"), header("mq-limit"))
        })
        .collect();
    limits.sort();
    let of_acme = |n| (n, "CallCustomerApi:acme".to_owned(), "2".to_owned());
    let mut expected: Vec<_> = (1..=4).map(of_acme).collect();
    expected.push((5, "vip".to_owned(), "5".to_owned()));
    assert_eq!(limits, expected);
}

/// A lookup slot in the test itself, for a worker built here.
#[mq::slot]
fn look_up(_: &Lookup) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_refused_on_beanstalkd_at_dispatch_and_at_start_up() {
    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let bus = mq::Bus::connect(&server.url()).await.unwrap();
    let call = CallCustomerApi {
        customer: "acme".into(),
        n: 1,
    };
    let error = bus.dispatch(call).await.expect_err("refused").to_string();
    assert!(
        error.contains("use a backend that can: sqlite, postgres, memory"),
        "{error}"
    );
    assert!(error.contains("CallCustomerApi"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let (record, log) = (dir.path().join("record"), dir.path().join("log"));
    let mut worker = WorkerProcess::start_logged(WORKER, &server.url(), &record, &[], &log);
    let status = worker.wait_for(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("`#[message(concurrency = 2)]` of message `CallCustomerApi`"),
        "{said}"
    );
    assert!(said.contains("use a backend that can"), "{said}");

    let registry = mq::Registry::from_slots([mq::SlotDef::of::<look_up>()]).unwrap();
    let builder = mq::Worker::builder().url(server.url()).registry(registry);
    let refused = builder.rate_limit("lookups", 50).build().await;
    let error = refused.expect_err("refused").to_string();
    assert!(error.contains("rate limit of queue `lookups`"), "{error}");
    assert!(error.contains("use a backend that can"), "{error}");

    let zero = ["--rate-limit", "lookups=0"];
    let mut worker = WorkerProcess::start_logged(WORKER, "memory://", &record, &zero, &log);
    let status = worker.wait_for(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(2), "a bad command line");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("a rate of 0 would never run"), "{said}");
}
