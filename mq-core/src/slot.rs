//! Slots: the functions `#[mq::slot]` registers, their parameters and their results.
//!
//! `#[slot]` turns `fn audit(msg: &Order, ctx: Context)` into an implementation of [`Slot`]
//! on a hidden type of the same name, and submits its [`SlotDef`] to the registry. Every
//! parameter after the message is a [`SlotParam`]: a new kind of parameter is one impl.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::value::RawValue;

use crate::context::Context;
use crate::message::{Message, MessageInfo};

/// The future a slot returns, boxed so that slots of any shape share one type.
pub type SlotFuture = Pin<Box<dyn Future<Output = Result<(), SlotError>> + Send + 'static>>;

/// A slot function, as `#[mq::slot]` describes it. Not implemented by hand.
pub trait Slot: 'static {
    /// The message type the slot listens for; a [`Message`], which [`SlotDef::of`] requires.
    /// Not a bound here: rustc would check the bound's supertraits too, and a type that is
    /// not a message at all would get an error for each (not `Serialize`, not
    /// `Deserialize`) besides the one that says so.
    type Message;
    /// The slot's path, `module::function`.
    const PATH: &'static str;
    /// What the slot's parameters need from the worker (the `State<T>` types).
    fn requirements() -> Vec<Requirement>;
    /// Runs the slot on a decoded message.
    fn call(message: Self::Message, context: Context) -> SlotFuture;
}

/// Something a slot parameter needs from the worker: a `State<T>`.
///
/// ```
/// use mq::SlotParam as _;
///
/// struct Mailer;
/// let requirement = mq::State::<Mailer>::requirement().unwrap();
/// assert_eq!(requirement.type_id, std::any::TypeId::of::<Mailer>());
/// assert!(requirement.type_name.ends_with("Mailer"));
/// assert_eq!(mq::Context::requirement(), None); // a Context needs nothing
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The type of the state.
    pub type_id: TypeId,
    /// Its name, for the start-up error.
    pub type_name: &'static str,
}

/// A slot parameter after the message: [`Context`], [`State<T>`](crate::State), or a new
/// kind added with one impl.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Charge { cents: i64 }
/// /// The attempt, as a slot parameter of its own.
/// struct Attempt(u32);
///
/// impl mq::SlotParam for Attempt {
///     fn from_context(context: &mq::Context) -> Result<Self, mq::SlotError> {
///         Ok(Attempt(context.attempt()))
///     }
/// }
///
/// #[mq::slot]
/// async fn charge(msg: Charge, attempt: Attempt) {
///     println!("charging {} (attempt {})", msg.cents, attempt.0);
/// }
///
/// let bus = mq::testing::RecordingBus::new();
/// let ctx = bus.context::<Charge>().attempt(2).build();
/// assert_eq!(<Attempt as mq::SlotParam>::from_context(&ctx).map(|a| a.0).ok(), Some(2));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a slot parameter",
    label = "not a slot parameter",
    note = "a slot takes the message first (by value or by reference), then any of `mq::Context` and `mq::State<T>`"
)]
pub trait SlotParam: Sized + Send + 'static {
    /// Takes the parameter's value from the context of the message being handled.
    ///
    /// # Errors
    ///
    /// The slot fails with this error, without running.
    ///
    /// ```
    /// use mq::SlotParam as _;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// let ctx = bus.context::<Ping>().build();
    /// assert_eq!(mq::Context::from_context(&ctx)?.name(), "Ping");
    /// struct Mailer;
    /// let Err(error) = mq::State::<Mailer>::from_context(&ctx) else {
    ///     unreachable!("no worker was given a Mailer");
    /// };
    /// assert!(error.is_permanent());
    /// # Ok::<(), mq::SlotError>(())
    /// ```
    fn from_context(context: &Context) -> Result<Self, SlotError>;

    /// What this parameter needs from the worker; checked at start-up.
    ///
    /// ```
    /// use mq::SlotParam as _;
    ///
    /// struct Mailer;
    /// assert!(mq::State::<Mailer>::requirement().is_some()); // the worker must have a Mailer
    /// assert!(mq::Context::requirement().is_none()); // the default: needs nothing
    /// ```
    fn requirement() -> Option<Requirement> {
        None
    }
}

/// The registry's record of one slot: a `Slot` with its types erased.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// #[mq::slot]
/// fn pong(_: Ping) {}
///
/// let slot: mq::SlotDef = mq::SlotDef::of::<pong>();
/// assert_eq!(slot.message().name, "Ping");
/// ```
#[derive(Clone, Copy)]
pub struct SlotDef {
    pub(crate) path: &'static str,
    pub(crate) message: fn() -> MessageInfo,
    pub(crate) requirements: fn() -> Vec<Requirement>,
    pub(crate) handler: fn(&RawValue, u32, Context) -> SlotFuture,
}

