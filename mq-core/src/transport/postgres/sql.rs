//! Every statement of the PostgreSQL transport, written once per schema when it connects
//! (`ops`, `hold`, `outbox` and `unique` run them). A statement that makes an item
//! reservable also sends the schema's NOTIFY in the same statement (see `listen`).

/// A row that can be reserved: ready or delayed and due, or reserved with its lease run
/// out.
const RESERVABLE: &str = "((state IN ('ready', 'delayed') AND due_at <= now()) \
                          OR (state = 'reserved' AND lease_until <= now()))";

/// The transactions running now, as `xids`: a row whose `xmax` is one of them is locked
/// (held by a worker's open transaction, see `hold`) or being deleted.
const RUNNING: &str = "running AS MATERIALIZED (SELECT coalesce(array_agg(transactionid), \
                       '{}') AS xids FROM pg_locks WHERE locktype = 'transactionid')";

/// Of a row of `mq_messages AS m` (beside `running`): whether a running transaction holds it.
const HELD: &str = "(m.xmax <> '0'::xid AND m.xmax = ANY(running.xids))";

/// The state of a new row: `delayed` when `$3` (its delay in milliseconds) is positive.
const NEW_STATE: &str = "CASE WHEN $3 > 0 THEN 'delayed' ELSE 'ready' END";

/// Every statement, written once for the URL's schema.
#[derive(Debug)]
pub(super) struct Sql {
    /// The NOTIFY channel of the schema.
    pub(super) channel: String,
    pub(super) put: String,
    pub(super) put_batch: String,
    pub(super) notify: String,
    pub(super) reserve: String,
    pub(super) next_due: String,
    pub(super) hand_back: String,
    pub(super) ack: String,
    pub(super) retry: String,
    pub(super) release: String,
    pub(super) renew: String,
    pub(super) fail: String,
    pub(super) stats: String,
    pub(super) failed_counts: String,
    pub(super) peek: String,
    pub(super) browse: String,
    pub(super) flush: String,
    pub(super) failed_store: String,
    pub(super) failed_list: String,
    pub(super) failed_list_queue: String,
    pub(super) failed_show: String,
    pub(super) failed_retry: String,
    pub(super) failed_remove: String,
    /// The statements of debounce (see `debounce`).
    pub(super) debounce: super::debounce::DebounceSql,
    /// The statements of concurrency permits (see `permits`).
    pub(super) permits: super::permits::PermitSql,
    /// The statements of schedule notes (see `schedules`).
    pub(super) schedules: super::schedules::ScheduleSql,
    /// The statements of unique puts (see `unique`).
    pub(super) unique: super::unique::UniqueSql,
    /// The outbox's take and its undoing (see `outbox`).
    pub(super) take: String,
    pub(super) untake: String,
    /// The statements of batches held by a transaction (see `hold`).
    pub(super) held: super::hold::HeldSql,
}

