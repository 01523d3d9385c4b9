//! `Worker::builder()`: a worker's options, state, slots and transport, given in code.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use super::exit::Exit;
use super::options::Options;
use super::run::{Shared, Worker};
use crate::bus::Bus;
use crate::context::States;
use crate::event::{Event, Hook};
use crate::registry::Registry;
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
    pub(super) transport: Option<Arc<dyn Transport>>,
    pub(super) registry: Option<Registry>,
    states: States,
    pub(crate) hook: Option<Hook>,
    /// What `--version` prints after the program's name (see `program`).
    #[cfg(feature = "cli")]
    pub(super) app_version: Option<String>,
    /// `check` was asked for on the command line (`Some(json)`): `run_and_exit` checks
    /// instead of running, and prints the report as JSON when `json`.
    #[cfg(feature = "cli")]
    pub(super) check_only: Option<bool>,
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
            #[cfg(feature = "cli")]
            check_only: None,
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
    /// than it can express; see [`Capabilities`](crate::transport::Capabilities)); a
    /// message with `#[message(concurrency = ..)]` or `rate_limit`, or a
    /// [`rate_limit`](WorkerBuilder::rate_limit), on a backend that cannot keep permits.
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
        // A queue named twice (`--queues a,a`) is consumed once: a backend that picks queue by
        // queue in one transaction (PostgreSQL's held batch) would otherwise pick its rows twice.
        let mut seen = std::collections::HashSet::new();
        options.queues.retain(|queue| seen.insert(queue.clone()));
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
        super::limits::check_rates(&options, transport.as_ref())?;
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
        let signer = match options.signer.take() {
            Some(signer) => Some(signer),
            None => crate::signing::Signer::from_env()?,
        };
        let verifier = crate::signing::Verifier::new(signer, options.signatures)?;
        let bus = Bus::with_hook(transport.clone(), self.hook.clone())
            .with_shared_signer(verifier.signer().cloned());
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
                verifier,
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
