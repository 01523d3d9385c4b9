//! The scheduler a worker runs beside its loop: one task per schedule that sleeps until the
//! next tick and dispatches its message with the tick's unique key. Every worker does the
//! same; the backend keeps one message per tick.
//!
//! Each task also writes the schedule down in the backend (a [`ScheduleNote`]: when it
//! ticks, the next tick, the last one dispatched) when it starts and after each tick, for
//! `mq schedules`. A note that cannot be written is logged and changes nothing else.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Schedule, LATE};
use crate::bus::Bus;
use crate::transport::ScheduleNote;

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
    note(&schedule, &bus, schedule.next_after(after), None).await;
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
        if dispatch(&schedule, &bus, tick, &mut stop).await {
            note(&schedule, &bus, schedule.next_after(tick), Some(tick)).await;
        }
        after = tick;
    }
}

/// Writes the schedule down with its next tick and, after one, the tick dispatched.
async fn note(schedule: &Schedule, bus: &Bus, next: Option<SystemTime>, last: Option<SystemTime>) {
    let note = ScheduleNote::new(&schedule.name, schedule.message, schedule.describe())
        .next(next)
        .last(last);
    if let Err(error) = bus.transport().note_schedule(&note).await {
        tracing::warn!(schedule = schedule.name, %error, "cannot note the schedule for `mq schedules`");
    }
}

/// Dispatches the tick's message, trying again while the tick is less than [`LATE`] late;
/// whether it was dispatched.
async fn dispatch(
    schedule: &Schedule,
    bus: &Bus,
    tick: SystemTime,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let key = schedule.key(tick);
        match (schedule.make)(bus.clone(), tick, key).await {
            Ok(id) => {
                tracing::debug!(schedule = schedule.name, %id, "tick dispatched");
                return true;
            }
            Err(error) => {
                let late = SystemTime::now()
                    .duration_since(tick)
                    .unwrap_or(Duration::ZERO);
                if late + RETRY > LATE {
                    tracing::error!(schedule = schedule.name, %error, "tick not dispatched; skipped");
                    return false;
                }
                tracing::warn!(schedule = schedule.name, %error, "tick not dispatched; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return false,
        }
    }
}
