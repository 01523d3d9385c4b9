//! The `mq` command on an SQLite file: the same scenarios as on beanstalkd.

mod cli_support;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("mq.db").display())
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
    let stats = cli_support::mq(&url(&dir), &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["queue"], "env");
}
