//! Recurring messages: a [`Schedule`] (a cron expression with seconds, in a time zone, or a
//! plain interval) that makes a message at each tick. Any number of workers may run one;
//! each tick is dispatched once, as a unique message whose key is the schedule's name and
//! the tick's time (see [`Feature::Unique`](crate::transport::Feature::Unique)): every
//! worker dispatches it, the backend keeps one.
//!
//! Cron expressions are parsed by `croner` (maintained, POSIX/Vixie syntax with an optional
//! seconds field, `L`, `#`, `W`, aliases such as `@hourly`) and evaluated in a time zone of
//! `chrono-tz` (the IANA database compiled in, so a zone never depends on the machine's
//! files). Intervals tick at whole multiples of the interval since the Unix epoch, so that
//! every worker agrees on the ticks whatever its start time.
//!
//! **Missed ticks** (no worker running at the time) are skipped: a worker starting up runs
//! the next tick after now. A tick is dispatched up to [`LATE`] after its time (a busy or
//! paused worker), never later. Workers' clocks must agree to within [`HOLD`], the time a
//! tick's key is kept after its message ended.
//!
//! A message type can carry its own schedule, checked at compile time:
//! `#[message(schedule = "0 */5 * * * *", schedule_zone = "Europe/Berlin")]` on a type with
//! `Default`; every worker that handles it runs the schedule, dispatching
//! `Default::default()` at each tick.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! # use serde::{Deserialize, Serialize};
//! use mq::schedule::Schedule;
//! use std::time::Duration;
//!
//! #[derive(mq::Message, Serialize, Deserialize)]
//! struct PurgeCarts;
//!
//! #[mq::slot]
//! async fn purge(_: PurgeCarts) {}
//!
//! let nightly = Schedule::cron("purge-carts", "0 30 3 * * *", |_tick| PurgeCarts)?
//!     .in_zone("Europe/Berlin")?;
//! let worker = mq::Worker::builder()
//!     .url("memory://schedule-doc")
//!     .registry(mq::Registry::from_slots([mq::SlotDef::of::<purge>()])?)
//!     .schedule(nightly)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

mod run;
mod when;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) use run::run_all;
use when::When;

use crate::bus::{Bus, MessageId};
use crate::message::Message;
use crate::Result;

/// How long a tick's key stays taken after its message ended: a worker whose clock is
/// behind by less than this, dispatching the same tick later, gets the first one's id.
pub const HOLD: Duration = Duration::from_secs(600);

/// How late after its time a tick is still dispatched.
pub const LATE: Duration = crate::transport::schedule_note::LATE;

/// What dispatches one tick's message on a bus, with the tick's key.
type Make = dyn Fn(Bus, SystemTime, String) -> Pin<Box<dyn Future<Output = Result<MessageId>> + Send>>
    + Send
    + Sync;

/// A recurring message: its name, when it ticks, and the message each tick makes.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// use mq::schedule::Schedule;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// struct Heartbeat { at_ms: u128 }
///
/// let every = Schedule::every("heartbeat", Duration::from_secs(5), |tick| Heartbeat {
///     at_ms: tick.duration_since(UNIX_EPOCH).unwrap().as_millis(),
/// })?;
/// let next = every.next_after(UNIX_EPOCH + Duration::from_secs(12)).unwrap();
/// assert_eq!(next, UNIX_EPOCH + Duration::from_secs(15));
/// # Ok::<(), mq::Error>(())
/// ```
#[derive(Clone)]
pub struct Schedule {
    name: String,
    when: When,
    message: &'static str,
    make: Arc<Make>,
}

impl Schedule {
    /// Ticks at the times of the cron expression `expr` (five fields, or six with seconds
    /// first: `"*/10 * * * * *"` is every ten seconds), in UTC until
    /// [`in_zone`](Schedule::in_zone); `make` builds the message of a tick from its time.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Report;
    /// use mq::schedule::Schedule;
    ///
    /// let hourly = Schedule::cron("report", "0 0 * * * *", |_| Report)?;
    /// assert!(Schedule::cron("report", "0 0 25 * * *", |_| Report).is_err()); // hour 25
    /// # Ok::<(), mq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for an expression that does not parse, or a
    /// name that is empty.
    pub fn cron<M: Message>(
        name: &str,
        expr: &str,
        make: impl Fn(SystemTime) -> M + Send + Sync + 'static,
    ) -> Result<Schedule> {
        Schedule::new(name, When::cron(name, expr)?, make)
    }

    /// Ticks every `interval`, at whole multiples of it since the Unix epoch.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
    /// use mq::schedule::Schedule;
    /// use std::time::Duration;
    ///
    /// let poll = Schedule::every("poll", Duration::from_secs(300), |_| Poll)?;
    /// assert!(Schedule::every("poll", Duration::ZERO, |_| Poll).is_err());
    /// # Ok::<(), mq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for an interval under one millisecond, or a
    /// name that is empty.
    pub fn every<M: Message>(
        name: &str,
        interval: Duration,
        make: impl Fn(SystemTime) -> M + Send + Sync + 'static,
    ) -> Result<Schedule> {
        Schedule::new(name, When::every(name, interval)?, make)
    }

