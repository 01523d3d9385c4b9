//! The queue operations as SQL: each one statement (or, for a batch put, one transaction),
//! on the pool's connections, with times from the server's clock (`now()`), so that
//! producers and workers on machines whose clocks differ agree on when an item is due.
//!
//! A reservation's token (its [`Reservation`] receipt) is the row's `deliveries` count at
//! the time it was reserved: ack, retry, release, keep-alive and fail only touch a row that
//! is still `reserved` with the same count, so a worker whose lease ran out and was handed
//! to another can never settle that other worker's reservation.
//!
//! Everything that makes an item reservable (a put, a retry, a release, a failed message
//! put back) sends `pg_notify(<schema>_mq, queue)` in the same statement or transaction,
//! so idle reservers hear of it when it commits (see `listen`).

use std::collections::BTreeMap;

use bytes::Bytes;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use super::error::{translate, PgError};
pub(super) use super::sql::Sql;
use crate::transport::columns::{epoch_ms, ms_ceil, ms_duration, row_id, sql_id};
use crate::transport::{FailedMessage, Failure, Job, PutOptions, QueueStats, Receipt};
use crate::{Error, Result};

/// The most bytes of bodies sent in one statement of a batch put (PostgreSQL refuses a
/// message over 1 GB).
const BATCH_BYTES: usize = 16 << 20;

/// The receipt of a reservation: the row's delivery count when it was reserved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation(i64);

/// The lease token of `job`'s reservation.
pub(super) fn token(job: &Job) -> Result<i64> {
    job.token().map(|Reservation(deliveries)| *deliveries)
}

/// A leased row to settle: its id and the token of the reservation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) id: i64,
    pub(super) token: i64,
}

impl Lease {
    /// The lease `job` holds.
    pub(super) fn of(job: &Job) -> Result<Lease> {
        Ok(Lease {
            id: sql_id(job.id),
            token: token(job)?,
        })
    }

    fn lost(self) -> Error {
        Error::ReservationLost(row_id(self.id))
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `statement` with the lease's id and token bound as `$1` and `$2`.
fn settling(statement: &str, lease: Lease) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(statement).bind(lease.id).bind(lease.token)
}

pub(super) fn op(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| translate(error, &PgError::Op(what))
}

fn lost_unless(found: bool, lease: Lease) -> Result<()> {
    if found {
        Ok(())
    } else {
        Err(lease.lost())
    }
}

pub(super) async fn put(
    executor: impl sqlx::PgExecutor<'_>,
    sql: &Sql,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
) -> Result<u64> {
    put_row(executor, sql, queue, body, options, None)
        .await
        .map_err(op("put"))
}

/// The put statement, its error as sqlx gives it (for `put_within` to tell); the row holds
/// `unique_key` if given (see `unique`).
pub(super) async fn put_row(
    executor: impl sqlx::PgExecutor<'_>,
    sql: &Sql,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    unique_key: Option<&str>,
) -> std::result::Result<u64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(&sql.put)
        .bind(queue)
        .bind(i64::from(options.priority))
        .bind(ms_ceil(options.delay))
        .bind(ms_ceil(options.ttr))
        .bind(body)
        .bind(&sql.channel)
        .bind(unique_key)
        .fetch_one(executor)
        .await?;
    Ok(row_id(id))
}

