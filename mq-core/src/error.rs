//! The one error type of the library, and its `Result` alias.

use std::path::PathBuf;
use std::time::Duration;

/// A `Result` whose error defaults to [`mq::Error`](Error).
///
/// ```
/// fn check(queue: &str) -> mq::Result<()> {
///     mq::transport::check_queue_name(queue)
/// }
/// assert!(check("emails").is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The underlying error an [`Error`] came from (an I/O, SQLite or NATS client error), as
/// [`std::error::Error::source`] returns it.
///
/// ```
/// let cause: mq::Cause = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(cause.is::<std::io::Error>());
/// ```
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in mq outside a slot.
///
/// Errors a slot returns are [`SlotError`](crate::SlotError)s; they decide retries and never
/// become an `Error`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// match mq::Bus::connect("smtp://127.0.0.1").await {
///     Err(mq::Error::InvalidUrl { url, reason }) => {
///         assert_eq!(url, "smtp://127.0.0.1");
///         println!("{reason}"); // lists the schemes this build can open
///     }
///     other => panic!("expected an invalid URL, got {other:?}"),
/// }
/// # }
/// ```
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
        /// What the operating system or the server said, and what to check.
        cause: String,
        /// The error underneath (the operating system's, the client library's), if any.
        #[source]
        source: Option<Cause>,
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

    /// The backend cannot do what a message or a dispatch asks (see
    /// [`Capabilities`](crate::transport::Capabilities)).
    #[error("{what} is not supported by this backend: {reason}")]
    Unsupported {
        /// What was asked.
        what: String,
        /// Why not, and what to do instead.
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
        /// SQLite's own error (or the operating system's), if any.
        #[source]
        source: Option<Cause>,
    },

    /// NATS JetStream refused or failed an operation, or a stream or consumer exists with
    /// settings mq cannot use (mq never changes them).
    #[error("nats jetstream: {detail}")]
    Nats {
        /// What failed, in the client's or mq's words.
        detail: String,
        /// The client library's error, if any.
        #[source]
        source: Option<Cause>,
    },

    /// The PostgreSQL queue failed, refused the connection, or its schema cannot be used.
    #[error("postgres queue: {detail}")]
    Postgres {
        /// What went wrong, and what to do about it.
        detail: String,
        /// sqlx's own error, if any.
        #[source]
        source: Option<Cause>,
    },

    /// The registry is inconsistent: caught at worker start-up.
    #[error("{0}")]
    Registry(String),

    /// A worker or command-line option is invalid.
    #[error("invalid option: {0}")]
    Config(String),

    /// The signing keys (`MQ_SIGNING_KEYS`) are malformed, too short or given twice: the
    /// text names the key, never its secret.
    #[error(transparent)]
    SigningKeys(#[from] crate::signing::KeyError),

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

impl Error {
    /// [`Error::Unreachable`] without an underlying error (for backends, mq's own and
    /// others').
    ///
    /// ```
    /// let error = mq::Error::unreachable("10.0.0.1:11300", "no answer within 5s");
    /// assert_eq!(error.to_string(), "cannot reach 10.0.0.1:11300: no answer within 5s");
    /// ```
    pub fn unreachable(address: impl Into<String>, cause: impl Into<String>) -> Error {
        Error::Unreachable {
            address: address.into(),
            cause: cause.into(),
            source: None,
        }
    }

    /// [`Error::Unreachable`] caused by `source`, whose text is the cause.
    ///
    /// ```
    /// use std::error::Error as _;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let error = mq::Error::unreachable_by("127.0.0.1:1", io);
    /// assert_eq!(error.to_string(), "cannot reach 127.0.0.1:1: refused");
    /// assert!(error.source().is_some());
    /// ```
    pub fn unreachable_by(
        address: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Unreachable {
            address: address.into(),
            cause: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::unreachable_by("127.0.0.1:1", io);
        assert_eq!(error.to_string(), "cannot reach 127.0.0.1:1: refused");
        let source = error.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the i/o error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(Error::unreachable("h:1", "silent").source().is_none());
    }
}
