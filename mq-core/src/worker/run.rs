//! The run loop: reserve in batches up to the free capacity, spawn a task per message,
//! count what ended, stop for a signal or a limit, then drain within the grace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::builder::WorkerBuilder;
use super::capacity::Capacity;
use super::emit::{self, Outcome};
use super::exit::{self, Exit, Tally};
use super::held::{self, Held};
use super::options::Options;
use super::shutdown::{release_all, spawn_signal_handler, AbortOnDrop};
use crate::bus::Bus;
use crate::context::States;
use crate::event::Hook;
use crate::registry::Registry;
use crate::retry::Backoff;
use crate::transport::Transport;
use crate::Result;

/// The most items asked for in one reservation.
const MAX_BATCH: usize = 256;

/// How long cancelled slots get to end after the grace of a stop ran out.
const CANCELLED_END: Duration = Duration::from_millis(200);

/// How long the loop waits for running messages to finish before it reserves fewer than
/// half the concurrency.
const GATHER: Duration = Duration::from_millis(1);

/// The relay a worker may run (without PostgreSQL there is none to run).
#[cfg(feature = "postgres")]
pub(super) type Relay = crate::relay::Relay;
#[cfg(not(feature = "postgres"))]
pub(super) type Relay = std::convert::Infallible;

/// What every message task of a worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) transport: Arc<dyn Transport>,
    /// The transport's `messaging.system`, for the spans.
    pub(super) system: &'static str,
    pub(super) registry: Registry,
    pub(super) bus: Bus,
    /// The relay of the worker's outbox (`--outbox`), run beside the loop.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) relay: Option<Relay>,
    pub(super) states: States,
    pub(super) hook: Option<Hook>,
    pub(super) options: Options,
    /// The signing keys and policy every envelope is checked against.
    pub(super) verifier: crate::signing::Verifier,
    /// Reserved items whose handling has not ended: kept alive while their slots run,
    /// handed back when the grace runs out.
    pub(super) held: Arc<Held>,
    /// The recurring messages it dispatches, run beside the loop.
    #[cfg(feature = "schedules")]
    pub(super) schedules: Vec<crate::schedule::Schedule>,
    /// Slot runs of this worker not yet ended (see [`Worker::slots_left_running`]).
    pub(super) slots_alive: Arc<std::sync::atomic::AtomicUsize>,
    /// What `/healthz` answers, from the reserves' results.
    #[cfg(feature = "prometheus")]
    pub(super) health: Arc<crate::telemetry::health::Health>,
    /// The `--metrics-addr` port, bound at build, served while [`Worker::run`] runs.
    #[cfg(feature = "prometheus")]
    pub(super) endpoint: std::sync::Mutex<Option<crate::telemetry::endpoint::Endpoint>>,
}

impl Shared {
    pub(super) fn known_names(&self) -> String {
        let names: Vec<&str> = self.registry.routes().map(|r| r.info().name).collect();
        names.join(", ")
    }
}

/// A running consumer of queues; see [`Worker::builder`].
///
/// Cheap to clone: clones are one worker, so one task can [`run`](Worker::run) it while
/// another [`stop`](Worker::stop)s it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// # #[mq::slot] fn pong(_: Ping) {}
/// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// use std::time::Duration;
///
/// let worker = mq::Worker::builder().url("memory://").registry(registry).build().await?;
/// let stopper = worker.clone();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_millis(20)).await;
///     stopper.stop();
/// });
/// assert_eq!(worker.run().await?, mq::Exit::Stopped);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) stop: Arc<watch::Sender<bool>>,
}