/// Puts all of `bodies` in one transaction, or none.
pub(super) async fn put_all(
    pool: &PgPool,
    sql: &Sql,
    queue: &str,
    bodies: &[Bytes],
    options: &PutOptions,
) -> Result<Vec<u64>> {
    let run = async {
        let mut tx = pool.begin().await?;
        let mut ids = Vec::with_capacity(bodies.len());
        let mut rest = bodies;
        while !rest.is_empty() {
            let mut size = 0;
            let take = rest
                .iter()
                .take_while(|body| {
                    size += body.len();
                    size <= BATCH_BYTES
                })
                .count()
                .max(1);
            let (chunk, after) = rest.split_at(take);
            rest = after;
            let chunk: Vec<&[u8]> = chunk.iter().map(|body| &body[..]).collect();
            let mut chunk_ids: Vec<i64> = sqlx::query_scalar(&sql.put_batch)
                .bind(queue)
                .bind(i64::from(options.priority))
                .bind(ms_ceil(options.delay))
                .bind(ms_ceil(options.ttr))
                .bind(chunk)
                .fetch_all(&mut *tx)
                .await?;
            // The sequence numbers the rows in the order they were inserted.
            chunk_ids.sort_unstable();
            ids.extend(chunk_ids.into_iter().map(row_id));
        }
        if !ids.is_empty() {
            sqlx::query(&sql.notify)
                .bind(&sql.channel)
                .bind(queue)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ids)
    };
    run.await.map_err(op("put_many"))
}

/// What one reservation attempt found: the jobs, and if none, in how many milliseconds
/// the next delayed item or lease of these queues is due.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) jobs: Vec<Job>,
    pub(super) next_due_ms: Option<i64>,
    /// The transaction that holds the jobs, when they are held by one (see `hold`).
    pub(super) batch: Option<std::sync::Arc<super::hold::Batch>>,
}

/// Reserves up to `max` reservable rows of `queues`: queue by queue in the list's order,
/// and within a queue first the rows whose lease ran out (oldest lease first), then the
/// delayed ones now due (earliest first), then the ready ones by priority, then by age.
/// Rows another reserver holds locked are skipped, not waited for.
///
/// One call of the schema's `mq_reserve` per queue looked at (see `schema::V2`): each of
/// its three picks is served by the one index whose predicate it matches
/// (`mq_messages_lease`, `_due`, `_ready`), in a plan that does not hang on the table's
/// statistics, which a queue table always has out of date.
pub(super) async fn reserve(
    pool: &PgPool,
    sql: &Sql,
    queues: &[String],
    max: usize,
) -> Result<Found> {
    let mut jobs = Vec::new();
    for queue in queues {
        let room = max - jobs.len();
        if room == 0 {
            break;
        }
        match reserve_from(pool, sql, queue, room).await {
            Ok(found) => jobs.extend(found),
            // What earlier queues gave is reserved already: hand it out rather than leave
            // it to its TTR; the next reservation meets the error again.
            Err(error) if !jobs.is_empty() => {
                tracing::warn!(%error, queue, "reserve failed on a later queue of the list");
                break;
            }
            Err(error) => return Err(error),
        }
    }
    let next_due_ms = if jobs.is_empty() {
        next_due_ms(pool, sql, queues).await?
    } else {
        None
    };
    Ok(Found {
        jobs,
        next_due_ms,
        batch: None,
    })
}

/// In how many milliseconds the next delayed item or lease of `queues` is due, if any.
pub(super) async fn next_due_ms(
    pool: &PgPool,
    sql: &Sql,
    queues: &[String],
) -> Result<Option<i64>> {
    sqlx::query_scalar(&sql.next_due)
        .bind(queues)
        .fetch_one(pool)
        .await
        .map_err(op("reserve"))
}

async fn reserve_from(pool: &PgPool, sql: &Sql, queue: &str, max: usize) -> Result<Vec<Job>> {
    let mut rows = sqlx::query(&sql.reserve)
        .bind(queue)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .try_map(picked)
        .fetch_all(pool)
        .await
        .map_err(op("reserve"))?;
    in_reserve_order(&mut rows);
    Ok(rows
        .into_iter()
        .map(|(id, _, body, deliveries, _)| reserved_job(id, queue, body, deliveries))
        .collect())
}

/// A row a reservation picked (`mq_reserve`'s, or a held batch's): id, priority, body, its
/// deliveries with this one counted, and which pick found it (0: lease run out, 1: delay
/// ended, 2: ready).
pub(super) type Picked = (i64, i64, Vec<u8>, i64, i32);

