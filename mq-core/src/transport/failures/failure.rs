//! Why a message went to the failure store ([`Failure`], [`SlotFailure`]) and an entry of
//! the store as a backend lists it ([`FailedMessage`]).

use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::transport::PutOptions;

/// Why a message went to the failure store.
///
/// ```
/// use mq::transport::{Failure, SlotFailure};
/// use std::time::SystemTime;
///
/// let failure = Failure::new(
///     vec![SlotFailure { slot: "shop::mail::send".into(), error: "smtp timeout".into() }],
///     "1 of 1 slots failed after 4 attempts".into(),
///     4,
///     SystemTime::now(),
/// );
/// assert_eq!(failure.slots[0].error, "smtp timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// The slots that failed with their error text; empty when no slot ran (undecodable
    /// payload, unknown wire name).
    pub slots: Vec<SlotFailure>,
    /// A one-line summary a person can act on.
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the message was moved to the failure store.
    #[serde(with = "crate::envelope::system_time")]
    pub failed_at: SystemTime,
}

impl Failure {
    /// A failure record.
    ///
    /// ```
    /// use std::time::SystemTime;
    ///
    /// let failure = mq::transport::Failure::new(Vec::new(), "no slot for `Ping`".into(), 1, SystemTime::now());
    /// assert!(failure.slots.is_empty());
    /// ```
    pub fn new(
        slots: Vec<SlotFailure>,
        reason: String,
        attempts: u32,
        failed_at: SystemTime,
    ) -> Failure {
        Failure {
            slots,
            reason,
            attempts,
            failed_at,
        }
    }
}

/// One failing slot of a failed message.
///
/// ```
/// let failed = mq::transport::SlotFailure {
///     slot: "shop::mail::send_confirmation".into(),
///     error: "smtp timeout".into(),
/// };
/// assert_eq!(serde_json::to_string(&failed).unwrap(),
///     r#"{"slot":"shop::mail::send_confirmation","error":"smtp timeout"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotFailure {
    /// The slot's path, e.g. `shop::mail::send_confirmation`.
    pub slot: String,
    /// The error text of its last attempt.
    pub error: String,
}

/// An entry of the failure store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
/// # use std::time::Duration;
/// #
/// # let queue = MemoryTransport::new();
/// # queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # let job = queue.reserve(&["emails".into()], 1, Duration::ZERO).await?.remove(0);
/// # let failure = mq::transport::Failure::new(Vec::new(), "bad payload".into(), 1, std::time::SystemTime::now());
/// # queue.fail(&job, job.body.clone(), PutOptions::default(), failure).await?;
/// let failed: Vec<mq::transport::FailedMessage> = queue.failure_store().list(None, 10).await?;
/// assert_eq!((failed[0].queue.as_str(), failed[0].failure.reason.as_str()), ("emails", "bad payload"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FailedMessage {
    /// The id of this entry in the failure store.
    pub id: u64,
    /// The queue the message came from and goes back to on retry.
    pub queue: String,
    /// The envelope that runs again on retry (its `slots` are the ones that failed).
    pub body: Bytes,
    /// How the message is put back on retry.
    pub options: PutOptions,
    /// Why it failed.
    pub failure: Failure,
}

impl FailedMessage {
    /// An entry of the failure store, as a backend lists it.
    ///
    /// ```
    /// use mq::transport::{FailedMessage, Failure, PutOptions};
    /// use std::time::SystemTime;
    ///
    /// let failure = Failure::new(Vec::new(), "bad payload".into(), 1, SystemTime::now());
    /// let entry = FailedMessage::new(12, "emails", "hello".into(), PutOptions::default(), failure);
    /// assert_eq!((entry.id, entry.queue.as_str()), (12, "emails"));
    /// ```
    pub fn new(
        id: u64,
        queue: impl Into<String>,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> FailedMessage {
        FailedMessage {
            id,
            queue: queue.into(),
            body,
            options,
            failure,
        }
    }
}
