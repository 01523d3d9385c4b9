//! What users' tests need: a [`RecordingBus`] with typed assertions, a [`Context`] for
//! calling a slot directly ([`RecordingBus::context`]), and a worker that runs until its
//! queues are idle and reports what happened
//! ([`WorkerBuilder::run_until_idle`](crate::WorkerBuilder::run_until_idle)).
//!
//! `recorder` is the transport that notes each put, `bus` the assertions, `context` the
//! [`ContextBuilder`], `idle` the worker, `report` its [`Report`].
//! [`guide::testing`](crate::guide::testing) tells the same story at more length.
//!
//! The example of [`guide::testing`](crate::guide::testing): a message, two slots (one dispatches a
//! follow-up, one fails once), a unit test of each, and a test from dispatch to the end:
//!
//! ```
//! use mq::testing::{Outcome, RecordingBus};
//! use mq::{Bus, Context, Registry, SlotDef, SlotError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(mq::Message, Serialize, Deserialize, Debug)]
//! #[message(queue = "orders")]
//! struct OrderPlaced { order_id: u64 }
//!
//! #[derive(mq::Message, Serialize, Deserialize, Debug)]
//! #[message(queue = "emails", retries = 2)]
//! struct SendOrderConfirmation { order_id: u64 }
//!
//! /// The application code under test takes a `&Bus`.
//! async fn place_order(bus: &Bus, order_id: u64) -> mq::Result<()> {
//!     bus.dispatch(OrderPlaced { order_id }).await?;
//!     Ok(())
//! }
//!
//! #[mq::slot]
//! async fn confirm(msg: &OrderPlaced, ctx: Context) -> Result<(), mq::Error> {
//!     ctx.dispatch(SendOrderConfirmation { order_id: msg.order_id }).await?;
//!     Ok(())
//! }
//!
//! #[mq::slot]
//! async fn send_confirmation(msg: SendOrderConfirmation, ctx: Context) -> Result<(), SlotError> {
//!     if ctx.attempt() == 1 {
//!         return Err(SlotError::retry("smtp timeout")); // fails once, then succeeds
//!     }
//!     let _ = msg.order_id;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! // The producer: a recording bus where the code takes a &Bus.
//! let bus = RecordingBus::new();
//! place_order(&bus, 7).await?;
//! bus.assert_dispatched_once::<OrderPlaced>(|m| m.order_id == 7);
//! bus.assert_not_dispatched::<SendOrderConfirmation>();
//!
//! // A slot that takes a Context: call it, assert on what it dispatched.
//! let bus = RecordingBus::new();
//! confirm(&OrderPlaced { order_id: 7 }, bus.context::<OrderPlaced>().build()).await?;
//! bus.assert_dispatched_once::<SendOrderConfirmation>(|m| m.order_id == 7);
//!
//! let ctx = bus.context::<SendOrderConfirmation>().attempt(1).build();
//! let error = send_confirmation(SendOrderConfirmation { order_id: 7 }, ctx).await.unwrap_err();
//! assert!(!error.is_permanent());
//!
//! // From dispatch to the end: a real worker on the bus's queue, until it is idle.
//! let bus = RecordingBus::new();
//! place_order(&bus, 7).await?;
//! let report = bus
//!     .worker()
//!     .registry(Registry::from_slots([
//!         SlotDef::of::<confirm>(),
//!         SlotDef::of::<send_confirmation>(),
//!     ])?)
//!     .run_until_idle()
//!     .await?;
//! report.assert_all_finished();
//!
//! let mail = report.of::<SendOrderConfirmation>()[0];
//! assert_eq!((mail.outcome, mail.attempts), (Outcome::Finished, 2));
//! assert_eq!(mail.slot("send_confirmation").map(|slot| slot.runs), Some(2));
//! assert!(mail.errors[0].ends_with("send_confirmation: smtp timeout"));
//! bus.assert_dispatched_once::<SendOrderConfirmation>(|m| m.order_id == 7);
//! # Ok(()) }
//! ```
//!
//! Code that dispatches with the process-wide [`mq::dispatch`](crate::dispatch) cannot be
//! pointed at a recording bus: that bus is opened once per process from `MQ_URL`, and tests
//! run in parallel threads of one process. Let such code take a `&Bus` (or a `Bus` in its
//! state) and give it a `RecordingBus` in tests.

mod bus;
mod context;
mod idle;
mod recorder;
mod report;

pub use bus::RecordingBus;
pub use context::ContextBuilder;
pub use recorder::Dispatched;
pub use report::{Handled, Outcome, Report, SlotRun};

#[cfg(doc)]
use crate::Context;
