//! [`RecordingBus`]: a real [`Bus`] that notes what it dispatched, with typed assertions.

use std::fmt::Write as _;
use std::ops::Deref;
use std::sync::Arc;

use super::recorder::{Dispatched, Recorder};
use super::ContextBuilder;
use crate::transport::memory::MemoryTransport;
use crate::{Bus, Message, Transport, Worker, WorkerBuilder};

/// A [`Bus`] on a `memory://` queue of its own that records every message put on it: by
/// the code under test, and by slots of a worker on it ([`RecordingBus::worker`]).
///
/// It dereferences to [`Bus`], so code that takes a `&Bus` takes `&bus`. Clones share the
/// queue and the record; two `RecordingBus::new()` share nothing, so tests run in parallel.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize, Debug)]
/// struct SendOrderConfirmation { order_id: u64 }
///
/// async fn place_order(bus: &mq::Bus, order_id: u64) -> mq::Result<()> {
///     bus.dispatch(SendOrderConfirmation { order_id }).await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let bus = mq::testing::RecordingBus::new();
/// place_order(&bus, 7).await?;
/// bus.assert_dispatched_once::<SendOrderConfirmation>(|m| m.order_id == 7);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RecordingBus {
    bus: Bus,
    recorder: Arc<Recorder>,
}

impl RecordingBus {
    /// A recording bus on a new `memory://` queue, shared with no one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// let other = RecordingBus::new();
    /// bus.dispatch(Ping).await?;
    /// other.assert_nothing_dispatched(); // its own queue, its own record
    /// # Ok(()) }
    /// ```
    pub fn new() -> RecordingBus {
        RecordingBus::on(MemoryTransport::new())
    }

    /// A recording bus on `transport` (e.g. an `sqlite://` file in a temporary directory).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// use mq::transport::sqlite::SqliteTransport;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let file = SqliteTransport::open(dir.path().join("mq.db")).await?;
    /// let bus = RecordingBus::on(std::sync::Arc::new(file));
    /// bus.dispatch(Ping).await?;
    /// assert_eq!(bus.transport().stats().await?[0].ready, 1); // in the file
    /// # Ok(()) }
    /// ```
    pub fn on(transport: Arc<dyn Transport>) -> RecordingBus {
        let recorder = Arc::new(Recorder::new(transport));
        RecordingBus {
            bus: Bus::new(recorder.clone()),
            recorder,
        }
    }

