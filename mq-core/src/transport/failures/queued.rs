//! The default failure store: records kept as items of the backend's own queues, one
//! queue `mq-failed.QUEUE` per queue, read by reserving them all and handing them back.
//!
//! It needs nothing of a backend but [`Transport`]'s own operations, so a new backend has a
//! working `mq failed` from its first line. Its one requirement: the backend's
//! [`Transport::stats`] folds the record queues into `failed` counts with
//! [`fold_failed_stats`] (`mq failed retry --all` counts on them).
//!
//! Reading reserves every record for a moment and hands them all back, on every path, errors
//! included (if the process dies meanwhile, they come back after their TTR). So two readers
//! at the same instant may see part of the store each: a `show`, `retry` or `remove` that
//! does not find its record while others are reserved looks again for up to a second, and a
//! `list` may come back short. Each read costs one pass over the whole store. A backend whose
//! server can read without reserving (a table, a stream) should implement [`FailureStore`]
//! itself.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::record::Record;
use super::FailureStore;
use crate::transport::{FailedMessage, Failure, Job, PutOptions, QueueStats, Transport};
use crate::{Error, Result};

/// Where the default store keeps the records of queue `Q`: the queue `mq-failed.Q`.
///
/// ```
/// use mq::transport::FAILED_QUEUE_PREFIX;
///
/// assert_eq!(format!("{FAILED_QUEUE_PREFIX}emails"), "mq-failed.emails");
/// ```
pub const FAILED_QUEUE_PREFIX: &str = "mq-failed.";

/// How many records one reservation round takes.
const ROUND: usize = 256;

/// How long a round waits for its first record: a backend may answer a zero wait with
/// nothing while records are there.
const ROUND_WAIT: Duration = Duration::from_millis(20);

/// How often a record not found while other records were reserved (another reader) is
/// looked for again, a twentieth of a second apart.
const LOOK_AGAIN: u32 = 20;

/// Refuses a queue name inside the failure store's namespace (`mq-failed.`): a message
/// dispatched there, or a worker consuming it, would mix with failure records. Checked at
/// dispatch, by `mq publish` and at worker start-up, on every backend.
///
/// ```
/// use mq::transport::check_queue_name;
///
/// assert!(check_queue_name("emails").is_ok());
/// assert!(matches!(check_queue_name("mq-failed.emails"), Err(mq::Error::Config(_))));
/// ```
pub fn check_queue_name(queue: &str) -> Result<()> {
    match queue.strip_prefix(FAILED_QUEUE_PREFIX) {
        Some(owner) => Err(Error::Config(format!(
            "queue `{queue}` starts with `{FAILED_QUEUE_PREFIX}`, which mq keeps for the \
             failure store (the failed messages of queue `{owner}`); choose another queue name"
        ))),
        None => Ok(()),
    }
}

/// Folds the record queues of `stats` into the `failed` counts of the queues they belong
/// to: what a backend on [`QueuedFailures`] returns from [`Transport::stats`].
///
/// ```
/// use mq::transport::{fold_failed_stats, QueueStats};
///
/// let mut emails = QueueStats::new("emails");
/// emails.ready = 5;
/// let mut records = QueueStats::new("mq-failed.emails");
/// records.ready = 2;
/// let folded = fold_failed_stats(vec![records, emails]);
/// assert_eq!(folded.len(), 1);
/// assert_eq!((folded[0].queue.as_str(), folded[0].ready, folded[0].failed), ("emails", 5, 2));
/// ```
pub fn fold_failed_stats(stats: Vec<QueueStats>) -> Vec<QueueStats> {
    let (records, mut queues): (Vec<_>, Vec<_>) = stats
        .into_iter()
        .partition(|counts| counts.queue.starts_with(FAILED_QUEUE_PREFIX));
    for counts in records {
        let queue = &counts.queue[FAILED_QUEUE_PREFIX.len()..];
        let failed = counts.ready + counts.reserved + counts.delayed;
        match queues.iter_mut().find(|q| q.queue == queue) {
            Some(q) => q.failed += failed,
            None => queues.push(QueueStats {
                failed,
                ..QueueStats::new(queue)
            }),
        }
    }
    queues.sort_by(|a, b| a.queue.cmp(&b.queue));
    queues
}

/// The default failure store of `transport` (see the module doc).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, FailureStore as _, QueuedFailures};
///
/// let queue = MemoryTransport::new();
/// let store = QueuedFailures::new(&*queue);
/// assert!(store.list(None, 10).await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct QueuedFailures<'a, T: ?Sized> {
    transport: &'a T,
}

