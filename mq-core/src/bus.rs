//! The producer side: [`Bus`] puts typed messages on their queues; [`dispatch`] does so on a
//! process-wide bus configured from `MQ_URL`.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tracing::Instrument as _;

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
    /// (its size limit, priorities, longest delay).
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
        if let Some(limit) = limit {
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

/// The unique key a dispatch gives (`.unique(key)`, `.unique_for(d)`), over the type's.
#[derive(Debug, Default, Clone)]
struct UniqueKey {
    key: Option<String>,
    hold_after: Option<Duration>,
    /// `.debounce(key, quiet, max_wait)`.
    debounce: Option<(String, Duration, Duration)>,
}

impl UniqueKey {
    /// The key of this dispatch of `message`, namespaced by its wire name, if it has one.
    fn resolve<M: Message>(
        self,
        message: &M,
        envelope: &Envelope,
    ) -> Result<Option<transport::Unique>> {
        let key = match self.key {
            Some(key) => key,
            None => match message.unique_key() {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(None),
                Err(source) => {
                    let name = M::NAME.to_owned();
                    return Err(Error::Encode { name, source });
                }
            },
        };
        let hold_after = self
            .hold_after
            .or(M::OPTIONS.unique)
            .unwrap_or(Duration::ZERO);
        let unique = transport::Unique::new(format!("{}:{key}", M::NAME), envelope.id.clone());
        Ok(Some(unique.hold_after(hold_after)))
    }
}

/// A dispatch's limits: at most so many messages with a key run at once (`concurrency`),
/// or start per second (`rate`).
#[derive(Debug, Clone, Default)]
struct KeyLimit {
    concurrency: Option<(String, u32)>,
    rate: Option<(String, u32)>,
}

impl KeyLimit {
    /// Refuses a limit of 0 and a backend that cannot keep the count.
    fn check(&self, name: &str, transport: &dyn Transport) -> Result<()> {
        let limits = [("concurrency", &self.concurrency), ("rate", &self.rate)];
        for (kind, (key, limit)) in limits.iter().filter_map(|(k, l)| Some((k, l.as_ref()?))) {
            if *limit == 0 {
                return Err(Error::Config(format!(
                    "message `{name}`: a {kind} limit of 0 for key `{key}` would never run \
                     it; give 1 or more"
                )));
            }
            let what = format!("{kind} limit of key `{key}` for message `{name}`");
            transport.capabilities().require(
                transport::Feature::KeyLimits,
                &what,
                &transport.describe(),
            )?;
        }
        Ok(())
    }

    /// Writes the limits into the envelope's headers, where the worker reads them.
    fn write(&self, headers: &mut crate::envelope::Headers) {
        use crate::worker::{LIMIT, LIMIT_KEY, RATE, RATE_KEY};
        let limits = [
            (LIMIT_KEY, LIMIT, &self.concurrency),
            (RATE_KEY, RATE, &self.rate),
        ];
        for (key_header, limit_header, limit) in limits {
            if let Some((key, limit)) = limit {
                headers.insert(key_header.to_owned(), key.clone());
                headers.insert(limit_header.to_owned(), limit.to_string());
            }
        }
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

static GLOBAL: OnceCell<Bus> = OnceCell::const_new();

/// The process-wide bus: opened from `MQ_URL` on first use.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// std::env::set_var("MQ_URL", "memory://global-doc");
/// let bus = mq::global().await?;
/// assert_eq!(bus.transport().describe(), "memory://global-doc");
/// assert!(std::ptr::eq(bus, mq::global().await?)); // opened once
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`Bus::from_env`]; a failed first use is tried again by the next.
pub async fn global() -> Result<&'static Bus> {
    GLOBAL.get_or_try_init(Bus::from_env).await
}

/// The bus a dispatch names, else the process-wide one.
async fn bus_or_global(bus: Option<&Bus>) -> Result<&Bus> {
    match bus {
        Some(bus) => Ok(bus),
        None => global().await,
    }
}

/// Dispatches `message` on the process-wide bus (see [`global`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # std::env::set_var("MQ_URL", "memory://dispatch-doc");
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "emails")]
/// struct SendOrderConfirmation { order_id: u64, to: String }
///
/// let id = mq::dispatch(SendOrderConfirmation { order_id: 7, to: "a@b.c".into() })
///     .delay(std::time::Duration::from_secs(30))
///     .await?;
/// # let stats = mq::global().await?.transport().stats().await?;
/// # assert_eq!((stats[0].queue.as_str(), stats[0].delayed), ("emails", 1));
/// # Ok(()) }
/// ```
pub fn dispatch<M: Message>(message: M) -> Dispatch<'static, M> {
    Dispatch {
        bus: None,
        message,
        delay: None,
        priority: None,
        unique: UniqueKey::default(),
        limit: None,
    }
}

/// Dispatches every message of `messages` together on the process-wide bus (see
/// [`global`]); as [`Bus::dispatch_all`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # std::env::set_var("MQ_URL", "memory://dispatch-all-doc");
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "search")]
/// struct Reindex { shard: u32 }
///
/// let ids = mq::dispatch_all((0..64).map(|shard| Reindex { shard })).await?;
/// assert_eq!(ids.len(), 64);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`Bus::dispatch_all`], and as [`global`] when `MQ_URL` cannot be opened (even for an
/// empty batch).
pub fn dispatch_all<M, I>(messages: I) -> DispatchAll<'static, M>
where
    M: Message,
    I: IntoIterator<Item = M>,
{
    DispatchAll::new(None, messages)
}

