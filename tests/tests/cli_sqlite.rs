//! The `mq` command on an SQLite file: the same scenarios as on beanstalkd.

mod cli_support;

use std::path::Path;

use cli_support::{mq, mq_in};

/// The URL of a queue file in `dir`, created by `mq migrate` (the commands that inspect a
/// queue open only a file that exists).
fn url(dir: &tempfile::TempDir) -> String {
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let migrated = mq(&url, &["migrate"]);
    assert_eq!(migrated.code, 0, "{migrated:#?}");
    url
}

/// The files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).expect("read the folder");
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into()
        })
        .collect();
    names.sort();
    names
}

/// Without a queue file, every command that inspects or deletes refuses (exit 1), names the
/// absolute path it looked for and how to point it at the right file, and creates nothing.
#[test]
fn inspecting_commands_create_no_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let expected = dir.path().canonicalize().expect("resolves").join("mq.db");
    for args in [
        &["stats"][..],
        &["failed", "list"],
        &["failed", "show", "1"],
        &["failed", "retry", "1"],
        &["failed", "remove", "--all"],
        &["peek", "emails"],
        &["flush", "emails", "--force"],
    ] {
        let run = mq_in(dir.path(), args);
        let line = run.fails(1);
        for text in [
            &format!("sqlite queue {}: no such file", expected.display()),
            "--url sqlite://PATH",
            "MQ_URL",
            "neither --url nor MQ_URL is set",
        ] {
            assert!(line.contains(text), "mq {args:?}: no `{text}` in {line}");
        }
        assert_eq!(files(dir.path()), Vec::<String>::new(), "mq {args:?}");
    }
    let named = mq_in(dir.path(), &["--url", "sqlite://other.db", "stats"]);
    let line = named.fails(1);
    let other = expected.with_file_name("other.db");
    assert!(line.contains(&other.display().to_string()), "{line}");
    assert!(!line.contains("neither --url"), "{line}");
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

/// `mq publish` may create the file, as a producer does, and then names it on stderr.
#[test]
fn publish_creates_the_file_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().canonicalize().expect("resolves").join("mq.db");
    let args = ["publish", "Ping", "{}", "--queue", "jobs"];
    let first = mq_in(dir.path(), &args);
    assert_eq!(first.code, 0, "{first:#?}");
    assert_eq!(
        first.stderr,
        format!(
            "mq: warning: created a new, empty queue sqlite://{}: a worker sees what is put \
             there only if its MQ_URL names this file\n",
            file.display()
        )
    );
    assert!(files(dir.path()).contains(&"mq.db".to_owned()));
    mq_in(dir.path(), &args).ok();
    let stats = mq_in(dir.path(), &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["ready"], 2, "{stats:#}");
}

#[test]
fn failed_list_bounds_bodies() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::failed_list_bounds_bodies(&url(&dir));
}

#[test]

fn publish_stats_peek() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::publish_stats_peek(&url(&dir));
}

#[test]

fn publish_options_and_bad_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::publish_options_and_bad_json(&url(&dir));
}

#[test]

fn failed_list_show_retry_remove() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::failed_list_show_retry_remove(&url(&dir));
}

#[test]

fn failed_retry_remove_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::failed_retry_remove_all(&url(&dir));
}

#[test]

fn flush_needs_force() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::flush_needs_force(&url(&dir));
}

#[test]

fn stats_watch() {
    let dir = tempfile::tempdir().expect("temp dir");
    cli_support::stats_watch(&url(&dir));
}

/// `MQ_URL` picks the file when `--url` is not given.
#[test]

fn mq_url_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = cli_support::command(&["publish", "Ping", "{}", "--queue", "env"])
        .env("MQ_URL", url(&dir))
        .output()
        .expect("run mq");
    assert!(run.status.success(), "{run:?}");
    let stats = mq(&url(&dir), &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["queue"], "env");
}
