//! The worker: reserve → decode → emit to slots → ack, retry or fail; limits; shutdown.
//!
//! `builder` takes the options in code, `options` from the command line and `MQ_*`; `run`
//! is the reservation loop, `capacity` its bound, `held` the reserved items and their
//! keep-alive; `emit` runs one message's slots and settles it; `exit` holds the limits and
//! exit codes, `shutdown` signals and hand-back.

mod builder;
mod capacity;
#[cfg(feature = "cli")]
mod cli;
mod decide;
mod emit;
mod exit;
mod held;
mod memory;
mod options;
mod run;
mod settle;
mod shutdown;

pub use builder::WorkerBuilder;
pub use exit::Exit;
pub use options::{DEFAULT_CONCURRENCY, DEFAULT_GRACE};
pub use run::Worker;

/// Parses the command line and `MQ_*` variables, runs a worker over every linked slot, and
/// exits the process with the code of [`Exit`] when it stops for a limit that is not 0.
///
/// `--help` documents every flag, variable and exit code; `--list` prints the routing table.
/// Logs go to stderr through `tracing` (filter with `RUST_LOG`) unless the application
/// installed its own subscriber.
///
/// # Errors
///
/// A bad URL, an unreachable server, or a registry problem (duplicate wire name, missing
/// state): the worker does not start.
#[cfg(feature = "cli")]
pub async fn run_worker() -> crate::Result<()> {
    use clap::Parser as _;
    let cli = cli::Cli::parse();
    #[cfg(feature = "logging")]
    crate::init_logging();
    let registry = crate::Registry::linked()?;
    if cli.list {
        print!("{}", registry.table());
        return Ok(());
    }
    let worker = WorkerBuilder::from_options(cli.into_options())
        .registry(registry)
        .build()
        .await?;
    let exit = worker.run().await?;
    // tokio's runtime waits for its threads when it shuts down, and a slot abandoned by its
    // timeout or the grace may never return: exit without waiting for it.
    if exit.code() != 0 || worker.slots_left_running() > 0 {
        std::process::exit(exit.code());
    }
    Ok(())
}
