//! The queue backend abstraction: queues of opaque bytes.
//!
//! A transport never sees message types; the worker turns bytes into messages through the
//! registry. Every operation maps one to one onto what beanstalkd, SQLite, NATS JetStream or
//! PostgreSQL `SKIP LOCKED` offer: put, reserve, ack, retry with a delay, release, keep-alive,
//! fail, counts. Backends batch internally where that pays (SQLite group commit, beanstalkd
//! pipelining); the trait stays one call per operation.
//!
//! Nothing of one backend leaks into the seam: a reserved [`Job`] carries an opaque
//! [`Receipt`] that only its backend reads, what differs between backends is declared in
//! [`Capabilities`], and the failure store is a trait of its own ([`FailureStore`]) with a
//! default ([`QueuedFailures`]) that any backend gets by keeping records on its own queues.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! use mq::transport::{PutOptions, Transport};
//! use std::time::Duration;
//!
//! let queue = mq::transport::connect("memory://transport-module-doc").await?;
//! queue.put("emails", "hello".into(), PutOptions::default()).await?;
//! let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
//! queue.ack(&job).await?;
//! # Ok(()) }
//! ```

mod as_any;
#[cfg(feature = "beanstalk")]
pub mod beanstalk;
mod capabilities;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns;
mod connect;
mod contract;
#[cfg(any(feature = "nats", feature = "postgres"))]
mod escape;
mod failures;
mod item;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
pub(crate) mod schedule_note;
pub mod scheme;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "beanstalk", feature = "postgres"))]
mod unanswered;
mod unique;

pub use as_any::AsAny;
#[cfg(any(feature = "beanstalk", feature = "postgres"))]
pub(crate) use capabilities::too_large;
pub use capabilities::{Capabilities, Feature, KeepAlive, Priorities};
pub use connect::{connect, connect_existing, redacted, url_from_env, DEFAULT_URL};
pub use contract::Transport;
pub use failures::{
    check_queue_name, fold_failed_stats, FailedMessage, Failure, FailureStore, QueuedFailures,
    SlotFailure, FAILED_QUEUE_PREFIX,
};
pub use item::{Job, PutOptions, QueueStats, Receipt};
pub use schedule_note::ScheduleNote;
pub use unique::{Debounce, Put, Unique};
