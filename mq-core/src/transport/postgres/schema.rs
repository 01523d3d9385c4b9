//! The tables, versioned in `<schema>.mq_schema`, and their migrations.
//!
//! Version `n` is what the first `n` entries of [`MIGRATIONS`] create. On connect, a
//! database whose `mq_schema` says [`VERSION`] is used as it is (no DDL, so a user without
//! the right to create anything can run workers); otherwise the migrations run in one
//! transaction under `pg_advisory_xact_lock`, so that two processes connecting to a new
//! database at once do not both create the tables. The version is read again under the
//! lock; the migration waits at most [`LOCK_TIMEOUT`] for the tables' locks, so a long
//! transaction of the application does not stall every worker queued behind the DDL.
//!
//! Rolling deploys: each version also records `compatible_from`, the oldest version whose
//! code can still run on these tables without harm. A build meeting a newer schema runs on
//! it if the schema says it is compatible (a migration that only added an index, say), and
//! is refused otherwise; mq never migrates down. A build that migrates leaves the older
//! workers still running with statements that stay valid (see each migration's doc): a
//! later migration that changes `mq_reserve` adds a function beside it rather than change
//! the signature `mq_reserve(text, bigint)` the versions it stays compatible with call.
//!
//! The migrations name no schema: they run after `SET LOCAL search_path` to the URL's
//! schema, so [`migrations`] can print them for a DBA to apply by hand.

use sqlx::{Executor, PgConnection, PgPool};

use super::error::{self, PgError};
use crate::{Error, Result};

/// One entry per schema version: the version it brings the schema to and its SQL.
const MIGRATIONS: &[(u32, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4), (5, V5), (6, V6)];

/// The schema version this build writes.
pub(super) const VERSION: u32 = MIGRATIONS.len() as u32;

/// The oldest version whose code can run on tables at [`VERSION`]: version 1's workers
/// never reserve a `delayed` row (see [`V2`]), so they may not start on version 2.
const COMPATIBLE_FROM: u32 = 2;

/// How long a migration waits for a lock on mq's tables before it gives up.
const LOCK_TIMEOUT: &str = "10s";

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

/// Version 2: a delayed item is a row of its own state, `delayed`, and `mq_messages_due`
/// covers only those rows; a reservation is the PL/pgSQL function `mq_reserve(queue, n)`
/// (which keeps its plan between calls: 20 % less time per call than the same body as a
/// SQL function, which is planned at every call), whose
/// three picks (leases run out, delays ended, ready by priority and age) each match one
/// index and run with sorts, bitmap and sequential scans turned off. PostgreSQL's
/// statistics of a queue table are always out of date (it empties and fills faster than
/// ANALYZE runs): believing a queue of 20,000 ready rows to hold one, it chose to fetch
/// and sort all of them for each batch of 64 (12–35 ms, against 0.3 ms by the ordered
/// index). A function's `SET` holds on any connection, also behind a pooler in
/// transaction mode, where a session's `SET` would not. `mq_schema` gains
/// `compatible_from`.
///
/// Version 1's workers still running on these tables do no harm: their puts of a delayed
/// item write a `ready` row due later, which version 2 reserves only once due (at its next
/// look: a NOTIFY, or the worker's poll; an idle version 2 reserver does not wait for the
/// due time of such a row, which only its `delayed` rows tell it); they never reserve a
/// `delayed` row, which version 2's workers do. The migration takes its locks for at most
/// `LOCK_TIMEOUT`, and workers starting meanwhile wait behind it that long.
const V2: &str = "\
ALTER TABLE mq_schema ADD COLUMN compatible_from integer NOT NULL DEFAULT 1;
ALTER TABLE mq_messages DROP CONSTRAINT mq_messages_state_check;
ALTER TABLE mq_messages ADD CONSTRAINT mq_messages_state_check
    CHECK (state IN ('ready', 'delayed', 'reserved'));
DROP INDEX mq_messages_due;
UPDATE mq_messages SET state = 'delayed' WHERE state = 'ready' AND due_at > now();
CREATE INDEX mq_messages_due ON mq_messages (queue, due_at) WHERE state = 'delayed';
CREATE FUNCTION mq_reserve(q text, n bigint)
RETURNS TABLE (id bigint, priority bigint, body bytea, deliveries bigint, late integer)
LANGUAGE plpgsql SET search_path FROM CURRENT
    SET enable_sort TO off SET enable_bitmapscan TO off SET enable_seqscan TO off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH expired AS (
        SELECT m.id FROM mq_messages AS m
        WHERE m.queue = q AND m.state = 'reserved' AND m.lease_until <= now()
        ORDER BY m.lease_until LIMIT n FOR UPDATE SKIP LOCKED),
    due AS (
        SELECT m.id FROM mq_messages AS m
        WHERE m.queue = q AND m.state = 'delayed' AND m.due_at <= now()
        ORDER BY m.due_at LIMIT n FOR UPDATE SKIP LOCKED),
    ready AS (
        SELECT m.id FROM mq_messages AS m
        WHERE m.queue = q AND m.state = 'ready' AND m.due_at <= now()
        ORDER BY m.priority, m.id LIMIT n FOR UPDATE SKIP LOCKED),
    picked AS (
        SELECT expired.id, 0 AS late FROM expired
        UNION ALL SELECT due.id, 1 FROM due
        UNION ALL SELECT ready.id, 2 FROM ready LIMIT n)
    UPDATE mq_messages AS m SET state = 'reserved',
        lease_until = now() + m.ttr_ms * interval '1 millisecond',
        deliveries = m.deliveries + 1
    FROM picked WHERE m.id = picked.id
    RETURNING m.id, m.priority, m.body, m.deliveries, picked.late;
