//! `sqlite://PATH`: the embedded default, a durable queue in one SQLite file.
//!
//! No server: a worker and any number of producers, in as many processes as you like, share
//! one file. The file is in WAL mode, so readers never wait for the writer and a commit is
//! one append to the `-wal` file. Each [`SqliteTransport`] runs its SQL on a thread of its own
//! (see `writer`), committing every operation that queued up meanwhile in one transaction.
//!
//! A reservation is a lease of the message's TTR: a worker that dies holding messages loses
//! nothing, they are handed out again once their lease ends. `keep_alive` renews it.
//!
//! Modules: `schema` (the versioned tables), `open` (path checks, pragmas, errors), `busy` (waiting
//! out locks SQLite does not wait for), `ops` (each operation as SQL), `writer` (the thread and its
//! group commit). The user-facing description, including how fast an idle worker sees a new
//! message, is [`guide::sqlite`](crate::guide::sqlite).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("mq.db").display());
//! let bus = mq::Bus::connect(&url).await?; // creates the file and its tables
//! # Ok(()) }
//! ```

mod busy;
mod debounce;
mod open;
mod ops;
mod permits;
mod room;
mod schedules;
mod schema;
mod unique;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::{
    Capabilities, Debounce, FailedMessage, Failure, FailureStore, Feature, Job, Put, PutOptions,
    QueueStats, ScheduleNote, Transport, Unique,
};
use crate::Result;
use writer::{Counted, Writer};

/// How an [`SqliteTransport`] uses its file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
/// use std::time::Duration;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("mq.db");
/// let options = SqliteOptions::default()
///     .busy_timeout(Duration::from_secs(10))
///     .max_size(1 << 30);
/// let queue = SqliteTransport::open_with(&path, options).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    busy_timeout: Duration,
    poll_interval: Duration,
    max_size: Option<u64>,
    create_if_missing: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(10),
            max_size: None,
            create_if_missing: true,
        }
    }
}

impl SqliteOptions {
    /// How long an operation waits for another process's write lock before it fails
    /// (default 5 s).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let options = SqliteOptions::default().busy_timeout(Duration::from_secs(30));
    /// let queue = SqliteTransport::open_with(&path, options).await?;
    /// # Ok(()) }
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How often an idle `reserve` checks for messages committed by other processes
    /// (default 10 ms). Messages put through the same transport wake it at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// // A worker that may see other processes' messages up to 100 ms late, and looks less often.
    /// let options = SqliteOptions::default().poll_interval(Duration::from_millis(100));
    /// let queue = SqliteTransport::open_with(&path, options).await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The largest the database file may grow, in bytes (default: no limit). Near it, puts
    /// fail with a "disk full" [`Error::Sqlite`](crate::Error::Sqlite) while reservations and
    /// acks go on, on the room kept free for them (an eighth of the limit, at most 4 MiB).
    /// Without a limit, the same happens when less than 4 MiB is free on the file system.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let options = SqliteOptions::default().max_size(256 << 20); // 256 MiB
    /// let queue = SqliteTransport::open_with(&path, options).await?;
    /// # Ok(()) }
    /// ```
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Whether opening a path where no file is creates a new, empty queue there (default
    /// `true`, as a worker or producer wants). With `false` a missing file is an
    /// [`Error::Sqlite`](crate::Error::Sqlite) naming its absolute path: for tools that
    /// inspect a queue, such as `mq stats`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let look_only = SqliteOptions::default().create_if_missing(false);
    /// assert!(SqliteTransport::open_with(&path, look_only.clone()).await.is_err());
    /// SqliteTransport::open(&path).await?; // makes the file
    /// assert!(SqliteTransport::open_with(&path, look_only).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }
}

/// An SQLite file used as a queue.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{sqlite::SqliteTransport, PutOptions, Transport};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("mq.db");
/// let queue = SqliteTransport::open(&path).await?;
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// let jobs = queue.reserve(&["emails".into()], 10, std::time::Duration::ZERO).await?;
/// queue.ack(&jobs[0]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SqliteTransport {
    path: PathBuf,
    writer: Writer,
}

impl SqliteTransport {
    /// Opens the queue file at `path`, creating it and its schema if needed. A relative path
    /// is relative to the working directory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let queue = SqliteTransport::open(&path).await?;
    /// let missing = SqliteTransport::open(dir.path().join("no/such/folder/mq.db")).await;
    /// assert!(matches!(missing, Err(mq::Error::Sqlite { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Sqlite`](crate::Error::Sqlite) naming the file when its folder does not exist,
    /// it is read-only, it is not an SQLite database or not an mq queue, or SQLite fails.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteTransport> {
        SqliteTransport::open_with(path, SqliteOptions::default()).await
    }

    /// Like [`open`](SqliteTransport::open), with options.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let options = SqliteOptions::default().busy_timeout(Duration::from_secs(1));
    /// let queue = SqliteTransport::open_with(&path, options).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`open`](SqliteTransport::open).
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteTransport> {
        let path = open::resolve(path.as_ref())?;
        let writer = Writer::start(path.clone(), options).await?;
        Ok(SqliteTransport { path, writer })
    }

    /// The absolute path of the file.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("mq.db");
    /// let queue = SqliteTransport::open(&path).await?;
    /// assert!(queue.path().is_absolute());
    /// assert_eq!(queue.path().file_name(), path.file_name());
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `sqlite://PATH`: one transport per file and process, shared by every caller, so that a
/// bus and a worker in one process share one writer thread and wake each other at once.
/// `options` apply when this call opens the file (not when it is open already).
pub(crate) async fn connect(path: &str, options: SqliteOptions) -> Result<Arc<dyn Transport>> {
    type Open = tokio::sync::Mutex<HashMap<PathBuf, Weak<SqliteTransport>>>;
    static OPEN: OnceLock<Open> = OnceLock::new();
    let resolved = open::resolve(Path::new(path))?;
    let mut open = OPEN.get_or_init(Open::default).lock().await;
    open.retain(|_, transport| transport.strong_count() > 0);
    if let Some(transport) = open.get(&resolved).and_then(Weak::upgrade) {
        return Ok(transport);
    }
    let transport = Arc::new(SqliteTransport::open_with(&resolved, options).await?);
    open.insert(resolved, Arc::downgrade(&transport));
    Ok(transport)
}

