//! What travels through the seam: how an item is put ([`PutOptions`]), a reserved item
//! ([`Job`]) with its backend's opaque [`Receipt`], and a queue's counts ([`QueueStats`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Result;

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
