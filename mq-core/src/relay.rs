//! The outbox relay: moves the messages an application dispatched into a PostgreSQL
//! outbox, inside its own transactions, onto the broker its workers consume (beanstalkd,
//! NATS, any backend), and removes each from the outbox only once the broker confirmed it.
//!
//! One loop: take a batch of the outbox's rows (leased for [`RELAY_LEASE`] unless
//! [`Relay::lease`] says otherwise, see `transport/postgres/outbox.rs`), put each on the broker with
//! [`Transport::put_keyed`] (its key the envelope's message id), ack those the broker
//! confirmed, release those it refused, and look again (woken by the outbox's NOTIFY).
//!
//! What holds: nothing committed to the outbox is lost, whenever the relay is killed; a
//! relay killed between the broker's confirmation and the outbox's ack puts those
//! messages again once their lease ends (at most one batch per kill, [`Relay::batch`]). On
//! NATS the copies carry the same `Nats-Msg-Id` and the stream drops them; on beanstalkd
//! they are duplicates, which at-least-once delivery allows. Any number of relays may run
//! on one outbox: each row goes to one of them at a time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::envelope::Envelope;
use crate::transport::postgres::{as_outbox, PostgresTransport, Taken, RELAY_LEASE};
use crate::transport::{self, Transport};
use crate::{Backoff, Error, Result};

/// How long one look at the outbox waits for rows before the loop checks for a stop.
const LOOK: Duration = Duration::from_secs(1);

/// What a relay did until it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages the broker confirmed and the outbox let go.
    pub relayed: u64,
    /// Puts the broker refused (the rows were released, to be relayed again).
    pub refused: u64,
}

/// A relay from one outbox (a `postgres://` schema no worker consumes) to one broker.
#[derive(Debug, Clone)]
pub struct Relay {
    outbox: Arc<dyn Transport>,
    target: Arc<dyn Transport>,
    batch: usize,
    lease: Duration,
}

impl Relay {
    /// A relay from `outbox` to `target`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when `outbox` is not a PostgreSQL transport, or is the same
    /// schema as `target` (a relay onto itself would loop).
    pub fn new(outbox: Arc<dyn Transport>, target: Arc<dyn Transport>) -> Result<Relay> {
        as_outbox(&*outbox)?;
        if outbox.describe() == target.describe() {
            return Err(Error::Unsupported {
                what: "a relay onto its own outbox".to_owned(),
                reason: format!(
                    "the outbox and the target are both {}: give the outbox a schema of its \
                     own (?schema=outbox) and point the target at the broker",
                    transport::redacted(&outbox.describe())
                ),
            });
        }
        Ok(Relay {
            outbox,
            target,
            batch: 256,
            lease: RELAY_LEASE,
        })
    }

    /// Opens both URLs and makes a relay of them.
    ///
    /// # Errors
    ///
    /// As [`transport::connect`] for either URL, and as [`Relay::new`].
    pub async fn connect(outbox: &str, target: &str) -> Result<Relay> {
        Relay::new(
            transport::connect(outbox).await?,
            transport::connect(target).await?,
        )
    }

    /// At most this many messages per batch (256 unless set): also the most a killed relay
    /// can put twice.
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Relay {
        self.batch = batch.max(1);
        self
    }

    /// How long a relay holds a batch before another relay may take it (what a killed
    /// relay's rows wait): [`RELAY_LEASE`] unless set. Keep it longer than the broker takes
    /// to confirm a batch, and on NATS shorter than the stream's duplicate window.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Relay {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    fn outbox(&self) -> Result<&PostgresTransport> {
        as_outbox(&*self.outbox)
    }

    /// Relays until `stop` completes (checked between batches, so within about a second,
    /// never in the middle of one) or the outbox fails; a broker that refuses is tried
    /// again with a backoff.
    ///
    /// # Errors
    ///
    /// The outbox's errors (taking, acking or releasing rows).
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<RelayStats> {
        tokio::pin!(stop);
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        let mut stats = RelayStats::default();
        let mut refusals = 0u32;
        loop {
            // Checked between looks, never during one: a look dropped mid-statement would
            // leave its rows leased to nobody until the lease ends.
            if (&mut stop).now_or_never().is_some() {
                return Ok(stats);
            }
            let taken = self
                .outbox()?
                .take_for_relay(self.batch, self.lease, LOOK)
                .await?;
            if taken.is_empty() {
                continue;
            }
            let refused = self.relay_batch(taken, &mut stats).await?;
            if refused == 0 {
                refusals = 0;
                continue;
            }
            refusals += 1;
            let wait = backoff.delay(refusals);
            tokio::select! {
                () = &mut stop => return Ok(stats),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Puts every taken row on the broker at once, then settles each on the outbox;
    /// returns how many the broker refused.
    async fn relay_batch(&self, taken: Vec<Taken>, stats: &mut RelayStats) -> Result<u64> {
        let puts = taken.iter().map(|Taken { job, options }| {
            let key = Envelope::decode(&job.body)
                .map(|envelope| envelope.id)
                .unwrap_or_else(|_| format!("outbox-{}", job.id));
            let target = self.target.clone();
            let (queue, body, options) = (job.queue.clone(), job.body.clone(), *options);
            async move { target.put_keyed(&queue, body, options, &key).await }
        });
        let answers = futures_util::future::join_all(puts).await;
        let mut refused = 0;
        let mut last_refusal = None;
        let settles = taken
            .iter()
            .zip(answers)
            .map(|(Taken { job, .. }, answer)| {
                let confirmed = answer.is_ok();
                if let Err(error) = answer {
                    refused += 1;
                    last_refusal = Some(error);
                }
                let outbox = self.outbox.clone();
                async move {
                    if confirmed {
                        outbox.ack(job).await.map(|()| true)
                    } else {
                        outbox.release(job).await.map(|()| false)
                    }
                }
            });
        let settled = futures_util::future::join_all(settles).await;
        for result in settled {
            match result {
                Ok(true) => stats.relayed += 1,
                Ok(false) => {}
                // The lease ran out (a broker slower than RELAY_LEASE): another relay has
                // the row, and puts it again; nothing is lost.
                Err(Error::ReservationLost(id)) => {
                    tracing::warn!(id, "outbox row was taken by another relay meanwhile");
                }
                Err(error) => return Err(error),
            }
        }
        stats.refused += refused;
        if let Some(error) = last_refusal {
            tracing::warn!(%error, refused, "the broker refused messages; relaying them again");
        }
        Ok(refused)
    }
}
