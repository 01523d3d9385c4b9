//! Opening the queue file: the path checks, the pragmas, the schema; and turning SQLite's
//! errors into errors that name the file and say what to do.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, MAIN_DB};

use super::busy;
use super::schema::{self, SchemaError};
use super::SqliteOptions;
use crate::{Error, Result};

fn fault(path: &Path, detail: impl Into<String>) -> Error {
    Error::Sqlite {
        path: path.to_owned(),
        detail: detail.into(),
        source: None,
    }
}

/// The absolute path of the queue file: relative paths are relative to the working
/// directory; the folder must exist (its symbolic links are resolved, so one file has one
/// name in this process).
pub(super) fn resolve(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidUrl {
            url: "sqlite://".into(),
            reason: "missing file path: write sqlite://mq.db (relative to the working \
                     directory) or sqlite:///srv/mq.db (absolute)"
                .into(),
        });
    }
    let absolute = std::path::absolute(path)
        .map_err(|error| fault(path, format!("cannot make the path absolute: {error}")))?;
    let (Some(folder), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err(fault(
            &absolute,
            "this names a folder, not a file: add a file name, e.g. mq.db",
        ));
    };
    if !folder.is_dir() {
        let detail = if folder.exists() {
            format!("{} is not a folder", folder.display())
        } else {
            format!(
                "folder {} does not exist: create it or choose another path",
                folder.display()
            )
        };
        return Err(fault(&absolute, detail));
    }
    let folder = folder
        .canonicalize()
        .map_err(|error| fault(&absolute, format!("cannot resolve its folder: {error}")))?;
    let resolved = folder.join(name);
    if resolved.is_dir() {
        return Err(fault(
            &resolved,
            format!(
                "this is a folder: name a file in it, e.g. sqlite://{}/mq.db",
                resolved.display()
            ),
        ));
    }
    Ok(resolved)
}

/// Opens the queue file (creating it if it is missing and `options` allow) and brings its
/// schema up to date.
pub(super) fn connection(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let missing = || {
        fault(
            path,
            "no such file, and this open creates none: point MQ_URL (or `mq --url \
             sqlite://PATH`) at the queue file your workers use",
        )
    };
    if !options.create_if_missing && !path.exists() {
        return Err(missing());
    }
    // Checked by hand because SQLite running as root writes to a read-only file anyway.
    if std::fs::metadata(path).is_ok_and(|meta| meta.permissions().readonly()) {
        return Err(fault(
            path,
            "the file is read-only, and the queue writes to it: make it writable or choose \
             another path",
        ));
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.create_if_missing {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        // Removed since the check above.
        if !options.create_if_missing && !path.exists() {
            missing()
        } else {
            error(path, e)
        }
    })?;
    if conn.is_readonly(MAIN_DB).map_err(|e| error(path, e))? {
        return Err(fault(
            path,
            "SQLite opened the file read-only (check the permissions of the file and its \
             folder): the queue writes to it",
        ));
    }
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| error(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Another process may be creating the file, or switching it to WAL mode, right now:
    // SQLite answers "locked" at once for some of those locks, so try again until the
    // busy timeout.
    busy::retry(options.busy_timeout, Step::is_busy, || {
        set_up(&conn, options)
    })
    .map_err(|gave_up| match gave_up.error {
        Step::Sqlite(what, e) if busy::is_busy(&e) => fault(
            path,
            format!(
                "another connection kept the file locked for {:.1?} (the busy timeout is \
                     {:?}) while this one was {what}: a process holds a long transaction on \
                     it; end it, or raise SqliteOptions::busy_timeout ({e})",
                gave_up.waited, options.busy_timeout
            ),
        ),
        Step::Sqlite(_, e) => error(path, e),
        Step::Schema(SchemaError::Sqlite(e)) => error(path, e),
        Step::Schema(SchemaError::TooNew(version)) => fault(
            path,
            format!(
                "the file has schema version {version}, newer than this build of mq knows \
                     ({}): upgrade mq",
                schema::VERSION
            ),
        ),
        Step::Schema(SchemaError::Foreign(version)) => fault(
            path,
            format!(
                "this SQLite database is not an mq queue (its user_version is {version} but \
                     it has no mq tables): choose another file"
            ),
        ),
    })?;
    Ok(conn)
}

/// Which step of [`set_up`] failed, and how.
#[derive(Debug)]
enum Step {
    /// A pragma failed; the text says what the connection was doing.
    Sqlite(&'static str, rusqlite::Error),
    /// The schema could not be brought up to date.
    Schema(SchemaError),
}

impl Step {
    fn is_busy(&self) -> bool {
        match self {
            Step::Sqlite(_, error) | Step::Schema(SchemaError::Sqlite(error)) => {
                busy::is_busy(error)
            }
            Step::Schema(_) => false,
        }
    }
}

/// The pragmas, then the schema; each may be run again if the file was locked.
fn set_up(conn: &Connection, options: &SqliteOptions) -> Result<(), Step> {
    configure(conn, options)?;
    schema::migrate(conn).map_err(|failure| match failure {
        SchemaError::Sqlite(e) if busy::is_busy(&e) => {
            Step::Sqlite("creating or checking the schema", e)
        }
        other => Step::Schema(other),
    })
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), Step> {
    const WAL: &str = "switching the file to WAL mode";
    // The first statement that reads the file: a file that is not a database fails here.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| Step::Sqlite(WAL, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Step::Sqlite(
            WAL,
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!(
                    "cannot switch to WAL mode (journal mode stays {mode}); WAL needs a local \
                     file system with shared memory"
                )),
            ),
        ));
    }
    let pragmas = || -> rusqlite::Result<()> {
        // In WAL mode, NORMAL syncs at checkpoints, not at every commit: a power cut may
        // lose the last commits, a crash of the process loses nothing. See docs/sqlite.md.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if let Some(bytes) = options.max_size {
            let page: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
            let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page.max(512);
            conn.pragma_update(None, "max_page_count", pages.max(1))?;
        }
        Ok(())
    };
    pragmas().map_err(|e| Step::Sqlite("setting its pragmas", e))
}

