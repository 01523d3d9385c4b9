//! Many processes opening one new SQLite file at the same instant: every one of them opens
//! it, none fails on the lock another holds while it creates the file or switches it to WAL.
//!
//! The child processes are this test binary run again with `MQ_SQLITE_OPEN_CHILD` set: the
//! test `child_process` does the child's part (wait for the start signal, open, put one
//! message) and is a no-op in a normal run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{PutOptions, Transport};

const ROLE: &str = "MQ_SQLITE_OPEN_CHILD";
const DB: &str = "MQ_SQLITE_OPEN_CHILD_DB";

/// Processes per round: more than the machine has cores, so that they interleave.
const PROCESSES: usize = 24;
/// Rounds, each on a new file.
const ROUNDS: usize = 60;

/// The child's part: waits until its stdin closes (all children are released together),
/// opens the file and puts its number.
#[tokio::test]
async fn child_process() {
    let Ok(n) = std::env::var(ROLE) else {
        return;
    };
    let db = std::env::var(DB).unwrap();
    let mut signal = Vec::new();
    std::io::stdin().read_to_end(&mut signal).unwrap();
    let started = Instant::now();
    match SqliteTransport::open(&db).await {
        Ok(queue) => {
            queue
                .put("opened", n.clone().into(), PutOptions::default())
                .await
                .unwrap();
            println!("opened {n}");
        }
        Err(error) => {
            println!("failed {n} after {:?}: {error}", started.elapsed());
            std::process::exit(1);
        }
    }
}

fn spawn(n: usize, db: &Path) -> Child {
    mq_tests::child_process(ROLE, &n.to_string())
        .env(DB, db)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `limit` for `child`; kills it if it is still running then.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_open_one_new_file_at_once() {
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mq.db");
        let mut children: Vec<Child> = (0..PROCESSES).map(|n| spawn(n, &db)).collect();
        // Every child is started and blocked on its stdin; closing them releases all at once.
        for child in &mut children {
            child.stdin.as_mut().unwrap().write_all(b"go").unwrap();
        }
        for child in &mut children {
            drop(child.stdin.take());
        }
        for (n, child) in children.iter_mut().enumerate() {
            let status = wait_or_kill(child, Duration::from_secs(60));
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            if status.is_none_or(|status| !status.success()) {
                let said = out
                    .lines()
                    .find(|line| line.contains("failed"))
                    .unwrap_or("no output");
                failures.push(format!("round {round}, child {n} ({status:?}): {said}"));
            }
        }
        let queue = SqliteTransport::open(&db).await.unwrap();
        let opened = mq_tests::queue_stats(&queue, "opened").await.ready;
        let failed_here = failures
            .iter()
            .filter(|f| f.starts_with(&format!("round {round},")))
            .count();
        assert_eq!(
            opened as usize + failed_here,
            PROCESSES,
            "round {round}: every child that opened the file put its message"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed:\n{}",
        failures.len(),
        PROCESSES * ROUNDS,
        failures.join("\n")
    );
}
