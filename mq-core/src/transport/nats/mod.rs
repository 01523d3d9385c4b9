//! `nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][?replicas=N&ack_wait=30s&tls=true&ca=PATH]`:
//! NATS JetStream; `url` reads the URL, its credentials and TLS.
//!
//! One work-queue stream holds every queue, a subject per priority band; a durable pull consumer
//! per band is shared by every worker of the queue; delayed items wait on a subject of their own
//! and are held back with `nak` and a delay until they are due; failed items go to a second stream.
//! [`guide::nats`](crate::guide::nats) gives the layout and its reasons.
//!
//! The TTR of an item is kept by this transport: it sends `in_progress` while the item is
//! reserved and hands the item back (`nak`) when its TTR runs out, so a TTR may be shorter
//! or longer than the consumers' AckWait. AckWait (`ack_wait=`, 30 s by default) is how
//! soon the server hands out again what a dead process held.
//!
//! Nothing waits on a network that is gone: while the client is not connected, every
//! operation fails at once with [`Error::Unreachable`](crate::Error::Unreachable) (see
//! `link`), and the client reconnects by itself. Handled items that a restarted server
//! brought back below a consumer's ack floor are removed (see `residue`).
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! let bus = mq::Bus::connect("nats://10.0.0.1:4222,10.0.0.2:4222?replicas=3").await?;
//! # Ok(()) }
//! ```

mod account;
mod errors;
mod failed;
mod layout;
mod lease;
mod link;
mod residue;
mod url;
mod views;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream};
use async_nats::{HeaderMap, Subject};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{
    Capabilities, Failure, FailureStore, Job, KeepAlive, Priorities, PutOptions, QueueStats,
    Transport,
};
use crate::Result;
use errors::{nats, nats_by, nats_error, refused};
use layout::{Settings, Slot};
use lease::{reap, Held};
use link::Link;
use url::NatsUrl;

/// How often a waiting `reserve` looks again, and how often held items are checked.
const POLL: Duration = Duration::from_millis(50);
/// The longest a single JetStream request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most delayed items looked at in one go.
const DELAYED_BATCH: usize = 256;
/// The most publishes of a batch dispatch awaiting their acks at once (the client allows
/// 5,000 pending, over all tasks, and makes a publish past them wait).
const PUBLISH_CHUNK: usize = 256;

/// A NATS JetStream transport.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::nats::NatsTransport;
/// use mq::transport::{PutOptions, Transport};
///
/// let queue = NatsTransport::connect("nats://10.0.0.1:4222,10.0.0.2:4222?replicas=3").await?;
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsTransport {
    shared: Arc<Shared>,
    reaper: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    url: String,
    client: async_nats::Client,
    js: jetstream::Context,
    settings: Settings,
    max_payload: usize,
    stream: OnceCell<Stream>,
    failed: OnceCell<Stream>,
    consumers: tokio::sync::Mutex<HashMap<String, PullConsumer>>,
    /// Items this process holds, by stream sequence.
    held: Mutex<HashMap<u64, Held>>,
    /// One batch chunk publishes at a time: a chunk holds a permit of the client's
    /// pending-ack limit per item until it awaits them, so two chunks filling the limit
    /// together would wait for each other for ever.
    publishing: tokio::sync::Mutex<()>,
    /// Whether the client is connected.
    link: Link,
    /// When each consumer's subject was last looked at for acked items left behind.
    sweeps: residue::Sweeps,
}

/// Opens `nats://...`.
///
/// # Errors
///
/// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a malformed URL,
/// [`Error::Unreachable`](crate::Error::Unreachable) when no server answers.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let transport = mq::transport::nats::connect("nats://127.0.0.1:4222").await?;
/// let bus = mq::Bus::new(transport);
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Transport>> {
    Ok(Arc::new(NatsTransport::connect(url).await?))
}

impl NatsTransport {
    /// Connects to the servers of `url`; streams and consumers are made on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a malformed URL or a TLS file that
    /// is not there, [`Error::Unreachable`](crate::Error::Unreachable) when no server answers
    /// or the TLS handshake fails,
    /// [`Error::Nats`](crate::Error::Nats) when the server refuses the credentials.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// use mq::transport::nats::NatsTransport;
    ///
    /// let queue = NatsTransport::connect("nats://mq:secret@127.0.0.1:4222?ack_wait=30s").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<NatsTransport> {
        let parsed = NatsUrl::parse(url, |name| std::env::var(name).ok())?;
        let hosts = parsed.hosts.as_str();
        let options = parsed
            .options(url)
            .await?
            .name("mq")
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT));
        let (options, link) = Link::watch(hosts, options);
        let client = async_nats::connect_with_options(parsed.servers.clone(), options)
            .await
            .map_err(|error| refused(&parsed, error))?;
        let max_payload = client.server_info().max_payload;
        let js = jetstream::new(client.clone());
        let shared = Arc::new(Shared {
            url: super::redacted(url),
            client,
            js,
            settings: parsed.settings,
            max_payload,
            stream: OnceCell::new(),
            failed: OnceCell::new(),
            consumers: tokio::sync::Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            publishing: tokio::sync::Mutex::new(()),
            link,
            sweeps: residue::Sweeps::default(),
        });
        let reaper = tokio::spawn(reap(Arc::downgrade(&shared)));
        Ok(NatsTransport { shared, reaper })
    }
}

