//! The beanstalkd protocol (version 1.12) as values: [`Command`]s to encode and
//! [`Response`]s decoded from bytes. No I/O happens here.
//!
//! The [`Decoder`] works like a tokio-util decoder: [`Decoder::decode`] returns `Ok(None)`
//! until a whole reply line and, for `RESERVED`, `FOUND` and `OK`, its `<bytes>\r\n` body
//! are in the buffer, and consumes nothing until then. Every reply of the protocol,
//! including the server's error replies (`OUT_OF_MEMORY`, `BAD_FORMAT`, `JOB_TOO_BIG`,
//! `NOT_FOUND`, ...), is a [`Response`] value; only a byte stream that is not beanstalkd's
//! (a line that is too long, an unknown word, a body without its `\r\n`) is a
//! [`ProtoError`], after which the stream cannot be trusted any more.
//!
//! Every length is bounded: a reply line by [`Decoder::max_line`], a body by
//! [`Decoder::max_body`], checked before any buffer space is reserved for it.
//!
//! # Examples
//!
//! ```
//! use mq::transport::beanstalk::proto::{Command, Decoder, Response};
//! use bytes::BytesMut;
//!
//! let mut out = Vec::new();
//! Command::Delete(7).encode(&mut out);
//! assert_eq!(out, b"delete 7\r\n");
//!
//! let mut replies = BytesMut::from("DELETED\r\n");
//! assert_eq!(Decoder::default().decode(&mut replies), Ok(Some(Response::Deleted)));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// The longest tube name beanstalkd accepts, in bytes.
///
/// ```
/// use mq::transport::beanstalk::proto::{check_tube_name, MAX_TUBE_NAME};
///
/// assert!(check_tube_name(&"a".repeat(MAX_TUBE_NAME)).is_ok());
/// assert!(check_tube_name(&"a".repeat(MAX_TUBE_NAME + 1)).is_err());
/// ```
pub const MAX_TUBE_NAME: usize = 200;

/// The default bound of a reply line; the longest legitimate one is `USING <200 bytes>`.
///
/// ```
/// use mq::transport::beanstalk::proto::{Decoder, ProtoError, DEFAULT_MAX_LINE};
/// use bytes::BytesMut;
///
/// let mut decoder = Decoder::default();
/// assert_eq!(decoder.max_line, DEFAULT_MAX_LINE);
/// let mut buf = BytesMut::from(&vec![b'A'; DEFAULT_MAX_LINE + 1][..]); // no \r\n in sight
/// assert_eq!(decoder.decode(&mut buf), Err(ProtoError::LineTooLong { max: DEFAULT_MAX_LINE }));
/// ```
pub const DEFAULT_MAX_LINE: usize = 1024;