/// A message about to be dispatched; `.await` it to put it on its queue and get its id.
///
/// Made by [`Bus::dispatch`], [`Context::dispatch`](crate::Context::dispatch) and
/// [`dispatch`]; nothing is sent until it is awaited.
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
    bus: Option<&'a Bus>,
    message: M,
    delay: Option<Duration>,
    priority: Option<u32>,
    unique: UniqueKey,
    limit: Option<KeyLimit>,
}

impl<M> Dispatch<'_, M> {
    /// Runs this message's slots only while fewer than `limit` messages with the same
    /// `key` run, across every worker on the backend (a customer's API that takes two calls
    /// at once: `.concurrency_key("customer-7", 2)`). A worker that reserves it while the
    /// limit is reached puts it back for a moment, unchanged: that is no failure and costs
    /// no retry. Refused on a backend that cannot keep the count (see
    /// [`Feature::KeyLimits`](crate::transport::Feature::KeyLimits)), and a limit of 0.
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
    /// [`concurrency_key`](Dispatch::concurrency_key), with the same refusals.
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

#[cfg(feature = "postgres")]
impl<M: Message> Dispatch<'_, M> {
    /// Queues the message as part of the application's own PostgreSQL transaction: workers
    /// see it when `tx` commits (an idle worker is woken by the commit's NOTIFY), and it is
    /// gone if `tx` rolls back. The bus must be on `postgres://` (the same database; the
    /// schema is the bus URL's). `tx` is the application's sqlx connection or transaction
    /// (`&mut *tx` for a `sqlx::Transaction`; sqlx 0.8).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails")]
    /// struct SendOrderConfirmation { order_id: i64 }
    ///
    /// let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1/shop").await?;
    /// let bus = mq::Bus::connect("postgres://app@127.0.0.1/shop").await?;
    /// let mut tx = pool.begin().await?;
    /// let order_id: i64 = sqlx::query_scalar("INSERT INTO orders (total) VALUES (100) RETURNING id")
    ///     .fetch_one(&mut *tx)
    ///     .await?;
    /// bus.dispatch(SendOrderConfirmation { order_id }).within(&mut tx).await?;
    /// tx.commit().await?; // the order and its e-mail, or neither
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the bus is neither on PostgreSQL nor has an outbox
    /// ([`Bus::with_outbox`], `MQ_OUTBOX`), and the checks of a dispatch (size, priority,
    /// delay): these send nothing and leave `tx` as it was. The database's error: then `tx`
    /// is as PostgreSQL leaves it after a failed statement (aborted): roll it back.
    pub async fn within(self, tx: &mut sqlx::PgConnection) -> Result<MessageId> {
        let bus = bus_or_global(self.bus).await?;
        let span = bus.publish_span::<M>(1);
        let options = put_options::<M>(self.delay, self.priority);
        // Encoded in the span, so that the envelope carries its trace context.
        let limit = self.limit.as_ref();
        let (envelope, bytes) = span.in_scope(|| bus.encode(&self.message, &options, limit))?;
        spans::record_message_id(&span, &envelope.id);
        let transport = bus.transport.as_ref();
        let of = transport::postgres::PostgresTransport::of;
        let Some(postgres) = of(transport).or(bus.outbox.as_deref().and_then(of)) else {
            return Err(Error::Unsupported {
                what: format!("dispatch of `{}` within a PostgreSQL transaction", M::NAME),
                reason: format!(
                    "the bus is on {}, not on postgres://, and has no outbox: point MQ_URL at \
                     the application's database, or set MQ_OUTBOX to a schema of it \
                     (postgres://...?schema=outbox) and run `mq relay`",
                    transport::redacted(&transport.describe())
                ),
            });
        };
        if let Some(unique) = self.unique.resolve(&self.message, &envelope)? {
            if of(transport).is_none() {
                return Err(Error::Unsupported {
                    what: format!("unique dispatch of `{}` within a transaction", M::NAME),
                    reason: "the outbox's relay cannot keep a unique key on the broker: point \
                             MQ_URL at the application's database (postgres://), or dispatch \
                             without .within()"
                        .to_owned(),
                });
            }
            let put = postgres.put_unique_within(tx, M::OPTIONS.queue, &bytes, &options, &unique);
            if let transport::Put::Existing(id) = put.instrument(span).await? {
                return Ok(MessageId(id));
            }
        } else {
            postgres
                .put_within(tx, M::OPTIONS.queue, &bytes, &options)
                .instrument(span)
                .await?;
        }
        bus.submitted::<M>(&envelope);
        Ok(MessageId(envelope.id))
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
/// Made by [`Bus::dispatch_all`] and [`dispatch_all`]; nothing is sent until it is awaited.
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
    fn new(bus: Option<&'a Bus>, messages: impl IntoIterator<Item = M>) -> Self {
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