impl Drop for NatsTransport {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Shared {
    /// Runs `work` unless the connection is down, and fails it as soon as the connection
    /// drops (see [`Link::bounded`]).
    async fn online<T>(&self, what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.link.bounded(&self.client, what, work).await
    }

    async fn stream(&self) -> Result<&Stream> {
        self.ensured(&self.stream, layout::work_stream).await
    }

    async fn failed_stream(&self) -> Result<&Stream> {
        self.ensured(&self.failed, layout::failed_stream).await
    }

    /// The stream in `cell`, created or checked against `config` on first use.
    async fn ensured<'a>(
        &'a self,
        cell: &'a OnceCell<Stream>,
        config: fn(&Settings) -> jetstream::stream::Config,
    ) -> Result<&'a Stream> {
        cell.get_or_try_init(|| {
            layout::ensure_stream(
                &self.js,
                config(&self.settings),
                self.settings.replicas.is_some(),
            )
        })
        .await
    }

    async fn consumer(&self, name: &str, subject: &str) -> Result<PullConsumer> {
        let mut consumers = self.consumers.lock().await;
        if let Some(consumer) = consumers.get(name) {
            return Ok(consumer.clone());
        }
        let stream = self.stream().await?;
        let consumer = layout::ensure_consumer(stream, name, subject, &self.settings).await?;
        consumers.insert(name.to_owned(), consumer.clone());
        Ok(consumer)
    }

    /// Message counts per subject of `stream` matching `filter`.
    async fn subject_counts(&self, stream: &Stream, filter: &str) -> Result<Vec<(String, u64)>> {
        let info = stream
            .info_with_subjects(filter)
            .await
            .map_err(|error| nats_by("stream info", error))?;
        info.map_ok(|(subject, count)| (subject, count as u64))
            .try_collect()
            .await
            .map_err(|error| nats_by("stream info", error))
    }

    /// Publishes and waits for the stream's acknowledgement; returns the sequence.
    async fn publish(&self, subject: String, headers: HeaderMap, body: Bytes) -> Result<u64> {
        let ack = self
            .js
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(|error| nats_by("publish", error))?;
        let ack = ack.await.map_err(|error| nats_by("publish", error))?;
        Ok(ack.sequence)
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        let (subject, headers) = self.addressed(queue, options).await?;
        self.publish(subject, headers, body).await
    }

    /// As `put`, with `Nats-Msg-Id: key`: the stream drops a second publish of the same
    /// key within its duplicate window (and acknowledges it with the first one's sequence).
    /// Only the first publish carries it: the move of a delayed item to its band and a
    /// retry publish with headers of their own, so they are never taken for duplicates.
    async fn put_keyed(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        key: &str,
    ) -> Result<u64> {
        let (subject, mut headers) = self.addressed(queue, options).await?;
        headers.insert(async_nats::header::NATS_MESSAGE_ID, key);
        self.publish(subject, headers, body).await
    }

    /// Publishes the bodies [`PUBLISH_CHUNK`] at a time, each chunk before waiting for the
    /// stream's acknowledgements of it: a round trip per chunk rather than per item.
    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        let (subject, headers) = self
            .online("publish", self.addressed(queue, options))
            .await?;
        let mut answers = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(PUBLISH_CHUNK) {
            let _turn = self.publishing.lock().await;
            let mut pending = Vec::with_capacity(chunk.len());
            for body in chunk {
                let publish = async {
                    self.js
                        .publish_with_headers(subject.clone(), headers.clone(), body.clone())
                        .await
                        .map_err(|error| nats_by("publish", error))
                };
                pending.push(self.online("publish", publish).await);
            }
            for published in pending {
                answers.push(match published {
                    Ok(ack) => {
                        let ack = async {
                            ack.await
                                .map(|ack| ack.sequence)
                                .map_err(|error| nats_by("publish", error))
                        };
                        self.online("publish", ack).await
                    }
                    Err(error) => Err(error),
                });
            }
        }
        Ok(answers)
    }

    /// The subject and headers of an item put on `queue` with `options`; makes sure the
    /// stream exists.
    async fn addressed(&self, queue: &str, options: PutOptions) -> Result<(String, HeaderMap)> {
        let token = layout::encode(queue)?;
        self.stream().await?;
        let mut headers = HeaderMap::new();
        headers.insert(layout::TTR, millis(options.ttr).to_string().as_str());
        headers.insert(layout::PRIORITY, options.priority.to_string().as_str());
        let subject = if options.delay.is_zero() {
            layout::band_subject(&token, layout::band(options.priority))
        } else {
            // Round up: never shorter than asked.
            let ms = options.delay.as_nanos().div_ceil(1_000_000);
            headers.insert(layout::DELAY, ms.to_string().as_str());
            layout::delayed_subject(&token)
        };
        Ok((subject, headers))
    }

    /// Moves the due delayed items of a queue to their band, and holds the others back
    /// with `nak` until they are due; `count` is how many the delayed subject holds.
    /// Returns the bands that received items.
    async fn move_due(&self, token: &str, count: u64) -> Result<Vec<u32>> {
        let name = layout::delayed_consumer(token);
        let subject = layout::delayed_subject(token);
        let consumer = self.consumer(&name, &subject).await?;
        let messages = fetch(&consumer, DELAYED_BATCH).await?;
        if messages.is_empty() {
            self.sweep(&name, &subject, count).await;
        }
        let mut bands = Vec::new();
        for message in messages {
            let headers = message.headers.as_ref();
            let delay = header_u64(headers, layout::DELAY).unwrap_or(0);
            let priority = header_u64(headers, layout::PRIORITY)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(crate::message::DEFAULT_PRIORITY);
            let info = message.info().map_err(nats_error)?;
            let published =
                u128::try_from(info.published.unix_timestamp_nanos()).unwrap_or_default();
            let due = published + u128::from(delay) * 1_000_000;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            if now < due {
                let wait = Duration::from_nanos(u64::try_from(due - now).unwrap_or(u64::MAX));
                message
                    .ack_with(jetstream::AckKind::Nak(Some(wait)))
                    .await
                    .map_err(nats_error)?;
                continue;
            }
            let band = layout::band(priority);
            let mut moved = HeaderMap::new();
            if let Some(ttr) = header_u64(headers, layout::TTR) {
                moved.insert(layout::TTR, ttr.to_string().as_str());
            }
            moved.insert(layout::PRIORITY, priority.to_string().as_str());
            // Publish first, then ack: a crash between leaves a duplicate, never a loss.
            self.publish(
                layout::band_subject(token, band),
                moved,
                message.payload.clone(),
            )
            .await?;
            message.ack().await.map_err(nats_error)?;
            bands.push(band);
        }
        Ok(bands)
    }

    /// One look at every queue: what is ready now, up to `max`.
    async fn poll(&self, queues: &[String], max: usize) -> Result<Vec<Job>> {
        let stream = self.stream().await?;
        let mut jobs = Vec::new();
        for queue in queues {
            if jobs.len() >= max {
                break;
            }
            let token = layout::encode(queue)?;
            let counts = self
                .subject_counts(stream, &format!("mq.{token}.>"))
                .await?;
            let mut bands = BTreeMap::new();
            let mut delayed = 0;
            for (subject, count) in counts {
                match layout::parse_subject(&subject) {
                    Some(Slot::Band(_, band)) if count > 0 => {
                        bands.insert(band, count);
                    }
                    Some(Slot::Delayed(_)) => delayed += count,
                    _ => {}
                }
            }
            if delayed > 0 {
                for band in self.move_due(&token, delayed).await? {
                    // Its count is too low now, which never mistakes an item for one left
                    // behind.
                    bands.entry(band).or_insert(0);
                }
            }
            for (band, count) in bands {
                let want = max - jobs.len();
                if want == 0 {
                    break;
                }
                let name = layout::band_consumer(&token, band);
                let subject = layout::band_subject(&token, band);
                let consumer = self.consumer(&name, &subject).await?;
                let messages = fetch(&consumer, want).await?;
                if messages.is_empty() {
                    self.sweep(&name, &subject, count).await;
                }
                for message in messages {
                    jobs.push(self.hold(queue, message)?);
                }
            }
        }
        Ok(jobs)
    }

    /// Removes acked items a restarted server brought back on `subject`, when it holds
    /// `count` items but its consumer hands out none (see `residue`); at most once a second
    /// per consumer. A failure is logged: the items stay until the next look.
    async fn sweep(&self, consumer: &str, subject: &str, count: u64) {
        if count == 0 || !self.sweeps.due(consumer) {
            return;
        }
        let swept = match self.stream().await {
            Ok(stream) => residue::sweep(stream, consumer, subject, count).await,
            Err(error) => Err(error),
        };
        if let Err(error) = swept {
            tracing::warn!(consumer, %error, "could not look for acked items left behind");
        }
    }

    async fn send(&self, reply: Subject, what: &'static [u8]) -> Result<()> {
        self.client
            .publish(reply, Bytes::from_static(what))
            .await
            .map_err(|error| nats_by("acknowledge", error))
    }
}