/// The default bound of a reply body: 16 MiB, above beanstalkd's default job size limit
/// (65,535 bytes) and any `stats` or `list-tubes` reply of a sane server.
///
/// ```
/// use mq::transport::beanstalk::proto::{Decoder, ProtoError, DEFAULT_MAX_BODY};
/// use bytes::BytesMut;
///
/// let mut decoder = Decoder::default();
/// let mut buf = BytesMut::from(format!("RESERVED 1 {}\r\n", DEFAULT_MAX_BODY + 1).as_str());
/// assert!(matches!(decoder.decode(&mut buf), Err(ProtoError::BodyTooLong { .. })));
/// ```
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// A command of the beanstalkd protocol.
///
/// ```
/// use mq::transport::beanstalk::proto::Command;
///
/// let mut out = Vec::new();
/// Command::Use("emails").encode(&mut out);
/// Command::Put { priority: 10, delay: 0, ttr: 60, body: b"hello" }.encode(&mut out);
/// assert_eq!(out, b"use emails\r\nput 10 0 60 5\r\nhello\r\n");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `put <pri> <delay> <ttr> <bytes>`: a new job on the used tube.
    Put {
        /// Lower is more urgent.
        priority: u32,
        /// Seconds before the job is ready.
        delay: u32,
        /// Seconds a reservation lasts.
        ttr: u32,
        /// The job body.
        body: &'a [u8],
    },
    /// `use <tube>`: the tube that `put` and `peek-*` and `kick` act on.
    Use(&'a str),
    /// `reserve`: waits without limit for a job of a watched tube.
    Reserve,
    /// `reserve-with-timeout <seconds>`.
    ReserveWithTimeout(u32),
    /// `reserve-job <id>`: reserves a job by id, whatever its state.
    ReserveJob(u64),
    /// `delete <id>`.
    Delete(u64),
    /// `release <id> <pri> <delay>`: hands a reserved job back.
    Release {
        /// The job.
        id: u64,
        /// Its new priority.
        priority: u32,
        /// Seconds before it is ready again.
        delay: u32,
    },
    /// `bury <id> <pri>`.
    Bury {
        /// The job.
        id: u64,
        /// Its new priority.
        priority: u32,
    },
    /// `touch <id>`: extends a reservation by the job's TTR.
    Touch(u64),
    /// `watch <tube>`.
    Watch(&'a str),
    /// `ignore <tube>`.
    Ignore(&'a str),
    /// `peek <id>`.
    Peek(u64),
    /// `peek-ready` on the used tube.
    PeekReady,
    /// `peek-delayed` on the used tube.
    PeekDelayed,
    /// `peek-buried` on the used tube.
    PeekBuried,
    /// `kick <bound>`: buried jobs of the used tube, or delayed ones if none is buried.
    Kick(u32),
    /// `kick-job <id>`.
    KickJob(u64),
    /// `stats`: the server's statistics (YAML map).
    Stats,
    /// `stats-job <id>` (YAML map).
    StatsJob(u64),
    /// `stats-tube <tube>` (YAML map).
    StatsTube(&'a str),
    /// `list-tubes` (YAML list).
    ListTubes,
    /// `list-tube-used`.
    ListTubeUsed,
    /// `list-tubes-watched` (YAML list).
    ListTubesWatched,
    /// `pause-tube <tube> <delay>`.
    PauseTube {
        /// The tube.
        tube: &'a str,
        /// Seconds during which no job of it is reserved.
        delay: u32,
    },
    /// `quit`: the server closes the connection; there is no reply.
    Quit,
}

impl Command<'_> {
    /// Appends the command's bytes (line, and body for `put`) to `out`.
    ///
    /// ```
    /// use mq::transport::beanstalk::proto::Command;
    ///
    /// let mut out = b"watch emails\r\n".to_vec();
    /// Command::ReserveWithTimeout(5).encode(&mut out);
    /// assert_eq!(out, b"watch emails\r\nreserve-with-timeout 5\r\n");
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = match *self {
            Command::Put {
                priority,
                delay,
                ttr,
                body,
            } => {
                let _ = write!(out, "put {priority} {delay} {ttr} {}\r\n", body.len());
                out.extend_from_slice(body);
                out.write_all(b"\r\n")
            }
            Command::Use(tube) => write!(out, "use {tube}\r\n"),
            Command::Reserve => out.write_all(b"reserve\r\n"),
            Command::ReserveWithTimeout(seconds) => {
                write!(out, "reserve-with-timeout {seconds}\r\n")
            }
            Command::ReserveJob(id) => write!(out, "reserve-job {id}\r\n"),
            Command::Delete(id) => write!(out, "delete {id}\r\n"),
            Command::Release {
                id,
                priority,
                delay,
            } => write!(out, "release {id} {priority} {delay}\r\n"),
            Command::Bury { id, priority } => write!(out, "bury {id} {priority}\r\n"),
            Command::Touch(id) => write!(out, "touch {id}\r\n"),
            Command::Watch(tube) => write!(out, "watch {tube}\r\n"),
            Command::Ignore(tube) => write!(out, "ignore {tube}\r\n"),
            Command::Peek(id) => write!(out, "peek {id}\r\n"),
            Command::PeekReady => out.write_all(b"peek-ready\r\n"),
            Command::PeekDelayed => out.write_all(b"peek-delayed\r\n"),
            Command::PeekBuried => out.write_all(b"peek-buried\r\n"),
            Command::Kick(bound) => write!(out, "kick {bound}\r\n"),
            Command::KickJob(id) => write!(out, "kick-job {id}\r\n"),
            Command::Stats => out.write_all(b"stats\r\n"),
            Command::StatsJob(id) => write!(out, "stats-job {id}\r\n"),
            Command::StatsTube(tube) => write!(out, "stats-tube {tube}\r\n"),
            Command::ListTubes => out.write_all(b"list-tubes\r\n"),
            Command::ListTubeUsed => out.write_all(b"list-tube-used\r\n"),
            Command::ListTubesWatched => out.write_all(b"list-tubes-watched\r\n"),
            Command::PauseTube { tube, delay } => write!(out, "pause-tube {tube} {delay}\r\n"),
            Command::Quit => out.write_all(b"quit\r\n"),
        };
    }

    /// Whether the server answers this command (all but `quit`).
    ///
    /// ```
    /// use mq::transport::beanstalk::proto::Command;
    ///
    /// assert!(Command::Delete(7).expects_reply());
    /// assert!(!Command::Quit.expects_reply());
    /// ```
    pub fn expects_reply(&self) -> bool {
        !matches!(self, Command::Quit)
    }
}

/// Checks a tube name against beanstalkd's rules: 1 to 200 bytes of letters, digits and
/// `-+/;.$_()`, not starting with `-`.
///
/// # Errors
///
/// A text saying what is wrong with the name.
///
/// ```
/// use mq::transport::beanstalk::proto::check_tube_name;
///
/// assert!(check_tube_name("mq-failed.emails").is_ok());
/// assert!(check_tube_name("").is_err());
/// assert!(check_tube_name("-emails").is_err());
/// assert!(check_tube_name("e mails").is_err());
/// ```
pub fn check_tube_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a tube name cannot be empty".into());
    }
    if name.len() > MAX_TUBE_NAME {
        return Err(format!(
            "tube name is {} bytes, beanstalkd allows at most {MAX_TUBE_NAME}",
            name.len()
        ));
    }
    if name.starts_with('-') {
        return Err("a tube name cannot start with `-`".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-+/;.$_()".contains(*c)))
    {
        return Err(format!(
            "tube name contains {bad:?}; beanstalkd allows letters, digits and -+/;.$_()"
        ));
    }
    Ok(())
}

/// A reply of the server.
///
/// ```
/// use mq::transport::beanstalk::proto::{Decoder, Response};
/// use bytes::BytesMut;
///
/// let mut decoder = Decoder::default();
/// let mut buf = BytesMut::from("INSERTED 7\r\nNOT_FOUND\r\n");
/// assert_eq!(decoder.decode(&mut buf)?, Some(Response::Inserted(7)));
/// assert_eq!(decoder.decode(&mut buf)?, Some(Response::NotFound)); // a reply, not an error
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// # Ok::<(), mq::transport::beanstalk::proto::ProtoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// `INSERTED <id>` (put).
    Inserted(u64),
    /// `BURIED <id>` (put: the server ran out of memory growing its priority queue).
    BuriedId(u64),
    /// `BURIED` (release, bury).
    Buried,
    /// `USING <tube>` (use, list-tube-used).
    Using(String),
    /// `RESERVED <id> <bytes>` and the body (reserve*).
    Reserved {
        /// The job id.
        id: u64,
        /// The job body.
        body: Bytes,
    },
    /// `DEADLINE_SOON` (reserve*): a job this connection reserved is about to expire.
    DeadlineSoon,
    /// `TIMED_OUT` (reserve-with-timeout).
    TimedOut,
    /// `DELETED`.
    Deleted,
    /// `RELEASED`.
    Released,
    /// `TOUCHED`.
    Touched,
    /// `WATCHING <count>` (watch, ignore).
    Watching(u64),
    /// `NOT_IGNORED` (ignore of the last watched tube).
    NotIgnored,
    /// `FOUND <id> <bytes>` and the body (peek*).
    Found {
        /// The job id.
        id: u64,
        /// The job body.
        body: Bytes,
    },
    /// `KICKED <count>` (kick).
    KickedCount(u64),
    /// `KICKED` (kick-job).
    Kicked,
    /// `OK <bytes>` and a YAML body (stats*, list-tubes*).
    Ok(Bytes),
    /// `PAUSED`.
    Paused,
    /// `NOT_FOUND`.
    NotFound,
    /// `OUT_OF_MEMORY`.
    OutOfMemory,
    /// `INTERNAL_ERROR`.
    InternalError,
    /// `BAD_FORMAT`.
    BadFormat,
    /// `UNKNOWN_COMMAND`.
    UnknownCommand,
    /// `EXPECTED_CRLF` (put).
    ExpectedCrlf,
    /// `JOB_TOO_BIG` (put).
    JobTooBig,
    /// `DRAINING` (put: the server is in drain mode).
    Draining,
}

