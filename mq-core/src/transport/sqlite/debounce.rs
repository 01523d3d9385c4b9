//! Debounce in `mq_debounce`: a burst's key names its waiting row; a dispatch while that row
//! is still delayed replaces its body and moves it later, under the writer's `BEGIN
//! IMMEDIATE`, so every process on the file sees one row per burst. A new burst first
//! deletes up to [`PURGE`] rows of bursts that ended (their row is no longer waiting: ready, running, done), so
//! the table holds about one row per waiting burst, not one per key ever used.

use rusqlite::{params, OptionalExtension};

use super::ops::{self, Db, Outcome};
use crate::transport::columns::{ms_ceil, row_id, sql_id};
use crate::transport::{Debounce, Put, PutOptions};

/// How many ended bursts' rows a new burst deletes.
const PURGE: i64 = 64;

/// Replaces the body of the burst's waiting row and moves it later, or puts a new row.
pub(super) fn put(
    db: &Db<'_>,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    debounce: &Debounce,
) -> Outcome<Put> {
    let burst: Option<(i64, i64)> = db
        .conn
        .prepare_cached("SELECT item, began FROM mq_debounce WHERE key = ?1")?
        .query_row([&debounce.key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((item, began)) = burst {
        let due = db
            .now
            .saturating_add(ms_ceil(debounce.quiet))
            .min(began.saturating_add(ms_ceil(debounce.max_wait)));
        let moved = db
            .conn
            .prepare_cached(
                "UPDATE mq_messages SET body = ?2, due_at = ?3 \
                 WHERE id = ?1 AND state = 1 AND due_at > ?4",
            )?
            .execute(params![item, body, due, db.now])?;
        if moved == 1 {
            return Ok(Ok(Put::Queued(row_id(item))));
        }
    }
    db.conn
        .prepare_cached(
            "DELETE FROM mq_debounce WHERE key IN (SELECT key FROM mq_debounce AS d \
             WHERE NOT EXISTS (SELECT 1 FROM mq_messages AS m WHERE m.id = d.item \
             AND m.state = 1 AND m.due_at > ?1) LIMIT ?2)",
        )?
        .execute([db.now, PURGE])?;
    let options = options.with_delay(debounce.first_delay());
    let id = match ops::put_new(db, queue, body, &options)? {
        Ok(id) => id,
        Err(full) => return Ok(Err(full)),
    };
    db.conn
        .prepare_cached(
            "INSERT OR REPLACE INTO mq_debounce (key, item, began) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![debounce.key, sql_id(id), db.now])?;
    Ok(Ok(Put::Queued(id)))
}
