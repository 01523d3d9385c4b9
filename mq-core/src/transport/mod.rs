//! The queue backend abstraction: queues of opaque bytes.
//!
//! A transport never sees message types; the worker turns bytes into messages through the
//! registry. Every operation maps one to one onto what beanstalkd, SQLite, NATS JetStream or
//! PostgreSQL `SKIP LOCKED` offer: put, reserve, ack, retry with a delay, release, keep-alive,
//! fail, counts. Backends batch internally where that pays (SQLite group commit, beanstalkd
//! pipelining); the trait stays one call per operation.
//!
//! Nothing of one backend leaks into the seam: a reserved [`Job`] carries an opaque
//! [`Receipt`] that only its backend reads, what differs between backends is declared in
//! [`Capabilities`], and the failure store is a trait of its own ([`FailureStore`]) with a
//! default ([`QueuedFailures`]) that any backend gets by keeping records on its own queues.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! use mq::transport::{PutOptions, Transport};
//! use std::time::Duration;
//!
//! let queue = mq::transport::connect("memory://transport-module-doc").await?;
//! queue.put("emails", "hello".into(), PutOptions::default()).await?;
//! let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
//! queue.ack(&job).await?;
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Result;

#[cfg(feature = "beanstalk")]
pub mod beanstalk;
mod capabilities;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns;
#[cfg(any(feature = "nats", feature = "postgres"))]
mod escape;
mod failures;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod scheme;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(any(feature = "beanstalk", feature = "postgres"))]
pub(crate) use capabilities::too_large;
pub use capabilities::{Capabilities, KeepAlive, Priorities};
pub use failures::{
    check_queue_name, fold_failed_stats, FailureStore, QueuedFailures, FAILED_QUEUE_PREFIX,
};

/// How a message is put on its queue.
///
/// ```
/// use mq::transport::PutOptions;
/// use std::time::Duration;
///
/// let options = PutOptions::default().with_delay(Duration::from_secs(30));
/// assert_eq!((options.priority, options.delay), (1024, Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PutOptions {
    /// Lower is sooner; 0 is the most urgent.
    pub priority: u32,
    /// How long the message stays invisible before it becomes ready.
    #[serde(with = "crate::envelope::duration_ms")]
    pub delay: Duration,
    /// Time to run: how long a reservation lasts before the message is handed out again.
    #[serde(with = "crate::envelope::duration_ms")]
    pub ttr: Duration,
}

impl PutOptions {
    /// Options with this priority, delay and TTR.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = mq::transport::PutOptions::new(0, Duration::ZERO, Duration::from_secs(120));
    /// assert_eq!(options.ttr, Duration::from_secs(120));
    /// ```
    pub fn new(priority: u32, delay: Duration, ttr: Duration) -> PutOptions {
        PutOptions {
            priority,
            delay,
            ttr,
        }
    }

    /// The same with another priority.
    ///
    /// ```
    /// let urgent = mq::transport::PutOptions::default().with_priority(0);
    /// assert_eq!(urgent.priority, 0);
    /// ```
    pub fn with_priority(self, priority: u32) -> PutOptions {
        PutOptions { priority, ..self }
    }

    /// The same with another delay.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let later = mq::transport::PutOptions::default().with_delay(Duration::from_secs(60));
    /// assert_eq!(later.delay, Duration::from_secs(60));
    /// ```
    pub fn with_delay(self, delay: Duration) -> PutOptions {
        PutOptions { delay, ..self }
    }

    /// The same with another TTR.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let long = mq::transport::PutOptions::default().with_ttr(Duration::from_secs(600));
    /// assert_eq!(long.ttr, Duration::from_secs(600));
    /// ```
    pub fn with_ttr(self, ttr: Duration) -> PutOptions {
        PutOptions { ttr, ..self }
    }
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            priority: crate::message::DEFAULT_PRIORITY,
            delay: Duration::ZERO,
            ttr: crate::message::DEFAULT_TTR,
        }
    }
}