impl Response {
    /// The reply's first word, as the server wrote it, for error messages.
    ///
    /// ```
    /// use mq::transport::beanstalk::proto::Response;
    ///
    /// assert_eq!(Response::JobTooBig.word(), "JOB_TOO_BIG");
    /// assert_eq!(Response::Inserted(7).word(), "INSERTED");
    /// assert_eq!(Response::Inserted(7).to_string(), "INSERTED 7");
    /// ```
    pub fn word(&self) -> &'static str {
        match self {
            Response::Inserted(_) => "INSERTED",
            Response::BuriedId(_) | Response::Buried => "BURIED",
            Response::Using(_) => "USING",
            Response::Reserved { .. } => "RESERVED",
            Response::DeadlineSoon => "DEADLINE_SOON",
            Response::TimedOut => "TIMED_OUT",
            Response::Deleted => "DELETED",
            Response::Released => "RELEASED",
            Response::Touched => "TOUCHED",
            Response::Watching(_) => "WATCHING",
            Response::NotIgnored => "NOT_IGNORED",
            Response::Found { .. } => "FOUND",
            Response::KickedCount(_) | Response::Kicked => "KICKED",
            Response::Ok(_) => "OK",
            Response::Paused => "PAUSED",
            Response::NotFound => "NOT_FOUND",
            Response::OutOfMemory => "OUT_OF_MEMORY",
            Response::InternalError => "INTERNAL_ERROR",
            Response::BadFormat => "BAD_FORMAT",
            Response::UnknownCommand => "UNKNOWN_COMMAND",
            Response::ExpectedCrlf => "EXPECTED_CRLF",
            Response::JobTooBig => "JOB_TOO_BIG",
            Response::Draining => "DRAINING",
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Inserted(id) | Response::BuriedId(id) => write!(f, "{} {id}", self.word()),
            Response::Using(tube) => write!(f, "USING {tube}"),
            Response::Reserved { id, body } | Response::Found { id, body } => {
                write!(f, "{} {id} ({} bytes)", self.word(), body.len())
            }
            Response::Watching(n) | Response::KickedCount(n) => write!(f, "{} {n}", self.word()),
            Response::Ok(body) => write!(f, "OK ({} bytes)", body.len()),
            other => f.write_str(other.word()),
        }
    }
}

