//! The worker: reserve → decode → emit to slots → ack, retry or fail; limits; shutdown.
//!
//! `builder` takes the options in code (`tuning` its limits, retries and polling), `cli` the command line and `MQ_*` over them,
//! `program` runs a worker as `main` (`--list`, exit codes); `options` holds them; `run`
//! is the reservation loop, `capacity` its bound, `held` the reserved items and their
//! keep-alive; `emit` runs one message's slots and settles it, `trust` checks its signature first; `exit` holds the limits and
//! exit codes, `shutdown` signals and hand-back.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! # use serde::{Deserialize, Serialize};
//! # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
//! # #[mq::slot] fn pong(_: Ping) {}
//! let worker = mq::worker::Worker::builder()
//!     .url("memory://")
//!     .concurrency(mq::worker::DEFAULT_CONCURRENCY / 4)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

mod builder;
mod capacity;
#[cfg(feature = "cli")]
mod cli;
mod decide;
mod emit;
mod exit;
mod held;
mod limits;
mod memory;
mod options;
mod program;
mod run;
mod settle;
mod shutdown;
mod trust;
mod tuning;

#[cfg(feature = "prometheus")]
pub use crate::telemetry::health::DEFAULT_HEALTH_TIMEOUT;
pub use builder::WorkerBuilder;
pub use exit::Exit;
pub(crate) use limits::{LIMIT, LIMIT_KEY, RATE, RATE_KEY};
pub use options::{DEFAULT_CONCURRENCY, DEFAULT_GRACE};
pub use run::Worker;

/// Parses the command line and `MQ_*` variables, runs a worker over every linked slot, and
/// exits the process with the code of [`Exit`] when it stops for a limit that is not 0.
///
/// `--help` documents every flag, variable and exit code; `--list` prints the routing table.
/// Logs go to stderr through `tracing` (filter with `RUST_LOG`) unless the application
/// installed its own subscriber. It is `Worker::builder().command_line().run_and_exit()`:
/// when slots need state, write that with `.state(..)` (see
/// [`WorkerBuilder::command_line`]).
///
/// # Errors
///
/// A bad URL, an unreachable server, or a registry problem (duplicate wire name, missing
/// state): the worker does not start.
///
/// ```no_run
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// #[mq::slot]
/// fn pong(_: Ping) {}
///
/// #[tokio::main]
/// async fn main() -> mq::Result<()> {
///     mq::run_worker().await // `worker --help`, `worker --list`, `MQ_URL=... worker`
/// }
/// ```
#[cfg(feature = "cli")]
pub async fn run_worker() -> crate::Result<()> {
    Worker::builder().command_line().run_and_exit().await
}
