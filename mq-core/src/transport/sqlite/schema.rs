//! The queue file's schema, versioned with `PRAGMA user_version`, and its migrations.
//!
//! Version `n` of the schema is what the first `n` entries of [`MIGRATIONS`] create. A file
//! is brought up to date on open, inside one `BEGIN IMMEDIATE` transaction, so two processes
//! opening a new file at once do not both create it. A file written by a newer mq (a version
//! this build does not know) is refused rather than guessed at.
//!
//! Tables are prefixed `mq_` so that a queue can live in an application's own database.

use rusqlite::{Connection, OptionalExtension};

/// One entry per schema version: the SQL that takes a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// `mq_messages.state` of a row waiting to be reserved. The statements in `ops` spell the
/// states as literals (0 ready, 1 delayed, 2 reserved) so that SQLite can match them to
/// the partial indexes.
pub(super) const READY: i64 = 0;
/// `mq_messages.state` of a row waiting for its delay; `due_at` is when it becomes ready.
/// (2 is a reserved row; `due_at` is when its lease ends.)
pub(super) const DELAYED: i64 = 1;

/// Version 1.
///
/// `mq_messages`: one row per queued item. `state` is ready, delayed or reserved; `due_at`
/// (milliseconds since the Unix epoch) is when a delayed row becomes ready or a reserved
/// row's lease ends, 0 for ready rows. `deliveries` counts reservations and is the token of
/// the current one: an ack carrying an older count is refused. Ids are `AUTOINCREMENT`, so
/// never reused: a stale worker's (id, deliveries) can never name a newer message.
///
/// `mq_messages_ready` serves "next ready rows of a queue by priority, then age" straight
/// from the index (no sort); `mq_messages_due` finds delayed rows and leases whose time came.
const V1: &str = "
CREATE TABLE mq_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    state       INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    ttr_ms      INTEGER NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    body        BLOB    NOT NULL
);
CREATE INDEX mq_messages_ready ON mq_messages (queue, priority, id) WHERE state = 0;
CREATE INDEX mq_messages_due ON mq_messages (due_at) WHERE state > 0;
CREATE TABLE mq_failed (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    delay_ms    INTEGER NOT NULL,
    ttr_ms      INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL,
    failure     TEXT    NOT NULL,
    body        BLOB    NOT NULL
);
CREATE INDEX mq_failed_queue ON mq_failed (queue, id);
";

/// Version 2: unique keys.
///
/// `mq_unique`: one row per unique key taken. `item` is the `mq_messages` row that holds
/// it while the message is queued or running (a retry's replacement row takes it over);
/// once the message ended, `item` is NULL and the key stays taken until `until`
/// (milliseconds since the Unix epoch, the end plus `hold_ms`); a key without a hold is
/// deleted at the end. `message_id` is the envelope id a second dispatch gets back.
const V2: &str = "
CREATE TABLE mq_unique (
    key         TEXT    PRIMARY KEY NOT NULL,
    message_id  TEXT    NOT NULL,
    item        INTEGER,
    hold_ms     INTEGER NOT NULL,
    until       INTEGER
) WITHOUT ROWID;
CREATE INDEX mq_unique_item ON mq_unique (item) WHERE item IS NOT NULL;
CREATE INDEX mq_unique_until ON mq_unique (until) WHERE item IS NULL;
";

/// Version 3: per-key concurrency permits.
///
/// `mq_permits`: one row per permit taken, until `until` (milliseconds since the Unix
/// epoch, the lease's end; a permit whose holder died is free after it).
const V3: &str = "
CREATE TABLE mq_permits (
    token       INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL,
    until       INTEGER NOT NULL
);
CREATE INDEX mq_permits_key ON mq_permits (key, until);
";

/// Version 4: debounce. `mq_debounce`: per key, the row of its latest burst and when the
/// burst began (milliseconds since the Unix epoch).
const V4: &str = "
CREATE TABLE mq_debounce (
    key         TEXT    PRIMARY KEY NOT NULL,
    item        INTEGER NOT NULL,
    began       INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 5: what the workers note of the schedules they run, for `mq schedules`: per
/// schedule name, its message, when it ticks, the next and the last tick, and when a worker
/// last wrote it (milliseconds since the Unix epoch).
const V5: &str = "
CREATE TABLE mq_schedules (
    name        TEXT    PRIMARY KEY NOT NULL,
    message     TEXT    NOT NULL,
    ticks       TEXT    NOT NULL,
    next_ms     INTEGER,
    last_ms     INTEGER,
    seen_ms     INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Why a file cannot be used as a queue, beyond an SQLite error.
#[derive(Debug)]
pub(super) enum SchemaError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The file says it is at a version this build does not know.
    TooNew(i64),
    /// `user_version` is set but the queue tables are missing: someone else's database.
    Foreign(i64),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(error: rusqlite::Error) -> Self {
        SchemaError::Sqlite(error)
    }
}

/// Brings the file's schema up to [`VERSION`].
pub(super) fn migrate(conn: &Connection) -> Result<(), SchemaError> {
    if version(conn)? == VERSION && has_table(conn, "mq_messages")? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = migrate_locked(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match (result, conn.execute_batch(end)) {
        (Err(error), _) => Err(error),
        (Ok(()), Err(error)) => Err(error.into()),
        (Ok(()), Ok(())) => Ok(()),
    }
}

fn migrate_locked(conn: &Connection) -> Result<(), SchemaError> {
    // Read again under the write lock: another process may have migrated meanwhile.
    let current = version(conn)?;
    if current > VERSION {
        return Err(SchemaError::TooNew(current));
    }
    if current > 0 && !has_table(conn, "mq_messages")? {
        return Err(SchemaError::Foreign(current));
    }
    for (from, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", from as i64 + 1)?;
    }
    Ok(())
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn creates_the_schema_once_and_sets_the_version() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        assert_eq!(version(&conn).unwrap(), VERSION);
        migrate(&conn).unwrap();
        assert!(has_table(&conn, "mq_failed").unwrap());
    }

    #[test]
    fn refuses_a_newer_or_foreign_file() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&conn), Err(SchemaError::TooNew(v)) if v == VERSION + 1));
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        assert!(matches!(migrate(&conn), Err(SchemaError::Foreign(1))));
    }

    #[test]
    fn next_ready_rows_come_from_the_index_without_a_sort() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let reserve = super::super::ops::SELECT_READY;
        let plan = query_plan(&conn, &reserve.replace("?1", "'q'").replace("?2", "10"));
        assert!(plan.contains("mq_messages_ready"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        let promote = super::super::ops::PROMOTE_DUE;
        let plan = query_plan(&conn, &promote.replace("?1", "0"));
        assert!(plan.contains("mq_messages_due"), "{plan}");
    }
}
