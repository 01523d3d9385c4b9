//! Running the real `mq` binary, and the operator scenarios every backend must pass.
//!
//! The binary belongs to mq-core, so cargo does not build it for this package's tests:
//! [`binary`] builds it once per test process (with every backend and the dashboard:
//! `--features nats,postgres,dashboard`) with the cargo that runs the tests, into the same target directory and
//! profile (found from the test executable's own path), and runs `TARGET/PROFILE/mq`. `MQ_CLI_BIN` names a prebuilt binary instead.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use mq::transport::{Failure, PutOptions, SlotFailure, Transport};
use serde_json::Value;

/// The path of the `mq` binary, built on first use.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("MQ_CLI_BIN") {
            return PathBuf::from(path);
        }
        // TARGET/PROFILE/deps/cli_xxx-HASH
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in TARGET/PROFILE/deps");
        let target_dir = profile_dir.parent().expect("TARGET/PROFILE");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(&cargo);
        // The variables cargo sets for this test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...)
        // are not the outer build's: ring's build script reruns when they change, and with
        // it rustls, async-nats and mq-core would be rebuilt here and again by the next
        // `cargo test`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_the_test = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&name.as_ref());
            if set_for_the_test {
                command.env_remove(name.as_ref());
            }
        }
        let status = command
            .args([
                "build",
                "--quiet",
                "-p",
                "mq-core",
                "--features",
                "nats,postgres,dashboard",
                "--bin",
                "mq",
                "--profile",
            ])
            .arg(profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo} to build the mq binary: {e}"));
        assert!(status.success(), "building the mq binary failed: {status}");
        let path = profile_dir.join(format!("mq{}", std::env::consts::EXE_SUFFIX));
        assert!(path.exists(), "{} was not built", path.display());
        path
    })
}

/// What one run of `mq` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 and a silent stderr; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "mq failed: {self:#?}");
        assert_eq!(self.stderr, "", "mq wrote to stderr: {self:#?}");
        &self.stdout
    }

    /// Asserts exit `code` with exactly one line `mq: error: ...` on stderr; returns it.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "exit code: {self:#?}");
        assert!(
            self.stderr.starts_with("mq: error: ")
                && self.stderr.ends_with('\n')
                && self.stderr.lines().count() == 1,
            "stderr must be one `mq: error:` line: {self:#?}"
        );
        self.stderr.trim_end()
    }

    /// Stdout as JSON (after [`ok`](Run::ok)).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// The `mq` command, with `MQ_URL` cleared so that only `--url` counts.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("MQ_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `mq --url URL ARGS...` to completion.
pub fn mq(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    run(&mut command(&all))
}

/// Runs `mq ARGS...` in `dir`, with `MQ_URL` unset, to completion.
pub fn mq_in(dir: &Path, args: &[&str]) -> Run {
    run(command(args).current_dir(dir))
}