/// A reserved item: the worker holds it until it acks, retries, releases or fails it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
/// use std::time::Duration;
///
/// let queue = MemoryTransport::new();
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// let jobs = queue.reserve(&["emails".into()], 10, Duration::ZERO).await?;
/// let job: &mq::transport::Job = &jobs[0];
/// assert_eq!((job.queue.as_str(), &job.body[..], job.deliveries), ("emails", &b"hello"[..], 1));
/// queue.ack(job).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job {
    /// The backend's id of this item, unique within the backend.
    pub id: u64,
    /// The queue it was reserved from.
    pub queue: String,
    /// The envelope bytes as they were put.
    pub body: Bytes,
    /// How many times this item has been reserved, this time included; 0 where unknown.
    pub deliveries: u32,
    /// What the backend needs to settle this reservation; the worker hands it back.
    pub receipt: Receipt,
}

/// What a backend needs to ack, retry, release, keep alive or fail one reservation (a
/// lease token, the connection that holds it, a reply subject), opaque to everyone else.
///
/// A backend makes one with [`Receipt::new`] when it reserves an item and reads it back with
/// [`Receipt::get`]; a job that was peeked, not reserved, has [`Receipt::none`]. Cloning is
/// cheap (a reference count).
///
/// ```
/// use mq::transport::Receipt;
///
/// #[derive(Debug, PartialEq)]
/// struct Lease { token: u64 }
///
/// let receipt = Receipt::new(Lease { token: 7 });
/// assert_eq!(receipt.get::<Lease>(), Some(&Lease { token: 7 }));
/// assert_eq!(receipt.get::<String>(), None); // another backend's receipt
/// assert!(Receipt::none().get::<Lease>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct Receipt(Option<Arc<dyn Any + Send + Sync>>);

impl Receipt {
    /// A receipt holding `token`.
    ///
    /// ```
    /// let receipt = mq::transport::Receipt::new(42_u64);
    /// assert_eq!(receipt.get::<u64>(), Some(&42));
    /// ```
    pub fn new<T: Any + Send + Sync>(token: T) -> Receipt {
        Receipt(Some(Arc::new(token)))
    }

    /// The receipt of an item that was not reserved.
    ///
    /// ```
    /// let receipt = mq::transport::Receipt::none();
    /// assert!(receipt.get::<u64>().is_none());
    /// ```
    pub fn none() -> Receipt {
        Receipt(None)
    }

    /// The token, if this receipt holds a `T` (made by the same backend).
    ///
    /// ```
    /// let receipt = mq::transport::Receipt::new("lease-7".to_owned());
    /// assert_eq!(receipt.get::<String>().map(String::as_str), Some("lease-7"));
    /// assert_eq!(receipt.get::<u64>(), None);
    /// ```
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Receipt(..)"
        } else {
            "Receipt(none)"
        })
    }
}

/// Why a message went to the failure store.
///
/// ```
/// use mq::transport::{Failure, SlotFailure};
/// use std::time::SystemTime;
///
/// let failure = Failure::new(
///     vec![SlotFailure { slot: "shop::mail::send".into(), error: "smtp timeout".into() }],
///     "1 of 1 slots failed after 4 attempts".into(),
///     4,
///     SystemTime::now(),
/// );
/// assert_eq!(failure.slots[0].error, "smtp timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// The slots that failed with their error text; empty when no slot ran (undecodable
    /// payload, unknown wire name).
    pub slots: Vec<SlotFailure>,
    /// A one-line summary a person can act on.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the message was moved to the failure store.
    #[serde(with = "crate::envelope::system_time")]
    pub failed_at: SystemTime,
}

impl Job {
    /// An item as a backend hands it out; without a receipt until
    /// [`with_receipt`](Job::with_receipt).
    ///
    /// ```
    /// use mq::transport::Job;
    ///
    /// let job = Job::new(7, "emails", "hello".into(), 1);
    /// assert_eq!((job.id, job.queue.as_str()), (7, "emails"));
    /// assert!(job.token::<u64>().is_err()); // no receipt: not reserved
    /// ```
    pub fn new(id: u64, queue: impl Into<String>, body: Bytes, deliveries: u32) -> Job {
        Job {
            id,
            queue: queue.into(),
            body,
            deliveries,
            receipt: Receipt::none(),
        }
    }

