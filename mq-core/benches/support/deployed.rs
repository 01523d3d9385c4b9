//! The throughput bench's `--deployed` section (issue 14): mq measured in the shapes users
//! deploy, each beside its ceiling in the same round.
//!
//! - `mq_dispatch_one`: one task awaiting one `Bus::dispatch` at a time (a web request's
//!   shape), on a multi-threaded runtime as `#[tokio::main]` makes, against `raw_put_one`
//!   (a blocking loop of one `put` and its reply on mq's own codec) and `beanstalkc_put`
//!   (the blocking crate, one round trip per `put`).
//! - `sqlite_dispatch_one`: the same on the SQLite default, against `sqlite_insert_one`: a
//!   rusqlite loop of one `INSERT` and its `COMMIT`, on a file with the pragmas mq sets
//!   (WAL, `synchronous = NORMAL`).
//! - `mq_worker_process`: the bench binary run again as a worker whose `main` is
//!   `mq::run_worker()` with its defaults (logging, the summary line, every linked slot) and
//!   `--limit N`, timed as a whole process from spawn to exit, against `raw_consume`.

use std::process::Command as Process;
use std::time::{Duration, Instant};

use mq::Bus;

use super::{beanstalkc_put, flush, line, median, ratio, raw_consume, Bench, Raw, Server, BODY, R};
use mq::transport::beanstalk::proto::{Command, Response};

/// One figure (or ratio) of a round.
type Figure = fn(&Round) -> f64;

/// Every figure of one round, in messages per second.
#[derive(Debug, Default)]
struct Round {
    raw_put_one: f64,
    beanstalkc_put: f64,
    mq_dispatch_one: f64,
    sqlite_insert_one: f64,
    sqlite_dispatch_one: f64,
    raw_consume: f64,
    mq_worker_process: f64,
}

/// `--deployed`: `rounds` rounds of every figure, each beside its ceiling; medians and
/// ratios.
pub fn figures(n: usize, rounds: usize) -> R<()> {
    let server = Server::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    eprintln!(
        "throughput: deployed shapes, beanstalkd on port {}, N = {n}",
        server.port
    );
    match std::env::var("MQ_BENCH_WORKER") {
        Ok(path) => eprintln!("throughput: mq_worker_process runs {path}"),
        Err(_) => eprintln!(
            "throughput: mq_worker_process runs the bench binary (every feature): \
             MQ_BENCH_WORKER is unset (scripts/bench sets it)"
        ),
    }
    let mut all = Vec::new();
    for round in 1..=rounds {
        let figures = one_round(&server, &runtime, n)?;
        eprintln!("throughput: round {round}: {figures:?}");
        all.push(figures);
    }
    let of = |pick: Figure| median(&mut all.iter().map(pick).collect::<Vec<_>>());
    let figures = Round {
        raw_put_one: of(|r| r.raw_put_one),
        beanstalkc_put: of(|r| r.beanstalkc_put),
        mq_dispatch_one: of(|r| r.mq_dispatch_one),
        sqlite_insert_one: of(|r| r.sqlite_insert_one),
        sqlite_dispatch_one: of(|r| r.sqlite_dispatch_one),
        raw_consume: of(|r| r.raw_consume),
        mq_worker_process: of(|r| r.mq_worker_process),
    };
    line("raw_put_one", figures.raw_put_one, "msg/s");
    line("beanstalkc_put", figures.beanstalkc_put, "msg/s");
    line("mq_dispatch_one", figures.mq_dispatch_one, "msg/s");
    line("sqlite_insert_one", figures.sqlite_insert_one, "msg/s");
    line("sqlite_dispatch_one", figures.sqlite_dispatch_one, "msg/s");
    line("raw_consume", figures.raw_consume, "msg/s");
    line("mq_worker_process", figures.mq_worker_process, "msg/s");
    // Each round's own ratio, then their median: a drift of the shared machine between
    // rounds moves both sides of a round alike.
    let ratios: [(&str, Figure); 4] = [
        ("mq_dispatch_one/raw_put_one", |r| {
            r.mq_dispatch_one / r.raw_put_one
        }),
        ("mq_dispatch_one/beanstalkc_put", |r| {
            r.mq_dispatch_one / r.beanstalkc_put
        }),
        ("sqlite_dispatch_one/sqlite_insert_one", |r| {
            r.sqlite_dispatch_one / r.sqlite_insert_one
        }),
        ("mq_worker_process/raw_consume", |r| {
            r.mq_worker_process / r.raw_consume
        }),
    ];
    for (name, of_round) in ratios {
        ratio(name, of(of_round));
    }
    Ok(())
}

