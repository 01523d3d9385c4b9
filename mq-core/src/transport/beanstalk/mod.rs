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
//! # Mapping
//!
//! - A queue is a tube; priority, delay and TTR are beanstalkd's. Delays round up to whole
//!   seconds (never down), the TTR to at least one second; a value above `u32::MAX`
//!   seconds is [`Error::Unrepresentable`].
//! - `ack` is `delete`, `keep_alive` is `touch`, `release` is `release` with the job's own
//!   priority (read with `stats-job`), `retry` puts the new envelope with its delay and
//!   then deletes the old job: a crash between the two leaves a duplicate, never a loss.
//! - The failure store is a tube per queue, `mq-failed.QUEUE`, of buried jobs whose bodies
//!   are JSON records `{queue, options, failure, envelope}` (see `docs/beanstalkd.md`,
//!   which also says how listing works and what it costs). No worker watches these tubes.
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
//! no call claims is handed back. Concurrent acks go out as one batch of `delete`s.
//!
//! When the consuming connection drops, the jobs it had reserved go back to ready in the
//! server: the next `reserve` logs how many, reconnects (the worker retries a failed
//! `reserve` with backoff), and acks of those jobs fail with [`Error::ReservationLost`]
//! (at-least-once: they run again). The producing connection reconnects on the next call.

pub mod connection;
pub mod proto;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use self::connection::{Connection, CONNECT_TIMEOUT};
use self::proto::{
    check_tube_name, parse_yaml_list, parse_yaml_map, Command, Decoder, Response, MAX_TUBE_NAME,
};
use super::{FailedMessage, Failure, Job, PutOptions, QueueStats, Transport};
use crate::{Error, Result};

/// The keys of beanstalkd's `stats` reply that [`Transport::server_stats`] reports, in
/// this order (see beanstalkd's `protocol.txt` for their meaning).
const SERVER_FIGURES: &[&str] = &[
    "version",
    "hostname",
    "pid",
    "uptime",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "current-tubes",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "total-jobs",
    "job-timeouts",
    "total-connections",
    "max-job-size",
    "binlog-current-index",
    "binlog-max-size",
];

/// beanstalkd's port when the URL names none.
pub const DEFAULT_PORT: u16 = 11300;

/// The failure store of queue `Q` is the tube `mq-failed.Q`.
pub const FAILED_PREFIX: &str = "mq-failed.";

/// Priority of failure records: all equal, so that they are reserved oldest first.
const FAILED_PRIORITY: u32 = 0;

/// How long a poll waits between two `reserve-with-timeout 0` while jobs are held.
const POLL: Duration = Duration::from_millis(50);

/// The most `put`s of a batch dispatch sent in one write.
const PUT_CHUNK: usize = 1024;

/// The most `reserve-with-timeout 0` pipelined at once when filling a batch.
const MAX_CHUNK: usize = 64;

/// A beanstalkd server used as a queue.
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
    acks: Mutex<Vec<PendingAck>>,
    /// How many jobs the last `take_ready` got: the size of its next first chunk.
    ready_hint: std::sync::atomic::AtomicUsize,
}

/// A blocking `reserve-with-timeout` that may outlive the `reserve` call that sent it
/// (beanstalkd counts its timeout in whole seconds; the caller may have asked for less).
/// The next `reserve` claims its result; one nobody claims within [`UNCLAIMED`] is
/// handed back, so that a worker that stopped reserving holds nothing.
#[derive(Debug, Default)]
struct Parked {
    result: Mutex<Option<Result<Woken>>>,
    done: tokio::sync::Notify,
}

#[derive(Debug)]
enum Woken {
    Job(Job),
    TimedOut,
    DeadlineSoon,
}

impl Parked {
    fn lock(&self) -> MutexGuard<'_, Option<Result<Woken>>> {
        self.result
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn finish(&self, woken: Result<Woken>) {
        *self.lock() = Some(woken);
        self.done.notify_one();
    }

    fn take(&self) -> Option<Result<Woken>> {
        self.lock().take()
    }

    /// The result, once the server answered and by `deadline`; `None` while it is still
    /// out. A result handed back already reads as a timeout.
    async fn claim(&self, deadline: Instant) -> Option<Result<Woken>> {
        let finished = tokio::time::timeout_at(deadline, self.done.notified())
            .await
            .is_ok();
        match self.take() {
            Some(woken) => Some(woken),
            None if finished => Some(Ok(Woken::TimedOut)),
            None => None,
        }
    }
}

/// An ack queued for the next batch: the job and where its reply goes.
type PendingAck = (
    u64,
    tokio::sync::oneshot::Sender<std::result::Result<Response, String>>,
);

