//! Reservations held by an open transaction: how `reserve` takes a batch when it can.
//!
//! A lease writes every row twice (to `reserved`, then its delete), yet most messages are
//! settled long before a lease would matter. So a batch is picked with the three picks of
//! `mq_reserve` (`SELECT ... FOR UPDATE SKIP LOCKED`) but without its `UPDATE`, in a
//! transaction left open on a connection of its own: while it is open, its row locks are
//! the reservation. Settling an item of an open batch writes nothing yet (an ack) or one
//! statement inside the transaction (a retry, a fail, a release); when the last item of the
//! batch is settled, one round trip deletes the acked rows and commits. A worker killed at
//! any instant loses nothing: its connection closes, PostgreSQL rolls the transaction back
//! and the rows are reservable again at once, with no lease to wait for.
//!
//! A batch stays open at most the URL's `hold` (1 s unless `?hold=` says otherwise): what
//! is still unsettled then goes over to leases (the `UPDATE` a leased reservation makes), in
//! the same commit as the acks so far, and is settled as a lease from then on. So a slow
//! slot costs what it cost before, and no transaction stays open long enough to hold
//! VACUUM back. The transaction's `idle_in_transaction_session_timeout` ([`IDLE_LIMIT`])
//! ends one whose process hangs, or whose machine went away without closing its
//! connection.
//!
//! A settle returns once it is committed, as on a lease: with the batch's last settle, or,
//! when the others take longer than [`SETTLE_WAIT`], with a commit that leases what is
//! still unsettled. A batch lost before its commit (its connection or the server went
//! away) answers each settle waiting with the error, and its rows are reservable again:
//! at least once, as ever, never lost. At most `(pool - 2) / 2` batches of
//! a transport are open at once (4 with the default pool of 10), so that they never take
//! the connections the other statements need; beyond that, `reserve` leases.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgConnection, PgPool, Postgres};
use tokio::sync::{watch, Mutex, Notify};

use super::ops::{self, op, Found, Lease, Sql};
use crate::transport::columns::{epoch_ms, ms_ceil, row_id};
use crate::transport::{Failure, Job, PutOptions, Receipt};
use crate::{Error, Result};

/// How long an open batch's transaction may sit idle before PostgreSQL ends it: above the
/// longest `?hold=` (5 s), so only a worker that stopped answering meets it.
const IDLE_LIMIT: &str = "15s";

/// The longest one statement of a held batch may take before the batch is given up (its
/// connection closed, so PostgreSQL rolls it back): a server that vanished without closing
/// the connection must not leave the batch's settles waiting for TCP to notice.
const STATEMENT_LIMIT: Duration = Duration::from_secs(10);

/// `statement` within [`STATEMENT_LIMIT`].
async fn limited<T>(
    statement: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
) -> std::result::Result<T, sqlx::Error> {
    tokio::time::timeout(STATEMENT_LIMIT, statement)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from PostgreSQL within {STATEMENT_LIMIT:?}"),
            )))
        })
}

/// The longest a settle waits for the other items of its batch before the batch commits
/// without them (they go over to leases): what an ack may cost beyond its round trip.
const SETTLE_WAIT: Duration = Duration::from_millis(5);

/// The statements of held batches, written once for the URL's schema.
#[derive(Debug)]
pub(super) struct HeldSql {
    begin: String,
    pick: String,
    release: String,
    retry: String,
    fail: String,
    lease: String,
    delete: String,
}

