//! The connection a held batch's transaction runs on, the limit on how many are open, and
//! the time limit of each of its statements.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{Either, Executor, PgConnection, PgPool, Postgres};

use super::super::url::PgUrl;
use crate::{Error, Result};

/// The longest one statement of a held batch may take before the batch is given up (its
/// connection closed, so PostgreSQL rolls it back): a server that vanished without closing
/// the connection must not leave the batch's settles waiting for TCP to notice.
const STATEMENT_LIMIT: Duration = Duration::from_secs(10);

/// `statement` within [`STATEMENT_LIMIT`].
pub(super) async fn limited<T>(
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

/// The open batches of one transport, against their limit.
#[derive(Debug)]
pub(in crate::transport::postgres) struct Openings {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Openings {
    /// At most `(pool - 2) / 2` open at once: the listener and the other statements keep
    /// the rest of the pool. None with `?hold=0`.
    pub(in crate::transport::postgres) fn for_url(url: &PgUrl) -> Openings {
        let max = if url.hold.is_zero() {
            0
        } else {
            url.pool.saturating_sub(2) / 2
        };
        Openings {
            open: Arc::default(),
            max: usize::try_from(max).unwrap_or(0),
        }
    }

    /// A place for one more open batch, if there is room.
    pub(in crate::transport::postgres) fn take(&self) -> Option<Opening> {
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
pub(in crate::transport::postgres) struct Opening(Arc<AtomicUsize>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection of an open transaction. Dropped while the transaction is still open, it
/// is closed rather than given back to the pool, which ends the transaction (a rollback).
#[derive(Debug)]
pub(in crate::transport::postgres) struct Tx {
    connection: Option<PoolConnection<Postgres>>,
    _opening: Opening,
}

impl Tx {
    /// A connection of `pool` with a transaction begun by `begin` (a `BEGIN` and the
    /// `SET LOCAL`s that go with it, in one round trip).
    pub(super) async fn begin(
        pool: &PgPool,
        opening: Opening,
        begin: &str,
    ) -> std::result::Result<Tx, sqlx::Error> {
        // The guard first: should the `BEGIN` half succeed, the connection is closed, never
        // given back to the pool inside a transaction.
        let mut tx = Tx {
            connection: Some(pool.acquire().await?),
            _opening: opening,
        };
        if let Some(connection) = tx.connection.as_deref_mut() {
            limited(connection.execute(begin)).await?;
        }
        Ok(tx)
    }

    pub(super) fn connection(&mut self) -> Result<&mut PgConnection> {
        self.connection.as_deref_mut().ok_or(Error::Closed)
    }

    /// Runs `statement`, a simple query of one or more statements: how many of them
    /// completed, and the error of the one that failed, if any.
    pub(super) async fn run(
        &mut self,
        statement: &str,
    ) -> (usize, std::result::Result<(), sqlx::Error>) {
        let Some(connection) = self.connection.as_deref_mut() else {
            return (0, Err(sqlx::Error::PoolClosed));
        };
        let mut done = 0;
        let run = async {
            let mut results = connection.fetch_many(statement);
            while let Some(result) = results.try_next().await? {
                if let Either::Left(_) = result {
                    done += 1;
                }
            }
            Ok(())
        };
        let result = limited(run).await;
        (done, result)
    }

    /// The connection back to the pool: the transaction ended (`COMMIT` or `ROLLBACK` ran).
    pub(super) fn ended(mut self) {
        self.connection.take();
    }

    /// Ends the transaction with `statement` (a `COMMIT` or `ROLLBACK`, after whatever
    /// goes with it in the same round trip); the connection goes back to the pool.
    pub(super) async fn end(mut self, statement: &str) -> std::result::Result<(), sqlx::Error> {
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
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            connection.close_on_drop();
        } else {
            // No runtime to close it in (a spare, its transport dropped outside one): the
            // socket closes with the connection taken off the pool.
            drop(connection.detach());
        }
    }
}