/// Fetches up to `max` messages without waiting for more than there are.
async fn fetch(consumer: &PullConsumer, max: usize) -> Result<Vec<jetstream::Message>> {
    let work = async {
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|error| nats_by("fetch", error))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            out.push(message.map_err(|error| nats_by("fetch", error))?);
        }
        Ok(out)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| nats("fetch: no answer from the server within 5 s"))?
}

#[async_trait]
impl Transport for NatsTransport {
    fn describe(&self) -> String {
        self.shared.url.clone()
    }

    /// Priorities below 8 exact, above in bands (a consumer per band); delays in
    /// milliseconds; the server's max_payload less room for headers; AckWait as the
    /// server's fixed lease, renewed by the transport while an item's TTR lasts.
    fn capabilities(&self) -> Capabilities {
        // Headers take a few hundred bytes of the server's payload limit.
        let limit = self.shared.max_payload.saturating_sub(1024);
        Capabilities::new()
            .with_priorities(Priorities::Banded { exact_below: 8 })
            .with_max_message_size(limit)
            .with_keep_alive(KeepAlive::Emulated {
                lease: self.shared.settings.ack_wait,
            })
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(failed::Failures(&self.shared))
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        // A name NATS cannot serve is refused whether or not the server is there.
        layout::encode(queue)?;
        let shared = &self.shared;
        shared
            .online("publish", shared.put(queue, body, options))
            .await
    }

