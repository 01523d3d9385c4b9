//! The thread that owns the file's write connection.
//!
//! Every operation is a [`Command`] sent over a channel. The thread takes whatever queued up
//! (up to [`MAX_BATCH`]), runs it all inside one `BEGIN IMMEDIATE` transaction, commits once
//! (group commit) and only then answers each caller through its oneshot channel, so nobody
//! hears "done" before the data is in the file. A caller's runtime thread never waits on
//! SQLite, and a thousand concurrent `put`s cost one commit, not a thousand.
//!
//! If the batch fails (a full disk, say), it is rolled back and every operation runs again in
//! a transaction of its own, so only the operations that really fail get the error; a lock
//! held by another connection past the busy timeout fails the whole batch at once instead.
//!
//! A dispatch that finds the writer idle (no other put in progress, nothing queued, the
//! connection free), in a task on a thread of a multi-threaded tokio runtime, runs its put
//! itself instead, under [`tokio::task::block_in_place`], in the same kind of transaction:
//! one awaited dispatch then costs its transaction and no hand-off between threads. The
//! runtime moves the thread's other tasks to another thread meanwhile, so a busy timeout
//! stalls only the caller. Everywhere else the put goes to the thread (see
//! [`may_block_here`]), and so do concurrent puts, which share its commits; and, for a
//! while after a transaction found the file locked by another process, every put, so that
//! waiting the lock out is done once for all of them.
//!
//! The thread also wakes idle reservers: at once after a commit that made something ready
//! (a put, a release, a retry), and for commits by other processes by reading
//! `PRAGMA data_version` every poll interval while somebody waits. A second after its last
//! write, with nothing more to do, it checkpoints the WAL into the file and truncates it,
//! giving its room back to the file system. It exits when the last
//! handle is dropped.

mod core;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};
use std::{fmt, mem, slice};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{oneshot, Notify};

use self::core::{Core, Executed};
use super::ops::{self, Db, Outcome, Reserved};
use super::room::Room;
use super::{open, SqliteOptions};
use crate::{Error, Result};

/// The most operations committed in one transaction.
const MAX_BATCH: usize = 1024;

/// How long after its last write a connection that has nothing more to do shrinks the WAL.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// A reservation to hand back: its row id and its token (the deliveries count).
type Lease = (u64, u32);

/// State shared by the writer thread and the async side.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Woken when a message may have become ready.
    pub(super) notify: Notify,
    /// How many `reserve` calls are in progress; the thread polls for other processes'
    /// commits only while this is not zero.
    waiters: AtomicUsize,
    /// How many commands were sent that the thread has not carried out yet; a caller runs
    /// its put itself only while this is zero.
    queued: AtomicUsize,
    /// When the connection last wrote, until the WAL was shrunk after it.
    wrote: Mutex<Option<Instant>>,
    /// How many [`Writer::put`]s are in progress; a caller runs its put itself only if it
    /// is the only one.
    calling: AtomicUsize,
}

/// Counts a call in one of [`Shared`]'s counters while it lives: a `reserve` in
/// [`Shared::waiters`] ([`Counted::waiting`]), a put in [`Shared::calling`].
#[derive(Debug)]
pub(super) struct Counted<'a> {
    counter: &'a AtomicUsize,
    /// How many calls the counter held when this one began.
    before: usize,
}

impl Shared {
    fn wrote(&self) -> MutexGuard<'_, Option<Instant>> {
        // Each critical section is one read or one write of the time.
        self.wrote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a batch's outcome: wakes reservers if a message became ready; true if this
    /// write is the first since the WAL was last shrunk.
    fn executed(&self, executed: Executed) -> bool {
        if executed.woke {
            self.notify.notify_waiters();
        }
        executed.wrote && self.wrote().replace(Instant::now()).is_none()
    }
}

