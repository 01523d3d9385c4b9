//! The thread that owns the file's write connection.
//!
//! Every operation is a [`Command`] sent over a channel. The thread takes whatever queued up
//! (up to [`MAX_BATCH`]), runs it all inside one `BEGIN IMMEDIATE` transaction, commits once
//! (group commit) and only then answers each caller through its oneshot channel, so nobody
//! hears "done" before the data is in the file. SQLite never blocks the async runtime's
//! threads, and a thousand concurrent `put`s cost one commit, not a thousand.
//!
//! If the batch fails (a full disk, say), it is rolled back and every operation runs again in
//! a transaction of its own, so only the operations that really fail get the error; a lock
//! held by another connection past the busy timeout fails the whole batch at once instead.
//!
//! The thread also wakes idle reservers: at once after a commit that made something ready
//! (a put, a release, a retry), and for commits by other processes by reading
//! `PRAGMA data_version` every poll interval while somebody waits. A second after its last
//! write, with nothing more to do, it checkpoints the WAL into the file and truncates it,
//! giving its room back to the file system. It exits when the last
//! handle is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{fmt, mem, slice};

use rusqlite::Connection;
use tokio::sync::{oneshot, Notify};

use super::ops::{self, Db, Outcome, Reserved};
use super::room::Room;
use super::{busy, open, SqliteOptions};
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
}

