//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME&listen=BOOL&poll=DURATION&pool=N&hold=DURATION&sslmode=MODE&sslrootcert=PATH&sslcert=PATH&sslkey=PATH]`:
//! the URL, read into its parts, and every way it can be wrong said in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Result};

/// How a URL of this backend is written, for help texts and errors.
pub(super) const USAGE: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]";

/// The schema the tables go in when the URL names none.
pub(super) const DEFAULT_SCHEMA: &str = "mq";

/// How often an idle `reserve` looks for new items when LISTEN is off.
pub(super) const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// The most connections a transport opens unless `?pool=N` says otherwise, the one it
/// listens on included.
pub(super) const DEFAULT_POOL: u32 = 10;

/// How long a reserved batch is held by its open transaction before what is still running
/// goes over to leases (see `hold`), unless `?hold=` says otherwise.
pub(super) const DEFAULT_HOLD: Duration = Duration::from_secs(1);

/// The longest `?hold=`: a transaction open longer keeps VACUUM from its dead rows, and
/// would make a migration (which waits 10 s for its locks) give up behind it.
const MAX_HOLD: Duration = Duration::from_secs(5);

/// The largest `?pool=N`.
const MAX_POOL: u32 = 1000;

/// The longest schema name: the LISTEN channel `<schema>_mq` must stay under PostgreSQL's
/// 63-byte identifiers.
const MAX_SCHEMA: usize = 48;

/// A parsed `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PgUrl {
    pub(super) user: String,
    pub(super) password: Option<String>,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) database: String,
    /// A plain lowercase identifier (checked), so it can be written into SQL as is.
    pub(super) schema: String,
    /// Wake idle reservers with LISTEN/NOTIFY (`?listen=false`: poll instead).
    pub(super) listen: bool,
    /// How often to poll when `listen` is off.
    pub(super) poll: Duration,
    /// The most connections the transport opens, the listening one included.
    pub(super) pool: u32,
    /// How long a reserved batch stays in its transaction (`?hold=0`: leases at once).
    pub(super) hold: Duration,
    /// TLS to the server: `disable` unless the URL says otherwise.
    pub(super) tls: Tls,
}

/// libpq's `sslmode` values that mq takes (`allow` is left out: it tries plain text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plain TCP (mq's default: say `sslmode=` to have TLS).
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked.
    Prefer,
    /// TLS or nothing; the certificate is not checked.
    Require,
    /// TLS, the certificate signed by a trusted authority (`sslrootcert=`).
    VerifyCa,
    /// As `verify-ca`, and the certificate names the URL's host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The value as the URL writes it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// How the connections use TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tls {
    pub(super) mode: SslMode,
    /// The authorities to trust, PEM (`sslrootcert=`); else the bundled web roots.
    pub(super) root_cert: Option<PathBuf>,
    /// A client certificate and its key, PEM (`sslcert=` and `sslkey=`).
    pub(super) client: Option<(PathBuf, PathBuf)>,
}

