//! Per-key concurrency permits in `mq_permits`: a take counts the key's live permits and
//! inserts one in one transaction, under a transaction-scoped advisory lock of the key, so
//! two workers never both take the last one.

use std::time::Duration;

use sqlx::PgPool;

use super::ops::{op, Sql};
use crate::transport::columns::{ms_ceil, row_id, sql_id};
use crate::Result;

/// The statements of permits, for one schema.
#[derive(Debug)]
pub(super) struct PermitSql {
    lock: String,
    expire: String,
    count: String,
    take: String,
    release: String,
    renew: String,
}

impl PermitSql {
    pub(super) fn new(schema: &str) -> PermitSql {
        let p = format!("\"{schema}\".mq_permits");
        PermitSql {
            lock: format!(
                "SELECT pg_advisory_xact_lock(hashtext('mq.permit.{schema}'), hashtext($1))"
            ),
            expire: format!("DELETE FROM {p} WHERE key = $1 AND until <= now()"),
            count: format!("SELECT count(*) FROM {p} WHERE key = $1"),
            take: format!(
                "INSERT INTO {p} (key, until) VALUES ($1, now() + $2 * interval '1 millisecond') \
                 RETURNING token"
            ),
            release: format!("DELETE FROM {p} WHERE token = $1 AND key = $2"),
            renew: format!(
                "UPDATE {p} SET until = now() + $3 * interval '1 millisecond' \
                 WHERE token = $1 AND key = $2 AND until > now()"
            ),
        }
    }
}

/// Takes a permit of `key` if fewer than `limit` are held.
pub(super) async fn acquire(
    pool: &PgPool,
    sql: &Sql,
    key: &str,
    limit: u32,
    lease: Duration,
) -> Result<Option<u64>> {
    let statements = &sql.permits;
    let taken = async {
        let mut tx = pool.begin().await?;
        sqlx::query(&statements.lock)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&statements.expire)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let held: i64 = sqlx::query_scalar(&statements.count)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        if held >= i64::from(limit) {
            return Ok(None);
        }
        let token: i64 = sqlx::query_scalar(&statements.take)
            .bind(key)
            .bind(ms_ceil(lease))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(row_id(token)))
    };
    taken.await.map_err(op("acquire permit"))
}

/// Gives back the permit `token` of `key`.
pub(super) async fn release(pool: &PgPool, sql: &Sql, key: &str, token: u64) -> Result<()> {
    sqlx::query(&sql.permits.release)
        .bind(sql_id(token))
        .bind(key)
        .execute(pool)
        .await
        .map_err(op("release permit"))?;
    Ok(())
}

/// Extends the live permit `token` of `key` to `lease` from now; whether it was live.
pub(super) async fn renew(
    pool: &PgPool,
    sql: &Sql,
    key: &str,
    token: u64,
    lease: Duration,
) -> Result<bool> {
    let renewed = sqlx::query(&sql.permits.renew)
        .bind(sql_id(token))
        .bind(key)
        .bind(ms_ceil(lease))
        .execute(pool)
        .await
        .map_err(op("renew permit"))?;
    Ok(renewed.rows_affected() == 1)
}
