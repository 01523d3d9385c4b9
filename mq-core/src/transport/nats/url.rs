//! `nats://[USER:PASSWORD@ | TOKEN@]HOST[:PORT][,HOST[:PORT]...][?OPTIONS]`: the URL read
//! into its servers, the JetStream settings and how to authenticate, with the `MQ_NATS_*`
//! variables that give credentials without writing them into the URL.
//!
//! Every error names the URL with its user information hidden ([`redacted`]); a password
//! or token is kept only in [`Auth`], whose `Debug` hides it too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};

use super::layout::Settings;
use crate::transport::escape::unescape;
use crate::transport::redacted;
use crate::{Error, Result};

/// How a URL of this backend is written, for help texts.
pub(super) const USAGE: &str = "nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]";

/// The options a URL may carry, for the error that names an unknown one.
const OPTIONS: &str = "replicas=N, ack_wait=DURATION, tls=true, ca=PATH, cert=PATH, key=PATH, \
                       creds=PATH";

/// The variables that give credentials when the URL has none.
pub(super) const VARIABLES: [&str; 4] = [
    "MQ_NATS_USER",
    "MQ_NATS_PASSWORD",
    "MQ_NATS_TOKEN",
    "MQ_NATS_CREDS",
];

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Auth {
    /// No credentials: the server allows anyone who reaches it.
    None,
    /// A user and password (`USER:PASSWORD@` or `MQ_NATS_USER` and `MQ_NATS_PASSWORD`).
    UserPassword { user: String, password: String },
    /// A token (`TOKEN@` or `MQ_NATS_TOKEN`).
    Token(String),
    /// A credentials file of a JWT and its NKey seed (`creds=PATH` or `MQ_NATS_CREDS`).
    Credentials(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Auth::Token(_) => f.write_str("Token(***)"),
            Auth::Credentials(path) => write!(f, "Credentials({})", path.display()),
        }
    }
}

/// TLS to the servers: off unless asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tls {
    /// Refuse a server that does not speak TLS (`tls=true`, or any of the files below).
    pub(super) required: bool,
    /// The certificate authority to trust instead of the system's (`ca=PATH`, PEM).
    pub(super) ca: Option<PathBuf>,
    /// A client certificate and its key, for servers that verify clients (`cert=`, `key=`).
    pub(super) client: Option<(PathBuf, PathBuf)>,
}

/// A read `nats://` URL.
#[derive(Debug)]
pub(super) struct NatsUrl {
    pub(super) servers: Vec<ServerAddr>,
    /// `HOST:PORT[,HOST:PORT...]`, without user information: for errors and logs.
    pub(super) hosts: String,
    pub(super) settings: Settings,
    pub(super) auth: Auth,
    pub(super) tls: Tls,
}

