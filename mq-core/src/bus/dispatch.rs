//! A dispatch about to happen: [`Dispatch`] (one message) and [`DispatchAll`] (a batch),
//! their options, and the awaiting that puts them on their queue.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use tracing::Instrument as _;

use super::options::{KeyLimit, UniqueKey};
use super::{bus_or_global, Bus, MessageId};
use crate::message::Message;
use crate::Result;

/// A message about to be dispatched; `.await` it to put it on its queue and get its id.
///
/// Made by [`Bus::dispatch`], [`Context::dispatch`](crate::Context::dispatch) and
/// [`dispatch`](crate::dispatch); nothing is sent until it is awaited.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// let bus = mq::testing::RecordingBus::new();
/// let dispatch: mq::Dispatch<'_, Ping> = bus.dispatch(Ping).priority(0);
/// bus.assert_nothing_dispatched(); // not yet awaited
/// dispatch.await?;
/// assert_eq!(bus.dispatches().len(), 1);
/// # Ok(()) }
/// ```
#[must_use = "a dispatch does nothing until it is awaited"]
pub struct Dispatch<'a, M> {
    pub(super) bus: Option<&'a Bus>,
    pub(super) message: M,
    pub(super) delay: Option<Duration>,
    pub(super) priority: Option<u32>,
    pub(super) unique: UniqueKey,
    pub(super) limit: Option<KeyLimit>,
}

impl<M> Dispatch<'_, M> {
    /// Runs this message's slots only while fewer than `limit` messages with the same
    /// `key` run, across every worker on the backend (a customer's API that takes two calls
    /// at once: `.concurrency_key("customer-7", 2)`). A worker that reserves it while the
    /// limit is reached puts it back for a moment, unchanged: that is no failure and costs
    /// no retry. Refused on a backend that cannot keep the count (see
    /// [`Feature::KeyLimits`](crate::transport::Feature::KeyLimits)), and a limit of 0.
    /// Takes the place of the type's `#[message(concurrency = ...)]` for this dispatch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct CallApi { customer: u64 }
    ///
    /// let bus = mq::Bus::connect("memory://dispatch-concurrency-key-doc").await?;
    /// bus.dispatch(CallApi { customer: 7 }).concurrency_key("customer-7", 2).await?;
    /// assert!(bus.dispatch(CallApi { customer: 7 }).concurrency_key("customer-7", 0).await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn concurrency_key(mut self, key: impl Into<String>, limit: u32) -> Self {
        self.limit.get_or_insert_with(KeyLimit::default).concurrency = Some((key.into(), limit));
        self
    }

    /// Starts this message's slots only while fewer than `per_second` messages with the
    /// same `key` started in the last second, across every worker on the backend (an API
    /// that takes 50 calls a second: `.rate_limit("geo-api", 50)`; the key may be a queue's
    /// name, for a limit on a whole queue). Held back as by
    /// [`concurrency_key`](Dispatch::concurrency_key), with the same refusals. Takes the
    /// place of the type's `#[message(rate_limit = ...)]` for this dispatch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Geocode { address: String }
    ///
    /// let bus = mq::Bus::connect("memory://dispatch-rate-limit-doc").await?;
    /// bus.dispatch(Geocode { address: "Main St 1".into() }).rate_limit("geo-api", 50).await?;
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(mut self, key: impl Into<String>, per_second: u32) -> Self {
        self.limit.get_or_insert_with(KeyLimit::default).rate = Some((key.into(), per_second));
        self
    }

    /// Makes this a unique message with `key` (over the key of the type's
    /// `#[message(unique = "...")]`): if a message of the same type holds the key (queued,
    /// running, or within its `unique_for` after), nothing is queued and the dispatch returns
    /// that message's id. Keys are per message type. Refused on a backend that cannot keep a
    /// key (see [`Feature::Unique`](crate::transport::Feature::Unique)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Reindex { shard: u32 }
    ///
    /// let bus = mq::Bus::connect("memory://dispatch-unique-doc").await?;
    /// let first = bus.dispatch(Reindex { shard: 3 }).unique("shard-3").await?;
    /// let again = bus.dispatch(Reindex { shard: 3 }).unique("shard-3").await?;
    /// assert_eq!(first, again);
    /// assert_eq!(bus.transport().stats().await?[0].ready, 1);
    /// # Ok(()) }
    /// ```
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique.key = Some(key.into());
        self
    }

    /// Keeps the unique key taken for `hold_after` once the message ended (acked or failed),
    /// over the type's `unique_for`. Needs a key, from [`unique`](Dispatch::unique) or the
    /// type's `#[message(unique = "...")]`; without one it does nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(unique = "order_id")]
    /// struct Refund { order_id: u64 }
    ///
    /// let bus = mq::Bus::connect("memory://dispatch-unique-for-doc").await?;
    /// let hour = std::time::Duration::from_secs(3600);
    /// let first = bus.dispatch(Refund { order_id: 7 }).unique_for(hour).await?;
    /// assert_eq!(bus.dispatch(Refund { order_id: 7 }).await?, first);
    /// # Ok(()) }
    /// ```
    pub fn unique_for(mut self, hold_after: Duration) -> Self {
        self.unique.hold_after = Some(hold_after);
        self
    }

    /// Debounces this message by `key`: a burst of dispatches of its type with the key,
    /// each less than `quiet` after the one before, becomes one message, run `quiet` after
    /// the last of them with the last one's body (and id), but no later than `max_wait`
    /// after the first. A dispatch after the burst's message became ready starts a new
    /// burst. The dispatch's own delay is replaced by the debounce's. Refused on a backend
    /// that cannot (see [`Feature::Debounce`](crate::transport::Feature::Debounce)), and
    /// together with a unique key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// use std::time::Duration;
    ///
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Reindex { shop: u32, edits: u32 }
    ///
    /// let bus = mq::Bus::connect("memory://dispatch-debounce-doc").await?;
    /// let (quiet, max_wait) = (Duration::from_secs(2), Duration::from_secs(30));
    /// for edits in 1..=500 {
    ///     bus.dispatch(Reindex { shop: 7, edits }).debounce("shop-7", quiet, max_wait).await?;
    /// }
    /// assert_eq!(bus.transport().stats().await?[0].delayed, 1); // one, with edits = 500
    /// # Ok(()) }
    /// ```
    pub fn debounce(mut self, key: impl Into<String>, quiet: Duration, max_wait: Duration) -> Self {
        self.unique.debounce = Some((key.into(), quiet, max_wait));
        self
    }

    /// Keeps the message invisible for `delay` (beanstalkd rounds up to whole seconds).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// use std::time::Duration;
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Ping).delay(Duration::from_secs(30)).await?;
    /// assert_eq!(bus.dispatches()[0].delay, Duration::from_secs(30));
    /// # Ok(()) }
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Overrides the message type's priority; lower is sooner.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(priority = 100)]
    /// struct Ping;
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Ping).await?;
    /// bus.dispatch(Ping).priority(0).await?;
    /// let priorities: Vec<u32> = bus.dispatches().iter().map(|d| d.priority).collect();
    /// assert_eq!(priorities, [100, 0]);
    /// # Ok(()) }
    /// ```
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }
}

