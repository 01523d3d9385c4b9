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
//! VACUUM back. The transaction's `idle_in_transaction_session_timeout` ([`IDLE_LIMIT`](sql::IDLE_LIMIT))
//! ends one whose process hangs, or whose machine went away without closing its
//! connection.
//!
//! A settle returns once it is committed, as on a lease: with the batch's last settle, or,
//! when the others take longer than [`SETTLE_WAIT`], with a commit that leases what is
//! still unsettled. The worker's ack of an item that is not its batch's last
//! ([`Held::send_ack`]) is the exception: it returns once recorded (after any statement of
//! the batch already running), and is counted until the transaction ends. A batch lost
//! before its commit (its connection or the server went away) answers each settle waiting
//! with the error, logs the acks it loses, and its rows are reservable again: at least
//! once, as ever, never lost. At most `(pool - 2) / 2` batches of
//! a transport are open at once (4 with the default pool of 10), so that they never take
//! the connections the other statements need; beyond that, `reserve` leases.
//!
//! A commit also begins the transport's next batch, in its round trip (`COMMIT; BEGIN`),
//! when no such [`Spare`] waits yet: the next `reserve` picks in it at once, so a batch
//! costs two round trips, not three. A spare holds no row and is rolled back after
//! 100 ms unused (`spare::SPARE_AGE`).
//!
//! A pick of ready rows starts after the last one its transport took (`cursor`), not at the
//! queue's start, where it would walk the rows of the batches just committed.
//!
//! Modules: `sql` (the statements), `tx` (the transaction's connection, the limit on open
//! batches, each statement's time limit), `spare` (the transaction a commit begins for the
//! next batch), `cursor` (where each pick starts); here the batch and its settles.

mod cursor;
mod spare;
mod sql;
mod tx;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;
use tokio::sync::{watch, Mutex, Notify};

use super::ops::{self, op, Found, Lease, Sql};
use crate::transport::columns::{epoch_ms, ms_ceil, row_id};
use crate::transport::unanswered::Unanswered;
use crate::transport::{Failure, PutOptions, Receipt};
use crate::{Error, Result};
pub(super) use cursor::Cursors;
pub(super) use spare::Spare;
pub(super) use sql::HeldSql;
pub(super) use tx::Openings;
pub(super) use tx::Tx;
use tx::{limited, Opening};

/// The longest a settle waits for the other items of its batch before the batch commits
/// without them (they go over to leases): what an ack may cost beyond its round trip, and
/// how long an ack nobody waits for ([`Held::send_ack`]) stays uncommitted.
const SETTLE_WAIT: Duration = Duration::from_millis(5);

/// The receipt of an item of a held batch.
#[derive(Debug)]
pub(super) struct Held {
    batch: Arc<Batch>,
    id: i64,
    /// Its place in the batch (see [`Unsettled`]).
    index: usize,
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
    /// batch's connection in half. An ack that is not the batch's last runs no statement,
    /// and needs no task.
    pub(super) async fn settle(&self, how: Settle) -> Result<Option<Lease>> {
        let (batch, id, index) = (self.batch.clone(), self.id, self.index);
        if let Settle::Ack = how {
            if let Some(ended) = batch.ack_before_last(id, index, false).await {
                return Batch::committed(ended).await;
            }
        }
        tokio::spawn(batch.settle(id, index, how))
            .await
            .map_err(|_| Error::Closed)?
    }

    /// Acks the item without waiting for the commit, when other items of its batch are
    /// still unsettled: the transport's [`Unanswered`] counts it until the transaction
    /// ends (with the batch's last settle, or [`SETTLE_WAIT`] later), and a transaction
    /// lost before its commit is logged (`Batch::lose`). It may wait for a statement of
    /// the batch already running (a sibling's retry, the commit). False
    /// when it would be the batch's last (which commits) or the batch is no longer open:
    /// then the caller settles it as [`settle`](Self::settle) does.
    pub(super) async fn send_ack(&self) -> bool {
        self.batch
            .ack_before_last(self.id, self.index, true)
            .await
            .is_some()
    }
}

