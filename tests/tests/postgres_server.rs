//! Faults that need a PostgreSQL server of the test's own (`mq_tests::pg_server`): the
//! server restarted (fast shutdown, immediate shutdown, SIGKILL of the postmaster) while a
//! worker process consumes and a producer dispatches; two worker processes on one
//! database; an idle reserver woken by a put after a restart, and after its listening
//! connection was ended and its reconnection refused for a moment.
//!
//! The workers are the `test-worker` binary (`mq::run_worker()`), recording each handled
//! `Work` in a file; each test starts its own server on a free port in a folder of its own,
//! stopped and removed when the test ends, passed or failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq::transport::postgres::PostgresTransport;
use mq::transport::{Job, PutOptions, Transport};
use mq::Bus;
use mq_tests::pg_server::{PgServer, Stop};
use mq_tests::worker_process::{recorded, Work, WorkerProcess};
use sqlx::{Connection, Executor, PgConnection};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The workers' `--concurrency`: a worker holds at most twice as many reservations (the
/// running slots, and as many finished ones whose acks are on the way).
const CONCURRENCY: usize = 16;

fn start_worker(url: &str, record: &Path, log: &Path) -> WorkerProcess {
    let concurrency = CONCURRENCY.to_string();
    let args = ["--queues", "work", "--concurrency", &concurrency];
    WorkerProcess::start_logged(WORKER, url, record, &args, log)
}

fn work(n: u64, sleep_ms: u64) -> Work {
    Work {
        n,
        sleep_ms,
        panic: false,
    }
}

/// How many times each number was recorded.
fn tally(numbers: impl IntoIterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for n in numbers {
        *seen.entry(n).or_insert(0) += 1;
    }
    seen
}

/// The numbers of `0..total` never recorded.
fn missing(seen: &BTreeMap<u64, usize>, total: u64) -> Vec<u64> {
    (0..total).filter(|n| !seen.contains_key(n)).collect()
}

