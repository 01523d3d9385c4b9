//! The queue operations as SQL, each run inside the writer's current transaction.
//!
//! Every function takes a [`Db`]: the connection, the batch's clock reading and a flag that
//! says "something became ready", which the writer turns into a wake-up of the waiting
//! reservers once the transaction has committed. An operation returns
//! `rusqlite::Result<Result<T>>`: the outer error is SQLite failing (the writer rolls back
//! and runs the operation again on its own), the inner one is the answer the caller gets
//! (a lost reservation, a missing failure-store entry).
//!
//! A reservation's token (its [`Reservation`] receipt) is the row's `deliveries` count at
//! the time it was reserved: ack, retry, release, keep-alive and fail only touch a row that
//! is still reserved with the same count, so a worker whose lease ran out can never settle
//! somebody else's reservation.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::room::Room;
use super::schema::{DELAYED, READY};
use crate::transport::columns::{epoch_ms, ms_ceil, ms_duration, row_id, sql_id};
use crate::transport::{FailedMessage, Failure, Job, PutOptions, QueueStats, Receipt};
use crate::{Error, Result};

/// The outcome of one operation: SQLite's error outside, the caller's answer inside.
pub(super) type Outcome<T> = rusqlite::Result<Result<T>>;

/// Makes delayed rows whose time came, and reservations whose lease ran out, ready.
pub(super) const PROMOTE_DUE: &str =
    "UPDATE mq_messages SET state = 0, due_at = 0 WHERE state > 0 AND due_at <= ?1";

/// The next ready rows of one queue, by priority then age; served by `mq_messages_ready`.
pub(super) const SELECT_READY: &str =
    "SELECT id FROM mq_messages WHERE queue = ?1 AND state = 0 ORDER BY priority, id LIMIT ?2";

const LEASE: &str = "UPDATE mq_messages SET state = 2, due_at = ?2 + ttr_ms, \
                     deliveries = deliveries + 1 WHERE id = ?1 RETURNING body, deliveries";

const NEXT_DUE: &str = "SELECT min(due_at) FROM mq_messages WHERE state > 0";

const INSERT: &str = "INSERT INTO mq_messages \
                      (queue, priority, state, due_at, ttr_ms, deliveries, created_at, body) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const TAKE: &str = "DELETE FROM mq_messages WHERE id = ?1 AND state = 2 AND deliveries = ?2";

const RELEASE: &str = "UPDATE mq_messages SET state = 0, due_at = 0 \
                       WHERE id = ?1 AND state = 2 AND deliveries = ?2";

const RENEW: &str = "UPDATE mq_messages SET due_at = ?3 + ttr_ms \
                     WHERE id = ?1 AND state = 2 AND deliveries = ?2";

const FAILED_COLUMNS: &str = "id, queue, priority, delay_ms, ttr_ms, failure, body";

/// The connection inside a transaction, and what the batch learned while running.
#[derive(Debug)]
pub(super) struct Db<'c> {
    /// The writer's connection, inside `BEGIN IMMEDIATE`.
    pub(super) conn: &'c Connection,
    /// The room for new messages.
    room: &'c Room,
    /// Milliseconds since the Unix epoch, read once per batch.
    pub(super) now: i64,
    /// Set when an operation made a message ready.
    pub(super) woke: Cell<bool>,
    promoted: Cell<bool>,
}

impl<'c> Db<'c> {
    pub(super) fn new(conn: &'c Connection, room: &'c Room) -> Db<'c> {
        Db {
            conn,
            room,
            now: now_ms(),
            woke: Cell::new(false),
            promoted: Cell::new(false),
        }
    }

    /// Runs [`PROMOTE_DUE`] once per transaction.
    fn promote(&self) -> rusqlite::Result<()> {
        if !self.promoted.replace(true) {
            let changed = self.conn.prepare_cached(PROMOTE_DUE)?.execute([self.now])?;
            if changed > 0 {
                self.woke.set(true);
            }
        }
        Ok(())
    }

    /// Takes the room for a new message of `body` bytes, or says why there is none.
    fn take_room(&self, body: usize) -> Outcome<()> {
        let mut left = self.room.left(self.conn)?;
        let taken = left.take(body);
        self.room.keep(left);
        Ok(taken.map_err(|full| Error::Sqlite {
            path: self.room.file().to_owned(),
            detail: full.0,
            source: None,
        }))
    }
}

