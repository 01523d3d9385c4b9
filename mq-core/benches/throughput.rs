//! Throughput of mq on beanstalkd, side by side with the server's own ceiling and with the
//! blocking `beanstalkc` crate. Run by hand, not in CI:
//!
//! ```text
//! cargo bench -p mq-core --features nats,postgres,otel,prometheus --bench throughput            # N = 100,000
//! cargo bench -p mq-core --features nats,postgres,otel,prometheus --bench throughput -- --quick # N = 20,000
//! MQ_BENCH_N=50000 cargo bench -p mq-core --features nats,postgres,otel,prometheus --bench throughput
//! ```
//!
//! `--telemetry` runs only the cost of tracing and metrics, `--signing` only that of signed
//! envelopes (`support/telemetry.rs`), `--deployed` only the shapes users deploy, each beside
//! its ceiling (`support/deployed.rs`).
//!
//! Starts its own beanstalkd (`$BEANSTALKD`, else `/usr/bin/beanstalkd`) on a free loopback
//! port and kills it at the end. For the PostgreSQL figures it needs a server that lets it
//! create a database (`$MQ_BENCH_PG`, else `postgres://postgres@127.0.0.1:5432`): it creates
//! `mq_bench_<pid>` and drops it at the end, and touches nothing else there. Prints one line
//! per figure, `NAME VALUE UNIT`, then the `ratio` lines (the PostgreSQL ones against the
//! ceilings measured on one plain sqlx connection in the same run), ending with
//! `mq_dispatch/raw_put`, `mq_process/raw_consume` and `mq_process/beanstalkc_consume`.
//! See `docs/performance.md` for what each figure measures.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use mq::transport::beanstalk::proto::{Command, Decoder, Response};
use mq::{Bus, Exit, Registry, SlotDef, Worker};
use serde::{Deserialize, Serialize};

#[path = "support/deployed.rs"]
mod deployed;
#[path = "support/telemetry.rs"]
mod telemetry;

type R<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Raw loops send this many commands per write.
const BATCH: usize = 512;
/// Body size of the raw and beanstalkc loops; the JSON body of an mq message is as long.
const BODY: usize = 200;
/// Tasks dispatching at once in `mq_dispatch`.
const DISPATCHERS: usize = 64;
/// Rounds of the ceilings and of `mq_dispatch`/`mq_process` in a full run.
const ROUNDS: usize = 3;
/// Messages per second in the latency run.
const RATE: u64 = 1_000;

/// The message of `mq_dispatch` and `mq_process`.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "bench")]
struct Bench {
    seq: u64,
    pad: String,
}

impl Bench {
    fn new(seq: u64) -> Bench {
        // {"seq":N,"pad":"..."}: about BODY bytes of JSON.
        Bench {
            seq,
            pad: "x".repeat(BODY - 30),
        }
    }
}

/// The message of the latency run: carries its dispatch time.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "bench-latency")]
struct Tick {
    sent_us: u64,
    pad: String,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);
