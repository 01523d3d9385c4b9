//! Debounce in `mq_debounce`: the burst's key row is created if missing and locked (`FOR
//! UPDATE`), so concurrent dispatches of one key take turns; while the burst's row is still
//! delayed its body is replaced and it is moved later, otherwise a new row starts a burst.
//! A new burst also deletes up to 64 rows of bursts that ended (their row no longer
//! delayed), skipping rows another dispatch has locked, so the table holds about one row
//! per waiting burst; a dispatch whose key row was purged between its insert and its lock
//! inserts it again.

use sqlx::PgPool;

use super::ops::{op, put_row, Sql};
use crate::transport::columns::{ms_ceil, row_id, sql_id};
use crate::transport::{Debounce, Put, PutOptions};
use crate::Result;

/// The statements of debounce, for one schema.
#[derive(Debug)]
pub(super) struct DebounceSql {
    ensure: String,
    lock: String,
    moved: String,
    began: String,
    purge: String,
}

impl DebounceSql {
    pub(super) fn new(schema: &str) -> DebounceSql {
        let d = format!("\"{schema}\".mq_debounce");
        let m = format!("\"{schema}\".mq_messages");
        DebounceSql {
            ensure: format!(
                "INSERT INTO {d} (key, item, began) VALUES ($1, NULL, now()) \
                 ON CONFLICT (key) DO NOTHING"
            ),
            lock: format!("SELECT item FROM {d} WHERE key = $1 FOR UPDATE"),
            moved: format!(
                "UPDATE {m} SET body = $2, due_at = least(now() + $3 * interval '1 millisecond', \
                 (SELECT began FROM {d} WHERE key = $4) + $5 * interval '1 millisecond') \
                 WHERE id = $1 AND state = 'delayed' AND due_at > now() RETURNING id"
            ),
            began: format!("UPDATE {d} SET item = $2, began = now() WHERE key = $1"),
            purge: format!(
                "DELETE FROM {d} WHERE key IN (SELECT key FROM {d} AS d WHERE key <> $1 \
                 AND NOT EXISTS (SELECT 1 FROM {m} AS m WHERE m.id = d.item \
                 AND m.state = 'delayed' AND m.due_at > now()) LIMIT 64 \
                 FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// Replaces the body of the burst's waiting row and moves it later, or puts a new row.
pub(super) async fn put(
    pool: &PgPool,
    sql: &Sql,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    debounce: &Debounce,
) -> Result<Put> {
    let statements = &sql.debounce;
    let put = async {
        let mut tx = pool.begin().await?;
        // The key's row, locked: made if missing, and made again if a purge deleted it
        // between the two statements.
        let item: Option<i64> = loop {
            sqlx::query(&statements.ensure)
                .bind(&debounce.key)
                .execute(&mut *tx)
                .await?;
            let locked: Option<Option<i64>> = sqlx::query_scalar(&statements.lock)
                .bind(&debounce.key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(item) = locked {
                break item;
            }
        };
        if let Some(item) = item {
            let moved: Option<i64> = sqlx::query_scalar(&statements.moved)
                .bind(item)
                .bind(body)
                .bind(ms_ceil(debounce.quiet))
                .bind(&debounce.key)
                .bind(ms_ceil(debounce.max_wait))
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = moved {
                tx.commit().await?;
                return Ok(Put::Queued(row_id(id)));
            }
        }
        sqlx::query(&statements.purge)
            .bind(&debounce.key)
            .execute(&mut *tx)
            .await?;
        let options = options.with_delay(debounce.first_delay());
        let id = put_row(&mut *tx, sql, queue, body, &options, None).await?;
        sqlx::query(&statements.began)
            .bind(&debounce.key)
            .bind(sql_id(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Put::Queued(id))
    };
    put.await.map_err(op("put debounced"))
}