impl HeldSql {
    /// The times a held batch writes are `statement_timestamp()`: `now()` is when the
    /// transaction began, up to `hold` earlier, and would shorten a delay or a lease by
    /// that much. (The pick's `now()` is the `BEGIN` just before it.)
    pub(super) fn new(schema: &str) -> HeldSql {
        let m = format!("\"{schema}\".mq_messages");
        let f = format!("\"{schema}\".mq_failed");
        let pick = |late: u8, filter: &str, order: &str| {
            format!(
                "SELECT id, priority, body, deliveries + 1, {late} AS late FROM ( \
                 SELECT m.id, m.priority, m.body, m.deliveries FROM {m} AS m \
                 WHERE m.queue = $1 AND {filter} ORDER BY {order} LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) AS p{late}"
            )
        };
        HeldSql {
            // The planner settings of `mq_reserve` (see `schema::V2`), for this transaction.
            begin: format!(
                "BEGIN; SET LOCAL enable_sort TO off; SET LOCAL enable_bitmapscan TO off; \
                 SET LOCAL enable_seqscan TO off; SET LOCAL synchronous_commit TO off; \
                 SET LOCAL idle_in_transaction_session_timeout TO '{IDLE_LIMIT}'"
            ),
            pick: format!(
                "{} UNION ALL {} UNION ALL {} LIMIT $2",
                pick(
                    0,
                    "m.state = 'reserved' AND m.lease_until <= now()",
                    "m.lease_until"
                ),
                pick(
                    1,
                    "m.state = 'delayed' AND m.due_at <= now()",
                    "m.due_at"
                ),
                pick(
                    2,
                    "m.state = 'ready' AND m.due_at <= now()",
                    "m.priority, m.id"
                ),
            ),
            release: format!(
                "UPDATE {m} SET deliveries = deliveries + 1 WHERE id = $1 \
                 RETURNING pg_notify($2, queue)::text"
            ),
            retry: format!(
                "WITH gone AS (DELETE FROM {m} WHERE id = $1 RETURNING queue, deliveries), \
                 put AS (INSERT INTO {m} (queue, priority, state, due_at, ttr_ms, deliveries, body) \
                 SELECT queue, $2, CASE WHEN $3 > 0 THEN 'delayed' ELSE 'ready' END, \
                 statement_timestamp() + $3 * interval '1 millisecond', $4, deliveries + 1, $5 \
                 FROM gone RETURNING queue) \
                 SELECT pg_notify($6, queue)::text FROM put"
            ),
            fail: format!(
                "WITH gone AS (DELETE FROM {m} WHERE id = $1 RETURNING queue) \
                 INSERT INTO {f} (queue, priority, delay_ms, ttr_ms, failed_at, failure, body) \
                 SELECT queue, $2, $3, $4, to_timestamp($5 / 1000.0), $6, $7 FROM gone \
                 RETURNING id"
            ),
            lease: format!(
                "UPDATE {m} SET state = 'reserved', \
                 lease_until = statement_timestamp() + ttr_ms * interval '1 millisecond', \
                 deliveries = deliveries + 1 WHERE id = ANY($1) \
                 RETURNING id, deliveries, pg_notify($2, queue)::text"
            ),
            delete: format!("DELETE FROM {m} WHERE id = ANY('{{"),
        }
    }
}

/// The open batches of one transport, against their limit.
#[derive(Debug)]
pub(super) struct Openings {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Openings {
    /// At most `(pool - 2) / 2` open at once: the listener and the other statements keep
    /// the rest of the pool.
    pub(super) fn for_pool(pool: u32) -> Openings {
        Openings {
            open: Arc::default(),
            max: usize::try_from(pool.saturating_sub(2) / 2).unwrap_or(0),
        }
    }

    /// A place for one more open batch, if there is room.
    pub(super) fn take(&self) -> Option<Opening> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()
            .map(|_| Opening(self.open.clone()))
    }
}

