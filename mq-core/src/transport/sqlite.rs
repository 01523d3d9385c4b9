//! The embedded default: a durable SQLite queue (being written; see issue 5).

use std::path::PathBuf;

use crate::{Error, Result};

/// An SQLite file used as a queue.
#[derive(Debug)]
pub struct SqliteTransport {
    _path: PathBuf,
}

impl SqliteTransport {
    /// Opens (creating if needed) the queue file at `path`.
    ///
    /// # Errors
    ///
    /// Not implemented yet.
    pub async fn open(path: &str) -> Result<SqliteTransport> {
        Err(Error::Sqlite {
            path: PathBuf::from(path),
            detail: "the sqlite backend is not implemented yet".into(),
        })
    }
}

pub(crate) async fn connect(path: &str) -> Result<std::sync::Arc<dyn super::Transport>> {
    SqliteTransport::open(path).await.map(|_| unreachable!())
}
