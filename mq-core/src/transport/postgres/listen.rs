//! Waking idle reservers: LISTEN/NOTIFY, or polling where LISTEN cannot be used.
//!
//! With LISTEN (the default), one [`PgListener`] per transport holds a connection of its
//! own, listening on the schema's channel; a task turns each notification into a wake-up of
//! every waiting `reserve` (which then reserves or goes back to waiting). Notifications are
//! sent by the statements that make an item reservable and delivered at their commit. When
//! the listening connection drops, it is connected and LISTENs again: by sqlx at once, or,
//! when that fails (the server still away after the pool's 10 s, a connection refused), by
//! the task, trying again after 100 ms, then up to every second. Notifications sent
//! meanwhile are lost, so the task wakes everybody once the LISTEN is in place again (not
//! before: while the server is away, a woken reserver would only meet an error).
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

/// How long the listening task waits before its second try at listening again after the
/// listening connection failed; the wait doubles up to [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two tries at listening again.
const RETRY_AT_MOST: Duration = Duration::from_secs(1);

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
        let listener = listen_on(pool, channel)
            .await
            .map_err(|error| translate(error, &PgError::Op("listen")))?;
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(wake_on_notifications(
            listener,
            pool.clone(),
            channel.to_owned(),
            notify.clone(),
        ));
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

    /// What wakes this transport's reservers, for whoever else must (see `hold`).
    pub(super) fn handle(&self) -> Arc<Notify> {
        self.notify.clone()
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

/// A connection of `pool`'s, listening on `channel`.
async fn listen_on(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Wakes every waiting reserver on each notification, and once after the listening
/// connection was lost and the LISTEN is in place again; ends when the pool is closed.
async fn wake_on_notifications(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    notify: Arc<Notify>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => notify.notify_waiters(),
            // The connection dropped, and sqlx connected and listened again before saying
            // so. What was sent meanwhile is lost, so everybody looks once.
            Ok(None) => notify.notify_waiters(),
            Err(sqlx::Error::PoolClosed) => return,
            // sqlx could not connect again (or the connection failed otherwise): a new
            // listener, then everybody looks once, as above.
            Err(error) => {
                tracing::warn!(%error, "postgres LISTEN connection lost; listening again");
                drop(listener);
                let Some(again) = listen_again(&pool, &channel).await else {
                    return;
                };
                listener = again;
                tracing::info!("postgres LISTEN in place again");
                notify.notify_waiters();
            }
        }
    }
}

/// Tries until a new listener is in place, waiting [`RETRY_FIRST`] after the first failed
/// try, then twice as long each time up to [`RETRY_AT_MOST`]; `None` when the pool is
/// closed.
async fn listen_again(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let mut wait = RETRY_FIRST;
    loop {
        match listen_on(pool, channel).await {
            Ok(listener) => return Some(listener),
            Err(sqlx::Error::PoolClosed) => return None,
            Err(error) => {
                tracing::debug!(%error, "cannot listen yet; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_AT_MOST);
            }
        }
    }
}
