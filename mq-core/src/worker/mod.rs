//! The worker: reserve → decode → emit to slots → ack, retry or fail; limits; shutdown.

mod capacity;
mod emit;
pub(crate) mod event;
mod held;
mod memory;
mod options;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use event::{Event, EventKind};
pub use options::{DEFAULT_CONCURRENCY, DEFAULT_GRACE};

use crate::bus::Bus;
use crate::context::States;
use crate::registry::Registry;
use crate::retry::Backoff;
use crate::transport::{self, Job, Transport};
use crate::{Error, Result};
use capacity::Capacity;
use emit::Outcome;
use event::Hook;
use held::Held;
use options::{Cli, Options};

/// The most items asked for in one reservation.
const MAX_BATCH: usize = 256;

/// How long cancelled slots get to end after the grace of a stop ran out.
const CANCELLED_END: Duration = Duration::from_millis(200);

/// How long the loop waits for running messages to finish before it reserves fewer than
/// half the concurrency.
const GATHER: Duration = Duration::from_millis(1);

/// Why a worker stopped; [`Exit::code`] is the process exit code `run_worker` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// SIGINT or SIGTERM (or [`Worker::stop`]): stopped gracefully.
    Stopped,
    /// `--limit` messages were handled.
    Limit,
    /// `--time-limit` passed.
    TimeLimit,
    /// Resident memory passed `--memory-limit`.
    MemoryLimit,
    /// `--failure-limit` messages failed.
    FailureLimit,
}

impl Exit {
    /// 0 for a stop or the message and time limits, 3 for memory, 4 for failures.
    pub fn code(self) -> i32 {
        match self {
            Exit::Stopped | Exit::Limit | Exit::TimeLimit => 0,
            Exit::MemoryLimit => 3,
            Exit::FailureLimit => 4,
        }
    }
}

/// Parses the command line and `MQ_*` variables, runs a worker over every linked slot, and
/// exits the process with the code of [`Exit`] when it stops for a limit that is not 0.
///
/// `--help` documents every flag, variable and exit code; `--list` prints the routing table.
/// Logs go to stderr through `tracing` (filter with `RUST_LOG`) unless the application
/// installed its own subscriber.
///
/// # Errors
///
/// A bad URL, an unreachable server, or a registry problem (duplicate wire name, missing
/// state): the worker does not start.
pub async fn run_worker() -> Result<()> {
    let cli = Cli::parse();
    init_logging();
    let registry = Registry::linked()?;
    if cli.list {
        print!("{}", registry.table());
        return Ok(());
    }
    let worker = WorkerBuilder::from_options(cli.into_options())
        .registry(registry)
        .build()
        .await?;
    let exit = worker.run().await?;
    // tokio's runtime waits for its threads when it shuts down, and a slot abandoned by its
    // timeout or the grace may never return: exit without waiting for it.
    if exit.code() != 0 || worker.slots_left_running() > 0 {
        std::process::exit(exit.code());
    }
    Ok(())
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `info`), unless the
/// application installed its own subscriber. `run_worker` calls it; call it before
/// `Worker::builder()...run()` to see the worker's log.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // An application that set its own subscriber keeps it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Configures a [`Worker`] in code, for applications that own their command line.
///
/// ```no_run
/// # struct Mailer;
/// # impl Mailer { fn new() -> Mailer { Mailer } }
/// # #[tokio::main] async fn main() -> mq::Result<()> {
/// let exit = mq::Worker::builder()
///     .url("sqlite://mq.db")
///     .state(Mailer::new())
///     .concurrency(64)
///     .run()
///     .await?;
/// std::process::exit(exit.code());
/// # }
/// ```
#[derive(Debug)]
pub struct WorkerBuilder {
    options: Options,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Registry>,
    states: States,
    hook: Option<Hook>,
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("States")
    }
}

impl WorkerBuilder {
    fn from_options(options: Options) -> WorkerBuilder {
        WorkerBuilder {
            options,
            transport: None,
            registry: None,
            states: States::default(),
            hook: None,
        }
    }

