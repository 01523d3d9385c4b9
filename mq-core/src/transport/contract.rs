//! The [`Transport`] trait: the contract every backend keeps, one call per operation, with
//! the defaults a backend that lacks a feature inherits.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::capabilities::missing;
use super::{
    AsAny, Capabilities, Debounce, Failure, FailureStore, Feature, Job, Put, PutOptions,
    QueueStats, ScheduleNote, Unique,
};
use crate::Result;

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
    /// returns [`QueuedFailures::new(self)`](super::QueuedFailures::new).
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

    /// A unique dispatch: puts one item as [`put`](Transport::put) does unless another
    /// message holds `unique.key`, in which case it queues nothing and answers that message's
    /// id. The key is held from this put until the item is acked or failed (the replacement
    /// item of a [`retry`](Transport::retry) keeps it), then for `unique.hold_after`; the
    /// check and the put are one atomic step, across every process on the backend. Only a
    /// backend that declares [`Feature::Unique`] overrides it; the default refuses with an
    /// error that names the backends that can.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// use mq::transport::{Put, Unique};
    ///
    /// let first = Unique::new("Refund:7", "id-1");
    /// assert!(matches!(queue.put_unique("q", "a".into(), PutOptions::default(), &first).await?, Put::Queued(_)));
    /// let second = Unique::new("Refund:7", "id-2");
    /// assert_eq!(queue.put_unique("q", "b".into(), PutOptions::default(), &second).await?, Put::Existing("id-1".into()));
    /// let job = queue.reserve(&["q".into()], 1, Duration::ZERO).await?.remove(0);
    /// queue.ack(&job).await?; // the key is free again
    /// assert!(matches!(queue.put_unique("q", "b".into(), PutOptions::default(), &second).await?, Put::Queued(_)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) on a backend without
    /// [`Feature::Unique`]; otherwise as [`put`](Transport::put).
    async fn put_unique(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        let _ = (queue, body, options);
        let what = format!("unique key `{}`", unique.key);
        Err(missing(
            self,
            Feature::Unique,
            what,
            "this backend declares unique keys but does not implement put_unique",
        ))
    }

    /// A per-key concurrency limit: takes one of `limit` permits of `key` for `lease` (the
    /// message's TTR), if fewer than `limit` are taken, across every process on the backend;
    /// `None` when all are. A permit not released within its lease (a worker killed) is free
    /// again after it. Only a backend that declares [`Feature::KeyLimits`] overrides it; the
    /// default refuses with an error that names the backends that can.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// let lease = Duration::from_secs(60);
    /// let first = queue.acquire_permit("customer-7", 1, lease).await?.expect("one is free");
    /// assert!(queue.acquire_permit("customer-7", 1, lease).await?.is_none());
    /// queue.release_permit("customer-7", first).await?;
    /// assert!(queue.acquire_permit("customer-7", 1, lease).await?.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) on a backend without
    /// [`Feature::KeyLimits`]; the backend's error.
    async fn acquire_permit(&self, key: &str, limit: u32, lease: Duration) -> Result<Option<u64>> {
        let _ = (limit, lease);
        let what = format!("concurrency limit of key `{key}`");
        Err(missing(
            self,
            Feature::KeyLimits,
            what,
            "this backend declares key limits but does not implement acquire_permit",
        ))
    }

    /// Gives back the permit `token` of `key` that [`acquire_permit`](Transport::acquire_permit)
    /// took; one already gone (its lease ran out) is no error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Transport};
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// queue.release_permit("customer-7", 42).await?; // not taken: nothing to do
    /// # Ok(()) }
    /// ```
    async fn release_permit(&self, key: &str, token: u64) -> Result<()> {
        let _ = (key, token);
        Ok(())
    }

    /// Extends the permit `token` of `key` to `lease` from now, while the message that took
    /// it still runs (the worker's keep-alive calls it at the rate it renews the
    /// reservation), so that a slot running longer than its TTR does not free its key's
    /// permit early. `false` when the permit is gone (its lease ran out before the
    /// renewal). The default, for a backend without [`Feature::KeyLimits`], has none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// let lease = Duration::from_secs(60);
    /// let token = queue.acquire_permit("customer-7", 1, lease).await?.expect("one is free");
    /// assert!(queue.renew_permit("customer-7", token, lease).await?);
    /// queue.release_permit("customer-7", token).await?;
    /// assert!(!queue.renew_permit("customer-7", token, lease).await?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The backend's error.
    async fn renew_permit(&self, key: &str, token: u64, lease: Duration) -> Result<bool> {
        let _ = (key, token, lease);
        Ok(false)
    }

    /// Writes down a schedule a worker runs (see [`ScheduleNote`]), over the note of the
    /// same name; a `last` of `None` keeps the last tick noted before. For `mq schedules`.
    /// The default, for a backend that cannot run schedules (no [`Feature::Unique`]), keeps
    /// nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, ScheduleNote, Transport};
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// let tick = UNIX_EPOCH + Duration::from_secs(300);
    /// let note = ScheduleNote::new("poll", "Poll", "every 5m").last(Some(tick));
    /// queue.note_schedule(&note).await?;
    /// queue.note_schedule(&ScheduleNote::new("poll", "Poll", "every 5m")).await?;
    /// assert_eq!(queue.schedule_notes().await?[0].last, Some(tick)); // kept
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The backend's error.
    async fn note_schedule(&self, note: &ScheduleNote) -> Result<()> {
        let _ = note;
        Ok(())
    }

    /// The schedules the workers wrote down, by name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, Transport};
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// assert!(queue.schedule_notes().await?.is_empty()); // no worker ran a schedule yet
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) on a backend without
    /// [`Feature::Unique`] (no worker can run a schedule there), naming those that can; the
    /// backend's error.
    async fn schedule_notes(&self) -> Result<Vec<ScheduleNote>> {
        Err(missing(
            self,
            Feature::Unique,
            "listing schedules".to_owned(),
            "this backend runs schedules but does not implement schedule_notes",
        ))
    }

    /// A debounced dispatch: if a message put with `debounce.key` is still waiting (delayed,
    /// not yet ready), replaces its body by `body` and moves it to `debounce.quiet` from now,
    /// but no later than `debounce.max_wait` after the burst's first dispatch; otherwise puts
    /// `body` delayed by the quiet period, as the first of a new burst. Answers the item that
    /// carries `body`. Only a backend that declares [`Feature::Debounce`] overrides it; the
    /// default refuses with an error that names the backends that can.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// use mq::transport::Debounce;
    ///
    /// let debounce = Debounce::new("k", Duration::from_millis(50), Duration::from_secs(5));
    /// for body in ["a", "b", "c"] {
    ///     queue.put_debounced("q", body.into(), PutOptions::default(), &debounce).await?;
    /// }
    /// let jobs = queue.reserve(&["q".into()], 10, Duration::from_secs(1)).await?;
    /// assert_eq!(jobs.len(), 1);
    /// assert_eq!(&jobs[0].body[..], b"c");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) on a backend without
    /// [`Feature::Debounce`]; otherwise as [`put`](Transport::put).
    async fn put_debounced(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        debounce: &Debounce,
    ) -> Result<Put> {
        let _ = (queue, body, options);
        let what = format!("debounce key `{}`", debounce.key);
        Err(missing(
            self,
            Feature::Debounce,
            what,
            "this backend declares debounce but does not implement put_debounced",
        ))
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
    /// first, then by priority, then by age, each with the [`Receipt`](super::Receipt) that settles it. Waits
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

    /// The worker's ack: as [`ack`](Transport::ack), but a backend may return once the ack
    /// is on its way, before its answer, so that the finished message's task ends without
    /// being woken again. Such a backend logs an ack it refuses (the item comes back when
    /// its reservation runs out, as after any failed ack) and answers
    /// [`acks_answered`](Transport::acks_answered) only when every such ack has its answer.
    /// beanstalkd returns early, and PostgreSQL for an item of a held batch whose other
    /// items are still running (the commit comes with the last); the default waits for
    /// [`ack`](Transport::ack).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # use std::time::Duration;
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
    /// let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
    /// queue.send_ack(&job).await?;
    /// queue.acks_answered().await;
    /// assert!(queue.stats().await?.is_empty());
    /// # Ok(()) }
    /// ```
    async fn send_ack(&self, job: &Job) -> Result<()> {
        self.ack(job).await
    }

    /// Resolves once every ack [`send_ack`](Transport::send_ack) returned early for has its
    /// backend's answer: the worker waits for it before it returns. It covers the acks
    /// sent through this transport object, by whoever shares it. The default resolves at
    /// once.
    async fn acks_answered(&self) {}

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
    /// no second worker gets it meanwhile (see [`KeepAlive`](super::KeepAlive) for how each backend does it).
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
    /// queue, for every queue the backend knows (a backend on [`QueuedFailures`](super::QueuedFailures) folds its
    /// record queues in with [`fold_failed_stats`](super::fold_failed_stats)).
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
    /// [`Receipt::none`](super::Receipt::none)).
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

    /// `check` (and any tool that must see every queued item): up to `limit` items of
    /// `queue` whose id is above `after`, by ascending id, without reserving them (each with
    /// [`Receipt::none`](super::Receipt::none)). Ready and delayed items are listed, and reserved ones where the
    /// backend can see them; failure records are not (read them through
    /// [`failure_store`](Transport::failure_store)). Page through a queue by passing the last
    /// id of one page as `after` of the next; an empty page is the end. What a backend pays
    /// for it is in its module doc (beanstalkd cannot list a tube: it peeks every job id).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
    /// # let queue: std::sync::Arc<dyn Transport> = MemoryTransport::named("doc");
    /// for body in ["a", "b", "c"] {
    ///     queue.put("emails", body.into(), PutOptions::default()).await?;
    /// }
    /// let first = queue.browse("emails", 0, 2).await?;
    /// assert_eq!(first.iter().map(|job| &job.body[..]).collect::<Vec<_>>(), [b"a", b"b"]);
    /// let rest = queue.browse("emails", first[1].id, 2).await?;
    /// assert_eq!(rest.len(), 1);
    /// assert!(queue.browse("emails", rest[0].id, 2).await?.is_empty());
    /// # Ok(()) }
    /// ```
    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>>;
}
