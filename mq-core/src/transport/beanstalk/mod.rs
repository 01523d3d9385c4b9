//! `beanstalk://HOST[:PORT]`: beanstalkd as the queue server.
//!
//! The client is written here by hand, in three layers: [`proto`] (the protocol as
//! values, no I/O), [`connection`] (one pipelined TCP connection) and
//! [`BeanstalkTransport`] (the [`Transport`] mapping). No maintained asynchronous client
//! exists for Rust: `tokio-beanstalkd` is built on tokio 0.1, and the `beanstalkc` crate is
//! blocking, does one round trip per command (several times slower than a pipelined
//! connection to the same server) and panics on a host name that does not resolve.
//! `beanstalkc` stays a dev-dependency: the interoperability tests check this client
//! against it.
//!
//! The mapping has a file per concern: `url` (the URL, resolving its host, whole seconds),
//! `reserve` (the reservation engine and the consuming connection), `acks` (batched
//! deletes), `record` (the failure store and its records) and `admin` (statistics, peek,
//! browse, flush); this file holds the transport, its producing connection and `put`.
//!
//! # Mapping
//!
//! - A queue is a tube; priority, delay and TTR are beanstalkd's. Delays round up to whole
//!   seconds (never down), the TTR to at least one second; a value above `u32::MAX`
//!   seconds is [`Error::Unrepresentable`].
//! - `ack` is `delete`, `keep_alive` is `touch`, `release` is `release` with the job's own
//!   priority (read with `stats-job`), `retry` puts the new envelope with its delay and
//!   then deletes the old job: a crash between the two leaves a duplicate, never a loss.
//! - The failure store is a tube per queue, `mq-failed.QUEUE`, of buried jobs whose bodies are JSON
//!   records `{queue, options, failure, envelope}` (see
//!   [`guide::beanstalkd`](crate::guide::beanstalkd), which also says how listing works and what it
//!   costs). No worker watches these tubes.
//! - `browse` (for `check`): beanstalkd cannot list a tube, so it asks `stats-job` of every
//!   job id above `after` up to `total-jobs`, 1,000 ids per pipelined round, and `peek`s the
//!   jobs of the tube: a pass over the whole server per call (see `admin`).
//!
//! # Connections
//!
//! A transport holds one connection for producing and administration, shared by every
//! task of the process (commands are pipelined), and one for consuming, opened on the
//! first `reserve`. beanstalkd ties a reservation to the connection that made it, so
//! `ack`, `retry`, `release`, `keep_alive` and `fail` of a job go through the consuming
//! connection. Because beanstalkd answers the commands of a connection in order, a
//! blocking `reserve-with-timeout` would hold those back; so the transport blocks in the
//! server only while it holds no reservation, and otherwise polls with
//! `reserve-with-timeout 0` every 50 ms (and at once when the last held job is acked)
//! until the caller's timeout. beanstalkd's timeout is whole seconds: a blocking reserve
//! that outlives a shorter call stays *parked* for the next call, and a job it gets that
//! no call claims is handed back. Concurrent acks go out as one batch of `delete`s; the
//! worker's ([`Transport::send_ack`]) return before their reply (`acks`).
//!
//! When the consuming connection drops, the jobs it had reserved go back to ready in the
//! server: the next `reserve` logs how many, reconnects (the worker retries a failed
//! `reserve` with backoff), and acks of those jobs fail with [`Error::ReservationLost`]
//! (at-least-once: they run again). The producing connection reconnects on the next call.
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! let bus = mq::Bus::connect("beanstalk://127.0.0.1:11300").await?;
//! # Ok(()) }
//! ```

mod acks;
mod admin;
pub mod connection;
pub mod proto;
mod record;
mod reserve;
mod url;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use self::acks::AckQueue;
use self::connection::Connection;
use self::proto::{check_tube_name, parse_yaml_map, Command, Decoder, Response, MAX_TUBE_NAME};
use self::reserve::{Consumer, Parked};
use super::{Capabilities, Failure, FailureStore, Job, PutOptions, QueueStats, Transport};
use crate::{Error, Result};