/// How long a job reserved by a parked reserve waits for a `reserve` call to claim it.
const UNCLAIMED: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Consumer {
    connection: Option<Arc<Connection>>,
    /// The tubes the consuming connection watches.
    watching: Vec<String>,
    /// Jobs reserved through `connection` and not yet acked, retried, released or failed.
    held: HashSet<u64>,
}

/// `error` again, for each item of a chunk that failed as a whole.
fn same_error(error: &Error) -> Error {
    match error {
        Error::Unreachable { address, cause } => Error::Unreachable {
            address: address.clone(),
            cause: cause.clone(),
        },
        other => Error::Protocol {
            backend: "beanstalkd",
            detail: other.to_string(),
        },
    }
}

/// A parsed `beanstalk://HOST[:PORT]`.
fn parse_url(url: &str) -> Result<(String, u16)> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("beanstalk://")
        .ok_or_else(|| invalid("expected beanstalk://HOST[:PORT]".into()))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid(
            "no host; write beanstalk://HOST[:PORT], e.g. beanstalk://127.0.0.1:11300".into(),
        ));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| "/?#@ \t".contains(*c) || c.is_control())
    {
        return Err(invalid(format!(
            "unexpected {bad:?}: only HOST[:PORT] may follow beanstalk:// (no path, user or query)"
        )));
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        // [IPv6]:port
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unclosed `[` in an IPv6 address".into()))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(format!("unexpected {after:?} after `]`"))),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => {
                return Err(invalid(
                    "an IPv6 address must be in brackets: beanstalk://[::1]:11300".into(),
                ))
            }
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host before the port".into()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| invalid(format!("port `{port}` is not a number from 1 to 65535")))?,
    };
    Ok((host.to_owned(), port))
}

/// Seconds for beanstalkd, rounded up.
fn whole_seconds(what: &'static str, value: Duration) -> Result<u32> {
    let seconds = value
        .as_secs()
        .saturating_add(u64::from(value.subsec_nanos() > 0));
    u32::try_from(seconds).map_err(|_| Error::Unrepresentable {
        what,
        value,
        reason: format!(
            "beanstalkd counts it in whole seconds, at most {} (about 136 years)",
            u32::MAX
        ),
    })
}

/// The longest queue name: its failure tube, `mq-failed.QUEUE`, must be a valid tube too.
pub const MAX_QUEUE_NAME: usize = MAX_TUBE_NAME - FAILED_PREFIX.len();