/// A picked row, its columns decoded without sqlx's check of their types against the
/// Rust ones (about 450 instructions a row in the worker, docs/performance.md): the picks
/// are this module's statements and `mq_reserve`'s `RETURNS TABLE (bigint, bigint, bytea,
/// bigint, integer)`: their order and types are trusted (an `int4` where an `int8` is
/// expected would decode); a `NULL`, an empty value or one over 8 bytes is still an error.
pub(super) fn picked(row: PgRow) -> std::result::Result<Picked, sqlx::Error> {
    Ok((
        row.try_get_unchecked(0)?,
        row.try_get_unchecked(1)?,
        row.try_get_unchecked(2)?,
        row.try_get_unchecked(3)?,
        row.try_get_unchecked(4)?,
    ))
}

/// The rows one queue gave, in the order a reservation hands them out: by pick, then by
/// priority, then by age (`RETURNING` keeps no order).
pub(super) fn in_reserve_order(rows: &mut [Picked]) {
    rows.sort_by_key(|&(id, priority, _, _, late)| (late, priority, id));
}

/// The job of a row, with no receipt yet.
pub(super) fn row_job(id: i64, queue: impl Into<String>, body: Vec<u8>, deliveries: i64) -> Job {
    Job::new(
        row_id(id),
        queue,
        Bytes::from(body),
        u32::try_from(deliveries).unwrap_or(u32::MAX),
    )
}

/// The job of a row just reserved with `deliveries`, its receipt the lease token.
pub(super) fn reserved_job(
    id: i64,
    queue: impl Into<String>,
    body: Vec<u8>,
    deliveries: i64,
) -> Job {
    row_job(id, queue, body, deliveries).with_receipt(Receipt::new(Reservation(deliveries)))
}

/// Hands back reservations nobody received (a dropped `reserve`): ready again, and not
/// counted as a delivery.
pub(super) async fn hand_back(pool: &PgPool, sql: &Sql, jobs: &[Job]) -> Result<()> {
    let leases = jobs.iter().filter_map(|job| Lease::of(job).ok());
    hand_back_leases(pool, sql, leases).await
}

/// Hands back `leases` nobody received, as [`hand_back`].
pub(super) async fn hand_back_leases(
    pool: &PgPool,
    sql: &Sql,
    leases: impl Iterator<Item = Lease>,
) -> Result<()> {
    let (ids, tokens): (Vec<i64>, Vec<i64>) = leases.map(|l| (l.id, l.token)).unzip();
    let queues: Vec<String> = sqlx::query_scalar(&sql.hand_back)
        .bind(ids)
        .bind(tokens)
        .fetch_all(pool)
        .await
        .map_err(op("hand back"))?;
    if let Some(queue) = queues.first() {
        sqlx::query(&sql.notify)
            .bind(&sql.channel)
            .bind(queue)
            .execute(pool)
            .await
            .map_err(op("hand back"))?;
    }
    Ok(())
}

/// Deletes the rows of `ids` still reserved with the matching `tokens`; returns the
/// `(id, token)` pairs deleted. One statement, one commit, whatever the number (see
/// `acks`).
///
/// Its commit does not wait for the WAL to reach the disk: the statement sets
/// `synchronous_commit` off for its own transaction (`set_config(..., true)`, read at the
/// commit that ends the statement). An ack lost in a crash of the server leaves the row
/// reserved, so it is delivered again when its lease runs out: at least once holds, and
/// what a crash can cost is duplicates of the acks of its last moments, never a message.
/// One statement with parameters, so a failure leaves no transaction open behind it.
pub(super) async fn ack_all(
    pool: &PgPool,
    sql: &Sql,
    ids: &[i64],
    tokens: &[i64],
) -> std::result::Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(&sql.ack)
        .bind(ids)
        .bind(tokens)
        .fetch_all(pool)
        .await
}