/// Runs `command` to completion.
pub fn run(command: &mut Command) -> Run {
    Run::from(command.output().expect("run mq"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The transport API, as a worker uses it, on a runtime of its own (a transport's
/// connections live on the runtime that opened them).
struct Api {
    runtime: tokio::runtime::Runtime,
    transport: Arc<dyn Transport>,
}

fn connect(url: &str) -> Api {
    let runtime = runtime();
    let transport = runtime
        .block_on(mq::transport::connect(url))
        .expect("connect");
    Api { runtime, transport }
}

fn envelope(name: &str, body: &str) -> (String, Bytes) {
    let raw = serde_json::value::RawValue::from_string(body.to_owned()).expect("JSON");
    let envelope = mq::Envelope::new(name, raw);
    (envelope.id.clone(), envelope.encode())
}

fn failure(slot: Option<&str>, reason: &str) -> Failure {
    let slots = slot
        .map(|slot| SlotFailure {
            slot: slot.to_owned(),
            error: format!("{slot} said: smtp timeout"),
        })
        .into_iter()
        .collect();
    Failure::new(slots, reason.to_owned(), 3, SystemTime::now())
}

/// Puts `body` on `queue`, reserves it and fails it through the transport API, as a worker
/// would; returns the store entry's id.
fn put_failed(api: &Api, queue: &str, body: Bytes, failure: Failure) -> u64 {
    let t = &api.transport;
    api.runtime.block_on(async {
        let options = PutOptions::new(100, Duration::ZERO, Duration::from_secs(60));
        t.put(queue, body.clone(), options).await.expect("put");
        let jobs = t
            .reserve(&[queue.to_owned()], 1, Duration::from_secs(2))
            .await
            .expect("reserve");
        let job = jobs.into_iter().next().expect("the item just put");
        let before: Vec<u64> = t
            .failure_store()
            .list(Some(queue), 10_000)
            .await
            .expect("list")
            .iter()
            .map(|f| f.id)
            .collect();
        t.fail(&job, body, options, failure).await.expect("fail");
        t.failure_store()
            .list(Some(queue), 10_000)
            .await
            .expect("list")
            .iter()
            .map(|f| f.id)
            .find(|id| !before.contains(id))
            .expect("the new failure entry")
    })
}

fn queue_row<'a>(stats: &'a Value, queue: &str) -> &'a Value {
    stats["queues"]
        .as_array()
        .expect("queues array")
        .iter()
        .find(|q| q["queue"] == queue)
        .unwrap_or_else(|| panic!("no queue {queue} in {stats:#}"))
}

/// The `READY RESERVED DELAYED FAILED` cells of `queue`'s row of the stats table.
fn table_counts(stdout: &str, queue: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(queue))
        .unwrap_or_else(|| panic!("no row for {queue} in:\n{stdout}"));
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// publish → stats shows ready 1 → peek shows it; `--json` of each parses.
pub fn publish_stats_peek(url: &str) {
    let id = mq(url, &["publish", "Ping", r#"{"n": 1}"#, "--queue", "jobs"]);
    let id = id.ok().trim().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let table = mq(url, &["stats"]);
    let table = table.ok();
    assert!(table.starts_with("QUEUE"), "{table}");
    assert_eq!(table_counts(table, "jobs"), ["1", "0", "0", "0"], "{table}");

    let stats = mq(url, &["stats", "--json"]).json();
    let jobs = queue_row(&stats, "jobs");
    assert_eq!(jobs["ready"], 1);
    assert_eq!(jobs["failed"], 0);

    let peek = mq(url, &["peek", "jobs"]);
    let peek = peek.ok();
    assert!(peek.contains("message:"), "{peek}");
    assert!(peek.contains("Ping"), "{peek}");
    assert!(peek.contains(&id), "{peek}");
    assert!(peek.contains(r#"{"n": 1}"#), "the body as sent: {peek}");

    let peek = mq(url, &["peek", "jobs", "--json"]).json();
    assert_eq!(peek["name"], "Ping");
    assert_eq!(peek["message_id"], id.as_str());
    assert_eq!(peek["queue"], "jobs");
    assert_eq!(peek["body"]["n"], 1);

    let empty = mq(url, &["peek", "nothing-here"]);
    assert!(empty.ok().contains("no ready message"), "{empty:?}");
    assert_eq!(
        mq(url, &["peek", "nothing-here", "--json"]).json(),
        Value::Null
    );

    // Still there: peek does not take it.
    let stats = mq(url, &["stats", "--json"]).json();
    assert_eq!(queue_row(&stats, "jobs")["ready"], 1);
}

/// Options of `publish`, and a body that is not JSON.
pub fn publish_options_and_bad_json(url: &str) {
    let out = mq(
        url,
        &[
            "publish",
            "Later",
            "{}",
            "--queue",
            "later",
            "--delay",
            "1h",
            "--priority",
            "5",
            "--ttr",
            "2m",
            "--json",
        ],
    )
    .json();
    assert_eq!(out["queue"], "later");
    assert_eq!(out["name"], "Later");
    let stats = mq(url, &["stats", "--json"]).json();
    let later = queue_row(&stats, "later");
    assert_eq!(
        (later["ready"].clone(), later["delayed"].clone()),
        (0.into(), 1.into())
    );

    let bad = mq(url, &["publish", "Ping", "{not json", "--queue", "jobs"]);
    assert!(bad.fails(2).contains("not valid JSON"), "{bad:?}");

    // A body of a message's second shape says so in the envelope.
    let shaped = |version: &str| {
        let args = [
            "publish",
            "Shaped",
            "{}",
            "--queue",
            "shaped",
            "--message-version",
        ];
        mq(url, &[&args[..], &[version]].concat())
    };
    shaped("2").ok();
    let peeked = mq(url, &["peek", "shaped", "--json"]).json();
    assert_eq!(peeked["message_version"], 2, "{peeked}");
    let zero = shaped("0");
    assert_eq!(zero.code, 2, "{zero:?}");
    assert!(zero.stderr.contains("--message-version"), "{zero:?}");
}

/// The failure store: list, show, retry and remove one by one, with a message that does
/// not decode among them.
pub fn failed_list_show_retry_remove(url: &str) {
    let t = connect(url);
    let (message_id, body) = envelope("SendOrderConfirmation", r#"{"order_id":7}"#);
    let good = put_failed(
        &t,
        "emails",
        body,
        failure(Some("shop::mail::send_confirmation"), "slot failed 3 times"),
    );
    let bad = put_failed(
        &t,
        "emails",
        Bytes::from_static(b"garbage, not an envelope"),
        failure(None, "payload does not decode"),
    );

    let list = mq(url, &["failed", "list"]);
    let list = list.ok();
    assert!(list.starts_with("ID"), "{list}");
    let good_line = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&good.to_string()))
        .unwrap_or_else(|| panic!("no row for {good}: {list}"));
    for cell in [
        "emails",
        "SendOrderConfirmation",
        message_id.as_str(),
        "3",
        "shop::mail::send_confirmation",
        "slot failed 3 times",
    ] {
        assert!(good_line.contains(cell), "{cell} missing: {good_line}");
    }
    let bad_line = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&bad.to_string()))
        .unwrap_or_else(|| panic!("no row for {bad}: {list}"));
    assert!(bad_line.contains("(undecodable)"), "{bad_line}");

    let json = mq(url, &["failed", "list", "--json"]).json();
    let entries = json.as_array().expect("an array");
    assert_eq!(entries.len(), 2, "{json:#}");
    assert_eq!(entries[0]["id"], good, "oldest first");
    assert_eq!(entries[0]["envelope"]["message_id"], message_id.as_str());
    assert_eq!(entries[0]["attempts"], 3);
    assert_eq!(
        entries[0]["slots"][0]["slot"],
        "shop::mail::send_confirmation"
    );
    assert!(entries[1]["envelope"]["decode_error"]
        .as_str()
        .is_some_and(|e| e.contains("not an mq envelope")));
    assert_eq!(
        mq(url, &["failed", "list", "--queue", "other", "--json"]).json(),
        serde_json::json!([])
    );
    let capped = mq(url, &["failed", "list", "--max", "1", "--json"]).json();
    assert_eq!(capped.as_array().map(Vec::len), Some(1));

    let show = mq(url, &["failed", "show", &good.to_string()]);
    let show = show.ok();
    for text in [
        "SendOrderConfirmation",
        message_id.as_str(),
        "shop::mail::send_confirmation said: smtp timeout",
        "slot failed 3 times",
        r#"{"order_id":7}"#,
    ] {
        assert!(show.contains(text), "{text} missing: {show}");
    }
    // One count of attempts, the record's, under a name that says what it counts.
    let keys: Vec<&str> = show
        .lines()
        .filter_map(|line| line.split_once(':').map(|(key, _)| key))
        .collect();
    assert!(
        !keys.contains(&"attempt") && !keys.contains(&"attempts"),
        "{show}"
    );
    assert!(
        show.lines()
            .any(|line| line.starts_with("attempts made:") && line.ends_with(" 3")),
        "{show}"
    );
    let show_bad = mq(url, &["failed", "show", &bad.to_string()]);
    let show_bad = show_bad.ok();
    assert!(show_bad.contains("(undecodable)"), "{show_bad}");
    assert!(show_bad.contains("not an mq envelope"), "{show_bad}");
    assert!(show_bad.contains("garbage, not an envelope"), "{show_bad}");
    let shown = mq(url, &["failed", "show", &good.to_string(), "--json"]).json();
    assert_eq!(shown["id"], good);
    assert_eq!(shown["queue"], "emails");
    assert_eq!(shown["reason"], "slot failed 3 times");

    let missing = mq(url, &["failed", "show", "987654321"]);
    assert_eq!(
        missing.fails(1),
        "mq: error: no failed message with id 987654321"
    );

    let retried = mq(url, &["failed", "retry", &good.to_string()]);
    assert!(
        retried.ok().starts_with(&format!("retried {good} ")),
        "{retried:?}"
    );
    let stats = mq(url, &["stats", "--json"]).json();
    let emails = queue_row(&stats, "emails");
    assert_eq!(
        (emails["ready"].clone(), emails["failed"].clone()),
        (1.into(), 1.into())
    );
    let peeked = mq(url, &["peek", "emails", "--json"]).json();
    assert_eq!(
        peeked["message_id"],
        message_id.as_str(),
        "same message back"
    );

    let removed = mq(url, &["failed", "remove", &bad.to_string()]);
    assert_eq!(removed.ok(), format!("removed {bad}\n"));
    assert_eq!(mq(url, &["failed", "list"]).ok(), "no failed messages\n");

    assert_eq!(
        mq(url, &["failed", "retry", &good.to_string()]).fails(1),
        format!("mq: error: no failed message with id {good}")
    );
    assert_eq!(
        mq(url, &["failed", "remove", "5", "6"]).fails(1),
        "mq: error: no failed messages with ids 5, 6"
    );
}

/// `retry --all --queue Q` and `remove --all`; nothing on stderr when it is a pipe.
pub fn failed_retry_remove_all(url: &str) {
    let t = connect(url);
    for i in 0..3 {
        let (_, body) = envelope("A", &format!("{{\"i\":{i}}}"));
        put_failed(&t, "qa", body, failure(Some("a::slot"), "failed"));
    }
    for i in 0..2 {
        let (_, body) = envelope("B", &format!("{{\"i\":{i}}}"));
        put_failed(&t, "qb", body, failure(Some("b::slot"), "failed"));
    }
    let retried = mq(url, &["failed", "retry", "--all", "--queue", "qa"]);
    assert_eq!(retried.ok(), "retried 3 failed messages of queue qa\n");
    let stats = mq(url, &["stats", "--json"]).json();
    assert_eq!(queue_row(&stats, "qa")["ready"], 3);
    assert_eq!(queue_row(&stats, "qa")["failed"], 0);
    assert_eq!(queue_row(&stats, "qb")["failed"], 2);

    let removed = mq(url, &["failed", "remove", "--all", "--json"]).json();
    assert_eq!(
        removed["done"].as_array().map(Vec::len),
        Some(2),
        "{removed:#}"
    );
    assert_eq!(removed["missing"], serde_json::json!([]));
    // A queue left with nothing in it may drop out of the stats (SQLite, memory) or stay
    // with zeros (beanstalkd keeps its tubes): either way, nothing failed is left.
    let stats = mq(url, &["stats", "--json"]).json();
    let failed_left: u64 = stats["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["failed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(failed_left, 0, "{stats:#}");

    let nothing = mq(url, &["failed", "retry", "--all"]);
    assert_eq!(nothing.ok(), "retried 0 failed messages of all queues\n");
}

/// `flush` refuses without `--force`, deletes with it.
pub fn flush_needs_force(url: &str) {
    for n in 0..2 {
        mq(
            url,
            &[
                "publish",
                "Ping",
                &format!("{{\"n\":{n}}}"),
                "--queue",
                "doomed",
            ],
        )
        .ok();
    }
    let refused = mq(url, &["flush", "doomed"]);
    assert!(refused.fails(2).contains("--force"), "{refused:?}");
    let stats = mq(url, &["stats", "--json"]).json();
    assert_eq!(queue_row(&stats, "doomed")["ready"], 2, "nothing deleted");

    let flushed = mq(url, &["flush", "doomed", "--force"]);
    assert_eq!(flushed.ok(), "deleted 2 messages from queue doomed\n");
    let stats = mq(url, &["stats", "--json"]).json();
    let ready = stats["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == "doomed"))
        .map_or(0.into(), |q| q["ready"].clone());
    assert_eq!(ready, 0);
    let again = mq(url, &["flush", "doomed", "--force", "--json"]).json();
    assert_eq!(again, serde_json::json!({"queue": "doomed", "deleted": 0}));
}

/// `stats --watch --json` prints one JSON line per interval until stopped.
pub fn stats_watch(url: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = command(&["--url", url, "stats", "--watch", "200ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mq");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut ats = Vec::new();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("UTF-8");
        let snapshot: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert!(snapshot["queues"].is_array(), "{snapshot:#}");
        ats.push(snapshot["at"].clone());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ats.len(), 2);
}

/// A failed message whose body nests 100,000 levels deep and one whose body is long:
/// `failed list --json` stays readable by a JSON reader (serde_json stops at 128 levels),
/// each body bounded and the cut said; `failed show --json` shows all of each, the deep one
/// as text. The backend must take envelopes of about 200 kB.
pub fn failed_list_bounds_bodies(url: &str) {
    let api = connect(url);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (_, placeholder) = envelope("Deep", r#""__BODY__""#);
    let deep_envelope = String::from_utf8(placeholder.to_vec())
        .expect("UTF-8")
        .replace(r#""__BODY__""#, &deep);
    assert!(
        deep_envelope.contains(&deep),
        "the placeholder was replaced"
    );
    let deep_id = put_failed(
        &api,
        "bounds",
        Bytes::from(deep_envelope),
        failure(Some("slots::deep"), "deep"),
    );
    let long = format!(r#""{}""#, "x".repeat(5_000));
    let (_, long_envelope) = envelope("Long", &long);
    let long_id = put_failed(
        &api,
        "bounds",
        long_envelope,
        failure(Some("slots::long"), "long"),
    );

    let listing = mq(url, &["failed", "list", "--queue", "bounds", "--json"]).json();
    let entries = listing.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2, "{listing:#}");
    let entry = |id: u64| {
        entries
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("no entry {id}"))
    };
    let deep_listed = &entry(deep_id)["envelope"];
    let body = deep_listed["body"].as_str().expect("the deep body as text");
    assert!(body.len() <= 1024, "listed {} bytes", body.len());
    let note = deep_listed["body_note"].as_str().expect("a body note");
    assert!(note.contains("nested deeper than 64 levels"), "{note}");
    assert!(
        note.contains("cut: the first 1024 of 200000 bytes"),
        "{note}"
    );
    let long_listed = &entry(long_id)["envelope"];
    assert_eq!(long_listed["body"].as_str().map(str::len), Some(1024));
    let note = long_listed["body_note"].as_str().expect("a body note");
    assert!(note.contains("cut: the first 1024 of 5002 bytes"), "{note}");
    assert!(!note.contains("nested"), "{note}");

    let id = deep_id.to_string();
    let shown = mq(url, &["failed", "show", &id, "--json"]).json();
    assert_eq!(shown["envelope"]["body"].as_str(), Some(deep.as_str()));
    assert!(shown["envelope"]["body_note"]
        .as_str()
        .is_some_and(|note| note.contains("nested deeper") && !note.contains("cut")));
    let id = long_id.to_string();
    let shown = mq(url, &["failed", "show", &id, "--json"]).json();
    assert_eq!(
        shown["envelope"]["body"].as_str().map(str::len),
        Some(5_000)
    );
    assert!(shown["envelope"].get("body_note").is_none(), "{shown:#}");
    let table = mq(url, &["failed", "show", &id]);
    assert!(table.ok().contains(&"x".repeat(5_000)));
}