/// The lines of a worker's log that say something went wrong, for the test's output.
fn complaints(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("ERROR") || line.contains("WARN"))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to `limit`) until `work` has nothing ready, reserved or delayed: the items
/// whose acks were lost came back after their TTR and ran again.
async fn wait_until_empty(queue: &dyn Transport, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let stats = queue.stats().await;
        if let Ok(all) = &stats {
            let work = all.iter().find(|s| s.queue == "work");
            if work.is_none_or(|s| s.ready + s.reserved + s.delayed == 0) {
                return;
            }
        }
        assert!(Instant::now() < until, "`work` is not empty: {stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long the restart tests keep the server down between its stop and its start.
const OUTAGE: Duration = Duration::from_secs(1);

/// A producer dispatches `TOTAL` messages, paced, while a worker process consumes them;
/// once the worker has handled a quarter, the server is stopped `how`, kept down for
/// [`OUTAGE`] and started again on the same port and data. The worker survives (it is still running at the end), every
/// message is handled at least once, and the ones handled twice are at most what the
/// worker held when the server went (its acks lost) plus the dispatches that failed (one
/// whose commit happened but whose answer was lost is in the queue twice).
async fn restarted_mid_run(how: Stop) {
    const TOTAL: u64 = 2_000;
    // About 4 s of dispatching: the restart comes while both producer and worker run.
    const PACE: Duration = Duration::from_millis(2);
    let mut server = PgServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let (record, log) = (dir.path().join("record"), dir.path().join("worker.log"));
    let bus = Arc::new(Bus::connect(&url).await.unwrap());
    let mut worker = start_worker(&url, &record, &log);

    let sent = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn({
        let (bus, sent) = (bus.clone(), sent.clone());
        async move {
            let started = tokio::time::Instant::now();
            let mut failures = Vec::new();
            for n in 0..TOTAL {
                tokio::time::sleep_until(started + PACE * n as u32).await;
                let until = Instant::now() + Duration::from_secs(30);
                while let Err(error) = bus.dispatch(work(n, 0)).await {
                    assert!(
                        Instant::now() < until,
                        "dispatch {n} failed for 30 s: {error}"
                    );
                    failures.push(error.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sent.store(n + 1, Ordering::SeqCst);
            }
            failures
        }
    });

    let until = Instant::now() + Duration::from_secs(30);
    while (recorded(&record).len() as u64) < TOTAL / 4 {
        assert!(
            Instant::now() < until,
            "the worker handled only {} before the restart",
            recorded(&record).len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (handled_before, sent_before) = (recorded(&record).len(), sent.load(Ordering::SeqCst));
    let down = Instant::now();
    tokio::task::block_in_place(|| server.stop(how));
    // Down long enough that the producer's dispatches and the worker's reservations and
    // acks meet a server that is not there (a restart alone takes about 100 ms).
    tokio::time::sleep(OUTAGE).await;
    tokio::task::block_in_place(|| server.start_again());
    let (down_for, back) = (down.elapsed(), Instant::now());
    assert!(
        sent_before < TOTAL,
        "the producer must still be dispatching at the restart"
    );

    // The first message handled after the server is back (one recorded since).
    let at_back = recorded(&record).len();
    let until = Instant::now() + Duration::from_secs(20);
    while recorded(&record).len() == at_back {
        assert!(
            Instant::now() < until,
            "the worker handled nothing in the 20 s after the restart; it is {:?}; its log:\n{}",
            worker.0.try_wait(),
            complaints(&log).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resumed = back.elapsed();

    let failures = tokio::time::timeout(Duration::from_secs(30), producer)
        .await
        .expect("the producer finishes")
        .unwrap();
    let until = Instant::now() + Duration::from_secs(25);
    loop {
        let seen = tally(recorded(&record));
        if missing(&seen, TOTAL).is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of {TOTAL} never handled after the restart ({:?} ...); the worker is {:?}; \
             its log:\n{}",
            missing(&seen, TOTAL).len(),
            &missing(&seen, TOTAL)[..missing(&seen, TOTAL).len().min(10)],
            worker.0.try_wait(),
            complaints(&log).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The items whose acks were lost run again after their TTR (5 s): wait for them, so
    // that the duplicates counted are all there are.
    wait_until_empty(bus.transport().as_ref(), Duration::from_secs(20)).await;
    let seen = tally(recorded(&record));
    let twice: usize = seen.values().map(|count| count - 1).sum();
    let complaints = complaints(&log);
    eprintln!(
        "restart ({how:?}) after {handled_before} handled and {sent_before} dispatched: the \
         server was gone {down_for:?}; the worker handled again {resumed:?} after it was \
         back; {} dispatches failed and were tried again; {twice} of {TOTAL} handled twice; \
         the worker logged {} warnings and errors{}",
        failures.len(),
        complaints.len(),
        complaints
            .iter()
            .take(8)
            .map(|line| format!("\n  {line}"))
            .collect::<String>()
    );
    if let Some(first) = failures.first() {
        eprintln!("the first failed dispatch: {first}");
    }
    assert_eq!(
        worker.0.try_wait().unwrap(),
        None,
        "the worker must survive the restart; its log:\n{}",
        complaints.join("\n")
    );
    assert!(
        twice <= 2 * CONCURRENCY + failures.len(),
        "{twice} handled twice: more than the worker held ({}) and the failed dispatches ({})",
        2 * CONCURRENCY,
        failures.len()
    );
    let stats = mq_tests::queue_stats(bus.transport().as_ref(), "work").await;
    assert_eq!(stats.failed, 0, "nothing failed: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_mid_run_loses_nothing() {
    restarted_mid_run(Stop::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_shutdown_mid_run_loses_nothing() {
    restarted_mid_run(Stop::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postmaster_killed_mid_run_loses_nothing() {
    restarted_mid_run(Stop::Kill).await;
}

/// Two worker processes consume one queue at once: each message is handled exactly once
/// (its TTR, 5 s, is far longer than a slot's 5 ms, so no lease runs out), none is lost,
/// and both workers took part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_one_database_handle_each_message_once() {
    const TOTAL: u64 = 2_000;
    let server = PgServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let bus = Bus::connect(&url).await.unwrap();
    bus.dispatch_all((0..TOTAL).map(|n| work(n, 5)))
        .await
        .unwrap();
    let started = Instant::now();
    let mut workers = [
        start_worker(&url, &path("a"), &path("a.log")),
        start_worker(&url, &path("b"), &path("b.log")),
    ];
    let until = Instant::now() + Duration::from_secs(30);
    while ((recorded(&path("a")).len() + recorded(&path("b")).len()) as u64) < TOTAL {
        assert!(
            Instant::now() < until,
            "the workers handled only {} and {} of {TOTAL}",
            recorded(&path("a")).len(),
            recorded(&path("b")).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    wait_until_empty(bus.transport().as_ref(), Duration::from_secs(10)).await;
    for worker in &mut workers {
        assert_eq!(worker.0.try_wait().unwrap(), None, "a worker exited");
    }
    let (a, b) = (recorded(&path("a")), recorded(&path("b")));
    eprintln!(
        "two workers: {} and {} of {TOTAL} in {took:?}",
        a.len(),
        b.len()
    );
    let seen = tally(a.iter().chain(&b).copied());
    let twice: Vec<(&u64, &usize)> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(missing(&seen, TOTAL), Vec::<u64>::new(), "never handled");
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both workers took part: {} and {}",
        a.len(),
        b.len()
    );
    for log in [path("a.log"), path("b.log")] {
        assert_eq!(complaints(&log), Vec::<String>::new(), "{}", log.display());
    }
}

/// How long an idle reserver waits for its timeout here: far longer than [`WAKE_BOUND`],
/// so that a reservation at the timeout, not at a wake-up, fails the test.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(25);

/// How soon after a put the idle reserver must have it: a wake-up takes milliseconds; this
/// is generous for a loaded machine, and for a listener that reconnects after the server
/// is back (the pool tries again every 2 s at most).
const WAKE_BOUND: Duration = Duration::from_secs(5);

/// The reserver's part: reserves one item of `work` as a worker would (calling `reserve`
/// again after its timeout or an error); the item, when it had it, and the errors.
async fn reserve_one(queue: Arc<PostgresTransport>) -> (Job, Instant, Vec<String>) {
    let mut errors = Vec::new();
    loop {
        match queue.reserve(&["work".into()], 1, RESERVE_TIMEOUT).await {
            Ok(mut jobs) if !jobs.is_empty() => return (jobs.remove(0), Instant::now(), errors),
            Ok(_) => errors.push(format!("reserve timed out after {RESERVE_TIMEOUT:?}")),
            Err(error) => {
                errors.push(error.to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Puts `body` on `work`, trying again while the server is not answering yet; when it went
/// in.
async fn put_retrying(queue: &PostgresTransport, body: &str) -> Instant {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match queue
            .put("work", body.to_owned().into(), PutOptions::default())
            .await
        {
            Ok(_) => return Instant::now(),
            Err(error) => {
                assert!(Instant::now() < until, "the put failed for 20 s: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// An idle reserver (listening, the default) waits while the server is stopped `how`, kept
/// down for `outage`, and started again; a put through another transport (so that only a
/// NOTIFY can wake it) after the server is back must reach it within [`WAKE_BOUND`].
/// Before the restart, the same put wakes it too (the figure to compare with).
async fn woken_after_a_restart(rounds: &[(Stop, Duration)]) {
    let mut server = PgServer::start();
    let url = server.url();
    let reserver = Arc::new(PostgresTransport::connect(&url).await.unwrap());
    let producer = PostgresTransport::connect(&format!("{url}?listen=false"))
        .await
        .unwrap();

    let waiting = tokio::spawn(reserve_one(reserver.clone()));
    // Let it look, find nothing and wait (a put before that would be found, not woken to).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let put_at = put_retrying(&producer, "before").await;
    let (job, got_at, errors) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the reserver has the item before the restart")
        .unwrap();
    let took = got_at.saturating_duration_since(put_at);
    eprintln!("before any restart: the idle reserver had the put {took:?} after it");
    assert_eq!(&job.body[..], b"before");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        took < WAKE_BOUND,
        "the put reached the reserver after {took:?}"
    );
    reserver.ack(&job).await.unwrap();

    for (round, &(how, outage)) in rounds.iter().enumerate() {
        let waiting = tokio::spawn(reserve_one(reserver.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let down = Instant::now();
        tokio::task::block_in_place(|| server.stop(how));
        tokio::time::sleep(outage).await;
        tokio::task::block_in_place(|| server.start_again());
        let down_for = down.elapsed();
        let body = format!("after restart {round}");
        let put_at = put_retrying(&producer, &body).await;
        let (job, got_at, errors) = tokio::time::timeout(RESERVE_TIMEOUT * 2, waiting)
            .await
            .expect("the reserver has the item after the restart")
            .unwrap();
        let took = got_at.saturating_duration_since(put_at);
        eprintln!(
            "restart {round} ({how:?}, the server gone {down_for:?}): the idle reserver had \
             a put made once it was back {took:?} after it; its reserve calls said {errors:?}"
        );
        assert_eq!(job.body, body.as_bytes());
        assert!(
            took < WAKE_BOUND,
            "after a restart ({how:?}, gone {down_for:?}), a put reached the idle reserver \
             only {took:?} after it (not woken: found at its timeout); its reserve calls said \
             {errors:?}"
        );
        reserver.ack(&job).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reserver_is_woken_by_a_put_after_a_restart() {
    woken_after_a_restart(&[
        (Stop::Fast, Duration::ZERO),
        (Stop::Immediate, Duration::ZERO),
    ])
    .await;
}

/// The server gone for longer than the transport's pool waits for a connection (10 s): the
/// listener's first reconnection fails (and a reserve call woken meanwhile may too); a put
/// once the server is back still reaches the reserver within [`WAKE_BOUND`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reserver_is_woken_by_a_put_after_a_long_outage() {
    woken_after_a_restart(&[(Stop::Fast, Duration::from_secs(11))]).await;
}

/// Waits until the server's log, past its first `from` bytes, says that a connection to
/// `database` was refused; where the log then ends.
async fn wait_for_refusal(server: &PgServer, from: usize, database: &str) -> usize {
    let text = format!("database \"{database}\" is not currently accepting connections");
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let log = server.log_text();
        if log.get(from..).is_some_and(|new| new.contains(&text)) {
            return log.len();
        }
        assert!(
            Instant::now() < until,
            "no connection refused within 15 s; the server log says:\n{}",
            log.get(from..).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An item put on `work` by plain SQL, with the NOTIFY a producer in another language
/// sends (`docs/postgres.md`): the producer's connection is not the transport's.
async fn put_by_sql(producer: &mut PgConnection, body: &str) -> Instant {
    sqlx::query(
        "WITH put AS (INSERT INTO mq.mq_messages (queue, priority, due_at, ttr_ms, body) \
         VALUES ('work', 0, now(), 5000, $1) RETURNING queue) \
         SELECT pg_notify('mq_mq', queue) FROM put",
    )
    .bind(body.as_bytes())
    .execute(producer)
    .await
    .expect("put by SQL");
    Instant::now()
}

/// The listening connection lost and its reconnection refused at first: the server ends
/// the transport's sessions (`pg_terminate_backend`, as an administrator or a failover
/// would) while its database refuses new connections (`ALLOW_CONNECTIONS false`), then
/// accepts them again. The idle reserver (listening) must have an item within
/// [`WAKE_BOUND`] of connections being allowed again, whether it was put while the
/// listener was away (`put_while_refused`: its NOTIFY was lost, so the reserver must be
/// woken once the LISTEN is back) or once connections are allowed (before the listener
/// has tried again: it must be listening by then, or wake the reserver when it is).
async fn woken_after_a_refused_reconnection(put_while_refused: bool) {
    let server = PgServer::start();
    let mut admin = PgConnection::connect(&server.url()).await.unwrap();
    admin.execute("CREATE DATABASE queues").await.unwrap();
    let url = server.url_to("queues");
    let reserver = Arc::new(PostgresTransport::connect(&url).await.unwrap());
    let mut producer = PgConnection::connect(&format!("{url}?application_name=producer"))
        .await
        .unwrap();

    let waiting = tokio::spawn(reserve_one(reserver.clone()));
    // Let it look, find nothing and wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = server.log_text().len();
    admin
        .execute("ALTER DATABASE queues WITH ALLOW_CONNECTIONS false")
        .await
        .unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = 'queues' AND application_name = 'mq'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        !ended.is_empty(),
        "the transport's sessions, the listener's among them"
    );
    // The listener saw its connection end and tried to connect again.
    wait_for_refusal(&server, from, "queues").await;
    let put_at = if put_while_refused {
        let put_at = put_by_sql(&mut producer, "sent while away").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        put_at
    } else {
        Instant::now()
    };
    admin
        .execute("ALTER DATABASE queues WITH ALLOW_CONNECTIONS true")
        .await
        .unwrap();
    let allowed_at = Instant::now();
    let body = if put_while_refused {
        "sent while away"
    } else {
        // Long enough for a reserver woken by the failure to look again and wait, and
        // shorter than the second a listener waited before trying again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        put_by_sql(&mut producer, "sent once allowed").await;
        "sent once allowed"
    };
    let (job, got_at, errors) = tokio::time::timeout(RESERVE_TIMEOUT * 2, waiting)
        .await
        .expect("the reserver has the item")
        .unwrap();
    let took = got_at.saturating_duration_since(allowed_at);
    eprintln!(
        "sessions ended, connections refused ({}): the idle reserver had the item {took:?} \
         after connections were allowed again ({:?} after the put); its reserve calls said \
         {errors:?}",
        if put_while_refused {
            "put while refused"
        } else {
            "put once allowed"
        },
        got_at.saturating_duration_since(put_at)
    );
    assert_eq!(job.body, body.as_bytes());
    assert!(
        took < WAKE_BOUND,
        "the idle reserver had the item only {took:?} after connections were allowed again \
         (not woken: found at its timeout); its reserve calls said {errors:?}"
    );
    reserver.ack(&job).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_put_while_the_listener_is_refused_wakes_the_reserver_once_it_listens() {
    woken_after_a_refused_reconnection(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_put_once_the_listener_may_connect_again_wakes_the_reserver() {
    woken_after_a_refused_reconnection(false).await;
}