impl SlotDef {
    /// The record of slot `S`; `S` is the name of a `#[slot]` function.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// #[mq::slot]
    /// fn pong(_: Ping) {}
    ///
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()]).unwrap();
    /// assert_eq!(registry.route("Ping").unwrap().slots().count(), 1);
    /// ```
    pub const fn of<S: Slot>() -> SlotDef
    where
        S::Message: Message,
    {
        SlotDef {
            path: S::PATH,
            message: MessageInfo::of::<S::Message>,
            requirements: S::requirements,
            handler: decode_and_call::<S>,
        }
    }

    /// The slot's path, `module::function`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// #[mq::slot]
    /// fn pong(_: Ping) {}
    ///
    /// assert!(mq::SlotDef::of::<pong>().path().ends_with("::pong"));
    /// ```
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The message it listens for.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// #[message(queue = "emails")]
    /// struct Welcome { to: String }
    ///
    /// #[mq::slot]
    /// fn welcome(_: &Welcome) {}
    ///
    /// let info = mq::SlotDef::of::<welcome>().message();
    /// assert_eq!((info.name, info.options.queue), ("Welcome", "emails"));
    /// ```
    pub fn message(&self) -> MessageInfo {
        (self.message)()
    }

    /// The states it needs from the worker.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Welcome { to: String }
    /// # struct Mailer;
    /// #[mq::slot]
    /// async fn welcome(msg: Welcome, mailer: mq::State<Mailer>) {}
    ///
    /// let slot = mq::SlotDef::of::<welcome>();
    /// let needs = slot.requirements();
    /// assert_eq!(needs.len(), 1);
    /// assert_eq!(needs[0].type_id, std::any::TypeId::of::<Mailer>());
    /// ```
    pub fn requirements(&self) -> Vec<Requirement> {
        (self.requirements)()
    }

    /// Decodes `body`, written in the message's shape `version`, into the slot's message
    /// type and starts the slot.
    pub(crate) fn start(&self, body: &RawValue, version: u32, context: Context) -> SlotFuture {
        (self.handler)(body, version, context)
    }
}

impl fmt::Debug for SlotDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotDef")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

inventory::collect!(SlotDef);

/// The body, of the message's shape `version`, as the slot's message type (through its
/// upcaster for an older version), then the slot's call; a body that cannot be read is a
/// permanent failure of the slot with the reason.
fn decode_and_call<S: Slot>(body: &RawValue, version: u32, context: Context) -> SlotFuture
where
    S::Message: Message,
{
    match <S::Message as Message>::decode_version(body.get(), version) {
        Ok(message) => S::call(message, context),
        Err(e) => Box::pin(std::future::ready(Err(SlotError::undecodable(
            e.to_string(),
        )))),
    }
}

/// Why a slot failed, and whether to try again.
///
/// A slot may return `Result<(), E>` for any `E: Display`; such errors are retried. Return
/// `Result<(), mq::SlotError>` to decide per error:
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Charge { cents: i64 }
/// #[mq::slot]
/// async fn charge(msg: Charge) -> Result<(), mq::SlotError> {
///     if msg.cents < 0 {
///         // No retry will make a negative amount valid: straight to the failure store.
///         return Err(mq::SlotError::permanent("negative amount"));
///     }
///     // `?` on any std::error::Error makes a retryable SlotError.
///     let _parsed: u32 = "42".parse()?;
///     Ok(())
/// }
/// ```
///
/// `SlotError` does not implement `std::error::Error`, so that `?` works on every error type.
pub struct SlotError {
    message: String,
    kind: SlotErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotErrorKind {
    Retry,
    Permanent,
    Undecodable,
}

impl SlotError {
    /// A failure worth retrying (the default for any error).
    ///
    /// ```
    /// let error = mq::SlotError::retry(format!("smtp: {}", "timeout"));
    /// assert!(!error.is_permanent());
    /// assert_eq!(error.message(), "smtp: timeout");
    /// ```
    pub fn retry(error: impl fmt::Display) -> SlotError {
        SlotError {
            message: error.to_string(),
            kind: SlotErrorKind::Retry,
        }
    }

    /// A failure no retry can fix: the message goes to the failure store at once.
    ///
    /// ```
    /// let error = mq::SlotError::permanent("negative amount");
    /// assert!(error.is_permanent());
    /// ```
    pub fn permanent(error: impl fmt::Display) -> SlotError {
        SlotError {
            message: error.to_string(),
            kind: SlotErrorKind::Permanent,
        }
    }

