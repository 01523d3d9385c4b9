//! The `mq` command's command line: usage errors (exit 2), runtime errors (exit 1), each
//! one line on stderr; and what works on `memory://` within one process.

mod cli_support;

use cli_support::{command, mq};

fn run(args: &[&str]) -> cli_support::Run {
    cli_support::run(&mut command(args))
}

#[test]
fn unknown_command_is_a_usage_error() {
    let line = run(&["frobnicate"]).fails(2).to_owned();
    assert!(line.contains("frobnicate"), "{line}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["failed", "retry"][..],
        &["failed", "retry", "1", "--all"],
        &["failed", "remove", "--queue", "q"],
        &["failed", "show", "not-a-number"],
        &["stats", "--watch", "soon"],
        &["publish", "Ping"],
        &["publish", "Ping", "{not json"],
        &["publish", "Ping", "{}", "--delay", "later"],
        &["flush", "emails"],
    ] {
        run(args).fails(2);
    }
}

#[test]
fn flush_without_force_says_why() {
    let line = mq("memory://", &["flush", "emails"]).fails(2).to_owned();
    assert_eq!(
        line,
        "mq: error: `mq flush emails` deletes every ready and delayed message of that queue; \
         add --force to do it"
    );
}

#[test]
fn bad_url_is_one_line_and_exit_1() {
    let line = mq("nope", &["stats"]).fails(1).to_owned();
    assert!(
        line.starts_with("mq: error: invalid queue URL `nope`"),
        "{line}"
    );
    let line = mq("redis://x", &["stats"]).fails(1).to_owned();
    assert!(line.contains("unknown scheme `redis`"), "{line}");
    let line = mq("beanstalk://127.0.0.1:1", &["failed", "list"])
        .fails(1)
        .to_owned();
    assert!(line.contains("cannot reach 127.0.0.1:1"), "{line}");
}

#[test]
fn mq_url_is_read_from_the_environment() {
    let output = command(&["stats"])
        .env("MQ_URL", "nope://")
        .output()
        .expect("run mq");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("unknown scheme `nope`"), "{stderr}");
    // --url wins over MQ_URL.
    let output = command(&["--url", "memory://", "stats"])
        .env("MQ_URL", "nope://")
        .output()
        .expect("run mq");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn help_and_version_exit_0() {
    let help = run(&["--help"]);
    let help = help.ok();
    for command in ["stats", "failed", "publish", "peek", "flush"] {
        assert!(help.contains(command), "{command} missing: {help}");
    }
    assert!(run(&["failed", "--help"]).ok().contains("retry"));
    assert!(run(&["--version"]).ok().starts_with("mq "));
}

/// `memory://` lives in one process: each run starts empty, but every command works.
#[test]
fn memory_backend_works_within_one_run() {
    assert_eq!(mq("memory://", &["stats"]).ok(), "no queues on memory://\n");
    let stats = mq("memory://", &["stats", "--json"]).json();
    assert_eq!(stats["queues"], serde_json::json!([]));
    assert_eq!(stats["server"], serde_json::json!({}));
    let id = mq("memory://", &["publish", "Ping", "{}", "--queue", "q"]);
    assert_eq!(id.ok().trim().len(), 36);
    assert_eq!(
        mq("memory://", &["failed", "list"]).ok(),
        "no failed messages\n"
    );
    assert_eq!(
        mq("memory://", &["failed", "show", "1"]).fails(1),
        "mq: error: no failed message with id 1"
    );
    assert_eq!(
        mq("memory://", &["peek", "q", "--json"]).json(),
        serde_json::Value::Null
    );
}

/// Without `--queue` the message goes to `default`, which no worker may read: a warning
/// names the queue.
#[test]
fn publish_without_queue_warns() {
    let run = mq("memory://", &["publish", "Ping", "{}", "--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let published: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(published["queue"], "default");
    assert_eq!(
        run.stderr,
        "mq: warning: no --queue given, so the message went to queue `default`, which \
         workers read only for messages that name no queue: pass --queue with the `queue` of \
         Ping's #[message]\n"
    );
}

/// `--url`'s help lists every backend compiled in (this binary has them all), from the
/// scheme table.
#[test]
fn url_help_lists_every_backend() {
    let help = run(&["--help"]);
    let help = help.ok();
    for scheme in [
        "sqlite://",
        "beanstalk://",
        "nats://",
        "postgres://",
        "memory://",
    ] {
        assert!(help.contains(scheme), "{scheme} missing: {help}");
    }
}