/// Deletes the reserved row and inserts its replacement, in one statement.
pub(super) async fn retry(
    pool: &PgPool,
    sql: &Sql,
    lease: Lease,
    body: &[u8],
    options: &PutOptions,
) -> Result<()> {
    let done = settling(&sql.retry, lease)
        .bind(i64::from(options.priority))
        .bind(ms_ceil(options.delay))
        .bind(ms_ceil(options.ttr))
        .bind(body)
        .bind(&sql.channel)
        .fetch_optional(pool)
        .await
        .map_err(op("retry"))?;
    lost_unless(done.is_some(), lease)
}

pub(super) async fn release(pool: &PgPool, sql: &Sql, lease: Lease) -> Result<()> {
    let done = settling(&sql.release, lease)
        .bind(&sql.channel)
        .fetch_optional(pool)
        .await
        .map_err(op("release"))?;
    lost_unless(done.is_some(), lease)
}

pub(super) async fn keep_alive(pool: &PgPool, sql: &Sql, lease: Lease) -> Result<()> {
    let done = settling(&sql.renew, lease)
        .execute(pool)
        .await
        .map_err(op("keep_alive"))?;
    lost_unless(done.rows_affected() == 1, lease)
}

pub(super) fn failure_text(failure: &Failure) -> Result<String> {
    serde_json::to_string(failure).map_err(|error| Error::Postgres {
        detail: format!("cannot encode a failure record: {error}"),
        source: Some(Box::new(error)),
    })
}

/// Moves the reserved row to the failure table, in one statement.
pub(super) async fn fail(
    pool: &PgPool,
    sql: &Sql,
    lease: Lease,
    body: &[u8],
    options: &PutOptions,
    failure: &Failure,
) -> Result<()> {
    let moved = settling(&sql.fail, lease)
        .bind(i64::from(options.priority))
        .bind(ms_ceil(options.delay))
        .bind(ms_ceil(options.ttr))
        .bind(epoch_ms(failure.failed_at))
        .bind(failure_text(failure)?)
        .bind(body)
        .fetch_optional(pool)
        .await
        .map_err(op("fail"))?;
    lost_unless(moved.is_some(), lease)
}

/// Counts per queue. Rows whose lease ran out count as ready, as they are.
pub(super) async fn stats(pool: &PgPool, sql: &Sql) -> Result<Vec<QueueStats>> {
    let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(&sql.stats)
        .fetch_all(pool)
        .await
        .map_err(op("stats"))?;
    for (queue, ready, reserved, delayed) in rows {
        let entry = out
            .entry(queue.clone())
            .or_insert_with(|| QueueStats::new(queue));
        (entry.ready, entry.reserved, entry.delayed) =
            (count(ready), count(reserved), count(delayed));
    }
    let failed: Vec<(String, i64)> = sqlx::query_as(&sql.failed_counts)
        .fetch_all(pool)
        .await
        .map_err(op("stats"))?;
    for (queue, failed) in failed {
        out.entry(queue.clone())
            .or_insert_with(|| QueueStats::new(queue))
            .failed = count(failed);
    }
    Ok(out.into_values().collect())
}

pub(super) async fn peek(pool: &PgPool, sql: &Sql, queue: &str) -> Result<Option<Job>> {
    let row: Option<(i64, String, Vec<u8>, i64)> = sqlx::query_as(&sql.peek)
        .bind(queue)
        .fetch_optional(pool)
        .await
        .map_err(op("peek"))?;
    Ok(row.map(|(id, queue, body, deliveries)| row_job(id, queue, body, deliveries)))
}

