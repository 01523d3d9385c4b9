//! [`ContextBuilder`]: a [`Context`] for calling a slot directly in a unit test.

use crate::context::{Context, States};
use crate::{Bus, Message};

/// Builds the [`Context`] a slot is given, for a unit test that calls the slot function
/// itself; made by [`RecordingBus::context`](super::RecordingBus::context).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// let bus = mq::testing::RecordingBus::new();
/// let ctx = bus.context::<Ping>().id("ping-1").attempt(3).build();
/// assert_eq!((ctx.id(), ctx.attempt(), ctx.queue()), ("ping-1", 3, "default"));
/// ```
#[derive(Debug)]
#[must_use = "call .build() for the Context"]
pub struct ContextBuilder {
    id: String,
    attempt: u32,
    queue: String,
    name: String,
    bus: Bus,
}

impl ContextBuilder {
    pub(super) fn new<M: Message>(bus: Bus) -> ContextBuilder {
        ContextBuilder {
            id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            queue: M::OPTIONS.queue.to_owned(),
            name: M::NAME.to_owned(),
            bus,
        }
    }

    /// The message id (default: a fresh one).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx = bus.context::<Welcome>().id("welcome-1").build();
    /// assert_eq!(ctx.id(), "welcome-1");
    /// assert_ne!(bus.context::<Welcome>().build().id(), bus.context::<Welcome>().build().id());
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The attempt, 1 for the first (default 1).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// let bus = mq::testing::RecordingBus::new();
    /// // The slot's last attempt, when it has `retries = 3`.
    /// let ctx = bus.context::<Welcome>().attempt(4).build();
    /// assert_eq!(ctx.attempt(), 4);
    /// ```
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The queue (default: the message type's).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// let bus = mq::testing::RecordingBus::new();
    /// assert_eq!(bus.context::<Welcome>().build().queue(), "emails");
    /// assert_eq!(bus.context::<Welcome>().queue("emails-eu").build().queue(), "emails-eu");
    /// ```
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The context.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx: mq::Context = bus.context::<Welcome>().build();
    /// assert_eq!((ctx.name(), ctx.attempt()), ("Welcome", 1));
    /// ```
    pub fn build(self) -> Context {
        Context::new(
            self.id,
            self.attempt,
            self.queue,
            self.name,
            self.bus,
            States::default(),
        )
    }
}
