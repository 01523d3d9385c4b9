//! Per-key concurrency permits in `mq_permits`: taken and given back under the writer's
//! `BEGIN IMMEDIATE`, so the count and the take are one step for every process on the file.

use rusqlite::params;

use super::ops::{Db, Outcome};
use crate::transport::columns::{ms_ceil, row_id, sql_id};

/// Takes a permit of `key` for `lease_ms` if fewer than `limit` are held; its token.
pub(super) fn acquire(
    db: &Db<'_>,
    key: &str,
    limit: u32,
    lease: std::time::Duration,
) -> Outcome<Option<u64>> {
    db.conn
        .prepare_cached("DELETE FROM mq_permits WHERE key = ?1 AND until <= ?2")?
        .execute(params![key, db.now])?;
    let held: i64 = db
        .conn
        .prepare_cached("SELECT count(*) FROM mq_permits WHERE key = ?1")?
        .query_row([key], |row| row.get(0))?;
    if held >= i64::from(limit) {
        return Ok(Ok(None));
    }
    db.conn
        .prepare_cached("INSERT INTO mq_permits (key, until) VALUES (?1, ?2)")?
        .execute(params![key, db.now.saturating_add(ms_ceil(lease))])?;
    Ok(Ok(Some(row_id(db.conn.last_insert_rowid()))))
}

/// Extends the live permit `token` of `key` to `lease` from now; whether it was live.
pub(super) fn renew(
    db: &Db<'_>,
    key: &str,
    token: u64,
    lease: std::time::Duration,
) -> Outcome<bool> {
    let renewed = db
        .conn
        .prepare_cached(
            "UPDATE mq_permits SET until = ?1 WHERE token = ?2 AND key = ?3 AND until > ?4",
        )?
        .execute(params![
            db.now.saturating_add(ms_ceil(lease)),
            sql_id(token),
            key,
            db.now
        ])?;
    Ok(Ok(renewed == 1))
}

/// Gives back the permit `token` of `key`.
pub(super) fn release(db: &Db<'_>, key: &str, token: u64) -> Outcome<()> {
    db.conn
        .prepare_cached("DELETE FROM mq_permits WHERE token = ?1 AND key = ?2")?
        .execute(params![sql_id(token), key])?;
    Ok(Ok(()))
}