/// What a reserve found: the jobs, and if none, when the next delayed row or lease is due.
#[derive(Debug, Default)]
pub(super) struct Reserved {
    pub(super) jobs: Vec<Job>,
    /// Milliseconds since the Unix epoch.
    pub(super) next_due: Option<i64>,
}

/// Milliseconds since the Unix epoch, the clock every process on the file shares.
pub(super) fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// Puts one row; `deliveries` carries the count over when a retry replaces a row. Counts
/// no room: a retry or a failure-store entry put back replaces a row.
fn put(
    db: &Db<'_>,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    deliveries: u32,
) -> rusqlite::Result<u64> {
    let delay = ms_ceil(options.delay);
    let (state, due_at) = if delay == 0 {
        (READY, 0)
    } else {
        (DELAYED, db.now.saturating_add(delay))
    };
    db.conn.prepare_cached(INSERT)?.execute(params![
        queue,
        i64::from(options.priority),
        state,
        due_at,
        ms_ceil(options.ttr),
        i64::from(deliveries),
        db.now,
        body,
    ])?;
    if state == READY {
        db.woke.set(true);
    }
    Ok(row_id(db.conn.last_insert_rowid()))
}

/// Puts a new message, if there is room for it (see `room`).
pub(super) fn put_new(db: &Db<'_>, queue: &str, body: &[u8], options: &PutOptions) -> Outcome<u64> {
    if let Err(full) = db.take_room(body.len())? {
        return Ok(Err(full));
    }
    Ok(Ok(put(db, queue, body, options, 0)?))
}

/// Puts new messages, all or none: none if there is not room for all of them.
pub(super) fn put_all(
    db: &Db<'_>,
    queue: &str,
    bodies: &[Bytes],
    options: &PutOptions,
) -> Outcome<Vec<Result<u64>>> {
    let total = bodies.iter().map(Bytes::len).sum();
    if let Err(full) = db.take_room(total)? {
        return Ok(Err(full));
    }
    let ids = bodies
        .iter()
        .map(|body| put(db, queue, body, options, 0).map(Ok))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Ok(ids))
}

/// Leases up to `max` ready rows of `queues`, earlier queues first.
pub(super) fn reserve(db: &Db<'_>, queues: &[String], max: usize) -> Outcome<Reserved> {
    db.promote()?;
    let mut jobs = Vec::new();
    let mut select = db.conn.prepare_cached(SELECT_READY)?;
    let mut lease = db.conn.prepare_cached(LEASE)?;
    for queue in queues {
        let want = max.saturating_sub(jobs.len());
        if want == 0 {
            break;
        }
        let ids = select
            .query_map(
                params![queue, i64::try_from(want).unwrap_or(i64::MAX)],
                |row| row.get::<_, i64>(0),
            )?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        for id in ids {
            let (body, deliveries) = lease.query_row(params![id, db.now], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
            })?;
            let deliveries = u32::try_from(deliveries).unwrap_or(u32::MAX);
            let job = Job::new(row_id(id), queue.clone(), Bytes::from(body), deliveries);
            jobs.push(job.with_receipt(Receipt::new(Reservation(deliveries))));
        }
    }
    let next_due = if jobs.is_empty() {
        db.conn
            .prepare_cached(NEXT_DUE)?
            .query_row([], |row| row.get(0))?
    } else {
        None
    };
    Ok(Ok(Reserved { jobs, next_due }))
}

/// The receipt of a reservation: the row's delivery count when it was reserved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation(pub(super) u32);

/// The lease token of `job`'s reservation.
pub(super) fn token(job: &Job) -> Result<u32> {
    job.token().map(|Reservation(deliveries)| *deliveries)
}

/// Deletes a reserved row if the reservation `job` names is still the current one.
fn take(db: &Db<'_>, job: &Job) -> Outcome<()> {
    let token = match token(job) {
        Ok(token) => token,
        Err(lost) => return Ok(Err(lost)),
    };
    let deleted = db
        .conn
        .prepare_cached(TAKE)?
        .execute(params![sql_id(job.id), i64::from(token)])?;
    Ok(if deleted == 1 {
        Ok(())
    } else {
        Err(Error::ReservationLost(job.id))
    })
}

