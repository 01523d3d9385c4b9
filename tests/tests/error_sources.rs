//! Errors keep their causes: `std::error::Error::source` reaches the operating system's or
//! SQLite's own error, on real servers and files.

use std::error::Error as _;

use mq::Error;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn a_refused_beanstalk_connection_has_the_io_error_as_its_source() {
    let url = format!("beanstalk://127.0.0.1:{}", closed_port());
    let error = mq::transport::connect(&url)
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let io = error
        .source()
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no i/o error under {error:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
}

#[tokio::test]
async fn an_sqlite_file_that_is_not_a_database_has_sqlites_error_as_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-a-db");
    std::fs::write(&path, vec![b'x'; 8192]).expect("write");
    let url = format!("sqlite://{}", path.display());
    let error = mq::transport::connect(&url)
        .await
        .expect_err("not a database");
    assert!(matches!(error, Error::Sqlite { .. }), "{error:?}");
    let source = error
        .source()
        .unwrap_or_else(|| panic!("no source: {error:?}"));
    assert!(
        source.to_string().contains("not a database"),
        "{source} (under {error})"
    );
}

#[tokio::test]
async fn a_refused_nats_connection_has_the_clients_error_as_its_source() {
    let url = format!("nats://127.0.0.1:{}", closed_port());
    let error = mq::transport::connect(&url)
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(error.source().is_some(), "no source: {error:?}");
}
