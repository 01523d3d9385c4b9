//! PostgreSQL with TLS and a password, on private servers (`initdb` per test): connections
//! that verify the server's certificate against the test's own authority (and are seen
//! encrypted in `pg_stat_ssl`), the errors of an untrusted certificate and of a server
//! without TLS, and a password that no output of mq shows.

mod cli_support;

use mq_tests::pg_server::{PgServer, Security};
use mq_tests::round_trip;
use mq_tests::tls::Certificates;
use sqlx::Connection as _;

const PASSWORD: &str = "pg-Wv93-secret";

#[tokio::test]
async fn verify_full_with_the_tests_authority() {
    let certs = Certificates::make();
    let server = PgServer::start_secured(Security {
        tls: Some(&certs),
        password: None,
    });
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url(),
        certs.ca().display()
    );
    let transport = round_trip(&url, &[PASSWORD]).await;
    assert!(transport.describe().contains("sslmode=verify-full"));

    // The server sees mq's connections encrypted (this one is plain: it does not ask).
    let mut plain = sqlx::PgConnection::connect(&format!("{}?sslmode=disable", server.url()))
        .await
        .expect("a plain connection");
    let (encrypted, all): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'mq'",
    )
    .fetch_one(&mut plain)
    .await
    .expect("ask pg_stat_ssl");
    assert!(
        all > 0 && encrypted == all,
        "{encrypted} of {all} encrypted"
    );
    drop(transport);

    let untrusted = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url(),
        certs.other_ca().display()
    );
    let error = mq::transport::connect(&untrusted)
        .await
        .expect_err("a certificate of another authority");
    let text = error.to_string();
    assert!(
        text.contains("TLS") && text.contains("sslrootcert="),
        "{text}"
    );
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let server = PgServer::start();
    let url = format!("{}?sslmode=require", server.url());
    let error = mq::transport::connect(&url)
        .await
        .expect_err("no TLS there");
    let text = error.to_string();
    assert!(text.contains("TLS") && text.contains("sslmode="), "{text}");
}

/// A password in the URL, or in `PGPASSWORD` for the `mq` command; a wrong one is refused
/// with an error that does not show it, nor does `describe()` or the command's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_never_shown() {
    let server = PgServer::start_secured(Security {
        password: Some(PASSWORD),
        tls: None,
    });
    let port = server.port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres");
    round_trip(&url, &[PASSWORD]).await;

    let wrong = format!("postgres://postgres:not-{PASSWORD}@127.0.0.1:{port}/postgres");
    let error = mq::transport::connect(&wrong)
        .await
        .expect_err("a wrong password");
    let text = format!("{error} / {error:?}");
    assert!(text.contains("refused user `postgres`"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    let refused = cli_support::run(
        cli_support::command(&["--url", &wrong, "stats"]).env("RUST_LOG", "debug"),
    );
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        !format!("{}{}", refused.stdout, refused.stderr).contains(PASSWORD),
        "{refused:#?}"
    );

    let plain = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let stats = cli_support::run(
        cli_support::command(&["--url", &plain, "stats"]).env("PGPASSWORD", PASSWORD),
    );
    assert!(!stats.ok().contains(PASSWORD));
}