pub(super) fn ack(db: &Db<'_>, job: &Job) -> Outcome<()> {
    if let Err(lost) = take(db, job)? {
        return Ok(Err(lost));
    }
    super::unique::ended(db, job.id, None)?;
    Ok(Ok(()))
}

/// Deletes the reserved row and inserts its replacement, in the caller's transaction.
pub(super) fn retry(db: &Db<'_>, job: &Job, body: &[u8], options: &PutOptions) -> Outcome<()> {
    if let Err(lost) = take(db, job)? {
        return Ok(Err(lost));
    }
    let new = put(db, &job.queue, body, options, job.deliveries)?;
    super::unique::ended(db, job.id, Some(new))?;
    Ok(Ok(()))
}

pub(super) fn release(db: &Db<'_>, id: u64, deliveries: u32) -> Outcome<()> {
    let changed = db
        .conn
        .prepare_cached(RELEASE)?
        .execute(params![sql_id(id), i64::from(deliveries)])?;
    if changed == 1 {
        db.woke.set(true);
        return Ok(Ok(()));
    }
    Ok(Err(Error::ReservationLost(id)))
}

pub(super) fn keep_alive(db: &Db<'_>, job: &Job) -> Outcome<()> {
    let token = match token(job) {
        Ok(token) => token,
        Err(lost) => return Ok(Err(lost)),
    };
    let changed = db.conn.prepare_cached(RENEW)?.execute(params![
        sql_id(job.id),
        i64::from(token),
        db.now
    ])?;
    Ok(if changed == 1 {
        Ok(())
    } else {
        Err(Error::ReservationLost(job.id))
    })
}

pub(super) fn fail(
    db: &Db<'_>,
    job: &Job,
    body: &[u8],
    options: &PutOptions,
    failure: &Failure,
) -> Outcome<()> {
    if let Err(lost) = take(db, job)? {
        return Ok(Err(lost));
    }
    super::unique::ended(db, job.id, None)?;
    store_failed(db, &job.queue, body, options, failure).map(|_| Ok(()))
}

/// Inserts a failure-store row; returns its id.
pub(super) fn store_failed(
    db: &Db<'_>,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    failure: &Failure,
) -> rusqlite::Result<u64> {
    let failed_at = epoch_ms(failure.failed_at);
    let failure = serde_json::to_string(failure)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    db.conn
        .prepare_cached(
            "INSERT INTO mq_failed (queue, priority, delay_ms, ttr_ms, failed_at, failure, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            queue,
            i64::from(options.priority),
            ms_ceil(options.delay),
            ms_ceil(options.ttr),
            failed_at,
            failure,
            body,
        ])?;
    Ok(row_id(db.conn.last_insert_rowid()))
}

fn failed_from_row(row: &Row<'_>) -> rusqlite::Result<FailedMessage> {
    let failure: String = row.get(5)?;
    let failure: Failure = serde_json::from_str(&failure).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(5, Type::Text, Box::new(error))
    })?;
    Ok(FailedMessage {
        id: row_id(row.get(0)?),
        queue: row.get(1)?,
        body: Bytes::from(row.get::<_, Vec<u8>>(6)?),
        options: PutOptions {
            priority: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            delay: ms_duration(row.get(3)?),
            ttr: ms_duration(row.get(4)?),
        },
        failure,
    })
}

