//! The `mq` command against a real nats-server (2.9.10 on this project's machines), one
//! server per test: the scenarios every backend passes, the server's figures, and a queue
//! name NATS cannot serve.

mod cli_support;

use cli_support::mq;
use mq_tests::nats::NatsServer;

#[test]
fn publish_stats_peek() {
    let server = NatsServer::start();
    cli_support::publish_stats_peek(&server.url());
}

#[test]
fn publish_options_and_bad_json() {
    let server = NatsServer::start();
    cli_support::publish_options_and_bad_json(&server.url());
}

#[test]
fn failed_list_show_retry_remove() {
    let server = NatsServer::start();
    cli_support::failed_list_show_retry_remove(&server.url());
}

#[test]
fn failed_retry_remove_all() {
    let server = NatsServer::start();
    cli_support::failed_retry_remove_all(&server.url());
}

#[test]
fn flush_needs_force() {
    let server = NatsServer::start();
    cli_support::flush_needs_force(&server.url());
}

#[test]
fn stats_watch() {
    let server = NatsServer::start();
    cli_support::stats_watch(&server.url());
}

/// The server's and the account's figures are shown below the queues, and are JSON
/// numbers where they are counts.
#[test]
fn stats_show_the_server() {
    let server = NatsServer::start();
    let url = server.url();
    mq(&url, &["publish", "Ping", "{}", "--queue", "figures"]).ok();
    let table = mq(&url, &["stats"]);
    let table = table.ok();
    assert!(table.contains(&format!("server {url}")), "{table}");
    for key in [
        "version:",
        "server_name:",
        "jetstream_streams:",
        "jetstream_consumers:",
        "jetstream_storage_bytes:",
    ] {
        assert!(table.contains(key), "{key} missing: {table}");
    }
    let json = mq(&url, &["stats", "--json"]).json();
    assert_eq!(json["backend"], url.as_str());
    assert!(json["server"]["version"].is_string(), "{json:#}");
    // MQ and MQ_FAILED (stats makes both).
    assert_eq!(json["server"]["jetstream_streams"], 2, "{json:#}");
    assert!(json["server"]["jetstream_storage_bytes"].as_u64() > Some(0));
}

/// A queue name whose consumers NATS would refuse: one line naming the limit, exit 1, and
/// nothing published.
#[test]
fn publish_refuses_a_queue_name_nats_cannot_serve() {
    let server = NatsServer::start();
    let url = server.url();
    for name in ["q".repeat(300), "ü".repeat(80)] {
        let run = mq(&url, &["publish", "Ping", "{}", "--queue", &name]);
        let line = run.fails(1);
        assert!(line.contains("243") && line.contains("255"), "{line}");
    }
    let json = mq(&url, &["stats", "--json"]).json();
    assert_eq!(json["queues"], serde_json::json!([]), "{json:#}");
}

/// A server that went away: one line, exit 1.
#[test]
fn unreachable_server() {
    let mut server = NatsServer::start();
    let url = server.url();
    server.kill();
    let line = mq(&url, &["stats"]).fails(1).to_owned();
    assert!(line.contains("cannot reach"), "{line}");
}
