//! The scheduler a worker runs beside its loop: one task per schedule that sleeps until the
//! next tick and dispatches its message with the tick's unique key. Every worker does the
//! same; the backend keeps one message per tick.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Schedule, LATE};
use crate::bus::Bus;

/// How long a scheduler waits before it tries a failed dispatch again.
const RETRY: Duration = Duration::from_secs(1);

/// Runs every schedule on `bus` until `stop` says so.
pub(crate) async fn run_all(schedules: Vec<Schedule>, bus: Bus, stop: watch::Receiver<bool>) {
    let tasks: Vec<_> = schedules
        .into_iter()
        .map(|schedule| tokio::spawn(run_one(schedule, bus.clone(), stop.clone())))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

async fn run_one(schedule: Schedule, bus: Bus, mut stop: watch::Receiver<bool>) {
    // Missed ticks are skipped: the first one is the next after now.
    let mut after = SystemTime::now();
    while let Some(tick) = schedule.next_after(after) {
        let wait = tick
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        dispatch(&schedule, &bus, tick, &mut stop).await;
        after = tick;
    }
}

/// Dispatches the tick's message, trying again while the tick is less than [`LATE`] late.
async fn dispatch(
    schedule: &Schedule,
    bus: &Bus,
    tick: SystemTime,
    stop: &mut watch::Receiver<bool>,
) {
    loop {
        let key = schedule.key(tick);
        match (schedule.make)(bus.clone(), tick, key).await {
            Ok(id) => {
                tracing::debug!(schedule = schedule.name, %id, "tick dispatched");
                return;
            }
            Err(error) => {
                let late = SystemTime::now()
                    .duration_since(tick)
                    .unwrap_or(Duration::ZERO);
                if late + RETRY > LATE {
                    tracing::error!(schedule = schedule.name, %error, "tick not dispatched; skipped");
                    return;
                }
                tracing::warn!(schedule = schedule.name, %error, "tick not dispatched; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return,
        }
    }
}
