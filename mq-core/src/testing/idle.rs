//! `WorkerBuilder::run_until_idle`: a real worker that stops once its queues are empty.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::report::Report;
use crate::event::{Event, Hook};
use crate::worker::WorkerBuilder;
use crate::{Result, Transport};

/// How often the queues are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// The time limit when the builder has none: a slot that dispatches forever fails the test
/// instead of hanging it.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);

impl WorkerBuilder {
    /// Runs the worker until no message of its queues is ready or reserved, then returns
    /// what happened to each message it handled: for tests (see [`crate::testing`]).
    ///
    /// Retries run at once: the next attempt is queued without its backoff, and the report
    /// gives the backoff a real worker would have waited. Messages dispatched with a delay
    /// that has not passed are not waited for ([`Report::delayed`] counts them). Signals do
    /// not stop it; a builder without a time limit gets one of 60 s.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// use std::time::Duration;
    ///
    /// #[mq::slot]
    /// fn pong(_: Ping) {}
    ///
    /// let bus = mq::testing::RecordingBus::new();
    /// bus.dispatch_all([Ping, Ping]).await?;
    /// bus.dispatch(Ping).delay(Duration::from_secs(3600)).await?;
    /// let report = bus
    ///     .worker()
    ///     .registry(mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?)
    ///     .run_until_idle()
    ///     .await?;
    /// report.assert_all_finished();
    /// assert_eq!((report.messages().len(), report.delayed()), (2, 1));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`WorkerBuilder::build`].
    pub async fn run_until_idle(mut self) -> Result<Report> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let forward = self.hook.take();
        self = self.on_event(move |event: &Event| {
            lock(&seen).push(event.clone());
            Hook::emit(&forward, || event.clone());
        });
        self.options.retry_now = true;
        self.options.handle_signals = false;
        self.options.time_limit.get_or_insert(DEFAULT_TIME_LIMIT);
        let worker = self.build().await?;
        let watcher = {
            let worker = worker.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOOK_EVERY).await;
                    if let Ok((0, _)) = waiting(worker.transport().as_ref(), worker.queues()).await
                    {
                        worker.stop();
                        return;
                    }
                }
            })
        };
        let exit = worker.run().await;
        watcher.abort();
        let exit = exit?;
        let (_, delayed) = waiting(worker.transport().as_ref(), worker.queues()).await?;
        let events = std::mem::take(&mut *lock(&events));
        Ok(Report::new(&events, worker.registry(), exit, delayed))
    }
}

/// Messages of `queues` ready or reserved, and messages delayed.
async fn waiting(transport: &dyn Transport, queues: &[String]) -> Result<(u64, u64)> {
    let stats = transport.stats().await?;
    let ours = stats.iter().filter(|counts| queues.contains(&counts.queue));
    Ok(ours.fold((0, 0), |(busy, delayed), counts| {
        (
            busy + counts.ready + counts.reserved,
            delayed + counts.delayed,
        )
    }))
}

fn lock(events: &Mutex<Vec<Event>>) -> std::sync::MutexGuard<'_, Vec<Event>> {
    // Every change is one push or one take: a poisoned list is still whole.
    events
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