/// One open batch's place, given back when its transaction ends.
#[derive(Debug)]
pub(super) struct Opening(Arc<AtomicUsize>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection of an open transaction. Dropped while the transaction is still open, it
/// is closed rather than given back to the pool, which ends the transaction (a rollback).
#[derive(Debug)]
struct Tx {
    connection: Option<PoolConnection<Postgres>>,
    _opening: Opening,
}

impl Tx {
    fn connection(&mut self) -> Result<&mut PgConnection> {
        self.connection.as_deref_mut().ok_or(Error::Closed)
    }

    /// Ends the transaction with `statement` (a `COMMIT` or `ROLLBACK`, after whatever
    /// goes with it in the same round trip); the connection goes back to the pool.
    async fn end(mut self, statement: &str) -> std::result::Result<(), sqlx::Error> {
        let Some(connection) = self.connection.as_deref_mut() else {
            return Ok(());
        };
        limited(connection.execute(statement)).await?;
        self.connection.take();
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(connection) = &mut self.connection {
            connection.close_on_drop();
        }
    }
}

/// The receipt of an item of a held batch.
#[derive(Debug)]
pub(super) struct Held {
    batch: Arc<Batch>,
    id: i64,
}

/// How an item is settled.
#[derive(Debug)]
pub(super) enum Settle {
    Ack,
    Release,
    KeepAlive,
    Retry {
        body: Bytes,
        options: PutOptions,
    },
    Fail {
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    },
}

impl Held {
    /// Settles the item in its batch's transaction; `Some(lease)` when the batch went over
    /// to leases first, for the caller to settle that lease instead.
    ///
    /// In a task of its own: a caller that goes away must not cut a statement on the
    /// batch's connection in half.
    pub(super) async fn settle(&self, how: Settle) -> Result<Option<Lease>> {
        let (batch, id) = (self.batch.clone(), self.id);
        tokio::spawn(batch.settle(id, how))
            .await
            .map_err(|_| Error::Closed)?
    }
}

/// One batch reserved in a transaction of its own, and where its settles stand.
#[derive(Debug)]
pub(super) struct Batch {
    state: Mutex<State>,
    sql: Arc<Sql>,
    pool: PgPool,
    wakeups: Arc<Notify>,
    /// How the transaction ended: `Ok` once committed, the error if it was lost; what the
    /// settles waiting for the commit learn.
    ended: watch::Sender<Option<std::result::Result<(), String>>>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Items not settled yet.
    unsettled: HashSet<i64>,
    /// Items acked: deleted at the commit.
    acked: Vec<i64>,
    /// Whether a settle waits for the others, with a commit due after [`SETTLE_WAIT`].
    waiting: bool,
}

#[derive(Debug)]
enum Phase {
    /// The transaction is open: its row locks hold the unsettled items.
    Open(Tx),
    /// Committed with the items then unsettled leased: their tokens.
    Leased(HashMap<i64, i64>),
    /// Committed with nothing left, or lost.
    Closed,
}

fn lost(id: i64) -> Error {
    Error::ReservationLost(row_id(id))
}

impl Batch {
    /// Settles item `id` in the transaction; returns once that is committed.
    async fn settle(self: Arc<Self>, id: i64, how: Settle) -> Result<Option<Lease>> {
        let mut state = self.state.lock().await;
        let State {
            phase,
            unsettled,
            acked,
            ..
        } = &mut *state;
        let tx = match phase {
            Phase::Open(tx) if unsettled.contains(&id) => tx,
            Phase::Leased(tokens) => {
                let token = tokens.get(&id).copied().ok_or_else(|| lost(id))?;
                return Ok(Some(Lease { id, token }));
            }
            Phase::Open(_) | Phase::Closed => return Err(lost(id)),
        };
        let done = match &how {
            Settle::KeepAlive => return Ok(None),
            Settle::Ack => {
                acked.push(id);
                Ok(())
            }
            Settle::Release => self.release(tx, id).await,
            Settle::Retry { body, options } => self.retry(tx, id, body, options).await,
            Settle::Fail {
                body,
                options,
                failure,
            } => {
                // Encoded before the transaction is touched: an error here loses nothing.
                let text = ops::failure_text(failure)?;
                self.fail(tx, id, body, options, failure, &text).await
            }
        };
        if let Err(error) = done {
            self.lose(&mut state, &error);
            return Err(error);
        }
        state.unsettled.remove(&id);
        if state.unsettled.is_empty() {
            self.commit(&mut state, HashMap::new()).await?;
            return Ok(None);
        }
        // Others are still running: the commit comes with the last of them, or, if that
        // takes longer than SETTLE_WAIT, with what is unsettled then going over to leases.
        let mut ended = self.ended.subscribe();
        if !state.waiting {
            state.waiting = true;
            let batch = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE_WAIT).await;
                batch.go_over_to_leases().await;
            });
        }
        drop(state);
        let ended = ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Closed)?
            .clone();
        match ended {
            Some(Ok(())) => Ok(None),
            Some(Err(detail)) => Err(Error::Postgres {
                detail,
                source: None,
            }),
            None => Err(Error::Closed),
        }
    }

    async fn release(&self, tx: &mut Tx, id: i64) -> Result<()> {
        let statement = sqlx::query(&self.sql.held.release)
            .bind(id)
            .bind(&self.sql.channel)
            .execute(tx.connection()?);
        limited(statement).await.map_err(op("release"))?;
        Ok(())
    }

    async fn retry(&self, tx: &mut Tx, id: i64, body: &[u8], options: &PutOptions) -> Result<()> {
        let statement = sqlx::query(&self.sql.held.retry)
            .bind(id)
            .bind(i64::from(options.priority))
            .bind(ms_ceil(options.delay))
            .bind(ms_ceil(options.ttr))
            .bind(body)
            .bind(&self.sql.channel)
            .execute(tx.connection()?);
        limited(statement).await.map_err(op("retry"))?;
        Ok(())
    }

    async fn fail(
        &self,
        tx: &mut Tx,
        id: i64,
        body: &[u8],
        options: &PutOptions,
        failure: &Failure,
        text: &str,
    ) -> Result<()> {
        let statement = sqlx::query(&self.sql.held.fail)
            .bind(id)
            .bind(i64::from(options.priority))
            .bind(ms_ceil(options.delay))
            .bind(ms_ceil(options.ttr))
            .bind(epoch_ms(failure.failed_at))
            .bind(text)
            .bind(body)
            .execute(tx.connection()?);
        limited(statement).await.map_err(op("fail"))?;
        Ok(())
    }

    /// Deletes the acked rows and commits, in one round trip; the unsettled items (if
    /// any) were leased, with `tokens`, in the transaction before.
    ///
    /// A commit that leases waits for the disk (`synchronous_commit` back on): lost in a
    /// crash of the server, it would leave rows whose next reservation hands out the same
    /// token again. One with acks alone need not: losing it redelivers, as a lost ack does.
    async fn commit(&self, state: &mut State, tokens: HashMap<i64, i64>) -> Result<()> {
        let Phase::Open(tx) = std::mem::replace(&mut state.phase, Phase::Closed) else {
            return Ok(());
        };
        let mut statement = String::new();
        if !state.acked.is_empty() {
            let ids: Vec<String> = state.acked.iter().map(i64::to_string).collect();
            statement = format!("{}{}}}'::bigint[]); ", self.sql.held.delete, ids.join(","));
        }
        if !tokens.is_empty() {
            statement.push_str("SET LOCAL synchronous_commit TO on; ");
        }
        statement.push_str("COMMIT");
        match tx.end(&statement).await {
            Ok(()) => {
                state.acked.clear();
                state.phase = Phase::Leased(tokens);
                self.ended.send_replace(Some(Ok(())));
                self.wakeups.notify_waiters();
                Ok(())
            }
            Err(error) => {
                let error = op("commit")(error);
                self.lose(state, &error);
                Err(error)
            }
        }
    }

    /// The transaction failed: PostgreSQL rolls it back (the connection is closed), its
    /// rows are free again, and what was acked in it will be delivered again.
    fn lose(&self, state: &mut State, error: &Error) {
        state.phase = Phase::Closed;
        if !state.acked.is_empty() {
            tracing::warn!(
                %error,
                acked = state.acked.len(),
                "a reserved batch's transaction failed before its commit; \
                 its acked messages will be delivered again"
            );
        }
        state.acked.clear();
        self.ended.send_replace(Some(Err(format!(
            "the transaction of a reserved batch failed before its commit: {error}"
        ))));
        self.wakeups.notify_waiters();
    }

    /// `hold` after the reservation, or [`SETTLE_WAIT`] after a settle began to wait for
    /// the others: what is still unsettled goes over to leases, and the transaction
    /// commits.
    async fn go_over_to_leases(&self) {
        let mut state = self.state.lock().await;
        let ids: Vec<i64> = state.unsettled.iter().copied().collect();
        let Phase::Open(tx) = &mut state.phase else {
            return;
        };
        let leased = match tx.connection() {
            Ok(connection) => {
                let statement = sqlx::query_as::<_, (i64, i64, String)>(&self.sql.held.lease)
                    .bind(&ids)
                    .bind(&self.sql.channel)
                    .fetch_all(connection);
                limited(statement).await.map_err(op("lease"))
            }
            Err(error) => Err(error),
        };
        match leased {
            Ok(rows) => {
                let tokens = rows.into_iter().map(|(id, token, _)| (id, token)).collect();
                if let Err(error) = self.commit(&mut state, tokens).await {
                    tracing::warn!(%error, "could not lease a batch's slow messages");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not lease a batch's slow messages");
                self.lose(&mut state, &error);
            }
        }
    }

    /// Hands the batch back (the caller of `reserve` went away before receiving it): a
    /// rollback, or, if it went over to leases already, those handed back; and reservers
    /// told.
    pub(super) async fn abandon(&self) {
        let mut state = self.state.lock().await;
        match std::mem::replace(&mut state.phase, Phase::Closed) {
            Phase::Open(tx) => {
                if let Err(error) = tx.end("ROLLBACK").await {
                    tracing::debug!(%error, "rollback of an abandoned batch failed; its connection is closed");
                }
            }
            Phase::Leased(tokens) => {
                drop(state);
                let leases = tokens.into_iter().map(|(id, token)| Lease { id, token });
                if let Err(error) = ops::hand_back_leases(&self.pool, &self.sql, leases).await {
                    tracing::warn!(%error, "could not hand back reservations; they return after their TTR");
                }
                self.wakeups.notify_waiters();
                return;
            }
            Phase::Closed => return,
        }
        drop(state);
        if let Err(error) = sqlx::query(&self.sql.notify)
            .bind(&self.sql.channel)
            .bind("")
            .execute(&self.pool)
            .await
        {
            tracing::debug!(%error, "could not tell reservers of an abandoned batch");
        }
        self.wakeups.notify_waiters();
    }
}