fn one_round(server: &Server, runtime: &tokio::runtime::Runtime, n: usize) -> R<Round> {
    let url = server.url();
    let mut round = Round {
        raw_put_one: raw_put_one(server.port, "one", n)?,
        ..Round::default()
    };
    runtime.block_on(flush(&url, "one"))?;
    round.beanstalkc_put = beanstalkc_put(server.port, "one", n)?;
    runtime.block_on(flush(&url, "one"))?;
    round.mq_dispatch_one = runtime.block_on(dispatch_one(&url, n))?;
    // The queue `bench` now holds n messages: the ceiling consumes them ...
    round.raw_consume = raw_consume(server.port, "bench", n)?;
    // ... and the worker binary the next n.
    runtime.block_on(dispatch_one(&url, n))?;
    round.mq_worker_process = worker_process(&url, n)?;

    let dir = tempfile::tempdir()?;
    round.sqlite_insert_one = sqlite_insert_one(&dir.path().join("raw.db"), n)?;
    let sqlite = format!("sqlite://{}", dir.path().join("mq.db").display());
    round.sqlite_dispatch_one = runtime.block_on(dispatch_one(&sqlite, n))?;
    Ok(round)
}

/// One `put` at a time on mq's codec, blocking I/O: the round trip and nothing else.
fn raw_put_one(port: u16, tube: &str, n: usize) -> R<f64> {
    let mut raw = Raw::using(port, tube)?;
    let body = vec![b'x'; BODY];
    let started = Instant::now();
    for _ in 0..n {
        raw.queue(Command::Put {
            priority: 100,
            delay: 0,
            ttr: 60,
            body: &body,
        });
        raw.flush()?;
        match raw.reply()? {
            Response::Inserted(_) => {}
            other => return Err(format!("put: {other}").into()),
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One task, one awaited dispatch at a time.
async fn dispatch_one(url: &str, n: usize) -> R<f64> {
    let bus = Bus::connect(url).await?;
    // The task a web handler runs in, not the runtime's own thread.
    let task = tokio::spawn(async move {
        let started = Instant::now();
        for seq in 0..n {
            bus.dispatch(Bench::new(seq as u64)).await?;
        }
        Ok::<_, mq::Error>(started.elapsed())
    });
    Ok(n as f64 / task.await??.as_secs_f64())
}

/// One `INSERT` and its `COMMIT` at a time, with mq's pragmas and a row like mq's.
fn sqlite_insert_one(path: &std::path::Path, n: usize) -> R<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, \
         priority INTEGER NOT NULL, state INTEGER NOT NULL, due_at INTEGER NOT NULL, \
         ttr_ms INTEGER NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0, \
         created_at INTEGER NOT NULL, body BLOB NOT NULL); \
         CREATE INDEX q_ready ON q (queue, priority, id) WHERE state = 0;",
    )?;
    let body = vec![b'x'; BODY];
    let started = Instant::now();
    for _ in 0..n {
        conn.execute_batch("BEGIN")?;
        conn.prepare_cached(
            "INSERT INTO q (queue, priority, state, due_at, ttr_ms, created_at, body) \
             VALUES ('bench', 100, 0, 0, 60000, 0, ?1)",
        )?
        .execute([&body])?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A worker on `mq::run_worker()` with `--limit n`, timed from spawn to exit: the example
/// `bench_worker` (mq's default features) at `$MQ_BENCH_WORKER`, which `scripts/bench` builds,
/// else the bench binary itself (`MQ_BENCH_CHILD=run_worker`, every feature).
fn worker_process(url: &str, n: usize) -> R<f64> {
    let program = match std::env::var_os("MQ_BENCH_WORKER") {
        Some(path) => std::path::PathBuf::from(path),
        None => std::env::current_exe()?,
    };
    let started = Instant::now();
    let status = Process::new(program)
        .args(["--limit", &n.to_string()])
        .env("MQ_BENCH_CHILD", "run_worker")
        .env("MQ_URL", url)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("the run_worker child failed: {status}").into());
    }
    Ok(n as f64 / elapsed.max(Duration::from_micros(1)).as_secs_f64())
}

/// `mq_dispatch_one` alone, for profiling (`strace -f -c`, `valgrind --tool=callgrind`):
/// `MQ_BENCH_CHILD=dispatch_one MQ_BENCH_URL=... MQ_BENCH_N=...`, on a multi-threaded runtime,
/// or a current-thread one with `MQ_BENCH_RUNTIME=current`. Prints `MESSAGES_PER_SECOND`.
pub fn dispatch_one_child() -> R<()> {
    let url = std::env::var("MQ_BENCH_URL")?;
    let n: usize = std::env::var("MQ_BENCH_N")?.parse()?;
    let runtime = match std::env::var("MQ_BENCH_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    println!("{:.0}", runtime.block_on(dispatch_one(&url, n))?);
    Ok(())
}

/// `sqlite_insert_one` alone, for profiling beside `dispatch_one_child` on SQLite:
/// `MQ_BENCH_CHILD=insert_one MQ_BENCH_PATH=/tmp/x/raw.db MQ_BENCH_N=...`. Prints
/// `MESSAGES_PER_SECOND`.
pub fn insert_one_child() -> R<()> {
    let path = std::env::var("MQ_BENCH_PATH")?;
    let n: usize = std::env::var("MQ_BENCH_N")?.parse()?;
    println!("{:.0}", sqlite_insert_one(std::path::Path::new(&path), n)?);
    Ok(())
}

/// The child of [`worker_process`]: `main` as a user writes it.
pub fn run_worker_child() -> R<()> {
    tokio::runtime::Runtime::new()?.block_on(mq::run_worker())?;
    Ok(())
}
