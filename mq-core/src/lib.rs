// The crate's documentation is the README (`mq-core/README.md` is a link to the repository's),
// after the definitions that point its links to the guides at `mq::guide`.
#![doc = include_str!("guide/links.md")]
#![doc = include_str!("../README.md")]
#![warn(
    missing_debug_implementations,
    missing_docs,
    rust_2018_idioms,
    unreachable_pub
)]

mod bus;
pub mod check;
mod context;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod duration;
mod envelope;
mod error;
pub mod event;
pub mod guide;
mod id_map;
#[cfg(feature = "logging")]
mod logging;
mod message;
mod registry;
#[cfg(feature = "postgres")]
pub mod relay;
pub mod retry;
#[cfg(feature = "schedules")]
pub mod schedule;
pub mod signing;
mod slot;
mod telemetry;
pub mod testing;
pub mod transport;
mod version;
pub mod worker;

pub use bus::{dispatch, dispatch_all, global, Bus, Dispatch, DispatchAll, MessageId};
pub use check::check;
pub use context::{Context, State};
pub use duration::parse_duration;
pub use envelope::{Envelope, Headers};
pub use error::{Cause, Error, Result};
pub use event::{Event, EventKind};
#[cfg(feature = "logging")]
pub use logging::{init_logging, init_logging_at, DEFAULT_LOG_FILTER};
pub use message::{Message, MessageInfo, MessageOptions};
pub use mq_derive::{slot, Message};
pub use registry::Registry;
pub use retry::Backoff;
pub use slot::{Requirement, SlotDef, SlotError, SlotParam};
pub use transport::Transport;
pub use version::DecodeError;
#[cfg(feature = "cli")]
pub use worker::run_worker;
pub use worker::{Exit, Worker, WorkerBuilder};

/// The surface the macros expand to. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::context::Context;
    pub use crate::message::{
        unique_part, DeserializeMessage, Message, MessageOptions, ScheduledMessage,
        SerializeMessage,
    };
    pub use crate::registry::{MessageDef, Route};
    pub use crate::retry::Backoff;
    pub use crate::slot::{
        IntoSlotResult, Requirement, Slot, SlotDef, SlotError, SlotErrorType, SlotFuture, SlotParam,
    };
    pub use crate::version::{DecodeError, DeserializePrevious, Upcast};
    pub use inventory;
    pub use serde;
    pub use serde_json::Error as JsonError;
    pub use std::boxed::Box;
    pub use std::option::Option::{self, None, Some};
    pub use std::result::Result::{self, Ok};
    pub use std::string::String;
    pub use std::time::Duration;
    pub use std::vec::Vec;

    /// Runs a synchronous slot body on the blocking pool.
    pub async fn run_blocking<R, F>(f: F) -> Result<(), SlotError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: IntoSlotResult + Send + 'static,
    {
        crate::slot::run_blocking(f).await
    }

    /// Boxes the future of a slot's call. The `Send` bound has a line of its own that says
    /// what to do: rustc's error for a future that is not `Send` is its own ("future cannot
    /// be sent between threads safely", no `on_unimplemented` replaces it), and it quotes
    /// that line under "required by a bound".
    pub fn slot_future<F>(future: F) -> SlotFuture
    where
        F: std::future::Future<Output = Result<(), SlotError>> + 'static,
        F: Send, // hold no Rc, RefCell or MutexGuard across an .await in a slot, or make the slot a sync fn
    {
        Box::pin(future)
    }

    /// Turns a slot's return value into the worker's outcome.
    pub fn into_slot_result<R: IntoSlotResult>(result: R) -> Result<(), SlotError> {
        result.into_slot_result()
    }

    /// A body of `M`'s current version (`#[message(version = N)]`).
    pub fn decode_current<M: Message>(body: &str) -> Result<M, DecodeError> {
        crate::version::decode_current(body)
    }

    /// A body of an older `version` of `M`, read as `P` (`previous(N = P)`) and upcast. The
    /// bounds are where a missing `From<P>` or `Deserialize` is reported, at `P`.
    pub fn decode_previous<M, P>(body: &str, version: u32) -> Result<M, DecodeError>
    where
        M: Message + Upcast<P>,
        P: DeserializePrevious,
    {
        crate::version::decode_previous(body, version)
    }

    /// Takes a slot parameter from the context.
    pub fn param<P: SlotParam>(context: &Context) -> Result<P, SlotError> {
        P::from_context(context)
    }

    /// Options from `#[message(...)]` (the struct is `#[non_exhaustive]`).
    pub const fn message_options(
        queue: &'static str,
        priority: u32,
        delay: Duration,
        ttr: Duration,
        timeout: Option<Duration>,
        retries: Option<u32>,
        backoff: Option<Backoff>,
    ) -> MessageOptions {
        MessageOptions {
            queue,
            priority,
            delay,
            ttr,
            timeout,
            retries,
            backoff,
            unique: None,
            schedule: None,
            concurrency: None,
            rate: None,
        }
    }

    /// Asks a slot parameter type for its requirement without demanding that it is a
    /// `SlotParam`: the call to [`param`] already reports that, once.
    #[derive(Debug)]
    pub struct Probe<T>(std::marker::PhantomData<T>);

    impl<T> Probe<T> {
        /// A probe of `T`.
        pub const fn new() -> Self {
            Probe(std::marker::PhantomData)
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Method-resolution probe: `(&&Probe::<T>::new()).requirement()` picks the first impl
    /// when `T: SlotParam`, the second otherwise.
    pub trait ProbeRequirement {
        /// The requirement of the probed type, if it is a parameter.
        fn requirement(&self) -> Option<Requirement>;
    }

    impl<T: SlotParam> ProbeRequirement for &Probe<T> {
        fn requirement(&self) -> Option<Requirement> {
            T::requirement()
        }
    }

    impl<T> ProbeRequirement for Probe<T> {
        fn requirement(&self) -> Option<Requirement> {
            None
        }
    }
}