pub(super) fn failed_list(
    db: &Db<'_>,
    queue: Option<&str>,
    max: usize,
) -> Outcome<Vec<FailedMessage>> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let list = match queue {
        Some(queue) => db
            .conn
            .prepare_cached(&format!(
                "SELECT {FAILED_COLUMNS} FROM mq_failed WHERE queue = ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![queue, max], failed_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => db
            .conn
            .prepare_cached(&format!(
                "SELECT {FAILED_COLUMNS} FROM mq_failed ORDER BY id LIMIT ?1"
            ))?
            .query_map([max], failed_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(Ok(list))
}

pub(super) fn failed_show(db: &Db<'_>, id: u64) -> Outcome<Option<FailedMessage>> {
    let found = db
        .conn
        .prepare_cached(&format!(
            "SELECT {FAILED_COLUMNS} FROM mq_failed WHERE id = ?1"
        ))?
        .query_row([sql_id(id)], failed_from_row)
        .optional()?;
    Ok(Ok(found))
}

/// Moves a failure-store entry back to its queue, ready at once.
pub(super) fn failed_retry(db: &Db<'_>, id: u64) -> Outcome<u64> {
    let found = db
        .conn
        .prepare_cached(&format!(
            "SELECT {FAILED_COLUMNS} FROM mq_failed WHERE id = ?1"
        ))?
        .query_row([sql_id(id)], failed_from_row)
        .optional()?;
    let Some(failed) = found else {
        return Ok(Err(Error::NotFound(id)));
    };
    db.conn
        .prepare_cached("DELETE FROM mq_failed WHERE id = ?1")?
        .execute([sql_id(id)])?;
    let options = PutOptions {
        delay: Duration::ZERO,
        ..failed.options
    };
    Ok(Ok(put(db, &failed.queue, &failed.body, &options, 0)?))
}

pub(super) fn failed_remove(db: &Db<'_>, id: u64) -> Outcome<bool> {
    let deleted = db
        .conn
        .prepare_cached("DELETE FROM mq_failed WHERE id = ?1")?
        .execute([sql_id(id)])?;
    Ok(Ok(deleted == 1))
}

fn entry(out: &mut BTreeMap<String, QueueStats>, queue: String) -> &mut QueueStats {
    out.entry(queue.clone()).or_insert_with(|| QueueStats {
        queue,
        ..QueueStats::default()
    })
}

/// Counts per queue. Rows whose delay or lease ran out count as ready, as they are.
pub(super) fn stats(db: &Db<'_>) -> Outcome<Vec<QueueStats>> {
    let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
    let mut counts = db.conn.prepare_cached(
        "SELECT queue, sum(due_at <= ?1), sum(state = 2 AND due_at > ?1), \
                sum(state = 1 AND due_at > ?1) \
         FROM mq_messages GROUP BY queue",
    )?;
    let mut rows = counts.query([db.now])?;
    while let Some(row) = rows.next()? {
        let counts = entry(&mut out, row.get(0)?);
        counts.ready = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        counts.reserved = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
        counts.delayed = u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0);
    }
    let mut failed = db
        .conn
        .prepare_cached("SELECT queue, count(*) FROM mq_failed GROUP BY queue")?;
    let mut rows = failed.query([])?;
    while let Some(row) = rows.next()? {
        entry(&mut out, row.get(0)?).failed = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
    }
    Ok(Ok(out.into_values().collect()))
}

pub(super) fn peek(db: &Db<'_>, queue: &str) -> Outcome<Option<Job>> {
    db.promote()?;
    let job = db
        .conn
        .prepare_cached(
            "SELECT id, body, deliveries FROM mq_messages \
             WHERE queue = ?1 AND state = 0 ORDER BY priority, id LIMIT 1",
        )?
        .query_row([queue], |row| {
            Ok(Job::new(
                row_id(row.get(0)?),
                queue,
                Bytes::from(row.get::<_, Vec<u8>>(1)?),
                u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            ))
        })
        .optional()?;
    Ok(Ok(job))
}

/// Up to `limit` rows of `queue` (ready, delayed, reserved) with an id above `after`.
pub(super) fn browse(db: &Db<'_>, queue: &str, after: u64, limit: usize) -> Outcome<Vec<Job>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = db.conn.prepare_cached(
        "SELECT id, body, deliveries FROM mq_messages \
         WHERE queue = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = statement.query_map(rusqlite::params![queue, after, limit], |row| {
        Ok(Job::new(
            row_id(row.get(0)?),
            queue,
            Bytes::from(row.get::<_, Vec<u8>>(1)?),
            u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
        ))
    })?;
    Ok(Ok(rows.collect::<rusqlite::Result<Vec<Job>>>()?))
}

/// Deletes the ready and delayed rows of `queue`; reserved ones stay with their workers.
pub(super) fn flush(db: &Db<'_>, queue: &str) -> Outcome<u64> {
    db.promote()?;
    let deleted = db
        .conn
        .prepare_cached("DELETE FROM mq_messages WHERE queue = ?1 AND state < 2")?
        .execute([queue])?;
    if deleted > 0 {
        super::unique::flushed(db)?;
    }
    Ok(Ok(deleted as u64))
}
