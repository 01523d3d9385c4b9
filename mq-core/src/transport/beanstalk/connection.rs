//! One pipelined TCP connection to beanstalkd.
//!
//! Any number of tasks send commands at once: [`Connection::send`] encodes a batch of
//! commands and queues its bytes and a reply slot under one short lock, so batches go out
//! whole and in the order they were sent, and the replies, which beanstalkd writes in
//! command order, are matched first in, first out. A writer task coalesces queued batches
//! into few `write` calls; a reader task owns the read buffer and the [`Decoder`]. Neither
//! is ever cancelled by a caller: dropping the future of `send` discards the replies, not
//! the commands, so the stream never carries half a command.
//!
//! When the server closes the connection or a read or write fails, every waiting and
//! later `send` fails with [`Error::Unreachable`]; [`Connection::is_closed`] tells.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::proto::{Command, Decoder, Response};
use crate::{Error, Result};

/// How long [`Connection::connect`] waits for the TCP handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes the writer gathers into one `write` call.
const WRITE_CHUNK: usize = 256 << 10;

/// One connection; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Connection {
    address: String,
    shared: Arc<Shared>,
    writes: mpsc::UnboundedSender<Vec<u8>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Batches sent and not yet fully answered, in the order they were written.
    pending: VecDeque<Pending>,
    /// Why the connection is unusable, once it is.
    closed: Option<String>,
    /// The tube the last `use` queued names (beanstalkd starts with `default`).
    using: String,
}

#[derive(Debug)]
struct Pending {
    expected: usize,
    replies: Vec<Response>,
    reply: oneshot::Sender<std::result::Result<Vec<Response>, String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (a push, a pop, a swap).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the connection closed and fails every waiting batch.
    fn close(&self, cause: String) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(cause.clone());
            }
            std::mem::take(&mut state.pending)
        };
        for batch in pending {
            let _ = batch.reply.send(Err(cause.clone()));
        }
    }
}