/// beanstalkd's port when the URL names none.
///
/// ```
/// assert_eq!(mq::transport::beanstalk::DEFAULT_PORT, 11300); // beanstalk://HOST means HOST:11300
/// ```
pub const DEFAULT_PORT: u16 = 11300;

/// The failure store of queue `Q` is the tube `mq-failed.Q`.
///
/// ```
/// use mq::transport::beanstalk::FAILED_PREFIX;
///
/// assert_eq!(format!("{FAILED_PREFIX}emails"), "mq-failed.emails");
/// ```
pub const FAILED_PREFIX: &str = crate::transport::FAILED_QUEUE_PREFIX;

/// The most `put`s of a batch dispatch sent in one write.
const PUT_CHUNK: usize = 1024;

/// The most `reserve-with-timeout 0` pipelined at once when filling a batch.
const MAX_CHUNK: usize = 64;

/// A beanstalkd server used as a queue.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::beanstalk::BeanstalkTransport;
/// use mq::transport::{PutOptions, Transport};
///
/// let queue = BeanstalkTransport::connect_url("beanstalk://127.0.0.1:11300").await?;
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BeanstalkTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    /// `host:port`, for errors.
    name: String,
    addresses: Vec<SocketAddr>,
    max_job_size: usize,
    decoder: Decoder,
    /// Read on every put: a plain lock held for a clone, never across an `.await`.
    producer: Mutex<Arc<Connection>>,
    /// One reconnect of the producing connection at a time.
    reconnecting: tokio::sync::Mutex<()>,
    consumer: Mutex<Consumer>,
    /// One `reserve` at a time: it owns the watch list of the consuming connection and
    /// the parked blocking reserve.
    reserving: tokio::sync::Mutex<Option<Arc<Parked>>>,
    /// Notified when the consuming connection holds no reservation any more, so that a
    /// waiting `reserve` can switch from polling to a blocking reserve at once.
    idle: tokio::sync::Notify,
    /// Acks waiting to go out together as one batch of `delete`s.
    acks: AckQueue,
    /// How many jobs the last `take_ready` got: the size of its next first chunk.
    ready_hint: std::sync::atomic::AtomicUsize,
}

/// `error` again, for each item of a chunk that failed as a whole.
fn same_error(error: &Error) -> Error {
    match error {
        Error::Unreachable {
            address,
            cause,
            source,
        } => Error::Unreachable {
            address: address.clone(),
            cause: cause.clone(),
            source: source
                .as_ref()
                .and_then(|source| source.downcast_ref::<std::io::Error>())
                .map(|io| -> crate::error::Cause {
                    Box::new(std::io::Error::new(io.kind(), io.to_string()))
                }),
        },
        other => Error::Protocol {
            backend: "beanstalkd",
            detail: other.to_string(),
        },
    }
}

/// The longest queue name: its failure tube, `mq-failed.QUEUE`, must be a valid tube too.
///
/// ```
/// use mq::transport::beanstalk::{proto::check_tube_name, FAILED_PREFIX, MAX_QUEUE_NAME};
///
/// let longest = "q".repeat(MAX_QUEUE_NAME);
/// assert!(check_tube_name(&format!("{FAILED_PREFIX}{longest}")).is_ok());
/// assert_eq!(MAX_QUEUE_NAME, 190);
/// ```
pub const MAX_QUEUE_NAME: usize = MAX_TUBE_NAME - FAILED_PREFIX.len();

/// Refuses a queue name this backend cannot serve: not a valid tube, too long for its
/// failure tube, or inside the failure store's namespace (`mq-failed.`).
fn check_queue(queue: &str) -> Result<()> {
    check_tube_name(queue).map_err(|reason| {
        Error::Config(format!(
            "queue `{queue}` cannot be a beanstalkd tube: {reason}"
        ))
    })?;
    super::check_queue_name(queue)?;
    if queue.len() > MAX_QUEUE_NAME {
        return Err(Error::Config(format!(
            "queue `{queue}` is {} bytes; on beanstalk:// a queue name has at most \
             {MAX_QUEUE_NAME} bytes, so that its failure tube `{FAILED_PREFIX}QUEUE` fits \
             beanstalkd's limit of {MAX_TUBE_NAME}",
            queue.len()
        )));
    }
    Ok(())
}