impl<'a, T: Transport + ?Sized> QueuedFailures<'a, T> {
    /// The store whose records live on `transport`'s queues.
    ///
    /// ```
    /// use mq::transport::{FailureStore, QueuedFailures, Transport};
    ///
    /// /// What a backend without a store of its own returns from `Transport::failure_store`.
    /// fn failure_store(transport: &dyn Transport) -> Box<dyn FailureStore + '_> {
    ///     Box::new(QueuedFailures::new(transport))
    /// }
    /// ```
    pub fn new(transport: &'a T) -> QueuedFailures<'a, T> {
        QueuedFailures { transport }
    }

    /// The record queues of `queue`, or of every queue the backend knows.
    async fn record_queues(&self, queue: Option<&str>) -> Result<Vec<String>> {
        if let Some(queue) = queue {
            return Ok(vec![format!("{FAILED_QUEUE_PREFIX}{queue}")]);
        }
        let mut queues: Vec<String> = self
            .transport
            .stats()
            .await?
            .into_iter()
            .filter(|counts| counts.failed > 0 || counts.queue.starts_with(FAILED_QUEUE_PREFIX))
            .map(
                |counts| match counts.queue.strip_prefix(FAILED_QUEUE_PREFIX) {
                    Some(_) => counts.queue,
                    None => format!("{FAILED_QUEUE_PREFIX}{}", counts.queue),
                },
            )
            .collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    /// Reserves every record of `queue` (or of all queues), oldest first; on an error, hands
    /// back what it had reserved.
    async fn reserve_all(&self, queue: Option<&str>) -> Result<Vec<Job>> {
        let queues = self.record_queues(queue).await?;
        let mut records = Vec::new();
        if queues.is_empty() {
            return Ok(records);
        }
        loop {
            match self.transport.reserve(&queues, ROUND, ROUND_WAIT).await {
                Ok(round) if round.is_empty() => break,
                Ok(round) => records.extend(round),
                Err(error) => {
                    self.hand_back(&records).await;
                    return Err(error);
                }
            }
        }
        records.sort_by_key(|job| job.id);
        Ok(records)
    }

    /// Hands back every record in `records`; what cannot be handed back returns after its
    /// TTR.
    async fn hand_back(&self, records: &[Job]) {
        for job in records {
            if let Err(error) = self.transport.release(job).await {
                tracing::warn!(record = job.id, %error, "could not hand back a failure record; it returns after its TTR");
            }
        }
    }

    /// Whether any record is reserved (by another reader of the store).
    async fn others_reading(&self) -> Result<bool> {
        Ok(self
            .transport
            .stats()
            .await?
            .iter()
            .any(|counts| counts.queue.starts_with(FAILED_QUEUE_PREFIX) && counts.reserved > 0))
    }

    /// Takes record `id` out of the others, handing those back; looks again while another
    /// reader holds records.
    async fn take(&self, id: u64) -> Result<Option<(Job, Record)>> {
        let mut looks = 0;
        loop {
            let mut records = self.reserve_all(None).await?;
            let found = records
                .iter()
                .position(|job| job.id == id)
                .map(|at| records.remove(at));
            self.hand_back(&records).await;
            if let Some(job) = found {
                return match serde_json::from_slice::<Record>(&job.body) {
                    Ok(record) => Ok(Some((job, record))),
                    Err(error) => {
                        self.hand_back(std::slice::from_ref(&job)).await;
                        Err(unreadable(id, &error))
                    }
                };
            }
            looks += 1;
            if looks > LOOK_AGAIN || !self.others_reading().await? {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn unreadable(id: u64, error: &serde_json::Error) -> Error {
    Error::Protocol {
        backend: "failure store",
        detail: format!("record {id} is not a failure record ({error})"),
    }
}

#[async_trait]
impl<T: Transport + ?Sized> FailureStore for QueuedFailures<'_, T> {
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64> {
        let record = Record::new(queue, &body, options, failure).encode();
        let record_options = PutOptions::default();
        self.transport
            .put(
                &format!("{FAILED_QUEUE_PREFIX}{queue}"),
                record.into(),
                record_options,
            )
            .await
    }

    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        let records = self.reserve_all(queue).await?;
        let listed = records
            .iter()
            .filter_map(|job| match serde_json::from_slice::<Record>(&job.body) {
                Ok(record) => Some(record.into_failed(job.id)),
                Err(error) => {
                    tracing::warn!(record = job.id, %error, "skipping an item of a failure queue that is not a failure record");
                    None
                }
            })
            .take(max)
            .collect();
        self.hand_back(&records).await;
        Ok(listed)
    }

    async fn show(&self, id: u64) -> Result<Option<FailedMessage>> {
        let Some((job, record)) = self.take(id).await? else {
            return Ok(None);
        };
        self.hand_back(std::slice::from_ref(&job)).await;
        Ok(Some(record.into_failed(id)))
    }

    async fn retry(&self, id: u64) -> Result<u64> {
        let (job, record) = self.take(id).await?.ok_or(Error::NotFound(id))?;
        let failed = record.into_failed(id);
        let options = failed.options.with_delay(Duration::ZERO);
        match self
            .transport
            .put(&failed.queue, failed.body, options)
            .await
        {
            Ok(new_id) => {
                self.transport.ack(&job).await?;
                Ok(new_id)
            }
            Err(error) => {
                let _ = self.transport.release(&job).await;
                Err(error)
            }
        }
    }

    async fn remove(&self, id: u64) -> Result<bool> {
        let Some((job, _)) = self.take(id).await? else {
            return Ok(false);
        };
        if let Err(error) = self.transport.ack(&job).await {
            self.hand_back(std::slice::from_ref(&job)).await;
            return Err(error);
        }
        Ok(true)
    }
}
