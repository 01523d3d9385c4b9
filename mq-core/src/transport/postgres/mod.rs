//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]`: a queue in PostgreSQL
//! (12 or newer), on sqlx.
//!
//! Items are rows of `<schema>.mq_messages` (schema `mq` unless the URL names one); failed
//! messages are rows of `<schema>.mq_failed`. How each operation maps:
//!
//! - `put`: one `INSERT` that also sends `pg_notify`; `put_many`: one transaction.
//! - `reserve`: per queue of the list (until the batch is full), `SELECT ... FOR UPDATE
//!   SKIP LOCKED` of the rows whose lease ran out, then of the due delayed rows, then of the
//!   ready rows by priority and id. The batch is held by the transaction of that select,
//!   left open on a connection of its own for at most `?hold=` (see `hold`); past that, or
//!   with too many batches open, the rows are leased instead: an `UPDATE` to `reserved`
//!   with a lease of the item's TTR and `deliveries + 1`. With nothing reservable it waits
//!   for a NOTIFY (see `listen`), the next delayed item or lease of its queues, or its
//!   timeout.
//! - Settling an item of a held batch happens in its transaction (the acks in one
//!   `DELETE` with the commit); settling a leased one touches the row only while it is
//!   still reserved with the receipt's token (the deliveries count), else
//!   [`Error::ReservationLost`]; retry and fail are one
//!   statement each (delete and insert), so a crash leaves neither half.
//! - A worker killed at any instant loses nothing: its transactions roll back when its
//!   connections close, its leases run out, and the rows are reserved again.
//!
//! `reserve` is cancel safe: the statement runs in a task of its own, and reservations
//! whose caller went away before receiving them are handed back at once (ready, the
//! delivery not counted), not left to their TTR.
//!
//! Dispatch inside the application's own transaction is `Dispatch::within` (it calls
//! `PostgresTransport::put_within`); with the bus on a broker and a schema as its outbox,
//! the same call writes there, and [`crate::relay`] moves the rows to the broker. Not yet:
//! TLS (the connection is plain TCP; use a trusted network).
//!
//! Modules: `url` (the URL and its options), `error` (sqlx's errors told for people), `schema` (the
//! versioned migrations), `ops` (each operation as SQL), `hold` (batches held by an open
//! transaction), `acks` (the acks of leases gathered into one statement), `listen` (waking idle
//! reservers), `failed` (the failure store), `outbox` (taking rows for a relay to a broker). The
//! user-facing description is [`guide::postgres`](crate::guide::postgres).
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! let bus = mq::Bus::connect("postgres://app@db.internal/shop?schema=jobs").await?;
//! # Ok(()) }
//! ```

mod acks;
mod debounce;
mod error;
mod failed;
mod hold;
mod listen;
mod ops;
mod outbox;
mod permits;
mod schedules;
mod schema;
mod sql;
mod unique;
mod url;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{
    Capabilities, Debounce, Failure, FailureStore, Feature, Job, Put, PutOptions, QueueStats,
    ScheduleNote, Transport, Unique,
};
use crate::transport::unanswered::Unanswered;
use crate::{Error, Result};
use acks::Acks;
use error::{translate, PgError};
use hold::{Cursors, Held, Home, Openings, Settle, Spare, Start};
use listen::Wakeups;
use ops::{Found, Lease, Sql};
use url::PgUrl;

pub(crate) use outbox::as_outbox;
pub use outbox::{Taken, RELAY_LEASE};
pub use schema::migrations;
use schema::script;

