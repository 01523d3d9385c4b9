//! The `Message` trait: a data type that can be dispatched, and its per-type options.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

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
/// type so that the worker can check for duplicate wire names at start-up. A message must
/// also derive `serde::Serialize` and `serde::Deserialize` (owning its data), and be
/// `Send + Sync + 'static`; the hidden supertraits that check the serde part say in mq's
/// words which derive is missing. In generic code, `M: Message` does not imply
/// `M: Serialize`: add the bound if you serialize `M` yourself.
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
pub trait Message: SerializeMessage + DeserializeMessage + Send + Sync + 'static {
    /// The wire name: what the envelope's `name` field says.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(name = "shop.OrderPlaced.v2")]
    /// struct OrderPlaced { id: u64 }
    ///
    /// assert_eq!(OrderPlaced::NAME, "shop.OrderPlaced.v2");
    /// ```
    const NAME: &'static str;
    /// Queue, priority, delays and retry policy.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails", priority = 10)]
    /// struct Welcome { to: String }
    ///
    /// assert_eq!((Welcome::OPTIONS.queue, Welcome::OPTIONS.priority), ("emails", 10));
    /// ```
    const OPTIONS: MessageOptions;
    /// The version of the message's shape this build writes (`#[message(version = N)]`,
    /// default 1); dispatch puts it in the envelope's `message_version`.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(version = 2)]
    /// struct OrderPlaced { id: u64, cents: u64 }
    ///
    /// assert_eq!(OrderPlaced::VERSION, 2);
    /// ```
    const VERSION: u32 = 1;
    /// The older versions this build reads, each through its old type and a `From` impl
    /// (`#[message(previous(1 = OrderPlacedV1))]`), ascending.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Deserialize)]
    /// struct OrderPlacedV1 { id: u64 }
    ///
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(version = 2, previous(1 = OrderPlacedV1))]
    /// struct OrderPlaced { id: u64, cents: u64 }
    ///
    /// impl From<OrderPlacedV1> for OrderPlaced {
    ///     fn from(old: OrderPlacedV1) -> Self {
    ///         OrderPlaced { id: old.id, cents: 0 }
    ///     }
    /// }
    ///
    /// assert_eq!(OrderPlaced::PREVIOUS_VERSIONS, [1]);
    /// ```
    const PREVIOUS_VERSIONS: &'static [u32] = &[];

    /// The message from a body written in shape `version`: the current version is read as
    /// `Self`, an older one listed in `previous(...)` as its old type and then upcast. The
    /// derive generates it; the worker calls it for each slot.
    ///
    /// # Errors
    ///
    /// [`DecodeError`](crate::DecodeError): a newer version, an older one without a reader,
    /// or a body that does not deserialize (serde's error).
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Deserialize)]
    /// struct OrderPlacedV1 { id: u64 }
    ///
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(version = 2, previous(1 = OrderPlacedV1))]
    /// struct OrderPlaced { id: u64, cents: u64 }
    ///
    /// impl From<OrderPlacedV1> for OrderPlaced {
    ///     fn from(old: OrderPlacedV1) -> Self {
    ///         OrderPlaced { id: old.id, cents: 0 }
    ///     }
    /// }
    ///
    /// let old = OrderPlaced::decode_version(r#"{"id":7}"#, 1)?;
    /// assert_eq!((old.id, old.cents), (7, 0));
    /// let new = OrderPlaced::decode_version(r#"{"id":7,"cents":250}"#, 2)?;
    /// assert_eq!(new.cents, 250);
    /// # Ok::<(), mq::DecodeError>(())
    /// ```
    fn decode_version(body: &str, version: u32) -> Result<Self, crate::DecodeError> {
        if version == Self::VERSION {
            crate::version::decode_current(body)
        } else {
            Err(crate::DecodeError::unreadable::<Self>(version))
        }
    }

    /// The unique key of this message, from the fields `#[message(unique = "...")]` names
    /// (their values joined by `/`, a string as it is, anything else as JSON); `None` for a
    /// message type without it. Written by the derive; a key given at dispatch
    /// ([`Dispatch::unique`](crate::Dispatch::unique)) takes its place.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(unique = "customer, order_id")]
    /// struct Refund { customer: String, order_id: u64, cents: u64 }
    ///
    /// let refund = Refund { customer: "acme".into(), order_id: 7, cents: 500 };
    /// assert_eq!(refund.unique_key().unwrap().as_deref(), Some("acme/7"));
    /// ```
    ///
    /// # Errors
    ///
    /// A field that does not serialize to JSON.
    fn unique_key(&self) -> Result<Option<String>, serde_json::Error> {
        Ok(None)
    }

    /// The values of the fields `#[message(concurrency_key = "...")]` and
    /// `#[message(rate_key = "...")]` name, in that order (joined as
    /// [`unique_key`](Message::unique_key) joins its fields); `None` for a limit without
    /// key fields, or no limit. Written by the derive. A dispatch puts the message type's
    /// wire name before each (`NAME:value`; the wire name alone for a limit without key
    /// fields), so two message types never share permits; a key given at dispatch
    /// ([`Dispatch::concurrency_key`](crate::Dispatch::concurrency_key),
    /// [`Dispatch::rate_limit`](crate::Dispatch::rate_limit)) takes its place.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(concurrency = 2, concurrency_key = "customer", rate_limit = 50)]
    /// struct CallApi { customer: String, region: u32 }
    ///
    /// let call = CallApi { customer: "acme".into(), region: 3 };
    /// assert_eq!(call.limit_keys().unwrap(), (Some("acme".to_owned()), None));
    /// assert_eq!((CallApi::OPTIONS.concurrency, CallApi::OPTIONS.rate), (Some(2), Some(50)));
    /// ```
    ///
    /// # Errors
    ///
    /// A field that does not serialize to JSON.
    fn limit_keys(&self) -> Result<(Option<String>, Option<String>), serde_json::Error> {
        Ok((None, None))
    }
}

