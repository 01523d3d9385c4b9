//! Unique puts: the key is taken in `mq_unique` and the row put with it, in one transaction
//! (the pool's, or the application's for a dispatch `within` it, so a rollback frees the
//! key). A key row locked by another transaction that is taking it makes the second wait
//! for the first to commit or roll back (`ON CONFLICT`), so two producers never both queue.
//! The triggers of schema version 3 free the key when the row is deleted and hand it to a
//! retry's replacement row.

use sqlx::PgConnection;

use super::ops::Sql;
use crate::transport::columns::ms_ceil;
use crate::transport::{Put, PutOptions, Unique};

/// The statements of unique puts, for one schema.
#[derive(Debug)]
pub(super) struct UniqueSql {
    /// Takes key `$1` for message `$2` with hold `$3` ms, if it is free or its hold ran
    /// out; returns a row only then.
    take: String,
    /// The message holding key `$1`.
    holder: String,
    /// Deletes some keys whose hold ended more than a minute ago.
    purge: String,
}

impl UniqueSql {
    pub(super) fn new(schema: &str) -> UniqueSql {
        let u = format!("\"{schema}\".mq_unique");
        UniqueSql {
            take: format!(
                "INSERT INTO {u} AS u (key, message_id, item, hold_ms, until) \
                 VALUES ($1, $2, NULL, $3, NULL) \
                 ON CONFLICT (key) DO UPDATE SET message_id = EXCLUDED.message_id, \
                 item = NULL, hold_ms = EXCLUDED.hold_ms, until = NULL \
                 WHERE u.item IS NULL AND u.until IS NOT NULL AND u.until <= now() \
                 RETURNING 1"
            ),
            holder: format!("SELECT message_id FROM {u} WHERE key = $1"),
            purge: format!(
                "DELETE FROM {u} WHERE key IN (SELECT key FROM {u} WHERE item IS NULL \
                 AND until < now() - interval '1 minute' LIMIT 64 FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// Takes `unique.key` and puts the row, or answers who holds the key; on `connection`,
/// inside a transaction the caller commits.
pub(super) async fn put(
    connection: &mut PgConnection,
    sql: &Sql,
    queue: &str,
    body: &[u8],
    options: &PutOptions,
    unique: &Unique,
) -> Result<Put, sqlx::Error> {
    let statements = &sql.unique;
    let taken = sqlx::query(&statements.take)
        .bind(&unique.key)
        .bind(&unique.message_id)
        .bind(ms_ceil(unique.hold_after))
        .fetch_optional(&mut *connection)
        .await?;
    if taken.is_none() {
        let holder: String = sqlx::query_scalar(&statements.holder)
            .bind(&unique.key)
            .fetch_one(&mut *connection)
            .await?;
        return Ok(Put::Existing(holder));
    }
    sqlx::query(&statements.purge)
        .execute(&mut *connection)
        .await?;
    let key = Some(unique.key.as_str());
    let id = super::ops::put_row(&mut *connection, sql, queue, body, options, key).await?;
    Ok(Put::Queued(id))
}