/// A byte stream that is not a beanstalkd reply stream.
///
/// ```
/// use mq::transport::beanstalk::proto::{Decoder, ProtoError};
/// use bytes::BytesMut;
///
/// let mut buf = BytesMut::from("HELLO 1\r\n"); // not a beanstalkd reply
/// let error = Decoder::default().decode(&mut buf).unwrap_err();
/// assert!(matches!(error, ProtoError::Malformed(_)));
/// assert_eq!(error.to_string(), r#"unexpected reply line "HELLO 1""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// No `\r\n` within the first `max` bytes.
    #[error("reply line longer than {max} bytes")]
    LineTooLong {
        /// The bound.
        max: usize,
    },
    /// A body length over the bound.
    #[error("reply body of {len} bytes is over the limit of {max} bytes")]
    BodyTooLong {
        /// The announced length.
        len: u64,
        /// The bound.
        max: usize,
    },
    /// A body not followed by `\r\n`.
    #[error("reply body not followed by \\r\\n")]
    MissingCrlf,
    /// A line that is not a reply of the protocol.
    #[error("unexpected reply line {0:?}")]
    Malformed(String),
    /// A YAML body that is not beanstalkd's flat YAML.
    #[error("unexpected YAML in reply: {0}")]
    Yaml(String),
}