impl PgUrl {
    /// Reads `url`; every error is [`Error::InvalidUrl`] saying how to write it.
    pub(super) fn parse(url: &str) -> Result<PgUrl> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: super::super::redacted(url),
            reason: format!("{reason}; write {USAGE}"),
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| invalid("expected postgres:// or postgresql://".to_owned()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| invalid("no database: the URL ends in /DB".to_owned()))?;
        let database = decode(database).ok_or_else(|| invalid("bad %-escape".to_owned()))?;
        if database.is_empty() || database.contains('/') {
            return Err(invalid(format!("`{database}` is not a database name")));
        }
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| invalid("no user: the URL starts with USER@".to_owned()))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = decode(user).ok_or_else(|| invalid("bad %-escape".to_owned()))?;
        let password = match password {
            Some(password) => {
                Some(decode(password).ok_or_else(|| invalid("bad %-escape".to_owned()))?)
            }
            None => None,
        };
        if user.is_empty() {
            return Err(invalid("no user before `@`".to_owned()));
        }
        let (host, port) = split_port(hostport).ok_or_else(|| {
            invalid(format!(
                "`{hostport}` is not HOST or HOST:PORT (a port is 1-65535)"
            ))
        })?;
        let mut parsed = PgUrl {
            user,
            password,
            host,
            port,
            database,
            schema: DEFAULT_SCHEMA.to_owned(),
            listen: true,
            poll: DEFAULT_POLL,
            pool: DEFAULT_POOL,
            hold: DEFAULT_HOLD,
            tls: Tls {
                mode: SslMode::Disable,
                root_cert: None,
                client: None,
            },
        };
        let (mut cert, mut cert_key) = (None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "schema" => {
                    if !is_plain_identifier(value) {
                        return Err(invalid(format!(
                            "schema `{value}` must be 1 to {MAX_SCHEMA} lowercase letters, \
                             digits or `_`, starting with a letter or `_`"
                        )));
                    }
                    parsed.schema = value.to_owned();
                }
                "listen" => {
                    parsed.listen = match value {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => {
                            return Err(invalid(format!(
                                "listen=`{value}`: write listen=true or listen=false"
                            )))
                        }
                    }
                }
                "poll" => {
                    parsed.poll = crate::parse_duration(value)
                        .map_err(|error| invalid(format!("poll=`{value}`: {error}")))?
                        .max(Duration::from_millis(1));
                }
                "pool" => {
                    parsed.pool = value
                        .parse()
                        .ok()
                        .filter(|n| (2..=MAX_POOL).contains(n))
                        .ok_or_else(|| {
                            invalid(format!(
                                "pool=`{value}`: write a number of connections from 2 to \
                                 {MAX_POOL} (one of them listens)"
                            ))
                        })?;
                }
                "hold" => {
                    parsed.hold = crate::parse_duration(value)
                        .ok()
                        .filter(|hold| *hold <= MAX_HOLD)
                        .ok_or_else(|| {
                            invalid(format!(
                                "hold=`{value}`: write a duration up to {MAX_HOLD:?} \
                                 (`500ms`, `1s`), or hold=0 to lease every reservation"
                            ))
                        })?;
                }
                "sslmode" => {
                    parsed.tls.mode = SslMode::parse(value).ok_or_else(|| {
                        invalid(format!(
                            "sslmode=`{value}`: write disable, prefer, require, verify-ca or \
                             verify-full"
                        ))
                    })?;
                }
                "sslrootcert" => {
                    parsed.tls.root_cert = Some(existing_file(key, value).map_err(invalid)?);
                }
                "sslcert" => cert = Some(existing_file(key, value).map_err(invalid)?),
                "sslkey" => cert_key = Some(existing_file(key, value).map_err(invalid)?),
                _ => {
                    return Err(invalid(format!(
                        "unknown option `{key}` (known: schema, listen, poll, pool, hold, \
                         sslmode, sslrootcert, sslcert, sslkey)"
                    )))
                }
            }
        }
        parsed.tls.client = match (cert, cert_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "a client certificate needs both sslcert=PATH and sslkey=PATH".to_owned(),
                ))
            }
        };
        if parsed.tls.mode == SslMode::Disable
            && (parsed.tls.root_cert.is_some() || parsed.tls.client.is_some())
        {
            return Err(invalid(
                "sslrootcert, sslcert and sslkey need TLS: add sslmode=verify-full (or \
                 verify-ca, require)"
                    .to_owned(),
            ));
        }
        Ok(parsed)
    }

    /// `host:port`, for errors.
    pub(super) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL without its password, for `describe`.
    pub(super) fn describe(&self) -> String {
        let mut out = format!(
            "postgres://{}@{}/{}?schema={}",
            self.user,
            self.address(),
            self.database,
            self.schema
        );
        if !self.listen {
            out.push_str(&format!("&listen=false&poll={:?}", self.poll));
        }
        if self.pool != DEFAULT_POOL {
            out.push_str(&format!("&pool={}", self.pool));
        }
        if self.hold != DEFAULT_HOLD {
            out.push_str(&format!("&hold={}ms", self.hold.as_millis()));
        }
        if self.tls.mode != SslMode::Disable {
            out.push_str(&format!("&sslmode={}", self.tls.mode.as_str()));
        }
        out
    }
}

