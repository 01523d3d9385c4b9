//! Acks gathered into one statement: each commit costs PostgreSQL a WAL flush, so a
//! worker acking its items one by one is bound by the disk, not by the queries.
//!
//! One task per transport takes every ack waiting when the previous statement returned
//! (up to [`MAX_BATCH`]) and deletes them with one `DELETE ... FROM unnest($ids, $tokens)`;
//! each caller learns whether its own row was still reserved with its token. An ack waits
//! for no timer: alone, it is sent at once; under load, it waits at most for the one
//! statement in flight. If the batch statement fails, each ack of it runs alone, so every
//! caller gets the error of its own row.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::ops::{self, Sql};
use crate::{Error, Result};

/// The most acks in one statement.
const MAX_BATCH: usize = 512;

/// One ack waiting for its statement: the row's id, its token, and where to answer
/// whether the row was deleted.
struct Pending {
    id: i64,
    token: i64,
    done: oneshot::Sender<Result<bool>>,
}

/// The acks of one transport.
#[derive(Debug)]
pub(super) struct Acks {
    send: mpsc::UnboundedSender<Pending>,
    task: JoinHandle<()>,
}

impl Acks {
    pub(super) fn start(pool: PgPool, sql: Arc<Sql>) -> Acks {
        let (send, receive) = mpsc::unbounded_channel();
        Acks {
            send,
            task: tokio::spawn(run(pool, sql, receive)),
        }
    }

    /// Deletes row `id` if it is still reserved with `token`; `false` if it is not.
    pub(super) async fn ack(&self, id: i64, token: i64) -> Result<bool> {
        let (done, answer) = oneshot::channel();
        self.send
            .send(Pending { id, token, done })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for Acks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: PgPool, sql: Arc<Sql>, mut receive: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receive.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (ids, tokens): (Vec<i64>, Vec<i64>) = batch.iter().map(|p| (p.id, p.token)).unzip();
        match ops::ack_all(&pool, &sql, &ids, &tokens).await {
            Ok(gone) => {
                let gone: HashSet<(i64, i64)> = gone.into_iter().collect();
                for pending in batch.drain(..) {
                    let deleted = gone.contains(&(pending.id, pending.token));
                    let _ = pending.done.send(Ok(deleted));
                }
            }
            // The server or the pool is away: the same for every ack of the batch, and
            // running them one by one would only wait for it again each.
            Err(
                error @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
            ) => {
                let error = ops::op("ack")(error);
                let text = error.to_string();
                let mut first = Some(error);
                for pending in batch.drain(..) {
                    let error = first.take().unwrap_or_else(|| Error::Postgres {
                        detail: text.clone(),
                        source: None,
                    });
                    let _ = pending.done.send(Err(error));
                }
            }
            // A database error (a statement timeout, a cancel): each ack alone, so that
            // every caller gets the answer of its own row.
            Err(_) => {
                for pending in batch.drain(..) {
                    let alone = ops::ack_all(&pool, &sql, &[pending.id], &[pending.token])
                        .await
                        .map(|gone| !gone.is_empty())
                        .map_err(ops::op("ack"));
                    let _ = pending.done.send(alone);
                }
            }
        }
    }
}
