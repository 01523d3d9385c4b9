//! The tables, versioned in `<schema>.mq_schema`, and their migrations.
//!
//! Version `n` is what the first `n` entries of [`MIGRATIONS`] create. On connect, a
//! database whose `mq_schema` says [`VERSION`] is used as it is (no DDL, so a user without
//! the right to create anything can run workers); otherwise the migrations run in one
//! transaction under `pg_advisory_xact_lock`, so that two processes connecting to a new
//! database at once do not both create the tables. The version is read again under the
//! lock. A version newer than this build knows is refused: mq never migrates down.
//!
//! The migrations name no schema: they run after `SET LOCAL search_path` to the URL's
//! schema, so [`migrations`] can print them for a DBA to apply by hand.

use sqlx::{Executor, PgConnection, PgPool};

use super::error::{self, PgError};
use crate::{Error, Result};

/// One entry per schema version: the version it brings the schema to and its SQL.
const MIGRATIONS: &[(u32, &str)] = &[(1, V1)];

/// The schema version this build writes.
pub(super) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1.
///
/// `mq_messages`: one row per queued item. `state` is `ready` (reservable once `due_at` has
/// passed: a delayed item is a ready row with a later `due_at`) or `reserved` (until
/// `lease_until`; after that it is reservable again). `deliveries` counts reservations and,
/// with the id, is the token of the current one: a settle carrying an older count is
/// refused. Ids come from a sequence, so they are never reused.
///
/// `mq_messages_ready` serves "the next ready rows of these queues by priority, then age";
/// `mq_messages_due` and `mq_messages_lease` find the next delayed row and the next lease to
/// run out, which is when an idle reserver looks again.
const V1: &str = "\
CREATE TABLE mq_messages (
    id          bigserial   PRIMARY KEY,
    queue       text        NOT NULL,
    priority    bigint      NOT NULL,
    state       text        NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'reserved')),
    due_at      timestamptz NOT NULL,
    ttr_ms      bigint      NOT NULL,
    lease_until timestamptz,
    deliveries  bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    body        bytea       NOT NULL
);
CREATE INDEX mq_messages_ready ON mq_messages (queue, priority, id) WHERE state = 'ready';
CREATE INDEX mq_messages_due ON mq_messages (queue, due_at) WHERE state = 'ready';
CREATE INDEX mq_messages_lease ON mq_messages (queue, lease_until) WHERE state = 'reserved';
CREATE TABLE mq_failed (
    id          bigserial   PRIMARY KEY,
    queue       text        NOT NULL,
    priority    bigint      NOT NULL,
    delay_ms    bigint      NOT NULL,
    ttr_ms      bigint      NOT NULL,
    failed_at   timestamptz NOT NULL,
    failure     text        NOT NULL,
    body        bytea       NOT NULL
);
CREATE INDEX mq_failed_queue ON mq_failed (queue, id);
";

/// Every migration: the schema version it brings a database to, and its SQL, which names
/// no schema (run it after `SET search_path TO <schema>`). For `mq migrate --print`.
pub fn migrations() -> &'static [(u32, &'static str)] {
    MIGRATIONS
}

/// The SQL that takes `schema` (a name the URL parser accepted) from `from` to
/// [`VERSION`], as one script a person can run with `psql` (what `mq migrate --print`
/// shows). It takes the lock a worker migrating the same schema takes, so the two never run
/// at once.
pub(super) fn script(schema: &str, from: u32) -> String {
    let mut out = format!(
        "BEGIN;\nSELECT pg_advisory_xact_lock(hashtext('mq.migrate'), hashtext('{schema}'));\n\
         CREATE SCHEMA IF NOT EXISTS \"{schema}\";\nSET LOCAL search_path TO \"{schema}\";\n\
         CREATE TABLE IF NOT EXISTS mq_schema (version integer NOT NULL);\n"
    );
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > from) {
        out.push_str(&format!("-- version {version}\n{sql}"));
    }
    out.push_str(&format!(
        "DELETE FROM mq_schema;\nINSERT INTO mq_schema (version) VALUES ({VERSION});\nCOMMIT;\n"
    ));
    out
}