/// One batch reserved in a transaction of its own, and where its settles stand.
#[derive(Debug)]
pub(super) struct Batch {
    state: Mutex<State>,
    sql: Arc<Sql>,
    pool: PgPool,
    wakeups: Arc<Notify>,
    /// Where the commit leaves the next batch's transaction, begun in its round trip.
    spare: Arc<Spare>,
    /// How the transaction ended: `Ok` once committed, the error if it was lost; what the
    /// settles waiting for the commit learn.
    ended: watch::Sender<Option<std::result::Result<(), String>>>,
    /// The transport's count of acks sent and not yet committed or lost.
    unanswered: Arc<Unanswered>,
    /// The transport's cursors, reset when the batch's rows are ready again.
    cursors: Arc<Cursors>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Items not settled yet.
    unsettled: Unsettled,
    /// Items acked: deleted at the commit.
    acked: Vec<i64>,
    /// Whether an ack or settle is in, with a commit due after [`SETTLE_WAIT`] (whether or
    /// not its caller waits for it).
    waiting: bool,
    /// Acks whose caller did not wait for the commit ([`Held::send_ack`]), counted in
    /// `Batch::unanswered` until the transaction ends.
    sent: usize,
}

/// The items of a batch not settled yet, by their place in it: what a hash set of their
/// ids did, without hashing an id at every settle.
#[derive(Debug)]
struct Unsettled {
    ids: Vec<i64>,
    open: Vec<bool>,
    left: usize,
}

impl Unsettled {
    fn new(ids: Vec<i64>) -> Unsettled {
        Unsettled {
            open: vec![true; ids.len()],
            left: ids.len(),
            ids,
        }
    }

    fn contains(&self, index: usize) -> bool {
        self.open.get(index).copied().unwrap_or(false)
    }

    /// Whether item `index` was unsettled (it no longer is).
    fn remove(&mut self, index: usize) -> bool {
        match self.open.get_mut(index) {
            Some(open) if *open => {
                *open = false;
                self.left -= 1;
                true
            }
            _ => false,
        }
    }

    fn len(&self) -> usize {
        self.left
    }

    fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The ids of the items still unsettled.
    fn ids(&self) -> Vec<i64> {
        self.ids
            .iter()
            .zip(&self.open)
            .filter_map(|(id, open)| open.then_some(*id))
            .collect()
    }
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
    async fn settle(self: Arc<Self>, id: i64, index: usize, how: Settle) -> Result<Option<Lease>> {
        let mut state = self.state.lock().await;
        let State {
            phase,
            unsettled,
            acked,
            ..
        } = &mut *state;
        let tx = match phase {
            Phase::Open(tx) if unsettled.contains(index) => tx,
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
        state.unsettled.remove(index);
        if state.unsettled.is_empty() {
            self.commit(&mut state, HashMap::new()).await?;
            return Ok(None);
        }
        // Others are still running: the commit comes with the last of them, or, if that
        // takes longer than SETTLE_WAIT, with what is unsettled then going over to leases.
        let ended = self.ended.subscribe();
        if !state.waiting {
            state.waiting = true;
            self.lease_after(SETTLE_WAIT);
        }
        drop(state);
        Self::committed(ended).await
    }

    /// Acks item `id` when other items of the batch are still unsettled (it runs no
    /// statement: the row is deleted by the commit), and returns where the commit will be
    /// told; `None` when it would be the last, or the batch is no longer open: then
    /// [`settle`](Self::settle) decides. `sent`: the caller will not wait for the commit.
    async fn ack_before_last(
        self: &Arc<Self>,
        id: i64,
        index: usize,
        sent: bool,
    ) -> Option<watch::Receiver<Option<std::result::Result<(), String>>>> {
        let mut state = self.state.lock().await;
        let State {
            phase,
            unsettled,
            acked,
            waiting,
            ..
        } = &mut *state;
        if !matches!(phase, Phase::Open(_)) || unsettled.len() < 2 || !unsettled.remove(index) {
            return None;
        }
        acked.push(id);
        // The commit is due after SETTLE_WAIT even when nobody waits for it: until then the
        // acked row is still there to `mq stats` and to a unique key's next dispatch.
        if !*waiting {
            *waiting = true;
            self.lease_after(SETTLE_WAIT);
        }
        if sent {
            state.sent += 1;
            self.unanswered.sent();
        }
        Some(self.ended.subscribe())
    }

    /// How the transaction of `ended` ended, once it has.
    async fn committed(
        mut ended: watch::Receiver<Option<std::result::Result<(), String>>>,
    ) -> Result<Option<Lease>> {
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
        // The statements up to the `COMMIT`, which is the last of them.
        let mut commit_at = 1;
        if let Some((first, rest)) = state.acked.split_first() {
            // Written into the statement, not a `String` per id and their join.
            statement.push_str(&self.sql.held.delete);
            let _ = write!(statement, "{first}");
            for id in rest {
                let _ = write!(statement, ",{id}");
            }
            statement.push_str("}'::bigint[]); ");
            commit_at += 1;
        }
        if !tokens.is_empty() {
            statement.push_str("SET LOCAL synchronous_commit TO on; ");
            commit_at += 1;
        }
        statement.push_str("COMMIT");
        // The next batch's `BEGIN` in the same round trip, when no spare waits yet.
        let begin = self.spare.is_empty();
        if begin {
            statement.push_str("; ");
            statement.push_str(&self.sql.held.begin);
        }
        let mut tx = tx;
        let (done, result) = tx.run(&statement).await;
        let committed = match result {
            Ok(()) => {
                if begin {
                    Spare::put(&self.spare, tx);
                } else {
                    tx.ended();
                }
                Ok(())
            }
            // Failed after its commit (in the `BEGIN`): dropped, the connection is closed.
            Err(_) if done >= commit_at => Ok(()),
            Err(error) => Err(error),
        };
        match committed {
            Ok(()) => {
                state.acked.clear();
                state.phase = Phase::Leased(tokens);
                self.end(state, Ok(()));
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
        self.end(
            state,
            Err(format!(
                "the transaction of a reserved batch failed before its commit: {error}"
            )),
        );
    }

    /// The transaction ended, committed or lost: the settles waiting learn how, the sent
    /// acks are answered, and the transport's reservers look again.
    fn end(&self, state: &mut State, how: std::result::Result<(), String>) {
        if how.is_err() {
            // Its rows are ready again behind the cursors once the server has seen the
            // connection's end, maybe after this reset: then they are taken as another
            // process's would be (see `cursor`).
            self.cursors.reset();
        }
        self.ended.send_replace(Some(how));
        self.unanswered.answered(std::mem::take(&mut state.sent));
        self.wakeups.notify_waiters();
    }

    /// After `wait`, what is still unsettled goes over to leases (see
    /// [`go_over_to_leases`](Self::go_over_to_leases)): `hold` after the reservation, or
    /// [`SETTLE_WAIT`] after a settle began to wait for the others.
    fn lease_after(self: &Arc<Self>, wait: Duration) {
        let batch = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(error) = batch.go_over_to_leases().await {
                tracing::warn!(%error, "could not lease a batch's slow messages");
            }
        });
    }

    /// What is still unsettled goes over to leases, and the transaction commits; nothing
    /// when it is no longer open. On an error the batch is lost.
    async fn go_over_to_leases(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let ids = state.unsettled.ids();
        let Phase::Open(tx) = &mut state.phase else {
            return Ok(());
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
                self.commit(&mut state, tokens).await
            }
            Err(error) => {
                self.lose(&mut state, &error);
                Err(error)
            }
        }
    }

    /// Hands the batch back (the caller of `reserve` went away before receiving it): a
    /// rollback, or, if it went over to leases already, those handed back; and reservers
    /// told.
    pub(super) async fn abandon(&self) {
        let mut state = self.state.lock().await;
        self.unanswered.answered(std::mem::take(&mut state.sent));
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
                // Ready again, behind the cursors.
                self.cursors.reset();
                self.wakeups.notify_waiters();
                return;
            }
            Phase::Closed => return,
        }
        drop(state);
        // Ready again (or with the connection's end), behind the cursors.
        self.cursors.reset();
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

