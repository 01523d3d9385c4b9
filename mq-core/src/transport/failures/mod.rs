//! The failure store: where a message goes after its last attempt (or when no worker can
//! read it), and what `mq failed list/show/retry/remove` work on.
//!
//! A backend with a store of its own (SQLite's table, beanstalkd's buried tubes, NATS's
//! stream) implements [`FailureStore`]; any other gets [`QueuedFailures`], which keeps the
//! records as items of the backend's own queues.

use async_trait::async_trait;
use bytes::Bytes;

use super::{FailedMessage, Failure, PutOptions};
use crate::Result;

mod queued;
pub(crate) mod record;

pub use queued::{check_queue_name, fold_failed_stats, QueuedFailures, FAILED_QUEUE_PREFIX};

/// The failure store of a backend.
#[async_trait]
pub trait FailureStore: Send + Sync {
    /// [`Transport::fail`](super::Transport::fail)'s default: keeps a failed message of
    /// `queue`; `body` and `options` are what [`retry`](FailureStore::retry) puts back.
    /// Returns the entry's id.
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64>;

    /// `mq failed list`: the entries, of `queue` or of all queues, oldest first, at most
    /// `max`.
    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>>;

    /// `mq failed show`: one entry.
    async fn show(&self, id: u64) -> Result<Option<FailedMessage>>;

    /// `mq failed retry`: puts a failed message back on its queue, ready at once, and
    /// removes it from the store; returns the new item's id, or
    /// [`Error::NotFound`](crate::Error::NotFound).
    async fn retry(&self, id: u64) -> Result<u64>;

    /// `mq failed remove`: removes an entry; false if there was none.
    async fn remove(&self, id: u64) -> Result<bool>;
}