    /// The same job, holding the receipt of its reservation.
    ///
    /// ```
    /// use mq::transport::{Job, Receipt};
    ///
    /// let job = Job::new(7, "emails", "hello".into(), 1).with_receipt(Receipt::new(3_u32));
    /// assert_eq!(job.receipt.get::<u32>(), Some(&3));
    /// ```
    pub fn with_receipt(self, receipt: Receipt) -> Job {
        Job { receipt, ..self }
    }

    /// The receipt's token, or [`Error::ReservationLost`](crate::Error::ReservationLost)
    /// when this job holds none of type `T` (it was peeked, or reserved by another kind of
    /// backend). Two transports of one kind tell their jobs apart themselves, where they can
    /// (beanstalkd by the connection in the receipt).
    ///
    /// ```
    /// use mq::transport::{Job, Receipt};
    ///
    /// /// A backend's lease on one item.
    /// struct Lease(u32);
    ///
    /// let job = Job::new(7, "emails", "hello".into(), 1).with_receipt(Receipt::new(Lease(2)));
    /// assert_eq!(job.token::<Lease>()?.0, 2);
    /// assert!(matches!(job.token::<String>(), Err(mq::Error::ReservationLost(7))));
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn token<T: Any>(&self) -> Result<&T> {
        self.receipt
            .get()
            .ok_or(crate::Error::ReservationLost(self.id))
    }
}

impl Failure {
    /// A failure record.
    ///
    /// ```
    /// use std::time::SystemTime;
    ///
    /// let failure = mq::transport::Failure::new(Vec::new(), "no slot for `Ping`".into(), 1, SystemTime::now());
    /// assert!(failure.slots.is_empty());
    /// ```
    pub fn new(
        slots: Vec<SlotFailure>,
        reason: String,
        attempts: u32,
        failed_at: SystemTime,
    ) -> Failure {
        Failure {
            slots,
            reason,
            attempts,
            failed_at,
        }
    }
}

/// One failing slot of a failed message.
///
/// ```
/// let failed = mq::transport::SlotFailure {
///     slot: "shop::mail::send_confirmation".into(),
///     error: "smtp timeout".into(),
/// };
/// assert_eq!(serde_json::to_string(&failed).unwrap(),
///     r#"{"slot":"shop::mail::send_confirmation","error":"smtp timeout"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotFailure {
    /// The slot's path, e.g. `shop::mail::send_confirmation`.
    pub slot: String,
    /// The error text of its last attempt.
    pub error: String,
}

/// An entry of the failure store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
/// # use std::time::Duration;
/// #
/// # let queue = MemoryTransport::new();
/// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
/// # let failure = mq::transport::Failure::new(Vec::new(), "bad payload".into(), 1, std::time::SystemTime::now());
/// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
/// let failed: Vec<mq::transport::FailedMessage> = queue.failure_store().list(None, 10).await?;
/// assert_eq!((failed[0].queue.as_str(), failed[0].failure.reason.as_str()), ("emails", "bad payload"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FailedMessage {
    /// The id of this entry in the failure store.
    pub id: u64,
    /// The queue the message came from and goes back to on retry.
    pub queue: String,
    /// The envelope that runs again on retry (its `slots` are the ones that failed).
    pub body: Bytes,
    /// How the message is put back on retry.
    pub options: PutOptions,
    /// Why it failed.
    pub failure: Failure,
}

/// Counts of one queue.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
/// use std::time::Duration;
///
/// let queue = MemoryTransport::new();
/// queue.put("emails", "now".into(), PutOptions::default()).await?;
/// queue.put("emails", "later".into(), PutOptions::default().with_delay(Duration::from_secs(60))).await?;
/// let stats: Vec<mq::transport::QueueStats> = queue.stats().await?;
/// assert_eq!((stats[0].queue.as_str(), stats[0].ready, stats[0].delayed), ("emails", 1, 1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Messages waiting to be reserved.
    pub ready: u64,
    /// Messages reserved by a worker.
    pub reserved: u64,
    /// Messages waiting for their delay.
    pub delayed: u64,
    /// Messages of this queue in the failure store.
    pub failed: u64,
}