/// Counts a `reserve` call in [`Shared::waiters`] while it lives.
#[derive(Debug)]
pub(super) struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    pub(super) fn new(shared: &'a Shared) -> Waiting<'a> {
        shared.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
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

/// An operation for the writer thread.
pub(super) struct Command(Box<dyn Pending>);

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
        (Command(Box::new(op)), answer)
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
                    if ready.send(Ok(())).is_ok() {
                        Thread {
                            room: Room::new(&thread_path, options.max_size),
                            conn,
                            inbox,
                            shared: thread_shared,
                            path: thread_path,
                            poll: options.poll_interval,
                            busy_timeout: options.busy_timeout,
                        }
                        .run();
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
        opened.await.map_err(|_| stopped(&path))??;
        Ok(Writer { commands, shared })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Runs `run` in the writer's next transaction and returns its answer once committed.
    pub(super) async fn call<T, F>(&self, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Db<'_>) -> Outcome<T> + Send + 'static,
    {
        self.send(Command::new(run, ignore)).await
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
        self.commands.send(command).map_err(|_| Error::Closed)?;
        let mut pending = HandBack {
            answer: Some(answer),
            commands: &self.commands,
        };
        let answer = pending.answer.as_mut().ok_or(Error::Closed)?;
        let result = answer.await;
        pending.answer = None;
        result.map_err(|_| Error::Closed)?
    }

    async fn send<T>(
        &self,
        (command, answer): (Command, oneshot::Receiver<Result<T>>),
    ) -> Result<T> {
        self.commands.send(command).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// The answer of a reservation while it is awaited; hands its rows back if dropped early.
struct HandBack<'a> {
    answer: Option<oneshot::Receiver<Result<Reserved>>>,
    commands: &'a Sender<Command>,
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
                let _ = self.commands.send(command);
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
    conn: Connection,
    room: Room,
    inbox: Receiver<Command>,
    shared: Arc<Shared>,
    path: std::path::PathBuf,
    poll: Duration,
    busy_timeout: Duration,
}

impl Thread {
    fn run(self) {
        let mut batch: Vec<Box<dyn Pending>> = Vec::new();
        let mut orphans: Vec<Lease> = Vec::new();
        let mut seen = self.data_version();
        let mut checked = Instant::now();
        // When this connection last wrote, until the WAL was shrunk after it.
        let mut wrote: Option<Instant> = None;
        loop {
            for (id, deliveries) in mem::take(&mut orphans) {
                let (command, _) = Command::new(move |db| ops::release(db, id, deliveries), ignore);
                batch.push(command.0);
            }
            if batch.is_empty() {
                let polling = self.shared.waiters.load(Ordering::SeqCst) > 0;
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
                batch.extend(next.map(|command| command.0));
            }
            while batch.len() < MAX_BATCH {
                match self.inbox.try_recv() {
                    Ok(command) => batch.push(command.0),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let changes = self.conn.total_changes();
                self.execute(&mut batch);
                if self.conn.total_changes() != changes {
                    wrote = Some(Instant::now());
                }
                for op in batch.drain(..) {
                    op.reply(&mut orphans);
                }
            } else if wrote.is_some_and(|at| at.elapsed() >= SHRINK_AFTER) {
                wrote = None;
                self.shrink_wal();
            }
            if self.shared.waiters.load(Ordering::SeqCst) > 0 && checked.elapsed() >= self.poll {
                checked = Instant::now();
                let version = self.data_version();
                if version != seen {
                    seen = version;
                    self.shared.notify.notify_waiters();
                }
            }
        }
    }

    /// Copies the WAL into the file and truncates it, giving its room back to the file
    /// system (SQLite otherwise keeps the WAL at its largest size). Never waits: if another
    /// connection reads or writes, the WAL stays as it is until this one writes and rests
    /// again.
    fn shrink_wal(&self) {
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
        if let Err(error) = self.conn.busy_timeout(self.busy_timeout) {
            tracing::warn!(path = %self.path.display(), %error, "sqlite busy timeout not restored");
        }
        tracing::debug!(path = %self.path.display(), ?done, "sqlite wal checkpoint (truncate)");
    }

    /// Changes whenever another connection (another process) commits to the file.
    fn data_version(&self) -> Option<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .ok()
    }

    fn execute(&self, batch: &mut [Box<dyn Pending>]) {
        let woke = match self.transaction(batch) {
            Ok(woke) => woke,
            // A lock held past the busy timeout is no operation's doing: running each again
            // on its own would wait the busy timeout once per operation.
            Err(error) if batch.len() == 1 || busy::is_busy(&error) => {
                self.rollback();
                let failure = open::error(&self.path, error);
                for op in batch.iter_mut() {
                    op.fault(self.copy(&failure));
                }
                false
            }
            Err(_) => {
                self.rollback();
                let mut woke = false;
                for op in batch.iter_mut() {
                    op.reset();
                    match self.transaction(slice::from_mut(op)) {
                        Ok(one) => woke |= one,
                        Err(error) => {
                            self.rollback();
                            op.fault(open::error(&self.path, error));
                        }
                    }
                }
                woke
            }
        };
        if woke {
            self.shared.notify.notify_waiters();
        }
    }

    /// The same fault again, for each operation of a failed batch.
    fn copy(&self, failure: &Error) -> Error {
        let (detail, source) = match failure {
            Error::Sqlite { detail, source, .. } => {
                let sqlite = source
                    .as_ref()
                    .and_then(|source| source.downcast_ref::<rusqlite::Error>())
                    .map(|error| -> crate::Cause { Box::new(open::same_sqlite_error(error)) });
                (detail.clone(), sqlite)
            }
            other => (other.to_string(), None),
        };
        Error::Sqlite {
            path: self.path.clone(),
            detail,
            source,
        }
    }

    /// Runs `ops` in one transaction; true if one of them made a message ready.
    fn transaction(&self, ops: &mut [Box<dyn Pending>]) -> rusqlite::Result<bool> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let db = Db::new(&self.conn, &self.room);
        for op in ops.iter_mut() {
            op.run(&db)?;
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(db.woke.get())
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(path = %self.path.display(), %error, "sqlite rollback failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::transport::sqlite::{SqliteOptions, SqliteTransport};
    use crate::transport::{PutOptions, Transport};

    /// A batch that finds the file locked past the busy timeout fails as a whole: each of
    /// its operations is not run again on its own, which would wait the busy timeout once
    /// per operation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_finds_the_file_locked_fails_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mq.db");
        let timeout = Duration::from_millis(200);
        let queue =
            SqliteTransport::open_with(&path, SqliteOptions::default().busy_timeout(timeout))
                .await
                .unwrap();
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ops = 32;
        let start = Instant::now();
        let puts = (0..ops).map(|n| {
            let queue = &queue;
            async move {
                queue
                    .put("q", format!("{n}").into(), PutOptions::default())
                    .await
            }
        });
        let results = futures_util::future::join_all(puts).await;
        let took = start.elapsed();
        holder.execute_batch("ROLLBACK").unwrap();
        for result in &results {
            let error = result.as_ref().unwrap_err().to_string();
            assert!(error.contains("lock"), "{error}");
        }
        // One busy timeout per batch (the first put may be a batch of its own: 2 of them),
        // never one per operation (32: 6.4 s); the margin is for a loaded machine.
        assert!(took < timeout * 16, "{ops} puts took {took:?} to fail");
        queue
            .put("q", "after".into(), PutOptions::default())
            .await
            .unwrap();
    }
}