/// A row of the pick: id, priority, body, deliveries (this one counted), and which pick
/// found it (0: lease run out, 1: delay ended, 2: ready).
type Picked = (i64, i64, Vec<u8>, i64, i32);

/// Reserves up to `max` items of `queues` in a transaction left open (see the module's
/// doc), in the order `ops::reserve` gives; with nothing found, it is rolled back at once.
pub(super) async fn reserve(
    pool: &PgPool,
    sql: &Arc<Sql>,
    queues: &[String],
    max: usize,
    opening: Opening,
    wakeups: Arc<Notify>,
    hold: Duration,
) -> Result<Found> {
    let connection = pool.acquire().await.map_err(op("reserve"))?;
    // The transaction's guard first: should the `BEGIN` half succeed, the connection is
    // closed, never given back to the pool inside a transaction.
    let mut tx = Tx {
        connection: Some(connection),
        _opening: opening,
    };
    limited(tx.connection()?.execute(sql.held.begin.as_str()))
        .await
        .map_err(op("reserve"))?;
    let mut rows = Vec::new();
    for queue in queues {
        let room = max - rows.len();
        if room == 0 {
            break;
        }
        // On an error the transaction is aborted: what earlier queues gave goes with it.
        let pick = sqlx::query_as(&sql.held.pick)
            .bind(queue)
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .fetch_all(tx.connection()?);
        let picked: Vec<Picked> = limited(pick).await.map_err(op("reserve"))?;
        rows.extend(picked.into_iter().map(|row| (queue, row)));
    }
    if rows.is_empty() {
        tx.end("ROLLBACK").await.map_err(op("reserve"))?;
        return Ok(Found {
            jobs: Vec::new(),
            next_due_ms: ops::next_due_ms(pool, sql, queues).await?,
            batch: None,
        });
    }
    let expired = rows.iter().any(|(_, (.., late))| *late == 0);
    rows.sort_by_key(|(queue, (id, priority, _, _, late))| {
        let rank = queues.iter().position(|q| q == *queue);
        (rank, *late, *priority, *id)
    });
    let batch = Arc::new(Batch {
        state: Mutex::new(State {
            phase: Phase::Open(tx),
            unsettled: rows.iter().map(|(_, (id, ..))| *id).collect(),
            acked: Vec::with_capacity(rows.len()),
            waiting: false,
        }),
        sql: sql.clone(),
        pool: pool.clone(),
        wakeups,
        ended: watch::channel(None).0,
    });
    let jobs = rows
        .into_iter()
        .map(|(queue, (id, _, body, deliveries, _))| {
            let held = Held {
                batch: batch.clone(),
                id,
            };
            Job::new(
                row_id(id),
                queue.clone(),
                Bytes::from(body),
                u32::try_from(deliveries).unwrap_or(u32::MAX),
            )
            .with_receipt(Receipt::new(held))
        })
        .collect();
    if expired {
        // A row whose lease ran out may still be settled by its old holder, whose `DELETE`
        // would wait on this transaction's lock: leased at once, the lock is gone in a
        // round trip and the old holder's settle finds the new token.
        batch.go_over_to_leases().await;
        if matches!(batch.state.lock().await.phase, Phase::Closed) {
            return Err(Error::Postgres {
                detail: "the reservation's transaction failed before its commit".to_owned(),
                source: None,
            });
        }
    } else {
        let timer = batch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            timer.go_over_to_leases().await;
        });
    }
    Ok(Found {
        jobs,
        next_due_ms: None,
        batch: Some(batch),
    })
}