impl FailedMessage {
    /// An entry of the failure store, as a backend lists it.
    ///
    /// ```
    /// use mq::transport::{FailedMessage, Failure, PutOptions};
    /// use std::time::SystemTime;
    ///
    /// let failure = Failure::new(Vec::new(), "bad payload".into(), 1, SystemTime::now());
    /// let entry = FailedMessage::new(12, "emails", "hello".into(), PutOptions::default(), failure);
    /// assert_eq!((entry.id, entry.queue.as_str()), (12, "emails"));
    /// ```
    pub fn new(
        id: u64,
        queue: impl Into<String>,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> FailedMessage {
        FailedMessage {
            id,
            queue: queue.into(),
            body,
            options,
            failure,
        }
    }
}

impl QueueStats {
    /// All-zero counts of `queue`; set the fields that are not.
    ///
    /// ```
    /// let mut stats = mq::transport::QueueStats::new("emails");
    /// stats.ready = 3;
    /// assert_eq!((stats.ready, stats.reserved, stats.delayed, stats.failed), (3, 0, 0, 0));
    /// ```
    pub fn new(queue: impl Into<String>) -> QueueStats {
        QueueStats {
            queue: queue.into(),
            ..QueueStats::default()
        }
    }
}

/// A queue backend.
///
/// Implementations must be safe to share between tasks: the worker calls them concurrently.
/// Each method exists because one side of mq needs it; its doc says which. Backends declare
/// what they cannot do alike in [`capabilities`](Transport::capabilities), and mq checks
/// those where they matter (at dispatch and at worker start-up) instead of guessing.
///
/// # Cancel safety
///
/// The worker never cancels a call other than [`reserve`](Transport::reserve); `reserve`
/// must not lose an item when its future is dropped (an item reserved but not returned
/// comes back when its TTR runs out, which is allowed but slow: prefer not to reserve then).
///
/// # Examples
///
/// What a worker does with one item, on any backend:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{PutOptions, Transport};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let queue: Arc<dyn Transport> = mq::transport::connect("memory://transport-doc").await?;
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// for job in queue.reserve(&["emails".into()], 16, Duration::from_secs(1)).await? {
///     println!("{} bytes from {}", job.body.len(), job.queue);
///     queue.ack(&job).await?;
/// }
/// assert!(queue.stats().await?.is_empty());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Transport: AsAny + Send + Sync + fmt::Debug + 'static {
    /// Where this transport points, for start-up lines and errors (`sqlite:///srv/mq.db`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// assert_eq!(queue.describe(), "memory://doc");
    /// # Ok(()) }
    /// ```
    fn describe(&self) -> String;

    /// What this backend can do: checked by dispatch (size, priorities, delays) and by the
    /// worker at start-up (the registered messages' options).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// use mq::transport::{KeepAlive, Priorities};
    ///
    /// let can = queue.capabilities();
    /// assert_eq!((can.priorities, can.keep_alive), (Priorities::Exact, KeepAlive::Native));
    /// assert_eq!(can.max_message_size, None);
    /// # Ok(()) }
    /// ```
    fn capabilities(&self) -> Capabilities;

    /// The failure store: where a message goes after its last attempt, and what
    /// `mq failed` lists, shows, retries and removes. A backend without a store of its own
    /// returns [`QueuedFailures::new(self)`](QueuedFailures::new).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// let store = queue.failure_store();
    /// assert!(store.list(Some("emails"), 10).await?.is_empty());
    /// # Ok(()) }
    /// ```
    fn failure_store(&self) -> Box<dyn FailureStore + '_>;

    /// Dispatch: puts one item on `queue` and returns its id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// let id = queue.put("emails", "hello".into(), PutOptions::default().with_priority(10)).await?;
    /// assert_eq!(queue.peek("emails").await?.map(|job| job.id), Some(id));
    /// # Ok(()) }
    /// ```
    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64>;

