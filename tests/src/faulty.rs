//! `faulty://NAME`: a backend written outside mq-core, as an application's would be. It
//! plugs in by its URL scheme (one `inventory::submit!`), passes the conformance suite
//! (`tests/tests/transport_faulty.rs`), and lets a test make the next calls of an operation
//! fail, as a server that goes away would.
//!
//! Behind it is `memory://NAME`: every `faulty://` URL of one name shares one queue, and the
//! faults injected for that name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use mq::transport::memory::MemoryTransport;
use mq::transport::scheme::{ConnectFuture, Scheme};
use mq::transport::{FailedMessage, Failure, Job, PutOptions, QueueStats, Transport};
use mq::{Error, Result};

inventory::submit! {
    Scheme::new("faulty", "faulty://NAME", connect)
}

fn connect(url: &str) -> ConnectFuture<'_> {
    Box::pin(async move {
        let name = url.strip_prefix("faulty://").unwrap_or(url).to_owned();
        let transport: Arc<dyn Transport> = Arc::new(Faulty {
            inner: MemoryTransport::named(&name),
            name,
        });
        Ok(transport)
    })
}

/// An operation a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `put` and `put_many`.
    Put,
    /// `reserve`.
    Reserve,
    /// `ack`.
    Ack,
}

/// Makes the next `count` calls of `op` on `faulty://NAME` fail with `Error::Unreachable`.
pub fn fail_next(name: &str, op: Op, count: u32) {
    *faults().entry((name.to_owned(), op)).or_default() += count;
}

fn faults() -> MutexGuard<'static, HashMap<(String, Op), u32>> {
    static FAULTS: OnceLock<Mutex<HashMap<(String, Op), u32>>> = OnceLock::new();
    FAULTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Faulty {
    name: String,
    inner: Arc<MemoryTransport>,
}

impl Faulty {
    /// Fails if a fault of `op` is due.
    fn check(&self, op: Op) -> Result<()> {
        let mut faults = faults();
        match faults.get_mut(&(self.name.clone(), op)) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(Error::Unreachable {
                    address: format!("faulty://{}", self.name),
                    cause: format!("injected fault of {op:?}"),
                })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Faulty {
    fn describe(&self) -> String {
        format!("faulty://{}", self.name)
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        self.check(Op::Put)?;
        self.inner.put(queue, body, options).await
    }

    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        self.check(Op::Put)?;
        self.inner.put_many(queue, bodies, options).await
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        self.check(Op::Reserve)?;
        self.inner.reserve(queues, max, timeout).await
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        self.check(Op::Ack)?;
        self.inner.ack(job).await
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        self.inner.retry(job, body, options).await
    }

    async fn release(&self, job: &Job) -> Result<()> {
        self.inner.release(job).await
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        self.inner.keep_alive(job).await
    }

    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.inner.fail(job, body, options, failure).await
    }

    async fn failed_list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        self.inner.failed_list(queue, max).await
    }

    async fn failed_show(&self, id: u64) -> Result<Option<FailedMessage>> {
        self.inner.failed_show(id).await
    }

    async fn failed_retry(&self, id: u64) -> Result<u64> {
        self.inner.failed_retry(id).await
    }

    async fn failed_remove(&self, id: u64) -> Result<bool> {
        self.inner.failed_remove(id).await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.inner.stats().await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        self.inner.peek(queue).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        self.inner.flush(queue).await
    }
}