/// The largest envelope this backend accepts: 64 MiB (a `bytea` holds up to 1 GB, but a
/// row that large is slow to move and to vacuum).
///
/// ```
/// assert_eq!(mq::transport::postgres::MAX_MESSAGE_SIZE, 64 << 20);
/// ```
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// The longest delay or TTR: a century.
const LONGEST_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Refuses an item over [`MAX_MESSAGE_SIZE`] whichever way it comes (a dispatch checks
/// first; `mq publish`, a retry whose envelope grew, another crate's producer may not).
fn check_size(queue: &str, body: &[u8]) -> Result<()> {
    if body.len() <= MAX_MESSAGE_SIZE {
        return Ok(());
    }
    Err(super::too_large(queue, body, MAX_MESSAGE_SIZE))
}

/// The shortest wait before looking again when the next due item is due already: it is
/// locked by another reserver (or an application's transaction), which `SKIP LOCKED` skips.
const MIN_RECHECK: Duration = Duration::from_millis(10);

/// A PostgreSQL schema used as a queue.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::postgres::PostgresTransport;
/// use mq::transport::{PutOptions, Transport};
///
/// let queue = PostgresTransport::connect("postgres://app@127.0.0.1/shop?schema=jobs").await?;
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PostgresTransport {
    url: PgUrl,
    pool: PgPool,
    sql: Arc<Sql>,
    wakeups: Wakeups,
    acks: Acks,
    /// The batches held by an open transaction, against their limit.
    openings: Openings,
    /// A transaction begun for the next held batch (see `hold`).
    spare: Arc<Spare>,
    /// Acks of held batches sent without waiting for their commit (`send_ack`).
    unanswered: Arc<Unanswered>,
    /// Where the next held pick of each queue starts (see `hold::cursor`).
    cursors: Arc<Cursors>,
}

/// sqlx's value for the URL's `sslmode`.
fn ssl_mode(mode: url::SslMode) -> PgSslMode {
    match mode {
        url::SslMode::Disable => PgSslMode::Disable,
        url::SslMode::Prefer => PgSslMode::Prefer,
        url::SslMode::Require => PgSslMode::Require,
        url::SslMode::VerifyCa => PgSslMode::VerifyCa,
        url::SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

impl PostgresTransport {
    /// Connects, creating or migrating the URL's schema and its tables if needed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a malformed URL; [`Error::Unreachable`] when nothing
    /// answers at its host and port; [`Error::Postgres`] for a database that does not exist,
    /// a refused user, a schema this build cannot use (newer than it knows) or cannot
    /// create.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::postgres::PostgresTransport;
    ///
    /// let queue = PostgresTransport::connect("postgres://app:secret@db.internal:5432/shop").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<PostgresTransport> {
        let url = PgUrl::parse(url)?;
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&url.host)
            .port(url.port)
            .username(&url.user)
            .database(&url.database)
            .ssl_mode(ssl_mode(url.tls.mode))
            .application_name("mq");
        if let Some(password) = &url.password {
            options = options.password(password);
        }
        if let Some(root) = &url.tls.root_cert {
            options = options.ssl_root_cert(root);
        }
        if let Some((cert, key)) = &url.tls.client {
            options = options.ssl_client_cert(cert).ssl_client_key(key);
        }
        let address = url.address();
        let context = PgError::Connect {
            address: &address,
            user: &url.user,
            database: &url.database,
        };
        // One connection first, for its error: the pool would retry until its timeout.
        let first = options
            .connect()
            .await
            .map_err(|e| translate(e, &context))?;
        let pool = PgPoolOptions::new()
            .max_connections(url.pool)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        drop(first);
        schema::migrate(&pool, &url.schema).await?;
        let sql = Arc::new(Sql::new(&url.schema));
        let wakeups = if url.listen {
            Wakeups::listen(&pool, &sql.channel).await?
        } else {
            Wakeups::polling(url.poll)
        };
        let acks = Acks::start(pool.clone(), sql.clone());
        let openings = Openings::for_url(&url);
        Ok(PostgresTransport {
            url,
            pool,
            sql,
            wakeups,
            acks,
            openings,
            spare: Arc::default(),
            unanswered: Arc::default(),
            cursors: Arc::default(),
        })
    }

    /// `transport` as the PostgreSQL transport it may be.
    pub(crate) fn of(transport: &dyn Transport) -> Option<&PostgresTransport> {
        transport.as_any().downcast_ref::<PostgresTransport>()
    }

    /// Puts one item with `connection`, inside whatever transaction it is in: the row and
    /// its NOTIFY take effect when that transaction commits, and are gone if it rolls back.
    pub(crate) async fn put_within(
        &self,
        connection: &mut sqlx::PgConnection,
        queue: &str,
        body: &[u8],
        options: &PutOptions,
    ) -> Result<u64> {
        let context = PgError::Within { url: &self.url };
        ops::put_row(connection, &self.sql, queue, body, options, None)
            .await
            .map_err(|error| translate(error, &context))
    }

    /// [`put_within`](PostgresTransport::put_within) for a unique message: the key is
    /// taken in the application's transaction, and freed again if it rolls back.
    pub(crate) async fn put_unique_within(
        &self,
        connection: &mut sqlx::PgConnection,
        queue: &str,
        body: &[u8],
        options: &PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        let context = PgError::Within { url: &self.url };
        unique::put(connection, &self.sql, queue, body, options, unique)
            .await
            .map_err(|error| translate(error, &context))
    }

    /// The lease to settle `job` by, or `None` when its batch's transaction settled it
    /// `how` (see `hold`).
    async fn lease(&self, job: &Job, how: impl FnOnce() -> Settle) -> Result<Option<Lease>> {
        match job.token::<Held>() {
            Ok(held) => held.settle(how()).await,
            Err(_) => Lease::of(job).map(Some),
        }
    }

    /// One reservation attempt, in a task of its own: if this future is dropped before the
    /// answer is received, the task (or the guard) hands the reservations back.
    /// The batch is held by a transaction when fewer batches than the limit are open (none
    /// with `?hold=0`), or when the previous batch's commit began one (see `hold::Spare`);
    /// leased otherwise.
    async fn attempt(&self, queues: Arc<[String]>, max: usize) -> Result<Found> {
        let (send, answer) = oneshot::channel();
        let (pool, sql) = (self.pool.clone(), self.sql.clone());
        // The transaction the last batch's commit began, else a new one if there is room.
        let held = match self.spare.take() {
            Some(tx) => Some(Start::Begun(tx)),
            None => self.openings.take().map(Start::Open),
        };
        let home = Home {
            wakeups: self.wakeups.handle(),
            spare: self.spare.clone(),
            hold: self.url.hold,
            unanswered: self.unanswered.clone(),
            cursors: self.cursors.clone(),
        };
        let cursors = self.cursors.clone();
        tokio::spawn(async move {
            let found = match held {
                Some(start) => hold::reserve(&pool, &sql, &queues, max, start, home).await,
                None => ops::reserve(&pool, &sql, &queues, max).await,
            };
            if let Err(Ok(found)) = send.send(found) {
                hand_back(&pool, &sql, &cursors, found).await;
            }
        });
        let mut pending = HandBack {
            answer: Some(answer),
            pool: &self.pool,
            sql: &self.sql,
            cursors: &self.cursors,
        };
        let Some(answer) = pending.answer.as_mut() else {
            return Err(Error::Closed);
        };
        let found = answer.await;
        pending.answer = None;
        found.map_err(|_| Error::Closed)?
    }
}

async fn hand_back(pool: &PgPool, sql: &Sql, cursors: &Cursors, found: Found) {
    if let Some(batch) = found.batch {
        return batch.abandon().await;
    }
    if found.jobs.is_empty() {
        return;
    }
    if let Err(error) = ops::hand_back(pool, sql, &found.jobs).await {
        tracing::warn!(%error, "could not hand back reservations; they return after their TTR");
    }
    // Ready again at their places, which may be behind a cursor.
    cursors.reset();
}

/// The answer of a reservation while it is awaited; hands its rows back if dropped early.
struct HandBack<'a> {
    answer: Option<oneshot::Receiver<Result<Found>>>,
    pool: &'a PgPool,
    sql: &'a Arc<Sql>,
    cursors: &'a Arc<Cursors>,
}

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        // After `close`, either the task cannot send (and hands back itself) or the answer
        // is already here.
        answer.close();
        if let Ok(Ok(found)) = answer.try_recv() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (pool, sql, cursors) =
                    (self.pool.clone(), self.sql.clone(), self.cursors.clone());
                runtime.spawn(async move { hand_back(&pool, &sql, &cursors, found).await });
            }
        }
    }
}

