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
//! later `send` fails with [`Error::Unreachable`]; when the server's bytes are not
//! beanstalkd replies, with [`Error::Protocol`]; [`Connection::is_closed`] tells.
//!
//! # Deadlines
//!
//! A server that accepts connections but never answers (a stopped process, a proxy whose
//! backend hangs) must not hang its callers. A watchdog task checks every
//! [`WATCHDOG_TICK`] that the oldest unanswered batch made progress (a reply arrived, or
//! it became the oldest) within [`REPLY_TIMEOUT`], plus the time its own
//! `reserve-with-timeout` may wait in the server. If not, the connection is abandoned: every
//! waiting and later call fails with [`Error::Unreachable`] saying no reply came, and the
//! socket is closed. A caller therefore hears within about `REPLY_TIMEOUT`; a plain
//! `reserve` (no timeout) is the one command without a deadline.
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> mq::Result<()> {
//! use mq::transport::beanstalk::connection::Connection;
//! use mq::transport::beanstalk::proto::{Command, Decoder};
//!
//! let address = "127.0.0.1:11300".parse().unwrap();
//! let connection = Connection::connect("127.0.0.1:11300", &[address], Decoder::default()).await?;
//! let replies = connection.send(&[Command::Stats, Command::ListTubes]).await?; // one round trip
//! # Ok(()) }
//! ```

mod deadline;
mod io;
mod state;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::proto::{Command, Decoder, Response};
use crate::{Error, Result};
use deadline::{allowance, watchdog};
pub use deadline::{REPLY_TIMEOUT, WATCHDOG_TICK};
use io::{write_loop, Reader};
use state::{Closed, Pending, Shared, State};

/// How long [`Connection::connect`] waits for the TCP handshake.
///
/// ```
/// use mq::transport::beanstalk::connection::CONNECT_TIMEOUT;
///
/// assert_eq!(CONNECT_TIMEOUT.as_secs(), 5);
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection; cheap to share behind an `Arc`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
/// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
/// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
/// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// #     let address = listener.local_addr().unwrap();
/// #     tokio::spawn(async move {
/// #         while let Ok((mut socket, _)) = listener.accept().await {
/// #             tokio::spawn(async move {
/// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
/// #                 for &(lines, reply) in script {
/// #                     while seen < lines {
/// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
/// #                         if n == 0 {
/// #                             return;
/// #                         }
/// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
/// #                     }
/// #                     seen -= lines;
/// #                     socket.write_all(reply.as_bytes()).await.unwrap();
/// #                 }
/// #             });
/// #         }
/// #     });
/// #     address
/// # }
/// # let address = fake_beanstalkd(&[(2, "INSERTED 1\r\n"), (2, "INSERTED 2\r\n")]).await;
/// use mq::transport::beanstalk::connection::Connection;
/// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
///
/// use std::sync::Arc;
///
/// let connection = Arc::new(Connection::connect("beanstalkd", &[address], Decoder::default()).await?);
/// let put = |body: &'static [u8]| {
///     let connection = connection.clone();
///     async move { connection.call(Command::Put { priority: 0, delay: 0, ttr: 60, body }).await }
/// };
/// // Two tasks, one connection: the commands are pipelined, each gets its own reply.
/// let (first, second) = tokio::join!(put(b"a"), put(b"b"));
/// let mut ids = [first?, second?].map(|reply| reply.to_string());
/// ids.sort();
/// assert_eq!(ids, ["INSERTED 1", "INSERTED 2"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Connection {
    address: String,
    shared: Arc<Shared>,
    writes: mpsc::UnboundedSender<Vec<u8>>,
}