impl<M> fmt::Debug for Dispatch<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatch")
            .field("message", &std::any::type_name::<M>())
            .field("delay", &self.delay)
            .field("priority", &self.priority)
            .field("unique", &self.unique.key)
            .finish()
    }
}

impl<'a, M: Message> IntoFuture for Dispatch<'a, M> {
    type Output = Result<MessageId>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<MessageId>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let bus = bus_or_global(self.bus).await?;
            let span = bus.publish_span::<M>(1);
            bus.put(
                self.message,
                self.delay,
                self.priority,
                self.unique,
                self.limit,
            )
            .instrument(span)
            .await
        })
    }
}

/// Messages about to be dispatched together; `.await` it to put them on their queue and
/// get their ids, in order.
///
/// Made by [`Bus::dispatch_all`] and [`dispatch_all`](crate::dispatch_all); nothing is sent until it is awaited.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Reindex { shard: u32 }
/// let bus = mq::testing::RecordingBus::new();
/// let batch: mq::DispatchAll<'_, Reindex> = bus.dispatch_all((0..3).map(|shard| Reindex { shard }));
/// let ids = batch.await?;
/// assert_eq!(ids.len(), 3);
/// assert_eq!(bus.dispatched::<Reindex>()[2].shard, 2);
/// # Ok(()) }
/// ```
#[must_use = "a dispatch does nothing until it is awaited"]
pub struct DispatchAll<'a, M> {
    bus: Option<&'a Bus>,
    messages: Vec<M>,
    delay: Option<Duration>,
    priority: Option<u32>,
}

impl<'a, M> DispatchAll<'a, M> {
    pub(super) fn new(bus: Option<&'a Bus>, messages: impl IntoIterator<Item = M>) -> Self {
        DispatchAll {
            bus,
            messages: messages.into_iter().collect(),
            delay: None,
            priority: None,
        }
    }

    /// Keeps every message invisible for `delay` (beanstalkd rounds up to whole seconds).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Reindex { shard: u32 }
    /// use std::time::Duration;
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// let shards = (0..4).map(|shard| Reindex { shard });
    /// bus.dispatch_all(shards).delay(Duration::from_secs(60)).await?;
    /// assert!(bus.dispatches().iter().all(|d| d.delay == Duration::from_secs(60)));
    /// # Ok(()) }
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Overrides the message type's priority for every message; lower is sooner.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Reindex { shard: u32 }
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch_all((0..4).map(|shard| Reindex { shard })).priority(5).await?;
    /// assert!(bus.dispatches().iter().all(|d| d.priority == 5));
    /// # Ok(()) }
    /// ```
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }
}

impl<M> fmt::Debug for DispatchAll<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchAll")
            .field("message", &std::any::type_name::<M>())
            .field("count", &self.messages.len())
            .field("delay", &self.delay)
            .field("priority", &self.priority)
            .finish()
    }
}

impl<'a, M: Message> IntoFuture for DispatchAll<'a, M> {
    type Output = Result<Vec<MessageId>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Vec<MessageId>>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let bus = bus_or_global(self.bus).await?;
            if self.messages.is_empty() {
                return Ok(Vec::new());
            }
            let span = bus.publish_span::<M>(self.messages.len());
            bus.put_all(self.messages, self.delay, self.priority)
                .instrument(span)
                .await
        })
    }
}