static LATENCIES_US: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[mq::slot]
async fn noop(_message: Bench) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[mq::slot]
async fn record_latency(message: Tick) {
    let latency = now_us().saturating_sub(message.sent_us);
    if let Ok(mut latencies) = LATENCIES_US.lock() {
        latencies.push(latency);
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// A beanstalkd for this run.

struct Server {
    child: Child,
    port: u16,
    scheme: &'static str,
    _storage: Option<tempfile::TempDir>,
}

impl Server {
    /// beanstalkd (`$BEANSTALKD` or /usr/bin/beanstalkd), no binlog.
    fn start() -> R<Server> {
        let binary = std::env::var("BEANSTALKD").unwrap_or_else(|_| "/usr/bin/beanstalkd".into());
        Server::spawn(&binary, "beanstalk", None, |port| {
            vec!["-l".into(), "127.0.0.1".into(), "-p".into(), port]
        })
    }

    /// nats-server with JetStream (`$NATS_SERVER` or /usr/sbin/nats-server), file storage
    /// in a temporary folder.
    fn start_nats() -> R<Server> {
        let binary =
            std::env::var("NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let storage = tempfile::tempdir()?;
        let dir = storage.path().display().to_string();
        Server::spawn(&binary, "nats", Some(storage), move |port| {
            vec![
                "-js".into(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
                "-sd".into(),
                dir,
            ]
        })
    }

    fn spawn(
        binary: &str,
        scheme: &'static str,
        storage: Option<tempfile::TempDir>,
        args: impl FnOnce(String) -> Vec<String>,
    ) -> R<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Process::new(binary)
            .args(args(port.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {binary} (scripts/test installs it): {e}"))?;
        let server = Server {
            child,
            port,
            scheme,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{binary} did not listen on port {port} within 5 s").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// raw_*: a minimal pipelined client on mq's own codec, blocking I/O, one connection.

struct Raw {
    stream: TcpStream,
    buffer: BytesMut,
    decoder: Decoder,
    out: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> R<Raw> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Raw {
            stream,
            buffer: BytesMut::with_capacity(1 << 20),
            decoder: Decoder::default(),
            out: Vec::with_capacity(1 << 20),
        })
    }

    /// A connection that puts into `tube`.
    fn using(port: u16, tube: &str) -> R<Raw> {
        let mut raw = Raw::connect(port)?;
        raw.queue(Command::Use(tube));
        raw.flush()?;
        raw.reply()?;
        Ok(raw)
    }

    fn queue(&mut self, command: Command<'_>) {
        command.encode(&mut self.out);
    }

    fn flush(&mut self) -> R<()> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    fn reply(&mut self) -> R<Response> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            if let Some(response) = self.decoder.decode(&mut self.buffer)? {
                return Ok(response);
            }
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Err("beanstalkd closed the connection".into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn raw_put(port: u16, tube: &str, n: usize) -> R<f64> {
    let mut raw = Raw::using(port, tube)?;
    let body = vec![b'x'; BODY];
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = BATCH.min(n - sent);
        for _ in 0..batch {
            raw.queue(Command::Put {
                priority: 100,
                delay: 0,
                ttr: 60,
                body: &body,
            });
        }
        raw.flush()?;
        for _ in 0..batch {
            match raw.reply()? {
                Response::Inserted(_) => {}
                other => return Err(format!("put: {other}").into()),
            }
        }
        sent += batch;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Reserves in batches of `BATCH` (`reserve-with-timeout 0`); the deletes of one batch go out
/// in the same write as the reserves of the next.
fn raw_consume(port: u16, tube: &str, n: usize) -> R<f64> {
    let mut raw = Raw::connect(port)?;
    raw.queue(Command::Watch(tube));
    raw.queue(Command::Ignore("default"));
    raw.flush()?;
    raw.reply()?;
    raw.reply()?;
    let started = Instant::now();
    let mut done = 0;
    let mut to_delete: Vec<u64> = Vec::with_capacity(BATCH);
    loop {
        let deletes = to_delete.len();
        for id in to_delete.drain(..) {
            raw.queue(Command::Delete(id));
        }
        let reserves = if done < n { BATCH } else { 0 };
        for _ in 0..reserves {
            raw.queue(Command::ReserveWithTimeout(0));
        }
        if deletes + reserves == 0 {
            break;
        }
        raw.flush()?;
        for _ in 0..deletes {
            match raw.reply()? {
                Response::Deleted => {}
                other => return Err(format!("delete: {other}").into()),
            }
        }
        for _ in 0..reserves {
            match raw.reply()? {
                Response::Reserved { id, .. } => {
                    to_delete.push(id);
                    done += 1;
                }
                Response::TimedOut => {}
                other => return Err(format!("reserve: {other}").into()),
            }
        }
        if done < n && to_delete.is_empty() {
            return Err(format!("raw_consume: only {done} of {n} jobs were ready").into());
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// beanstalkc_*: the blocking crate, one round trip per command.

fn beanstalkc(port: u16) -> R<beanstalkc::Beanstalkc> {
    Ok(beanstalkc::Beanstalkc::new()
        .host("127.0.0.1")
        .port(port)
        .connect()?)
}

fn beanstalkc_put(port: u16, tube: &str, n: usize) -> R<f64> {
    let mut client = beanstalkc(port)?;
    client.use_tube(tube)?;
    let body = vec![b'x'; BODY];
    let started = Instant::now();
    for _ in 0..n {
        client.put(&body, 100, Duration::ZERO, Duration::from_secs(60))?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn beanstalkc_consume(port: u16, tube: &str, n: usize) -> R<f64> {
    let mut client = beanstalkc(port)?;
    client.watch(tube)?;
    client.ignore("default")?;
    let started = Instant::now();
    for _ in 0..n {
        let mut job = client.reserve_with_timeout(Duration::ZERO)?;
        job.delete()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// mq.

/// `n` messages dispatched by `DISPATCHERS` tasks sharing one bus.
async fn mq_dispatch(url: &str, n: usize) -> R<f64> {
    let bus = Bus::connect(url).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..DISPATCHERS {
        let bus = bus.clone();
        let count = n / DISPATCHERS + usize::from(task < n % DISPATCHERS);
        tasks.spawn(async move {
            for seq in 0..count {
                bus.dispatch(Bench::new(seq as u64)).await?;
            }
            Ok::<(), mq::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `n` messages dispatched with `Bus::dispatch_all` by one task, `BATCH` at a time.
async fn mq_dispatch_all(url: &str, n: usize) -> R<f64> {
    let bus = Bus::connect(url).await?;
    let started = Instant::now();
    let mut seq = 0;
    while seq < n {
        let end = (seq + BATCH).min(n);
        bus.dispatch_all((seq..end).map(|s| Bench::new(s as u64)))
            .await?;
        seq = end;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// What the child process of `mq_process` reports.
struct Processed {
    per_second: f64,
    peak_rss_mib: f64,
}

/// Runs `mq_process` in a fresh child process (this binary again), so that its peak RSS is
/// the worker's alone.
fn mq_process(url: &str, n: usize) -> R<Processed> {
    mq_process_in(url, n, "off")
}

/// What this binary prints when run as the child `child` (`process`, `dispatch`) on `url`
/// with `n` messages and the telemetry `mode` of [`telemetry::install_from_env`].
fn child_says(child: &str, url: &str, n: usize, mode: &str) -> R<String> {
    let output = Process::new(std::env::current_exe()?)
        .env("MQ_BENCH_CHILD", child)
        .env("MQ_BENCH_TELEMETRY", mode)
        .env("MQ_SIGNING_KEYS", telemetry::signing_keys(mode))
        .env("MQ_BENCH_URL", url)
        .env("MQ_BENCH_N", n.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("the {child} child failed ({}): {text}", output.status).into());
    }
    Ok(text)
}

/// [`mq_process`] with the telemetry `mode`.
fn mq_process_in(url: &str, n: usize, mode: &str) -> R<Processed> {
    let text = child_says("process", url, n, mode)?;
    let mut fields = text.split_whitespace();
    let mut next = || -> R<f64> {
        Ok(fields
            .next()
            .ok_or_else(|| format!("mq_process child said {text:?}"))?
            .parse()?)
    };
    Ok(Processed {
        per_second: next()?,
        peak_rss_mib: next()?,
    })
}

/// The child of [`mq_process`]: a worker with its defaults and one no-op async slot, until
/// `n` messages are acked. Prints `MESSAGES_PER_SECOND PEAK_RSS_MIB`.
fn process_child() -> R<()> {
    let url = std::env::var("MQ_BENCH_URL")?;
    let n: u64 = std::env::var("MQ_BENCH_N")?.parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let provider = runtime.block_on(async { telemetry::install_from_env() });
    let started = Instant::now();
    let exit = runtime.block_on(
        Worker::builder()
            .url(url)
            .registry(Registry::from_slots([SlotDef::of::<noop>()])?)
            .limit(n)
            .run(),
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    let handled = HANDLED.load(Ordering::Relaxed);
    if exit != Exit::Limit || handled != n {
        return Err(format!("worker stopped with {exit:?} after {handled} of {n}").into());
    }
    println!("{} {}", n as f64 / elapsed, peak_rss_mib()?);
    if let Some(provider) = provider {
        provider.shutdown()?;
    }
    Ok(())
}

/// `mq_dispatch` alone, for profiling. Prints `MESSAGES_PER_SECOND`.
fn dispatch_child() -> R<()> {
    let url = std::env::var("MQ_BENCH_URL")?;
    let n: usize = std::env::var("MQ_BENCH_N")?.parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let provider = runtime.block_on(async { telemetry::install_from_env() });
    println!("{}", runtime.block_on(mq_dispatch(&url, n))?);
    if let Some(provider) = provider {
        provider.shutdown()?;
    }
    Ok(())
}

/// [`dispatch_child`] in a child process with the telemetry `mode`.
fn mq_dispatch_in(url: &str, n: usize, mode: &str) -> R<f64> {
    Ok(child_says("dispatch", url, n, mode)?.trim().parse()?)
}

/// VmHWM of this process: its peak resident set.
fn peak_rss_mib() -> R<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}

/// Empties `queue` (after a figure that only filled it).
async fn flush(url: &str, queue: &str) -> R<()> {
    mq::transport::connect(url).await?.flush(queue).await?;
    Ok(())
}

/// The queue is empty and nothing is reserved: every message was acked.
async fn check_drained(url: &str, queue: &str) -> R<()> {
    let transport = mq::transport::connect(url).await?;
    for stats in transport.stats().await? {
        if stats.queue == queue && (stats.ready + stats.reserved + stats.delayed) > 0 {
            return Err(format!("queue {queue} is not drained: {stats:?}").into());
        }
    }
    Ok(())
}

/// Dispatch → slot start, at a steady `RATE` per second for `seconds`; returns p50 and p99
/// in milliseconds. The worker runs as deployed: its own process ([`latency_child`]) with
/// its defaults, started and waiting before the first dispatch.
async fn mq_latency(url: &str, seconds: u64) -> R<(f64, f64)> {
    use tokio::io::AsyncBufReadExt;
    let count = RATE * seconds;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .env("MQ_BENCH_CHILD", "latency")
        .env("MQ_BENCH_URL", url)
        .env("MQ_BENCH_N", count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout of the latency child")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    if lines.next_line().await?.as_deref() != Some("ready") {
        return Err("the latency child did not start".into());
    }
    // Let the worker reach its first reserve.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bus = Bus::connect(url).await?;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let pad = "x".repeat(BODY - 40);
    for _ in 0..count {
        ticker.tick().await;
        let bus = bus.clone();
        let message = Tick {
            sent_us: now_us(),
            pad: pad.clone(),
        };
        tokio::spawn(async move { bus.dispatch(message).await });
    }
    let report = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| "the latency worker did not finish within 30 s")??
        .ok_or("the latency child said nothing")?;
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("latency child failed ({status})").into());
    }
    let figures: Vec<f64> = report
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [p50, p90, p99, p999, max] = figures[..] else {
        return Err(format!("the latency child said {report:?}").into());
    };
    eprintln!("throughput: latency p90 {p90:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms");
    Ok((p50, p99))
}

/// The worker of [`mq_latency`]: prints `ready` once built, then, after `n` messages,
/// `P50 P90 P99 P99.9 MAX` in milliseconds.
fn latency_child() -> R<()> {
    let url = std::env::var("MQ_BENCH_URL")?;
    let n: u64 = std::env::var("MQ_BENCH_N")?.parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let exit = runtime.block_on(async {
        let worker = Worker::builder()
            .url(url)
            .registry(Registry::from_slots([SlotDef::of::<record_latency>()])?)
            .limit(n)
            .build()
            .await?;
        println!("ready");
        worker.run().await
    })?;
    if exit != Exit::Limit {
        return Err(format!("latency worker stopped with {exit:?}").into());
    }
    let mut latencies = LATENCIES_US
        .lock()
        .map_err(|_| "latency list poisoned")?
        .clone();
    if latencies.is_empty() {
        return Err("no latency recorded".into());
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index] as f64 / 1000.0
    };
    println!(
        "{} {} {} {} {}",
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        at(1.0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn line(name: &str, value: f64, unit: &str) {
    if value >= 100.0 {
        println!("{name} {value:.0} {unit}");
    } else {
        println!("{name} {value:.2} {unit}");
    }
}

/// The middle value (the upper one of an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ratio(name: &str, value: f64) {
    println!("ratio {name} {value:.2}");
}

fn main() {
    // Child modes, also handy to profile one figure alone (see docs/performance.md):
    // MQ_BENCH_CHILD=process|dispatch|latency MQ_BENCH_URL=beanstalk://... MQ_BENCH_N=...
    let child = match std::env::var("MQ_BENCH_CHILD").as_deref() {
        Ok("process") => Some(process_child()),
        Ok("dispatch") => Some(dispatch_child()),
        Ok("latency") => Some(latency_child()),
        Ok("run_worker") => Some(deployed::run_worker_child()),
        Ok("dispatch_one") => Some(deployed::dispatch_one_child()),
        Ok("insert_one") => Some(deployed::insert_one_child()),
        _ => None,
    };
    if let Some(result) = child {
        if let Err(error) = result {
            eprintln!("throughput child: {error}");
            std::process::exit(1);
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs this binary without `--bench`: do nothing then.
    if !args.iter().any(|a| a == "--bench" || a == "--quick") {
        println!("throughput: run with `cargo bench -p mq-core --bench throughput`");
        return;
    }
    if let Err(error) = run(&args) {
        eprintln!("throughput: {error}");
        std::process::exit(1);
    }
}

/// Idle wake-up on SQLite: how long a waiting `reserve` takes to return after a put from a
/// second connection (as from another process), over 20 puts 50 ms apart; median and max.
async fn sqlite_wake(path: &std::path::Path) -> R<(f64, f64)> {
    use mq::transport::sqlite::SqliteTransport;

    let consumer = SqliteTransport::open(path).await?;
    let producer = SqliteTransport::open(path).await?;
    wake(&consumer, &producer).await
}

/// How long a waiting `reserve` of `consumer` takes to return after a put of `producer`,
/// over 20 puts 50 ms apart (each reserved item acked); median and max in milliseconds.
async fn wake(
    consumer: &dyn mq::transport::Transport,
    producer: &dyn mq::transport::Transport,
) -> R<(f64, f64)> {
    use mq::transport::PutOptions;

    let queues = vec!["wake".to_owned()];
    let mut samples = Vec::new();
    for n in 0..20 {
        let reserve = consumer.reserve(&queues, 1, Duration::from_secs(5));
        let put = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let body = bytes::Bytes::from(n.to_string());
            producer.put("wake", body, PutOptions::default()).await?;
            Ok::<_, mq::Error>(Instant::now())
        };
        let (jobs, put_at) = tokio::join!(reserve, put);
        let (jobs, put_at) = (jobs?, put_at?);
        if jobs.is_empty() {
            return Err("wake: the waiting reserve returned nothing within 5 s".into());
        }
        samples.push(put_at.elapsed().as_secs_f64() * 1000.0);
        for job in &jobs {
            consumer.ack(job).await?;
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples[samples.len() - 1]))
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a database of this run's own, and the ceilings on one plain sqlx connection.

/// Where the PostgreSQL figures run, without a database: `$MQ_BENCH_PG`, else this.
const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The reserve batch of the worker's defaults (its concurrency): `pg_raw_consume` takes
/// this many rows per statement.
const PG_CONSUME_BATCH: i64 = 64;
/// The backend's put statement (`transport/postgres/ops.rs`), for the default schema `mq`.
const PG_PUT: &str = "WITH put AS (INSERT INTO \"mq\".mq_messages \
                      (queue, priority, due_at, ttr_ms, body) \
                      VALUES ($1, $2, now() + $3 * interval '1 millisecond', $4, $5) \
                      RETURNING id) \
                      SELECT id, pg_notify($6, $1)::text FROM put";
/// The backend's reserve statement (`mq_reserve` in `transport/postgres/schema.rs`) with
/// `DELETE` in place of its `UPDATE`: the same three picks (`FOR UPDATE SKIP LOCKED` of
/// the rows whose lease ran out, whose delay ended, then the ready ones), reserved and
/// acked at once; run with the function's planner settings ([`PG_PLANNER`]).
const PG_CONSUME: &str = "WITH expired AS (SELECT id FROM \"mq\".mq_messages \
                          WHERE queue = $1 AND state = 'reserved' AND lease_until <= now() \
                          ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED), \
                          due AS (SELECT id FROM \"mq\".mq_messages \
                          WHERE queue = $1 AND state = 'delayed' AND due_at <= now() \
                          ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                          ready AS (SELECT id FROM \"mq\".mq_messages \
                          WHERE queue = $1 AND state = 'ready' AND due_at <= now() \
                          ORDER BY priority, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                          picked AS (SELECT id FROM expired UNION ALL SELECT id FROM due \
                          UNION ALL SELECT id FROM ready LIMIT $2) \
                          DELETE FROM \"mq\".mq_messages AS m USING picked \
                          WHERE m.id = picked.id RETURNING m.id, m.body";
/// The held reservation's `BEGIN` (`transport/postgres/hold/sql.rs`): `mq_reserve`'s planner
/// settings and an asynchronous commit, for the transaction.
const PG_HOLD_BEGIN: &str = "BEGIN; SET LOCAL enable_sort TO off; \
                             SET LOCAL enable_bitmapscan TO off; SET LOCAL enable_seqscan TO off; \
                             SET LOCAL synchronous_commit TO off; \
                             SET LOCAL idle_in_transaction_session_timeout TO '15s'";
/// The held reservation's pick (`transport/postgres/hold/sql.rs`): the three picks of
/// [`PG_CONSUME`], selected and locked, neither updated nor deleted.
const PG_HOLD_PICK: &str =
    "SELECT id, body FROM (SELECT m.id, m.body FROM \"mq\".mq_messages AS m \
                            WHERE m.queue = $1 AND m.state = 'reserved' AND m.lease_until <= now() \
                            ORDER BY m.lease_until LIMIT $2 FOR UPDATE SKIP LOCKED) AS p0 \
                            UNION ALL SELECT id, body FROM (SELECT m.id, m.body \
                            FROM \"mq\".mq_messages AS m \
                            WHERE m.queue = $1 AND m.state = 'delayed' AND m.due_at <= now() \
                            ORDER BY m.due_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS p1 \
                            UNION ALL SELECT id, body FROM (SELECT m.id, m.body \
                            FROM \"mq\".mq_messages AS m \
                            WHERE m.queue = $1 AND m.state = 'ready' AND m.due_at <= now() \
                            ORDER BY m.priority, m.id LIMIT $2 FOR UPDATE SKIP LOCKED) AS p2 \
                            LIMIT $2";
/// The planner settings `mq_reserve` runs with, for the session of `pg_raw_consume`.
const PG_PLANNER: &str = "SET enable_sort TO off; SET enable_bitmapscan TO off; \
                          SET enable_seqscan TO off";

async fn pg_connection(url: &str) -> R<sqlx::PgConnection> {
    use sqlx::ConnectOptions;
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    Ok(options
        .ssl_mode(sqlx::postgres::PgSslMode::Disable)
        .connect()
        .await?)
}

/// `mq_bench_<pid>` on the server of `$MQ_BENCH_PG`, created for this run.
struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> R<PgDatabase> {
        use sqlx::Executor;
        let server = std::env::var("MQ_BENCH_PG").unwrap_or_else(|_| PG_SERVER.into());
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("mq_bench_{}", std::process::id());
        let mut admin = pg_connection(&format!("{server}/postgres"))
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {server} ($MQ_BENCH_PG): {e}"))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        Ok(PgDatabase { server, name })
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    async fn drop_it(self) -> R<()> {
        use sqlx::Executor;
        let mut admin = pg_connection(&format!("{}/postgres", self.server)).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        Ok(())
    }
}

/// The ceiling for producing: the backend's put statement, awaited one after the other on
/// one connection (as `raw_put` is one connection), each its own transaction.
async fn pg_raw_put(url: &str, queue: &str, n: usize) -> R<f64> {
    let mut connection = pg_connection(url).await?;
    let body = [b'x'; BODY];
    let started = Instant::now();
    for _ in 0..n {
        let _: i64 = sqlx::query_scalar(PG_PUT)
            .bind(queue)
            .bind(100_i64)
            .bind(0_i64)
            .bind(60_000_i64)
            .bind(&body[..])
            .bind("mq_mq")
            .fetch_one(&mut connection)
            .await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The ceiling for consuming: [`PG_CONSUME`] in batches of the worker's reserve batch, on
/// one connection, until `n` rows are gone.
async fn pg_raw_consume(url: &str, queue: &str, n: usize) -> R<f64> {
    use sqlx::Executor;
    use sqlx::Row;
    let mut connection = pg_connection(url).await?;
    connection.execute(PG_PLANNER).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let rows = sqlx::query(PG_CONSUME)
            .bind(queue)
            .bind(PG_CONSUME_BATCH.min(i64::try_from(n - done)?))
            .fetch_all(&mut connection)
            .await?;
        if rows.is_empty() {
            return Err(format!("pg_raw_consume: only {done} of {n} rows were ready").into());
        }
        for row in &rows {
            let _: Vec<u8> = row.try_get(1)?;
        }
        done += rows.len();
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The ceiling of the lease itself: the backend's own reserve (`mq_reserve`, rows to
/// `reserved` with a lease) and its ack (`DELETE` of the batch by id and token, with
/// `synchronous_commit` off for its transaction, as `transport/postgres/ops.rs` does), in
/// turn on one connection, batches of [`PG_CONSUME_BATCH`]: what a worker could reach with
/// no decoding, no slots, no tasks and one statement of each kind per batch.
async fn pg_raw_lease(url: &str, queue: &str, n: usize) -> R<f64> {
    use sqlx::Row;
    let mut connection = pg_connection(url).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let rows = sqlx::query("SELECT id, deliveries FROM \"mq\".mq_reserve($1, $2)")
            .bind(queue)
            .bind(PG_CONSUME_BATCH.min(i64::try_from(n - done)?))
            .fetch_all(&mut connection)
            .await?;
        if rows.is_empty() {
            return Err(format!("pg_raw_lease: only {done} of {n} rows were ready").into());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(row.try_get::<i64, _>(0)?);
            tokens.push(row.try_get::<i64, _>(1)?);
        }
        sqlx::query(
            "DELETE FROM \"mq\".mq_messages AS m \
             USING unnest($1::bigint[], $2::bigint[]) AS a(id, deliveries), \
             (SELECT set_config('synchronous_commit', 'off', true)) AS async \
             WHERE m.id = a.id AND m.state = 'reserved' AND m.deliveries = a.deliveries",
        )
        .bind(&ids)
        .bind(&tokens)
        .execute(&mut connection)
        .await?;
        done += rows.len();
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Puts `count` ready rows on `queue` in one statement (not measured), for a ceiling that
/// needs more rows than `pg_raw_put` made.
async fn pg_fill(url: &str, queue: &str, count: usize) -> R<()> {
    let mut connection = pg_connection(url).await?;
    sqlx::query(
        "INSERT INTO \"mq\".mq_messages (queue, priority, state, due_at, ttr_ms, body) \
         SELECT $1, 100, 'ready', now(), 60000, $2 FROM generate_series(1, $3)",
    )
    .bind(queue)
    .bind(&[b'x'; BODY][..])
    .bind(i64::try_from(count)?)
    .execute(&mut connection)
    .await?;
    Ok(())
}

/// The ceiling of the held reservation (`transport/postgres/hold/`) on one connection:
/// [`PG_HOLD_BEGIN`], [`PG_HOLD_PICK`] of 64, then `DELETE` of those ids and `COMMIT` in
/// one round trip, until `n` rows are gone: what a worker on held batches could reach with
/// no decoding, no slots and no tasks.
async fn pg_raw_hold(url: &str, queue: &str, n: usize) -> R<f64> {
    use sqlx::{Executor, Row};
    use std::fmt::Write;
    let mut connection = pg_connection(url).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        connection.execute(PG_HOLD_BEGIN).await?;
        let rows = sqlx::query(PG_HOLD_PICK)
            .bind(queue)
            .bind(PG_CONSUME_BATCH.min(i64::try_from(n - done)?))
            .fetch_all(&mut connection)
            .await?;
        if rows.is_empty() {
            return Err(format!("pg_raw_hold: only {done} of {n} rows were ready").into());
        }
        let mut delete = String::from("DELETE FROM \"mq\".mq_messages WHERE id = ANY('{");
        for (i, row) in rows.iter().enumerate() {
            let _: Vec<u8> = row.try_get(1)?;
            let comma = if i == 0 { "" } else { "," };
            write!(delete, "{comma}{}", row.try_get::<i64, _>(0)?)?;
        }
        delete.push_str("}'::bigint[]); COMMIT");
        connection.execute(delete.as_str()).await?;
        done += rows.len();
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Idle wake-up on PostgreSQL: how long a waiting `reserve` takes to return after a put from
/// a second transport (its own pool, as from another process), over 20 puts 50 ms apart;
/// median and max.
async fn pg_wake(url: &str) -> R<(f64, f64)> {
    let consumer = mq::transport::connect(url).await?;
    let producer = mq::transport::connect(url).await?;
    wake(&*consumer, &*producer).await
}

/// The PostgreSQL figures of one run.
struct PgFigures {
    raw_put: f64,
    raw_consume: f64,
    raw_lease: f64,
    raw_hold: f64,
    dispatch: f64,
    /// `pg_process` with every reservation leased (`?hold=0`), for the held batches' gain.
    process_leased: f64,
    dispatch_all: f64,
    process: f64,
}

/// The PostgreSQL figures on the database `url`: the ceilings and mq in turns, `rounds`
/// times (medians), then `pg_dispatch_all` and the wake-up once.
fn pg_run(runtime: &tokio::runtime::Runtime, url: &str, n: usize, rounds: usize) -> R<PgFigures> {
    // The tables first (the ceilings use them as the backend made them).
    runtime.block_on(mq::transport::connect(url))?;
    let (mut puts, mut consumes, mut leases, mut holds, mut dispatches, mut processes) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut leased = Vec::new();
    let leased_url = format!("{url}?hold=0");
    for round in 1..=rounds {
        puts.push(runtime.block_on(pg_raw_put(url, "raw", n))?);
        consumes.push(runtime.block_on(pg_raw_consume(url, "raw", n / 2))?);
        leases.push(runtime.block_on(pg_raw_lease(url, "raw", n - n / 2))?);
        runtime.block_on(pg_fill(url, "raw", n / 2))?;
        holds.push(runtime.block_on(pg_raw_hold(url, "raw", n / 2))?);
        dispatches.push(runtime.block_on(mq_dispatch(url, n))?);
        processes.push(mq_process(url, n)?.per_second);
        runtime.block_on(check_drained(url, "bench"))?;
        runtime.block_on(mq_dispatch_all(url, n))?;
        leased.push(mq_process(&leased_url, n)?.per_second);
        runtime.block_on(check_drained(url, "bench"))?;
        eprintln!(
            "throughput: postgres round {round}: pg_raw_put {:.0}, pg_raw_consume {:.0}, \
             pg_raw_lease {:.0}, pg_raw_hold {:.0}, pg_dispatch {:.0}, pg_process {:.0}, \
             pg_process_leased {:.0} msg/s",
            puts[round - 1],
            consumes[round - 1],
            leases[round - 1],
            holds[round - 1],
            dispatches[round - 1],
            processes[round - 1],
            leased[round - 1]
        );
    }
    let figures = PgFigures {
        raw_put: median(&mut puts),
        raw_consume: median(&mut consumes),
        raw_lease: median(&mut leases),
        raw_hold: median(&mut holds),
        dispatch: median(&mut dispatches),
        dispatch_all: runtime.block_on(mq_dispatch_all(url, n))?,
        process: median(&mut processes),
        process_leased: median(&mut leased),
    };
    runtime.block_on(flush(url, "bench"))?;
    line("pg_raw_put", figures.raw_put, "msg/s");
    line("pg_raw_consume", figures.raw_consume, "msg/s");
    line("pg_raw_lease", figures.raw_lease, "msg/s");
    line("pg_raw_hold", figures.raw_hold, "msg/s");
    line("pg_dispatch", figures.dispatch, "msg/s");
    line("pg_dispatch_all", figures.dispatch_all, "msg/s");
    line("pg_process", figures.process, "msg/s");
    line("pg_process_leased", figures.process_leased, "msg/s");
    let (wake_p50, wake_max) = runtime.block_on(pg_wake(url))?;
    line("pg_wake_p50_ms", wake_p50, "ms");
    line("pg_wake_max_ms", wake_max, "ms");
    Ok(figures)
}

/// The PostgreSQL section, on a database of this run's own, dropped whatever happened; ends
/// with its ratios.
fn postgres(runtime: &tokio::runtime::Runtime, n: usize, rounds: usize) -> R<()> {
    let database = runtime.block_on(PgDatabase::create())?;
    eprintln!("throughput: postgres database {}", database.url());
    let pg = pg_run(runtime, &database.url(), n, rounds);
    runtime.block_on(database.drop_it())?;
    let pg = pg?;
    ratio("pg_process/pg_raw_consume", pg.process / pg.raw_consume);
    ratio("pg_process/pg_raw_lease", pg.process / pg.raw_lease);
    ratio("pg_process/pg_raw_hold", pg.process / pg.raw_hold);
    ratio(
        "pg_process/pg_process_leased",
        pg.process / pg.process_leased,
    );
    ratio("pg_raw_hold/pg_raw_consume", pg.raw_hold / pg.raw_consume);
    ratio("pg_dispatch/pg_raw_put", pg.dispatch / pg.raw_put);
    ratio("pg_dispatch_all/pg_raw_put", pg.dispatch_all / pg.raw_put);
    Ok(())
}

/// The rounds of a section run in turns: `MQ_BENCH_ROUNDS` (more, for a machine shared with
/// other work), else one with `--quick` and [`ROUNDS`] without.
fn rounds(quick: bool) -> R<usize> {
    Ok(match std::env::var("MQ_BENCH_ROUNDS") {
        Ok(rounds) => rounds.parse()?,
        Err(_) if quick => 1,
        Err(_) => ROUNDS,
    })
}

fn run(args: &[String]) -> R<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let n: usize = match std::env::var("MQ_BENCH_N") {
        Ok(n) => n.parse()?,
        Err(_) if quick => 20_000,
        Err(_) => 100_000,
    };
    let latency_seconds = if quick { 2 } else { 5 };
    // `--telemetry` and `--signing`: the cost of tracing and metrics, or of signed
    // envelopes, alone (beanstalkd only).
    let modes = if args.iter().any(|a| a == "--telemetry") {
        Some(&telemetry::MODES[..])
    } else if args.iter().any(|a| a == "--signing") {
        Some(&telemetry::SIGNING_MODES[..])
    } else {
        None
    };
    if let Some(modes) = modes {
        return telemetry::costs(n, rounds(quick)?, modes);
    }
    // `--deployed`: the shapes users deploy, each beside its ceiling (issue 14).
    if args.iter().any(|a| a == "--deployed") {
        return deployed::figures(n, rounds(quick)?);
    }
    // `--postgres`: that section alone (the others need beanstalkd and NATS).
    if args.iter().any(|a| a == "--postgres") {
        let rounds = if quick { 1 } else { ROUNDS };
        return postgres(&tokio::runtime::Runtime::new()?, n, rounds);
    }
    let server = Server::start()?;
    let port = server.port;
    let url = server.url();
    eprintln!("throughput: beanstalkd on port {port}, N = {n}");

    // The ceilings and mq in turns, ROUNDS times: each figure is the median of its rounds,
    // so that a moment of contention on a shared machine moves one round, not the ratio.
    let runtime = tokio::runtime::Runtime::new()?;
    let rounds = if quick { 1 } else { ROUNDS };
    let mut raw_puts = Vec::new();
    let mut raw_consumes = Vec::new();
    let mut dispatches = Vec::new();
    let mut processes = Vec::new();
    let mut peak_rss_mib = 0.0_f64;
    for round in 1..=rounds {
        raw_puts.push(raw_put(port, "raw", n)?);
        raw_consumes.push(raw_consume(port, "raw", n)?);
        dispatches.push(runtime.block_on(mq_dispatch(&url, n))?);
        let processed = mq_process(&url, n)?;
        runtime.block_on(check_drained(&url, "bench"))?;
        processes.push(processed.per_second);
        peak_rss_mib = peak_rss_mib.max(processed.peak_rss_mib);
        eprintln!(
            "throughput: round {round}: raw_put {:.0}, raw_consume {:.0}, mq_dispatch {:.0}, \
             mq_process {:.0} msg/s",
            raw_puts[round - 1],
            raw_consumes[round - 1],
            dispatches[round - 1],
            processes[round - 1]
        );
    }
    let raw_put = median(&mut raw_puts);
    line("raw_put", raw_put, "msg/s");
    let raw_consume = median(&mut raw_consumes);
    line("raw_consume", raw_consume, "msg/s");

    let bc_put = beanstalkc_put(port, "bc", n)?;
    line("beanstalkc_put", bc_put, "msg/s");
    let bc_consume = beanstalkc_consume(port, "bc", n)?;
    line("beanstalkc_consume", bc_consume, "msg/s");

    let dispatch = median(&mut dispatches);
    line("mq_dispatch", dispatch, "msg/s");
    let dispatch_all = runtime.block_on(mq_dispatch_all(&url, n))?;
    line("mq_dispatch_all", dispatch_all, "msg/s");
    runtime.block_on(flush(&url, "bench"))?;
    runtime.block_on(check_drained(&url, "bench"))?;
    let process = median(&mut processes);
    line("mq_process", process, "msg/s");
    let (p50, p99) = runtime.block_on(mq_latency(&url, latency_seconds))?;
    line("mq_latency_p50_ms", p50, "ms");
    line("mq_latency_p99_ms", p99, "ms");
    line("mq_worker_rss_mib", peak_rss_mib, "MiB");

    // The SQLite default, on a temporary file.
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite_dispatch = runtime.block_on(mq_dispatch(&sqlite, n))?;
    line("sqlite_dispatch", sqlite_dispatch, "msg/s");
    let sqlite_processed = mq_process(&sqlite, n)?;
    let sqlite_dispatch_all = runtime.block_on(mq_dispatch_all(&sqlite, n))?;
    line("sqlite_dispatch_all", sqlite_dispatch_all, "msg/s");
    runtime.block_on(flush(&sqlite, "bench"))?;
    line("sqlite_process", sqlite_processed.per_second, "msg/s");
    let (wake_p50, wake_max) = runtime.block_on(sqlite_wake(&dir.path().join("wake.db")))?;
    line("sqlite_wake_p50_ms", wake_p50, "ms");
    line("sqlite_wake_max_ms", wake_max, "ms");

    // NATS JetStream, one server with file storage.
    let nats = Server::start_nats()?;
    let nats_dispatch = runtime.block_on(mq_dispatch(&nats.url(), n))?;
    line("nats_dispatch", nats_dispatch, "msg/s");
    let nats_processed = mq_process(&nats.url(), n)?;
    line("nats_process", nats_processed.per_second, "msg/s");
    drop(nats);

    postgres(&runtime, n, rounds)?;
    // The batch API first: the run ends with the three ratios the targets are about.
    ratio("mq_dispatch_all/raw_put", dispatch_all / raw_put);
    ratio("mq_dispatch/raw_put", dispatch / raw_put);
    ratio("mq_process/raw_consume", process / raw_consume);
    ratio("mq_process/beanstalkc_consume", process / bc_consume);
    drop(server);
    Ok(())
}
