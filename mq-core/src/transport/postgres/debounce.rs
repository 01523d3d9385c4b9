//! Debounce in `mq_debounce`: the burst's key row is created if missing and locked (`FOR
//! UPDATE`), so concurrent dispatches of one key take turns; while the burst's row is still
//! delayed its body is replaced and it is moved later, otherwise a new row starts a burst.

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
        sqlx::query(&statements.ensure)
            .bind(&debounce.key)
            .execute(&mut *tx)
            .await?;
        let item: Option<i64> = sqlx::query_scalar(&statements.lock)
            .bind(&debounce.key)
            .fetch_one(&mut *tx)
            .await?;
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