/// A message that `#[message(schedule = "...")]` makes at each tick: one with a `Default`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has `#[message(schedule = ...)]` but no `Default`",
    label = "a recurring message is made with `Default::default()` at each tick",
    note = "add `#[derive(Default)]` to `{Self}`, or implement `Default` for it"
)]
pub trait ScheduledMessage: Message {
    /// The message of one tick.
    fn for_tick() -> Self;
}

#[diagnostic::do_not_recommend]
impl<T: Message + Default> ScheduledMessage for T {
    fn for_tick() -> Self {
        T::default()
    }
}

/// One field's part of a unique key: a string as it is, any other value as JSON.
#[doc(hidden)]
pub fn unique_part<T: Serialize + ?Sized>(
    field: &T,
    key: &mut String,
) -> Result<(), serde_json::Error> {
    if !key.is_empty() {
        key.push('/');
    }
    match serde_json::to_value(field)? {
        serde_json::Value::String(text) => key.push_str(&text),
        other => key.push_str(&other.to_string()),
    }
    Ok(())
}

/// `serde::Serialize`, as a supertrait of [`Message`] whose failure says what to derive.
///
/// Not `Serialize` itself as a supertrait: rustc checks a supertrait's own supertraits
/// directly and would report serde's bound in serde's words. The blanket impl is
/// `do_not_recommend`, so a type that is not `Serialize` is reported as not this trait,
/// with this message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` must derive serde's `Serialize` to be an mq message",
    label = "not `serde::Serialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the definition of `{Self}`: mq sends a message as JSON"
)]
pub trait SerializeMessage {
    /// The message as the JSON body of an envelope.
    fn encode_body(&self) -> Result<Box<RawValue>, serde_json::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize> SerializeMessage for T {
    fn encode_body(&self) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::value::to_raw_value(self)
    }
}

