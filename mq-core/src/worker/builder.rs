//! `Worker::builder()`: a worker's options, state, slots and transport, given in code.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::exit::Exit;
use super::options::Options;
use super::run::{Shared, Worker};
use crate::bus::Bus;
use crate::context::States;
use crate::event::{Event, Hook};
use crate::registry::Registry;
use crate::retry::Backoff;
use crate::transport::{self, Transport};
use crate::{Error, Result};

/// Configures a [`Worker`] in code: for applications that own their command line, and, with
/// [`command_line`](WorkerBuilder::command_line), for worker binaries whose slots need state.
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
    pub(crate) options: Options,
    transport: Option<Arc<dyn Transport>>,
    pub(super) registry: Option<Registry>,
    states: States,
    pub(crate) hook: Option<Hook>,
    /// What `--version` prints after the program's name (see `program`).
    #[cfg(feature = "cli")]
    pub(super) app_version: Option<String>,
    /// The recurring messages this worker dispatches.
    #[cfg(feature = "schedules")]
    pub(super) schedules: Vec<crate::schedule::Schedule>,
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("States")
    }
}

impl WorkerBuilder {
    pub(super) fn from_options(options: Options) -> WorkerBuilder {
        WorkerBuilder {
            options,
            transport: None,
            registry: None,
            states: States::default(),
            hook: None,
            #[cfg(feature = "schedules")]
            schedules: Vec::new(),
            #[cfg(feature = "cli")]
            app_version: None,
        }
    }

