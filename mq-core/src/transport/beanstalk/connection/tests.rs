//! The connection against fake servers on loopback: pipelining, end of file, garbage,
//! refusal.

use super::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A fake server answering each line with the next canned reply.
async fn fake(replies: Vec<&'static [u8]>) -> (Connection, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        for reply in replies {
            let Ok(Some(line)) = lines.next_line().await else {
                break;
            };
            seen.push(line);
            write.write_all(reply).await.unwrap();
        }
        seen
    });
    let connection = Connection::connect("test", &[address], Decoder::default())
        .await
        .unwrap();
    (connection, server)
}

#[tokio::test]
async fn pipelines_and_matches_in_order() {
    let (connection, server) = fake(vec![b"USING a\r\n", b"INSERTED 1\r\n", b"DELETED\r\n"]).await;
    let replies = connection
        .send(&[
            Command::Use("a"),
            Command::ReserveWithTimeout(0),
            Command::Delete(1),
        ])
        .await
        .unwrap();
    assert_eq!(
        replies,
        vec![
            Response::Using("a".into()),
            Response::Inserted(1),
            Response::Deleted
        ]
    );
    assert_eq!(
        server.await.unwrap(),
        vec!["use a", "reserve-with-timeout 0", "delete 1"]
    );
}

#[tokio::test]
async fn eof_fails_waiting_and_later_calls() {
    let (connection, server) = fake(vec![b"TOUCHED\r\n"]).await;
    assert_eq!(
        connection.call(Command::Touch(1)).await.unwrap(),
        Response::Touched
    );
    server.await.unwrap();
    let error = connection.call(Command::Touch(1)).await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(connection.is_closed());
    assert!(matches!(
        connection.call(Command::Stats).await,
        Err(Error::Unreachable { .. })
    ));
}

#[tokio::test]
async fn garbage_closes_the_connection() {
    let (connection, _server) = fake(vec![b"HELLO THERE\r\n"]).await;
    let error = connection.call(Command::Stats).await.unwrap_err();
    assert!(error.to_string().contains("protocol error"), "{error}");
}

#[tokio::test]
async fn refused_is_unreachable() {
    // Bound but not listening: refuses, and no other test can take the port meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = closed.local_addr().unwrap();
    let error = Connection::connect("127.0.0.1:x", &[address], Decoder::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
}