/// A reply that the command does not allow, or one of the server's error replies.
fn unexpected(command: &str, response: &Response) -> Error {
    let detail = match response {
        Response::OutOfMemory => {
            format!("`{command}`: the server is out of memory (OUT_OF_MEMORY)")
        }
        Response::InternalError => {
            format!("`{command}`: the server reports a bug (INTERNAL_ERROR)")
        }
        Response::BadFormat => format!("`{command}` was refused as malformed (BAD_FORMAT)"),
        Response::UnknownCommand => format!(
            "`{command}` is unknown to this server (UNKNOWN_COMMAND): is it beanstalkd 1.12?"
        ),
        Response::Draining => {
            format!("`{command}`: the server is draining and takes no new jobs (DRAINING)")
        }
        other => format!("unexpected reply {other} to `{command}`"),
    };
    Error::Protocol {
        backend: "beanstalkd",
        detail,
    }
}

impl BeanstalkTransport {
    /// Connects to `beanstalk://HOST[:PORT]` (port 11300 by default) and reads the server's
    /// `max-job-size`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a malformed URL or a host that does not resolve;
    /// [`Error::Unreachable`] when no connection is made within 5 seconds, with the
    /// address and the cause; [`Error::Protocol`] when the server is not beanstalkd.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(1, "OK 24\r\n---\nmax-job-size: 65535\n\r\n")]).await;
    /// use mq::transport::beanstalk::BeanstalkTransport;
    ///
    /// let url = format!("beanstalk://{address}");
    /// let queue = BeanstalkTransport::connect_url(&url).await?;
    /// assert_eq!(queue.max_job_size(), 65_535);
    /// assert!(matches!(
    ///     BeanstalkTransport::connect_url("beanstalk://[::1").await,
    ///     Err(mq::Error::InvalidUrl { .. })
    /// ));
    /// # Ok(()) }
    /// ```
    pub async fn connect_url(url: &str) -> Result<BeanstalkTransport> {
        let (host, port) = url::parse_url(url)?;
        let (name, addresses) = url::resolve(url, &host, port).await?;
        let mut decoder = Decoder::default();
        let producer = Connection::connect(&name, &addresses, decoder).await?;
        let stats = match producer.call(Command::Stats).await? {
            Response::Ok(body) => parse_yaml_map(&body).map_err(|e| Error::Protocol {
                backend: "beanstalkd",
                detail: format!("`stats`: {e}"),
            })?,
            other => return Err(unexpected("stats", &other)),
        };
        let max_job_size = stats
            .get("max-job-size")
            .and_then(|size| size.parse::<usize>().ok())
            .ok_or_else(|| Error::Protocol {
                backend: "beanstalkd",
                detail: "`stats` has no `max-job-size`: is this beanstalkd?".into(),
            })?;
        decoder.max_body = decoder.max_body.max(max_job_size);
        Ok(BeanstalkTransport {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                name,
                addresses,
                max_job_size,
                decoder,
                producer: Mutex::new(Arc::new(producer)),
                reconnecting: tokio::sync::Mutex::new(()),
                consumer: Mutex::new(Consumer::default()),
                reserving: tokio::sync::Mutex::new(None),
                idle: tokio::sync::Notify::new(),
                acks: AckQueue::default(),
                ready_hint: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The server's `max-job-size`, read at connect.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(1, "OK 24\r\n---\nmax-job-size: 65535\n\r\n")]).await;
    /// use mq::transport::beanstalk::BeanstalkTransport;
    ///
    /// let queue = BeanstalkTransport::connect_url(&format!("beanstalk://{address}")).await?;
    /// assert_eq!(queue.max_job_size(), 65_535); // beanstalkd's default (-z)
    /// # Ok(()) }
    /// ```
    pub fn max_job_size(&self) -> usize {
        self.inner.max_job_size
    }

    /// A new connection to the same server, e.g. to send commands this transport does not
    /// use; it shares nothing with the transport's own connections.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[
    /// #     (1, "OK 24\r\n---\nmax-job-size: 65535\n\r\n"),
    /// #     (1, "PAUSED\r\n"),
    /// # ]).await;
    /// use mq::transport::beanstalk::{proto::Command, BeanstalkTransport};
    ///
    /// let queue = BeanstalkTransport::connect_url(&format!("beanstalk://{address}")).await?;
    /// let admin = queue.open_connection().await?;
    /// # admin.call(Command::Stats).await?; // the fake server's script starts with `stats`
    /// let paused = admin.call(Command::PauseTube { tube: "emails", delay: 60 }).await?;
    /// assert_eq!(paused.word(), "PAUSED");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`].
    pub async fn open_connection(&self) -> Result<Connection> {
        self.inner.open().await
    }
}

/// Connects for [`crate::transport::connect`].
pub(crate) async fn connect(url: &str) -> Result<Arc<dyn super::Transport>> {
    Ok(Arc::new(BeanstalkTransport::connect_url(url).await?))
}

impl Inner {
    async fn open(&self) -> Result<Connection> {
        Connection::connect(&self.name, &self.addresses, self.decoder).await
    }

    /// The producing connection, reconnected if it was lost.
    async fn producer(&self) -> Result<Arc<Connection>> {
        if let Some(open) = self.open_producer() {
            return Ok(open);
        }
        let _one_at_a_time = self.reconnecting.lock().await;
        if let Some(open) = self.open_producer() {
            return Ok(open);
        }
        tracing::info!(server = %self.name, "reconnecting the producing connection to beanstalkd");
        let fresh = Arc::new(self.open().await?);
        *self
            .producer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// The producing connection, unless it was lost.
    fn open_producer(&self) -> Option<Arc<Connection>> {
        // The critical section is a clone or a swap.
        let producer = self
            .producer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (!producer.is_closed()).then(|| producer.clone())
    }

    async fn put(&self, queue: &str, body: &[u8], options: PutOptions) -> Result<u64> {
        let put = self.put_command(queue, body, options)?;
        let producer = self.producer().await?;
        let reply = producer.send_using(queue, &[put]).await?.pop();
        self.inserted(queue, body, reply)
    }

    /// Pipelines the puts, [`PUT_CHUNK`] per write and round trip.
    async fn put_many(
        &self,
        queue: &str,
        bodies: &[Bytes],
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        let puts = bodies
            .iter()
            .map(|body| self.put_command(queue, body, options))
            .collect::<Result<Vec<_>>>()?;
        let producer = self.producer().await?;
        let total = bodies.len();
        let mut answers = Vec::with_capacity(total);
        for (puts, bodies) in puts.chunks(PUT_CHUNK).zip(bodies.chunks(PUT_CHUNK)) {
            match producer.send_using(queue, puts).await {
                Ok(replies) => {
                    let mut replies = replies.into_iter();
                    for body in bodies {
                        answers.push(self.inserted(queue, body, replies.next()));
                    }
                }
                Err(error) if answers.is_empty() => return Err(error),
                // Earlier chunks went in: keep their answers; this one and the rest are
                // unconfirmed, for the same reason.
                Err(error) => {
                    let again = same_error(&error);
                    answers.push(Err(error));
                    while answers.len() < total {
                        answers.push(Err(same_error(&again)));
                    }
                    break;
                }
            }
        }
        Ok(answers)
    }

    /// The `put` of `body`, checked against the server's limits.
    fn put_command<'a>(
        &self,
        queue: &str,
        body: &'a [u8],
        options: PutOptions,
    ) -> Result<Command<'a>> {
        check_queue(queue)?;
        let delay = url::whole_seconds("delay", options.delay)?;
        let ttr = url::whole_seconds("ttr", options.ttr)?.max(1);
        if body.len() > self.max_job_size {
            return Err(self.too_large(queue, body));
        }
        Ok(Command::Put {
            priority: options.priority,
            delay,
            ttr,
            body,
        })
    }

    /// The id in the reply to the `put` of `body`, or why it was not stored.
    fn inserted(&self, queue: &str, body: &[u8], reply: Option<Response>) -> Result<u64> {
        match reply {
            Some(Response::Inserted(id)) => Ok(id),
            Some(Response::BuriedId(id)) => Err(Error::Protocol {
                backend: "beanstalkd",
                detail: format!(
                    "the server is out of memory: item {id} was stored buried in tube `{queue}`; \
                     kick it once memory is available"
                ),
            }),
            Some(Response::JobTooBig) => Err(self.too_large(queue, body)),
            Some(other) => Err(unexpected("put", &other)),
            None => Err(unexpected("put", &Response::NotFound)),
        }
    }

    fn too_large(&self, queue: &str, body: &[u8]) -> Error {
        super::too_large(queue, body, self.max_job_size)
    }
}

#[async_trait]
impl Transport for BeanstalkTransport {
    fn describe(&self) -> String {
        self.inner.url.clone()
    }

    /// Exact priorities; delays and TTRs in whole seconds (rounded up), at most `u32::MAX`
    /// of them; max-job-size as the server reports it; `touch` extends a reservation by the
    /// job's own TTR.
    fn capabilities(&self) -> Capabilities {
        let longest = Duration::from_secs(u64::from(u32::MAX));
        Capabilities::new()
            .with_delays(Duration::from_secs(1), Some(longest))
            .with_max_message_size(self.inner.max_job_size)
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(record::Failures(&self.inner))
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        self.inner.put(queue, &body, options).await
    }

    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        self.inner.put_many(queue, &bodies, options).await
    }

    /// Ready jobs are taken queue by queue in the order given (each queue by priority, then
    /// age). When none is ready, the call waits on all the queues at once, and the first
    /// job to arrive in any of them is taken: beanstalkd orders the tubes a connection
    /// watches by priority and age only.
    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        for queue in queues {
            check_queue(queue)?;
        }
        if queues.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(Vec::new());
        }
        // In a task of its own, so that a caller that stops waiting loses nothing: what it
        // would have got is handed back.
        let inner = self.inner.clone();
        let queues = queues.to_vec();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut parked = inner.reserving.lock().await;
            let result = inner
                .reserve(&mut parked, &queues, max.max(1), timeout)
                .await;
            if let Err(Ok(jobs)) = tx.send(result) {
                inner.hand_back(jobs).await;
            }
        });
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Acks of concurrent tasks go out together: the first to queue one spawns a flush
    /// that sends every `delete` queued by the time it runs in one batch.
    async fn ack(&self, job: &Job) -> Result<()> {
        self.inner.ack(job).await
    }

    async fn send_ack(&self, job: &Job) -> Result<()> {
        self.inner.send_ack(job)
    }

    async fn acks_answered(&self) {
        self.inner.acks_answered().await;
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        self.inner.holder(job)?;
        self.inner.put(&job.queue, &body, options).await?;
        match self
            .inner
            .on_reserved(job, Command::Delete(job.id), false)
            .await?
        {
            Response::Deleted => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }

    async fn release(&self, job: &Job) -> Result<()> {
        self.inner.release(job).await
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        match self
            .inner
            .on_reserved(job, Command::Touch(job.id), true)
            .await?
        {
            Response::Touched => Ok(()),
            other => Err(unexpected("touch", &other)),
        }
    }

    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.inner.fail(job, &body, options, failure).await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.inner.stats().await
    }

    /// The figures of beanstalkd's `stats` that say how the server is doing, in
    /// `SERVER_FIGURES` order; one round trip.
    async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        self.inner.server_stats().await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        self.inner.browse(queue, after, limit).await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        self.inner.peek(queue).await
    }

    /// One round trip per item: `peek-ready` (then `peek-delayed`) and `delete`, bounded by
    /// the counts at the start so that a busy producer cannot keep it going.
    async fn flush(&self, queue: &str) -> Result<u64> {
        self.inner.flush(queue).await
    }
}
