//! Unique keys in `mq_unique`, kept in the same transaction as the rows they guard: a put
//! takes a key only if no row holds it, an ack or failure frees it (or keeps it for its
//! `hold_after`), a retry hands it to the replacement row. Every process on the file
//! writes under `BEGIN IMMEDIATE`, so the check and the put are one step for all of them.

use rusqlite::{params, OptionalExtension};

use super::ops::{self, Db, Outcome};
use crate::transport::columns::{ms_ceil, sql_id};
use crate::transport::{Put, PutOptions, Unique};

/// Puts `body` unless a row holds `unique.key` or its hold after the end has not run out.
pub(super) fn put(
    db: &Db<'_>,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    unique: &Unique,
) -> Outcome<Put> {
    db.conn
        .prepare_cached("DELETE FROM mq_unique WHERE item IS NULL AND until <= ?1")?
        .execute([db.now])?;
    let holder: Option<String> = db
        .conn
        .prepare_cached("SELECT message_id FROM mq_unique WHERE key = ?1")?
        .query_row([&unique.key], |row| row.get(0))
        .optional()?;
    if let Some(holder) = holder {
        return Ok(Ok(Put::Existing(holder)));
    }
    let id = match ops::put_new(db, queue, body, options)? {
        Ok(id) => id,
        Err(full) => return Ok(Err(full)),
    };
    db.conn
        .prepare_cached(
            "INSERT INTO mq_unique (key, message_id, item, hold_ms, until) \
             VALUES (?1, ?2, ?3, ?4, NULL)",
        )?
        .execute(params![
            unique.key,
            unique.message_id,
            sql_id(id),
            ms_ceil(unique.hold_after)
        ])?;
    Ok(Ok(Put::Queued(id)))
}

/// The row `id` is gone: its key passes to `replacement` (a retry's new row), or is kept
/// for its `hold_ms` from now, or freed.
pub(super) fn ended(db: &Db<'_>, id: u64, replacement: Option<u64>) -> rusqlite::Result<()> {
    if let Some(new) = replacement {
        db.conn
            .prepare_cached("UPDATE mq_unique SET item = ?2 WHERE item = ?1")?
            .execute([sql_id(id), sql_id(new)])?;
        return Ok(());
    }
    db.conn
        .prepare_cached("DELETE FROM mq_unique WHERE item = ?1 AND hold_ms = 0")?
        .execute([sql_id(id)])?;
    db.conn
        .prepare_cached("UPDATE mq_unique SET item = NULL, until = ?2 + hold_ms WHERE item = ?1")?
        .execute([sql_id(id), db.now])?;
    Ok(())
}

/// Frees the keys of rows that `flush` deleted.
pub(super) fn flushed(db: &Db<'_>) -> rusqlite::Result<()> {
    db.conn
        .prepare_cached(
            "DELETE FROM mq_unique WHERE item IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM mq_messages WHERE id = mq_unique.item)",
        )?
        .execute([])?;
    Ok(())
}
