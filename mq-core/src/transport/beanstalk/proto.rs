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

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// The longest tube name beanstalkd accepts, in bytes.
pub const MAX_TUBE_NAME: usize = 200;

/// The default bound of a reply line; the longest legitimate one is `USING <200 bytes>`.
pub const DEFAULT_MAX_LINE: usize = 1024;

/// The default bound of a reply body: 16 MiB, above beanstalkd's default job size limit
/// (65,535 bytes) and any `stats` or `list-tubes` reply of a sane server.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// A command of the beanstalkd protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub fn new(max_line: usize, max_body: usize) -> Decoder {
        Decoder { max_line, max_body }
    }

    /// Takes one whole reply off the front of `buf`, or returns `Ok(None)` and leaves `buf`
    /// as it is when more bytes are needed.
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
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Response>, ProtoError> {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(response) = decoder.decode(&mut buf)? {
            out.push(response);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn body(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// Every reply of protocol.txt, with what it decodes to.
    fn every_reply() -> Vec<(&'static [u8], Response)> {
        vec![
            (b"INSERTED 17\r\n", Response::Inserted(17)),
            (b"BURIED 18\r\n", Response::BuriedId(18)),
            (b"BURIED\r\n", Response::Buried),
            (b"USING emails\r\n", Response::Using("emails".into())),
            (
                b"RESERVED 5 11\r\nhello world\r\n",
                Response::Reserved {
                    id: 5,
                    body: body("hello world"),
                },
            ),
            (
                b"RESERVED 6 0\r\n\r\n",
                Response::Reserved {
                    id: 6,
                    body: Bytes::new(),
                },
            ),
            (
                b"RESERVED 7 4\r\na\r\nb\r\n",
                Response::Reserved {
                    id: 7,
                    body: body("a\r\nb"),
                },
            ),
            (b"DEADLINE_SOON\r\n", Response::DeadlineSoon),
            (b"TIMED_OUT\r\n", Response::TimedOut),
            (b"DELETED\r\n", Response::Deleted),
            (b"RELEASED\r\n", Response::Released),
            (b"TOUCHED\r\n", Response::Touched),
            (b"WATCHING 2\r\n", Response::Watching(2)),
            (b"NOT_IGNORED\r\n", Response::NotIgnored),
            (
                b"FOUND 9 3\r\nabc\r\n",
                Response::Found {
                    id: 9,
                    body: body("abc"),
                },
            ),
            (b"KICKED 12\r\n", Response::KickedCount(12)),
            (b"KICKED\r\n", Response::Kicked),
            (
                b"OK 14\r\n---\n- default\n\r\n",
                Response::Ok(body("---\n- default\n")),
            ),
            (b"PAUSED\r\n", Response::Paused),
            (b"NOT_FOUND\r\n", Response::NotFound),
            (b"OUT_OF_MEMORY\r\n", Response::OutOfMemory),
            (b"INTERNAL_ERROR\r\n", Response::InternalError),
            (b"BAD_FORMAT\r\n", Response::BadFormat),
            (b"UNKNOWN_COMMAND\r\n", Response::UnknownCommand),
            (b"EXPECTED_CRLF\r\n", Response::ExpectedCrlf),
            (b"JOB_TOO_BIG\r\n", Response::JobTooBig),
            (b"DRAINING\r\n", Response::Draining),
            (
                b"INSERTED 18446744073709551615\r\n",
                Response::Inserted(u64::MAX),
            ),
        ]
    }

    #[test]
    fn decodes_every_reply_whole() {
        for (bytes, expected) in every_reply() {
            assert_eq!(
                decode_all(bytes).unwrap(),
                vec![expected],
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn decodes_every_reply_split_at_every_offset() {
        for (bytes, expected) in every_reply() {
            for split in 0..bytes.len() {
                let mut decoder = Decoder::default();
                let mut buf = BytesMut::from(&bytes[..split]);
                assert_eq!(
                    decoder.decode(&mut buf).unwrap(),
                    None,
                    "split {split} of {bytes:?}"
                );
                assert_eq!(
                    buf.len(),
                    split,
                    "nothing consumed before the frame is whole"
                );
                buf.extend_from_slice(&bytes[split..]);
                assert_eq!(decoder.decode(&mut buf).unwrap(), Some(expected.clone()));
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn decodes_a_pipelined_stream_fed_byte_by_byte() {
        let all: Vec<u8> = every_reply().iter().flat_map(|(b, _)| b.to_vec()).collect();
        let expected: Vec<Response> = every_reply().into_iter().map(|(_, r)| r).collect();
        assert_eq!(decode_all(&all).unwrap(), expected);
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in all {
            buf.extend_from_slice(&[byte]);
            while let Some(response) = decoder.decode(&mut buf).unwrap() {
                out.push(response);
            }
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn garbage_is_an_error() {
        let cases: &[&[u8]] = &[
            b"HELLO\r\n",
            b"INSERTED\r\n",
            b"INSERTED x\r\n",
            b"INSERTED -1\r\n",
            b"INSERTED +1\r\n",
            b"INSERTED 1 2\r\n",
            b"INSERTED 18446744073709551616\r\n",
            b"inserted 1\r\n",
            b"TIMED_OUT \r\n",
            b"\r\n",
            b"RESERVED 1\r\n",
            b"RESERVED 1 x\r\n",
            b"OK\r\n",
            b"USING bad name\r\n",
            b"USING -x\r\n",
            b"\xff\xfe\r\n",
            b"WATCHING\r\n",
        ];
        for bytes in cases {
            let mut buf = BytesMut::from(*bytes);
            assert!(
                matches!(
                    Decoder::default().decode(&mut buf),
                    Err(ProtoError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let mut buf = BytesMut::from(&b"FOUND 1 3\r\nabcXY"[..]);
        assert_eq!(
            Decoder::default().decode(&mut buf),
            Err(ProtoError::MissingCrlf)
        );
    }

    #[test]
    fn lengths_are_bounded() {
        let mut decoder = Decoder::new(16, 8);
        let mut buf = BytesMut::from(&b"INSERTED 123456789"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtoError::LineTooLong { max: 16 })
        );
        let mut buf = BytesMut::from(&b"INSERTED 12"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&b"OK 9\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtoError::BodyTooLong { len: 9, max: 8 })
        );
        let mut buf2 = BytesMut::from(&b"OK 99999999999999999999\r\n"[..]);
        assert!(matches!(
            Decoder::new(64, 8).decode(&mut buf2),
            Err(ProtoError::Malformed(_))
        ));
        let mut huge = BytesMut::from(&b"OK 18446744073709551615\r\n"[..]);
        assert!(matches!(
            Decoder::new(64, 8).decode(&mut huge),
            Err(ProtoError::BodyTooLong { .. })
        ));
    }

    #[test]
    fn a_server_error_is_a_value_and_decoding_goes_on() {
        let replies = decode_all(b"JOB_TOO_BIG\r\nINSERTED 3\r\nNOT_FOUND\r\nDELETED\r\n").unwrap();
        assert_eq!(
            replies,
            vec![
                Response::JobTooBig,
                Response::Inserted(3),
                Response::NotFound,
                Response::Deleted
            ]
        );
    }

    #[test]
    fn decode_eof_mid_frame_needs_more() {
        let mut buf = BytesMut::from(&b"RESERVED 1 10\r\nabc"[..]);
        assert_eq!(Decoder::default().decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 18);
    }

    #[test]
    fn encodes_every_command() {
        let cases: Vec<(Command<'_>, &[u8])> = vec![
            (
                Command::Put {
                    priority: 1,
                    delay: 2,
                    ttr: 3,
                    body: b"hi",
                },
                b"put 1 2 3 2\r\nhi\r\n",
            ),
            (Command::Use("a"), b"use a\r\n"),
            (Command::Reserve, b"reserve\r\n"),
            (
                Command::ReserveWithTimeout(5),
                b"reserve-with-timeout 5\r\n",
            ),
            (Command::ReserveJob(7), b"reserve-job 7\r\n"),
            (Command::Delete(7), b"delete 7\r\n"),
            (
                Command::Release {
                    id: 7,
                    priority: 8,
                    delay: 9,
                },
                b"release 7 8 9\r\n",
            ),
            (Command::Bury { id: 7, priority: 8 }, b"bury 7 8\r\n"),
            (Command::Touch(7), b"touch 7\r\n"),
            (Command::Watch("b"), b"watch b\r\n"),
            (Command::Ignore("b"), b"ignore b\r\n"),
            (Command::Peek(7), b"peek 7\r\n"),
            (Command::PeekReady, b"peek-ready\r\n"),
            (Command::PeekDelayed, b"peek-delayed\r\n"),
            (Command::PeekBuried, b"peek-buried\r\n"),
            (Command::Kick(10), b"kick 10\r\n"),
            (Command::KickJob(7), b"kick-job 7\r\n"),
            (Command::Stats, b"stats\r\n"),
            (Command::StatsJob(7), b"stats-job 7\r\n"),
            (Command::StatsTube("c"), b"stats-tube c\r\n"),
            (Command::ListTubes, b"list-tubes\r\n"),
            (Command::ListTubeUsed, b"list-tube-used\r\n"),
            (Command::ListTubesWatched, b"list-tubes-watched\r\n"),
            (
                Command::PauseTube {
                    tube: "c",
                    delay: 4,
                },
                b"pause-tube c 4\r\n",
            ),
            (Command::Quit, b"quit\r\n"),
        ];
        for (command, expected) in cases {
            let mut out = Vec::new();
            command.encode(&mut out);
            assert_eq!(out, expected, "{command:?}");
        }
    }

    #[test]
    fn tube_names() {
        assert!(check_tube_name("emails").is_ok());
        assert!(check_tube_name("a-b+c/d;e.f$g_h(i)").is_ok());
        assert!(check_tube_name(&"x".repeat(200)).is_ok());
        assert!(check_tube_name(&"x".repeat(201)).is_err());
        assert!(check_tube_name("").is_err());
        assert!(check_tube_name("-a").is_err());
        assert!(check_tube_name("a b").is_err());
        assert!(check_tube_name("é").is_err());
    }

    #[test]
    fn yaml() {
        let map = parse_yaml_map(b"---\nid: 5\ntube: \"emails\"\nstate: ready\n").unwrap();
        assert_eq!(map["id"], "5");
        assert_eq!(map["tube"], "emails");
        assert_eq!(map["state"], "ready");
        let list = parse_yaml_list(b"---\n- default\n- emails\n").unwrap();
        assert_eq!(list, vec!["default", "emails"]);
        assert_eq!(parse_yaml_list(b"---\n").unwrap(), Vec::<String>::new());
        assert!(parse_yaml_map(b"id: 5\n").is_err());
        assert!(parse_yaml_map(b"---\nnonsense\n").is_err());
        assert!(parse_yaml_list(b"---\nx: 1\n").is_err());
        assert!(parse_yaml_list(b"\xff").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut decoder = Decoder::new(64, 128);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
            let _ = parse_yaml_map(&bytes);
            let _ = parse_yaml_list(&bytes);
        }

        #[test]
        fn reply_like_bytes_never_panic(
            word in proptest::sample::select(vec!["RESERVED", "FOUND", "OK", "INSERTED", "KICKED", "USING", "BURIED"]),
            args in proptest::collection::vec("[0-9a-z ]{0,24}", 0..3),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut bytes = word.as_bytes().to_vec();
            for arg in args {
                bytes.push(b' ');
                bytes.extend_from_slice(arg.as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&tail);
            let mut decoder = Decoder::new(64, 32);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }
}