fn split_port(hostport: &str) -> Option<(String, u16)> {
    // `[::1]:5432`, `[::1]`, `host:5432`, `host`.
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok().filter(|port| *port != 0)?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_SCHEMA
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `path` when it names a file that exists; the error says which option named it.
fn existing_file(option: &str, path: &str) -> Result<PathBuf, String> {
    let file = Path::new(path);
    match std::fs::metadata(file) {
        Ok(metadata) if metadata.is_file() => Ok(file.to_owned()),
        Ok(_) => Err(format!("{option}={path}: not a file")),
        Err(_) if path.is_empty() => Err(format!("{option}= needs a file's path")),
        Err(error) => Err(format!("{option}={path}: {error}")),
    }
}

/// Percent-decoding (`p%40ss` is `p@ss`); `None` for a bad escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    crate::transport::escape::unescape(text, b'%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_part() {
        let url = PgUrl::parse("postgres://me:p%40ss@db.local:6543/shop?schema=jobs").unwrap();
        assert_eq!(url.user, "me");
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.address(), "db.local:6543");
        assert_eq!(url.database, "shop");
        assert_eq!(url.schema, "jobs");
        assert!(url.listen);
        assert!(!url.describe().contains("p@ss"), "{}", url.describe());

        let url = PgUrl::parse("postgresql://postgres@[::1]/mq?listen=false&poll=1s").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 5432));
        assert_eq!(url.schema, DEFAULT_SCHEMA);
        assert!(!url.listen);
        assert_eq!(url.poll, Duration::from_secs(1));
        let url = PgUrl::parse("postgres://app@db/shop?pool=32").unwrap();
        assert_eq!(url.pool, 32);
        assert!(url.describe().ends_with("&pool=32"), "{}", url.describe());
        assert_eq!(url.hold, DEFAULT_HOLD);
        let url = PgUrl::parse("postgres://app@db/shop?hold=0").unwrap();
        assert_eq!(url.hold, Duration::ZERO);
        assert!(url.describe().ends_with("&hold=0ms"), "{}", url.describe());
        let url = PgUrl::parse("postgres://app@db/shop?hold=250ms").unwrap();
        assert_eq!(url.hold, Duration::from_millis(250));
        for bad in ["hold=6s", "hold=soon"] {
            let error = PgUrl::parse(&format!("postgres://app@db/shop?{bad}")).unwrap_err();
            assert!(
                error.to_string().contains("hold=0 to lease"),
                "{bad}: {error}"
            );
        }
        for bad in ["pool=1", "pool=0", "pool=many", "pool=1001"] {
            let error = PgUrl::parse(&format!("postgres://app@db/shop?{bad}")).unwrap_err();
            assert!(
                error.to_string().contains("from 2 to 1000"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn reads_tls_options() {
        let url = PgUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(url.tls.mode, SslMode::Disable);
        let url = PgUrl::parse("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(url.tls.mode, SslMode::Require);
        assert!(
            url.describe().ends_with("&sslmode=require"),
            "{}",
            url.describe()
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let ca = ca.display();
        let url = PgUrl::parse(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={ca}"
        ))
        .unwrap();
        assert_eq!(url.tls.mode, SslMode::VerifyFull);
        assert!(url.tls.root_cert.is_some());
        for (query, says) in [
            (format!("sslrootcert={ca}"), "need TLS"),
            (
                format!("sslmode=require&sslcert={ca}"),
                "both sslcert=PATH and sslkey=PATH",
            ),
        ] {
            let error = PgUrl::parse(&format!("postgres://u@h/db?{query}")).unwrap_err();
            assert!(error.to_string().contains(says), "{query}: {error}");
        }
    }

    #[test]
    fn malformed_urls_say_how_to_write_them() {
        for (url, says) in [
            ("postgres://localhost/db", "no user"),
            ("postgres://u@localhost", "no database"),
            ("postgres://u@localhost:0/db", "not HOST or HOST:PORT"),
            ("postgres://u@localhost:x/db", "not HOST or HOST:PORT"),
            ("postgres://u@/db", "not HOST or HOST:PORT"),
            ("postgres://u@h/db?schema=Bad-Name", "schema `Bad-Name`"),
            ("postgres://u@h/db?listen=maybe", "listen=true"),
            ("postgres://u@h/db?poll=soon", "poll=`soon`"),
            ("postgres://u@h/db?ssl=1", "unknown option `ssl`"),
            ("postgres://u@h/db?sslmode=on", "sslmode=`on`"),
            (
                "postgres://u@h/db?sslmode=require&sslrootcert=/none",
                "sslrootcert=/none: ",
            ),
            ("postgres://u:secret@h/", "not a database name"),
        ] {
            let error = PgUrl::parse(url).expect_err(url);
            let text = error.to_string();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{text}");
            assert!(text.contains(says), "{url}: {text}");
            assert!(text.contains(USAGE), "{url}: {text}");
            assert!(!text.contains("secret"), "{url}: {text}");
        }
    }
}
