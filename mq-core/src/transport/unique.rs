//! Unique messages through the seam: the key a dispatch names ([`Unique`]) and what a
//! backend answers ([`Put`]): the item it queued, or the id of the message that already
//! holds the key.
//!
//! A backend that can keep a key declares [`Feature::Unique`](super::Feature::Unique) and
//! overrides [`Transport::put_unique`](super::Transport::put_unique). It keeps the key from
//! the put until the item is acked or failed, across retries (the retry's replacement item
//! holds it) and lease expiries, then for [`Unique::hold_after`]; a put whose transaction
//! rolls back keeps no key.

use std::time::Duration;

/// The unique key of one dispatch.
///
/// ```
/// use mq::transport::Unique;
/// use std::time::Duration;
///
/// let unique = Unique::new("shop.Refund:7", "01a24169-671b-7365-9c2e-41c78ec07e1b")
///     .hold_after(Duration::from_secs(600));
/// assert_eq!((unique.key.as_str(), unique.hold_after), ("shop.Refund:7", Duration::from_secs(600)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unique {
    /// The key, namespaced by the message's wire name (`shop.Refund:7`).
    pub key: String,
    /// The envelope id of the message being put: what a later put with the key gets back.
    pub message_id: String,
    /// How long the key stays taken after the message was acked or failed.
    pub hold_after: Duration,
}

impl Unique {
    /// The key `key` for the message `message_id`, freed as soon as the message ends.
    ///
    /// ```
    /// let unique = mq::transport::Unique::new("Reindex:3", "id-1");
    /// assert!(unique.hold_after.is_zero());
    /// ```
    pub fn new(key: impl Into<String>, message_id: impl Into<String>) -> Unique {
        Unique {
            key: key.into(),
            message_id: message_id.into(),
            hold_after: Duration::ZERO,
        }
    }

    /// The same, with the key kept for `hold_after` once the message ended.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let unique = mq::transport::Unique::new("Reindex:3", "id-1").hold_after(Duration::from_secs(60));
    /// assert_eq!(unique.hold_after, Duration::from_secs(60));
    /// ```
    pub fn hold_after(self, hold_after: Duration) -> Unique {
        Unique { hold_after, ..self }
    }
}

/// The debounce of one dispatch: its key, how long the key must be quiet before the
/// message runs, and the longest the first dispatch of a burst waits.
///
/// ```
/// use mq::transport::Debounce;
/// use std::time::Duration;
///
/// let debounce = Debounce::new("Reindex:shop-7", Duration::from_secs(2), Duration::from_secs(30));
/// assert_eq!(debounce.quiet, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Debounce {
    /// The key, namespaced by the message's wire name.
    pub key: String,
    /// A message runs once no dispatch with its key came for this long.
    pub quiet: Duration,
    /// ... but never later than this after the first dispatch of the burst.
    pub max_wait: Duration,
}

impl Debounce {
    /// The debounce of `key`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let debounce = mq::transport::Debounce::new("k", Duration::from_secs(1), Duration::from_secs(5));
    /// assert_eq!(debounce.max_wait, Duration::from_secs(5));
    /// ```
    pub fn new(key: impl Into<String>, quiet: Duration, max_wait: Duration) -> Debounce {
        Debounce {
            key: key.into(),
            quiet,
            max_wait,
        }
    }

    /// The delay of a new message of a burst: the quiet period, at most the maximum wait.
    pub(crate) fn first_delay(&self) -> Duration {
        self.quiet.min(self.max_wait)
    }
}

/// What [`put_unique`](super::Transport::put_unique) did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, Put, PutOptions, Transport, Unique};
///
/// let queue = MemoryTransport::new();
/// let first = queue.put_unique("q", "a".into(), PutOptions::default(), &Unique::new("k", "id-1")).await?;
/// let again = queue.put_unique("q", "b".into(), PutOptions::default(), &Unique::new("k", "id-2")).await?;
/// assert!(matches!(first, Put::Queued(_)));
/// assert_eq!(again, Put::Existing("id-1".to_owned()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// The item was queued; the backend's id of it.
    Queued(u64),
    /// Another message holds the key: its envelope id. Nothing was queued.
    Existing(String),
}
