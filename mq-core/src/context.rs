//! What a slot can learn about the message it handles, and the worker's shared state.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::bus::{Bus, Dispatch};
use crate::message::Message;
use crate::slot::{Requirement, SlotError, SlotParam};

/// The states given to `Worker::builder().state(..)`, by type.
#[derive(Clone, Default)]
pub(crate) struct States(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl States {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(Arc::new(value));
    }

    pub(crate) fn insert_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        Arc::make_mut(&mut self.0).insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn contains(&self, type_id: TypeId) -> bool {
        self.0.contains_key(&type_id)
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0.get(&TypeId::of::<T>())?.clone().downcast().ok()
    }
}

/// The message being handled: id, attempt, queue, wire name, and a bus for follow-ups.
///
/// A slot gets it by naming it as a parameter:
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct OrderPlaced { id: u64 }
/// # #[derive(mq::Message, Serialize, Deserialize)] struct ShipOrder { id: u64 }
/// #[mq::slot]
/// async fn plan_shipping(msg: &OrderPlaced, ctx: mq::Context) -> Result<(), mq::Error> {
///     tracing::info!(id = ctx.id(), attempt = ctx.attempt(), "planning");
///     ctx.dispatch(ShipOrder { id: msg.id }).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    id: String,
    attempt: u32,
    queue: String,
    name: String,
    bus: Bus,
    states: States,
}

impl Context {
    pub(crate) fn new(
        id: String,
        attempt: u32,
        queue: String,
        name: String,
        bus: Bus,
        states: States,
    ) -> Context {
        Context {
            inner: Arc::new(ContextInner {
                id,
                attempt,
                queue,
                name,
                bus,
                states,
            }),
        }
    }

    /// The message id, the same on every attempt.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx = bus.context::<OrderPlaced>().id("order-7").build();
    /// assert_eq!(ctx.id(), "order-7");
    /// ```
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// 1 on the first attempt.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// let bus = mq::testing::RecordingBus::new();
    /// assert_eq!(bus.context::<OrderPlaced>().build().attempt(), 1);
    /// assert_eq!(bus.context::<OrderPlaced>().attempt(3).build().attempt(), 3);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The queue the message was reserved from.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// let bus = mq::testing::RecordingBus::new();
    /// assert_eq!(bus.context::<OrderPlaced>().build().queue(), "orders");
    /// ```
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// The message's wire name.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// let bus = mq::testing::RecordingBus::new();
    /// assert_eq!(bus.context::<OrderPlaced>().build().name(), "OrderPlaced");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The worker's bus, on the worker's transport.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Reindex { shard: u32 }
    /// // A slot that passes the bus to code that takes a `&mq::Bus`.
    /// async fn reindex_all(bus: &mq::Bus) -> mq::Result<()> {
    ///     bus.dispatch_all((0..4).map(|shard| Reindex { shard })).await?;
    ///     Ok(())
    /// }
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx = bus.context::<OrderPlaced>().build();
    /// reindex_all(ctx.bus()).await?;
    /// assert_eq!(bus.dispatched::<Reindex>().len(), 4);
    /// # Ok(()) }
    /// ```
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// Dispatches a follow-up message on the worker's transport.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct ShipOrder { id: u64 }
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx = bus.context::<OrderPlaced>().build();
    /// ctx.dispatch(ShipOrder { id: 7 }).await?;
    /// bus.assert_dispatched_once::<ShipOrder>(|m| m.id == 7);
    /// # Ok(()) }
    /// ```
    pub fn dispatch<M: Message>(&self, message: M) -> Dispatch<'_, M> {
        self.inner.bus.dispatch(message)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.inner.id)
            .field("attempt", &self.inner.attempt)
            .field("queue", &self.inner.queue)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl SlotParam for Context {
    fn from_context(context: &Context) -> Result<Self, SlotError> {
        Ok(context.clone())
    }
}

/// Application state given to the worker with `Worker::builder().state(value)`, shared by
/// every slot that names `State<T>` as a parameter (like axum's `State`).
///
/// A slot needing a state the worker was not given stops the worker at start-up.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Welcome { to: String }
/// struct Mailer { from: String }
///
/// #[mq::slot]
/// async fn welcome(msg: Welcome, mailer: mq::State<Mailer>) {
///     println!("{} -> {}", mailer.from, msg.to);
/// }
/// ```
pub struct State<T>(pub Arc<T>);

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

impl<T: Send + Sync + 'static> SlotParam for State<T> {
    fn from_context(context: &Context) -> Result<Self, SlotError> {
        context.inner.states.get::<T>().map(State).ok_or_else(|| {
            SlotError::permanent(format!(
                "the worker has no state of type `{}`",
                std::any::type_name::<T>()
            ))
        })
    }

    fn requirement() -> Option<Requirement> {
        Some(Requirement {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        })
    }
}