/// Refuses a queue name this backend cannot serve: not a valid tube, too long for its
/// failure tube, or inside the failure store's namespace (`mq-failed.`).
fn check_queue(queue: &str) -> Result<()> {
    check_tube_name(queue).map_err(|reason| {
        Error::Config(format!(
            "queue `{queue}` cannot be a beanstalkd tube: {reason}"
        ))
    })?;
    if let Some(owner) = queue.strip_prefix(FAILED_PREFIX) {
        return Err(Error::Config(format!(
            "queue `{queue}` starts with `{FAILED_PREFIX}`, which beanstalk:// keeps for the \
             failure store (the failed messages of queue `{owner}`); choose another queue name"
        )));
    }
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

fn failed_tube(queue: &str) -> Result<String> {
    let tube = format!("{FAILED_PREFIX}{queue}");
    check_tube_name(&tube).map_err(|reason| {
        Error::Config(format!(
            "queue `{queue}` has no valid failure tube `{tube}`: {reason}"
        ))
    })?;
    Ok(tube)
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

/// The stored form of a failure record (see `docs/beanstalkd.md`).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    queue: String,
    options: PutOptions,
    failure: Failure,
    /// The envelope, when it is JSON (always, for envelopes mq wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<Box<RawValue>>,
    /// The item's bytes as text, when they are not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope_text: Option<String>,
    /// The item's bytes in hexadecimal, when they are not even UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope_hex: Option<String>,
}

impl Record {
    fn new(queue: &str, body: &[u8], options: PutOptions, failure: Failure) -> Record {
        let mut record = Record {
            queue: queue.to_owned(),
            options,
            failure,
            envelope: None,
            envelope_text: None,
            envelope_hex: None,
        };
        if let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(body) {
            record.envelope = Some(raw);
        } else if let Ok(text) = std::str::from_utf8(body) {
            record.envelope_text = Some(text.to_owned());
        } else {
            record.envelope_hex = Some(body.iter().map(|b| format!("{b:02x}")).collect());
        }
        record
    }

    fn body(&self) -> Bytes {
        if let Some(raw) = &self.envelope {
            return Bytes::copy_from_slice(raw.get().as_bytes());
        }
        if let Some(text) = &self.envelope_text {
            return Bytes::copy_from_slice(text.as_bytes());
        }
        let hex = self.envelope_hex.as_deref().unwrap_or_default().as_bytes();
        hex.chunks(2)
            .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect::<Vec<u8>>()
            .into()
    }

    fn encode(&self) -> Vec<u8> {
        // Strings, numbers and already-valid raw JSON always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn into_failed(self, id: u64) -> FailedMessage {
        FailedMessage {
            id,
            body: self.body(),
            queue: self.queue,
            options: self.options,
            failure: self.failure,
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("… (truncated)");
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
    pub async fn connect_url(url: &str) -> Result<BeanstalkTransport> {
        let (host, port) = parse_url(url)?;
        let name = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let addresses: Vec<SocketAddr> = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(addresses)) => addresses.collect(),
            Ok(Err(error)) => {
                return Err(Error::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("cannot resolve host `{host}`: {error}"),
                })
            }
            Err(_) => {
                return Err(Error::Unreachable {
                    address: name,
                    cause: format!(
                        "resolving the host took over {}s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                })
            }
        };
        if addresses.is_empty() {
            return Err(Error::InvalidUrl {
                url: url.to_owned(),
                reason: format!("host `{host}` resolves to no address"),
            });
        }
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
                acks: Mutex::new(Vec::new()),
                ready_hint: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The server's `max-job-size`, read at connect.
    pub fn max_job_size(&self) -> usize {
        self.inner.max_job_size
    }

    /// A new connection to the same server, e.g. to send commands this transport does not
    /// use; it shares nothing with the transport's own connections.
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

    fn consumer(&self) -> MutexGuard<'_, Consumer> {
        // Every critical section is a single insert, remove or swap.
        self.consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The consuming connection, reconnected if it was lost (logging what was lost).
    async fn consuming(&self) -> Result<Arc<Connection>> {
        {
            let mut consumer = self.consumer();
            match &consumer.connection {
                Some(connection) if !connection.is_closed() => return Ok(connection.clone()),
                Some(_) => {
                    let lost = consumer.held.len();
                    consumer.held.clear();
                    consumer.connection = None;
                    if lost > 0 {
                        tracing::warn!(
                            server = %self.name,
                            lost,
                            "lost the consuming connection to beanstalkd: the items it had \
                             reserved went back to ready and will be delivered again \
                             (at-least-once); reconnecting"
                        );
                    } else {
                        tracing::warn!(server = %self.name, "lost the consuming connection to beanstalkd; reconnecting");
                    }
                }
                None => {}
            }
        }
        let connection = Arc::new(self.open().await?);
        let mut consumer = self.consumer();
        consumer.connection = Some(connection.clone());
        consumer.watching = vec!["default".to_owned()];
        consumer.held.clear();
        Ok(connection)
    }

    /// The connection holding the reservation of `id`.
    fn holder(&self, id: u64) -> Result<Arc<Connection>> {
        let consumer = self.consumer();
        match &consumer.connection {
            Some(connection) if consumer.held.contains(&id) && !connection.is_closed() => {
                Ok(connection.clone())
            }
            _ => Err(Error::ReservationLost(id)),
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

    fn unhold(&self, id: u64) {
        let mut consumer = self.consumer();
        if consumer.held.remove(&id) && consumer.held.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// A command on the reservation of `id`; `Unreachable` and `NOT_FOUND` mean the
    /// reservation is gone. Forgets the reservation unless `keep` says to keep it.
    async fn on_reserved(&self, id: u64, command: Command<'_>, keep: bool) -> Result<Response> {
        let connection = self.holder(id)?;
        let result = connection.call(command).await;
        let lost = matches!(
            result,
            Err(Error::Unreachable { .. }) | Ok(Response::NotFound)
        );
        if lost || !keep {
            self.unhold(id);
        }
        if lost {
            return Err(Error::ReservationLost(id));
        }
        result
    }

    /// The commands that make the consuming connection watch exactly `tubes`.
    fn rewatch<'a>(&self, tubes: &[&'a str], watching: &'a [String]) -> Vec<Command<'a>> {
        let mut commands: Vec<Command<'a>> = tubes
            .iter()
            .filter(|tube| !watching.iter().any(|w| w == *tube))
            .map(|tube| Command::Watch(tube))
            .collect();
        commands.extend(
            watching
                .iter()
                .filter(|w| !tubes.contains(&w.as_str()))
                .map(|w| Command::Ignore(w)),
        );
        commands
    }

    /// Sends the watch changes for `tubes` followed by `then`; returns the replies to
    /// `then`.
    async fn watching_then(
        &self,
        connection: &Connection,
        tubes: &[&str],
        then: &[Command<'_>],
    ) -> Result<Vec<Response>> {
        let watching = self.consumer().watching.clone();
        let mut commands = self.rewatch(tubes, &watching);
        let changes = commands.len();
        commands.extend_from_slice(then);
        let mut replies = connection.send(&commands).await?;
        let rest = replies.split_off(changes);
        for (command, reply) in commands.iter().zip(&replies) {
            if !matches!(reply, Response::Watching(_)) {
                // NOT_IGNORED cannot happen: the new tubes are watched before the old ones
                // are ignored.
                return Err(unexpected(&format!("{command:?}"), reply));
            }
        }
        if changes > 0 {
            self.consumer().watching = tubes.iter().map(|t| (*t).to_owned()).collect();
        }
        Ok(rest)
    }

    /// Reserves what is ready now, queue by queue in order, up to `max` jobs in all.
    async fn take_ready(
        &self,
        connection: &Connection,
        queues: &[String],
        max: usize,
        jobs: &mut Vec<Job>,
    ) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let before = jobs.len();
        // Start where the last call ended: a busy queue is read in one round trip, an
        // empty one costs a few `TIMED_OUT`.
        let first = self.ready_hint.load(Relaxed).max(4);
        for queue in queues {
            let mut chunk = first;
            while jobs.len() < max {
                chunk = chunk.min(max - jobs.len()).min(MAX_CHUNK);
                let reserves = vec![Command::ReserveWithTimeout(0); chunk];
                let replies = self
                    .watching_then(connection, &[queue.as_str()], &reserves)
                    .await?;
                let got = self.collect_reserved(replies, queue, jobs)?;
                if got < chunk {
                    break;
                }
                chunk *= 2;
            }
            if jobs.len() >= max {
                break;
            }
        }
        self.ready_hint.store(jobs.len() - before, Relaxed);
        Ok(())
    }

    /// Records every `RESERVED` among `replies` (before looking at anything else, so that
    /// no reservation goes unnoticed); returns how many.
    fn collect_reserved(
        &self,
        replies: Vec<Response>,
        queue: &str,
        jobs: &mut Vec<Job>,
    ) -> Result<usize> {
        let mut got = 0;
        let mut error = None;
        {
            let mut consumer = self.consumer();
            for reply in replies {
                match reply {
                    Response::Reserved { id, body } => {
                        consumer.held.insert(id);
                        jobs.push(Job {
                            id,
                            queue: queue.to_owned(),
                            body,
                            deliveries: 0,
                        });
                        got += 1;
                    }
                    Response::TimedOut | Response::DeadlineSoon => {}
                    other => error = Some(unexpected("reserve-with-timeout 0", &other)),
                }
            }
        }
        error.map_or(Ok(got), Err)
    }

    /// Reserves up to `max` jobs, waiting up to `timeout` for the first. `parked` is the
    /// blocking reserve an earlier call left on the connection, if any.
    async fn reserve(
        self: &Arc<Self>,
        parked: &mut Option<Arc<Parked>>,
        queues: &[String],
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Job>> {
        let deadline = Instant::now() + timeout;
        let mut jobs = Vec::new();
        if let Some(waiting) = parked.clone() {
            // Nothing sent now would be answered before it: wait for it first.
            let Some(woken) = waiting.claim(deadline).await else {
                return Ok(jobs);
            };
            *parked = None;
            match woken? {
                // Hand it over at once: a message that arrived while the worker was idle
                // should not wait for another round trip.
                Woken::Job(job) => return Ok(vec![job]),
                Woken::TimedOut => {}
                Woken::DeadlineSoon => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + POLL)).await;
                }
            }
        }
        let connection = self.consuming().await?;
        self.take_ready(&connection, queues, max, &mut jobs).await?;
        while jobs.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let left = deadline - now;
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !self.consumer().held.is_empty() {
                // A blocking reserve would hold back the acks and touches of held jobs:
                // poll, and look again as soon as the last of them is gone.
                tokio::select! {
                    () = &mut idle => {}
                    () = tokio::time::sleep(left.min(POLL)) => {}
                }
                self.take_ready(&connection, queues, max, &mut jobs).await?;
                continue;
            }
            // Block in the server. Its timeout is whole seconds, at least one: when the
            // caller asked for less, the reserve stays parked for the next call.
            let waiting = self.park(&connection, queues, left);
            let Some(woken) = waiting.claim(deadline).await else {
                *parked = Some(waiting);
                break;
            };
            match woken? {
                // As above: no extra round trip; the next call takes what else is ready.
                Woken::Job(job) => jobs.push(job),
                Woken::TimedOut => {}
                // A reservation of this connection nobody tracks (a dropped reserve) is
                // about to run out: wait a little rather than spin.
                Woken::DeadlineSoon => tokio::time::sleep(left.min(POLL * 4)).await,
            }
        }
        Ok(jobs)
    }

    /// Sends a blocking `reserve-with-timeout` in a task of its own.
    fn park(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        queues: &[String],
        left: Duration,
    ) -> Arc<Parked> {
        let parked = Arc::new(Parked::default());
        let seconds = u32::try_from(left.as_secs()).unwrap_or(u32::MAX).max(1);
        let inner = self.clone();
        let connection = connection.clone();
        let queues = queues.to_vec();
        let result = parked.clone();
        tokio::spawn(async move {
            let woken = inner.blocking_reserve(&connection, &queues, seconds).await;
            let reserved = matches!(woken, Ok(Woken::Job(_)));
            result.finish(woken);
            if reserved {
                tokio::time::sleep(UNCLAIMED).await;
                if let Some(Ok(Woken::Job(job))) = result.take() {
                    tracing::debug!(
                        item = job.id,
                        "no reserve claimed this item; handing it back"
                    );
                    inner.hand_back(vec![job]).await;
                }
            }
        });
        parked
    }

    async fn blocking_reserve(
        &self,
        connection: &Connection,
        queues: &[String],
        seconds: u32,
    ) -> Result<Woken> {
        let tubes: Vec<&str> = queues.iter().map(String::as_str).collect();
        let mut replies = self
            .watching_then(connection, &tubes, &[Command::ReserveWithTimeout(seconds)])
            .await?;
        match replies.pop() {
            Some(Response::Reserved { id, body }) => {
                let queue = if let [queue] = queues {
                    queue.clone()
                } else {
                    self.tube_of(connection, id).await?
                };
                let mut jobs = Vec::with_capacity(1);
                self.collect_reserved(vec![Response::Reserved { id, body }], &queue, &mut jobs)?;
                jobs.pop()
                    .map(Woken::Job)
                    .ok_or_else(|| unexpected("reserve-with-timeout", &Response::NotFound))
            }
            Some(Response::TimedOut) => Ok(Woken::TimedOut),
            Some(Response::DeadlineSoon) => Ok(Woken::DeadlineSoon),
            Some(other) => Err(unexpected("reserve-with-timeout", &other)),
            None => Err(unexpected("reserve-with-timeout", &Response::NotFound)),
        }
    }

    async fn tube_of(&self, connection: &Connection, id: u64) -> Result<String> {
        match connection.call(Command::StatsJob(id)).await? {
            Response::Ok(body) => parse_yaml_map(&body)
                .ok()
                .and_then(|mut stats| stats.remove("tube"))
                .ok_or_else(|| unexpected("stats-job", &Response::Ok(body))),
            other => Err(unexpected("stats-job", &other)),
        }
    }

    /// Hands back jobs a dropped `reserve` had reserved.
    async fn hand_back(&self, jobs: Vec<Job>) {
        for job in jobs {
            if let Err(error) = self.release(&job).await {
                tracing::warn!(item = job.id, %error, "could not hand back an item of a cancelled reserve; it returns after its TTR");
            }
        }
    }

    async fn release(&self, job: &Job) -> Result<()> {
        let connection = self.holder(job.id)?;
        let priority = match connection.call(Command::StatsJob(job.id)).await {
            Ok(Response::Ok(body)) => parse_yaml_map(&body)
                .ok()
                .and_then(|stats| stats.get("pri")?.parse().ok())
                .unwrap_or(crate::message::DEFAULT_PRIORITY),
            _ => crate::message::DEFAULT_PRIORITY,
        };
        let release = Command::Release {
            id: job.id,
            priority,
            delay: 0,
        };
        match self.on_reserved(job.id, release, false).await? {
            Response::Released => Ok(()),
            other => Err(unexpected("release", &other)),
        }
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
        let delay = whole_seconds("delay", options.delay)?;
        let ttr = whole_seconds("ttr", options.ttr)?.max(1);
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
        let name = crate::envelope::Envelope::decode(body)
            .map(|envelope| envelope.name)
            .unwrap_or_else(|_| format!("(item for queue {queue})"));
        Error::TooLarge {
            name,
            size: body.len(),
            limit: self.max_job_size,
        }
    }

    /// Puts a failure record and buries it; returns its id.
    async fn put_record(&self, tube: &str, record: &[u8]) -> Result<u64> {
        let producer = self.producer().await?;
        let put = Command::Put {
            priority: FAILED_PRIORITY,
            delay: 0,
            ttr: 60,
            body: record,
        };
        let id = match producer.send_using(tube, &[put]).await?.pop() {
            Some(Response::Inserted(id)) => id,
            Some(Response::JobTooBig) => {
                return Err(Error::TooLarge {
                    name: "(failure record)".into(),
                    size: record.len(),
                    limit: self.max_job_size,
                })
            }
            Some(other) => return Err(unexpected("put", &other)),
            None => return Err(unexpected("put", &Response::NotFound)),
        };
        // Ready until buried: a listing that reserves it first buries it itself.
        let bury = Command::Bury {
            id,
            priority: FAILED_PRIORITY,
        };
        let replies = producer.send(&[Command::ReserveJob(id), bury]).await?;
        if let [Response::Reserved { .. }, reply] = &replies[..] {
            if *reply != Response::Buried {
                return Err(unexpected("bury", reply));
            }
        }
        Ok(id)
    }

    async fn fail(
        &self,
        job: &Job,
        body: &[u8],
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.holder(job.id)?;
        let tube = failed_tube(&job.queue)?;
        let mut record = Record::new(&job.queue, body, options, failure);
        let mut bytes = record.encode();
        if bytes.len() > self.max_job_size {
            truncate(&mut record.failure.reason, 1000);
            for slot in &mut record.failure.slots {
                truncate(&mut slot.error, 1000);
            }
            bytes = record.encode();
        }
        if bytes.len() > self.max_job_size {
            // Keep the item where it is, buried, rather than lose it.
            let bury = Command::Bury {
                id: job.id,
                priority: options.priority,
            };
            let reply = self.on_reserved(job.id, bury, false).await?;
            if reply != Response::Buried {
                return Err(unexpected("bury", &reply));
            }
            return Err(Error::Protocol {
                backend: "beanstalkd",
                detail: format!(
                    "the failure record of item {} ({} bytes) is over max-job-size ({}); the \
                     item was buried in tube `{}` instead (kick it to run it again)",
                    job.id,
                    bytes.len(),
                    self.max_job_size,
                    job.queue
                ),
            });
        }
        self.put_record(&tube, &bytes).await?;
        match self
            .on_reserved(job.id, Command::Delete(job.id), false)
            .await?
        {
            Response::Deleted => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// Reads up to `max` records of one failure tube, oldest first, on `scan` (a connection
    /// of its own): kicks buried records to ready, reserves them, buries them again.
    async fn scan(
        &self,
        scan: &Connection,
        tube: &str,
        watching: &mut String,
        max: usize,
    ) -> Result<Vec<FailedMessage>> {
        let mut commands = vec![Command::Kick(u32::MAX), Command::Watch(tube)];
        if watching != tube {
            commands.push(Command::Ignore(watching));
        }
        let replies = scan.send_using(tube, &commands).await?;
        for (command, reply) in commands.iter().zip(&replies) {
            if !matches!(reply, Response::KickedCount(_) | Response::Watching(_)) {
                return Err(unexpected(&format!("{command:?}"), reply));
            }
        }
        *watching = tube.to_owned();
        let mut found = Vec::new();
        let mut chunk = 8;
        while found.len() < max {
            chunk = chunk.min(max - found.len()).min(MAX_CHUNK);
            let replies = scan
                .send(&vec![Command::ReserveWithTimeout(0); chunk])
                .await?;
            let before = found.len();
            for reply in replies {
                if let Response::Reserved { id, body } = reply {
                    found.push((id, body));
                }
            }
            if found.len() - before < chunk {
                break;
            }
            chunk *= 2;
        }
        let buries: Vec<Command<'_>> = found
            .iter()
            .map(|(id, _)| Command::Bury {
                id: *id,
                priority: FAILED_PRIORITY,
            })
            .collect();
        if !buries.is_empty() {
            for reply in scan.send(&buries).await? {
                if reply != Response::Buried {
                    return Err(unexpected("bury", &reply));
                }
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|(id, body)| match serde_json::from_slice::<Record>(&body) {
                Ok(record) => Some(record.into_failed(id)),
                Err(error) => {
                    tracing::warn!(item = id, tube, %error, "not an mq failure record; skipped");
                    None
                }
            })
            .collect())
    }

    async fn list_tubes(&self, connection: &Connection) -> Result<Vec<String>> {
        match connection.call(Command::ListTubes).await? {
            Response::Ok(body) => parse_yaml_list(&body).map_err(|e| Error::Protocol {
                backend: "beanstalkd",
                detail: format!("`list-tubes`: {e}"),
            }),
            other => Err(unexpected("list-tubes", &other)),
        }
    }

    /// The record of failure entry `id`, if `id` is a job of a failure tube.
    async fn record(&self, id: u64) -> Result<Option<Record>> {
        let producer = self.producer().await?;
        let replies = producer
            .send(&[Command::StatsJob(id), Command::Peek(id)])
            .await?;
        let [stats, peek] = &replies[..] else {
            return Err(unexpected("peek", &Response::NotFound));
        };
        let tube = match stats {
            Response::Ok(body) => parse_yaml_map(body).ok().and_then(|mut s| s.remove("tube")),
            Response::NotFound => return Ok(None),
            other => return Err(unexpected("stats-job", other)),
        };
        if !tube.is_some_and(|tube| tube.starts_with(FAILED_PREFIX)) {
            return Ok(None);
        }
        match peek {
            Response::Found { body, .. } => Ok(serde_json::from_slice(body).ok()),
            Response::NotFound => Ok(None),
            other => Err(unexpected("peek", other)),
        }
    }

    async fn delete_any(&self, connection: &Connection, id: u64) -> Result<bool> {
        match connection.call(Command::Delete(id)).await? {
            Response::Deleted => Ok(true),
            Response::NotFound => Ok(false),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// Counts of one tube from `stats-tube`: ready, reserved, delayed, buried.
    fn counts(reply: &Response) -> Option<[u64; 4]> {
        let Response::Ok(body) = reply else {
            return None;
        };
        let stats = parse_yaml_map(body).ok()?;
        let get = |key: &str| stats.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some([
            get("current-jobs-ready"),
            get("current-jobs-reserved"),
            get("current-jobs-delayed"),
            get("current-jobs-buried"),
        ])
    }
}

#[async_trait]
impl Transport for BeanstalkTransport {
    fn describe(&self) -> String {
        self.inner.url.clone()
    }

    fn max_message_size(&self) -> Option<usize> {
        Some(self.inner.max_job_size)
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
        let inner = &self.inner;
        inner.holder(job.id)?;
        let (reply, replied) = tokio::sync::oneshot::channel();
        let first = {
            let mut acks = inner.acks();
            acks.push((job.id, reply));
            acks.len() == 1
        };
        if first {
            let inner = inner.clone();
            tokio::spawn(async move { inner.flush_acks().await });
        }
        let result = replied
            .await
            .unwrap_or_else(|_| Err("connection closed".into()));
        let lost = matches!(result, Err(_) | Ok(Response::NotFound));
        inner.unhold(job.id);
        if lost {
            return Err(Error::ReservationLost(job.id));
        }
        match result {
            Ok(Response::Deleted) => Ok(()),
            Ok(other) => Err(unexpected("delete", &other)),
            Err(cause) => Err(Error::Unreachable {
                address: inner.name.clone(),
                cause,
            }),
        }
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        self.inner.holder(job.id)?;
        self.inner.put(&job.queue, &body, options).await?;
        match self
            .inner
            .on_reserved(job.id, Command::Delete(job.id), false)
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
            .on_reserved(job.id, Command::Touch(job.id), true)
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

    /// Costs a connection of its own and, per failure tube read, a `kick`, up to `max`
    /// reserves and as many buries (pipelined); without `queue`, a `list-tubes` too.
    async fn failed_list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        let scan = self.inner.open().await?;
        let tubes = match queue {
            Some(queue) => vec![failed_tube(queue)?],
            None => self
                .inner
                .list_tubes(&scan)
                .await?
                .into_iter()
                .filter(|tube| tube.starts_with(FAILED_PREFIX))
                .collect(),
        };
        let mut watching = "default".to_owned();
        let mut all = Vec::new();
        for tube in tubes {
            all.extend(self.inner.scan(&scan, &tube, &mut watching, max).await?);
        }
        all.sort_by_key(|failed| failed.id);
        all.truncate(max);
        Ok(all)
    }

    async fn failed_show(&self, id: u64) -> Result<Option<FailedMessage>> {
        Ok(self
            .inner
            .record(id)
            .await?
            .map(|record| record.into_failed(id)))
    }

    async fn failed_retry(&self, id: u64) -> Result<u64> {
        let record = self.inner.record(id).await?.ok_or(Error::NotFound(id))?;
        let options = PutOptions {
            delay: Duration::ZERO,
            ..record.options
        };
        let new_id = self
            .inner
            .put(&record.queue, &record.body(), options)
            .await?;
        let producer = self.inner.producer().await?;
        if !self.inner.delete_any(&producer, id).await? {
            tracing::warn!(
                item = id,
                "failure entry requeued but not removed (a listing holds it): it stays in the store"
            );
        }
        Ok(new_id)
    }

    async fn failed_remove(&self, id: u64) -> Result<bool> {
        if self.inner.record(id).await?.is_none() {
            return Ok(false);
        }
        let producer = self.inner.producer().await?;
        self.inner.delete_any(&producer, id).await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let producer = self.inner.producer().await?;
        let tubes = self.inner.list_tubes(&producer).await?;
        let commands: Vec<Command<'_>> = tubes.iter().map(|t| Command::StatsTube(t)).collect();
        let replies = producer.send(&commands).await?;
        let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
        for (tube, reply) in tubes.iter().zip(&replies) {
            // A tube that vanished meanwhile answers NOT_FOUND: skip it.
            let Some([ready, reserved, delayed, buried]) = Inner::counts(reply) else {
                continue;
            };
            let (queue, failed) = match tube.strip_prefix(FAILED_PREFIX) {
                Some(queue) => (queue, true),
                None => (tube.as_str(), false),
            };
            if !failed && tube == "default" && ready + reserved + delayed + buried == 0 {
                continue;
            }
            let entry = out.entry(queue.to_owned()).or_insert_with(|| QueueStats {
                queue: queue.to_owned(),
                ..QueueStats::default()
            });
            if failed {
                entry.failed += ready + reserved + delayed + buried;
            } else {
                entry.ready += ready;
                entry.reserved += reserved;
                entry.delayed += delayed;
            }
        }
        Ok(out.into_values().collect())
    }

    /// The figures of beanstalkd's `stats` that say how the server is doing, in
    /// `SERVER_FIGURES` order; one round trip.
    async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        let producer = self.inner.producer().await?;
        let mut stats = match producer.call(Command::Stats).await? {
            Response::Ok(body) => parse_yaml_map(&body).map_err(|e| Error::Protocol {
                backend: "beanstalkd",
                detail: format!("`stats`: {e}"),
            })?,
            other => return Err(unexpected("stats", &other)),
        };
        Ok(SERVER_FIGURES
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), stats.remove(*key)?)))
            .collect())
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        check_queue(queue)?;
        let producer = self.inner.producer().await?;
        match producer
            .send_using(queue, &[Command::PeekReady])
            .await?
            .pop()
        {
            Some(Response::Found { id, body }) => Ok(Some(Job {
                id,
                queue: queue.to_owned(),
                body,
                deliveries: 0,
            })),
            Some(Response::NotFound) => Ok(None),
            Some(other) => Err(unexpected("peek-ready", &other)),
            None => Err(unexpected("peek-ready", &Response::NotFound)),
        }
    }

    /// One round trip per item: `peek-ready` (then `peek-delayed`) and `delete`, bounded by
    /// the counts at the start so that a busy producer cannot keep it going.
    async fn flush(&self, queue: &str) -> Result<u64> {
        check_queue(queue)?;
        let producer = self.inner.producer().await?;
        let reply = producer.call(Command::StatsTube(queue)).await?;
        let Some([ready, _, delayed, _]) = Inner::counts(&reply) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for (peek, count) in [(Command::PeekReady, ready), (Command::PeekDelayed, delayed)] {
            let mut next = producer.send_using(queue, &[peek]).await?.pop();
            for _ in 0..count {
                let Some(Response::Found { id, .. }) = next else {
                    break;
                };
                let replies = producer
                    .send_using(queue, &[Command::Delete(id), peek])
                    .await?;
                if let [done, following] = &replies[..] {
                    deleted += u64::from(*done == Response::Deleted);
                    next = Some(following.clone());
                } else {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("beanstalk://localhost").unwrap(),
            ("localhost".into(), 11300)
        );
        assert_eq!(
            parse_url("beanstalk://127.0.0.1:11301").unwrap(),
            ("127.0.0.1".into(), 11301)
        );
        assert_eq!(parse_url("beanstalk://h:1/").unwrap(), ("h".into(), 1));
        assert_eq!(parse_url("beanstalk://[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(
            parse_url("beanstalk://[::1]").unwrap(),
            ("::1".into(), 11300)
        );
        for bad in [
            "beanstalk://",
            "beanstalk://:11300",
            "beanstalk://h:",
            "beanstalk://h:0",
            "beanstalk://h:65536",
            "beanstalk://h:port",
            "beanstalk://h/path",
            "beanstalk://u@h",
            "beanstalk://h?x=1",
            "beanstalk://::1",
            "beanstalk://[::1",
            "beanstalk://[::1]x",
            "beanstalk://h h",
            "sqlite://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds("delay", Duration::ZERO).unwrap(), 0);
        assert_eq!(whole_seconds("delay", Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(
            whole_seconds("delay", Duration::from_millis(1500)).unwrap(),
            2
        );
        assert_eq!(whole_seconds("delay", Duration::from_secs(3)).unwrap(), 3);
        assert_eq!(
            whole_seconds("delay", Duration::from_secs(u64::from(u32::MAX))).unwrap(),
            u32::MAX
        );
        let error =
            whole_seconds("delay", Duration::from_secs(u64::from(u32::MAX) + 1)).unwrap_err();
        assert!(
            matches!(error, Error::Unrepresentable { what: "delay", .. }),
            "{error}"
        );
        assert!(whole_seconds("ttr", Duration::MAX).is_err());
    }

    #[test]
    fn records_keep_any_bytes() {
        let failure = Failure {
            slots: Vec::new(),
            reason: "r".into(),
            attempts: 1,
            failed_at: SystemTime::UNIX_EPOCH,
        };
        for body in [&br#"{"v":1}"#[..], b"not json", b"\xff\x00bin"] {
            let record = Record::new("q", body, PutOptions::default(), failure.clone());
            let back: Record = serde_json::from_slice(&record.encode()).unwrap();
            assert_eq!(&back.body()[..], body);
            assert_eq!(back.queue, "q");
        }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let mut text = "é".repeat(10);
        truncate(&mut text, 5);
        assert!(text.starts_with("éé"));
        assert!(text.ends_with("(truncated)"));
    }
}