/// The SQL that creates the tables of `url`'s schema in an empty database, as one script
/// for `psql` (what `mq migrate --print` prints); nothing is connected to.
///
/// # Errors
///
/// [`Error::InvalidUrl`] for a malformed URL.
///
/// ```
/// let sql = mq::transport::postgres::migration_script("postgres://app@db/shop?schema=jobs")?;
/// assert!(sql.contains(r#"CREATE SCHEMA IF NOT EXISTS "jobs""#));
/// assert!(sql.contains("CREATE TABLE mq_messages"));
/// assert!(mq::transport::postgres::migration_script("postgres://").is_err());
/// # Ok::<(), mq::Error>(())
/// ```
pub fn migration_script(url: &str) -> Result<String> {
    Ok(script(&PgUrl::parse(url)?.schema, 0))
}

/// `postgres://...` and `postgresql://...`.
pub(crate) async fn connect(url: &str) -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(PostgresTransport::connect(url).await?))
}

#[async_trait]
impl Transport for PostgresTransport {
    /// The URL without its password, with its schema.
    fn describe(&self) -> String {
        self.url.describe()
    }

    /// Exact priorities, millisecond delays up to a century (a longer one is surely a
    /// mistake), [`MAX_MESSAGE_SIZE`], a lease renewed by the item's TTR.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_max_message_size(MAX_MESSAGE_SIZE)
            .with_delays(Duration::from_millis(1), Some(LONGEST_DELAY))
            .with_feature(Feature::Unique)
            .with_feature(Feature::KeyLimits)
            .with_feature(Feature::Debounce)
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(failed::Failures(self))
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        check_size(queue, &body)?;
        let id = ops::put(&self.pool, &self.sql, queue, &body, &options).await?;
        self.wakeups.wake();
        Ok(id)
    }

    /// The key and the row in one transaction.
    async fn put_unique(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        check_size(queue, &body)?;
        let put = async {
            let mut tx = self.pool.begin().await?;
            let put = unique::put(&mut tx, &self.sql, queue, &body, &options, unique).await?;
            tx.commit().await?;
            Ok(put)
        };
        let put = put.await.map_err(ops::op("put"))?;
        if matches!(put, Put::Queued(_)) {
            self.wakeups.wake();
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
        check_size(queue, &body)?;
        let put = debounce::put(&self.pool, &self.sql, queue, &body, &options, debounce).await?;
        self.wakeups.wake();
        Ok(put)
    }

    async fn acquire_permit(&self, key: &str, limit: u32, lease: Duration) -> Result<Option<u64>> {
        permits::acquire(&self.pool, &self.sql, key, limit, lease).await
    }

    async fn release_permit(&self, key: &str, token: u64) -> Result<()> {
        permits::release(&self.pool, &self.sql, key, token).await
    }

    async fn renew_permit(&self, key: &str, token: u64, lease: Duration) -> Result<bool> {
        permits::renew(&self.pool, &self.sql, key, token, lease).await
    }

    async fn note_schedule(&self, note: &ScheduleNote) -> Result<()> {
        schedules::note(&self.pool, &self.sql, note).await
    }

    async fn schedule_notes(&self) -> Result<Vec<ScheduleNote>> {
        schedules::list(&self.pool, &self.sql).await
    }

    /// All or none: the rows go in with one transaction.
    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        for body in &bodies {
            check_size(queue, body)?;
        }
        let ids = ops::put_all(&self.pool, &self.sql, queue, &bodies, &options).await?;
        self.wakeups.wake();
        Ok(ids.into_iter().map(Ok).collect())
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        let start = Instant::now();
        // A timeout too large for the clock waits "forever": a year.
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let queues: Arc<[String]> = queues.into();
        let max = max.max(1);
        loop {
            let woken = self.wakeups.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let found = self.attempt(queues.clone(), max).await?;
            if !found.jobs.is_empty() {
                return Ok(found.jobs);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut wake = deadline;
            let next = found
                .next_due_ms
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)).max(MIN_RECHECK));
            for wait in next.into_iter().chain(self.wakeups.poll_interval()) {
                wake = now.checked_add(wait).map_or(wake, |at| at.min(wake));
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// In a held batch, noted for the `DELETE` that goes with its commit; on a lease,
    /// gathered with the other acks waiting into one statement (see `acks`).
    async fn ack(&self, job: &Job) -> Result<()> {
        let Some(lease) = self.lease(job, || Settle::Ack).await? else {
            return Ok(());
        };
        if self.acks.ack(lease.id, lease.token).await? {
            Ok(())
        } else {
            Err(Error::ReservationLost(job.id))
        }
    }

    async fn send_ack(&self, job: &Job) -> Result<()> {
        if let Ok(held) = job.token::<Held>() {
            if held.send_ack().await {
                return Ok(());
            }
        }
        self.ack(job).await
    }

    async fn acks_answered(&self) {
        self.unanswered.none_left().await;
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        check_size(&job.queue, &body)?;
        let how = || Settle::Retry {
            body: body.clone(),
            options,
        };
        if let Some(lease) = self.lease(job, how).await? {
            ops::retry(&self.pool, &self.sql, lease, &body, &options).await?;
            self.wakeups.wake();
        }
        Ok(())
    }

    async fn release(&self, job: &Job) -> Result<()> {
        if let Some(lease) = self.lease(job, || Settle::Release).await? {
            ops::release(&self.pool, &self.sql, lease).await?;
            self.wakeups.wake();
        }
        // Ready again at its place, which may be behind a cursor.
        self.cursors.reset();
        Ok(())
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        match self.lease(job, || Settle::KeepAlive).await? {
            Some(lease) => ops::keep_alive(&self.pool, &self.sql, lease).await,
            None => Ok(()),
        }
    }

    /// Deletes the reserved row and inserts the failure record in one statement.
    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        let how = || Settle::Fail {
            body: body.clone(),
            options,
            failure: failure.clone(),
        };
        match self.lease(job, how).await? {
            Some(lease) => ops::fail(&self.pool, &self.sql, lease, &body, &options, &failure).await,
            None => Ok(()),
        }
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        ops::stats(&self.pool, &self.sql).await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        ops::browse(&self.pool, &self.sql, queue, after, limit).await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        ops::peek(&self.pool, &self.sql, queue).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        ops::flush(&self.pool, &self.sql, queue).await
    }
}
