//! The `Message` trait: a data type that can be dispatched, and its per-type options.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::retry::Backoff;

/// Default priority: lower is sooner (beanstalkd's convention and default).
pub(crate) const DEFAULT_PRIORITY: u32 = 1024;
/// Default time to run before a reservation expires.
pub(crate) const DEFAULT_TTR: Duration = Duration::from_secs(60);
/// Default number of retries after the first attempt.
pub(crate) const DEFAULT_RETRIES: u32 = 3;
/// Default queue.
pub(crate) const DEFAULT_QUEUE: &str = "default";

/// A type that can be dispatched to a queue and handled by slots.
///
/// Implement it with `#[derive(mq::Message)]`, never by hand: the derive also registers the
/// type so that the worker can check for duplicate wire names at start-up.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "emails", priority = 100, ttr = "2m", retries = 5)]
/// struct SendOrderConfirmation {
///     order_id: u64,
///     to: String,
/// }
///
/// use mq::Message as _;
/// assert_eq!(SendOrderConfirmation::NAME, "SendOrderConfirmation");
/// assert_eq!(SendOrderConfirmation::OPTIONS.queue, "emails");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an mq message",
    label = "not an mq message",
    note = "add `#[derive(mq::Message, serde::Serialize, serde::Deserialize)]` to the definition of `{Self}`"
)]
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The wire name: what the envelope's `name` field says.
    const NAME: &'static str;
    /// Queue, priority, delays and retry policy.
    const OPTIONS: MessageOptions;
}

/// Per-type options, from `#[message(...)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageOptions {
    /// The queue (beanstalkd tube, SQLite queue name) messages of this type go to.
    pub queue: &'static str,
    /// Lower is sooner.
    pub priority: u32,
    /// Delay before a dispatched message becomes ready.
    pub delay: Duration,
    /// Time to run: reservations last this long and are kept alive at half of it.
    pub ttr: Duration,
    /// A slot that runs longer is cancelled; its attempt counts as failed.
    pub timeout: Option<Duration>,
    /// Retries after the first attempt; `None` takes the worker's default.
    pub retries: Option<u32>,
    /// Backoff between attempts; `None` takes the worker's default.
    pub backoff: Option<Backoff>,
}

impl MessageOptions {
    /// The options of a message without `#[message(...)]`.
    pub const DEFAULT: MessageOptions = MessageOptions {
        queue: DEFAULT_QUEUE,
        priority: DEFAULT_PRIORITY,
        delay: Duration::ZERO,
        ttr: DEFAULT_TTR,
        timeout: None,
        retries: None,
        backoff: None,
    };
}

impl Default for MessageOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the registry knows of one message type.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo {
    /// The wire name.
    pub name: &'static str,
    /// The Rust path of the type, as `std::any::type_name` gives it.
    pub rust_type: &'static str,
    /// Its options.
    pub options: MessageOptions,
}

impl MessageInfo {
    /// The info of `M`.
    pub fn of<M: Message>() -> MessageInfo {
        MessageInfo {
            name: M::NAME,
            rust_type: std::any::type_name::<M>(),
            options: M::OPTIONS,
        }
    }
}
