//! Acks: the reservation a job is held by, and concurrent acks sent as one batch of
//! `delete`s.

use std::sync::{Arc, MutexGuard};

use super::connection::Connection;
use super::proto::{Command, Response};
use super::reserve::Reservation;
use super::{unexpected, Inner};
use crate::transport::Job;
use crate::{Error, Result};

/// An ack queued for the next batch: the job and where its reply goes.
pub(super) type PendingAck = (
    u64,
    tokio::sync::oneshot::Sender<std::result::Result<Response, String>>,
);

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

    fn acks(&self) -> MutexGuard<'_, Vec<PendingAck>> {
        // The critical sections are a push and a take.
        self.acks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends every queued ack as one batch of `delete`s on the consuming connection.
    async fn flush_acks(&self) {
        // Let the tasks that are ready to run now queue their acks first.
        tokio::task::yield_now().await;
        let batch = std::mem::take(&mut *self.acks());
        let connection = self.consumer().connection.clone();
        let result = match connection {
            Some(connection) => {
                let deletes: Vec<Command<'_>> =
                    batch.iter().map(|(id, _)| Command::Delete(*id)).collect();
                connection.send(&deletes).await.map_err(|e| e.to_string())
            }
            None => Err("no consuming connection".into()),
        };
        match result {
            Ok(replies) if replies.len() == batch.len() => {
                for ((_, reply), response) in batch.into_iter().zip(replies) {
                    let _ = reply.send(Ok(response));
                }
            }
            Ok(replies) => {
                let cause = format!("{} replies to {} deletes", replies.len(), batch.len());
                for (_, reply) in batch {
                    let _ = reply.send(Err(cause.clone()));
                }
            }
            Err(cause) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(cause.clone()));
                }
            }
        }
    }

    pub(super) fn unhold(&self, id: u64) {
        let mut consumer = self.consumer();
        if consumer.held.remove(&id) && consumer.held.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Queues the `delete` of `job` for the next batch and waits for its reply.
    pub(super) async fn ack(self: &Arc<Self>, job: &Job) -> Result<()> {
        self.holder(job)?;
        let (reply, replied) = tokio::sync::oneshot::channel();
        let first = {
            let mut acks = self.acks();
            acks.push((job.id, reply));
            acks.len() == 1
        };
        if first {
            let inner = self.clone();
            tokio::spawn(async move { inner.flush_acks().await });
        }
        let result = replied
            .await
            .unwrap_or_else(|_| Err("connection closed".into()));
        let lost = matches!(result, Err(_) | Ok(Response::NotFound));
        self.unhold(job.id);
        if lost {
            return Err(Error::ReservationLost(job.id));
        }
        match result {
            Ok(Response::Deleted) => Ok(()),
            Ok(other) => Err(unexpected("delete", &other)),
            Err(cause) => Err(Error::unreachable(self.name.clone(), cause)),
        }
    }
}