impl<'a> Counted<'a> {
    fn enter(counter: &'a AtomicUsize) -> Counted<'a> {
        let before = counter.fetch_add(1, Ordering::SeqCst);
        Counted { counter, before }
    }

    /// A `reserve` call, while the thread is to poll for other processes' commits.
    pub(super) fn waiting(shared: &'a Shared) -> Counted<'a> {
        Counted::enter(&shared.waiters)
    }

    /// A put, alone if no other was in progress when it began.
    fn calling(shared: &'a Shared) -> Counted<'a> {
        Counted::enter(&shared.calling)
    }

    fn alone(&self) -> bool {
        self.before == 0
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One operation waiting for the writer, type-erased.
trait Pending: Send {
    /// Runs the operation inside the current transaction and keeps its answer.
    fn run(&mut self, db: &Db<'_>) -> rusqlite::Result<()>;
    /// Forgets the answer of a run that was rolled back.
    fn reset(&mut self);
    /// Answers with an error instead.
    fn fault(&mut self, error: Error);
    /// Sends the answer; an answer nobody waits for any more that holds reservations puts
    /// them in `orphans`, to be handed back.
    fn reply(self: Box<Self>, orphans: &mut Vec<Lease>);
}

struct Op<T, F> {
    run: F,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    orphan: fn(T, &mut Vec<Lease>),
}

impl<T, F> Pending for Op<T, F>
where
    T: Send + 'static,
    F: FnMut(&Db<'_>) -> Outcome<T> + Send + 'static,
{
    fn run(&mut self, db: &Db<'_>) -> rusqlite::Result<()> {
        self.out = Some((self.run)(db)?);
        Ok(())
    }

    fn reset(&mut self) {
        self.out = None;
    }

    fn fault(&mut self, error: Error) {
        self.out = Some(Err(error));
    }

    fn reply(self: Box<Self>, orphans: &mut Vec<Lease>) {
        let out = self.out.unwrap_or(Err(Error::Closed));
        if let Err(Ok(unwanted)) = self.reply.send(out) {
            (self.orphan)(unwanted, orphans);
        }
    }
}

/// An operation for the writer thread, or none: a nudge to look at the time again (a caller
/// wrote, so the WAL will need shrinking).
pub(super) struct Command(Option<Box<dyn Pending>>);

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Command")
    }
}

impl Command {
    fn new<T, F>(run: F, orphan: fn(T, &mut Vec<Lease>)) -> (Command, oneshot::Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnMut(&Db<'_>) -> Outcome<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            run,
            out: None,
            reply,
            orphan,
        };
        (Command(Some(Box::new(op))), answer)
    }
}

fn ignore<T>(_: T, _: &mut Vec<Lease>) {}

fn hand_back(reserved: Reserved, orphans: &mut Vec<Lease>) {
    orphans.extend(
        reserved
            .jobs
            .iter()
            .filter_map(|job| Some((job.id, ops::token(job).ok()?))),
    );
}

/// The async side's handle on the writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    core: Arc<Mutex<Core>>,
}

impl Writer {
    /// Starts the thread, which opens the file; returns once it is open and up to date.
    pub(super) async fn start(path: std::path::PathBuf, options: SqliteOptions) -> Result<Writer> {
        let (commands, inbox) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let (ready, opened) = oneshot::channel();
        let thread_shared = shared.clone();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("mq-sqlite-writer".into())
            .spawn(move || match open::connection(&thread_path, &options) {
                Ok(conn) => {
                    let core = Core {
                        room: Room::new(&thread_path, options.max_size),
                        conn,
                        path: thread_path,
                        busy_timeout: options.busy_timeout,
                        locked_out: None,
                    };
                    // Read before the first caller can take the connection.
                    let seen = core.data_version();
                    let core = Arc::new(Mutex::new(core));
                    if ready.send(Ok(core.clone())).is_ok() {
                        Thread {
                            core,
                            inbox,
                            shared: thread_shared,
                            poll: options.poll_interval,
                        }
                        .run(seen);
                    }
                }
                Err(error) => {
                    // Nobody to tell if the opener went away.
                    let _ = ready.send(Err(error));
                }
            })
            .map_err(|error| Error::Sqlite {
                path: path.clone(),
                detail: format!("cannot start the writer thread: {error}"),
                source: Some(Box::new(error)),
            })?;
        let core = opened.await.map_err(|_| stopped(&path))??;
        Ok(Writer {
            commands,
            shared,
            core,
        })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Runs `run` in the writer thread's next transaction and returns its answer once
    /// committed.
    pub(super) async fn call<T, F>(&self, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Db<'_>) -> Outcome<T> + Send + 'static,
    {
        let (command, answer) = Command::new(run, ignore);
        self.push(command)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Like [`call`](Writer::call), for the puts a dispatch awaits: on the caller's thread if
    /// no other put is in progress, the writer is idle and the runtime can spare the thread.
    /// The worker's calls (acks, retries) stay on the writer thread, where the concurrent
    /// ones of a busy worker share commits.
    pub(super) async fn put<T, F>(&self, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Db<'_>) -> Outcome<T> + Send + 'static,
    {
        // Concurrent puts go to the thread, and share its commits.
        let calling = Counted::calling(&self.shared);
        let (command, answer) = Command::new(run, ignore);
        let command = if calling.alone() {
            self.run_here(command)
        } else {
            Some(command)
        };
        if let Some(command) = command {
            self.push(command)?;
        }
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The connection, for a put on this thread: if nothing is queued for the writer, the
    /// connection is free and not lately found locked, and [`may_block_here`].
    fn idle_core(&self) -> Option<MutexGuard<'_, Core>> {
        if self.shared.queued.load(Ordering::SeqCst) > 0 || !may_block_here() {
            return None;
        }
        let core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        (!core.contended()).then_some(core)
    }

    /// Runs the command's operation on this thread if there is an [`idle_core`]; gives the
    /// command back otherwise. Its answer is sent as the writer thread would send it.
    ///
    /// [`idle_core`]: Writer::idle_core
    fn run_here(&self, command: Command) -> Option<Command> {
        let Some(mut core) = self.idle_core() else {
            return Some(command);
        };
        let mut op = command.0?;
        let executed = tokio::task::block_in_place(|| core.execute(slice::from_mut(&mut op)));
        drop(core);
        let nudge = self.shared.executed(executed);
        // Only reservations leave orphans, and they never come here.
        op.reply(&mut Vec::new());
        if nudge {
            // If the thread is gone, so is the WAL's shrinking: nothing to tell.
            let _ = self.push(Command(None));
        }
        None
    }

    /// Queues a command for the writer thread.
    fn push(&self, command: Command) -> Result<()> {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.commands.send(command).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            Error::Closed
        })
    }

    /// Like [`call`](Writer::call) for a reservation: if the caller stops waiting (its
    /// future is dropped), the reserved rows are handed back at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never loses what was reserved: rows reserved after the drop are
    /// handed back by the writer thread (the answer cannot be sent), rows whose answer
    /// already arrived are handed back by the drop.
    pub(super) async fn reserve<F>(&self, run: F) -> Result<Reserved>
    where
        F: FnMut(&Db<'_>) -> Outcome<Reserved> + Send + 'static,
    {
        let (command, answer) = Command::new(run, hand_back);
        self.push(command)?;
        let mut pending = HandBack {
            answer: Some(answer),
            writer: self,
        };
        let answer = pending.answer.as_mut().ok_or(Error::Closed)?;
        let result = answer.await;
        pending.answer = None;
        result.map_err(|_| Error::Closed)?
    }
}

/// The names tokio gives the threads of a multi-threaded runtime (its workers, and the
/// blocking threads that take a worker's place) unless the application names them: today's,
/// and that of older tokio versions.
const WORKER_THREAD_NAMES: [&str; 2] = ["tokio-rt-worker", "tokio-runtime-worker"];

/// Whether [`block_in_place`](tokio::task::block_in_place) can run here, and hand the
/// thread's other tasks to another thread: in a task of a multi-threaded runtime, on one of
/// its threads. Elsewhere it panics (a current-thread runtime, a `LocalSet`, whose tasks run
/// on the thread of its `block_on`) or blocks the tasks joined with the caller (the future
/// of a `block_on`); tokio does not say which, so a thread is only trusted under the name
/// tokio gives its workers. A runtime whose threads are named otherwise keeps every put on
/// the writer thread.
fn may_block_here() -> bool {
    tokio::task::try_id().is_some()
        && std::thread::current()
            .name()
            .is_some_and(|name| WORKER_THREAD_NAMES.contains(&name))
        && Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// The answer of a reservation while it is awaited; hands its rows back if dropped early.
struct HandBack<'a> {
    answer: Option<oneshot::Receiver<Result<Reserved>>>,
    writer: &'a Writer,
}

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        // After `close`, either the writer cannot send (and hands back itself) or the answer
        // is already here.
        answer.close();
        if let Ok(Ok(reserved)) = answer.try_recv() {
            for job in reserved.jobs {
                let Ok(deliveries) = ops::token(&job) else {
                    continue;
                };
                let id = job.id;
                let (command, _) = Command::new(move |db| ops::release(db, id, deliveries), ignore);
                // If the writer is gone, the lease runs out instead.
                let _ = self.writer.push(command);
            }
        }
    }
}

fn stopped(path: &std::path::Path) -> Error {
    Error::Sqlite {
        path: path.to_owned(),
        detail: "the writer thread stopped before opening the file".into(),
        source: None,
    }
}

struct Thread {
    core: Arc<Mutex<Core>>,
    inbox: Receiver<Command>,
    shared: Arc<Shared>,
    poll: Duration,
}

impl Thread {
    fn run(self, mut seen: Option<i64>) {
        let mut batch: Vec<Box<dyn Pending>> = Vec::new();
        let mut orphans: Vec<Lease> = Vec::new();
        let mut checked = Instant::now();
        // Commands taken from the inbox, counted in `queued` until carried out: callers
        // leave their puts to the thread meanwhile, so it never waits on them for the
        // connection.
        let mut taken = 0;
        loop {
            for (id, deliveries) in mem::take(&mut orphans) {
                let (command, _) = Command::new(move |db| ops::release(db, id, deliveries), ignore);
                batch.extend(command.0);
            }
            if batch.is_empty() {
                let polling = self.shared.waiters.load(Ordering::SeqCst) > 0;
                let wrote = *self.shared.wrote();
                let shrink = wrote.map(|at| SHRINK_AFTER.saturating_sub(at.elapsed()));
                let wait = match (polling, shrink) {
                    (true, Some(shrink)) => Some(self.poll.min(shrink)),
                    (true, None) => Some(self.poll),
                    (false, shrink) => shrink,
                };
                let next = match wait {
                    Some(wait) => match self.inbox.recv_timeout(wait) {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match self.inbox.recv() {
                        Ok(command) => Some(command),
                        Err(_) => break,
                    },
                };
                if let Some(command) = next {
                    taken += 1;
                    batch.extend(command.0);
                }
            }
            while batch.len() < MAX_BATCH {
                match self.inbox.try_recv() {
                    Ok(command) => {
                        taken += 1;
                        batch.extend(command.0);
                    }
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let executed = self.core().execute(&mut batch);
                self.shared.executed(executed);
                for op in batch.drain(..) {
                    op.reply(&mut orphans);
                }
            } else {
                let wrote = *self.shared.wrote();
                if wrote.is_some_and(|at| at.elapsed() >= SHRINK_AFTER) {
                    self.core().shrink_wal();
                    let mut last = self.shared.wrote();
                    // A put on a caller's thread meanwhile wrote again: shrink after it.
                    if *last == wrote {
                        *last = None;
                    }
                }
            }
            self.shared
                .queued
                .fetch_sub(mem::take(&mut taken), Ordering::SeqCst);
            if self.shared.waiters.load(Ordering::SeqCst) > 0 && checked.elapsed() >= self.poll {
                checked = Instant::now();
                let version = self.core().data_version();
                if version != seen {
                    seen = version;
                    self.shared.notify.notify_waiters();
                }
            }
        }
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // An operation that panicked left no transaction open: `execute` rolls back first.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