    fn new<M: Message>(
        name: &str,
        when: When,
        make: impl Fn(SystemTime) -> M + Send + Sync + 'static,
    ) -> Result<Schedule> {
        if name.is_empty() {
            return Err(crate::Error::Config(
                "a schedule needs a name: it is part of each tick's unique key".into(),
            ));
        }
        let make: Arc<Make> = Arc::new(move |bus: Bus, tick, key| {
            let message = make(tick);
            Box::pin(async move {
                let dispatch = bus.dispatch(message).unique(key).unique_for(HOLD);
                dispatch.await
            })
        });
        Ok(Schedule {
            name: name.to_owned(),
            when,
            message: M::NAME,
            make,
        })
    }

    /// The schedule of a message type with `#[message(schedule = "...")]`, named by its
    /// wire name; each tick dispatches its `Default`.
    pub(crate) fn linked(
        info: &crate::MessageInfo,
        tick: crate::registry::TickFn,
    ) -> Result<Schedule> {
        let Some((cron, zone)) = info.options.schedule else {
            return Err(crate::Error::Config(format!(
                "message `{}` has no schedule",
                info.name
            )));
        };
        let when = When::cron(info.name, cron)?.in_zone(info.name, zone)?;
        let make: Arc<Make> = Arc::new(move |bus: Bus, _tick, key| tick(bus, key, HOLD));
        Ok(Schedule {
            name: info.name.to_owned(),
            when,
            message: info.name,
            make,
        })
    }

    /// The same, with a cron expression's times read in the IANA time zone `zone`
    /// (`"Europe/Berlin"`); an interval has no zone.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Report;
    /// use mq::schedule::Schedule;
    ///
    /// let berlin = Schedule::cron("report", "0 0 9 * * *", |_| Report)?.in_zone("Europe/Berlin")?;
    /// assert!(Schedule::cron("report", "0 0 9 * * *", |_| Report)?.in_zone("Europe/Bxl").is_err());
    /// # Ok::<(), mq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a zone that is not in the IANA database,
    /// or a zone on an interval.
    pub fn in_zone(self, zone: &str) -> Result<Schedule> {
        let when = self.when.in_zone(&self.name, zone)?;
        Ok(Schedule { when, ..self })
    }

    /// The schedule's name.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
    /// let poll = mq::schedule::Schedule::every("poll", std::time::Duration::from_secs(60), |_| Poll)?;
    /// assert_eq!(poll.name(), "poll");
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wire name of the message it makes.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
    /// let poll = mq::schedule::Schedule::every("poll", std::time::Duration::from_secs(60), |_| Poll)?;
    /// assert_eq!(poll.message(), "Poll");
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// When it ticks, as written (`cron "0 0 9 * * *" in Europe/Berlin`, `every 5m`).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
    /// let poll = mq::schedule::Schedule::every("poll", std::time::Duration::from_secs(300), |_| Poll)?;
    /// assert_eq!(poll.describe(), "every 5m");
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn describe(&self) -> String {
        self.when.to_string()
    }

    /// The first tick strictly after `after`, if there is one.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Report;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let daily = mq::schedule::Schedule::cron("report", "0 0 9 * * *", |_| Report)?;
    /// let next = daily.next_after(UNIX_EPOCH).unwrap();
    /// assert_eq!(next, UNIX_EPOCH + Duration::from_secs(9 * 3600)); // 1970-01-01 09:00 UTC
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        self.when.next_after(after)
    }

    /// The unique key of the tick at `tick`: the schedule's name and the tick's time.
    fn key(&self, tick: SystemTime) -> String {
        let ms = tick
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        format!("schedule/{}/{ms}", self.name)
    }
}

/// The schedules of the recurring message types (`#[message(schedule = "...")]`) that
/// `registry` routes: a worker runs those of the messages it handles.
pub(crate) fn linked(registry: &crate::Registry) -> Result<Vec<Schedule>> {
    crate::registry::scheduled()
        .filter(|(info, _)| {
            registry
                .routes()
                .any(|route| route.info().name == info.name)
        })
        .map(|(info, tick)| Schedule::linked(&info, tick))
        .collect()
}

/// The table `worker --schedules` prints: each schedule's name, message, when it ticks and
/// its next tick after `now` (UTC).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Poll;
/// use mq::schedule::{table, Schedule};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let poll = Schedule::every("poll", Duration::from_secs(300), |_| Poll)?;
/// let text = table(&[poll], UNIX_EPOCH);
/// assert!(text.lines().nth(1).unwrap().starts_with("poll"), "{text}");
/// assert!(text.contains("every 5m") && text.contains("1970-01-01T00:05:00Z"), "{text}");
/// # Ok::<(), mq::Error>(())
/// ```
pub fn table(schedules: &[Schedule], now: SystemTime) -> String {
    let mut rows = vec![[
        "SCHEDULE".to_owned(),
        "MESSAGE".to_owned(),
        "WHEN".to_owned(),
        "NEXT (UTC)".to_owned(),
    ]];
    for schedule in schedules {
        let next = schedule.next_after(now).map_or_else(
            || "never".to_owned(),
            |next| humantime::format_rfc3339_seconds(next).to_string(),
        );
        rows.push([
            schedule.name.clone(),
            schedule.message.to_owned(),
            schedule.describe(),
            next,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("when", &self.when.to_string())
            .field("message", &self.message)
            .finish()
    }
}