    pub(crate) fn undecodable(message: String) -> SlotError {
        SlotError {
            message,
            kind: SlotErrorKind::Undecodable,
        }
    }

    /// True if retrying is pointless (permanent, or the payload does not decode).
    ///
    /// ```
    /// let io = std::io::Error::other("connection reset");
    /// let error: mq::SlotError = io.into(); // what `?` does in a slot
    /// assert!(!error.is_permanent());
    /// assert!(mq::SlotError::permanent("bad data").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.kind != SlotErrorKind::Retry
    }

    /// The error text.
    ///
    /// ```
    /// let error = mq::SlotError::from("x".parse::<u32>().unwrap_err());
    /// assert_eq!(error.message(), "invalid digit found in string");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotError")
            .field("message", &self.message)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<E: std::error::Error> From<E> for SlotError {
    fn from(error: E) -> SlotError {
        SlotError::retry(error)
    }
}

/// What a slot may return: `()` or `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid slot return type",
    label = "unsupported return type",
    note = "a slot returns nothing, or `Result<(), E>` where `E` implements `std::fmt::Display` (any `std::error::Error`, or `mq::SlotError`)"
)]
pub trait IntoSlotResult {
    /// Converts into the worker's view of the outcome.
    fn into_slot_result(self) -> Result<(), SlotError>;
}

impl IntoSlotResult for () {
    fn into_slot_result(self) -> Result<(), SlotError> {
        Ok(())
    }
}

impl<E: SlotErrorType> IntoSlotResult for Result<(), E> {
    fn into_slot_result(self) -> Result<(), SlotError> {
        self.map_err(|error| {
            if TypeId::of::<E>() == TypeId::of::<SlotError>() {
                let mut slot = Some(error);
                if let Some(own) = (&mut slot as &mut dyn Any).downcast_mut::<Option<SlotError>>() {
                    if let Some(own) = own.take() {
                        return own;
                    }
                }
                return SlotError::retry(slot.map(|e| e.to_string()).unwrap_or_default());
            }
            SlotError::retry(error)
        })
    }
}

/// The error type of a slot's `Result<(), E>`: any `E: Display + 'static`. A trait of its
/// own, with a blanket impl rustc does not recommend, so that an error type without
/// `Display` is reported in mq's words at the slot's `E`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a slot's error type: it does not implement `std::fmt::Display`",
    label = "not `Display`",
    note = "the worker keeps the error's text with the failed message: implement `std::fmt::Display` for `{Self}` (thiserror's `#[derive(Error)]` does), or return `Result<(), mq::SlotError>` with `mq::SlotError::retry(format!(\"{{e:?}}\"))`"
)]
pub trait SlotErrorType: fmt::Display + 'static {}

#[diagnostic::do_not_recommend]
impl<E: fmt::Display + 'static> SlotErrorType for E {}

/// Synchronous slots running now, on tokio's blocking pool.
static BLOCKING_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How many synchronous slots are running now. A thread cannot be killed: one whose slot
/// was abandoned (its timeout, or the grace of a stop, ran out) counts until it returns, and
/// keeps a tokio runtime from shutting down (`run_worker` exits the process instead).
pub(crate) fn blocking_slots_running() -> usize {
    BLOCKING_RUNNING.load(Ordering::Acquire)
}

/// Counts one synchronous slot running, until dropped (also by a panic).
struct BlockingRunning;

impl BlockingRunning {
    fn enter() -> BlockingRunning {
        BLOCKING_RUNNING.fetch_add(1, Ordering::AcqRel);
        BlockingRunning
    }
}

impl Drop for BlockingRunning {
    fn drop(&mut self) {
        BLOCKING_RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a synchronous slot on tokio's blocking pool, so it never stalls the runtime; a panic
/// in it resumes in the calling task, where the worker reports it as the slot's failure.
/// The slot runs in the caller's span (its `mq.slot`), so its own spans and log lines are
/// children of it, as an async slot's are.
pub(crate) async fn run_blocking<R, F>(f: F) -> Result<(), SlotError>
where
    F: FnOnce() -> R + Send + 'static,
    R: IntoSlotResult + Send + 'static,
{
    let span = tracing::Span::current();
    let counted = move || {
        let _running = BlockingRunning::enter();
        span.in_scope(f)
    };
    match tokio::task::spawn_blocking(counted).await {
        Ok(result) => result.into_slot_result(),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(SlotError::retry(format!(
            "blocking slot was cancelled: {error}"
        ))),
    }
}
