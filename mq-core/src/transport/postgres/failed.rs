//! The failure store of a PostgreSQL queue: the table `<schema>.mq_failed`, one row per
//! failed message (its queue, the options it goes back with, the failure as JSON, the
//! envelope). [`Transport::fail`](crate::transport::Transport::fail) moves a reserved row
//! there in one statement; `retry` moves it back, ready at once, in one statement too.

use async_trait::async_trait;
use bytes::Bytes;

use super::{ops, PostgresTransport};
use crate::transport::{FailedMessage, Failure, FailureStore, PutOptions};
use crate::Result;

/// The failure store of a [`PostgresTransport`].
pub(super) struct Failures<'a>(pub(super) &'a PostgresTransport);

#[async_trait]
impl FailureStore for Failures<'_> {
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64> {
        let t = self.0;
        ops::store_failed(&t.pool, &t.sql, queue, &body, &options, &failure).await
    }

    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        ops::failed_list(&self.0.pool, &self.0.sql, queue, max).await
    }

    async fn show(&self, id: u64) -> Result<Option<FailedMessage>> {
        ops::failed_show(&self.0.pool, &self.0.sql, id).await
    }

    async fn retry(&self, id: u64) -> Result<u64> {
        let id = ops::failed_retry(&self.0.pool, &self.0.sql, id).await?;
        self.0.wakeups.wake();
        Ok(id)
    }

    async fn remove(&self, id: u64) -> Result<bool> {
        ops::failed_remove(&self.0.pool, &self.0.sql, id).await
    }
}