#[async_trait]
impl Transport for SqliteTransport {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// Exact priorities, millisecond delays, no size limit of its own (SQLite's is a
    /// gigabyte), a lease renewed by the item's TTR.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_feature(Feature::Unique)
            .with_feature(Feature::KeyLimits)
            .with_feature(Feature::Debounce)
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(Failures(&self.writer))
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        let queue = queue.to_owned();
        self.writer
            .put(move |db| ops::put_new(db, &queue, &body, &options))
            .await
    }

    async fn put_unique(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        let queue = queue.to_owned();
        let unique = unique.clone();
        self.writer
            .put(move |db| unique::put(db, &queue, &body, &options, &unique))
            .await
    }

    async fn put_debounced(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        debounce: &Debounce,
    ) -> Result<Put> {
        let queue = queue.to_owned();
        let debounce = debounce.clone();
        self.writer
            .put(move |db| debounce::put(db, &queue, &body, &options, &debounce))
            .await
    }

    async fn acquire_permit(&self, key: &str, limit: u32, lease: Duration) -> Result<Option<u64>> {
        let key = key.to_owned();
        self.writer
            .call(move |db| permits::acquire(db, &key, limit, lease))
            .await
    }

    async fn release_permit(&self, key: &str, token: u64) -> Result<()> {
        let key = key.to_owned();
        self.writer
            .call(move |db| permits::release(db, &key, token))
            .await
    }

    async fn renew_permit(&self, key: &str, token: u64, lease: Duration) -> Result<bool> {
        let key = key.to_owned();
        self.writer
            .call(move |db| permits::renew(db, &key, token, lease))
            .await
    }

    /// All or none: the rows go in with one transaction.
    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        let queue = queue.to_owned();
        self.writer
            .put(move |db| ops::put_all(db, &queue, &bodies, &options))
            .await
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        let start = Instant::now();
        // A timeout too large for the clock waits "forever": a year.
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let shared = self.writer.shared();
        let _waiting = Counted::waiting(shared);
        let queues: Arc<[String]> = queues.into();
        let max = max.max(1);
        loop {
            let changed = shared.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let reserved = {
                let queues = queues.clone();
                self.writer
                    .reserve(move |db| ops::reserve(db, &queues, max))
                    .await?
            };
            if !reserved.jobs.is_empty() {
                return Ok(reserved.jobs);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = reserved.next_due.map_or(deadline, |due| {
                let wait = u64::try_from(due.saturating_sub(ops::now_ms())).unwrap_or(0);
                now.checked_add(Duration::from_millis(wait))
                    .map_or(deadline, |at| at.min(deadline))
            });
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        let job = job.clone();
        self.writer.call(move |db| ops::ack(db, &job)).await
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        let job = job.clone();
        self.writer
            .call(move |db| ops::retry(db, &job, &body, &options))
            .await
    }

    async fn release(&self, job: &Job) -> Result<()> {
        let (id, deliveries) = (job.id, ops::token(job)?);
        self.writer
            .call(move |db| ops::release(db, id, deliveries))
            .await
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        let job = job.clone();
        self.writer.call(move |db| ops::keep_alive(db, &job)).await
    }

    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        let job = job.clone();
        self.writer
            .call(move |db| ops::fail(db, &job, &body, &options, &failure))
            .await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.writer.call(ops::stats).await
    }

    async fn note_schedule(&self, note: &ScheduleNote) -> Result<()> {
        let note = note.clone();
        self.writer.call(move |db| schedules::note(db, &note)).await
    }

    async fn schedule_notes(&self) -> Result<Vec<ScheduleNote>> {
        self.writer.call(schedules::list).await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        let queue = queue.to_owned();
        self.writer
            .call(move |db| ops::browse(db, &queue, after, limit))
            .await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        let queue = queue.to_owned();
        self.writer.call(move |db| ops::peek(db, &queue)).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_owned();
        self.writer.call(move |db| ops::flush(db, &queue)).await
    }
}

/// The failure store of an SQLite queue: the table `mq_failed`.
struct Failures<'a>(&'a Writer);

#[async_trait]
impl FailureStore for Failures<'_> {
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64> {
        let queue = queue.to_owned();
        self.0
            .call(move |db| ops::store_failed(db, &queue, &body, &options, &failure).map(Ok))
            .await
    }

    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        let queue = queue.map(str::to_owned);
        self.0
            .call(move |db| ops::failed_list(db, queue.as_deref(), max))
            .await
    }

    async fn show(&self, id: u64) -> Result<Option<FailedMessage>> {
        self.0.call(move |db| ops::failed_show(db, id)).await
    }

    async fn retry(&self, id: u64) -> Result<u64> {
        self.0.call(move |db| ops::failed_retry(db, id)).await
    }

    async fn remove(&self, id: u64) -> Result<bool> {
        self.0.call(move |db| ops::failed_remove(db, id)).await
    }
}
