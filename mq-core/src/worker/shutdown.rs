//! Stopping: SIGINT/SIGTERM, handing reserved items back, tasks that end with their owner.

use std::sync::Arc;

use tokio::sync::watch;

use super::run::Shared;
use crate::transport::Job;
use crate::Result;

/// Hands `jobs` back to their queues, all at once: a stop waits for the network at most
/// one request's deadline, not one per item.
pub(super) async fn release_all(shared: &Shared, jobs: Vec<Job>) {
    let releases = jobs.iter().map(|job| async move {
        if let Err(error) = shared.transport.release(job).await {
            tracing::warn!(item = job.id, %error, "could not hand back; it returns after its TTR");
        }
    });
    futures_util::future::join_all(releases).await;
}

/// A task aborted when this is dropped (a `JoinHandle` alone lets it run on): the
/// keep-alive task with its worker, a slot's task with its message.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// First SIGINT/SIGTERM: graceful stop. Second: exit at once with 130.
///
/// On Unix. Elsewhere (Windows) the same with Ctrl-C, the one signal tokio offers there.
pub(super) fn spawn_signal_handler(stop: Arc<watch::Sender<bool>>) -> Result<()> {
    let mut signals = Signals::new()?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = signals.next().await;
            seen += 1;
            if seen == 1 {
                tracing::info!("{name}: stopping gracefully (send it again to exit at once)");
                stop.send_replace(true);
            } else {
                tracing::warn!(
                    "{name} again: exiting now; running messages come back to their queue \
                     when their reservation ends"
                );
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

/// The signals that stop a worker.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The signals that stop a worker.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals)
    }

    /// The name of the next signal; if Ctrl-C cannot be listened for, none ever comes
    /// (said once in the log).
    async fn next(&mut self) -> &'static str {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C; stop the worker another way");
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    }
}