    /// The queue URL; default `MQ_URL`, else `sqlite://mq.db`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.options.url = Some(url.into());
        self
    }

    /// An open transport, instead of a URL.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The slots to run; default every linked slot ([`Registry::linked`]).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Queues to consume, earlier first; default every queue with a slot.
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, queues: I) -> Self {
        self.options.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Messages whose slots run at once (default [`DEFAULT_CONCURRENCY`]); at least 1.
    /// A message whose slots are done gives its place back while its ack is on the way;
    /// at most twice this many are held.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency.max(1);
        self
    }

    /// Stop after handling `n` messages.
    pub fn limit(mut self, n: u64) -> Self {
        self.options.limit = Some(n);
        self
    }

    /// Stop after running this long.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.options.time_limit = Some(limit);
        self
    }

    /// Stop when resident memory exceeds this many bytes.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.options.memory_limit = Some(bytes);
        self
    }

    /// Stop after `n` messages failed (retried or moved to the failure store).
    pub fn failure_limit(mut self, n: u64) -> Self {
        self.options.failure_limit = Some(n);
        self
    }

    /// How long running slots may take to finish after a stop (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// Retries after the first attempt for messages without `#[message(retries = N)]`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// Backoff for messages without `#[message(backoff = ...)]`.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.options.backoff = backoff;
        self
    }

    /// How often, and how long apart, a message with an unknown wire name is retried before
    /// it goes to the failure store (default 10 times, 5 s doubling to 5 min).
    pub fn unknown_retries(mut self, retries: u32, backoff: Backoff) -> Self {
        self.options.unknown_retries = retries;
        self.options.unknown_backoff = backoff;
        self
    }

    /// Longest wait of one reservation call; a stop is noticed within it (default 1 s).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.options.poll = poll;
        self
    }

    /// Whether SIGINT and SIGTERM stop the worker (default true).
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.options.handle_signals = handle;
        self
    }

    /// State for slots that take `mq::State<T>`.
    pub fn state<T: Send + Sync + 'static>(mut self, state: T) -> Self {
        self.states.insert(state);
        self
    }

    /// State already in an `Arc`, shared with the caller (e.g. a test that reads it).
    pub fn state_arc<T: Send + Sync + 'static>(mut self, state: Arc<T>) -> Self {
        self.states.insert_arc(state);
        self
    }

    /// A hook called with every lifecycle [`Event`], e.g. for metrics. Keep it quick: it
    /// runs on the worker's tasks.
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.hook = Some(Hook(Arc::new(hook)));
        self
    }

    /// Opens the transport and checks the registry.
    ///
    /// # Errors
    ///
    /// A bad URL or unreachable server; two message types with one wire name; a slot whose
    /// `State<T>` the worker was not given; no queue to consume.
    pub async fn build(self) -> Result<Worker> {
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::linked()?,
        };
        check_states(&registry, &self.states)?;
        let mut options = self.options;
        if options.queues.is_empty() {
            options.queues = registry.queues();
        }
        if options.queues.is_empty() {
            return Err(Error::Registry(
                "no slot is linked into this worker, so it has no queue to consume; \
                 add #[mq::slot] functions, and name a slots-only crate with `use my_slots as _;`"
                    .into(),
            ));
        }
        let transport = match self.transport {
            Some(transport) => transport,
            None => {
                let url = options.url.clone().unwrap_or_else(transport::url_from_env);
                tracing::info!(url = %transport::redacted(&url), "mq worker connecting");
                transport::connect(&url).await?
            }
        };
        let (stop, _) = watch::channel(false);
        Ok(Worker {
            shared: Arc::new(Shared {
                bus: Bus::with_hook(transport.clone(), self.hook.clone()),
                transport,
                registry,
                states: self.states,
                hook: self.hook,
                options,
                held: Arc::default(),
                slots_alive: Arc::default(),
            }),
            stop: Arc::new(stop),
        })
    }

    /// Builds the worker and runs it until it stops.
    ///
    /// # Errors
    ///
    /// As [`WorkerBuilder::build`].
    pub async fn run(self) -> Result<Exit> {
        self.build().await?.run().await
    }
}