impl Connection {
    /// Connects to `address` (resolved already) within [`CONNECT_TIMEOUT`], with
    /// `TCP_NODELAY` on. `name` is how errors name the server (`host:port`).
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] with the address and the cause.
    pub async fn connect(
        name: &str,
        addresses: &[SocketAddr],
        decoder: Decoder,
    ) -> Result<Connection> {
        let unreachable = |cause: String| Error::Unreachable {
            address: name.to_owned(),
            cause,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addresses))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no answer within {}s (is beanstalkd running and listening on this address?)",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(format!("cannot set TCP_NODELAY: {e}")))?;
        Ok(Connection::from_stream(name, stream, decoder))
    }

    /// Wraps a connected stream; spawns the reader and writer tasks (needs a runtime).
    pub fn from_stream(name: &str, stream: TcpStream, decoder: Decoder) -> Connection {
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                using: "default".into(),
                ..State::default()
            }),
        });
        let (writes, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(write, queued, shared.clone()));
        tokio::spawn(
            Reader {
                read,
                buffer: BytesMut::with_capacity(16 << 10),
                decoder,
                shared: shared.clone(),
            }
            .run(),
        );
        Connection {
            address: name.to_owned(),
            shared,
            writes,
        }
    }

    /// The server's address as given at connect.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the connection is gone (closed by the server, or an I/O error).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Sends one command and waits for its reply.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`].
    pub async fn call(&self, command: Command<'_>) -> Result<Response> {
        let mut replies = self.send(&[command]).await?;
        replies.pop().ok_or_else(|| Error::Protocol {
            backend: "beanstalkd",
            detail: format!("no reply to {command:?}"),
        })
    }

    /// Sends `commands` back to back (no other task's command comes between them) and
    /// waits for their replies, one per command that has one, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] when the connection is closed or closes before the replies
    /// came; [`Error::Protocol`] when the server's bytes were not beanstalkd replies.
    ///
    /// # Cancel safety
    ///
    /// The commands are queued before the first `.await`: dropping the future discards
    /// the replies, never half a command. A `reserve` whose reply is discarded leaves the
    /// job reserved by this connection until its TTR runs out or the connection closes.
    pub async fn send(&self, commands: &[Command<'_>]) -> Result<Vec<Response>> {
        self.send_inner(None, commands).await
    }

    /// Like [`send`](Connection::send), with `tube` in use for the commands: a
    /// `use <tube>` goes first, in the same batch, unless the last `use` queued on this
    /// connection named it already. Its reply is checked and not returned. `tube` must be a
    /// valid name ([`check_tube_name`](super::proto::check_tube_name)).
    ///
    /// # Errors
    ///
    /// As [`send`](Connection::send); a refused `use` closes the connection.
    pub async fn send_using(&self, tube: &str, commands: &[Command<'_>]) -> Result<Vec<Response>> {
        self.send_inner(Some(tube), commands).await
    }

    async fn send_inner(
        &self,
        tube: Option<&str>,
        commands: &[Command<'_>],
    ) -> Result<Vec<Response>> {
        let body: usize = commands
            .iter()
            .map(|command| match command {
                Command::Put { body, .. } => body.len(),
                _ => 0,
            })
            .sum();
        let mut bytes = Vec::with_capacity(body + 48 * (commands.len() + 1));
        let (reply, replied) = oneshot::channel();
        let prepended;
        let expected;
        {
            let mut state = self.shared.lock();
            if let Some(cause) = &state.closed {
                return Err(self.unreachable(cause.clone()));
            }
            prepended = tube.filter(|tube| state.using != *tube);
            if let Some(tube) = prepended {
                Command::Use(tube).encode(&mut bytes);
                state.using = tube.to_owned();
            }
            for command in commands {
                command.encode(&mut bytes);
                if let Command::Use(tube) = command {
                    state.using = (*tube).to_owned();
                }
            }
            expected = usize::from(prepended.is_some())
                + commands.iter().filter(|c| c.expects_reply()).count();
            if expected > 0 {
                state.pending.push_back(Pending {
                    expected,
                    replies: Vec::with_capacity(expected),
                    reply,
                });
            }
            // Under the lock, so that the order of writes is the order of `pending`.
            if self.writes.send(bytes).is_err() {
                if expected > 0 {
                    state.pending.pop_back();
                }
                return Err(self.unreachable("connection closed".into()));
            }
        }
        if expected == 0 {
            return Ok(Vec::new());
        }
        let mut replies = match replied.await {
            Ok(Ok(replies)) => replies,
            Ok(Err(cause)) => return Err(self.unreachable(cause)),
            Err(_) => return Err(self.unreachable("connection closed".into())),
        };
        if let Some(tube) = prepended {
            let used = replies.remove(0);
            if used != Response::Using(tube.to_owned()) {
                // Later batches assumed this tube: nothing on this connection can be
                // trusted any more.
                let detail = format!("`use {tube}` answered {used}");
                self.shared.close(detail.clone());
                return Err(Error::Protocol {
                    backend: "beanstalkd",
                    detail,
                });
            }
        }
        Ok(replies)
    }

    fn unreachable(&self, cause: String) -> Error {
        Error::Unreachable {
            address: self.address.clone(),
            cause,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends when its channel closes, and shuts the socket down; the reader
        // then sees end of file. Waiting callers hold no `Connection`, so none is left.
        self.shared.close("connection dropped".into());
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queued: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut out = Vec::new();
    while let Some(first) = queued.recv().await {
        // Let the tasks that are ready to run now queue their commands too, so that one
        // `write` carries many (a burst of replies wakes many senders at once).
        tokio::task::yield_now().await;
        out.clear();
        out.extend_from_slice(&first);
        while out.len() < WRITE_CHUNK {
            match queued.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(error) = write.write_all(&out).await {
            shared.close(format!("write failed: {error}"));
            return;
        }
    }
    let _ = write.shutdown().await;
}

struct Reader {
    read: OwnedReadHalf,
    buffer: BytesMut,
    decoder: Decoder,
    shared: Arc<Shared>,
}

impl Reader {
    async fn run(mut self) {
        let cause = self.read_replies().await;
        self.shared.close(cause);
    }

    /// Reads until the stream ends or fails; returns why.
    async fn read_replies(&mut self) -> String {
        loop {
            loop {
                match self.decoder.decode(&mut self.buffer) {
                    Ok(Some(response)) => {
                        if let Err(cause) = self.deliver(response) {
                            return cause;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => return format!("protocol error: {error}"),
                }
            }
            if self.buffer.capacity() - self.buffer.len() < 4096 {
                self.buffer.reserve(16 << 10);
            }
            match self.read.read_buf(&mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => {
                    return "the server closed the connection".into()
                }
                Ok(0) => return "connection reset by peer in the middle of a reply".into(),
                Ok(_) => {}
                Err(error) => return format!("read failed: {error}"),
            }
        }
    }

    fn deliver(&self, response: Response) -> std::result::Result<(), String> {
        let mut state = self.shared.lock();
        let Some(batch) = state.pending.front_mut() else {
            return Err(format!(
                "unexpected reply {response} with no command waiting"
            ));
        };
        batch.replies.push(response);
        if batch.replies.len() == batch.expected {
            if let Some(batch) = state.pending.pop_front() {
                // The sender may have gone away (a dropped future): fine.
                let _ = batch.reply.send(Ok(batch.replies));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A fake server answering each line with the next canned reply.
    async fn fake(
        replies: Vec<&'static [u8]>,
    ) -> (Connection, tokio::task::JoinHandle<Vec<String>>) {
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
        let (connection, server) =
            fake(vec![b"USING a\r\n", b"INSERTED 1\r\n", b"DELETED\r\n"]).await;
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
}
