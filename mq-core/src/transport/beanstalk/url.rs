//! The URL `beanstalk://HOST[:PORT]`: parsing it, resolving its host, and the conversion
//! of durations to beanstalkd's whole seconds.

use std::net::SocketAddr;
use std::time::Duration;

use super::connection::CONNECT_TIMEOUT;
use super::DEFAULT_PORT;
use crate::{Error, Result};

/// A parsed `beanstalk://HOST[:PORT]`.
pub(super) fn parse_url(url: &str) -> Result<(String, u16)> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("beanstalk://")
        .ok_or_else(|| invalid("expected beanstalk://HOST[:PORT]".into()))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid(
            "no host; write beanstalk://HOST[:PORT], e.g. beanstalk://127.0.0.1:11300".into(),
        ));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| "/?#@ \t".contains(*c) || c.is_control())
    {
        return Err(invalid(format!(
            "unexpected {bad:?}: only HOST[:PORT] may follow beanstalk:// (no path, user or query)"
        )));
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        // [IPv6]:port
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("unclosed `[` in an IPv6 address".into()))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(format!("unexpected {after:?} after `]`"))),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => {
                return Err(invalid(
                    "an IPv6 address must be in brackets: beanstalk://[::1]:11300".into(),
                ))
            }
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host before the port".into()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| invalid(format!("port `{port}` is not a number from 1 to 65535")))?,
    };
    Ok((host.to_owned(), port))
}

/// The addresses of `url` (already parsed into `host` and `port`) and its name
/// `host:port`, for errors.
pub(super) async fn resolve(url: &str, host: &str, port: u16) -> Result<(String, Vec<SocketAddr>)> {
    let name = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addresses)) => addresses.collect(),
            Ok(Err(error)) => {
                return Err(Error::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("cannot resolve host `{host}`: {error}"),
                })
            }
            Err(_) => {
                return Err(Error::unreachable(
                    name,
                    format!(
                        "resolving the host took over {}s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
    if addresses.is_empty() {
        return Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: format!("host `{host}` resolves to no address"),
        });
    }
    Ok((name, addresses))
}

/// Seconds for beanstalkd, rounded up.
pub(super) fn whole_seconds(what: &'static str, value: Duration) -> Result<u32> {
    let seconds = value
        .as_secs()
        .saturating_add(u64::from(value.subsec_nanos() > 0));
    u32::try_from(seconds).map_err(|_| Error::Unrepresentable {
        what,
        value,
        reason: format!(
            "beanstalkd counts it in whole seconds, at most {} (about 136 years)",
            u32::MAX
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("beanstalk://localhost").unwrap(),
            ("localhost".into(), 11300)
        );
        assert_eq!(
            parse_url("beanstalk://127.0.0.1:11301").unwrap(),
            ("127.0.0.1".into(), 11301)
        );
        assert_eq!(parse_url("beanstalk://h:1/").unwrap(), ("h".into(), 1));
        assert_eq!(parse_url("beanstalk://[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(
            parse_url("beanstalk://[::1]").unwrap(),
            ("::1".into(), 11300)
        );
        for bad in [
            "beanstalk://",
            "beanstalk://:11300",
            "beanstalk://h:",
            "beanstalk://h:0",
            "beanstalk://h:65536",
            "beanstalk://h:port",
            "beanstalk://h/path",
            "beanstalk://u@h",
            "beanstalk://h?x=1",
            "beanstalk://::1",
            "beanstalk://[::1",
            "beanstalk://[::1]x",
            "beanstalk://h h",
            "sqlite://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds("delay", Duration::ZERO).unwrap(), 0);
        assert_eq!(whole_seconds("delay", Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(
            whole_seconds("delay", Duration::from_millis(1500)).unwrap(),
            2
        );
        assert_eq!(whole_seconds("delay", Duration::from_secs(3)).unwrap(), 3);
        assert_eq!(
            whole_seconds("delay", Duration::from_secs(u64::from(u32::MAX))).unwrap(),
            u32::MAX
        );
        let error =
            whole_seconds("delay", Duration::from_secs(u64::from(u32::MAX) + 1)).unwrap_err();
        assert!(
            matches!(error, Error::Unrepresentable { what: "delay", .. }),
            "{error}"
        );
        assert!(whole_seconds("ttr", Duration::MAX).is_err());
    }
}
