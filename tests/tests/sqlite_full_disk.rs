//! The SQLite queue on a real full file system: a tmpfs of a few MiB mounted by the test
//! (which needs root, as on CI), filled through dispatches until they are refused; then a
//! real worker process drains the queue, and dispatches are taken again.
//!
//! Not run as root (a developer's laptop), the test says loudly that it could not mount the
//! file system and why, and does nothing; as root (or with `CI` set) a failed mount fails it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mq::{Bus, Error};
use mq_tests::worker_process::{recorded, Work, WorkerProcess};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The size of the file system: a few times the WAL SQLite keeps (4 MiB) and what mq keeps
/// free for reservations and acks.
const DISK_BYTES: u64 = 16 << 20;

/// A tmpfs mounted on a temporary folder, unmounted (and the folder removed) when dropped,
/// also when the test fails.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts it, or says why it cannot: `None` only when not root and not on CI.
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("mq-test-full-disk")
            .arg(dir.path())
            .output();
        let why = match mounted {
            Ok(out) if out.status.success() => return Some(SmallDisk { dir }),
            Ok(out) => format!(
                "`mount -t tmpfs` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
            ),
            Err(error) => format!("cannot run `mount`: {error}"),
        };
        if is_root() || std::env::var_os("CI").is_some() {
            panic!(
                "cannot mount a {bytes}-byte tmpfs on {}: {why}",
                dir.path().display()
            );
        }
        eprintln!(
            "\n*** NOT RUN: the full-disk test needs a small real file system and could not \
             mount one: {why}. Run it as root (CI does) to test a full disk. ***\n"
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            // Still open by a process that is going away: detach it now, freed when closed.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
    })
}

fn work(n: u64) -> Work {
    Work {
        n,
        sleep_ms: 0,
        panic: false,
    }
}

/// Dispatches numbered messages from `first`, in batches until the queue refuses a batch,
/// then one by one until it refuses one; returns the next number and that refusal.
async fn fill(bus: &Bus, first: u64) -> (u64, Error) {
    let mut next = first;
    while bus.dispatch_all((next..next + 64).map(work)).await.is_ok() {
        next += 64;
        assert!(next - first < 10_000_000, "the disk never filled");
    }
    loop {
        match bus.dispatch(work(next)).await {
            Ok(_) => next += 1,
            Err(error) => return (next, error),
        }
        assert!(next - first < 10_000_000, "the disk never filled");
    }
}

/// The text of a disk-full refusal; fails on any other error.
fn disk_full(error: Error, db: &Path) -> String {
    match error {
        Error::Sqlite { path, detail, .. } if detail.starts_with("disk full") => {
            assert_eq!(path, db, "{detail}");
            detail
        }
        other => panic!("expected a disk-full Error::Sqlite, got {other:?} ({other})"),
    }
}

