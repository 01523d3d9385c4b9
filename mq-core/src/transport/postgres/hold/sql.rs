//! The statements of held batches, for the URL's schema: the transaction's `BEGIN`, the
//! pick, and each settle as it runs inside the transaction.

/// How long an open batch's transaction may sit idle before PostgreSQL ends it: above the
/// longest `?hold=` (5 s), so only a worker that stopped answering meets it.
pub(super) const IDLE_LIMIT: &str = "15s";

/// The statements of held batches, written once for the URL's schema.
#[derive(Debug)]
pub(in crate::transport::postgres) struct HeldSql {
    pub(super) begin: String,
    pub(super) pick: String,
    pub(super) release: String,
    pub(super) retry: String,
    pub(super) fail: String,
    pub(super) lease: String,
    pub(super) delete: String,
}

impl HeldSql {
    /// The times a held batch writes are `statement_timestamp()`: `now()` is when the
    /// transaction began, up to `hold` earlier, and would shorten a delay or a lease by
    /// that much. So is the pick's: its transaction may have begun with the previous batch's
    /// commit (a spare, see `Spare`).
    pub(in crate::transport::postgres) fn new(schema: &str) -> HeldSql {
        let m = format!("\"{schema}\".mq_messages");
        let f = format!("\"{schema}\".mq_failed");
        let pick = |part: u8, late: u8, filter: &str, order: &str| {
            format!(
                "SELECT id, priority, body, deliveries + 1, {late} AS late FROM ( \
                 SELECT m.id, m.priority, m.body, m.deliveries FROM {m} AS m \
                 WHERE m.queue = $1 AND {filter} ORDER BY {order} LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) AS p{part}"
            )
        };
        let ready = "m.state = 'ready' AND m.due_at <= statement_timestamp()";
        HeldSql {
            // The planner settings of `mq_reserve` (see `schema::V2`), for this transaction;
            // and the pick's generic plan: with the enable_* settings off it is the same
            // index scans as a custom one, which cost a plan per batch (0.18 ms of its
            // 0.6 ms on the server, docs/performance.md).
            begin: format!(
                "BEGIN; SET LOCAL enable_sort TO off; SET LOCAL enable_bitmapscan TO off; \
                 SET LOCAL enable_seqscan TO off; SET LOCAL synchronous_commit TO off; \
                 SET LOCAL idle_in_transaction_session_timeout TO '{IDLE_LIMIT}'; \
                 SET LOCAL plan_cache_mode TO force_generic_plan"
            ),
            // Leases run out, delays ended, then the ready rows from the cursor ($3, $4:
            // priority and id, see `cursor`): the more urgent priorities, the cursor's
            // after it, the cursor's behind it (what came back), the less urgent; each an
            // ordered scan of the ready index, run only if the parts before it did not fill
            // the pick. The two at the cursor's priority are row comparisons: with
            // `priority = $3` the generic plan reads them through the primary key. The one
            // behind the cursor starts at the priority's first entry, and PostgreSQL 15
            // ends a row comparison's range only at its first column: finding nothing, it
            // reads on through the entries the part after the cursor has just read (few,
            // as that part did not fill the pick).
            pick: format!(
                "{} UNION ALL {} UNION ALL {} UNION ALL {} UNION ALL {} UNION ALL {} LIMIT $2",
                pick(
                    0,
                    0,
                    "m.state = 'reserved' AND m.lease_until <= statement_timestamp()",
                    "m.lease_until"
                ),
                pick(
                    1,
                    1,
                    "m.state = 'delayed' AND m.due_at <= statement_timestamp()",
                    "m.due_at"
                ),
                pick(
                    2,
                    2,
                    &format!("{ready} AND m.priority < $3"),
                    "m.priority, m.id"
                ),
                pick(
                    3,
                    2,
                    &format!("{ready} AND (m.priority, m.id) > ($3, $4) AND m.priority <= $3"),
                    "m.priority, m.id"
                ),
                pick(
                    4,
                    2,
                    &format!("{ready} AND (m.priority, m.id) <= ($3, $4) AND m.priority >= $3"),
                    "m.priority, m.id"
                ),
                pick(
                    5,
                    2,
                    &format!("{ready} AND m.priority > $3"),
                    "m.priority, m.id"
                ),
            ),
            release: format!(
                "UPDATE {m} SET deliveries = deliveries + 1 WHERE id = $1 \
                 RETURNING pg_notify($2, queue)::text"
            ),
            retry: format!(
                "WITH gone AS (DELETE FROM {m} WHERE id = $1 \
                 RETURNING queue, deliveries, unique_key), \
                 put AS (INSERT INTO {m} \
                 (queue, priority, state, due_at, ttr_ms, deliveries, body, unique_key) \
                 SELECT queue, $2, CASE WHEN $3 > 0 THEN 'delayed' ELSE 'ready' END, \
                 statement_timestamp() + $3 * interval '1 millisecond', $4, deliveries + 1, $5, \
                 unique_key FROM gone RETURNING queue) \
                 SELECT pg_notify($6, queue)::text FROM put"
            ),
            fail: format!(
                "WITH gone AS (DELETE FROM {m} WHERE id = $1 RETURNING queue) \
                 INSERT INTO {f} (queue, priority, delay_ms, ttr_ms, failed_at, failure, body) \
                 SELECT queue, $2, $3, $4, to_timestamp($5 / 1000.0), $6, $7 FROM gone \
                 RETURNING id"
            ),
            lease: format!(
                "UPDATE {m} SET state = 'reserved', \
                 lease_until = statement_timestamp() + ttr_ms * interval '1 millisecond', \
                 deliveries = deliveries + 1 WHERE id = ANY($1) \
                 RETURNING id, deliveries, pg_notify($2, queue)::text"
            ),
            delete: format!("DELETE FROM {m} WHERE id = ANY('{{"),
        }
    }
}
