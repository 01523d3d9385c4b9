//! Dispatch inside the application's own PostgreSQL transaction (feature `postgres`): into
//! the bus's queue when it is on PostgreSQL, else into its outbox.

use tracing::Instrument as _;

use super::dispatch::Dispatch;
use super::{bus_or_global, put_options, MessageId};
use crate::message::Message;
use crate::telemetry::spans;
use crate::transport;
use crate::{Error, Result};

impl<M: Message> Dispatch<'_, M> {
    /// Queues the message as part of the application's own PostgreSQL transaction: workers
    /// see it when `tx` commits (an idle worker is woken by the commit's NOTIFY), and it is
    /// gone if `tx` rolls back. The bus must be on `postgres://` (the same database; the
    /// schema is the bus URL's). `tx` is the application's sqlx connection or transaction
    /// (`&mut *tx` for a `sqlx::Transaction`; sqlx 0.8).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails")]
    /// struct SendOrderConfirmation { order_id: i64 }
    ///
    /// let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1/shop").await?;
    /// let bus = mq::Bus::connect("postgres://app@127.0.0.1/shop").await?;
    /// let mut tx = pool.begin().await?;
    /// let order_id: i64 = sqlx::query_scalar("INSERT INTO orders (total) VALUES (100) RETURNING id")
    ///     .fetch_one(&mut *tx)
    ///     .await?;
    /// bus.dispatch(SendOrderConfirmation { order_id }).within(&mut tx).await?;
    /// tx.commit().await?; // the order and its e-mail, or neither
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the bus is neither on PostgreSQL nor has an outbox
    /// ([`Bus::with_outbox`](crate::Bus::with_outbox), `MQ_OUTBOX`), and the checks of a dispatch (size, priority,
    /// delay): these send nothing and leave `tx` as it was. The database's error: then `tx`
    /// is as PostgreSQL leaves it after a failed statement (aborted): roll it back.
    pub async fn within(self, tx: &mut sqlx::PgConnection) -> Result<MessageId> {
        let bus = bus_or_global(self.bus).await?;
        let span = bus.publish_span::<M>(1);
        let options = put_options::<M>(self.delay, self.priority);
        // Encoded in the span, so that the envelope carries its trace context.
        let limit = self.limit.as_ref();
        let (envelope, bytes) = span.in_scope(|| bus.encode(&self.message, &options, limit))?;
        spans::record_message_id(&span, &envelope.id);
        let transport = bus.transport.as_ref();
        let of = transport::postgres::PostgresTransport::of;
        let Some(postgres) = of(transport).or(bus.outbox.as_deref().and_then(of)) else {
            return Err(Error::Unsupported {
                what: format!("dispatch of `{}` within a PostgreSQL transaction", M::NAME),
                reason: format!(
                    "the bus is on {}, not on postgres://, and has no outbox: point MQ_URL at \
                     the application's database, or set MQ_OUTBOX to a schema of it \
                     (postgres://...?schema=outbox) and run `mq relay`",
                    transport::redacted(&transport.describe())
                ),
            });
        };
        if let Some(unique) = self.unique.resolve(&self.message, &envelope)? {
            if of(transport).is_none() {
                return Err(Error::Unsupported {
                    what: format!("unique dispatch of `{}` within a transaction", M::NAME),
                    reason: "the outbox's relay cannot keep a unique key on the broker: point \
                             MQ_URL at the application's database (postgres://), or dispatch \
                             without .within()"
                        .to_owned(),
                });
            }
            let put = postgres.put_unique_within(tx, M::OPTIONS.queue, &bytes, &options, &unique);
            if let transport::Put::Existing(id) = put.instrument(span).await? {
                return Ok(MessageId(id));
            }
        } else {
            postgres
                .put_within(tx, M::OPTIONS.queue, &bytes, &options)
                .instrument(span)
                .await?;
        }
        bus.submitted::<M>(&envelope);
        Ok(MessageId(envelope.id))
    }
}