/// Waits until the worker recorded `count` messages (or fails when it stops making
/// progress for 30 s, or exits).
fn wait_until_drained(worker: &mut WorkerProcess, record: &Path, count: usize) {
    let (mut seen, mut progress) = (0, Instant::now());
    while seen < count {
        if let Some(status) = worker.0.try_wait().unwrap() {
            panic!("the worker exited with {status} after {seen} of {count}");
        }
        let now = recorded(record).len();
        if now > seen {
            (seen, progress) = (now, Instant::now());
        }
        assert!(
            progress.elapsed() < Duration::from_secs(30),
            "the worker handled {seen} of {count} and no more in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn size(path: PathBuf) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_dispatches_while_a_worker_drains_the_queue_and_frees_room() {
    let Some(disk) = SmallDisk::mount(DISK_BYTES) else {
        return;
    };
    let db = disk.path().join("mq.db");
    let url = format!("sqlite://{}", db.display());
    let records = tempfile::tempdir().unwrap(); // not on the small disk
    let record = records.path().join("record");
    let bus = Bus::connect(&url).await.unwrap();

    let (filled, error) = fill(&bus, 0).await;
    let detail = disk_full(error, &db);
    eprintln!("{filled} messages filled {DISK_BYTES} bytes; then: {detail}");
    assert!(filled > 1_000, "only {filled} fitted");
    assert!(
        detail.contains("reservations and acks go on") && detail.contains("free"),
        "the error says what to do: {detail}"
    );
    let single = bus.dispatch(work(u64::MAX)).await.unwrap_err();
    disk_full(single, &db);

    // A real worker drains the full queue: reservations and acks go on.
    let mut worker = WorkerProcess::start(WORKER, &url, &record, &["--concurrency", "32"]);
    wait_until_drained(&mut worker, &record, filled as usize);
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(30))
        .expect("the worker stops");
    assert_eq!(status.code(), Some(0));
    let stats = mq_tests::queue_stats(bus.transport().as_ref(), "work").await;
    assert_eq!((stats.ready, stats.reserved, stats.failed), (0, 0, 0));
    let done = recorded(&record);
    assert_eq!(done.len() as u64, filled, "every message was handled once");

    // The room the handled messages held is taken again: about as many fit as before.
    let (refilled, error) = fill(&bus, filled).await;
    disk_full(error, &db);
    let again = refilled - filled;
    eprintln!("after the drain, {again} more messages fitted");
    assert!(
        again >= filled / 2,
        "only {again} fitted after the worker freed the room of {filled}"
    );

    // Once the queue is idle, the WAL is checkpointed into the file and gives its room back.
    let wal = db.with_extension("db-wal");
    let until = Instant::now() + Duration::from_secs(20);
    while size(wal.clone()) > 64 << 10 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (file, wal) = (size(db.clone()), size(wal));
    eprintln!("idle: file {file} bytes, WAL {wal} bytes");
    assert!(
        wal <= 64 << 10,
        "the WAL still holds {wal} bytes of the full disk"
    );
    drop(bus);
}

/// Writes zeros to `path` until the file system is full; returns how many bytes fitted.
fn fill_with_ballast(path: &Path) -> u64 {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(error) if error.raw_os_error() == Some(28) => return written, // ENOSPC
            Err(error) => panic!("writing the ballast: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_program_filling_the_disk_stops_the_queue_until_it_frees_room() {
    let Some(disk) = SmallDisk::mount(DISK_BYTES) else {
        return;
    };
    let db = disk.path().join("mq.db");
    let url = format!("sqlite://{}", db.display());
    let records = tempfile::tempdir().unwrap();
    let record = records.path().join("record");
    let bus = Bus::connect(&url).await.unwrap();
    let queued = 2_000;
    bus.dispatch_all((0..queued).map(work)).await.unwrap();

    // Another program takes every free byte, the reserve included.
    let ballast = disk.path().join("ballast");
    let taken = fill_with_ballast(&ballast);
    eprintln!("the ballast took {taken} bytes");
    let refused = bus.dispatch(work(queued)).await.unwrap_err();
    let detail = disk_full(refused, &db);
    eprintln!("with the disk full: {detail}");
    let mut worker = WorkerProcess::start(WORKER, &url, &record, &["--concurrency", "32"]);
    std::thread::sleep(Duration::from_secs(2));

    // It frees its room: everything goes on by itself, nothing was lost.
    std::fs::remove_file(&ballast).unwrap();
    bus.dispatch(work(queued)).await.unwrap();
    wait_until_drained(&mut worker, &record, queued as usize + 1);
    worker.signal("TERM");
    let status = worker
        .wait_for(Duration::from_secs(30))
        .expect("the worker stops");
    assert_eq!(status.code(), Some(0));
    let mut done = recorded(&record);
    done.sort_unstable();
    done.dedup();
    assert_eq!(done.len() as u64, queued + 1, "every message was handled");
    drop(bus);
}
