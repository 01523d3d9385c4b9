//! `faulty://NAME`: a backend written outside mq-core, as an application's would be. It
//! plugs in by its URL scheme (one `inventory::submit!`), passes the conformance suite
//! (`tests/tests/transport_faulty.rs`), and lets a test make the next calls of an operation
//! fail, as a server that goes away would.
//!
//! With `?priorities=none` it declares that it has no priorities, so that the tests see mq
//! refuse what such a backend cannot hold. Its failure store is mq's default ([`QueuedFailures`]) on its own operations, so faults
//! injected into `put`, `reserve` or `ack` reach `mq failed` and the worker's `fail` too.
//!
//! Behind it is `memory://NAME`: every `faulty://` URL of one name shares one queue, and the
//! faults injected for that name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use mq::transport::memory::MemoryTransport;
use mq::transport::scheme::{ConnectFuture, Scheme};
use mq::transport::{
    Capabilities, FailureStore, Job, Priorities, PutOptions, QueueStats, QueuedFailures, Transport,
};
use mq::{Error, Result};

inventory::submit! {
    Scheme::new("faulty", "faulty://NAME[?priorities=none]", connect)
}

fn connect(url: &str) -> ConnectFuture<'_> {
    Box::pin(async move {
        let rest = url.strip_prefix("faulty://").unwrap_or(url);
        let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
        let no_priorities = match query {
            "" => false,
            "priorities=none" => true,
            other => {
                return Err(Error::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("unknown option `{other}`; the one option is priorities=none"),
                })
            }
        };
        let transport: Arc<dyn Transport> = Arc::new(Faulty {
            inner: MemoryTransport::named(name),
            name: name.to_owned(),
            no_priorities,
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
    /// Declares no priorities (`?priorities=none`), as a backend reserving by age would.
    no_priorities: bool,
}

impl Faulty {
    /// Fails if a fault of `op` is due.
    fn check(&self, op: Op) -> Result<()> {
        let mut faults = faults();
        match faults.get_mut(&(self.name.clone(), op)) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(Error::unreachable(
                    format!("faulty://{}", self.name),
                    format!("injected fault of {op:?}"),
                ))
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

    fn capabilities(&self) -> Capabilities {
        let capabilities = self.inner.capabilities();
        if self.no_priorities {
            return capabilities.with_priorities(Priorities::None);
        }
        capabilities
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(QueuedFailures::new(self))
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

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.inner.stats().await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        self.inner.browse(queue, after, limit).await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        self.inner.peek(queue).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        self.inner.flush(queue).await
    }
}
