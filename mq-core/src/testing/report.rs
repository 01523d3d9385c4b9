//! [`Report`]: what a [`run_until_idle`](crate::WorkerBuilder::run_until_idle) worker did,
//! per message and per slot.

use std::fmt;
use std::time::Duration;

use crate::event::{Event, EventKind};
use crate::{Exit, Message, Registry};

/// How the handling of a message, or of one of its slots, ended.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// use mq::testing::{Outcome, RecordingBus};
///
/// #[mq::slot]
/// async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
///     if ctx.attempt() == 1 {
///         return Err("not yet".into()); // fails once
///     }
///     Ok(())
/// }
///
/// let bus = RecordingBus::new();
/// bus.dispatch(Ping).await?;
/// let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// let report = bus.worker().registry(registry).run_until_idle().await?;
/// assert_eq!(report.messages()[0].outcome, Outcome::Finished);
/// assert_eq!(report.count(Outcome::Failed), 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded (a message: every slot did).
    Finished,
    /// It failed and its next attempt was still queued when the worker stopped (a time limit
    /// or a `.limit(n)` stopped it first).
    Retried,
    /// It failed on its last attempt, or for good: the message is in the failure store.
    Failed,
}

/// One slot of a handled message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// # use mq::testing::{Outcome, RecordingBus};
/// #
/// # #[mq::slot]
/// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
/// #     if ctx.attempt() == 1 {
/// #         return Err("not yet".into()); // fails once
/// #     }
/// #     Ok(())
/// # }
/// #
/// # let bus = RecordingBus::new();
/// # bus.dispatch(Ping).await?;
/// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// # let report = bus.worker().registry(registry).run_until_idle().await?;
/// let run: &mq::testing::SlotRun = &report.messages()[0].slots[0];
/// assert!(run.slot.ends_with("::pong"));
/// assert_eq!((run.runs, run.outcome, run.error.as_deref()), (2, Outcome::Finished, Some("not yet")));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotRun {
    /// The slot's path, `module::function`.
    pub slot: String,
    /// How often it ran.
    pub runs: u32,
    /// How its last run ended.
    pub outcome: Outcome,
    /// The error of its last failed run.
    pub error: Option<String>,
}

/// One message the worker handled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// # use mq::testing::{Outcome, RecordingBus};
/// #
/// # #[mq::slot]
/// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
/// #     if ctx.attempt() == 1 {
/// #         return Err("not yet".into()); // fails once
/// #     }
/// #     Ok(())
/// # }
/// #
/// # let bus = RecordingBus::new();
/// # bus.dispatch(Ping).await?;
/// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// # let report = bus.worker().registry(registry).run_until_idle().await?;
/// let ping: &mq::testing::Handled = &report.messages()[0];
/// assert_eq!((ping.name.as_str(), ping.queue.as_str()), ("Ping", "default"));
/// assert_eq!((ping.attempts, ping.outcome), (2, Outcome::Finished));
/// assert_eq!(ping.errors.len(), 1);
/// assert!(ping.errors[0].ends_with("pong: not yet"));
/// assert_eq!(ping.backoffs.len(), 1); // what a real worker would have waited
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handled {
    /// The wire name (empty for an item that was not an envelope).
    pub name: String,
    /// The message id.
    pub id: String,
    /// The queue.
    pub queue: String,
    /// The attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The error of each failed attempt, in order.
    pub errors: Vec<String>,
    /// The backoff a real worker would have waited after each failed attempt that was
    /// retried (the testing worker did not wait).
    pub backoffs: Vec<Duration>,
    /// Its slots, by path.
    pub slots: Vec<SlotRun>,
}

impl Handled {
    /// The slot whose path is `slot` or ends with `::slot` (its function's name).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// let ping = &report.messages()[0];
    /// assert_eq!(ping.slot("pong").map(|run| run.runs), Some(2));
    /// assert!(ping.slot("ong").is_none()); // a whole name, not a suffix
    /// # Ok(()) }
    /// ```
    pub fn slot(&self, slot: &str) -> Option<&SlotRun> {
        self.slots.iter().find(|run| {
            run.slot == slot
                || run
                    .slot
                    .strip_suffix(slot)
                    .is_some_and(|module| module.ends_with("::"))
        })
    }

    fn settle(&mut self, event: &Event) {
        self.attempts = self.attempts.max(event.attempt);
        let outcome = match event.kind {
            EventKind::Finished => Outcome::Finished,
            EventKind::Retried => Outcome::Retried,
            EventKind::Failed => Outcome::Failed,
            _ => return,
        };
        self.outcome = outcome;
        self.errors.extend(event.error.clone());
        self.backoffs.extend(event.delay);
        // On the first attempt every slot ran; on the next ones, those that failed before.
        for run in &mut self.slots {
            if event.attempt > 1 && run.outcome == Outcome::Finished {
                continue;
            }
            run.runs += 1;
            match event.slots.iter().find(|failed| failed.slot == run.slot) {
                Some(failed) => {
                    run.outcome = outcome;
                    run.error = Some(failed.error.clone());
                }
                None => run.outcome = Outcome::Finished,
            }
        }
    }
}

