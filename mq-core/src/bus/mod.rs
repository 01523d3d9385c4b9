//! The producer side: [`Bus`] puts typed messages on their queues; [`dispatch`] does so on a
//! process-wide bus configured from `MQ_URL` (`global`). `dispatch` holds what a dispatch
//! is before it is awaited, `options` its unique key and limits, `within` a dispatch in the
//! application's PostgreSQL transaction.

mod dispatch;
mod global;
mod options;
#[cfg(feature = "postgres")]
mod within;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use dispatch::{Dispatch, DispatchAll};
use global::bus_or_global;
pub use global::{dispatch, dispatch_all, global};
use options::{KeyLimit, UniqueKey};

use crate::envelope::Envelope;
use crate::event::Hook;
use crate::event::{Event, EventKind};
use crate::message::Message;
use crate::signing::Signer;
use crate::telemetry::spans;
use crate::transport::{self, PutOptions, Transport};
use crate::{Error, Result};

/// The id of a dispatched message: the envelope's `id`, kept across retries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// let bus = mq::testing::RecordingBus::new();
/// let id: mq::MessageId = bus.dispatch(Ping).await?;
/// assert_eq!(id.to_string(), bus.dispatches()[0].id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub String);

impl MessageId {
    /// The id as text.
    ///
    /// ```
    /// let id = mq::MessageId("01a24169-671b-7365-9c2e-41c78ec07e1b".to_owned());
    /// assert_eq!(id.as_str(), "01a24169-671b-7365-9c2e-41c78ec07e1b");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A handle that dispatches messages to a transport. Cheap to clone; clones share the
/// transport (one pipelined connection for beanstalkd, one writer for SQLite).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// struct Reindex { shard: u32 }
///
/// let bus = mq::Bus::connect("memory://bus-doc").await?;
/// let id = bus.dispatch(Reindex { shard: 3 }).priority(10).await?;
/// println!("queued {id}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bus {
    transport: Arc<dyn Transport>,
    hook: Option<Hook>,
    /// The transport's `messaging.system`, for the publish spans.
    system: &'static str,
    /// A `postgres://` schema that [`Dispatch::within`] writes to when the transport is
    /// not PostgreSQL; [`crate::relay`] moves its rows to the transport.
    #[cfg(feature = "postgres")]
    outbox: Option<Arc<dyn Transport>>,
    /// The keys that sign every envelope (see [`signing`](crate::signing)).
    signer: Option<Arc<Signer>>,
}

impl Bus {
    /// A bus on an open transport.
    ///
    /// ```
    /// use mq::transport::memory::MemoryTransport;
    ///
    /// let bus = mq::Bus::new(MemoryTransport::named("bus-new-doc"));
    /// assert_eq!(bus.transport().describe(), "memory://bus-new-doc");
    /// ```
    pub fn new(transport: Arc<dyn Transport>) -> Bus {
        Bus::with_hook(transport, None)
    }

    /// A bus that reports `Submitted` events to a worker's hook.
    pub(crate) fn with_hook(transport: Arc<dyn Transport>, hook: Option<Hook>) -> Bus {
        Bus {
            system: crate::telemetry::messaging_system(&transport.describe()),
            transport,
            hook,
            #[cfg(feature = "postgres")]
            outbox: None,
            signer: None,
        }
    }

    /// This bus, signing every envelope it dispatches with `signer`'s first key (see
    /// [`signing`](crate::signing)). [`Bus::connect`] and [`Bus::from_env`] read the keys
    /// of `MQ_SIGNING_KEYS` themselves; [`Bus::new`] signs only when given them here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Refund { cents: u64 }
    ///
    /// let signer = mq::signing::Signer::parse(&format!("k1:{}", "ab".repeat(32)))?;
    /// let bus = mq::Bus::connect("memory://with-signer-doc").await?.with_signer(signer.clone());
    /// bus.dispatch(Refund { cents: 100 }).await?;
    /// let job = bus.transport().peek("default").await?.expect("queued");
    /// let envelope = mq::Envelope::decode(&job.body).unwrap();
    /// assert!(envelope.sig.as_deref().is_some_and(|sig| sig.starts_with("k1:")));
    /// assert!(signer.verify(&envelope).is_ok());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_signer(mut self, signer: Signer) -> Bus {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// This bus with the worker's keys (shared, and none when the worker has none).
    pub(crate) fn with_shared_signer(mut self, signer: Option<Arc<Signer>>) -> Bus {
        self.signer = signer;
        self
    }

