//! The builder's tuning: when a worker stops (limits, grace), how it retries, how often it
//! polls, its signal handling, and where it serves metrics. The same options as the
//! command line's flags ([`guide::worker`](crate::guide::worker)).

use std::time::Duration;

use super::builder::WorkerBuilder;
use crate::retry::Backoff;

impl WorkerBuilder {
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
}