fn check_states(registry: &Registry, states: &States) -> Result<()> {
    for route in registry.routes() {
        for slot in route.slots() {
            for requirement in slot.requirements() {
                if !states.contains(requirement.type_id) {
                    return Err(Error::Registry(format!(
                        "slot `{}` takes `mq::State<{}>`, but the worker was given no such \
                         state; add `.state(value)` of that type to `Worker::builder()`",
                        slot.path(),
                        requirement.type_name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// What every message task of a worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    transport: Arc<dyn Transport>,
    registry: Registry,
    bus: Bus,
    states: States,
    hook: Option<Hook>,
    options: Options,
    /// Reserved items whose handling has not ended: kept alive while their slots run,
    /// handed back when the grace runs out.
    held: Arc<Held>,
    /// Slot runs of this worker not yet ended (see [`Worker::slots_left_running`]).
    slots_alive: Arc<std::sync::atomic::AtomicUsize>,
}

impl Shared {
    fn known_names(&self) -> String {
        let names: Vec<&str> = self.registry.routes().map(|r| r.info().name).collect();
        names.join(", ")
    }
}

/// A running consumer of queues; see [`Worker::builder`].
#[derive(Debug, Clone)]
pub struct Worker {
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
}

/// Counts kept by the reservation loop.
#[derive(Debug, Default)]
struct Tally {
    started: u64,
    finished: u64,
    retried: u64,
    failed: u64,
}

impl Tally {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Finished => self.finished += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

impl Worker {
    /// A builder with the defaults (see `--help` of [`run_worker`]).
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::from_options(Options::default())
    }

    /// The routing table this worker runs.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Asks the worker to stop as on SIGTERM: no more reservations, running slots finish.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Slots of this worker still running, and synchronous slots of the process still on
    /// their threads: after [`run`](Worker::run) returned, those abandoned by their
    /// `timeout` or the grace of a stop. Such code cannot be stopped, and a tokio runtime
    /// waits for it when it shuts down (the end of `#[tokio::main]`): when this is not 0,
    /// exit the process (`std::process::exit`) instead of returning from `main`, as
    /// [`run_worker`] does.
    pub fn slots_left_running(&self) -> usize {
        self.shared
            .slots_alive
            .load(std::sync::atomic::Ordering::Acquire)
            .saturating_add(crate::slot::blocking_slots_running())
    }

    /// Runs until a signal, [`Worker::stop`] or a limit stops it.
    ///
    /// # Errors
    ///
    /// None today: transport errors while running are logged and retried, never fatal.
    pub async fn run(&self) -> Result<Exit> {
        let shared = &self.shared;
        let options = &shared.options;
        tracing::info!(
            backend = %shared.transport.describe(),
            queues = %options.queues.join(","),
            slots = shared.registry.routes().map(|r| r.slots().count()).sum::<usize>(),
            concurrency = options.concurrency,
            "mq worker started"
        );
        if options.handle_signals {
            spawn_signal_handler(self.stop.clone())?;
        }
        let mut stop = self.stop.subscribe();
        let started_at = Instant::now();
        let _keeper = AbortOnDrop(tokio::spawn(held::keep_alive(
            shared.held.clone(),
            shared.transport.clone(),
        )));
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut tally = Tally::default();
        let mut transport_errors = 0u32;
        let mut summary = Summary::new(started_at);
        let mut gathering = None;
        let capacity = Capacity::new(options.concurrency);
        // Messages whose slots are done but whose ack is still on the way do not count
        // against the concurrency; this bounds how many of them there may be.
        let max_tasks = options.concurrency.saturating_mul(2);

        let exit = loop {
            while let Some(done) = tasks.try_join_next() {
                tally.record(done.unwrap_or(Outcome::Retried));
            }
            summary.maybe_log(&tally);
            if let Some(exit) = self.limit_reached(&tally, started_at) {
                break exit;
            }
            if *stop.borrow() {
                break Exit::Stopped;
            }
            let free = capacity.free().min(max_tasks.saturating_sub(tasks.len()));
            let remaining = options
                .limit
                .map_or(u64::MAX, |limit| limit.saturating_sub(tally.started));
            if free == 0 || remaining == 0 {
                let slots_busy = capacity.free() == 0 && remaining > 0;
                tokio::select! {
                    Some(done) = tasks.join_next() => tally.record(done.unwrap_or(Outcome::Retried)),
                    () = capacity.freed(), if slots_busy => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Reserve in batches: while over half the capacity is busy, wait a moment for
            // more messages to finish, so that one round trip reserves many. Never longer
            // than GATHER, so a slow slot does not hold the worker back.
            let low_water =
                (options.concurrency / 2).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            if free < low_water && !tasks.is_empty() {
                let until = *gathering.get_or_insert_with(|| tokio::time::Instant::now() + GATHER);
                if tokio::time::Instant::now() < until {
                    tokio::select! {
                        Some(done) = tasks.join_next() => {
                            tally.record(done.unwrap_or(Outcome::Retried));
                            continue;
                        }
                        () = capacity.freed() => continue,
                        () = tokio::time::sleep_until(until) => {}
                        _ = stop.changed() => continue,
                    }
                }
            }
            gathering = None;
            let want = free
                .min(MAX_BATCH)
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            // A stop must not wait on the network: `reserve` is cancel-safe (Transport).
            let reserved = tokio::select! {
                reserved = shared.transport.reserve(&options.queues, want, options.poll) => reserved,
                _ = stop.changed() => break Exit::Stopped,
            };
            let jobs = match reserved {
                Ok(jobs) => {
                    transport_errors = 0;
                    jobs
                }
                Err(error) => {
                    transport_errors += 1;
                    let wait = Backoff {
                        base: Duration::from_millis(100),
                        max: Duration::from_secs(5),
                    }
                    .delay(transport_errors);
                    tracing::error!(%error, "reserve failed; trying again in {wait:?}");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            if *stop.borrow() {
                release_all(shared, jobs).await;
                break Exit::Stopped;
            }
            for job in jobs {
                tally.started += 1;
                shared.held.insert(job.clone());
                let shared = shared.clone();
                let busy = capacity.take();
                tasks.spawn(async move {
                    let id = job.id;
                    let handled =
                        emit::futures_catch_unwind(emit::handle(shared.clone(), job, busy)).await;
                    let job = shared.held.remove(id);
                    match handled {
                        Ok(outcome) => outcome,
                        // A panic outside the slots (an event hook): hand the message back.
                        Err(_) => {
                            if let Some(job) = job {
                                release_all(&shared, vec![job]).await;
                            }
                            Outcome::Retried
                        }
                    }
                });
            }
        };

        tracing::info!(
            reason = ?exit,
            running = tasks.len(),
            "stopping: no more reservations; waiting up to {:?} for running slots",
            options.grace
        );
        let drained = tokio::time::timeout(options.grace, async {
            while let Some(done) = tasks.join_next().await {
                tally.record(done.unwrap_or(Outcome::Retried));
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            let left = shared.held.drain();
            tracing::warn!(
                count = left.len(),
                "grace period over: cancelled running slots, their messages go back to the queue"
            );
            release_all(shared, left).await;
            // A cancelled slot ends at its next `.await`; one that never yields does not.
            let _ = tokio::time::timeout(CANCELLED_END, tasks.shutdown()).await;
        }
        tracing::info!(
            finished = tally.finished,
            retried = tally.retried,
            failed = tally.failed,
            code = exit.code(),
            "mq worker stopped"
        );
        let stuck = self.slots_left_running();
        if stuck > 0 {
            tracing::warn!(
                count = stuck,
                "slots still running that cannot be stopped (synchronous slots, or async ones \
                 that never yield, abandoned by their timeout or the grace); a tokio runtime \
                 waits for them when it shuts down, so run_worker exits the process without \
                 waiting"
            );
        }
        Ok(exit)
    }

    fn limit_reached(&self, tally: &Tally, started_at: Instant) -> Option<Exit> {
        let options = &self.shared.options;
        if options
            .limit
            .is_some_and(|limit| tally.finished + tally.retried + tally.failed >= limit)
        {
            return Some(Exit::Limit);
        }
        if options
            .time_limit
            .is_some_and(|limit| started_at.elapsed() >= limit)
        {
            return Some(Exit::TimeLimit);
        }
        if options
            .failure_limit
            .is_some_and(|limit| tally.retried + tally.failed >= limit)
        {
            return Some(Exit::FailureLimit);
        }
        if let Some(limit) = options.memory_limit {
            if memory::resident_bytes().is_some_and(|rss| rss > limit) {
                return Some(Exit::MemoryLimit);
            }
        }
        None
    }
}

/// The periodic one-line summary at info level.
struct Summary {
    every: Duration,
    last_at: Instant,
    last_handled: u64,
}

impl Summary {
    const EVERY: Duration = Duration::from_secs(10);

    fn new(now: Instant) -> Summary {
        Summary {
            every: Summary::EVERY,
            last_at: now,
            last_handled: 0,
        }
    }

    fn maybe_log(&mut self, tally: &Tally) {
        let elapsed = self.last_at.elapsed();
        if elapsed < self.every {
            return;
        }
        let handled = tally.finished + tally.retried + tally.failed;
        let rate = (handled - self.last_handled) as f64 / elapsed.as_secs_f64();
        tracing::info!(
            finished = tally.finished,
            retried = tally.retried,
            failed = tally.failed,
            rate_per_s = format_args!("{rate:.1}"),
            "summary"
        );
        self.last_at = Instant::now();
        self.last_handled = handled;
    }
}

/// Hands `jobs` back to their queues, all at once: a stop waits for the network at most
/// one request's deadline, not one per item.
async fn release_all(shared: &Shared, jobs: Vec<Job>) {
    let releases = jobs.iter().map(|job| async move {
        if let Err(error) = shared.transport.release(job).await {
            tracing::warn!(item = job.id, %error, "could not hand back; it returns after its TTR");
        }
    });
    futures_util::future::join_all(releases).await;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// First SIGINT/SIGTERM: graceful stop. Second: exit at once with 130.
fn spawn_signal_handler(stop: Arc<watch::Sender<bool>>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            seen += 1;
            if seen == 1 {
                tracing::info!("{name}: stopping gracefully (send it again to exit at once)");
                stop.send_replace(true);
            } else {
                tracing::warn!(
                    "{name} again: exiting now; running messages come back to their queue \
                     when their reservation ends"
                );
                std::process::exit(130);
            }
        }
    });
    Ok(())
}
