//! The failure store: where a message goes after its last attempt (or when no worker can
//! read it), and what `mq failed list/show/retry/remove` work on.
//!
//! A backend with a store of its own (SQLite's table, beanstalkd's buried tubes, NATS's
//! stream) implements [`FailureStore`]; any other gets [`QueuedFailures`], which keeps the
//! records as items of the backend's own queues.

use async_trait::async_trait;
use bytes::Bytes;

use super::PutOptions;
use crate::Result;

mod failure;
mod queued;
pub(crate) mod record;

pub use failure::{FailedMessage, Failure, SlotFailure};
pub use queued::{check_queue_name, fold_failed_stats, QueuedFailures, FAILED_QUEUE_PREFIX};

/// The failure store of a backend.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
/// # use std::time::{Duration, SystemTime};
/// # let queue = MemoryTransport::new();
/// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
/// # let failure = Failure::new(Vec::new(), "smtp timeout".into(), 4, SystemTime::now());
/// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
/// // After a message failed on `emails`:
/// let store = queue.failure_store();
/// for failed in store.list(None, 100).await? {
///     println!("{} {}: {}", failed.id, failed.queue, failed.failure.reason);
/// }
/// # Ok(()) }
/// ```
#[async_trait]
pub trait FailureStore: Send + Sync {
    /// [`Transport::fail`](super::Transport::fail)'s default: keeps a failed message of
    /// `queue`; `body` and `options` are what [`retry`](FailureStore::retry) puts back.
    /// Returns the entry's id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
    /// use std::time::SystemTime;
    ///
    /// let queue = MemoryTransport::new();
    /// let failure = Failure::new(Vec::new(), "imported by hand".into(), 1, SystemTime::now());
    /// let store = queue.failure_store();
    /// let id = store.store("emails", "hello".into(), PutOptions::default(), failure).await?;
    /// assert!(store.show(id).await?.is_some());
    /// # Ok(()) }
    /// ```
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64>;

    /// `mq failed list`: the entries, of `queue` or of all queues, oldest first, at most
    /// `max`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
    /// # use std::time::{Duration, SystemTime};
    /// # let queue = MemoryTransport::new();
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// # let failure = Failure::new(Vec::new(), "smtp timeout".into(), 4, SystemTime::now());
    /// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
    /// let store = queue.failure_store();
    /// let failed = store.list(Some("emails"), 10).await?;
    /// assert_eq!((failed.len(), failed[0].failure.reason.as_str()), (1, "smtp timeout"));
    /// assert!(store.list(Some("orders"), 10).await?.is_empty());
    /// # Ok(()) }
    /// ```
    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>>;

    /// `mq failed show`: one entry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
    /// # use std::time::{Duration, SystemTime};
    /// # let queue = MemoryTransport::new();
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// # let failure = Failure::new(Vec::new(), "smtp timeout".into(), 4, SystemTime::now());
    /// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
    /// let store = queue.failure_store();
    /// let id = store.list(None, 1).await?[0].id;
    /// let entry = store.show(id).await?.expect("stored");
    /// assert_eq!(&entry.body[..], b"hello");
    /// # Ok(()) }
    /// ```
    async fn show(&self, id: u64) -> Result<Option<FailedMessage>>;

    /// `mq failed retry`: puts a failed message back on its queue, ready at once, and
    /// removes it from the store; returns the new item's id, or
    /// [`Error::NotFound`](crate::Error::NotFound).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
    /// # use std::time::{Duration, SystemTime};
    /// # let queue = MemoryTransport::new();
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// # let failure = Failure::new(Vec::new(), "smtp timeout".into(), 4, SystemTime::now());
    /// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
    /// let store = queue.failure_store();
    /// let id = store.list(None, 1).await?[0].id;
    /// store.retry(id).await?;
    /// assert!(store.list(None, 10).await?.is_empty());
    /// assert_eq!(queue.stats().await?[0].ready, 1); // back on `emails`
    /// assert!(matches!(store.retry(id).await, Err(mq::Error::NotFound(_))));
    /// # Ok(()) }
    /// ```
    async fn retry(&self, id: u64) -> Result<u64>;

    /// `mq failed remove`: removes an entry; false if there was none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Failure, PutOptions, Transport};
    /// # use std::time::{Duration, SystemTime};
    /// # let queue = MemoryTransport::new();
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// # let failure = Failure::new(Vec::new(), "smtp timeout".into(), 4, SystemTime::now());
    /// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
    /// let store = queue.failure_store();
    /// let id = store.list(None, 1).await?[0].id;
    /// assert!(store.remove(id).await?);
    /// assert!(!store.remove(id).await?);
    /// # Ok(()) }
    /// ```
    async fn remove(&self, id: u64) -> Result<bool>;
}
