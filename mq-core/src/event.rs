//! Lifecycle events: what happened to a message, for metrics hooks.
//!
//! # Examples
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! let failed = Arc::new(AtomicU64::new(0));
//! let counter = failed.clone();
//! let builder = mq::Worker::builder().on_event(move |event: &mq::event::Event| {
//!     if event.kind == mq::event::EventKind::Failed {
//!         counter.fetch_add(1, Ordering::Relaxed); // export it as a metric
//!     }
//! });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::SlotFailure;

/// What happened.
///
/// ```
/// use mq::EventKind;
///
/// fn counter(kind: EventKind) -> Option<&'static str> {
///     match kind {
///         EventKind::Finished => Some("mq_finished_total"),
///         EventKind::Retried | EventKind::Timeout => Some("mq_retried_total"),
///         EventKind::Failed => Some("mq_failed_total"),
///         _ => None, // the enum is non_exhaustive
///     }
/// }
/// assert_eq!(counter(EventKind::Failed), Some("mq_failed_total"));
/// assert_eq!(counter(EventKind::Reserved), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A message was put on its queue (follow-ups dispatched through [`Context`](crate::Context)).
    Submitted,
    /// The worker reserved a message and starts its slots.
    Reserved,
    /// Every slot succeeded; the message's ack went to the backend (on beanstalkd and for a
    /// held PostgreSQL batch, before the backend answered it: see `Transport::send_ack`).
    Finished,
    /// Some slots failed; the message was put back for those slots after a delay.
    Retried,
    /// The message went to the failure store.
    Failed,
    /// A slot ran past the message's `timeout` and was cancelled.
    Timeout,
}

/// One lifecycle event, given to the hook of `Worker::builder().on_event(..)`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// use std::sync::{Arc, Mutex};
/// use mq::{Event, EventKind};
///
/// #[mq::slot]
/// fn pong(_: Ping) {}
///
/// let bus = mq::testing::RecordingBus::new();
/// bus.dispatch(Ping).await?;
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let hook = seen.clone();
/// bus.worker()
///     .registry(mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?)
///     .on_event(move |event: &Event| hook.lock().unwrap().push((event.kind, event.name.clone())))
///     .run_until_idle()
///     .await?;
/// let seen = seen.lock().unwrap();
/// assert_eq!(seen.last(), Some(&(EventKind::Finished, "Ping".to_owned())));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The message's wire name.
    pub name: String,
    /// The message id (empty when the envelope could not be read).
    pub id: String,
    /// The queue.
    pub queue: String,
    /// The attempt this event belongs to.
    pub attempt: u32,
    /// The slot, for `Timeout`.
    pub slot: Option<String>,
    /// The error text, for `Retried`, `Failed` and `Timeout`.
    pub error: Option<String>,
    /// The slots that failed this attempt, each with its error, for `Retried` and `Failed`
    /// (empty when no slot ran: an unknown wire name, an unreadable item).
    pub slots: Vec<SlotFailure>,
    /// The delay before the next attempt, for `Retried`.
    pub delay: Option<Duration>,
    /// How long the slots ran, for `Finished`, `Retried` and `Failed`.
    pub elapsed: Option<Duration>,
}

impl Event {
    pub(crate) fn new(kind: EventKind, name: &str, id: &str, queue: &str, attempt: u32) -> Event {
        Event {
            kind,
            name: name.to_owned(),
            id: id.to_owned(),
            queue: queue.to_owned(),
            attempt,
            slot: None,
            error: None,
            slots: Vec::new(),
            delay: None,
            elapsed: None,
        }
    }
}

/// A shared event hook.
#[derive(Clone)]
pub(crate) struct Hook(pub(crate) Arc<dyn Fn(&Event) + Send + Sync>);

impl Hook {
    pub(crate) fn emit(hook: &Option<Hook>, event: impl FnOnce() -> Event) {
        if let Some(hook) = hook {
            (hook.0)(&event());
        }
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook")
    }
}
