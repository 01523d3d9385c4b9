//! The outbox side of a relay ([`crate::relay`]): a schema whose rows no worker consumes,
//! taken in batches by any number of relays that put them on a broker.
//!
//! A taken row is leased as a reservation is (state `reserved`, a lease of
//! [`RELAY_LEASE`], its token the delivery count), in the outbox's order of ids, whatever
//! its queue, and whether delayed or not: the relay passes the delay left to the broker,
//! so a delayed message waits there, not in the outbox. Acked (deleted) once the broker
//! confirmed it; released when the broker refused it; a relay killed in between leaves its
//! rows to come back when the lease ends. `FOR UPDATE SKIP LOCKED` and the lease give each
//! row to one relay at a time, so several relays share the work rather than double it.
//!
//! The pick is a scan of the table in id order, filtered: fine for an outbox, which holds
//! only what has not been relayed yet (while the broker is away it grows, and the scan with
//! it).

use std::time::Duration;

use tokio::time::Instant;

use super::ops;
use super::PostgresTransport;
use crate::transport::columns::ms_duration;
use crate::transport::{Job, PutOptions, Transport};
use crate::Result;

/// How long a relay holds the rows it took before another may take them, unless told
/// otherwise: well inside NATS's duplicate window (two minutes by default), so a row
/// relayed again after a crash is still dropped there as a duplicate.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::postgres::RELAY_LEASE;
///
/// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
/// let relay = mq::relay::Relay::connect(outbox, "nats://127.0.0.1:4222").await?.lease(RELAY_LEASE * 2);
/// # Ok(()) }
/// ```
pub const RELAY_LEASE: Duration = Duration::from_secs(30);

/// A row taken for relaying: the job (ack or release it on the outbox) and the options to
/// put it on the broker with (its priority and TTR; the delay still to run).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::postgres::{PostgresTransport, Taken};
/// use mq::transport::Transport;
/// use std::time::Duration;
///
/// let outbox = PostgresTransport::connect("postgres://app@127.0.0.1/shop?schema=outbox").await?;
/// let broker = mq::transport::connect("beanstalk://127.0.0.1").await?;
/// for Taken { job, options } in outbox.take_for_relay(64, Duration::from_secs(30), Duration::from_secs(1)).await? {
///     match broker.put(&job.queue, job.body.clone(), options).await {
///         Ok(_) => outbox.ack(&job).await?,
///         Err(_) => outbox.untake(&job).await?,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Taken {
    /// The outbox row, reserved: [`Transport::ack`](crate::transport::Transport::ack) it
    /// once the broker confirmed, [`release`](crate::transport::Transport::release) it if
    /// the broker refused.
    pub job: Job,
    /// Its priority, TTR and what is left of its delay.
    pub options: PutOptions,
}

/// A row of the take's `RETURNING`: id, queue, priority, TTR and delay left in
/// milliseconds, deliveries, body.
type TakenRow = (i64, String, i64, i64, i64, i64, Vec<u8>);

/// `transport` as an outbox: it must be a PostgreSQL schema.
///
/// # Errors
///
/// [`Error::Unsupported`](crate::Error::Unsupported) naming what it is instead.
pub(crate) fn as_outbox(transport: &dyn Transport) -> Result<&PostgresTransport> {
    PostgresTransport::of(transport).ok_or_else(|| crate::Error::Unsupported {
        what: "an outbox".to_owned(),
        reason: format!(
            "the outbox must be a postgres:// schema, not {}",
            crate::transport::redacted(&transport.describe())
        ),
    })
}

/// The statement that gives a taken row back, delayed again if its delay has not run out
/// (a plain `release` would make it due now).
pub(super) fn untake_sql(schema: &str) -> String {
    format!(
        "UPDATE \"{schema}\".mq_messages SET lease_until = NULL, \
         state = CASE WHEN due_at > now() THEN 'delayed' ELSE 'ready' END \
         WHERE id = $1 AND state = 'reserved' AND deliveries = $2"
    )
}