impl NatsUrl {
    /// Reads `url`, taking credentials from `variable` (the environment, in use) when the
    /// URL names none.
    pub(super) fn parse(url: &str, variable: impl Fn(&str) -> Option<String>) -> Result<NatsUrl> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted(url),
            reason,
        };
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| invalid(format!("expected {USAGE}")))?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut settings = Settings {
            replicas: None,
            ack_wait: Duration::from_secs(30),
        };
        let mut tls = Tls::default();
        let (mut cert, mut key, mut creds) = (None, None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let file = || existing_file(name, value).map_err(&invalid);
            match name {
                "replicas" => match value.parse::<usize>() {
                    Ok(n @ 1..=5) => settings.replicas = Some(n),
                    _ => return Err(invalid(format!("replicas={value}: expected 1 to 5"))),
                },
                "ack_wait" => match humantime::parse_duration(value) {
                    Ok(wait) if wait >= Duration::from_secs(1) => settings.ack_wait = wait,
                    _ => {
                        return Err(invalid(format!(
                            "ack_wait={value}: expected a duration of 1s or more, e.g. 30s"
                        )))
                    }
                },
                "tls" => {
                    tls.required = match value {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(invalid(format!("tls={value}: write tls=true"))),
                    }
                }
                "ca" => tls.ca = Some(file()?),
                "cert" => cert = Some(file()?),
                "key" => key = Some(file()?),
                "creds" => creds = Some(file()?),
                _ => {
                    return Err(invalid(format!(
                        "unknown option `{name}`; known: {OPTIONS}"
                    )))
                }
            }
        }
        tls.client = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "a client certificate needs both cert=PATH and key=PATH".to_owned(),
                ))
            }
        };
        tls.required |= tls.ca.is_some() || tls.client.is_some();
        let auth = match (userinfo, creds) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give one way to authenticate: user information before `@`, or creds=PATH"
                        .to_owned(),
                ))
            }
            (Some(userinfo), None) => from_userinfo(userinfo).map_err(&invalid)?,
            (None, Some(path)) => Auth::Credentials(path),
            (None, None) => from_variables(&variable).map_err(&invalid)?,
        };
        let mut servers = Vec::new();
        let mut names = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() || host.contains('/') {
                return Err(invalid(format!("`{host}` is not HOST:PORT; write {USAGE}")));
            }
            let host = if host.contains(':') {
                host.to_owned()
            } else {
                format!("{host}:4222")
            };
            let server: ServerAddr = format!("nats://{host}")
                .parse()
                .map_err(|error| invalid(format!("`{host}`: {error}")))?;
            servers.push(server);
            names.push(host);
        }
        Ok(NatsUrl {
            servers,
            hosts: names.join(","),
            settings,
            auth,
            tls,
        })
    }

    /// The client's options: credentials and TLS as read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] when the credentials file cannot be read or is not one.
    pub(super) async fn options(&self, url: &str) -> Result<ConnectOptions> {
        let mut options = ConnectOptions::new();
        match &self.auth {
            Auth::None => {}
            Auth::UserPassword { user, password } => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            Auth::Token(token) => options = options.token(token.clone()),
            Auth::Credentials(path) => {
                options =
                    options
                        .credentials_file(path)
                        .await
                        .map_err(|error| Error::InvalidUrl {
                            url: redacted(url),
                            reason: format!(
                                "{} is not a NATS credentials file (a user JWT and its NKey seed, \
                             as `nsc` writes it): {error}",
                                path.display()
                            ),
                        })?;
            }
        }
        if self.tls.required {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }

    /// How the connection authenticates, for the error when the server refuses it.
    pub(super) fn credentials_source(&self) -> &'static str {
        match self.auth {
            Auth::None => {
                "no credentials were given: put USER:PASSWORD@ before the host, or \
                           set MQ_NATS_USER and MQ_NATS_PASSWORD, MQ_NATS_TOKEN or MQ_NATS_CREDS"
            }
            Auth::UserPassword { .. } => {
                "check the user and password (of the URL, or of \
                                          MQ_NATS_USER and MQ_NATS_PASSWORD)"
            }
            Auth::Token(_) => "check the token (of the URL, or of MQ_NATS_TOKEN)",
            Auth::Credentials(_) => "check the credentials file (creds= or MQ_NATS_CREDS)",
        }
    }
}

/// `USER:PASSWORD` or `TOKEN`, %-decoded.
fn from_userinfo(userinfo: &str) -> Result<Auth, String> {
    let decoded = |text: &str| {
        unescape(text, b'%').ok_or_else(|| "bad %-escape in the user information".to_owned())
    };
    match userinfo.split_once(':') {
        Some((user, password)) => {
            let user = decoded(user)?;
            if user.is_empty() {
                return Err("no user before `:`; write USER:PASSWORD@HOST".to_owned());
            }
            Ok(Auth::UserPassword {
                user,
                password: decoded(password)?,
            })
        }
        None if userinfo.is_empty() => Err("nothing before `@`".to_owned()),
        None => Ok(Auth::Token(decoded(userinfo)?)),
    }
}

/// The credentials of the `MQ_NATS_*` variables: at most one kind, and whole.
fn from_variables(variable: &impl Fn(&str) -> Option<String>) -> Result<Auth, String> {
    let [user, password, token, creds] =
        VARIABLES.map(|name| variable(name).filter(|value| !value.is_empty()));
    let given = [
        user.is_some() || password.is_some(),
        token.is_some(),
        creds.is_some(),
    ];
    if given.iter().filter(|given| **given).count() > 1 {
        return Err(
            "more than one kind of credentials in MQ_NATS_USER/MQ_NATS_PASSWORD, \
                    MQ_NATS_TOKEN and MQ_NATS_CREDS: set one"
                .to_owned(),
        );
    }
    Ok(match (user, password, token, creds) {
        (Some(user), Some(password), _, _) => Auth::UserPassword { user, password },
        (Some(_), None, _, _) => return Err("MQ_NATS_USER is set without MQ_NATS_PASSWORD".into()),
        (None, Some(_), _, _) => return Err("MQ_NATS_PASSWORD is set without MQ_NATS_USER".into()),
        (_, _, Some(token), _) => Auth::Token(token),
        (_, _, _, Some(creds)) => Auth::Credentials(existing_file("MQ_NATS_CREDS", &creds)?),
        (None, None, None, None) => Auth::None,
    })
}