    /// Puts one item as [`put`](Transport::put) does, naming it with `key`, the same for
    /// every copy of one message (the outbox relay passes the envelope's id), so that a
    /// backend able to drop duplicates does: NATS JetStream drops a publish whose
    /// `Nats-Msg-Id` it saw within the stream's duplicate window (two minutes by default).
    /// The default is `put`, the key unused: beanstalkd, SQLite and PostgreSQL keep both.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// let key = "01a24169-671b-7365-9c2e-41c78ec07e1b"; // the envelope's id
    /// queue.put_keyed("emails", "hello".into(), PutOptions::default(), key).await?;
    /// queue.put_keyed("emails", "hello".into(), PutOptions::default(), key).await?;
    /// assert_eq!(queue.stats().await?[0].ready, 2); // memory:// keeps both
    /// # Ok(()) }
    /// ```
    async fn put_keyed(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        key: &str,
    ) -> Result<u64> {
        let _ = key;
        self.put(queue, body, options).await
    }

    /// Batch dispatch ([`Bus::dispatch_all`](crate::Bus::dispatch_all)): puts several items
    /// on `queue` with the same options; one answer per item, in order. `Err` means none was
    /// put, or, as for a failed [`put`](Transport::put), that the backend went away and what
    /// it kept is unknown. The default puts them one by one; backends override it to send the
    /// batch at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// let bodies = vec!["a".into(), "b".into(), "c".into()];
    /// let answers = queue.put_many("emails", bodies, PutOptions::default()).await?;
    /// assert!(answers.iter().all(Result::is_ok));
    /// assert_eq!(queue.stats().await?[0].ready, 3);
    /// # Ok(()) }
    /// ```
    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        let mut answers = Vec::with_capacity(bodies.len());
        for body in bodies {
            answers.push(self.put(queue, body, options).await);
        }
        Ok(answers)
    }

    /// The worker's intake: reserves up to `max` ready items of `queues`, earlier queues
    /// first, then by priority, then by age, each with the [`Receipt`] that settles it. Waits
    /// up to `timeout` for the first one; returns an empty list if none came.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// queue.put("emails", "later".into(), PutOptions::default().with_priority(9)).await?;
    /// queue.put("emails", "first".into(), PutOptions::default().with_priority(1)).await?;
    /// let jobs = queue.reserve(&["emails".into()], 10, Duration::from_millis(100)).await?;
    /// assert_eq!(jobs.iter().map(|job| &job.body[..]).collect::<Vec<_>>(), [b"first", b"later"]);
    /// # Ok(()) }
    /// ```
    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>>;

    /// Every slot succeeded: deletes the reserved item.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// queue.ack(&job).await?;
    /// assert!(queue.stats().await?.is_empty());
    /// assert!(queue.ack(&job).await.is_err()); // once
    /// # Ok(()) }
    /// ```
    async fn ack(&self, job: &Job) -> Result<()>;

    /// Some slots failed and have attempts left: replaces the reserved item by `body` (the
    /// envelope naming the slots still to run), ready after `options.delay`. A crash between
    /// the two steps may leave both (a duplicate), never neither.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// let later = PutOptions::default().with_delay(Duration::from_secs(5));
    /// queue.retry(&job, "hello, again".into(), later).await?;
    /// let stats = &queue.stats().await?[0];
    /// assert_eq!((stats.ready, stats.reserved, stats.delayed), (0, 0, 1));
    /// # Ok(()) }
    /// ```
    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()>;

    /// The worker stops before the item's slots started: hands it back unchanged and ready
    /// at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// queue.release(&job).await?;
    /// assert_eq!(queue.peek("emails").await?.map(|again| again.id), Some(job.id));
    /// # Ok(()) }
    /// ```
    async fn release(&self, job: &Job) -> Result<()>;

    /// Slots still run at half the TTR: extends the reservation by the item's TTR, so that
    /// no second worker gets it meanwhile (see [`KeepAlive`] for how each backend does it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// queue.keep_alive(&job).await?; // another TTR from now
    /// queue.ack(&job).await?;
    /// # Ok(()) }
    /// ```
    async fn keep_alive(&self, job: &Job) -> Result<()>;

    /// No attempts left, or a payload no worker can read: moves the reserved item to the
    /// [failure store](Transport::failure_store). `body` and `options` are what
    /// [`FailureStore::retry`] puts back on its queue. The default checks the reservation
    /// still stands (a [`keep_alive`](Transport::keep_alive), which also gives the two steps
    /// that follow a whole TTR), stores the record, then acks the item; if the ack finds the
    /// reservation lost after all, the record is removed again (another worker has the
    /// message). A crash between the two steps leaves the message in both places, never in
    /// neither. Backends override it to do both at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// use mq::transport::Failure;
    ///
    /// let failure = Failure::new(Vec::new(), "not an envelope".into(), 1, std::time::SystemTime::now());
    /// queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
    /// assert_eq!(queue.stats().await?[0].failed, 1);
    /// # Ok(()) }
    /// ```
    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.keep_alive(job).await?;
        let store = self.failure_store();
        let record = store.store(&job.queue, body, options, failure).await?;
        match self.ack(job).await {
            Err(crate::Error::ReservationLost(id)) => {
                if let Err(error) = store.remove(record).await {
                    tracing::warn!(record, %error, "the reservation was lost while failing the item; its failure record stays (the message may also run again)");
                }
                Err(crate::Error::ReservationLost(id))
            }
            other => other,
        }
    }

    /// `mq stats`, `mq failed retry/remove --all` and the default failure store: counts per
    /// queue, for every queue the backend knows (a backend on [`QueuedFailures`] folds its
    /// record queues in with [`fold_failed_stats`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// queue.put("orders", "7".into(), PutOptions::default()).await?;
    /// let queues: Vec<String> = queue.stats().await?.into_iter().map(|s| s.queue).collect();
    /// assert_eq!(queues, ["emails", "orders"]);
    /// # Ok(()) }
    /// ```
    async fn stats(&self) -> Result<Vec<QueueStats>>;

    /// The backend server's own figures (version, uptime, connections, ...), named and
    /// formatted as the server reports them, in a stable order; empty for a backend
    /// without a server of its own. `mq stats` shows them below the queue counts.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// for (name, value) in queue.server_stats().await? {
    ///     println!("{name}: {value}");
    /// }
    /// assert!(queue.server_stats().await?.is_empty()); // memory:// has no server
    /// # Ok(()) }
    /// ```
    async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// `mq peek`: the next ready item of `queue`, without reserving it (its receipt is
    /// [`Receipt::none`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let next = queue.peek("emails").await?.expect("one ready");
    /// assert_eq!(&next.body[..], b"hello");
    /// assert_eq!(queue.stats().await?[0].ready, 1); // still ready
    /// # Ok(()) }
    /// ```
    async fn peek(&self, queue: &str) -> Result<Option<Job>>;

    /// `mq flush`: deletes every ready and delayed item of `queue`; returns how many.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// queue.put("emails", "a".into(), PutOptions::default()).await?;
    /// queue.put("emails", "b".into(), PutOptions::default().with_delay(Duration::from_secs(60))).await?;
    /// assert_eq!(queue.flush("emails").await?, 2);
    /// # Ok(()) }
    /// ```
    async fn flush(&self, queue: &str) -> Result<u64>;
}