END
$$;
";

/// Version 3: unique keys.
///
/// `mq_unique`: one row per unique key taken. `item` is the `mq_messages` row that holds it
/// while the message is queued or running; once the message ended it is NULL and the key
/// stays taken until `until` (the end plus `hold_ms`; then it is free, and a later put
/// takes the row over). `mq_messages.unique_key` names the key a row holds. Triggers keep
/// the two in step on every path that deletes or inserts a row, whatever statement does it
/// (ack, fail, flush, a held batch's settle): a deleted row ends its key, an inserted row
/// with a key holds it again, so a retry (one statement that deletes the row and inserts
/// its replacement, which copies the key) keeps it.
///
/// Version 2's workers run on these tables without harm (`COMPATIBLE_FROM` stays 2): they
/// put no unique message, and their retry, which does not copy the key, frees it early.
const V3: &str = "\
ALTER TABLE mq_messages ADD COLUMN unique_key text;
CREATE TABLE mq_unique (
    key         text        PRIMARY KEY,
    message_id  text        NOT NULL,
    item        bigint,
    hold_ms     bigint      NOT NULL,
    until       timestamptz
);
CREATE INDEX mq_unique_until ON mq_unique (until) WHERE item IS NULL;
CREATE FUNCTION mq_unique_ended() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE mq_unique SET item = NULL, until = now() + hold_ms * interval '1 millisecond'
    WHERE key = OLD.unique_key AND item = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mq_unique_ended AFTER DELETE ON mq_messages FOR EACH ROW
    WHEN (OLD.unique_key IS NOT NULL) EXECUTE FUNCTION mq_unique_ended();
CREATE FUNCTION mq_unique_taken() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE mq_unique SET item = NEW.id, until = NULL
    WHERE key = NEW.unique_key AND item IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER mq_unique_taken AFTER INSERT ON mq_messages FOR EACH ROW
    WHEN (NEW.unique_key IS NOT NULL) EXECUTE FUNCTION mq_unique_taken();
";

/// Version 4: per-key concurrency permits: one row per permit taken, until the end of its
/// lease. Older workers do not use the table (`COMPATIBLE_FROM` stays 2).
const V4: &str = "\
CREATE TABLE mq_permits (
    token       bigserial   PRIMARY KEY,
    key         text        NOT NULL,
    until       timestamptz NOT NULL
);
CREATE INDEX mq_permits_key ON mq_permits (key, until);
";

/// Version 5: debounce. `mq_debounce`: per key, the row of its latest burst (`item`) and
/// when the burst began. Older workers do not use the table (`COMPATIBLE_FROM` stays 2).
const V5: &str = "\
CREATE TABLE mq_debounce (
    key         text        PRIMARY KEY,
    item        bigint,
    began       timestamptz NOT NULL
);
";

/// Version 6: what the workers note of the schedules they run, for `mq schedules`: per
/// schedule name, its message, when it ticks, the next and the last tick, and when a worker
/// last wrote it. Older workers do not use the table (`COMPATIBLE_FROM` stays 2).
const V6: &str = "\
CREATE TABLE mq_schedules (
    name        text        PRIMARY KEY,
    message     text        NOT NULL,
    ticks       text        NOT NULL,
    next_tick   timestamptz,
    last_tick   timestamptz,
    seen_at     timestamptz NOT NULL
);
";

/// The statement that records `version` as done (its table has `compatible_from` from
/// version 2 on).
fn record(version: u32) -> String {
    if version < 2 {
        format!("DELETE FROM mq_schema; INSERT INTO mq_schema (version) VALUES ({version});")
    } else {
        let compatible = if version == VERSION {
            COMPATIBLE_FROM
        } else {
            version
        };
        format!(
            "DELETE FROM mq_schema; INSERT INTO mq_schema (version, compatible_from) \
             VALUES ({version}, {compatible});"
        )
    }
}