    /// This bus, with `outbox` (a `postgres://` schema of the application's database that no worker
    /// consumes) as where [`Dispatch::within`] writes while the bus itself is on a broker; run a
    /// [`Relay`](crate::relay::Relay) (`mq relay`) to move what commits there to the broker. See
    /// [`guide::postgres`](crate::guide::postgres) § "An outbox for the brokers".
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// let outbox = mq::transport::connect("postgres://app@127.0.0.1/shop?schema=outbox").await?;
    /// let bus = mq::Bus::connect("nats://127.0.0.1:4222").await?.with_outbox(outbox)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when `outbox` is not a PostgreSQL transport.
    #[cfg(feature = "postgres")]
    pub fn with_outbox(mut self, outbox: Arc<dyn Transport>) -> Result<Bus> {
        transport::postgres::as_outbox(&*outbox)?;
        self.outbox = Some(outbox);
        Ok(self)
    }

    /// Opens the transport `url` names (see [`transport::connect`]) and logs where it points
    /// (for `sqlite://`, the absolute path of the file) at `info`. With `MQ_SIGNING_KEYS`
    /// set, the bus signs every envelope (see [`Bus::with_signer`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    /// let bus = mq::Bus::connect(&url).await?;
    /// assert!(bus.transport().describe().starts_with("sqlite://"));
    /// assert!(mq::Bus::connect("smtp://127.0.0.1").await.is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A malformed URL, or a backend that cannot be opened or reached;
    /// [`Error::SigningKeys`] when `MQ_SIGNING_KEYS` is malformed.
    pub async fn connect(url: &str) -> Result<Bus> {
        let signer = Signer::from_env()?;
        let transport = transport::connect(url).await?;
        tracing::info!(
            backend = %transport::redacted(&transport.describe()),
            signing_key = signer.as_ref().map(Signer::signing_key_id),
            "mq bus connected"
        );
        Ok(Bus::new(transport).with_shared_signer(signer.map(Arc::new)))
    }

    /// Opens the transport of `MQ_URL`, or the SQLite default when it is unset, and (with
    /// the `postgres` feature) the outbox of `MQ_OUTBOX` when it is set (see
    /// `Bus::with_outbox`, with that feature).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// std::env::set_var("MQ_URL", "memory://from-env-doc");
    /// let bus = mq::Bus::from_env().await?;
    /// assert_eq!(bus.transport().describe(), "memory://from-env-doc");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Bus::connect`], for either URL.
    pub async fn from_env() -> Result<Bus> {
        let bus = Bus::connect(&transport::url_from_env()).await?;
        #[cfg(feature = "postgres")]
        if let Some(outbox) = std::env::var("MQ_OUTBOX")
            .ok()
            .filter(|url| !url.is_empty())
        {
            return bus.with_outbox(transport::connect(&outbox).await?);
        }
        Ok(bus)
    }

    /// The span of a dispatch of `count` messages of `M`.
    fn publish_span<M: Message>(&self, count: usize) -> tracing::Span {
        spans::publish(self.system, M::OPTIONS.queue, M::NAME, count)
    }

