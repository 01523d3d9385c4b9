//! The writer against a file another connection locks, and where each call runs.

use std::time::{Duration, Instant};

use std::sync::Arc;

use super::super::ops;
use super::{Counted, Shared, Writer};
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
    let queue = SqliteTransport::open_with(&path, SqliteOptions::default().busy_timeout(timeout))
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

/// The name of the thread an operation ran on.
async fn thread_of(writer: &Writer) -> String {
    writer
        .put(|_| Ok(Ok(std::thread::current().name().unwrap_or("").to_owned())))
        .await
        .unwrap()
}

/// [`thread_of`] in a task of its own, as a web handler's dispatch runs.
async fn thread_of_task(writer: &Arc<Writer>) -> String {
    let writer = writer.clone();
    tokio::spawn(async move { thread_of(&writer).await })
        .await
        .unwrap()
}

async fn writer(dir: &tempfile::TempDir, options: SqliteOptions) -> Arc<Writer> {
    Arc::new(
        Writer::start(dir.path().join("mq.db"), options)
            .await
            .unwrap(),
    )
}

const WRITER: &str = "mq-sqlite-writer";

/// One put at a time in a task of a multi-threaded runtime runs on the caller's thread.
/// Where `block_in_place` would panic or block other futures, on the writer's: a
/// current-thread runtime, the future of a `block_on`, a `LocalSet`'s task, a runtime whose
/// threads have names of their own.
#[test]
fn a_lone_put_runs_on_the_callers_thread_where_the_runtime_allows() {
    let dir = tempfile::tempdir().unwrap();
    let multi = tokio::runtime::Runtime::new().unwrap();
    let (in_task, in_block_on, in_local_set) = multi.block_on(async {
        let writer = writer(&dir, SqliteOptions::default()).await;
        let in_task = thread_of_task(&writer).await;
        let in_block_on = thread_of(&writer).await;
        let local = tokio::task::LocalSet::new();
        let in_local_set = local
            .run_until(async {
                let writer = writer.clone();
                tokio::task::spawn_local(async move { thread_of(&writer).await })
                    .await
                    .unwrap()
            })
            .await;
        (in_task, in_block_on, in_local_set)
    });
    assert_eq!(in_task, "tokio-rt-worker");
    assert_eq!(in_block_on, WRITER);
    assert_eq!(in_local_set, WRITER);

    let named = tokio::runtime::Builder::new_multi_thread()
        .thread_name("app")
        .build()
        .unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for runtime in [named, current] {
        let on = runtime.block_on(async {
            let writer = writer(&dir, SqliteOptions::default()).await;
            thread_of_task(&writer).await
        });
        assert_eq!(on, WRITER);
    }
}

/// A put begun while another is in progress is not alone, and goes to the writer thread.
#[test]
fn a_put_begun_beside_another_is_not_alone() {
    let shared = Shared::default();
    let first = Counted::calling(&shared);
    let second = Counted::calling(&shared);
    assert!(first.alone());
    assert!(!second.alone());
    drop((first, second));
    assert!(Counted::calling(&shared).alone());
}

/// Puts in progress together, from several tasks, go to the writer thread, where they can
/// share a commit. (Futures joined in one task are polled one after the other: each finds
/// itself alone, and runs on the caller's thread; `dispatch_all` is the way to put many.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_go_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&dir, SqliteOptions::default()).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .put(|_| {
                        // Long enough that the puts overlap.
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(Ok(std::thread::current().name().unwrap_or("").to_owned()))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut threads = Vec::new();
    for task in tasks {
        threads.push(task.await.unwrap());
    }
    let on_writer = threads.iter().filter(|t| *t == WRITER).count();
    assert!(on_writer >= 6, "{threads:?}");
}

/// After a put found the file locked past the busy timeout, the next puts go to the
/// writer thread for a while, so that they wait the lock out together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_sends_puts_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(100);
    let writer = writer(&dir, SqliteOptions::default().busy_timeout(timeout)).await;
    assert_ne!(thread_of_task(&writer).await, WRITER);
    let holder = rusqlite::Connection::open(dir.path().join("mq.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked = writer.clone();
    let error = tokio::spawn(async move { locked.put(ops::stats).await })
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("lock"), "{error}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(thread_of_task(&writer).await, WRITER);
}

/// An operation that panics on the caller's thread leaves no transaction open behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_callers_thread_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&dir, SqliteOptions::default()).await;
    assert_ne!(thread_of_task(&writer).await, WRITER);
    let panicking = writer.clone();
    let panicked = tokio::spawn(async move {
        panicking
            .put(|db| -> ops::Outcome<()> {
                db.conn.execute_batch("CREATE TABLE scratch (x)")?;
                panic!("an operation's bug");
            })
            .await
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    let stats = writer.call(ops::stats).await;
    assert!(stats.is_ok(), "{stats:?}");
    let scratch = writer
        .call(|db| {
            Ok(Ok(db
                .conn
                .prepare("SELECT 1 FROM sqlite_master WHERE name = 'scratch'")?
                .exists([])?))
        })
        .await
        .unwrap();
    assert!(!scratch, "the panicked transaction was committed");
}
