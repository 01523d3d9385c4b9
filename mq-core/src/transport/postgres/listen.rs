//! Waking idle reservers: LISTEN/NOTIFY, or polling where LISTEN cannot be used.
//!
//! With LISTEN (the default), one [`PgListener`] per transport holds a connection of its
//! own, listening on the schema's channel; a task turns each notification into a wake-up of
//! every waiting `reserve` (which then reserves or goes back to waiting). Notifications are
//! sent by the statements that make an item reservable and delivered at their commit. When
//! the listening connection drops, sqlx reconnects and listens again; notifications sent
//! meanwhile are lost, so the task wakes everybody once it is back.
//!
//! With `?listen=false` (behind a connection pooler in transaction mode, where a LISTEN
//! holds nothing) idle reservers look again every poll interval. Either way, items put
//! through the same transport wake its reservers at once, and a reserver never sleeps past
//! the next delayed item or lease of its queues.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::error::{translate, PgError};
use crate::Result;

/// How long the listening task waits before trying again after an error.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The wake-ups of one transport's idle reservers.
#[derive(Debug)]
pub(super) struct Wakeups {
    notify: Arc<Notify>,
    /// `Some` when polling instead of listening.
    poll: Option<Duration>,
    listener: Option<JoinHandle<()>>,
}

impl Wakeups {
    /// Listens on `channel` with a connection of its own from `pool`'s options; returns
    /// once the LISTEN is in place, so nothing committed after is missed.
    pub(super) async fn listen(pool: &PgPool, channel: &str) -> Result<Wakeups> {
        let op = |error| translate(error, &PgError::Op("listen"));
        let mut listener = PgListener::connect_with(pool).await.map_err(op)?;
        listener.listen(channel).await.map_err(op)?;
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(wake_on_notifications(listener, notify.clone()));
        Ok(Wakeups {
            notify,
            poll: None,
            listener: Some(task),
        })
    }

    /// Polls every `interval`.
    pub(super) fn polling(interval: Duration) -> Wakeups {
        Wakeups {
            notify: Arc::new(Notify::new()),
            poll: Some(interval),
            listener: None,
        }
    }

    /// A wake-up to wait for; `enable` it before looking for items, so that one sent while
    /// looking is not missed.
    pub(super) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Wakes this transport's reservers (an item was put through it).
    pub(super) fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// How often to look again without a wake-up; `None` when listening.
    pub(super) fn poll_interval(&self) -> Option<Duration> {
        self.poll
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = &self.listener {
            task.abort();
        }
    }
}

async fn wake_on_notifications(mut listener: PgListener, notify: Arc<Notify>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => notify.notify_waiters(),
            // The connection dropped; the next call reconnects and listens again. What was
            // sent meanwhile is lost, so everybody looks once.
            Ok(None) => notify.notify_waiters(),
            Err(error) => {
                tracing::warn!(%error, "postgres LISTEN connection failed; trying again");
                notify.notify_waiters();
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
