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
    pub fn new() -> RecordingBus {
        RecordingBus::on(MemoryTransport::new())
    }

    /// A recording bus on `transport` (e.g. an `sqlite://` file in a temporary directory).
    pub fn on(transport: Arc<dyn Transport>) -> RecordingBus {
        let recorder = Arc::new(Recorder::new(transport));
        RecordingBus {
            bus: Bus::new(recorder.clone()),
            recorder,
        }
    }

    /// The bus itself.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A worker builder on this bus's queue, not stopped by signals: add `.registry(..)`,
    /// `.state(..)`, then [`run_until_idle`](WorkerBuilder::run_until_idle). What its slots
    /// dispatch through their [`Context`](crate::Context) is recorded here too.
    pub fn worker(&self) -> WorkerBuilder {
        Worker::builder()
            .transport(self.recorder.clone())
            .handle_signals(false)
    }

    /// A [`Context`](crate::Context) for calling a slot that takes one directly: attempt 1,
    /// `M`'s queue and wire name, a fresh id; its `dispatch` records here.
    pub fn context<M: Message>(&self) -> ContextBuilder {
        ContextBuilder::new::<M>(self.bus.clone())
    }

    /// Every message put on the queue so far, oldest first.
    pub fn dispatches(&self) -> Vec<Dispatched> {
        self.recorder.log().clone()
    }

    /// Forgets what was recorded (the queue keeps its messages).
    pub fn clear(&self) {
        self.recorder.log().clear();
    }

    /// Every `M` dispatched so far, oldest first.
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