/// `serde::DeserializeOwned`, as a supertrait of [`Message`] whose failure says what to
/// derive (see [`SerializeMessage`]).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` must derive serde's `Deserialize` to be an mq message",
    label = "not `serde::Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the definition of `{Self}`: mq sends a message as JSON, and a message owns its data (no borrowed `&'de str`)"
)]
pub trait DeserializeMessage: Sized {
    /// The message from the JSON body of an envelope.
    fn decode_body(body: &str) -> Result<Self, serde_json::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: DeserializeOwned> DeserializeMessage for T {
    fn decode_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// Per-type options, from `#[message(...)]`.
///
/// ```
/// use mq::Message as _;
/// # use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "emails", delay = "30s", retries = 5)]
/// struct SendOrderConfirmation { order_id: u64 }
///
/// let options = SendOrderConfirmation::OPTIONS;
/// assert_eq!((options.queue, options.delay), ("emails", Duration::from_secs(30)));
/// assert_eq!((options.retries, options.backoff), (Some(5), None));
/// ```
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
    /// `Some` for a unique message type (`#[message(unique = "...")]`): how long its key
    /// stays taken after the message ended (`unique_for`, zero by default).
    pub unique: Option<Duration>,
    /// `Some((cron, zone))` for a recurring message (`#[message(schedule = "...",
    /// schedule_zone = "...")]`, the zone `"UTC"` by default): a worker that handles it
    /// dispatches `Default::default()` at each tick (feature `schedules`).
    pub schedule: Option<(&'static str, &'static str)>,
    /// `Some(n)`: at most `n` messages of this type run their slots at once, per value of
    /// the `concurrency_key` fields (or for the whole type without them), across every
    /// worker on the backend (`#[message(concurrency = n)]`).
    pub concurrency: Option<u32>,
    /// `Some(r)`: at most `r` messages of this type start their slots per second, per value
    /// of the `rate_key` fields (or for the whole type without them), across every worker
    /// on the backend (`#[message(rate_limit = r)]`).
    pub rate: Option<u32>,
}

impl MessageOptions {
    /// The options of a message without `#[message(...)]`.
    ///
    /// ```
    /// use mq::Message as _;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Ping;
    ///
    /// assert_eq!(Ping::OPTIONS, mq::MessageOptions::DEFAULT);
    /// assert_eq!((Ping::OPTIONS.queue, Ping::OPTIONS.priority), ("default", 1024));
    /// ```
    pub const DEFAULT: MessageOptions = MessageOptions {
        queue: DEFAULT_QUEUE,
        priority: DEFAULT_PRIORITY,
        delay: Duration::ZERO,
        ttr: DEFAULT_TTR,
        timeout: None,
        retries: None,
        backoff: None,
        unique: None,
        schedule: None,
        concurrency: None,
        rate: None,
    };

    /// The same, for a unique message type whose key stays taken for `hold_after` once a
    /// message ended.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = mq::MessageOptions::DEFAULT.with_unique(Duration::from_secs(60));
    /// assert_eq!(options.unique, Some(Duration::from_secs(60)));
    /// ```
    pub const fn with_unique(self, hold_after: Duration) -> MessageOptions {
        MessageOptions {
            unique: Some(hold_after),
            ..self
        }
    }

    /// The same, for a recurring message: at each tick of the cron expression `cron`, read
    /// in the IANA time zone `zone`.
    ///
    /// ```
    /// let options = mq::MessageOptions::DEFAULT.with_schedule("0 0 9 * * *", "Europe/Berlin");
    /// assert_eq!(options.schedule, Some(("0 0 9 * * *", "Europe/Berlin")));
    /// ```
    pub const fn with_schedule(self, cron: &'static str, zone: &'static str) -> MessageOptions {
        MessageOptions {
            schedule: Some((cron, zone)),
            ..self
        }
    }