/// A transport as [`Any`], so that code which knows one backend can reach it (dispatch inside
/// a PostgreSQL transaction); every transport has it. Call it on the transport, not on its
/// `Arc`: `bus.transport().as_ref().as_any()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, AsAny as _};
///
/// let bus = mq::Bus::connect("memory://as-any-doc").await?;
/// let memory = bus.transport().as_ref().as_any().downcast_ref::<MemoryTransport>();
/// assert!(memory.is_some());
/// # Ok(()) }
/// ```
pub trait AsAny {
    /// `self` as `&dyn Any`.
    ///
    /// ```
    /// use mq::transport::{memory::MemoryTransport, AsAny as _, Transport};
    ///
    /// let transport: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// assert!(transport.as_ref().as_any().is::<MemoryTransport>());
    /// ```
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The URL used when `MQ_URL` is not set: an SQLite file in the working directory.
///
/// ```
/// std::env::remove_var("MQ_URL");
/// assert_eq!(mq::transport::url_from_env(), mq::transport::DEFAULT_URL);
/// assert_eq!(mq::transport::DEFAULT_URL, "sqlite://mq.db");
/// ```
pub const DEFAULT_URL: &str = "sqlite://mq.db";

/// Opens the transport a URL names: one of the [`scheme::compiled`] schemes, e.g.
/// `memory://[NAME]` (an in-process queue shared by every user of the same name in this
/// process), `sqlite://PATH`, `beanstalk://HOST[:PORT]`,
/// `nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][?replicas=N&ack_wait=DURATION&ca=PATH]`
/// (NATS JetStream, with the `nats` feature),
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]` (with the `postgres` feature).
///
/// # Errors
///
/// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a URL that names no backend of this build (saying which cargo
/// feature compiles it in, for one of mq's own) or is malformed; the backend's own errors
/// when it cannot be opened or reached.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("mq.db").display());
/// let transport = mq::transport::connect(&url).await?;
/// assert!(transport.describe().ends_with("mq.db"));
/// assert!(matches!(
///     mq::transport::connect("amqp://127.0.0.1").await,
///     Err(mq::Error::InvalidUrl { .. })
/// ));
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Transport>> {
    scheme::lookup(url)?(url).await
}

/// Like [`connect`], but creates nothing: a queue whose storage is not there yet (an
/// `sqlite://` file) is an error naming where it looked, instead of a new, empty queue. For
/// tools that inspect queues (`mq stats`, `mq failed`); backends on a server open as
/// [`connect`] does.
///
/// # Errors
///
/// As [`connect`]; [`Error::Sqlite`](crate::Error::Sqlite) with the absolute path when the
/// file does not exist.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("mq.db").display());
/// assert!(mq::transport::connect_existing(&url).await.is_err()); // no file yet, none made
/// mq::transport::connect(&url).await?;
/// assert!(mq::transport::connect_existing(&url).await.is_ok());
/// # Ok(()) }
/// ```
pub async fn connect_existing(url: &str) -> Result<Arc<dyn Transport>> {
    scheme::lookup_existing(url)?(url).await
}