impl Connection {
    /// Connects to `address` (resolved already) within [`CONNECT_TIMEOUT`], with
    /// `TCP_NODELAY` on. `name` is how errors name the server (`host:port`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(1, "WATCHING 2\r\n")]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("beanstalkd", &[address], Decoder::default()).await?;
    /// assert_eq!(connection.call(Command::Watch("emails")).await?, Response::Watching(2));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] with the address and the cause.
    pub async fn connect(
        name: &str,
        addresses: &[SocketAddr],
        decoder: Decoder,
    ) -> Result<Connection> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addresses))
            .await
            .map_err(|_| {
                Error::unreachable(
                    name,
                    format!(
                        "no answer within {}s (is beanstalkd running and listening on this \
                         address?)",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|e| Error::unreachable_by(name, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Error::unreachable_by(name, e))?;
        Ok(Connection::from_stream(name, stream, decoder))
    }

    /// Wraps a connected stream; spawns the reader and writer tasks (needs a runtime).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(1, "TOUCHED\r\n")]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let stream = tokio::net::TcpStream::connect(address).await?;
    /// let connection = Connection::from_stream("beanstalkd", stream, Decoder::new(1024, 1 << 20));
    /// assert_eq!(connection.call(Command::Touch(7)).await?, Response::Touched);
    /// # Ok(()) }
    /// ```
    pub fn from_stream(name: &str, stream: TcpStream, decoder: Decoder) -> Connection {
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: VecDeque::new(),
                closed: None,
                using: "default".into(),
                progress_at: Instant::now(),
            }),
            tasks: Mutex::new(Vec::new()),
        });
        let (writes, queued) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(write, queued, shared.clone()));
        let reader = tokio::spawn(
            Reader {
                read,
                buffer: BytesMut::with_capacity(16 << 10),
                decoder,
                shared: shared.clone(),
            }
            .run(),
        );
        if let Ok(mut tasks) = shared.tasks.lock() {
            tasks.extend([writer.abort_handle(), reader.abort_handle()]);
        }
        tokio::spawn(watchdog(Arc::downgrade(&shared), name.to_owned()));
        Connection {
            address: name.to_owned(),
            shared,
            writes,
        }
    }

    /// The server's address as given at connect.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("queue-1:11300", &[address], Decoder::default()).await?;
    /// assert_eq!(connection.address(), "queue-1:11300");
    /// # Ok(()) }
    /// ```
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the connection is gone (closed by the server, or an I/O error).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[]).await; // hangs up at once
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("beanstalkd", &[address], Decoder::default()).await?;
    /// let reply = connection.call(Command::Stats).await;
    /// assert!(matches!(reply, Err(mq::Error::Unreachable { .. })));
    /// assert!(connection.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Sends one command and waits for its reply.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(1, "NOT_FOUND\r\n")]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("beanstalkd", &[address], Decoder::default()).await?;
    /// // The server's error replies are replies: the caller decides what they mean.
    /// assert_eq!(connection.call(Command::Delete(42)).await?, Response::NotFound);
    /// # Ok(()) }
    /// ```
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(2, "DELETED\r\nNOT_FOUND\r\n")]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("beanstalkd", &[address], Decoder::default()).await?;
    /// let replies = connection.send(&[Command::Delete(1), Command::Delete(2)]).await?;
    /// assert_eq!(replies, [Response::Deleted, Response::NotFound]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] when the connection is closed or closes before the replies
    /// came, or no reply came within [`REPLY_TIMEOUT`] (see the module doc);
    /// [`Error::Protocol`] when the server's bytes were not beanstalkd replies.
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// A fake beanstalkd on a loopback port: on each connection, for each step, waits for
    /// # /// `lines` more `\r\n` from the client, then writes `reply`; then hangs up.
    /// # async fn fake_beanstalkd(script: &'static [(usize, &'static str)]) -> std::net::SocketAddr {
    /// #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// #     let address = listener.local_addr().unwrap();
    /// #     tokio::spawn(async move {
    /// #         while let Ok((mut socket, _)) = listener.accept().await {
    /// #             tokio::spawn(async move {
    /// #                 let (mut seen, mut buf) = (0, [0u8; 4096]);
    /// #                 for &(lines, reply) in script {
    /// #                     while seen < lines {
    /// #                         let n = socket.read(&mut buf).await.unwrap_or(0);
    /// #                         if n == 0 {
    /// #                             return;
    /// #                         }
    /// #                         seen += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
    /// #                     }
    /// #                     seen -= lines;
    /// #                     socket.write_all(reply.as_bytes()).await.unwrap();
    /// #                 }
    /// #             });
    /// #         }
    /// #     });
    /// #     address
    /// # }
    /// # let address = fake_beanstalkd(&[(3, "USING emails\r\nINSERTED 9\r\n")]).await;
    /// use mq::transport::beanstalk::connection::Connection;
    /// use mq::transport::beanstalk::proto::{Command, Decoder, Response};
    ///
    /// let connection = Connection::connect("beanstalkd", &[address], Decoder::default()).await?;
    /// let put = Command::Put { priority: 0, delay: 0, ttr: 60, body: b"hello" };
    /// // Sends `use emails`, then the put; the `USING` reply is checked, not returned.
    /// assert_eq!(connection.send_using("emails", &[put]).await?, [Response::Inserted(9)]);
    /// # Ok(()) }
    /// ```
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
                return Err(self.error(cause.clone()));
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
                if state.pending.is_empty() {
                    state.progress_at = Instant::now();
                }
                state.pending.push_back(Pending {
                    expected,
                    allowance: allowance(commands),
                    replies: Vec::with_capacity(expected),
                    reply,
                });
            }
            // Under the lock, so that the order of writes is the order of `pending`.
            if self.writes.send(bytes).is_err() {
                if expected > 0 {
                    state.pending.pop_back();
                }
                return Err(self.unreachable("connection closed"));
            }
        }
        if expected == 0 {
            return Ok(Vec::new());
        }
        let mut replies = match replied.await {
            Ok(Ok(replies)) => replies,
            Ok(Err(cause)) => return Err(self.error(cause)),
            Err(_) => return Err(self.unreachable("connection closed")),
        };
        if let Some(tube) = prepended {
            let used = replies.remove(0);
            if used != Response::Using(tube.to_owned()) {
                // Later batches assumed this tube: nothing on this connection can be
                // trusted any more.
                let detail = format!("`use {tube}` answered {used}");
                self.shared.close(Closed::Protocol(detail.clone()));
                return Err(Error::Protocol {
                    backend: "beanstalkd",
                    detail,
                });
            }
        }
        Ok(replies)
    }

    fn unreachable(&self, cause: &str) -> Error {
        self.error(Closed::Unreachable(cause.to_owned(), None))
    }

    fn error(&self, closed: Closed) -> Error {
        match closed {
            Closed::Unreachable(cause, kind) => Error::Unreachable {
                address: self.address.clone(),
                source: kind.map(|kind| -> crate::error::Cause {
                    Box::new(std::io::Error::new(kind, cause.clone()))
                }),
                cause,
            },
            Closed::Protocol(detail) => Error::Protocol {
                backend: "beanstalkd",
                detail: format!(
                    "{detail} (from {}: is this a beanstalkd server?)",
                    self.address
                ),
            },
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends when its channel closes, and shuts the socket down; the reader
        // then sees end of file. Waiting callers hold no `Connection`, so none is left.
        self.shared
            .close(Closed::Unreachable("connection dropped".into(), None));
    }
}

#[cfg(test)]
mod tests;