/// `path` when it names a file that exists; the error says which option named it.
fn existing_file(option: &str, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err(format!("{option}= needs a file's path"));
    }
    let path = Path::new(path);
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(path.to_owned()),
        Ok(_) => Err(format!("{option}={}: not a file", path.display())),
        Err(error) => Err(format!("{option}={}: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<NatsUrl> {
        NatsUrl::parse(url, |_| None)
    }

    fn reason(url: &str) -> String {
        match parse(url) {
            Err(Error::InvalidUrl { url, reason }) => format!("{url}: {reason}"),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn reads_servers_and_credentials() {
        let url = parse("nats://me:p%40ss@10.0.0.1,10.0.0.2:4223?replicas=3").unwrap();
        assert_eq!(url.hosts, "10.0.0.1:4222,10.0.0.2:4223");
        assert_eq!(url.servers.len(), 2);
        assert_eq!(url.settings.replicas, Some(3));
        assert_eq!(
            url.auth,
            Auth::UserPassword {
                user: "me".into(),
                password: "p@ss".into()
            }
        );
        assert!(!url.tls.required);
        assert_eq!(
            parse("nats://s3cret@h").unwrap().auth,
            Auth::Token("s3cret".into())
        );
        assert_eq!(parse("nats://h:4222").unwrap().auth, Auth::None);
    }

    #[test]
    fn tls_options_require_tls_and_need_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let url = parse(&format!("nats://h?ca={}", ca.display())).unwrap();
        assert!(url.tls.required);
        assert_eq!(url.tls.ca.as_deref(), Some(ca.as_path()));
        assert!(parse("nats://h?tls=true").unwrap().tls.required);
        assert!(reason("nats://h?ca=/nowhere/ca.pem").contains("ca=/nowhere/ca.pem: "));
        let half = format!("nats://h?cert={}", ca.display());
        assert!(reason(&half).contains("both cert=PATH and key=PATH"));
    }

    #[test]
    fn variables_give_credentials_when_the_url_has_none() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let both = vars(&[("MQ_NATS_USER", "u"), ("MQ_NATS_PASSWORD", "p")]);
        let url = NatsUrl::parse("nats://h", both).unwrap();
        assert_eq!(
            url.auth,
            Auth::UserPassword {
                user: "u".into(),
                password: "p".into()
            }
        );
        // The URL's own credentials come first.
        let url = NatsUrl::parse("nats://t@h", both).unwrap();
        assert_eq!(url.auth, Auth::Token("t".into()));
        let half = NatsUrl::parse("nats://h", vars(&[("MQ_NATS_USER", "u")])).unwrap_err();
        assert!(
            half.to_string().contains("without MQ_NATS_PASSWORD"),
            "{half}"
        );
        let two = vars(&[("MQ_NATS_TOKEN", "t"), ("MQ_NATS_USER", "u")]);
        let error = NatsUrl::parse("nats://h", two).unwrap_err();
        assert!(error.to_string().contains("set one"), "{error}");
    }

    #[test]
    fn errors_and_debug_never_show_a_secret() {
        for url in [
            "nats://me:hunter2@h?bogus=1",
            "nats://me:hunter2@h?creds=/nowhere",
            "nats://hunter2@h/path",
            "nats://me:hunter2@?tls=maybe",
        ] {
            let text = reason(url);
            assert!(!text.contains("hunter2"), "{text}");
        }
        let url = parse("nats://me:hunter2@h").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!format!("{:?}", parse("nats://hunter2@h").unwrap()).contains("hunter2"));
    }

    #[test]
    fn malformed_urls_say_how_to_write_them() {
        assert!(reason("nats:/h").contains(USAGE));
        assert!(reason("nats://h?replicas=9").contains("expected 1 to 5"));
        assert!(reason("nats://h?nope=1").contains("known: replicas=N"));
        assert!(reason("nats://:p@h").contains("no user"));
        assert!(reason("nats://a,,b").contains("is not HOST:PORT"));
    }
}