/// An SQLite error as an [`Error::Sqlite`] naming the file, with a hint where one helps.
pub(super) fn error(path: &Path, error: rusqlite::Error) -> Error {
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Some(
            "disk full: the file system has no room left for the file or its -wal and -shm \
             files, or the file reached its size limit: free space on the disk (or raise \
             SqliteOptions::max_size). mq refuses new messages while less than 4 MiB is left, \
             to keep room for reservations and acks; this write found none, so something \
             else took it",
        ),
        Some(ErrorCode::ReadOnly) => Some(
            "the file or its folder is read-only: the queue writes the file and its -wal and \
             -shm companions next to it",
        ),
        Some(ErrorCode::NotADatabase) => Some(
            "this file is not an SQLite database: point MQ_URL at a new file or an mq queue file",
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Some(
            "another connection holds a lock on the file (SQLite waits for it up to the busy \
             timeout, SqliteOptions::busy_timeout, where it can): a process keeps a long \
             transaction open on it",
        ),
        Some(ErrorCode::CannotOpen) => {
            Some("cannot open the file: check that its folder exists and is writable")
        }
        Some(ErrorCode::PermissionDenied) => {
            Some("permission denied: check the permissions of the file and its folder")
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            Some("the file is corrupt: move it aside and restore a backup")
        }
        Some(ErrorCode::SystemIoFailure) => Some("i/o error on the file or its -wal/-shm files"),
        _ => None,
    };
    let detail = match hint {
        Some(hint) => format!("{hint} ({error})"),
        None => error.to_string(),
    };
    Error::Sqlite {
        path: path.to_owned(),
        detail,
        source: Some(Box::new(error)),
    }
}

/// A copy of `error`, as far as callers can tell it: its code and message.
pub(super) fn same_sqlite_error(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code.extended_code),
            message.clone(),
        ),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A file another connection keeps locked: the open waits the whole busy timeout (not
    /// the few milliseconds SQLite waits when switching to WAL mode), then says so.
    #[test]
    fn a_file_locked_longer_than_the_busy_timeout_says_how_long_it_waited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mq.db");
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("BEGIN EXCLUSIVE; CREATE TABLE other (x); ")
            .unwrap();
        let timeout = Duration::from_millis(300);
        let options = SqliteOptions::default().busy_timeout(timeout);
        let start = Instant::now();
        let error = connection(&path, &options).unwrap_err();
        let waited = start.elapsed();
        let text = error.to_string();
        eprintln!("{text}");
        assert!(waited >= timeout, "gave up after {waited:?}: {text}");
        assert!(text.contains("kept the file locked for"), "{text}");
        assert!(text.contains("busy timeout is 300ms"), "{text}");
        assert!(text.contains("switching the file to WAL mode"), "{text}");
        holder.execute_batch("ROLLBACK").unwrap();
        connection(&path, &options).expect("opens once the lock is gone");
    }

    /// Without `create_if_missing`, a missing file is an error naming it, and stays missing;
    /// a file that exists opens.
    #[test]
    fn a_missing_file_is_not_created_when_asked_not_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mq.db");
        let existing = SqliteOptions::default().create_if_missing(false);
        let text = connection(&path, &existing).unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no such file"), "{text}");
        assert!(!path.exists(), "{text}");
        drop(connection(&path, &SqliteOptions::default()).expect("creates it"));
        connection(&path, &existing).expect("opens the file that now exists");
    }
}