    /// The queue URL; default `MQ_URL`, else `sqlite://mq.db`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder()
    ///     .url("memory://url-doc")
    ///     .registry(registry)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.options.url = Some(url.into());
        self
    }

    /// Also relay the messages committed to this `postgres://` outbox onto the worker's
    /// transport (as `mq relay` does; any number of workers may). Default: none, unless
    /// [`command_line`](WorkerBuilder::command_line) reads `MQ_OUTBOX` or `--outbox`.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// let exit = mq::Worker::builder()
    ///     .url("nats://127.0.0.1:4222")
    ///     .outbox("postgres://app@127.0.0.1/shop?schema=outbox")
    ///     .run()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn outbox(mut self, url: impl Into<String>) -> Self {
        self.options.outbox = Some(url.into());
        self
    }

    /// An open transport, instead of a URL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// use mq::transport::memory::MemoryTransport;
    ///
    /// let worker = mq::Worker::builder()
    ///     .transport(MemoryTransport::new())
    ///     .registry(registry)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The slots to run; default every linked slot ([`Registry::linked`]).
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
    ///     .registry(registry) // only `pong`, whatever else is linked
    ///     .build()
    ///     .await?;
    /// assert_eq!(worker.registry().routes().count(), 1);
    /// # Ok(()) }
    /// ```
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Queues to consume, earlier first; default every queue with a slot.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[derive(mq::Message, Serialize, Deserialize)] #[message(queue = "emails")] struct Welcome;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # #[mq::slot] fn welcome(_: Welcome) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>(), mq::SlotDef::of::<welcome>()])?;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Welcome).await?;
    /// bus.dispatch(Ping).await?;
    /// let report = bus.worker().registry(registry).queues(["emails"]).run_until_idle().await?;
    /// assert_eq!(report.messages().len(), 1); // the Ping on `default` waits
    /// assert_eq!(report.messages()[0].name, "Welcome");
    /// # Ok(()) }
    /// ```
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, queues: I) -> Self {
        self.options.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Messages whose slots run at once (default 64); at least 1.
    /// A message whose slots are done gives its place back while its ack is on the way;
    /// at most twice this many are held.
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
    ///     .concurrency(16) // slots of 16 messages at most run at once
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.options.concurrency = concurrency.max(1);
        self
    }

    /// Stop after handling `n` messages.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch_all([Ping, Ping, Ping]).await?;
    /// let report = bus.worker().registry(registry).limit(1).run_until_idle().await?;
    /// assert_eq!(report.exit(), mq::Exit::Limit);
    /// assert_eq!(report.messages().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn limit(mut self, n: u64) -> Self {
        self.options.limit = Some(n);
        self
    }

    /// Stop after running this long.
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
    /// let exit = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .time_limit(Duration::from_millis(50))
    ///     .poll_interval(Duration::from_millis(10))
    ///     .run()
    ///     .await?;
    /// assert_eq!(exit, mq::Exit::TimeLimit);
    /// # Ok(()) }
    /// ```
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.options.time_limit = Some(limit);
        self
    }

    /// Stop when resident memory exceeds this many bytes.
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
    ///     .memory_limit(512 << 20) // then Exit::MemoryLimit, exit code 3
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.options.memory_limit = Some(bytes);
        self
    }

    /// Stop after `n` messages failed (retried or moved to the failure store).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Charge { cents: i64 }
    /// #[mq::slot]
    /// fn charge(_: Charge) -> Result<(), String> {
    ///     Err("card declined".into())
    /// }
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Charge { cents: 100 }).await?;
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<charge>()])?;
    /// let report = bus.worker().registry(registry).failure_limit(1).run_until_idle().await?;
    /// assert_eq!(report.exit(), mq::Exit::FailureLimit);
    /// # Ok(()) }
    /// ```
    pub fn failure_limit(mut self, n: u64) -> Self {
        self.options.failure_limit = Some(n);
        self
    }

    /// How long running slots may take to finish after a stop (default 30 s).
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
    /// let worker = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .grace(Duration::from_secs(5)) // then slots still running are abandoned
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// Retries after the first attempt for messages without `#[message(retries = N)]`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Charge { cents: i64 }
    /// #[mq::slot]
    /// fn charge(_: Charge) -> Result<(), String> {
    ///     Err("card declined".into())
    /// }
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Charge { cents: 100 }).await?;
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<charge>()])?;
    /// let report = bus.worker().registry(registry).retries(2).run_until_idle().await?;
    /// let handled = &report.messages()[0];
    /// assert_eq!((handled.outcome, handled.attempts), (mq::testing::Outcome::Failed, 3));
    /// # Ok(()) }
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = retries;
        self
    }

    /// Backoff for messages without `#[message(backoff = ...)]`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Charge { cents: i64 }
    /// #[mq::slot]
    /// fn charge(_: Charge) -> Result<(), String> {
    ///     Err("card declined".into())
    /// }
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Charge { cents: 100 }).await?;
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<charge>()])?;
    /// use std::time::Duration;
    ///
    /// let second = Duration::from_secs(1);
    /// let report = bus
    ///     .worker()
    ///     .registry(registry)
    ///     .retries(1)
    ///     .backoff(mq::Backoff { base: second, max: second })
    ///     .run_until_idle() // retries at once, and reports the wait a worker would make
    ///     .await?;
    /// let waited = report.messages()[0].backoffs[0];
    /// assert!(waited >= second / 2 && waited <= second);
    /// # Ok(()) }
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.options.backoff = backoff;
        self
    }

    /// How often, and how long apart, a message with an unknown wire name is retried before
    /// it goes to the failure store (default 10 times, 5 s doubling to 5 min).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Orphan;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Orphan).await?; // no slot of this worker knows its wire name
    /// let report = bus
    ///     .worker()
    ///     .registry(registry)
    ///     .unknown_retries(0, mq::Backoff::DEFAULT)
    ///     .run_until_idle()
    ///     .await?;
    /// assert_eq!(report.messages()[0].outcome, mq::testing::Outcome::Failed);
    /// # Ok(()) }
    /// ```
    pub fn unknown_retries(mut self, retries: u32, backoff: Backoff) -> Self {
        self.options.unknown_retries = retries;
        self.options.unknown_backoff = backoff;
        self
    }

    /// Longest wait of one reservation call; a stop is noticed within it (default 1 s).
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
    /// let worker = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .poll_interval(Duration::from_millis(200))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.options.poll = poll;
        self
    }

    /// Serves Prometheus's `/metrics` and a `/healthz` for orchestrators on `addr` (e.g.
    /// `127.0.0.1:9464`) while the worker runs; off by default. Installs the Prometheus
    /// recorder of the `metrics` facade for the process. See
    /// [`guide::observability`](crate::guide::observability).
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
    ///     .metrics_addr("127.0.0.1:9464".parse().expect("an address"))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn metrics_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.options.metrics_addr = Some(addr);
        self
    }

    /// How long reserves may fail before `/healthz` answers 503 (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = mq::Worker::builder()
    ///     .metrics_addr("127.0.0.1:0".parse().unwrap())
    ///     .health_timeout(Duration::from_secs(60));
    /// # let _ = builder;
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.options.health_timeout = timeout;
        self
    }

    /// Whether SIGINT and SIGTERM stop the worker (default true).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// // An application that stops the worker itself, with Worker::stop.
    /// let worker = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .handle_signals(false)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.options.handle_signals = handle;
        self
    }

    /// State for slots that take `mq::State<T>`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Welcome { to: String }
    /// struct Mailer { from: String }
    ///
    /// #[mq::slot]
    /// async fn welcome(msg: Welcome, mailer: mq::State<Mailer>) {
    ///     println!("{} -> {}", mailer.from, msg.to);
    /// }
    ///
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<welcome>()])?;
    /// let without = mq::Worker::builder().url("memory://").registry(registry.clone());
    /// assert!(without.build().await.is_err()); // the slot needs a Mailer
    /// let with = mq::Worker::builder().url("memory://").registry(registry);
    /// let worker = with.state(Mailer { from: "shop@example.com".into() }).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, state: T) -> Self {
        self.states.insert(state);
        self
    }

    /// State already in an `Arc`, shared with the caller (e.g. a test that reads it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[mq::slot]
    /// fn pong(_: Ping, pongs: mq::State<AtomicU32>) {
    ///     pongs.fetch_add(1, Ordering::Relaxed);
    /// }
    ///
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch_all([Ping, Ping]).await?;
    /// let pongs = Arc::new(AtomicU32::new(0));
    /// bus.worker().registry(registry).state_arc(pongs.clone()).run_until_idle().await?;
    /// assert_eq!(pongs.load(Ordering::Relaxed), 2);
    /// # Ok(()) }
    /// ```
    pub fn state_arc<T: Send + Sync + 'static>(mut self, state: Arc<T>) -> Self {
        self.states.insert_arc(state);
        self
    }

    /// A hook called with every lifecycle [`Event`], e.g. for metrics. Keep it quick: it
    /// runs on the worker's tasks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let finished = Arc::new(AtomicU64::new(0));
    /// let counter = finished.clone();
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch_all([Ping, Ping, Ping]).await?;
    /// bus.worker()
    ///     .registry(registry)
    ///     .on_event(move |event| {
    ///         if event.kind == mq::EventKind::Finished {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .run_until_idle()
    ///     .await?;
    /// assert_eq!(finished.load(Ordering::Relaxed), 3);
    /// # Ok(()) }
    /// ```
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.hook = Some(Hook(Arc::new(hook)));
        self
    }

    /// Opens the transport and checks the registry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// let worker = mq::Worker::builder().url("memory://").registry(registry).build().await?;
    /// assert_eq!(worker.registry().queues(), ["default"]);
    ///
    /// let bad = mq::Worker::builder().url("beanstalk://").build().await;
    /// assert!(matches!(bad, Err(mq::Error::InvalidUrl { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A bad URL or unreachable server; two message types with one wire name; a slot whose
    /// `State<T>` the worker was not given; no queue to consume; a message whose options the
    /// backend cannot hold (a priority on a backend without priorities, a delay or TTR longer
    /// than it can express; see [`Capabilities`](crate::transport::Capabilities)).
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
        for queue in &options.queues {
            transport::check_queue_name(queue)?;
        }
        if options.queues.is_empty() {
            return Err(Error::Registry(
                "no slot is linked into this worker, so it has no queue to consume; \
                 add #[mq::slot] functions, and name a slots-only crate with `use my_slots as _;`"
                    .into(),
            ));
        }
        super::memory::check_limit(options.memory_limit, super::memory::resident_bytes())?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => {
                let url = options.url.clone().unwrap_or_else(transport::url_from_env);
                tracing::info!(url = %transport::redacted(&url), "mq worker connecting");
                transport::connect(&url).await?
            }
        };
        transport
            .capabilities()
            .check_messages(registry.routes().map(|route| route.info()))
            .map_err(|error| {
                Error::Config(format!(
                    "{} cannot hold what a message of this worker asks: {error}",
                    transport.describe()
                ))
            })?;
        #[cfg(feature = "schedules")]
        let mut schedules = self.schedules;
        #[cfg(feature = "schedules")]
        schedules.extend(crate::schedule::linked(&registry)?);
        #[cfg(not(feature = "schedules"))]
        if let Some((info, _)) = crate::registry::scheduled().find(|(info, _)| {
            registry
                .routes()
                .any(|route| route.info().name == info.name)
        }) {
            return Err(Error::Config(format!(
                "message `{}` has `#[message(schedule = ...)]`: enable mq-core's `schedules` \
                 feature to run it",
                info.name
            )));
        }
        #[cfg(feature = "schedules")]
        for schedule in &schedules {
            let what = format!(
                "schedule `{}` (each tick is a unique message)",
                schedule.name()
            );
            transport.capabilities().require(
                transport::Feature::Unique,
                &what,
                &transport.describe(),
            )?;
        }
        let bus = Bus::with_hook(transport.clone(), self.hook.clone());
        let (bus, relay) = match &options.outbox {
            Some(url) => outbox(url, bus, &transport).await?,
            None => (bus, None),
        };
        #[cfg(feature = "prometheus")]
        let health = Arc::new(crate::telemetry::health::Health::new(
            options.health_timeout,
        ));
        #[cfg(feature = "prometheus")]
        let endpoint = match options.metrics_addr {
            Some(addr) => {
                let endpoint =
                    crate::telemetry::endpoint::Endpoint::bind(addr, health.clone()).await?;
                tracing::info!(addr = ?endpoint.local_addr(), "serving /metrics and /healthz");
                Some(endpoint)
            }
            None => None,
        };
        let (stop, _) = watch::channel(false);
        Ok(Worker {
            shared: Arc::new(Shared {
                bus,
                relay,
                system: crate::telemetry::messaging_system(&transport.describe()),
                transport,
                registry,
                states: self.states,
                hook: self.hook,
                options,
                held: Arc::default(),
                slots_alive: Arc::default(),
                #[cfg(feature = "schedules")]
                schedules,
                #[cfg(feature = "prometheus")]
                health,
                #[cfg(feature = "prometheus")]
                endpoint: std::sync::Mutex::new(endpoint),
            }),
            stop: Arc::new(stop),
        })
    }

    /// Adds a recurring message: this worker dispatches each of its ticks, as every other
    /// worker given the same schedule does, and the backend keeps one message per tick
    /// (see [`schedule`](crate::schedule)). Needs a backend that keeps unique keys; on
    /// another, [`build`](WorkerBuilder::build) refuses.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
    /// # #[mq::slot] fn poll(_: Poll) {}
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<poll>()])?;
    /// use mq::schedule::Schedule;
    /// use std::time::Duration;
    ///
    /// let every_minute = Schedule::every("poll", Duration::from_secs(60), |_| Poll)?;
    /// let worker = mq::Worker::builder()
    ///     .url("memory://builder-schedule-doc")
    ///     .registry(registry)
    ///     .schedule(every_minute)
    ///     .build()
    ///     .await?;
    /// assert_eq!(worker.schedules()[0].name(), "poll");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "schedules")]
    pub fn schedule(mut self, schedule: crate::schedule::Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Builds the worker and runs it until it stops.
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
    /// let exit = mq::Worker::builder()
    ///     .url("memory://")
    ///     .registry(registry)
    ///     .time_limit(Duration::from_millis(20))
    ///     .poll_interval(Duration::from_millis(10))
    ///     .run()
    ///     .await?;
    /// assert_eq!((exit, exit.code()), (mq::Exit::TimeLimit, 0));
    /// # Ok(()) }
    /// ```
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

/// The worker's outbox: the bus of its slots writes `within` there, and the relay moves it
/// to the worker's transport.
#[cfg(feature = "postgres")]
async fn outbox(
    url: &str,
    bus: Bus,
    transport: &Arc<dyn Transport>,
) -> Result<(Bus, Option<super::run::Relay>)> {
    tracing::info!(url = %transport::redacted(url), "mq worker opening its outbox");
    let outbox = transport::connect(url).await?;
    let relay = crate::relay::Relay::new(outbox.clone(), transport.clone())?;
    Ok((bus.with_outbox(outbox)?, Some(relay)))
}

#[cfg(not(feature = "postgres"))]
async fn outbox(
    url: &str,
    _bus: Bus,
    _transport: &Arc<dyn Transport>,
) -> Result<(Bus, Option<super::run::Relay>)> {
    Err(Error::Config(format!(
        "an outbox ({}) is a postgres:// schema, and this build has no PostgreSQL: enable \
         the cargo feature `postgres` of mq-core",
        transport::redacted(url)
    )))
}
