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
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! let relay = mq::relay::Relay::connect(
//!     "postgres://app@127.0.0.1/shop?schema=outbox", // where `dispatch(..).within(&mut tx)` writes
//!     "beanstalk://127.0.0.1",                        // where the workers are
//! )
//! .await?;
//! let stats = relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! println!("{} relayed", stats.relayed);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use crate::envelope::Envelope;
use crate::transport::postgres::{as_outbox, PostgresTransport, Taken, RELAY_LEASE};
use crate::transport::{self, Failure, Transport};
use crate::{Backoff, Error, Result};

/// How long one look at the outbox waits for rows before the loop checks for a stop.
const LOOK: Duration = Duration::from_secs(1);

/// What a relay did until it stopped.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::relay::{Relay, RelayStats};
///
/// let relay = Relay::connect("postgres://app@127.0.0.1/shop?schema=outbox", "beanstalk://127.0.0.1").await?;
/// let RelayStats { relayed, refused, .. } = relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// println!("relayed {relayed}, refused {refused}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages the broker confirmed and the outbox let go.
    pub relayed: u64,
    /// Puts the broker refused: given back to be relayed again, or, when the broker can
    /// never take them (too large, say), moved to the outbox's failure store.
    pub refused: u64,
}

/// A relay from one outbox (a `postgres://` schema no worker consumes) to one broker.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
/// let relay = mq::relay::Relay::connect(outbox, "nats://127.0.0.1:4222").await?.batch(64);
/// let stats = relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
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
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::relay::Relay;
    /// use mq::transport::memory::MemoryTransport;
    ///
    /// let outbox = mq::transport::connect("postgres://app@127.0.0.1/shop?schema=outbox").await?;
    /// let relay = Relay::new(outbox, MemoryTransport::named("broker"))?;
    /// // Only a PostgreSQL schema can be an outbox:
    /// assert!(Relay::new(MemoryTransport::new(), MemoryTransport::new()).is_err());
    /// # Ok(()) }
    /// ```
    pub fn new(outbox: Arc<dyn Transport>, target: Arc<dyn Transport>) -> Result<Relay> {
        let from = as_outbox(&*outbox)?;
        let onto = PostgresTransport::of(&*target);
        if onto.is_some_and(|onto| from.same_schema(onto)) {
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
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
    /// let relay = mq::relay::Relay::connect(outbox, "beanstalk://10.0.0.7").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(outbox: &str, target: &str) -> Result<Relay> {
        Relay::new(
            transport::connect(outbox).await?,
            transport::connect(target).await?,
        )
    }

    /// At most this many messages per batch (256 unless set): also the most a killed relay
    /// can put twice.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
    /// let relay = mq::relay::Relay::connect(outbox, "beanstalk://10.0.0.7").await?.batch(32);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Relay {
        self.batch = batch.max(1);
        self
    }

    /// How long a relay holds a batch before another relay may take it (what a killed
    /// relay's rows wait): [`RELAY_LEASE`] unless set. Keep it longer than the broker takes
    /// to confirm a batch, and on NATS shorter than the stream's duplicate window.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use std::time::Duration;
    ///
    /// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
    /// let relay = mq::relay::Relay::connect(outbox, "nats://127.0.0.1:4222").await?
    ///     .lease(Duration::from_secs(60)); // brokers that take long to confirm a batch
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Relay {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    fn outbox(&self) -> Result<&PostgresTransport> {
        as_outbox(&*self.outbox)
    }

    /// Relays until `stop` completes: checked between batches, so within about a second,
    /// never in the middle of one. An outbox that fails (PostgreSQL restarting, say) is
    /// logged and tried again with a backoff, as is a broker that refuses.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use std::time::Duration;
    ///
    /// let outbox = "postgres://app@127.0.0.1/shop?schema=outbox";
    /// let relay = mq::relay::Relay::connect(outbox, "nats://127.0.0.1:4222").await?;
    /// // Relay for a minute, then stop between two batches.
    /// let stats = relay.run(tokio::time::sleep(Duration::from_secs(60))).await?;
    /// println!("{} relayed", stats.relayed);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// None today; kept for errors that a relay cannot get past.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future in the middle of a batch leaves that batch leased until
    /// [`Relay::lease`] ends, then relayed again (some of it, maybe, twice): stop it with
    /// `stop` instead.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<RelayStats> {
        tokio::pin!(stop);
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        let mut stats = RelayStats::default();
        let mut troubles = 0u32;
        loop {
            // Checked between looks, never during one: a look dropped mid-statement would
            // leave its rows leased to nobody until the lease ends.
            if (&mut stop).now_or_never().is_some() {
                return Ok(stats);
            }
            let trouble = match self
                .outbox()?
                .take_for_relay(self.batch, self.lease, LOOK)
                .await
            {
                Ok(taken) if taken.is_empty() => false,
                Ok(taken) => self.relay_batch(taken, &mut stats).await > 0,
                Err(error) => {
                    tracing::error!(%error, "cannot take from the outbox; trying again");
                    true
                }
            };
            if !trouble {
                troubles = 0;
                continue;
            }
            troubles += 1;
            tokio::select! {
                () = &mut stop => return Ok(stats),
                () = tokio::time::sleep(backoff.delay(troubles)) => {}
            }
        }
    }

    /// Puts every taken row on the broker at once (each bounded by half the lease, so a
    /// stalled broker does not let the lease run out under it), then settles each on the
    /// outbox: confirmed ones deleted, refused ones given back (their delay kept), those
    /// the broker can never take moved to the outbox's failure store. Returns how many
    /// were given back.
    async fn relay_batch(&self, taken: Vec<Taken>, stats: &mut RelayStats) -> u64 {
        let bound = self.lease / 2;
        let puts = taken.iter().map(|Taken { job, options }| {
            let key = Envelope::decode(&job.body)
                .map(|envelope| envelope.id)
                .unwrap_or_else(|_| format!("outbox-{}", job.id));
            let target = self.target.clone();
            let (queue, body, options) = (job.queue.clone(), job.body.clone(), *options);
            async move {
                tokio::time::timeout(bound, target.put_keyed(&queue, body, options, &key))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Unreachable {
                            address: target.describe(),
                            cause: format!("no confirmation within {bound:?}"),
                            source: None,
                        })
                    })
            }
        });
        let answers = futures_util::future::join_all(puts).await;
        let settles = taken.iter().zip(answers).map(|(taken, answer)| async move {
            let settled = self.settle(taken, answer.as_ref().err()).await;
            (answer, settled)
        });
        let mut given_back = 0;
        for (answer, settled) in futures_util::future::join_all(settles).await {
            match (&answer, settled) {
                (Ok(_), Ok(())) => stats.relayed += 1,
                (Err(error), Ok(())) => {
                    stats.refused += 1;
                    if permanent(error) {
                        tracing::error!(%error, "the broker cannot take a message of the outbox; moved to its failure store");
                    } else {
                        given_back += 1;
                        tracing::warn!(%error, "the broker refused a message; relaying it again");
                    }
                }
                // The lease ran out: another relay has the row and puts it again.
                (_, Err(Error::ReservationLost(id))) => {
                    tracing::warn!(id, "outbox row was taken by another relay meanwhile");
                }
                // The row stays leased and comes back when the lease ends.
                (_, Err(error)) => {
                    given_back += 1;
                    tracing::error!(%error, "cannot settle an outbox row; it comes back after its lease");
                }
            }
        }
        given_back
    }

    /// Settles one taken row after the broker's answer (`refusal` when it refused).
    async fn settle(&self, taken: &Taken, refusal: Option<&Error>) -> Result<()> {
        let Taken { job, options } = taken;
        match refusal {
            None => self.outbox.ack(job).await,
            Some(error) if permanent(error) => {
                let failure = Failure::new(
                    Vec::new(),
                    format!(
                        "the broker ({}) refused it: {error}",
                        self.target.describe()
                    ),
                    job.deliveries,
                    SystemTime::now(),
                );
                self.outbox
                    .fail(job, job.body.clone(), *options, failure)
                    .await
            }
            Some(_) => self.outbox()?.untake(job).await,
        }
    }
}

/// Whether the broker will refuse `error`'s message whatever the number of tries: too
/// large, or asking what the broker cannot do.
fn permanent(error: &Error) -> bool {
    matches!(
        error,
        Error::TooLarge { .. } | Error::Unsupported { .. } | Error::Unrepresentable { .. }
    )
}
