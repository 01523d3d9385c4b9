//! `memory://`: an in-process transport for tests and examples.
//!
//! Complete (ready, reserved, delayed, priorities, leases) but not durable: everything is
//! lost when the process exits. Its failure store is the default one,
//! [`QueuedFailures`]: the records are items of its own queues. Transports of the same name are one queue
//! within a process, so a bus and a worker in one test meet on `memory://NAME`.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! let bus = mq::Bus::connect("memory://tests").await?;
//! let same = mq::transport::connect("memory://tests").await?; // the same queue
//! assert_eq!(same.describe(), bus.transport().describe());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    fold_failed_stats, Capabilities, Debounce, FailureStore, Feature, Job, Put, PutOptions,
    QueueStats, QueuedFailures, Receipt, ScheduleNote, Transport, Unique,
};
use crate::{Error, Result};

/// An in-process queue.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, PutOptions, Transport};
/// use std::time::Duration;
///
/// let queue = MemoryTransport::new();
/// queue.put("emails", "hello".into(), PutOptions::default()).await?;
/// let jobs = queue.reserve(&["emails".into()], 10, Duration::ZERO).await?;
/// queue.ack(&jobs[0]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryTransport {
    name: String,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    items: HashMap<u64, Item>,
    /// Ready items per queue, ordered by (priority, id): id order is age order.
    ready: HashMap<String, BTreeSet<(u32, u64)>>,
    /// Delayed items by (ready_at, id).
    delayed: BTreeSet<(Instant, u64)>,
    /// Reserved items by (lease end, id).
    leases: BTreeSet<(Instant, u64)>,
    /// Unique keys and who holds them.
    keys: HashMap<String, Key>,
    /// Concurrency permits per key: (token, lease end).
    permits: HashMap<String, Vec<(u64, Instant)>>,
    /// Debounce keys: the item of the burst, and when the burst began.
    bursts: HashMap<String, (u64, Instant)>,
    /// What the workers wrote down of their schedules, by name.
    schedules: BTreeMap<String, ScheduleNote>,
}

/// A unique key: the message that holds it, and the item while it is queued or running.
#[derive(Debug)]
struct Key {
    message_id: String,
    hold_after: Duration,
    /// The item holding the key; `None` once it ended, the key then held until `until`.
    item: Option<u64>,
    until: Option<Instant>,
}

/// The receipt of a reservation: the item's delivery count when it was reserved, so that
/// a reservation that ran out and was handed out again is no longer the holder's.
#[derive(Debug)]
struct Reservation(u32);

#[derive(Debug)]
struct Item {
    queue: String,
    body: Bytes,
    options: PutOptions,
    deliveries: u32,
    place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Ready,
    Delayed(Instant),
    Reserved(Instant),
}