/// Up to `limit` rows of `queue` (ready, delayed, reserved) with an id above `after`.
pub(super) async fn browse(
    pool: &PgPool,
    sql: &Sql,
    queue: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<Job>> {
    let rows: Vec<(i64, String, Vec<u8>, i64)> = sqlx::query_as(&sql.browse)
        .bind(queue)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(op("browse"))?;
    Ok(rows
        .into_iter()
        .map(|(id, queue, body, deliveries)| row_job(id, queue, body, deliveries))
        .collect())
}

/// Deletes the ready and delayed rows of `queue`; reserved ones stay with their workers.
pub(super) async fn flush(pool: &PgPool, sql: &Sql, queue: &str) -> Result<u64> {
    let done = sqlx::query(&sql.flush)
        .bind(queue)
        .execute(pool)
        .await
        .map_err(op("flush"))?;
    Ok(done.rows_affected())
}

pub(super) async fn store_failed(
    pool: &PgPool,
    sql: &Sql,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    failure: &Failure,
) -> Result<u64> {
    let id: i64 = sqlx::query_scalar(&sql.failed_store)
        .bind(queue)
        .bind(i64::from(options.priority))
        .bind(ms_ceil(options.delay))
        .bind(ms_ceil(options.ttr))
        .bind(epoch_ms(failure.failed_at))
        .bind(failure_text(failure)?)
        .bind(body)
        .fetch_one(pool)
        .await
        .map_err(op("store a failure"))?;
    Ok(row_id(id))
}

fn failed_from_row(row: &PgRow) -> Result<FailedMessage> {
    let read = || -> std::result::Result<_, sqlx::Error> {
        Ok((
            row.try_get::<i64, _>(0)?,
            row.try_get::<String, _>(1)?,
            row.try_get::<i64, _>(2)?,
            row.try_get::<i64, _>(3)?,
            row.try_get::<i64, _>(4)?,
            row.try_get::<String, _>(5)?,
            row.try_get::<Vec<u8>, _>(6)?,
        ))
    };
    let (id, queue, priority, delay_ms, ttr_ms, failure, body) =
        read().map_err(op("read a failure"))?;
    let failure: Failure = serde_json::from_str(&failure).map_err(|error| Error::Postgres {
        detail: format!("failure record {id} does not decode: {error}"),
        source: Some(Box::new(error)),
    })?;
    Ok(FailedMessage::new(
        row_id(id),
        queue,
        Bytes::from(body),
        PutOptions::new(
            u32::try_from(priority).unwrap_or(u32::MAX),
            ms_duration(delay_ms),
            ms_duration(ttr_ms),
        ),
        failure,
    ))
}

/// The entries, of `queue` or of all, oldest first.
pub(super) async fn failed_list(
    pool: &PgPool,
    sql: &Sql,
    queue: Option<&str>,
    max: usize,
) -> Result<Vec<FailedMessage>> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let rows = match queue {
        Some(queue) => sqlx::query(&sql.failed_list_queue).bind(max).bind(queue),
        None => sqlx::query(&sql.failed_list).bind(max),
    }
    .fetch_all(pool)
    .await
    .map_err(op("list failures"))?;
    rows.iter().map(failed_from_row).collect()
}

pub(super) async fn failed_show(
    pool: &PgPool,
    sql: &Sql,
    id: u64,
) -> Result<Option<FailedMessage>> {
    let row = sqlx::query(&sql.failed_show)
        .bind(sql_id(id))
        .fetch_optional(pool)
        .await
        .map_err(op("show a failure"))?;
    row.as_ref().map(failed_from_row).transpose()
}

/// Puts a failure-store entry back on its queue, ready at once, and removes it, in one
/// statement; returns the new item's id.
pub(super) async fn failed_retry(pool: &PgPool, sql: &Sql, id: u64) -> Result<u64> {
    let new: Option<(i64, String)> = sqlx::query_as(&sql.failed_retry)
        .bind(sql_id(id))
        .bind(&sql.channel)
        .fetch_optional(pool)
        .await
        .map_err(op("retry a failure"))?;
    new.map(|(id, _)| row_id(id)).ok_or(Error::NotFound(id))
}

pub(super) async fn failed_remove(pool: &PgPool, sql: &Sql, id: u64) -> Result<bool> {
    let done = sqlx::query(&sql.failed_remove)
        .bind(sql_id(id))
        .execute(pool)
        .await
        .map_err(op("remove a failure"))?;
    Ok(done.rows_affected() == 1)
}