/// What [`run_until_idle`](crate::WorkerBuilder::run_until_idle) did: each message handled,
/// in the order the worker first reserved it (follow-ups its slots dispatched included).
///
/// Its `Display` is a table of them, which [`assert_all_finished`](Report::assert_all_finished)
/// prints when it fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// use mq::testing::{Outcome, RecordingBus};
///
/// #[mq::slot]
/// async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
///     if ctx.attempt() == 1 {
///         return Err("not yet".into()); // fails once
///     }
///     Ok(())
/// }
///
/// let bus = RecordingBus::new();
/// bus.dispatch(Ping).await?;
/// let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// let report = bus.worker().registry(registry).run_until_idle().await?;
/// report.assert_all_finished();
/// println!("{report}"); // a table: one line per message
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    messages: Vec<Handled>,
    exit: Exit,
    delayed: u64,
}

impl Report {
    pub(super) fn new(events: &[Event], registry: &Registry, exit: Exit, delayed: u64) -> Report {
        let mut messages: Vec<Handled> = Vec::new();
        for event in events {
            if event.kind == EventKind::Submitted {
                continue;
            }
            let index = match messages.iter().position(|m| m.id == event.id) {
                Some(index) => index,
                None => {
                    let slots = registry
                        .route(&event.name)
                        .into_iter()
                        .flat_map(|route| route.slots())
                        .map(|slot| SlotRun {
                            slot: slot.path().to_owned(),
                            runs: 0,
                            outcome: Outcome::Retried,
                            error: None,
                        })
                        .collect();
                    messages.push(Handled {
                        name: event.name.clone(),
                        id: event.id.clone(),
                        queue: event.queue.clone(),
                        attempts: 0,
                        outcome: Outcome::Retried,
                        errors: Vec::new(),
                        backoffs: Vec::new(),
                        slots,
                    });
                    messages.len() - 1
                }
            };
            messages[index].settle(event);
        }
        Report {
            messages,
            exit,
            delayed,
        }
    }

    /// Every message handled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// assert_eq!(report.messages().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn messages(&self) -> &[Handled] {
        &self.messages
    }

    /// The messages of type `M` handled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// let pings = report.of::<Ping>();
    /// assert_eq!(pings[0].attempts, 2);
    /// # Ok(()) }
    /// ```
    pub fn of<M: Message>(&self) -> Vec<&Handled> {
        self.messages.iter().filter(|m| m.name == M::NAME).collect()
    }

    /// How many messages ended with `outcome`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// assert_eq!(report.count(Outcome::Finished), 1);
    /// assert_eq!(report.count(Outcome::Retried), 0); // retried, then finished
    /// # Ok(()) }
    /// ```
    pub fn count(&self, outcome: Outcome) -> usize {
        self.messages
            .iter()
            .filter(|m| m.outcome == outcome)
            .count()
    }

    /// True if the worker stopped because its queues were idle, not for a limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// assert!(report.idle());
    /// # Ok(()) }
    /// ```
    pub fn idle(&self) -> bool {
        self.exit == Exit::Stopped
    }

    /// Why the worker stopped: [`Exit::Stopped`] when its queues went idle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// assert_eq!(report.exit(), mq::Exit::Stopped);
    /// # Ok(()) }
    /// ```
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// Messages left waiting for their delay (not waited for).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// assert_eq!(report.delayed(), 0);
    /// # Ok(()) }
    /// ```
    pub fn delayed(&self) -> u64 {
        self.delayed
    }

    /// Asserts that the queues went idle and every message handled finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # use mq::testing::{Outcome, RecordingBus};
    /// #
    /// # #[mq::slot]
    /// # async fn pong(_: Ping, ctx: mq::Context) -> Result<(), String> {
    /// #     if ctx.attempt() == 1 {
    /// #         return Err("not yet".into()); // fails once
    /// #     }
    /// #     Ok(())
    /// # }
    /// #
    /// # let bus = RecordingBus::new();
    /// # bus.dispatch(Ping).await?;
    /// # let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// # let report = bus.worker().registry(registry).run_until_idle().await?;
    /// report.assert_all_finished();
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// Otherwise, with the report's table.
    #[track_caller]
    pub fn assert_all_finished(&self) {
        let finished = self.messages.iter().all(|m| m.outcome == Outcome::Finished);
        if !finished || !self.idle() {
            panic!("expected every message finished and the queues idle; the worker did:\n{self}");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.messages.is_empty() {
            writeln!(f, "  no message")?;
        }
        for m in &self.messages {
            let plural = if m.attempts == 1 { "" } else { "s" };
            writeln!(
                f,
                "  {} {}: {:?} after {} attempt{plural}",
                m.name, m.id, m.outcome, m.attempts
            )?;
            for run in &m.slots {
                write!(f, "    {}: {:?}, ran {}x", run.slot, run.outcome, run.runs)?;
                match &run.error {
                    Some(error) => writeln!(f, ", last error: {error}")?,
                    None => writeln!(f)?,
                }
            }
            if m.slots.is_empty() {
                for error in &m.errors {
                    writeln!(f, "    {error}")?;
                }
            }
        }
        if self.idle() {
            write!(f, "  the queues went idle")?;
        } else {
            write!(f, "  stopped before the queues went idle: {:?}", self.exit)?;
        }
        if self.delayed > 0 {
            write!(f, "; {} delayed message(s) not waited for", self.delayed)?;
        }
        Ok(())
    }
}
