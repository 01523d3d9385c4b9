//! The `test-worker` binary as a process of a test: started on a queue URL with a record file
//! (each handled `Work` appends its number), killed when the test ends, passed or failed.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The unit of work of the process tests; the worker binary's slot takes it.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "work", retries = 0, ttr = "5s")]
pub struct Work {
    /// Recorded when handled.
    pub n: u64,
    /// How long the slot sleeps first.
    pub sleep_ms: u64,
    /// Whether the slot panics instead.
    pub panic: bool,
}

/// A slot that blocks its thread for an hour: synchronous, cancelled by its timeout.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "stuck", retries = 0, ttr = "2s", timeout = "1s")]
pub struct Blocks {
    /// Recorded when the slot starts.
    pub n: u64,
}

/// A synchronous slot that blocks for an hour, without a timeout.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "stuck", retries = 0, ttr = "2s")]
pub struct BlocksWithoutTimeout {
    /// Recorded when the slot starts.
    pub n: u64,
}

/// An async slot that never yields (it blocks its runtime thread for an hour), with a
/// timeout.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "stuck", retries = 0, ttr = "2s", timeout = "1s")]
pub struct NeverYields {
    /// Recorded when the slot starts.
    pub n: u64,
}

/// An async slot that never yields, without a timeout.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "stuck", retries = 0, ttr = "2s")]
pub struct NeverYieldsWithoutTimeout {
    /// Recorded when the slot starts.
    pub n: u64,
}

/// What a worker's `--help` mentions: every flag, every `MQ_*` variable, the exit codes.
pub const HELP_MENTIONS: &[&str] = &[
    "--url",
    "--queues",
    "--concurrency",
    "--rate-limit",
    "--limit",
    "--time-limit",
    "--memory-limit",
    "--failure-limit",
    "--grace",
    "--retries",
    "--signatures",
    "--list",
    "check",
    "MQ_URL",
    "MQ_QUEUES",
    "MQ_CONCURRENCY",
    "MQ_RATE_LIMIT",
    "MQ_LIMIT",
    "MQ_TIME_LIMIT",
    "MQ_MEMORY_LIMIT",
    "MQ_FAILURE_LIMIT",
    "MQ_GRACE",
    "MQ_RETRIES",
    "MQ_SIGNATURES",
    "MQ_SIGNING_KEYS",
    "Exit codes",
];

/// A running `test-worker`.
#[derive(Debug)]
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_test-worker")`) on `url`.
    pub fn start(binary: &str, url: &str, record: &Path, args: &[&str]) -> WorkerProcess {
        WorkerProcess::spawn(binary, url, record, args, &[], Stdio::inherit())
    }

    /// Like [`start_logged`](WorkerProcess::start_logged), with the variables `env` set too
    /// (`MQ_SIGNING_KEYS`, ...).
    pub fn start_with_env(
        binary: &str,
        url: &str,
        record: &Path,
        env: &[(&str, &str)],
        log: &Path,
    ) -> WorkerProcess {
        let file = std::fs::File::create(log).expect("create the log file");
        WorkerProcess::spawn(binary, url, record, &[], env, file.into())
    }

    /// Like [`start`](WorkerProcess::start), its log (`RUST_LOG=warn`) written to `log`.
    pub fn start_logged(
        binary: &str,
        url: &str,
        record: &Path,
        args: &[&str],
        log: &Path,
    ) -> WorkerProcess {
        let file = std::fs::File::create(log).expect("create the log file");
        WorkerProcess::spawn(binary, url, record, args, &[], file.into())
    }

    fn spawn(
        binary: &str,
        url: &str,
        record: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: Stdio,
    ) -> WorkerProcess {
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .env("MQ_URL", url)
            .env("MQ_TEST_RECORD", record)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the test worker");
        WorkerProcess(child)
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Appends `n` to the record file `path`, for [`recorded`]: one `write` call per line, which
/// `O_APPEND` makes atomic between processes.
pub fn record(path: &Path, n: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the record file");
    file.write_all(format!("{n}\n").as_bytes())
        .expect("append to the record file");
}

/// The numbers the workers recorded, one complete line each (one `write` per line, so a
/// line is never seen half written).
pub fn recorded(record: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.split_terminator('\n')
        .map(|line| line.parse().expect("a number per line"))
        .collect()
}

/// Waits until at least `count` numbers are recorded (at most 30 s).
pub fn wait_until_recorded(record: &Path, count: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    while recorded(record).len() < count {
        assert!(
            Instant::now() < until,
            "the worker handled only {}",
            recorded(record).len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to `limit` until the file `log` contains `text`; its contents then, or a panic
/// with what it held.
pub fn wait_for_log(log: &Path, text: &str, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        let seen = std::fs::read_to_string(log).unwrap_or_default();
        if seen.contains(text) {
            return seen;
        }
        assert!(
            Instant::now() < until,
            "no `{text}` in the log within {limit:?}; it says:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
