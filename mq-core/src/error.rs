//! The one error type of the library, and its `Result` alias.

use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error defaults to [`mq::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mq outside a slot.
///
/// Errors a slot returns are [`SlotError`](crate::SlotError)s; they decide retries and never
/// become an `Error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `MQ_URL` (or a URL given in code) could not be understood.
    #[error("invalid queue URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it and how to write it.
        reason: String,
    },

    /// The queue server could not be reached or went away.
    #[error("cannot reach {address}: {cause}")]
    Unreachable {
        /// The server address, as `host:port`.
        address: String,
        /// What the operating system or the server said.
        cause: String,
    },

    /// A message is larger than the backend accepts.
    #[error("message `{name}` is {size} bytes, over the backend's limit of {limit} bytes")]
    TooLarge {
        /// The wire name of the message.
        name: String,
        /// The size of the encoded envelope, in bytes.
        size: usize,
        /// The largest envelope the backend accepts, in bytes.
        limit: usize,
    },

    /// A delay or TTR the backend cannot represent.
    #[error("{what} of {value:?} cannot be expressed by this backend: {reason}")]
    Unrepresentable {
        /// Which option (`delay`, `ttr`).
        what: &'static str,
        /// The value asked for.
        value: Duration,
        /// Why, and the largest value allowed.
        reason: String,
    },

    /// A message could not be encoded as JSON.
    #[error("cannot encode message `{name}`: {source}")]
    Encode {
        /// The wire name of the message.
        name: String,
        /// What serde_json said.
        source: serde_json::Error,
    },

    /// The queue server answered something mq did not expect.
    #[error("protocol error from {backend}: {detail}")]
    Protocol {
        /// The backend, e.g. `beanstalkd`.
        backend: &'static str,
        /// What was expected and what came.
        detail: String,
    },

    /// The embedded SQLite queue failed.
    #[error("sqlite queue {}: {detail}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What went wrong, and what to do about it.
        detail: String,
    },

    /// NATS JetStream refused or failed an operation, or a stream or consumer exists with
    /// settings mq cannot use (mq never changes them).
    #[error("nats jetstream: {0}")]
    Nats(String),

    /// The registry is inconsistent: caught at worker start-up.
    #[error("{0}")]
    Registry(String),

    /// A worker or command-line option is invalid.
    #[error("invalid option: {0}")]
    Config(String),

    /// An entry of the failure store does not exist.
    #[error("no failed message with id {0}")]
    NotFound(u64),

    /// A reservation ran out (TTR or lease) before the worker acked, retried or released it:
    /// another worker may run the message again.
    #[error("reservation of item {0} was lost (its TTR ran out or the connection dropped)")]
    ReservationLost(u64),

    /// The backend confirmed some messages of a batch dispatch
    /// ([`Bus::dispatch_all`](crate::Bus::dispatch_all)) and not the others: dispatch again
    /// those not listed in `queued`. An unconfirmed message may have been queued all the
    /// same (a connection lost mid-batch, a job beanstalkd stored buried when out of
    /// memory), so dispatching it again may duplicate it: at least once.
    #[error("{} of {total} messages were queued, the others were not confirmed: {source}", queued.len())]
    PartlyQueued {
        /// The messages that were queued: their index in the batch and their id.
        queued: Vec<(usize, crate::MessageId)>,
        /// How many messages the batch had.
        total: usize,
        /// Why the others were not confirmed (the first error).
        source: Box<Error>,
    },

    /// The transport was closed.
    #[error("transport closed")]
    Closed,

    /// An I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
