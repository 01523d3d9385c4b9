//! A transport that notes every message put on it, then passes the call to the one it wraps.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::envelope::Envelope;
use crate::transport::{
    Capabilities, Debounce, Failure, FailureStore, Job, Put, PutOptions, QueueStats, Unique,
};
use crate::{Message, Result, Transport};

/// One message put on a queue, as a [`RecordingBus`](super::RecordingBus) saw it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
/// # struct Welcome { to: String }
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// let bus = mq::testing::RecordingBus::new();
/// bus.dispatch(Welcome { to: "ada@example.com".into() }).await?;
/// let dispatched = &bus.dispatches()[0];
/// assert_eq!(dispatched.name, "Welcome");
/// assert_eq!(dispatched.body, r#"{"to":"ada@example.com"}"#);
/// assert_eq!((dispatched.queue.as_str(), dispatched.priority), ("default", 1024));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dispatched {
    /// The wire name (the envelope's `name`; empty for an item that is not an envelope).
    pub name: String,
    /// The message id.
    pub id: String,
    /// The queue it was put on.
    pub queue: String,
    /// The body as JSON text (for an item that is not an envelope, the whole item).
    pub body: String,
    /// The delay it was dispatched with.
    pub delay: Duration,
    /// Its priority.
    pub priority: u32,
}

impl Dispatched {
    fn of(queue: &str, bytes: &Bytes, options: PutOptions) -> Dispatched {
        let (name, id, body) = match Envelope::decode(bytes) {
            Ok(envelope) => (envelope.name, envelope.id, envelope.body.get().to_owned()),
            // Not an envelope (a raw put on the transport): the bytes as they are.
            Err(_) => (
                String::new(),
                String::new(),
                String::from_utf8_lossy(bytes).into_owned(),
            ),
        };
        Dispatched {
            name,
            id,
            queue: queue.to_owned(),
            body,
            delay: options.delay,
            priority: options.priority,
        }
    }

    /// True if this is a message of type `M` (by wire name).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Welcome { to: "ada@example.com".into() }).await?;
    /// let dispatched = &bus.dispatches()[0];
    /// assert!(dispatched.is::<Welcome>());
    /// assert!(!dispatched.is::<Ping>());
    /// # Ok(()) }
    /// ```
    pub fn is<M: Message>(&self) -> bool {
        self.name == M::NAME
    }

    /// The body as an `M`, or why it does not decode as one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch(Welcome { to: "ada@example.com".into() }).await?;
    /// let dispatched = &bus.dispatches()[0];
    /// let welcome: Welcome = dispatched.decode()?;
    /// assert_eq!(welcome, Welcome { to: "ada@example.com".into() });
    /// assert!(dispatched.decode::<Ping>().is_err()); // `Ping` is a unit struct
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The text of serde's error, when the body is not an `M` (another type of the same wire
    /// name, or an `M` whose `Serialize` and `Deserialize` disagree).
    pub fn decode<M: Message>(&self) -> std::result::Result<M, String> {
        M::decode_body(&self.body).map_err(|error| {
            format!(
                "the body of `{}` {} does not decode as `{}`: {error}",
                self.name,
                self.body,
                std::any::type_name::<M>()
            )
        })
    }
}

/// The recording transport.
#[derive(Debug)]
pub(super) struct Recorder {
    inner: Arc<dyn Transport>,
    log: Mutex<Vec<Dispatched>>,
}

impl Recorder {
    pub(super) fn new(inner: Arc<dyn Transport>) -> Recorder {
        Recorder {
            inner,
            log: Mutex::default(),
        }
    }

    pub(super) fn log(&self) -> MutexGuard<'_, Vec<Dispatched>> {
        // Every change is one push or one clear: a poisoned log is still whole.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Transport for Recorder {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        self.inner.failure_store()
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        let dispatched = Dispatched::of(queue, &body, options);
        let id = self.inner.put(queue, body, options).await?;
        self.log().push(dispatched);
        Ok(id)
    }

    async fn put_unique(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        let dispatched = Dispatched::of(queue, &body, options);
        let put = self.inner.put_unique(queue, body, options, unique).await?;
        if matches!(put, Put::Queued(_)) {
            self.log().push(dispatched);
        }
        Ok(put)
    }

    async fn put_debounced(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        debounce: &Debounce,
    ) -> Result<Put> {
        let dispatched = Dispatched::of(queue, &body, options);
        let put = self
            .inner
            .put_debounced(queue, body, options, debounce)
            .await?;
        self.log().push(dispatched);
        Ok(put)
    }

    async fn acquire_permit(&self, key: &str, limit: u32, lease: Duration) -> Result<Option<u64>> {
        self.inner.acquire_permit(key, limit, lease).await
    }

    async fn release_permit(&self, key: &str, token: u64) -> Result<()> {
        self.inner.release_permit(key, token).await
    }

    async fn renew_permit(&self, key: &str, token: u64, lease: Duration) -> Result<bool> {
        self.inner.renew_permit(key, token, lease).await
    }

    async fn note_schedule(&self, note: &crate::transport::ScheduleNote) -> Result<()> {
        self.inner.note_schedule(note).await
    }

    async fn schedule_notes(&self) -> Result<Vec<crate::transport::ScheduleNote>> {
        self.inner.schedule_notes().await
    }

    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        let seen: Vec<Dispatched> = bodies
            .iter()
            .map(|body| Dispatched::of(queue, body, options))
            .collect();
        let answers = self.inner.put_many(queue, bodies, options).await?;
        let mut log = self.log();
        for (dispatched, answer) in seen.into_iter().zip(&answers) {
            if answer.is_ok() {
                log.push(dispatched);
            }
        }
        Ok(answers)
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        self.inner.reserve(queues, max, timeout).await
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        self.inner.ack(job).await
    }

    async fn send_ack(&self, job: &Job) -> Result<()> {
        self.inner.send_ack(job).await
    }

    async fn acks_answered(&self) {
        self.inner.acks_answered().await;
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        self.inner.retry(job, body, options).await
    }

    async fn release(&self, job: &Job) -> Result<()> {
        self.inner.release(job).await
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        self.inner.keep_alive(job).await
    }

    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.inner.fail(job, body, options, failure).await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.inner.stats().await
    }

    async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        self.inner.server_stats().await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        self.inner.browse(queue, after, limit).await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        self.inner.peek(queue).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        self.inner.flush(queue).await
    }
}
