//! Acks: the reservation a job is held by, and concurrent acks sent as one batch of
//! `delete`s.
//!
//! An ack either waits for its `delete`'s reply ([`Inner::ack`]) or returns once the
//! `delete` is queued ([`Inner::send_ack`], the worker's): then the batch's task logs a
//! refused `delete` itself, and [`Inner::acks_answered`] waits for the replies. The worker
//! uses the second so that a finished message's task is not woken again by its reply: on a
//! multi-threaded runtime that wake moved the task between threads (docs/performance.md,
//! "Acks that do not wait for their reply").

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::connection::Connection;
use super::proto::{Command, Response};
use super::reserve::Reservation;
use super::{unexpected, Inner};
use crate::transport::unanswered::Unanswered;
use crate::transport::Job;
use crate::{Error, Result};

/// The acks waiting for the next batch, and the count of sent ones whose reply nobody
/// awaits.
#[derive(Debug, Default)]
pub(super) struct AckQueue {
    queued: Mutex<Vec<PendingAck>>,
    unanswered: Unanswered,
}

/// An ack queued for the next batch: the job, the connection that holds it, and who wants
/// the reply.
#[derive(Debug)]
struct PendingAck {
    id: u64,
    holder: Arc<Connection>,
    reply: Reply,
}

#[derive(Debug)]
enum Reply {
    /// An [`Inner::ack`] waiting for it.
    To(oneshot::Sender<std::result::Result<Response, String>>),
    /// Nobody ([`Inner::send_ack`]): the batch's task logs a refusal.
    Logged,
}

impl AckQueue {
    fn queued(&self) -> MutexGuard<'_, Vec<PendingAck>> {
        // The critical sections are a push and a take.
        self.queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// The connection holding the reservation of `job` (its receipt's), if the
    /// reservation still stands: that connection is the consuming one, open, and still
    /// holds the job.
    pub(super) fn holder(&self, job: &Job) -> Result<Arc<Connection>> {
        let Reservation(connection) = job.token()?;
        let consumer = self.consumer();
        let current = consumer
            .connection
            .as_ref()
            .is_some_and(|consuming| Arc::ptr_eq(consuming, connection));
        if current && consumer.held.contains(&job.id) && !connection.is_closed() {
            Ok(connection.clone())
        } else {
            Err(Error::ReservationLost(job.id))
        }
    }

    /// Queues the `delete` of `id`, held by `holder`, starting the batch's task if it is
    /// the first.
    fn queue_ack(self: &Arc<Self>, id: u64, holder: Arc<Connection>, reply: Reply) {
        let first = {
            let mut queued = self.acks.queued();
            queued.push(PendingAck { id, holder, reply });
            queued.len() == 1
        };
        if first {
            let inner = self.clone();
            tokio::spawn(async move { inner.flush_acks().await });
        }
    }

    /// Sends every queued ack as one batch of `delete`s on the consuming connection. An
    /// ack whose holder is no longer that connection is not sent: beanstalkd deletes a
    /// *ready* job from any connection, so its `delete` could remove the job's next
    /// delivery (or, after a restart without a binlog, another job of the same id).
    async fn flush_acks(&self) {
        // Let the tasks that are ready to run now queue their acks first.
        tokio::task::yield_now().await;
        let batch = std::mem::take(&mut *self.acks.queued());
        let consuming = self.consumer().connection.clone();
        let (current, stale): (Vec<PendingAck>, Vec<PendingAck>) =
            batch.into_iter().partition(|ack| {
                consuming
                    .as_ref()
                    .is_some_and(|consuming| Arc::ptr_eq(consuming, &ack.holder))
            });
        let result = match (&consuming, current.is_empty()) {
            (_, true) => Ok(Vec::new()),
            (Some(connection), false) => {
                let deletes: Vec<Command<'_>> =
                    current.iter().map(|ack| Command::Delete(ack.id)).collect();
                connection.send(&deletes).await.map_err(|e| e.to_string())
            }
            (None, false) => Err("no consuming connection".into()),
        };
        let mut replies: Vec<std::result::Result<Response, String>> = match result {
            Ok(replies) if replies.len() == current.len() => replies.into_iter().map(Ok).collect(),
            Ok(replies) => {
                let cause = format!("{} replies to {} deletes", replies.len(), current.len());
                vec![Err(cause); current.len()]
            }
            Err(cause) => vec![Err(cause); current.len()],
        };
        replies.extend(
            stale
                .iter()
                .map(|_| Err("its connection closed".to_owned())),
        );
        let batch = current.into_iter().chain(stale);
        let mut answered = 0;
        for (ack, reply) in batch.zip(replies) {
            match ack.reply {
                Reply::To(waiting) => {
                    let _ = waiting.send(reply);
                }
                Reply::Logged => {
                    answered += 1;
                    self.unhold(ack.id);
                    if let Err(error) = Inner::settled(ack.id, reply) {
                        log_refused(&self.name, ack.id, &error);
                    }
                }
            }
        }
        self.acks.unanswered.answered(answered);
    }

    pub(super) fn unhold(&self, id: u64) {
        let mut consumer = self.consumer();
        if consumer.held.remove(&id) && consumer.held.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// What the reply to the `delete` of `id` means for its ack. A `delete` that got no
    /// reply lost the reservation with its connection (beanstalkd releases a closed
    /// connection's jobs).
    fn settled(id: u64, reply: std::result::Result<Response, String>) -> Result<()> {
        match reply {
            Ok(Response::Deleted) => Ok(()),
            Ok(Response::NotFound) | Err(_) => Err(Error::ReservationLost(id)),
            Ok(other) => Err(unexpected("delete", &other)),
        }
    }

    /// Queues the `delete` of `job` for the next batch and waits for its reply.
    pub(super) async fn ack(self: &Arc<Self>, job: &Job) -> Result<()> {
        let holder = self.holder(job)?;
        let (reply, replied) = oneshot::channel();
        self.queue_ack(job.id, holder, Reply::To(reply));
        // A batch that never ran (the runtime shutting down) loses the reservation.
        let reply = replied
            .await
            .unwrap_or_else(|_| Err("connection closed".into()));
        self.unhold(job.id);
        Inner::settled(job.id, reply)
    }

    /// Queues the `delete` of `job` for the next batch and returns: the batch's task logs
    /// a refusal, and [`acks_answered`](Inner::acks_answered) waits for the reply.
    pub(super) fn send_ack(self: &Arc<Self>, job: &Job) -> Result<()> {
        let holder = self.holder(job)?;
        self.acks.unanswered.sent();
        self.queue_ack(job.id, holder, Reply::Logged);
        Ok(())
    }

    /// Resolves once every ack [`send_ack`](Inner::send_ack) queued has its reply.
    pub(super) async fn acks_answered(&self) {
        self.acks.unanswered.none_left().await;
    }
}

/// The log line of an ack whose `delete` failed; the worker's own would name the queue,
/// which the batch does not keep.
fn log_refused(server: &str, item: u64, error: &Error) {
    match error {
        Error::ReservationLost(_) => tracing::warn!(
            server,
            item,
            "ack: the reservation was lost; the message may run again (at-least-once)"
        ),
        error => tracing::error!(
            server,
            item,
            %error,
            "ack failed; the message comes back when its reservation runs out"
        ),
    }
}