    async fn put_keyed(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        key: &str,
    ) -> Result<u64> {
        layout::encode(queue)?;
        let shared = &self.shared;
        shared
            .online("publish", shared.put_keyed(queue, body, options, key))
            .await
    }

    async fn put_many(
        &self,
        queue: &str,
        bodies: Vec<Bytes>,
        options: PutOptions,
    ) -> Result<Vec<Result<u64>>> {
        layout::encode(queue)?;
        self.shared.put_many(queue, bodies, options).await
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        loop {
            let jobs = shared
                .online("reserve", shared.poll(queues, max.max(1)))
                .await?;
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline {
                return Ok(jobs);
            }
            tokio::time::sleep_until(deadline.min(now + POLL)).await;
        }
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        let held = self.shared.take(job)?;
        let shared = &self.shared;
        shared.online("ack", shared.send(held.reply, b"+ACK")).await
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        let shared = &self.shared;
        let held = shared.take(job)?;
        let put = shared.online("retry", shared.put(&job.queue, body, options));
        if let Err(error) = put.await {
            shared.lock_held().insert(job.id, held);
            return Err(error);
        }
        shared
            .online("retry", shared.send(held.reply, b"+ACK"))
            .await
    }

    async fn release(&self, job: &Job) -> Result<()> {
        let held = self.shared.take(job)?;
        let shared = &self.shared;
        shared
            .online("release", shared.send(held.reply, b"-NAK"))
            .await
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        let reply = self.shared.renew(job)?;
        let shared = &self.shared;
        shared
            .online("keep-alive", shared.send(reply, b"+WPI"))
            .await
    }

    async fn fail(
        &self,
        job: &Job,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        let shared = &self.shared;
        let held = shared.take(job)?;
        let store = failed::store(shared, &job.queue, body, options, &failure);
        if let Err(error) = shared.online("fail", store).await {
            shared.lock_held().insert(job.id, held);
            return Err(error);
        }
        shared
            .online("fail", shared.send(held.reply, b"+TERM"))
            .await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let shared = &self.shared;
        shared.online("stats", shared.stats()).await
    }

    async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        let shared = &self.shared;
        shared.online("server figures", shared.server_stats()).await
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        let token = layout::encode(queue)?;
        let shared = &self.shared;
        shared
            .online("browse", shared.browse(queue, &token, after, limit))
            .await
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        let token = layout::encode(queue)?;
        let shared = &self.shared;
        shared.online("peek", shared.peek(queue, &token)).await
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        let token = layout::encode(queue)?;
        let shared = &self.shared;
        shared.online("flush", shared.flush(&token)).await
    }
}