    /// The same, with at most `limit` messages of the type running at once (per key; see
    /// [`Message::limit_keys`]).
    ///
    /// ```
    /// let options = mq::MessageOptions::DEFAULT.with_concurrency(2);
    /// assert_eq!(options.concurrency, Some(2));
    /// ```
    pub const fn with_concurrency(self, limit: u32) -> MessageOptions {
        MessageOptions {
            concurrency: Some(limit),
            ..self
        }
    }

    /// The same, with at most `per_second` messages of the type starting per second (per
    /// key; see [`Message::limit_keys`]).
    ///
    /// ```
    /// let options = mq::MessageOptions::DEFAULT.with_rate(50);
    /// assert_eq!(options.rate, Some(50));
    /// ```
    pub const fn with_rate(self, per_second: u32) -> MessageOptions {
        MessageOptions {
            rate: Some(per_second),
            ..self
        }
    }
}

impl Default for MessageOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the registry knows of one message type.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(name = "shop.OrderPlaced")]
/// struct OrderPlaced { id: u64 }
///
/// let info = mq::MessageInfo::of::<OrderPlaced>();
/// assert_eq!(info.name, "shop.OrderPlaced");
/// assert!(info.rust_type.ends_with("OrderPlaced"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo {
    /// The wire name.
    pub name: &'static str,
    /// The Rust path of the type, as `std::any::type_name` gives it.
    pub rust_type: &'static str,
    /// Its options.
    pub options: MessageOptions,
    /// The version of its shape this build writes.
    pub version: u32,
    /// The older versions this build reads.
    pub previous: &'static [u32],
    decode: fn(&str, u32) -> Result<(), crate::DecodeError>,
}

impl MessageInfo {
    /// The info of `M`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails")]
    /// struct SendOrderConfirmation { order_id: u64 }
    ///
    /// let info = mq::MessageInfo::of::<SendOrderConfirmation>();
    /// assert_eq!((info.name, info.options.queue), ("SendOrderConfirmation", "emails"));
    /// ```
    pub fn of<M: Message>() -> MessageInfo {
        MessageInfo {
            name: M::NAME,
            rust_type: std::any::type_name::<M>(),
            options: M::OPTIONS,
            version: M::VERSION,
            previous: M::PREVIOUS_VERSIONS,
            decode: |body, version| M::decode_version(body, version).map(drop),
        }
    }

    /// Whether this build reads the message's shape `version` (its own, or one listed in
    /// `previous(...)`), without looking at a body.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Newer`](crate::DecodeError::Newer) or
    /// [`DecodeError::NoReader`](crate::DecodeError::NoReader).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(version = 2)]
    /// struct OrderPlaced { id: u64 }
    ///
    /// let info = mq::MessageInfo::of::<OrderPlaced>();
    /// assert!(info.reads(2).is_ok());
    /// assert!(info.reads(3).unwrap_err().is_newer());
    /// assert!(info.reads(1).is_err()); // no `previous(1 = ...)`
    /// ```
    pub fn reads(&self, version: u32) -> Result<(), crate::DecodeError> {
        if version == self.version || self.previous.contains(&version) {
            return Ok(());
        }
        Err(crate::version::unreadable(
            self.name,
            self.rust_type,
            self.version,
            self.previous,
            version,
        ))
    }

    /// Decodes `body`, of shape `version`, into the message type and drops it: whether this
    /// build can read it, and if not, why.
    ///
    /// # Errors
    ///
    /// As [`Message::decode_version`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Ping { id: u64 }
    ///
    /// let info = mq::MessageInfo::of::<Ping>();
    /// assert!(info.decode(r#"{"id":7}"#, 1).is_ok());
    /// let error = info.decode(r#"{"id":"x"}"#, 1).unwrap_err();
    /// assert!(error.to_string().starts_with("body does not decode as `"));
    /// ```
    pub fn decode(&self, body: &str, version: u32) -> Result<(), crate::DecodeError> {
        (self.decode)(body, version)
    }
}