/// Decodes replies from a byte buffer; see the [module docs](self).
///
/// ```
/// use mq::transport::beanstalk::proto::{Decoder, Response};
/// use bytes::BytesMut;
///
/// let mut decoder = Decoder::default();
/// let mut buf = BytesMut::from("RESERVED 12 5\r\nhel");
/// assert_eq!(decoder.decode(&mut buf)?, None); // the body is not all there
/// assert_eq!(buf.len(), 18); // nothing consumed
/// buf.extend_from_slice(b"lo\r\n");
/// let reply = decoder.decode(&mut buf)?;
/// assert_eq!(reply, Some(Response::Reserved { id: 12, body: "hello".into() }));
/// assert!(buf.is_empty());
/// # Ok::<(), mq::transport::beanstalk::proto::ProtoError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// The longest reply line accepted, `\r\n` included.
    pub max_line: usize,
    /// The longest body accepted.
    pub max_body: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_line: DEFAULT_MAX_LINE,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Decoder {
    /// A decoder with the given bounds.
    ///
    /// ```
    /// use mq::transport::beanstalk::proto::{Decoder, ProtoError};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::new(64, 4); // bodies of 4 bytes at most
    /// let mut buf = BytesMut::from("FOUND 3 5\r\nhello\r\n");
    /// assert_eq!(decoder.decode(&mut buf), Err(ProtoError::BodyTooLong { len: 5, max: 4 }));
    /// ```
    pub fn new(max_line: usize, max_body: usize) -> Decoder {
        Decoder { max_line, max_body }
    }

    /// Takes one whole reply off the front of `buf`, or returns `Ok(None)` and leaves `buf`
    /// as it is when more bytes are needed.
    ///
    /// ```
    /// use mq::transport::beanstalk::proto::{Decoder, Response};
    /// use bytes::BytesMut;
    ///
    /// let mut decoder = Decoder::default();
    /// let mut buf = BytesMut::from("DELE");
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// buf.extend_from_slice(b"TED\r\nOK 8\r\n---\n- a\n\r\n");
    /// assert_eq!(decoder.decode(&mut buf)?, Some(Response::Deleted));
    /// assert_eq!(decoder.decode(&mut buf)?, Some(Response::Ok("---\n- a\n".into())));
    /// # Ok::<(), mq::transport::beanstalk::proto::ProtoError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ProtoError`] when the bytes are not a beanstalkd reply; the stream is corrupt.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, ProtoError> {
        let window = &buf[..buf.len().min(self.max_line)];
        let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
            if buf.len() >= self.max_line {
                return Err(ProtoError::LineTooLong { max: self.max_line });
            }
            return Ok(None);
        };
        let line = &buf[..end];
        let malformed = || ProtoError::Malformed(String::from_utf8_lossy(line).into_owned());
        let text = std::str::from_utf8(line).map_err(|_| malformed())?;
        let mut words = text.split(' ');
        let word = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let number =
            |i: usize| -> Result<u64, ProtoError> { parse_u64(args.get(i)).ok_or_else(malformed) };
        let arity = |n: usize| -> Result<(), ProtoError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(malformed())
            }
        };

        // Replies with a body: check the whole frame is there before consuming anything.
        if matches!(word, "RESERVED" | "FOUND" | "OK") {
            let (id, len) = if word == "OK" {
                arity(1)?;
                (0, number(0)?)
            } else {
                arity(2)?;
                (number(0)?, number(1)?)
            };
            let body_len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= self.max_body)
                .ok_or(ProtoError::BodyTooLong {
                    len,
                    max: self.max_body,
                })?;
            let frame = end + 2 + body_len + 2;
            if buf.len() < frame {
                buf.reserve(frame - buf.len());
                return Ok(None);
            }
            if &buf[frame - 2..frame] != b"\r\n" {
                return Err(ProtoError::MissingCrlf);
            }
            let word = if word == "OK" {
                0
            } else if word == "FOUND" {
                1
            } else {
                2
            };
            buf.advance(end + 2);
            let body = buf.split_to(body_len).freeze();
            buf.advance(2);
            return Ok(Some(match word {
                0 => Response::Ok(body),
                1 => Response::Found { id, body },
                _ => Response::Reserved { id, body },
            }));
        }

        let response = match (word, args.len()) {
            ("INSERTED", 1) => Response::Inserted(number(0)?),
            ("BURIED", 1) => Response::BuriedId(number(0)?),
            ("BURIED", 0) => Response::Buried,
            ("USING", 1) => {
                check_tube_name(args[0]).map_err(|_| malformed())?;
                Response::Using(args[0].to_owned())
            }
            ("DEADLINE_SOON", 0) => Response::DeadlineSoon,
            ("TIMED_OUT", 0) => Response::TimedOut,
            ("DELETED", 0) => Response::Deleted,
            ("RELEASED", 0) => Response::Released,
            ("TOUCHED", 0) => Response::Touched,
            ("WATCHING", 1) => Response::Watching(number(0)?),
            ("NOT_IGNORED", 0) => Response::NotIgnored,
            ("KICKED", 1) => Response::KickedCount(number(0)?),
            ("KICKED", 0) => Response::Kicked,
            ("PAUSED", 0) => Response::Paused,
            ("NOT_FOUND", 0) => Response::NotFound,
            ("OUT_OF_MEMORY", 0) => Response::OutOfMemory,
            ("INTERNAL_ERROR", 0) => Response::InternalError,
            ("BAD_FORMAT", 0) => Response::BadFormat,
            ("UNKNOWN_COMMAND", 0) => Response::UnknownCommand,
            ("EXPECTED_CRLF", 0) => Response::ExpectedCrlf,
            ("JOB_TOO_BIG", 0) => Response::JobTooBig,
            ("DRAINING", 0) => Response::Draining,
            _ => return Err(malformed()),
        };
        buf.advance(end + 2);
        Ok(Some(response))
    }
}