impl MemoryTransport {
    /// A new queue of its own, shared with no one.
    ///
    /// ```
    /// use mq::transport::memory::MemoryTransport;
    ///
    /// let bus = mq::Bus::new(MemoryTransport::new());
    /// let worker = mq::Worker::builder().transport(bus.transport().clone());
    /// ```
    pub fn new() -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport::default())
    }

    /// The process-wide queue called `name` (`memory://NAME`); created on first use.
    ///
    /// ```
    /// use mq::transport::memory::MemoryTransport;
    /// use std::sync::Arc;
    ///
    /// let a = MemoryTransport::named("jobs");
    /// assert!(Arc::ptr_eq(&a, &MemoryTransport::named("jobs")));
    /// assert!(!Arc::ptr_eq(&a, &MemoryTransport::named("other")));
    /// ```
    pub fn named(name: &str) -> Arc<MemoryTransport> {
        static NAMED: OnceLock<Mutex<HashMap<String, Arc<MemoryTransport>>>> = OnceLock::new();
        let mut named = NAMED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        named
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(MemoryTransport {
                    name: name.to_owned(),
                    ..MemoryTransport::default()
                })
            })
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent: every mutation is
        // a single insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn insert(&mut self, queue: &str, body: Bytes, options: PutOptions, deliveries: u32) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let place = if options.delay.is_zero() {
            self.ready
                .entry(queue.to_owned())
                .or_default()
                .insert((options.priority, id));
            Place::Ready
        } else {
            let at = Instant::now() + options.delay;
            self.delayed.insert((at, id));
            Place::Delayed(at)
        };
        self.items.insert(
            id,
            Item {
                queue: queue.to_owned(),
                body,
                options,
                deliveries,
                place,
            },
        );
        id
    }

    /// Moves delayed items whose time came, and reservations whose lease ran out, to ready.
    fn promote(&mut self, now: Instant) {
        let due: Vec<(Instant, u64)> = self
            .delayed
            .range(..=(now, u64::MAX))
            .copied()
            .chain(self.leases.range(..=(now, u64::MAX)).copied())
            .collect();
        for (at, id) in due {
            self.delayed.remove(&(at, id));
            self.leases.remove(&(at, id));
            self.make_ready(id);
        }
    }

    fn make_ready(&mut self, id: u64) {
        if let Some(item) = self.items.get_mut(&id) {
            item.place = Place::Ready;
            self.ready
                .entry(item.queue.clone())
                .or_default()
                .insert((item.options.priority, id));
        }
    }

    /// The lease end of `job`'s reservation, if it is still the current one: the item is
    /// reserved, and not reserved again since (its delivery count is the receipt's).
    fn lease_of(&self, job: &Job) -> Result<Instant> {
        let Reservation(reserved) = job.token()?;
        match self.items.get(&job.id) {
            Some(Item {
                place: Place::Reserved(until),
                deliveries,
                ..
            }) if deliveries == reserved => Ok(*until),
            _ => Err(Error::ReservationLost(job.id)),
        }
    }

    /// Removes a reserved item, or says its reservation is gone; a unique key it held is
    /// freed (or kept for its `hold_after`) unless `replacement` takes it over.
    fn take_reserved(&mut self, job: &Job, replacement: Option<u64>) -> Result<Item> {
        let until = self.lease_of(job)?;
        self.leases.remove(&(until, job.id));
        let item = self
            .items
            .remove(&job.id)
            .ok_or(Error::ReservationLost(job.id))?;
        self.item_ended(job.id, replacement);
        Ok(item)
    }

    /// The item `id` is gone: its unique key passes to `replacement`, or is held for its
    /// `hold_after` from now, or freed.
    fn item_ended(&mut self, id: u64, replacement: Option<u64>) {
        if self.keys.is_empty() {
            return;
        }
        let now = Instant::now();
        self.keys.retain(|_, key| {
            if key.item != Some(id) {
                return true;
            }
            key.item = replacement;
            if replacement.is_none() {
                key.until = Some(now + key.hold_after);
            }
            replacement.is_some() || !key.hold_after.is_zero()
        });
    }

    /// Replaces the body of the burst's waiting item and moves it later, or puts a new one.
    fn debounce(
        &mut self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        debounce: &Debounce,
    ) -> u64 {
        let now = Instant::now();
        if let Some(&(id, began)) = self.bursts.get(&debounce.key) {
            if let Some(item) = self.items.get_mut(&id) {
                if let Place::Delayed(at) = item.place {
                    if at > now {
                        let due = (now + debounce.quiet).min(began + debounce.max_wait);
                        self.delayed.remove(&(at, id));
                        self.delayed.insert((due, id));
                        item.place = Place::Delayed(due);
                        item.body = body;
                        return id;
                    }
                }
            }
        }
        // Bursts that ended (their item no longer waiting) are forgotten.
        let items = &self.items;
        self.bursts.retain(|_, (id, _)| {
            items
                .get(id)
                .is_some_and(|item| matches!(item.place, Place::Delayed(at) if at > now))
        });
        let id = self.insert(queue, body, options.with_delay(debounce.first_delay()), 0);
        self.bursts.insert(debounce.key.clone(), (id, now));
        id
    }

    /// Puts `body` unless `unique.key` is held; the key then names the new item.
    fn insert_unique(
        &mut self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Put {
        let now = Instant::now();
        if let Some(held) = self.keys.get(&unique.key) {
            if held.item.is_some() || held.until.is_some_and(|until| until > now) {
                return Put::Existing(held.message_id.clone());
            }
        }
        let id = self.insert(queue, body, options, 0);
        let key = Key {
            message_id: unique.message_id.clone(),
            hold_after: unique.hold_after,
            item: Some(id),
            until: None,
        };
        self.keys.insert(unique.key.clone(), key);
        Put::Queued(id)
    }

    fn next_wake(&self) -> Option<Instant> {
        let delayed = self.delayed.first().map(|(at, _)| *at);
        let lease = self.leases.first().map(|(at, _)| *at);
        delayed.into_iter().chain(lease).min()
    }

    fn reserve(&mut self, queues: &[String], max: usize) -> Vec<Job> {
        let now = Instant::now();
        self.promote(now);
        let mut jobs = Vec::new();
        for queue in queues {
            let Some(ready) = self.ready.get_mut(queue) else {
                continue;
            };
            while jobs.len() < max {
                let Some((_, id)) = ready.pop_first() else {
                    break;
                };
                let Some(item) = self.items.get_mut(&id) else {
                    continue;
                };
                let until = now + item.options.ttr;
                item.place = Place::Reserved(until);
                item.deliveries += 1;
                self.leases.insert((until, id));
                let job = Job::new(id, queue.clone(), item.body.clone(), item.deliveries);
                jobs.push(job.with_receipt(Receipt::new(Reservation(item.deliveries))));
            }
        }
        jobs
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_delays(Duration::from_nanos(1), None)
            .with_feature(Feature::Unique)
            .with_feature(Feature::KeyLimits)
            .with_feature(Feature::Debounce)
    }

    fn failure_store(&self) -> Box<dyn FailureStore + '_> {
        Box::new(QueuedFailures::new(self))
    }

    async fn put(&self, queue: &str, body: Bytes, options: PutOptions) -> Result<u64> {
        let id = self.lock().insert(queue, body, options, 0);
        self.changed.notify_waiters();
        Ok(id)
    }

    async fn put_unique(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        unique: &Unique,
    ) -> Result<Put> {
        let put = self.lock().insert_unique(queue, body, options, unique);
        if matches!(put, Put::Queued(_)) {
            self.changed.notify_waiters();
        }
        Ok(put)
    }

    async fn put_debounced(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        debounce: &Debounce,
    ) -> Result<Put> {
        let id = self.lock().debounce(queue, body, options, debounce);
        self.changed.notify_waiters();
        Ok(Put::Queued(id))
    }

    async fn acquire_permit(&self, key: &str, limit: u32, lease: Duration) -> Result<Option<u64>> {
        let mut state = self.lock();
        let now = Instant::now();
        state.next_id += 1;
        let token = state.next_id;
        let permits = state.permits.entry(key.to_owned()).or_default();
        permits.retain(|(_, until)| *until > now);
        if permits.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(None);
        }
        permits.push((token, now + lease));
        Ok(Some(token))
    }

    async fn release_permit(&self, key: &str, token: u64) -> Result<()> {
        let mut state = self.lock();
        if let Some(permits) = state.permits.get_mut(key) {
            permits.retain(|(held, _)| *held != token);
            if permits.is_empty() {
                state.permits.remove(key);
            }
        }
        Ok(())
    }

    async fn note_schedule(&self, note: &ScheduleNote) -> Result<()> {
        let mut state = self.lock();
        let last = state.schedules.get(&note.name).and_then(|old| old.last);
        let note = note
            .clone()
            .last(note.last.or(last))
            .seen(std::time::SystemTime::now());
        state.schedules.insert(note.name.clone(), note);
        Ok(())
    }

    async fn schedule_notes(&self) -> Result<Vec<ScheduleNote>> {
        Ok(self.lock().schedules.values().cloned().collect())
    }

    async fn renew_permit(&self, key: &str, token: u64, lease: Duration) -> Result<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let permit = state.permits.get_mut(key).and_then(|permits| {
            permits
                .iter_mut()
                .find(|(held, until)| *held == token && *until > now)
        });
        Ok(permit.map(|(_, until)| *until = now + lease).is_some())
    }

    async fn reserve(&self, queues: &[String], max: usize, timeout: Duration) -> Result<Vec<Job>> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake = {
                let mut state = self.lock();
                let jobs = state.reserve(queues, max.max(1));
                if !jobs.is_empty() {
                    return Ok(jobs);
                }
                state.next_wake().map_or(deadline, |at| at.min(deadline))
            };
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, job: &Job) -> Result<()> {
        self.lock().take_reserved(job, None).map(drop)
    }

    async fn retry(&self, job: &Job, body: Bytes, options: PutOptions) -> Result<()> {
        {
            let mut state = self.lock();
            state.lease_of(job)?;
            let deliveries = state.items.get(&job.id).map_or(0, |item| item.deliveries);
            let new = state.insert(&job.queue, body, options, deliveries);
            state.take_reserved(job, Some(new))?;
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn release(&self, job: &Job) -> Result<()> {
        {
            let mut state = self.lock();
            let until = state.lease_of(job)?;
            state.leases.remove(&(until, job.id));
            state.make_ready(job.id);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn keep_alive(&self, job: &Job) -> Result<()> {
        let mut state = self.lock();
        let state = &mut *state;
        let until = state.lease_of(job)?;
        let Some(item) = state.items.get_mut(&job.id) else {
            return Err(Error::ReservationLost(job.id));
        };
        let renewed = Instant::now() + item.options.ttr;
        state.leases.remove(&(until, job.id));
        state.leases.insert((renewed, job.id));
        item.place = Place::Reserved(renewed);
        Ok(())
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let state = self.lock();
        let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
        for item in state.items.values() {
            let counts = out.entry(item.queue.clone()).or_insert_with(|| QueueStats {
                queue: item.queue.clone(),
                ..QueueStats::default()
            });
            match item.place {
                Place::Ready => counts.ready += 1,
                Place::Delayed(_) => counts.delayed += 1,
                Place::Reserved(_) => counts.reserved += 1,
            }
        }
        Ok(fold_failed_stats(out.into_values().collect()))
    }

    async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        let mut state = self.lock();
        state.promote(Instant::now());
        let Some(&(_, id)) = state.ready.get(queue).and_then(|ready| ready.first()) else {
            return Ok(None);
        };
        Ok(state
            .items
            .get(&id)
            .map(|item| Job::new(id, queue, item.body.clone(), item.deliveries)))
    }

    async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        let state = self.lock();
        let mut jobs: Vec<Job> = state
            .items
            .iter()
            .filter(|(&id, item)| id > after && item.queue == queue)
            .map(|(&id, item)| Job::new(id, queue, item.body.clone(), item.deliveries))
            .collect();
        jobs.sort_unstable_by_key(|job| job.id);
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn flush(&self, queue: &str) -> Result<u64> {
        let mut state = self.lock();
        let doomed: Vec<(u64, Place)> = state
            .items
            .iter()
            .filter(|(_, item)| item.queue == queue && !matches!(item.place, Place::Reserved(_)))
            .map(|(id, item)| (*id, item.place))
            .collect();
        for (id, place) in &doomed {
            if let Place::Delayed(at) = place {
                state.delayed.remove(&(*at, *id));
            }
            state.items.remove(id);
            state.item_ended(*id, None);
        }
        state.ready.remove(queue);
        Ok(doomed.len() as u64)
    }
}
