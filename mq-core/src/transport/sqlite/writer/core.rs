//! The write connection and what goes with it: the room for new messages, when it last
//! found the file locked, and how a group of operations becomes one transaction.
//!
//! It sits behind a mutex that the writer thread takes for each batch, and that a caller
//! takes instead when it finds the writer idle (see [`Writer::put`](super::Writer::put)):
//! both run the same transaction code, so an operation commits the same way whichever
//! thread runs it.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use std::{fmt, slice};

use rusqlite::Connection;

use super::super::ops::Db;
use super::super::room::Room;
use super::super::{busy, open};
use super::Pending;
use crate::Error;

/// The file's one write connection.
pub(super) struct Core {
    pub(super) conn: Connection,
    pub(super) room: Room,
    pub(super) path: PathBuf,
    pub(super) busy_timeout: Duration,
    /// When a transaction last found the file locked by another connection past the busy
    /// timeout.
    pub(super) locked_out: Option<Instant>,
}

/// What a batch did, beyond its answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Executed {
    /// A message became ready: idle reservers are to be woken.
    pub(super) woke: bool,
    /// Something was written: the WAL is to be shrunk once the writer rests.
    pub(super) wrote: bool,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Runs `batch` in one transaction (or, if that fails for one operation's sake, each in
    /// a transaction of its own), leaving each operation's answer in it.
    pub(super) fn execute(&mut self, batch: &mut [Box<dyn Pending>]) -> Executed {
        // A caller that panicked inside its operation left its transaction open.
        self.rollback();
        let changes = self.conn.total_changes();
        let woke = self.execute_all(batch);
        Executed {
            woke,
            wrote: self.conn.total_changes() != changes,
        }
    }

    fn execute_all(&mut self, batch: &mut [Box<dyn Pending>]) -> bool {
        match self.transaction(batch) {
            Ok(woke) => woke,
            // A lock held past the busy timeout is no operation's doing: running each again
            // on its own would wait the busy timeout once per operation.
            Err(error) if batch.len() == 1 || busy::is_busy(&error) => {
                self.rollback();
                if busy::is_busy(&error) {
                    self.locked_out = Some(Instant::now());
                }
                let failure = open::error(&self.path, error);
                for op in batch.iter_mut() {
                    op.fault(self.copy(&failure));
                }
                false
            }
            Err(_) => {
                self.rollback();
                let mut woke = false;
                for op in batch.iter_mut() {
                    op.reset();
                    match self.transaction(slice::from_mut(op)) {
                        Ok(one) => woke |= one,
                        Err(error) => {
                            self.rollback();
                            op.fault(open::error(&self.path, error));
                        }
                    }
                }
                woke
            }
        }
    }

    /// The same fault again, for each operation of a failed batch.
    fn copy(&self, failure: &Error) -> Error {
        let (detail, source) = match failure {
            Error::Sqlite { detail, source, .. } => {
                let sqlite = source
                    .as_ref()
                    .and_then(|source| source.downcast_ref::<rusqlite::Error>())
                    .map(|error| -> crate::Cause { Box::new(open::same_sqlite_error(error)) });
                (detail.clone(), sqlite)
            }
            other => (other.to_string(), None),
        };
        Error::Sqlite {
            path: self.path.clone(),
            detail,
            source,
        }
    }

    /// Runs `ops` in one transaction; true if one of them made a message ready.
    fn transaction(&self, ops: &mut [Box<dyn Pending>]) -> rusqlite::Result<bool> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let db = Db::new(&self.conn, &self.room);
        for op in ops.iter_mut() {
            op.run(&db)?;
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(db.woke.get())
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(path = %self.path.display(), %error, "sqlite rollback failed");
            }
        }
    }

    /// Whether another connection held the file locked past the busy timeout lately (within
    /// one busy timeout, at least a second). Callers then leave their operations to the
    /// writer thread, which waits the lock out once for all of them, instead of each
    /// waiting it out in turn on its own thread.
    pub(super) fn contended(&self) -> bool {
        let lately = self.busy_timeout.max(Duration::from_secs(1));
        self.locked_out.is_some_and(|at| at.elapsed() < lately)
    }

    /// Copies the WAL into the file and truncates it, giving its room back to the file
    /// system (SQLite otherwise keeps the WAL at its largest size). Never waits: if another
    /// connection reads or writes, the WAL stays as it is until this one writes and rests
    /// again.
    pub(super) fn shrink_wal(&self) {
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
        if let Err(error) = self.conn.busy_timeout(self.busy_timeout) {
            tracing::warn!(path = %self.path.display(), %error, "sqlite busy timeout not restored");
        }
        tracing::debug!(path = %self.path.display(), ?done, "sqlite wal checkpoint (truncate)");
    }

    /// Changes whenever another connection (another process) commits to the file.
    pub(super) fn data_version(&self) -> Option<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .ok()
    }
}