    /// The transport this bus puts on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// let bus = mq::Bus::connect("memory://bus-transport-doc").await?;
    /// bus.dispatch(Ping).await?;
    /// let stats = bus.transport().stats().await?;
    /// assert_eq!((stats[0].queue.as_str(), stats[0].ready), ("default", 1));
    /// # Ok(()) }
    /// ```
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Starts dispatching `message`; await the result to put it on its queue.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails")]
    /// struct SendOrderConfirmation { order_id: u64 }
    ///
    /// let bus = mq::Bus::connect("memory://bus-dispatch-doc").await?;
    /// let id = bus.dispatch(SendOrderConfirmation { order_id: 7 }).await?;
    /// let job = bus.transport().peek("emails").await?.expect("queued");
    /// assert_eq!(mq::Envelope::decode(&job.body).unwrap().id, id.as_str());
    /// # Ok(()) }
    /// ```
    pub fn dispatch<M: Message>(&self, message: M) -> Dispatch<'_, M> {
        Dispatch {
            bus: Some(self),
            message,
            delay: None,
            priority: None,
            unique: UniqueKey::default(),
            limit: None,
        }
    }

    /// Starts dispatching every message of `messages` together; await the result to put
    /// them on their queue and get their ids, in order. Pipelined writes of 1,024 `put`s
    /// on beanstalkd, one transaction on SQLite, publishes awaited 256 at a time on NATS:
    /// many times the throughput of awaiting one [`dispatch`](Bus::dispatch) after another.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Reindex { shard: u32 }
    ///
    /// let bus = mq::Bus::connect("memory://bus-dispatch-all-doc").await?;
    /// let ids = bus.dispatch_all((0..8).map(|shard| Reindex { shard })).await?;
    /// assert_eq!(ids.len(), 8);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Bus::dispatch). Every message is encoded and checked against the
    /// backend's size limit before any is sent, so these errors queue nothing. When the
    /// backend confirms some messages of the batch and not the others (beanstalkd and
    /// NATS; SQLite takes all or none), the error is [`Error::PartlyQueued`], which lists
    /// the confirmed ones by index; dispatch the others again from the data you built the
    /// batch from (an unconfirmed message may have been queued all the same: at least once).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it runs leaves unknown how much of the batch was queued
    /// (on SQLite: all of it or none).
    pub fn dispatch_all<M, I>(&self, messages: I) -> DispatchAll<'_, M>
    where
        M: Message,
        I: IntoIterator<Item = M>,
    {
        DispatchAll::new(Some(self), messages)
    }

    /// Encodes `message` and puts it on its queue; a unique one only if its key is free,
    /// else the id of the message that holds it.
    async fn put<M: Message>(
        &self,
        message: M,
        delay: Option<Duration>,
        priority: Option<u32>,
        unique: UniqueKey,
        limit: Option<KeyLimit>,
    ) -> Result<MessageId> {
        let options = put_options::<M>(delay, priority);
        let (envelope, bytes) = self.encode(&message, &options, limit.as_ref())?;
        spans::record_message_id(&tracing::Span::current(), &envelope.id);
        let queue = M::OPTIONS.queue;
        if let Some((key, quiet, max_wait)) = unique.debounce.clone() {
            if unique.key.is_some() || M::OPTIONS.unique.is_some() {
                return Err(Error::Config(format!(
                    "message `{}`: a dispatch is either unique or debounced, not both",
                    M::NAME
                )));
            }
            let debounce = transport::Debounce::new(format!("{}:{key}", M::NAME), quiet, max_wait);
            self.transport
                .put_debounced(queue, bytes, options, &debounce)
                .await?;
            self.submitted::<M>(&envelope);
            return Ok(MessageId(envelope.id));
        }
        match unique.resolve(&message, &envelope)? {
            None => {
                self.transport.put(queue, bytes, options).await?;
            }
            Some(unique) => {
                let put = self.transport.put_unique(queue, bytes, options, &unique);
                if let transport::Put::Existing(id) = put.await? {
                    tracing::debug!(name = M::NAME, %id, key = unique.key, "unique key held");
                    return Ok(MessageId(id));
                }
            }
        }
        self.submitted::<M>(&envelope);
        Ok(MessageId(envelope.id))
    }

    /// Encodes every message, then puts them all on their queue in one call.
    async fn put_all<M: Message>(
        &self,
        messages: Vec<M>,
        delay: Option<Duration>,
        priority: Option<u32>,
    ) -> Result<Vec<MessageId>> {
        let options = put_options::<M>(delay, priority);
        let mut envelopes = Vec::with_capacity(messages.len());
        let mut bodies = Vec::with_capacity(messages.len());
        for message in &messages {
            let (envelope, bytes) = self.encode(message, &options, None)?;
            envelopes.push(envelope);
            bodies.push(bytes);
        }
        if let Some(first) = envelopes.first() {
            spans::record_message_id(&tracing::Span::current(), &first.id);
        }
        let results = self
            .transport
            .put_many(M::OPTIONS.queue, bodies, options)
            .await?;
        let total = envelopes.len();
        let mut queued = Vec::with_capacity(total);
        let mut first_error = None;
        // A transport that answers fewer than it was given leaves the rest unconfirmed.
        let mut results = results.into_iter();
        for (index, envelope) in envelopes.into_iter().enumerate() {
            match results.next() {
                Some(Ok(_)) => {
                    self.submitted::<M>(&envelope);
                    queued.push((index, MessageId(envelope.id)));
                }
                Some(Err(error)) => {
                    first_error.get_or_insert(error);
                }
                None => {
                    first_error.get_or_insert_with(|| Error::Protocol {
                        backend: "transport",
                        detail: format!("{index} answers to a batch of {total}"),
                    });
                }
            }
        }
        match first_error {
            None => Ok(queued.into_iter().map(|(_, id)| id).collect()),
            Some(error) if queued.is_empty() => Err(error),
            Some(error) => Err(Error::PartlyQueued {
                queued,
                total,
                source: Box::new(error),
            }),
        }
    }

    /// The envelope of `message` and its bytes, checked against what the backend can do
    /// (its size limit, priorities, longest delay, key limits). Every dispatch path comes
    /// here, so the type's own limits apply wherever `limit` (the dispatch's) leaves them.
    fn encode<M: Message>(
        &self,
        message: &M,
        options: &PutOptions,
        limit: Option<&KeyLimit>,
    ) -> Result<(Envelope, bytes::Bytes)> {
        let body = message.encode_body().map_err(|source| Error::Encode {
            name: M::NAME.to_owned(),
            source,
        })?;
        let mut envelope = Envelope {
            message_version: M::VERSION,
            ..Envelope::new(M::NAME, body)
        };
        #[cfg(feature = "otel")]
        crate::telemetry::otel::inject(&mut envelope.headers);
        if let Some(limit) = KeyLimit::resolve(limit, message)? {
            limit.check(M::NAME, self.transport.as_ref())?;
            limit.write(&mut envelope.headers);
        }
        if let Some(signer) = &self.signer {
            envelope.sig = Some(signer.sign(&envelope));
        }
        let bytes = envelope.encode();
        transport::check_queue_name(M::OPTIONS.queue)?;
        self.transport
            .capabilities()
            .check_put(M::NAME, bytes.len(), options)?;
        Ok((envelope, bytes))
    }

    /// Logs and reports one message put on its queue.
    fn submitted<M: Message>(&self, envelope: &Envelope) {
        tracing::debug!(name = M::NAME, id = %envelope.id, queue = M::OPTIONS.queue, "submitted");
        #[cfg(feature = "metrics")]
        crate::telemetry::metrics::dispatched(M::OPTIONS.queue, M::NAME, 1);
        Hook::emit(&self.hook, || {
            Event::new(
                EventKind::Submitted,
                M::NAME,
                &envelope.id,
                M::OPTIONS.queue,
                1,
            )
        });
    }
}

/// The options of a put of `M`, with the dispatch's overrides.
fn put_options<M: Message>(delay: Option<Duration>, priority: Option<u32>) -> PutOptions {
    PutOptions {
        priority: priority.unwrap_or(M::OPTIONS.priority),
        delay: delay.unwrap_or(M::OPTIONS.delay),
        ttr: M::OPTIONS.ttr,
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("transport", &self.transport.describe())
            .finish()
    }
}