/// Where a held batch belongs: its transport's reservers to wake when it ends, the place
/// for the transaction its commit begins, and how long it may stay open (`?hold=`).
#[derive(Debug)]
pub(super) struct Home {
    pub(super) wakeups: Arc<Notify>,
    pub(super) spare: Arc<Spare>,
    pub(super) hold: Duration,
    pub(super) unanswered: Arc<Unanswered>,
    pub(super) cursors: Arc<Cursors>,
}

/// How a held batch's transaction starts.
#[derive(Debug)]
pub(super) enum Start {
    /// Begun already, in the round trip of an earlier batch's commit (see [`Spare`]).
    Begun(Tx),
    /// With a `BEGIN` of its own, on a connection of the pool, in this place.
    Open(Opening),
}

/// Reserves up to `max` items of `queues` in a transaction left open (see the module's
/// doc), in the order `ops::reserve` gives; with nothing found, it is rolled back at once.
pub(super) async fn reserve(
    pool: &PgPool,
    sql: &Arc<Sql>,
    queues: &[String],
    max: usize,
    start: Start,
    home: Home,
) -> Result<Found> {
    let mut tx = match start {
        Start::Begun(tx) => tx,
        Start::Open(opening) => Tx::begin(pool, opening, &sql.held.begin)
            .await
            .map_err(op("reserve"))?,
    };
    let mut rows = Vec::new();
    for queue in queues {
        let room = max - rows.len();
        if room == 0 {
            break;
        }
        let from = home.cursors.start(queue);
        // On an error the transaction is aborted: what earlier queues gave goes with it.
        let pick = sqlx::query(&sql.held.pick)
            .bind(queue)
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .bind(from.after.priority)
            .bind(from.after.id)
            .try_map(ops::picked)
            .fetch_all(tx.connection()?);
        let mut picked = match limited(pick).await {
            Ok(picked) => picked,
            Err(error) => {
                // The rows earlier queues gave are ready again, behind their cursors.
                home.cursors.reset();
                return Err(op("reserve")(error));
            }
        };
        let last_ready = picked
            .iter()
            .filter(|(.., late)| *late == 2)
            .map(|&(id, priority, ..)| cursor::Key { priority, id })
            .max();
        let found = cursor::Picked {
            last_ready,
            reached_ready: last_ready.is_some() || picked.len() < room,
        };
        home.cursors.picked(queue, &from, found);
        ops::in_reserve_order(&mut picked);
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
    let batch = Arc::new(Batch {
        state: Mutex::new(State {
            phase: Phase::Open(tx),
            unsettled: Unsettled::new(rows.iter().map(|(_, (id, ..))| *id).collect()),
            acked: Vec::with_capacity(rows.len()),
            waiting: false,
            sent: 0,
        }),
        sql: sql.clone(),
        pool: pool.clone(),
        wakeups: home.wakeups,
        spare: home.spare,
        ended: watch::channel(None).0,
        unanswered: home.unanswered,
        cursors: home.cursors,
    });
    let jobs = rows
        .into_iter()
        .enumerate()
        .map(|(index, (queue, (id, _, body, deliveries, _)))| {
            let held = Held {
                batch: batch.clone(),
                id,
                index,
            };
            ops::row_job(id, queue.clone(), body, deliveries).with_receipt(Receipt::new(held))
        })
        .collect();
    if expired {
        // A row whose lease ran out may still be settled by its old holder, whose `DELETE`
        // would wait on this transaction's lock: leased at once, the lock is gone in a
        // round trip and the old holder's settle finds the new token.
        batch.go_over_to_leases().await?;
    } else {
        batch.lease_after(home.hold);
    }
    Ok(Found {
        jobs,
        next_due_ms: None,
        batch: Some(batch),
    })
}