impl Worker {
    /// A builder with the defaults (see `--help` of [`run_worker`](crate::run_worker)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder().url("memory://").registry(registry).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::from_options(Options::default())
    }

    /// The recurring messages this worker dispatches (`worker --schedules` lists them with
    /// their next tick).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder().url("memory://").registry(registry).build().await?;
    /// assert!(worker.schedules().is_empty());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "schedules")]
    pub fn schedules(&self) -> &[crate::schedule::Schedule] {
        &self.shared.schedules
    }

    /// The routing table this worker runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder().url("memory://").registry(registry).build().await?;
    /// assert!(worker.registry().route("Ping").is_some());
    /// # Ok(()) }
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The transport this worker reserves from.
    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.shared.transport
    }

    /// The queues this worker consumes.
    pub(crate) fn queues(&self) -> &[String] {
        &self.shared.options.queues
    }

    /// Asks the worker to stop as on SIGTERM: no more reservations, running slots finish.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .handle_signals(false)
    ///     .build()
    ///     .await?;
    /// let running = tokio::spawn({
    ///     let worker = worker.clone();
    ///     async move { worker.run().await }
    /// });
    /// worker.stop();
    /// assert_eq!(running.await.unwrap()?, mq::Exit::Stopped);
    /// # Ok(()) }
    /// ```
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Slots of this worker still running, and synchronous slots of the process still on
    /// their threads: after [`run`](Worker::run) returned, those abandoned by their
    /// `timeout` or the grace of a stop. Such code cannot be stopped, and a tokio runtime
    /// waits for it when it shuts down (the end of `#[tokio::main]`): when this is not 0,
    /// exit the process (`std::process::exit`) instead of returning from `main`, as
    /// [`run_worker`](crate::run_worker) does.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> mq::Result<()> {
    /// let worker = mq::Worker::builder().build().await?;
    /// let exit = worker.run().await?;
    /// if worker.slots_left_running() > 0 {
    ///     std::process::exit(exit.code()); // do not wait for them
    /// }
    /// # Ok(()) }
    /// ```
    pub fn slots_left_running(&self) -> usize {
        self.shared
            .slots_alive
            .load(std::sync::atomic::Ordering::Acquire)
            .saturating_add(crate::slot::blocking_slots_running())
    }

    /// Runs until a signal, [`Worker::stop`] or a limit stops it.
    ///
    /// The loop runs in a task of the current runtime (`tokio::spawn`), in the caller's
    /// tracing span and with its subscriber: the returned future waits for it, and dropping
    /// that future aborts the loop, which ends at its next `.await`; running slots are
    /// cancelled at theirs, and their messages come back when their reservations run out
    /// (use [`Worker::stop`] for a graceful stop).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let bus = mq::Bus::connect("memory://worker-run-doc").await?;
    /// bus.dispatch_all([Ping, Ping]).await?;
    /// let worker = mq::Worker::builder()
    ///     .url("memory://worker-run-doc")
    ///     .registry(registry)
    ///     .limit(2)
    ///     .build()
    ///     .await?;
    /// assert_eq!(worker.run().await?, mq::Exit::Limit);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) when the runtime shut down under the loop.
    /// Transport errors while running are logged and retried, never fatal.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; and a panic of the loop itself (not of a slot, which is
    /// caught) is carried on to the caller.
    pub async fn run(&self) -> Result<Exit> {
        // The loop runs as a task of the runtime, not in the caller's future: `main`'s body
        // under `#[tokio::main]` is polled by `block_on` on a thread of its own, and every
        // wake-up of the loop there (a reservation's reply, a message's end) was a wake-up of
        // that thread, a `futex` call on each side (issue 14, docs/performance.md).
        use tracing::instrument::{Instrument as _, WithSubscriber as _};
        let worker = self.clone();
        let looping = async move { worker.run_here().await }
            .in_current_span()
            .with_current_subscriber();
        let mut running = AbortOnDrop(tokio::spawn(looping));
        match (&mut running.0).await {
            Ok(exit) => exit,
            Err(error) => match error.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                // Cancelled: the guard is this future's own, so by a runtime shutting down.
                Err(_) => Err(crate::Error::Closed),
            },
        }
    }

    /// The body of [`Worker::run`], on the runtime's task.
    async fn run_here(&self) -> Result<Exit> {
        let shared = &self.shared;
        let options = &shared.options;
        tracing::info!(
            backend = %shared.transport.describe(),
            queues = %options.queues.join(","),
            slots = shared.registry.routes().map(|r| r.slots().count()).sum::<usize>(),
            concurrency = options.concurrency,
            signatures = %shared.verifier.describe(),
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
        #[cfg(feature = "postgres")]
        let relaying = shared.relay.clone().map(RelayTask::start);
        #[cfg(feature = "schedules")]
        let _scheduler = AbortOnDrop(tokio::spawn(crate::schedule::run_all(
            shared.schedules.clone(),
            shared.bus.clone(),
            self.stop.subscribe(),
        )));
        // mq's metrics described to whatever recorder is installed, at each start.
        #[cfg(feature = "metrics")]
        crate::telemetry::metrics::describe();
        // Queue depths only for a worker that serves its metrics: the sampler's `stats` shares the
        // transport's connection with the settles, and a slot that never yields can hold
        // the runtime thread its task waits on (slot_faults.rs caught a settle waiting
        // behind it); without an endpoint nobody reads the gauges.
        #[cfg(feature = "prometheus")]
        let _depths = options.metrics_addr.map(|_| {
            AbortOnDrop(tokio::spawn(sample_queue_depths(
                shared.transport.clone(),
                options.queues.clone(),
            )))
        });
        #[cfg(feature = "prometheus")]
        let _endpoint = shared
            .endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|endpoint| AbortOnDrop(tokio::spawn(endpoint.serve())));
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut tally = Tally::default();
        let mut transport_errors = 0u32;
        let mut summary = Summary::new(started_at);
        let mut gathering = None;
        let capacity = Capacity::new(options.concurrency);
        // Messages whose slots are done but whose ack is still on the way do not count
        // against the concurrency; this bounds how many of them there may be (their tasks:
        // an ack that `send_ack` returned from early is the backend's to bound, see
        // docs/worker.md).
        let max_tasks = options.concurrency.saturating_mul(2);

        let exit = loop {
            while let Some(done) = tasks.try_join_next() {
                tally.record(done.unwrap_or(Outcome::Retried));
            }
            summary.maybe_log(&tally);
            if let Some(exit) = exit::limit_reached(options, &tally, started_at) {
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
                    #[cfg(feature = "prometheus")]
                    shared.health.reserved();
                    jobs
                }
                Err(error) => {
                    transport_errors += 1;
                    #[cfg(feature = "prometheus")]
                    shared.health.reserve_failed(&error);
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
                // The message's future is boxed: a task cell is copied whole when it is
                // made, when it ends and when its output is read, and an unboxed one was
                // 16 KB (docs/performance.md, "Speed as deployed").
                tasks.spawn(async move {
                    let id = job.id;
                    let handled = emit::futures_catch_unwind(Box::pin(emit::handle(
                        shared.clone(),
                        job,
                        busy,
                    )))
                    .await;
                    let job = shared.held.remove(id);
                    match handled {
                        Ok(outcome) => outcome,
                        // A panic outside the slots (an event hook): hand the message back.
                        Err(_) => {
                            if let Some(job) = job {
                                Box::pin(release_all(&shared, vec![job])).await;
                            }
                            Outcome::Retried
                        }
                    }
                });
            }
        };

        #[cfg(feature = "postgres")]
        if let Some(relaying) = relaying {
            relaying.stop().await;
        }
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
            shared.transport.acks_answered().await;
        })
        .await;
        if drained.is_err() && tasks.is_empty() {
            tracing::warn!(
                "grace period over with acks the backend has not answered: their messages \
                 come back when their reservations run out (at-least-once)"
            );
        } else if drained.is_err() {
            tasks.abort_all();
            let left = shared.held.drain();
            tracing::warn!(
                count = left.len(),
                "grace period over: cancelled running slots, their messages go back to the queue"
            );
            release_all(shared, left).await;
            // A cancelled slot ends at its next `.await`; one that never yields does not.
            let _ = tokio::time::timeout(CANCELLED_END, tasks.shutdown()).await;
            let _ = tokio::time::timeout(CANCELLED_END, shared.transport.acks_answered()).await;
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
}

