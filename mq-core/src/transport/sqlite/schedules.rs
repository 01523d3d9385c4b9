//! The notes of the schedules workers run, in `mq_schedules` (for `mq schedules`): one row
//! per schedule name, written over by every worker running it.

use rusqlite::params;

use super::ops::{Db, Outcome};
use crate::transport::columns::{epoch_ms, epoch_time};
use crate::transport::ScheduleNote;

/// Writes `note` over the row of its name; a `last` of `None` keeps the row's.
pub(super) fn note(db: &Db<'_>, note: &ScheduleNote) -> Outcome<()> {
    db.conn
        .prepare_cached(
            "INSERT INTO mq_schedules (name, message, ticks, next_ms, last_ms, seen_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO UPDATE SET \
             message = excluded.message, ticks = excluded.ticks, next_ms = excluded.next_ms, \
             last_ms = coalesce(excluded.last_ms, last_ms), seen_ms = excluded.seen_ms",
        )?
        .execute(params![
            note.name,
            note.message,
            note.when,
            note.next.map(epoch_ms),
            note.last.map(epoch_ms),
            db.now
        ])?;
    Ok(Ok(()))
}

/// Every note, by name.
pub(super) fn list(db: &Db<'_>) -> Outcome<Vec<ScheduleNote>> {
    let mut statement = db.conn.prepare_cached(
        "SELECT name, message, ticks, next_ms, last_ms, seen_ms FROM mq_schedules ORDER BY name",
    )?;
    let rows = statement.query_map([], |row| {
        let time = |ms: Option<i64>| ms.map(epoch_time);
        Ok(ScheduleNote::new(
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        )
        .next(time(row.get(3)?))
        .last(time(row.get(4)?))
        .seen(epoch_time(row.get(5)?)))
    })?;
    Ok(Ok(rows.collect::<rusqlite::Result<_>>()?))
}