    /// The bus itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// let plain: mq::Bus = bus.bus().clone(); // still records
    /// plain.dispatch(Ping).await?;
    /// assert_eq!(bus.dispatches().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A worker builder on this bus's queue, not stopped by signals: add `.registry(..)`,
    /// `.state(..)`, then [`run_until_idle`](WorkerBuilder::run_until_idle). What its slots
    /// dispatch through their [`Context`](crate::Context) is recorded here too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// #[mq::slot]
    /// async fn confirm(msg: &Ping, ctx: mq::Context) -> mq::Result<()> {
    ///     ctx.dispatch(SendOrderConfirmation { order_id: 7 }).await?;
    ///     Ok(())
    /// }
    ///
    /// bus.dispatch(Ping).await?;
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<confirm>()])?;
    /// bus.worker().registry(registry).queues(["default"]).run_until_idle().await?;
    /// bus.assert_dispatched_once::<SendOrderConfirmation>(|m| m.order_id == 7);
    /// # Ok(()) }
    /// ```
    pub fn worker(&self) -> WorkerBuilder {
        Worker::builder()
            .transport(self.recorder.clone())
            .handle_signals(false)
    }

    /// A [`Context`](crate::Context) for calling a slot that takes one directly: attempt 1,
    /// `M`'s queue and wire name, a fresh id; its `dispatch` records here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// let ctx = bus.context::<SendOrderConfirmation>().build();
    /// assert_eq!((ctx.attempt(), ctx.queue()), (1, "emails"));
    /// ctx.dispatch(Ping).await?;
    /// bus.assert_dispatched_once::<Ping>(|_| true);
    /// # Ok(()) }
    /// ```
    pub fn context<M: Message>(&self) -> ContextBuilder {
        ContextBuilder::new::<M>(self.bus.clone())
    }

    /// Every message put on the queue so far, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch(SendOrderConfirmation { order_id: 7 }).priority(10).await?;
    /// let first = &bus.dispatches()[0];
    /// assert_eq!((first.name.as_str(), first.queue.as_str()), ("SendOrderConfirmation", "emails"));
    /// assert_eq!((first.body.as_str(), first.priority), (r#"{"order_id":7}"#, 10));
    /// # Ok(()) }
    /// ```
    pub fn dispatches(&self) -> Vec<Dispatched> {
        self.recorder.log().clone()
    }

    /// Forgets what was recorded (the queue keeps its messages).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch(Ping).await?;
    /// bus.clear();
    /// bus.assert_nothing_dispatched();
    /// assert_eq!(bus.transport().stats().await?[0].ready, 1);
    /// # Ok(()) }
    /// ```
    pub fn clear(&self) {
        self.recorder.log().clear();
    }

    /// Every `M` dispatched so far, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch(SendOrderConfirmation { order_id: 1 }).await?;
    /// bus.dispatch(Ping).await?;
    /// bus.dispatch(SendOrderConfirmation { order_id: 2 }).await?;
    /// let ids: Vec<u64> = bus.dispatched::<SendOrderConfirmation>().iter().map(|m| m.order_id).collect();
    /// assert_eq!(ids, [1, 2]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When a recorded body of `M`'s wire name does not decode as `M` (its `Serialize` and
    /// `Deserialize` disagree, or another type has the same wire name): a bug the test
    /// should show.
    #[track_caller]
    pub fn dispatched<M: Message>(&self) -> Vec<M> {
        self.dispatches()
            .iter()
            .filter(|dispatched| dispatched.is::<M>())
            .map(|dispatched| dispatched.decode::<M>())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Asserts that at least one `M` for which `matches` is true was dispatched, and returns
    /// the first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch_all((1..=3).map(|order_id| SendOrderConfirmation { order_id })).await?;
    /// let found = bus.assert_dispatched::<SendOrderConfirmation>(|m| m.order_id > 1);
    /// assert_eq!(found.order_id, 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When none was, listing every message that was dispatched.
    #[track_caller]
    pub fn assert_dispatched<M: Message>(&self, matches: impl Fn(&M) -> bool) -> M {
        let mut found = self.matching(&matches);
        if found.is_empty() {
            self.fail(&format!("expected a dispatched `{}` that matches", M::NAME));
        }
        found.remove(0)
    }

    /// Asserts that exactly one `M` for which `matches` is true was dispatched, and returns
    /// it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch(SendOrderConfirmation { order_id: 7 }).await?;
    /// let sent = bus.assert_dispatched_once::<SendOrderConfirmation>(|m| m.order_id == 7);
    /// assert_eq!(sent.order_id, 7);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When none or several were, listing every message that was dispatched.
    #[track_caller]
    pub fn assert_dispatched_once<M: Message>(&self, matches: impl Fn(&M) -> bool) -> M {
        let mut found = self.matching(&matches);
        if found.len() != 1 {
            self.fail(&format!(
                "expected exactly one dispatched `{}` that matches, found {}",
                M::NAME,
                found.len()
            ));
        }
        found.remove(0)
    }

    /// Asserts that no `M` was dispatched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.dispatch(Ping).await?;
    /// bus.assert_not_dispatched::<SendOrderConfirmation>();
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When one was, listing every message that was dispatched.
    #[track_caller]
    pub fn assert_not_dispatched<M: Message>(&self) {
        if self.dispatches().iter().any(Dispatched::is::<M>) {
            self.fail(&format!("expected no dispatched `{}`", M::NAME));
        }
    }

    /// Asserts that nothing was dispatched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)]
    /// # #[message(queue = "emails")]
    /// # struct SendOrderConfirmation { order_id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug)] struct Ping;
    /// use mq::testing::RecordingBus;
    ///
    /// let bus = RecordingBus::new();
    /// bus.assert_nothing_dispatched();
    /// bus.dispatch(Ping).await?;
    /// let check = std::panic::AssertUnwindSafe(|| bus.assert_nothing_dispatched());
    /// let failed = std::panic::catch_unwind(check);
    /// assert!(failed.is_err()); // and the panic lists `1. Ping null`
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When something was, listing it.
    #[track_caller]
    pub fn assert_nothing_dispatched(&self) {
        if !self.dispatches().is_empty() {
            self.fail("expected nothing dispatched");
        }
    }

    #[track_caller]
    fn matching<M: Message>(&self, matches: &impl Fn(&M) -> bool) -> Vec<M> {
        let mut all = self.dispatched::<M>();
        all.retain(|message| matches(message));
        all
    }

    /// Panics with `expected` and the list of what was dispatched.
    #[track_caller]
    fn fail(&self, expected: &str) -> ! {
        let dispatches = self.dispatches();
        let mut text = format!("{expected}; dispatched were");
        if dispatches.is_empty() {
            text.push_str(" none");
        }
        for (n, dispatched) in dispatches.iter().enumerate() {
            let _ = write!(
                text,
                "\n  {}. {} {}",
                n + 1,
                dispatched.name,
                dispatched.body
            );
        }
        panic!("{text}")
    }
}

impl Default for RecordingBus {
    fn default() -> Self {
        RecordingBus::new()
    }
}

impl Deref for RecordingBus {
    type Target = Bus;

    fn deref(&self) -> &Bus {
        &self.bus
    }
}