/// Every migration: the schema version it brings a database to, and its SQL, which names
/// no schema (run it after `SET search_path TO <schema>`). For `mq migrate --print`.
///
/// ```
/// let migrations = mq::transport::postgres::migrations();
/// let (first, sql) = migrations[0];
/// assert_eq!(first, 1);
/// assert!(sql.contains("mq_messages"));
/// assert!(migrations.windows(2).all(|pair| pair[0].0 < pair[1].0)); // in order
/// ```
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
         SET LOCAL lock_timeout TO '{LOCK_TIMEOUT}';\n\
         CREATE SCHEMA IF NOT EXISTS \"{schema}\";\nSET LOCAL search_path TO \"{schema}\";\n\
         CREATE TABLE IF NOT EXISTS mq_schema (version integer NOT NULL);\n"
    );
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > from) {
        out.push_str(&format!(
            "-- version {version}\n{sql}{}\n",
            record(*version)
        ));
    }
    out.push_str("COMMIT;\n");
    out
}

/// What `mq_schema` says: the version, and the oldest version whose code may run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    version: u32,
    compatible_from: u32,
}

impl Found {
    /// No mq tables yet.
    const NONE: Found = Found {
        version: 0,
        compatible_from: 0,
    };

    /// Whether this build may run on the tables as they are, without migrating.
    fn usable(self) -> bool {
        self.version == VERSION || (self.version > VERSION && self.compatible_from <= VERSION)
    }
}

/// Reads `mq_schema` on `executor` (`compatible_from` through `to_jsonb`, as version 1's
/// table has no such column, which reads as 1).
async fn read_found(
    executor: impl sqlx::PgExecutor<'_>,
    table: &str,
) -> std::result::Result<Found, sqlx::Error> {
    let row: Option<(i32, Option<i32>)> = sqlx::query_as(&format!(
        "SELECT version, (to_jsonb(s) ->> 'compatible_from')::integer FROM {table} AS s \
         ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(executor)
    .await?;
    Ok(row.map_or(Found::NONE, |(version, compatible)| {
        let version = u32::try_from(version).unwrap_or(0);
        Found {
            version,
            compatible_from: compatible.map_or(1, |c| u32::try_from(c).unwrap_or(version)),
        }
    }))
}

/// The version `schema` is at; [`Found::NONE`] for a database without mq's tables.
async fn version(pool: &PgPool, schema: &str) -> std::result::Result<Found, sqlx::Error> {
    match read_found(pool, &format!("\"{schema}\".mq_schema")).await {
        Ok(found) => Ok(found),
        // 42P01 undefined_table, 3F000 invalid_schema_name: nothing of mq's yet.
        Err(sqlx::Error::Database(db))
            if db
                .code()
                .is_some_and(|code| code == "42P01" || code == "3F000") =>
        {
            Ok(Found::NONE)
        }
        Err(error) => Err(error),
    }
}

fn too_new(schema: &str, found: Found) -> Error {
    Error::Postgres {
        detail: format!(
            "schema `{schema}` is at version {}, newer than this build of mq knows \
             (version {VERSION}), and needs at least version {}: upgrade mq; it never \
             migrates a schema down",
            found.version, found.compatible_from
        ),
        source: None,
    }
}

/// Brings `schema` up to [`VERSION`], or leaves a newer one this build is compatible with
/// as it is; returns the version it was at.
pub(super) async fn migrate(pool: &PgPool, schema: &str) -> Result<u32> {
    let context = PgError::Migrate { schema };
    let found = version(pool, schema)
        .await
        .map_err(|e| error::translate(e, &context))?;
    if found.usable() {
        return ready(schema, found);
    }
    if found.version > VERSION {
        return Err(too_new(schema, found));
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| error::translate(e, &context))?;
    let found = apply(&mut tx, schema)
        .await
        .map_err(|e| error::translate(e, &context))?;
    if found.version > VERSION && !found.usable() {
        return Err(too_new(schema, found));
    }
    tx.commit()
        .await
        .map_err(|e| error::translate(e, &context))?;
    Ok(found.version)
}

/// The tables are usable as they are: says so when they are newer than this build.
fn ready(schema: &str, found: Found) -> Result<u32> {
    if found.version > VERSION {
        tracing::warn!(
            schema,
            version = found.version,
            ours = VERSION,
            "mq's tables are newer than this build, which they declare compatible: \
             upgrade this worker when you can"
        );
    }
    Ok(found.version)
}

/// Inside the migration's transaction: takes the lock, reads the version again and applies
/// what is missing; returns what was found (newer than [`VERSION`]: nothing applied).
async fn apply(tx: &mut PgConnection, schema: &str) -> std::result::Result<Found, sqlx::Error> {
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
         SET LOCAL lock_timeout TO '{LOCK_TIMEOUT}'; \
         CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\"; \
         CREATE TABLE IF NOT EXISTS mq_schema (version integer NOT NULL);"
    );
    tx.execute(prepare.as_str()).await?;
    // The table exists now (an empty one is version 0).
    let found = read_found(&mut *tx, "mq_schema").await?;
    if found.version >= VERSION {
        return Ok(found);
    }
    for (version, sql) in MIGRATIONS
        .iter()
        .filter(|(version, _)| *version > found.version)
    {
        tx.execute(*sql).await?;
        tx.execute(record(*version).as_str()).await?;
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
