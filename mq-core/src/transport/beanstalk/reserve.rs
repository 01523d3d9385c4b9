//! The reservation engine: the consuming connection, taking ready jobs, the blocking
//! reserve that may stay parked for the next call, and handing back what nobody claimed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::connection::Connection;
use super::proto::{parse_yaml_map, Command, Response};
use super::{unexpected, Inner, MAX_CHUNK};
use crate::id_map::IdSet;
use crate::transport::{Job, Receipt};
use crate::{Error, Result};

/// A blocking `reserve-with-timeout` that may outlive the `reserve` call that sent it
/// (beanstalkd counts its timeout in whole seconds; the caller may have asked for less).
/// The next `reserve` claims its result; one nobody claims within [`UNCLAIMED`] is
/// handed back, so that a worker that stopped reserving holds nothing.
#[derive(Debug, Default)]
pub(super) struct Parked {
    result: Mutex<Option<Result<Woken>>>,
    done: tokio::sync::Notify,
}

#[derive(Debug)]
pub(super) enum Woken {
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

/// How long a poll waits between two `reserve-with-timeout 0` while jobs are held.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// How long a job reserved by a parked reserve waits for a `reserve` call to claim it.
const UNCLAIMED: Duration = Duration::from_millis(250);

/// The receipt of a reservation: the connection that holds it (beanstalkd ends a
/// reservation with its connection).
#[derive(Debug)]
pub(super) struct Reservation(pub(super) Arc<Connection>);

#[derive(Debug, Default)]
pub(super) struct Consumer {
    pub(super) connection: Option<Arc<Connection>>,
    /// The tubes the consuming connection watches.
    pub(super) watching: Vec<String>,
    /// Jobs reserved through `connection` and not yet acked, retried, released or failed.
    pub(super) held: IdSet,
}

impl Inner {
    pub(super) fn consumer(&self) -> MutexGuard<'_, Consumer> {
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

    /// A command on the reservation of `id`; `Unreachable` and `NOT_FOUND` mean the
    /// reservation is gone. Forgets the reservation unless `keep` says to keep it.
    pub(super) async fn on_reserved(
        &self,
        job: &Job,
        command: Command<'_>,
        keep: bool,
    ) -> Result<Response> {
        let id = job.id;
        let connection = self.holder(job)?;
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
            let Some(connection) = consumer.connection.clone() else {
                return Err(Error::Closed);
            };
            for reply in replies {
                match reply {
                    Response::Reserved { id, body } => {
                        consumer.held.insert(id);
                        let receipt = Receipt::new(Reservation(connection.clone()));
                        jobs.push(Job::new(id, queue, body, 0).with_receipt(receipt));
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
    pub(super) async fn reserve(
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
    pub(super) async fn hand_back(&self, jobs: Vec<Job>) {
        for job in jobs {
            if let Err(error) = self.release(&job).await {
                tracing::warn!(item = job.id, %error, "could not hand back an item of a cancelled reserve; it returns after its TTR");
            }
        }
    }

    pub(super) async fn release(&self, job: &Job) -> Result<()> {
        let connection = self.holder(job)?;
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
        match self.on_reserved(job, release, false).await? {
            Response::Released => Ok(()),
            other => Err(unexpected("release", &other)),
        }
    }
}