/// `url` with its user information (`user:password@`) replaced by `***@`, for logs.
///
/// ```
/// use mq::transport::redacted;
///
/// assert_eq!(redacted("postgres://app:secret@db/shop"), "postgres://***@db/shop");
/// assert_eq!(redacted("beanstalk://127.0.0.1:11300"), "beanstalk://127.0.0.1:11300");
/// ```
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // A path (`sqlite:///srv/a@b/mq.db`) has no user information. Otherwise everything up
    // to the last `@` before the query is hidden, so a password with an unescaped `/` is too.
    if rest.starts_with('/') {
        return url.to_owned();
    }
    let before_query = rest.find('?').unwrap_or(rest.len());
    match rest[..before_query].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The URL from `MQ_URL`, or [`DEFAULT_URL`].
///
/// ```
/// std::env::set_var("MQ_URL", "beanstalk://10.0.0.5");
/// assert_eq!(mq::transport::url_from_env(), "beanstalk://10.0.0.5");
/// std::env::set_var("MQ_URL", ""); // empty is unset
/// assert_eq!(mq::transport::url_from_env(), "sqlite://mq.db");
/// ```
pub fn url_from_env() -> String {
    std::env::var("MQ_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_hides_user_information_only() {
        assert_eq!(
            super::redacted("nats://me:secret@10.0.0.1:4222,10.0.0.2:4222"),
            "nats://***@10.0.0.1:4222,10.0.0.2:4222"
        );
        assert_eq!(
            super::redacted("beanstalk://127.0.0.1:11300"),
            "beanstalk://127.0.0.1:11300"
        );
        assert_eq!(
            super::redacted("sqlite:///srv/a@b/mq.db"),
            "sqlite:///srv/a@b/mq.db"
        );
        assert_eq!(super::redacted("memory://"), "memory://");
        assert_eq!(
            super::redacted("nats://u:pa/ss@h:4222"),
            "nats://***@h:4222"
        );
    }
}