/// How often the queue-depth gauges are sampled from the backend's counts.
#[cfg(feature = "prometheus")]
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Sets the `mq_queue_depth` gauges of `queues` every [`DEPTH_EVERY`], until aborted. A
/// failed count is skipped (the reservation loop reports the backend's trouble).
#[cfg(feature = "prometheus")]
async fn sample_queue_depths(transport: Arc<dyn Transport>, queues: Vec<String>) {
    let mut every = tokio::time::interval(DEPTH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Ok(mut stats) = transport.stats().await {
            stats.retain(|stats| queues.contains(&stats.queue));
            crate::telemetry::metrics::queue_depths(&stats);
        }
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

/// The worker's outbox relay, in a task of its own beside the loop.
#[cfg(feature = "postgres")]
struct RelayTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: AbortOnDrop<()>,
}

#[cfg(feature = "postgres")]
impl RelayTask {
    /// How long a stopping worker waits for its relay to finish the batch in hand.
    const FINISH: Duration = Duration::from_secs(5);

    fn start(relay: Relay) -> RelayTask {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            tracing::info!("mq worker relaying its outbox");
            let until = async {
                let _ = stopped.await;
            };
            if let Ok(stats) = relay.run(until).await {
                tracing::info!(relayed = stats.relayed, "outbox relay stopped");
            }
        });
        RelayTask {
            stop,
            task: AbortOnDrop(task),
        }
    }

    /// Asks the relay to stop between batches and waits for it (a batch dropped in its
    /// middle would wait for its lease, and could be relayed twice).
    async fn stop(mut self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Self::FINISH, &mut self.task.0).await;
    }
}
