//! What a connection's callers, reader, writer and watchdog share: the batches waiting for
//! replies, in the order they were written, and why the connection closed, if it did.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::deadline::REPLY_TIMEOUT;
use crate::transport::beanstalk::proto::Response;

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// The reader and writer tasks, aborted when the connection is abandoned.
    pub(super) tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

#[derive(Debug)]
pub(super) struct State {
    /// Batches sent and not yet fully answered, in the order they were written.
    pub(super) pending: VecDeque<Pending>,
    /// Why the connection is unusable, once it is.
    pub(super) closed: Option<Closed>,
    /// The tube the last `use` queued names (beanstalkd starts with `default`).
    pub(super) using: String,
    /// When the oldest batch of `pending` last made progress: became the oldest, or got a
    /// reply.
    pub(super) progress_at: Instant,
}

/// Why a connection is unusable.
#[derive(Debug, Clone)]
pub(super) enum Closed {
    /// Closed, failed or silent: the server is not reachable through it; the kind of the
    /// I/O error that closed it, if one did.
    Unreachable(String, Option<std::io::ErrorKind>),
    /// The server sent bytes that are not beanstalkd replies.
    Protocol(String),
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) expected: usize,
    /// How long this batch may wait in the server on top of [`REPLY_TIMEOUT`] (its
    /// `reserve-with-timeout`); `None` for a `reserve` without timeout.
    pub(super) allowance: Option<Duration>,
    pub(super) replies: Vec<Response>,
    pub(super) reply: oneshot::Sender<std::result::Result<Vec<Response>, Closed>>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (a push, a pop, a swap).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the connection closed and fails every waiting batch.
    pub(super) fn close(&self, cause: Closed) {
        let (pending, cause) = {
            let mut state = self.lock();
            let cause = state.closed.get_or_insert(cause).clone();
            (std::mem::take(&mut state.pending), cause)
        };
        for batch in pending {
            let _ = batch.reply.send(Err(cause.clone()));
        }
    }

    /// Closes the connection and stops its reader and writer, which closes the socket
    /// (a silent server may never close it from its side).
    pub(super) fn abandon(&self, cause: Closed) {
        self.close(cause);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for task in tasks {
            task.abort();
        }
    }

    /// How long the oldest waiting batch has gone without progress beyond what it is
    /// allowed, if it has.
    pub(super) fn stalled(&self) -> Option<Duration> {
        let state = self.lock();
        let oldest = state.pending.front()?;
        let allowed = REPLY_TIMEOUT.checked_add(oldest.allowance?)?;
        let silent = state.progress_at.elapsed();
        (silent > allowed).then_some(silent)
    }
}