/// The statement that takes up to `$1` rows for `$2` milliseconds.
pub(super) fn take_sql(schema: &str) -> String {
    let m = format!("\"{schema}\".mq_messages");
    format!(
        "WITH picked AS (SELECT id FROM {m} WHERE state IN ('ready', 'delayed') \
         OR (state = 'reserved' AND lease_until <= now()) \
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE {m} AS m SET state = 'reserved', \
         lease_until = now() + $2 * interval '1 millisecond', deliveries = m.deliveries + 1 \
         FROM picked WHERE m.id = picked.id \
         RETURNING m.id, m.queue, m.priority, m.ttr_ms, \
         greatest(0, ceil(extract(epoch FROM m.due_at - now()) * 1000))::bigint, \
         m.deliveries, m.body"
    )
}

impl PostgresTransport {
    /// Whether `other` is the same schema of the same database (however its URL is
    /// written): a relay between the two would loop.
    pub(crate) fn same_schema(&self, other: &PostgresTransport) -> bool {
        let (a, b) = (&self.url, &other.url);
        (&a.host, a.port, &a.database, &a.schema) == (&b.host, b.port, &b.database, &b.schema)
    }

    /// Takes up to `max` rows of this schema, of any queue, oldest first, for relaying,
    /// each leased for `lease`; waits up to `timeout` for the first (woken by the schema's
    /// NOTIFY, or polling).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::postgres::PostgresTransport;
    /// use std::time::Duration;
    ///
    /// let outbox = PostgresTransport::connect("postgres://app@127.0.0.1/shop?schema=outbox").await?;
    /// let taken = outbox.take_for_relay(256, Duration::from_secs(30), Duration::from_secs(1)).await?;
    /// println!("{} rows to relay", taken.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Postgres`](crate::Error::Postgres) when the statement fails.
    pub async fn take_for_relay(
        &self,
        max: usize,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Vec<Taken>> {
        let deadline = Instant::now() + timeout;
        loop {
            let woken = self.wakeups.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let taken = self.take_once(max, lease).await?;
            if !taken.is_empty() || Instant::now() >= deadline {
                return Ok(taken);
            }
            let mut wake = deadline;
            if let Some(poll) = self.wakeups.poll_interval() {
                wake = wake.min(Instant::now() + poll);
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Gives a taken row back to the outbox (the broker refused it), its delay kept.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::postgres::PostgresTransport;
    /// use std::time::Duration;
    ///
    /// let outbox = PostgresTransport::connect("postgres://app@127.0.0.1/shop?schema=outbox").await?;
    /// for taken in outbox.take_for_relay(1, Duration::from_secs(30), Duration::ZERO).await? {
    ///     outbox.untake(&taken.job).await?; // relayed by the next take
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ReservationLost`](crate::Error::ReservationLost) when its lease ran out
    /// and another relay took it; [`Error::Postgres`](crate::Error::Postgres) when the
    /// statement fails.
    pub async fn untake(&self, job: &Job) -> Result<()> {
        let done = sqlx::query(&self.sql.untake)
            .bind(crate::transport::columns::sql_id(job.id))
            .bind(ops::token(job)?)
            .execute(&self.pool)
            .await
            .map_err(ops::op("give back to the outbox"))?;
        if done.rows_affected() == 1 {
            self.wakeups.wake();
            Ok(())
        } else {
            Err(crate::Error::ReservationLost(job.id))
        }
    }

    async fn take_once(&self, max: usize, lease: Duration) -> Result<Vec<Taken>> {
        let mut rows: Vec<TakenRow> = sqlx::query_as(&self.sql.take)
            .bind(i64::try_from(max.max(1)).unwrap_or(i64::MAX))
            .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(ops::op("take from the outbox"))?;
        // RETURNING keeps no order.
        rows.sort_by_key(|row| row.0);
        Ok(rows
            .into_iter()
            .map(
                |(id, queue, priority, ttr_ms, delay_ms, deliveries, body)| Taken {
                    job: ops::reserved_job(id, queue, body, deliveries),
                    options: PutOptions::new(
                        u32::try_from(priority).unwrap_or(u32::MAX),
                        ms_duration(delay_ms),
                        ms_duration(ttr_ms),
                    ),
                },
            )
            .collect())
    }
}