/// A decimal number as beanstalkd writes it: digits only, no sign, no leading `+`.
fn parse_u64(text: Option<&&str>) -> Option<u64> {
    let text = text?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses the flat YAML map of `stats`, `stats-job` and `stats-tube`: `---` then one
/// `key: value` per line; double quotes around a value are removed.
///
/// # Errors
///
/// [`ProtoError::Yaml`] for anything else.
///
/// ```
/// use mq::transport::beanstalk::proto::parse_yaml_map;
///
/// let stats = parse_yaml_map(b"---\ncurrent-jobs-ready: 3\nname: \"emails\"\n")?;
/// assert_eq!(stats["current-jobs-ready"], "3");
/// assert_eq!(stats["name"], "emails");
/// assert!(parse_yaml_map(b"not yaml").is_err());
/// # Ok::<(), mq::transport::beanstalk::proto::ProtoError>(())
/// ```
pub fn parse_yaml_map(body: &[u8]) -> Result<BTreeMap<String, String>, ProtoError> {
    let mut map = BTreeMap::new();
    for line in yaml_lines(body)? {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| ProtoError::Yaml(format!("expected `key: value`, got {line:?}")))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        map.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(map)
}

/// Parses the flat YAML list of `list-tubes` and `list-tubes-watched`: `---` then one
/// `- item` per line.
///
/// # Errors
///
/// [`ProtoError::Yaml`] for anything else.
///
/// ```
/// use mq::transport::beanstalk::proto::parse_yaml_list;
///
/// let tubes = parse_yaml_list(b"---\n- default\n- emails\n")?;
/// assert_eq!(tubes, ["default", "emails"]);
/// # Ok::<(), mq::transport::beanstalk::proto::ProtoError>(())
/// ```
pub fn parse_yaml_list(body: &[u8]) -> Result<Vec<String>, ProtoError> {
    yaml_lines(body)?
        .map(|line| {
            line.strip_prefix("- ")
                .map(|item| item.trim().to_owned())
                .ok_or_else(|| ProtoError::Yaml(format!("expected `- item`, got {line:?}")))
        })
        .collect()
}

fn yaml_lines(body: &[u8]) -> Result<impl Iterator<Item = &str>, ProtoError> {
    let text = std::str::from_utf8(body).map_err(|_| ProtoError::Yaml("not UTF-8".into()))?;
    let mut lines = text.lines();
    if lines.next() != Some("---") {
        return Err(ProtoError::Yaml(
            "document does not start with `---`".into(),
        ));
    }
    Ok(lines.filter(|line| !line.trim().is_empty()))
}

#[cfg(test)]
mod tests;