impl Sql {
    pub(super) fn new(schema: &str) -> Sql {
        let m = format!("\"{schema}\".mq_messages");
        let f = format!("\"{schema}\".mq_failed");
        let due = "now() + $3 * interval '1 millisecond'";
        let failed_columns = "id, queue, priority, delay_ms, ttr_ms, failure, body";
        let token = "id = $1 AND state = 'reserved' AND deliveries = $2";
        Sql {
            channel: format!("{schema}_mq"),
            put: format!(
                "WITH put AS (INSERT INTO {m} \
                 (queue, priority, state, due_at, ttr_ms, body, unique_key) \
                 VALUES ($1, $2, {NEW_STATE}, {due}, $4, $5, $7) RETURNING id) \
                 SELECT id, pg_notify($6, $1)::text FROM put"
            ),
            put_batch: format!(
                "INSERT INTO {m} (queue, priority, state, due_at, ttr_ms, body) \
                 SELECT $1, $2, {NEW_STATE}, {due}, $4, body \
                 FROM unnest($5::bytea[]) WITH ORDINALITY \
                 AS b(body, n) ORDER BY n RETURNING id"
            ),
            notify: "SELECT pg_notify($1, $2)::text".to_owned(),
            reserve: format!(
                "SELECT id, priority, body, deliveries, late FROM \"{schema}\".mq_reserve($1, $2)"
            ),
            next_due: format!(
                "SELECT ceil(extract(epoch FROM min(t) - now()) * 1000)::bigint FROM ( \
                 SELECT min(due_at) AS t FROM {m} WHERE queue = ANY($1) AND state = 'delayed' \
                 UNION ALL SELECT min(lease_until) FROM {m} \
                 WHERE queue = ANY($1) AND state = 'reserved') AS due"
            ),
            hand_back: format!(
                "UPDATE {m} AS m SET state = 'ready', lease_until = NULL, \
                 deliveries = m.deliveries - 1 \
                 FROM unnest($1::bigint[], $2::bigint[]) AS h(id, deliveries) \
                 WHERE m.id = h.id AND m.state = 'reserved' AND m.deliveries = h.deliveries \
                 RETURNING m.queue"
            ),
            ack: format!(
                "DELETE FROM {m} AS m USING unnest($1::bigint[], $2::bigint[]) \
                 AS a(id, deliveries), \
                 (SELECT set_config('synchronous_commit', 'off', true)) AS async \
                 WHERE m.id = a.id AND m.state = 'reserved' \
                 AND m.deliveries = a.deliveries RETURNING m.id, m.deliveries"
            ),
            retry: format!(
                "WITH gone AS (DELETE FROM {m} WHERE {token} \
                 RETURNING queue, deliveries, unique_key), \
                 put AS (INSERT INTO {m} \
                 (queue, priority, state, due_at, ttr_ms, deliveries, body, unique_key) \
                 SELECT queue, $3, CASE WHEN $4 > 0 THEN 'delayed' ELSE 'ready' END, \
                 now() + $4 * interval '1 millisecond', $5, deliveries, $6, unique_key \
                 FROM gone RETURNING queue) \
                 SELECT pg_notify($7, queue)::text FROM put"
            ),
            release: format!(
                "UPDATE {m} SET state = 'ready', due_at = now(), lease_until = NULL \
                 WHERE {token} RETURNING pg_notify($3, queue)::text"
            ),
            renew: format!(
                "UPDATE {m} SET lease_until = now() + ttr_ms * interval '1 millisecond' \
                 WHERE {token}"
            ),
            fail: format!(
                "WITH gone AS (DELETE FROM {m} WHERE {token} RETURNING queue) \
                 INSERT INTO {f} (queue, priority, delay_ms, ttr_ms, failed_at, failure, body) \
                 SELECT queue, $3, $4, $5, to_timestamp($6 / 1000.0), $7, $8 FROM gone \
                 RETURNING id"
            ),
            stats: format!(
                "WITH {RUNNING} SELECT queue, \
                 count(*) FILTER (WHERE {RESERVABLE} AND NOT held), \
                 count(*) FILTER (WHERE (state = 'reserved' AND lease_until > now()) \
                 OR ({RESERVABLE} AND held)), \
                 count(*) FILTER (WHERE state IN ('ready', 'delayed') AND due_at > now()) \
                 FROM (SELECT m.queue, m.state, m.due_at, m.lease_until, {HELD} AS held \
                 FROM {m} AS m, running) AS r GROUP BY queue"
            ),
            failed_counts: format!("SELECT queue, count(*) FROM {f} GROUP BY queue"),
            peek: format!(
                "WITH {RUNNING} SELECT id, queue, body, deliveries FROM {m} AS m, running \
                 WHERE queue = $1 AND {RESERVABLE} AND NOT {HELD} ORDER BY priority, id LIMIT 1"
            ),
            browse: format!(
                "SELECT id, queue, body, deliveries FROM {m} \
                 WHERE queue = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            flush: format!(
                "DELETE FROM {m} WHERE id IN (SELECT id FROM {m} WHERE queue = $1 \
                 AND (state IN ('ready', 'delayed') OR lease_until <= now()) \
                 FOR UPDATE SKIP LOCKED)"
            ),
            failed_store: format!(
                "INSERT INTO {f} (queue, priority, delay_ms, ttr_ms, failed_at, failure, body) \
                 VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), $6, $7) RETURNING id"
            ),
            failed_list: format!("SELECT {failed_columns} FROM {f} ORDER BY id LIMIT $1"),
            failed_list_queue: format!(
                "SELECT {failed_columns} FROM {f} WHERE queue = $2 ORDER BY id LIMIT $1"
            ),
            failed_show: format!("SELECT {failed_columns} FROM {f} WHERE id = $1"),
            failed_retry: format!(
                "WITH gone AS (DELETE FROM {f} WHERE id = $1 \
                 RETURNING queue, priority, ttr_ms, body), \
                 put AS (INSERT INTO {m} (queue, priority, due_at, ttr_ms, body) \
                 SELECT queue, priority, now(), ttr_ms, body FROM gone RETURNING id, queue) \
                 SELECT id, pg_notify($2, queue)::text FROM put"
            ),
            failed_remove: format!("DELETE FROM {f} WHERE id = $1"),
            take: super::outbox::take_sql(schema),
            untake: super::outbox::untake_sql(schema),
            held: super::hold::HeldSql::new(schema),
            unique: super::unique::UniqueSql::new(schema),
            permits: super::permits::PermitSql::new(schema),
            schedules: super::schedules::ScheduleSql::new(schema),
            debounce: super::debounce::DebounceSql::new(schema),
        }
    }
}