/// The version `schema` is at; 0 for a database without mq's tables.
async fn version(pool: &PgPool, schema: &str) -> std::result::Result<u32, sqlx::Error> {
    let found: std::result::Result<Option<i32>, sqlx::Error> =
        sqlx::query_scalar(&format!("SELECT max(version) FROM \"{schema}\".mq_schema"))
            .fetch_one(pool)
            .await;
    match found {
        Ok(version) => Ok(version.map_or(0, |v| u32::try_from(v).unwrap_or(0))),
        // 42P01 undefined_table, 3F000 invalid_schema_name: nothing of mq's yet.
        Err(sqlx::Error::Database(db))
            if db
                .code()
                .is_some_and(|code| code == "42P01" || code == "3F000") =>
        {
            Ok(0)
        }
        Err(error) => Err(error),
    }
}

fn too_new(schema: &str, found: u32) -> Error {
    Error::Postgres {
        detail: format!(
            "schema `{schema}` is at version {found}, newer than this build of mq knows \
             (version {VERSION}): upgrade mq; it never migrates a schema down"
        ),
        source: None,
    }
}

/// Brings `schema` up to [`VERSION`]; returns the version it was at.
pub(super) async fn migrate(pool: &PgPool, schema: &str) -> Result<u32> {
    let context = PgError::Migrate { schema };
    let found = version(pool, schema)
        .await
        .map_err(|e| error::translate(e, &context))?;
    if found == VERSION {
        return Ok(found);
    }
    if found > VERSION {
        return Err(too_new(schema, found));
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| error::translate(e, &context))?;
    let found = apply(&mut tx, schema)
        .await
        .map_err(|e| error::translate(e, &context))?;
    if found > VERSION {
        return Err(too_new(schema, found));
    }
    tx.commit()
        .await
        .map_err(|e| error::translate(e, &context))?;
    Ok(found)
}

/// Inside the migration's transaction: takes the lock, reads the version again and applies
/// what is missing; returns the version found (newer than [`VERSION`]: nothing applied).
async fn apply(tx: &mut PgConnection, schema: &str) -> std::result::Result<u32, sqlx::Error> {
    // Two keys: mq's own class, then the schema, so other schemas migrate in parallel.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mq.migrate'), hashtext($1))")
        .bind(schema)
        .execute(&mut *tx)
        .await?;
    // Several statements, no parameters: sent as one simple query. Another worker that
    // migrated first makes the `IF NOT EXISTS` notices, which are not news for a log (set
    // here, not as a startup option, which poolers refuse).
    let prepare = format!(
        "SET LOCAL client_min_messages TO warning; \
         CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\"; \
         CREATE TABLE IF NOT EXISTS mq_schema (version integer NOT NULL);"
    );
    tx.execute(prepare.as_str()).await?;
    // The table exists now (an empty one is version 0).
    let found: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM mq_schema")
        .fetch_one(&mut *tx)
        .await?;
    let found = found.map_or(0, |v| u32::try_from(v).unwrap_or(0));
    if found > VERSION {
        return Ok(found);
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        tx.execute(*sql).await?;
        let done =
            format!("DELETE FROM mq_schema; INSERT INTO mq_schema (version) VALUES ({version})");
        tx.execute(done.as_str()).await?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (n, (version, _)) in migrations().iter().enumerate() {
            assert_eq!(*version as usize, n + 1);
        }
        let full = script("jobs", 0);
        assert!(full.contains("SET LOCAL search_path TO \"jobs\""), "{full}");
        assert!(full.contains("CREATE TABLE mq_messages"), "{full}");
        assert!(!script("jobs", VERSION).contains("CREATE TABLE mq_messages"));
    }
}
