//! The notes of the schedules workers run, in `mq_schedules` (for `mq schedules`): one row
//! per schedule name, written over by every worker running it.

use sqlx::PgPool;

use super::ops::{op, Sql};
use crate::transport::columns::{epoch_ms, epoch_time};
use crate::transport::ScheduleNote;
use crate::Result;

/// The statements of schedule notes, for one schema.
#[derive(Debug)]
pub(super) struct ScheduleSql {
    note: String,
    list: String,
}

impl ScheduleSql {
    pub(super) fn new(schema: &str) -> ScheduleSql {
        let s = format!("\"{schema}\".mq_schedules");
        ScheduleSql {
            note: format!(
                "INSERT INTO {s} AS s (name, message, ticks, next_tick, last_tick, seen_at) \
                 VALUES ($1, $2, $3, to_timestamp($4 / 1000.0), to_timestamp($5 / 1000.0), \
                 now()) ON CONFLICT (name) DO UPDATE SET \
                 message = EXCLUDED.message, ticks = EXCLUDED.ticks, \
                 next_tick = EXCLUDED.next_tick, \
                 last_tick = coalesce(EXCLUDED.last_tick, s.last_tick), seen_at = now()"
            ),
            list: format!(
                "SELECT name, message, ticks, {next}, {last}, {seen} FROM {s} ORDER BY name",
                next = ms("next_tick"),
                last = ms("last_tick"),
                seen = ms("seen_at"),
            ),
        }
    }
}

/// The SQL reading `column` as milliseconds since the Unix epoch.
fn ms(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000)::bigint")
}

/// Writes `note` over the row of its name; a `last` of `None` keeps the row's.
pub(super) async fn note(pool: &PgPool, sql: &Sql, note: &ScheduleNote) -> Result<()> {
    sqlx::query(&sql.schedules.note)
        .bind(&note.name)
        .bind(&note.message)
        .bind(&note.when)
        .bind(note.next.map(epoch_ms))
        .bind(note.last.map(epoch_ms))
        .execute(pool)
        .await
        .map_err(op("note schedule"))?;
    Ok(())
}

type Row = (String, String, String, Option<i64>, Option<i64>, i64);

/// Every note, by name.
pub(super) async fn list(pool: &PgPool, sql: &Sql) -> Result<Vec<ScheduleNote>> {
    let rows: Vec<Row> = sqlx::query_as(&sql.schedules.list)
        .fetch_all(pool)
        .await
        .map_err(op("list schedules"))?;
    let notes = rows
        .into_iter()
        .map(|(name, message, when, next, last, seen)| {
            ScheduleNote::new(name, message, when)
                .next(next.map(epoch_time))
                .last(last.map(epoch_time))
                .seen(epoch_time(seen))
        })
        .collect();
    Ok(notes)
}
