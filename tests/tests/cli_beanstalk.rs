//! The `mq` command against a real beanstalkd, one server per test.

mod cli_support;

use cli_support::mq;
use mq_tests::beanstalkd::Beanstalkd;

#[test]
fn publish_stats_peek() {
    let server = Beanstalkd::start();
    cli_support::publish_stats_peek(&server.url());
}

#[test]
fn publish_options_and_bad_json() {
    let server = Beanstalkd::start();
    cli_support::publish_options_and_bad_json(&server.url());
}

#[test]
fn failed_list_show_retry_remove() {
    let server = Beanstalkd::start();
    cli_support::failed_list_show_retry_remove(&server.url());
}

#[test]
fn failed_retry_remove_all() {
    let server = Beanstalkd::start();
    cli_support::failed_retry_remove_all(&server.url());
}

#[test]
fn flush_needs_force() {
    let server = Beanstalkd::start();
    cli_support::flush_needs_force(&server.url());
}

#[test]
fn stats_watch() {
    let server = Beanstalkd::start();
    cli_support::stats_watch(&server.url());
}

#[test]
fn failed_list_bounds_bodies() {
    // Envelopes of 200 kB: over beanstalkd's default job size.
    let server = Beanstalkd::start_with(&["-z", "1048576"]);
    cli_support::failed_list_bounds_bodies(&server.url());
}

/// beanstalkd's own figures are shown below the queues, and are JSON numbers where they
/// are counts.
#[test]
fn stats_show_the_server() {
    let server = Beanstalkd::start();
    let url = server.url();
    let table = mq(&url, &["stats"]);
    let table = table.ok();
    assert!(table.contains(&format!("server {url}")), "{table}");
    for key in [
        "version:",
        "uptime:",
        "current-connections:",
        "total-jobs:",
        "max-job-size:",
    ] {
        assert!(table.contains(key), "{key} missing: {table}");
    }
    let json = mq(&url, &["stats", "--json"]).json();
    assert_eq!(json["backend"], url.as_str());
    assert_eq!(json["server"]["max-job-size"], 65535);
    assert!(json["server"]["version"].is_string(), "{json:#}");
}

/// A message over beanstalkd's size limit is one clear line, exit 1.
#[test]
fn publish_too_large() {
    let server = Beanstalkd::start_with(&["-z", "1000"]);
    let big = format!("\"{}\"", "x".repeat(2000));
    let run = mq(&server.url(), &["publish", "Big", &big]);
    let line = run.fails(1);
    assert!(line.contains("1000"), "names the limit: {line}");
}

/// A server that went away: one line, exit 1.
#[test]
fn unreachable_server() {
    let mut server = Beanstalkd::start();
    let url = server.url();
    server.kill();
    let line = mq(&url, &["stats"]).fails(1).to_owned();
    assert!(line.contains("cannot reach"), "{line}");
}
