//! The table of URL schemes: which backend a URL names, whether it is compiled in, and how
//! its URL is written. [`connect`](super::connect), its errors and every help text that lists
//! backends (the worker's `--url` and `MQ_URL`, the `mq` command's `--url`) come from here,
//! so they name exactly the backends of this build.
//!
//! A backend that keeps its queues in a local file also says how to open one only if it
//! exists ([`Scheme::connect_existing`], what [`connect_existing`](super::connect_existing)
//! uses), so that a command that only looks never leaves an empty queue behind.
//!
//! A backend of mq is one line of [`BUILT_IN`]; a backend written in another crate plugs in
//! with `inventory::submit! { mq::transport::scheme::Scheme::new("myq", "myq://HOST", connect_myq) }`
//! (a `fn(&str) -> ConnectFuture`), and `connect` finds it by its scheme.
//!
//! # Examples
//!
//! ```
//! for scheme in mq::transport::scheme::BUILT_IN {
//!     let state = if scheme.connect.is_some() { "compiled in" } else { "off" };
//!     println!("{:<10} {state}", scheme.scheme);
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Feature, Transport};
use crate::{Error, Result};

/// What a backend's connect function returns.
///
/// ```
/// use mq::transport::scheme::ConnectFuture;
/// use mq::transport::memory::MemoryTransport;
///
/// fn connect_test(_url: &str) -> ConnectFuture<'_> {
///     Box::pin(async { Ok(MemoryTransport::named("test") as std::sync::Arc<dyn mq::Transport>) })
/// }
/// ```
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn Transport>>> + Send + 'a>>;

/// Opens a transport from its whole URL (`beanstalk://127.0.0.1:11300`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let connect: mq::transport::scheme::Connect = mq::transport::scheme::of("memory://x")
///     .and_then(|scheme| scheme.connect)
///     .expect("memory:// is always compiled in");
/// assert_eq!(connect("memory://x").await?.describe(), "memory://x");
/// # Ok(()) }
/// ```
pub type Connect = for<'a> fn(&'a str) -> ConnectFuture<'a>;

/// One URL scheme and the backend behind it.
///
/// ```
/// let sqlite = mq::transport::scheme::of("sqlite://mq.db").unwrap();
/// assert_eq!((sqlite.scheme, sqlite.usage, sqlite.feature), ("sqlite", "sqlite://PATH", "sqlite"));
/// assert!(sqlite.connect_existing.is_some()); // a file: it can refuse to make one
/// ```
#[derive(Debug)]
pub struct Scheme {
    /// The scheme, without `://` (`sqlite`).
    pub scheme: &'static str,
    /// How a URL of it is written, for help texts (`sqlite://PATH`).
    pub usage: &'static str,
    /// The cargo feature of `mq-core` that compiles it in; empty for one that always is.
    pub feature: &'static str,
    /// Opens it; `None` when its feature is off in this build.
    pub connect: Option<Connect>,
    /// Opens it only if its storage already exists, creating nothing (an `sqlite://` file
    /// that is not there is an error naming its absolute path), for commands that inspect a
    /// queue; `None` where `connect` creates nothing anyway (a server's backend).
    pub connect_existing: Option<Connect>,
    /// The [`Feature`]s its transports declare (what errors name as "the backends that
    /// can"); must agree with their [`capabilities`](super::Transport::capabilities).
    pub features: &'static [Feature],
}

impl Scheme {
    /// A scheme of a backend from another crate, for `inventory::submit!`.
    ///
    /// ```
    /// use mq::transport::memory::MemoryTransport;
    /// use mq::transport::scheme::{ConnectFuture, Scheme};
    ///
    /// /// `test://NAME`: a `memory://` queue under another name.
    /// fn connect_test(url: &str) -> ConnectFuture<'_> {
    ///     let name = url.trim_start_matches("test://").to_owned();
    ///     Box::pin(async move { Ok(MemoryTransport::named(&name) as std::sync::Arc<dyn mq::Transport>) })
    /// }
    ///
    /// static TEST: Scheme = Scheme::new("test", "test://NAME", connect_test);
    /// assert_eq!((TEST.scheme, TEST.feature), ("test", ""));
    /// // In the crate of the backend: inventory::submit! { Scheme::new("test", "test://NAME", connect_test) }
    /// ```
    pub const fn new(scheme: &'static str, usage: &'static str, connect: Connect) -> Scheme {
        Scheme {
            scheme,
            usage,
            feature: "",
            connect: Some(connect),
            connect_existing: None,
            features: &[],
        }
    }

    /// The same, declaring `features` (as its transports' capabilities do).
    ///
    /// ```
    /// use mq::transport::scheme::{ConnectFuture, Scheme};
    /// use mq::transport::Feature;
    ///
    /// fn connect_test(_url: &str) -> ConnectFuture<'_> {
    ///     Box::pin(async { Err(mq::Error::Config("not really".into())) })
    /// }
    /// static TEST: Scheme = Scheme::new("test", "test://", connect_test).with_features(&[Feature::Unique]);
    /// assert_eq!(TEST.features, [Feature::Unique]);
    /// ```
    pub const fn with_features(self, features: &'static [Feature]) -> Scheme {
        Scheme { features, ..self }
    }
}

/// The schemes of this build whose backends declare `feature`, one name per backend.
pub(crate) fn declaring(feature: Feature) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for scheme in compiled() {
        let same_backend = |name: &&str| scheme.scheme.starts_with(*name);
        if scheme.connect.is_some()
            && scheme.features.contains(&feature)
            && !names.iter().any(same_backend)
        {
            names.push(scheme.scheme);
        }
    }
    names
}

inventory::collect!(Scheme);

/// The backends of mq itself, compiled in or not.
///
/// ```
/// let schemes: Vec<&str> = mq::transport::scheme::BUILT_IN.iter().map(|s| s.scheme).collect();
/// assert!(schemes.contains(&"beanstalk") && schemes.contains(&"memory"));
/// let missing = mq::transport::scheme::BUILT_IN.iter().filter(|s| s.connect.is_none());
/// for scheme in missing {
///     println!("{} needs the `{}` feature", scheme.usage, scheme.feature);
/// }
/// ```
pub const BUILT_IN: &[Scheme] = &[
    Scheme {
        scheme: "sqlite",
        usage: "sqlite://PATH",
        feature: "sqlite",
        #[cfg(feature = "sqlite")]
        connect: Some(|url| Box::pin(super::sqlite::connect(path_of(url), sqlite(true)))),
        #[cfg(not(feature = "sqlite"))]
        connect: None,
        #[cfg(feature = "sqlite")]
        connect_existing: Some(|url| Box::pin(super::sqlite::connect(path_of(url), sqlite(false)))),
        #[cfg(not(feature = "sqlite"))]
        connect_existing: None,
        features: &[Feature::Unique, Feature::KeyLimits, Feature::Debounce],
    },
    Scheme {
        scheme: "beanstalk",
        usage: "beanstalk://HOST[:PORT]",
        feature: "beanstalk",
        #[cfg(feature = "beanstalk")]
        connect: Some(|url| Box::pin(super::beanstalk::connect(url))),
        #[cfg(not(feature = "beanstalk"))]
        connect: None,
        connect_existing: None,
        features: &[],
    },
    Scheme {
        scheme: "nats",
        usage: "nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]",
        feature: "nats",
        #[cfg(feature = "nats")]
        connect: Some(|url| Box::pin(super::nats::connect(url))),
        #[cfg(not(feature = "nats"))]
        connect: None,
        connect_existing: None,
        features: &[],
    },
    Scheme {
        scheme: "postgres",
        usage: "postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]",
        feature: "postgres",
        connect: POSTGRES,
        connect_existing: None,
        features: &[Feature::Unique, Feature::KeyLimits, Feature::Debounce],
    },
    Scheme {
        scheme: "postgresql",
        usage: "postgresql://...",
        feature: "postgres",
        connect: POSTGRES,
        connect_existing: None,
        features: &[Feature::Unique, Feature::KeyLimits, Feature::Debounce],
    },
    Scheme {
        scheme: "memory",
        usage: "memory://",
        feature: "",
        connect: Some(|url| {
            let name = path_of(url).to_owned();
            Box::pin(async move {
                let transport: Arc<dyn Transport> = super::memory::MemoryTransport::named(&name);
                Ok(transport)
            })
        }),
        connect_existing: None,
        features: &[Feature::Unique, Feature::KeyLimits, Feature::Debounce],
    },
];

/// The options of an `sqlite://` open: whether a missing file is created.
#[cfg(feature = "sqlite")]
fn sqlite(create_if_missing: bool) -> super::sqlite::SqliteOptions {
    super::sqlite::SqliteOptions::default().create_if_missing(create_if_missing)
}

/// `postgres://` and its other spelling `postgresql://`.
#[cfg(feature = "postgres")]
const POSTGRES: Option<Connect> = Some(|url| Box::pin(super::postgres::connect(url)));
#[cfg(not(feature = "postgres"))]
const POSTGRES: Option<Connect> = None;

/// What follows `scheme://`.
fn path_of(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Every scheme this build can open: mq's own that are compiled in, then those other crates
/// submitted.
///
/// ```
/// assert!(mq::transport::scheme::compiled().any(|s| s.scheme == "memory"));
/// assert!(mq::transport::scheme::compiled().all(|s| s.connect.is_some()));
/// ```
pub fn compiled() -> impl Iterator<Item = &'static Scheme> {
    BUILT_IN
        .iter()
        .filter(|scheme| scheme.connect.is_some())
        .chain(inventory::iter::<Scheme>)
}

/// The URLs this build can open, as help texts list them: `sqlite://PATH, beanstalk://...`.
///
/// ```
/// let usages = mq::transport::scheme::usages();
/// assert!(usages.contains("memory://"));
/// println!("MQ_URL: one of {usages}");
/// ```
pub fn usages() -> String {
    let usages: Vec<&str> = compiled().map(|scheme| scheme.usage).collect();
    usages.join(", ")
}

/// The compiled-in scheme `url` names, if any.
///
/// ```
/// use mq::transport::scheme;
///
/// assert_eq!(scheme::of("memory://tests").map(|s| s.usage), Some("memory://"));
/// assert!(scheme::of("amqp://127.0.0.1").is_none());
/// assert!(scheme::of("mq.db").is_none()); // no scheme
/// ```
pub fn of(url: &str) -> Option<&'static Scheme> {
    let (name, _) = url.split_once("://")?;
    compiled().find(|s| s.scheme == name)
}

/// The connect function for `url`, or an error that says what to write or which feature to
/// enable.
pub(super) fn lookup(url: &str) -> Result<Connect> {
    Ok(lookup_scheme(url)?.1)
}

/// Like [`lookup`], the function that opens only what exists (see
/// [`Scheme::connect_existing`]).
pub(super) fn lookup_existing(url: &str) -> Result<Connect> {
    let (scheme, connect) = lookup_scheme(url)?;
    Ok(scheme.connect_existing.unwrap_or(connect))
}

/// The scheme of `url` and its connect function.
fn lookup_scheme(url: &str) -> Result<(&'static Scheme, Connect)> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let Some((name, _)) = url.split_once("://") else {
        return Err(invalid(format!(
            "expected SCHEME://...; this build opens {}",
            usages()
        )));
    };
    if let Some(found) = of(url).and_then(|s| Some((s, s.connect?))) {
        return Ok(found);
    }
    match BUILT_IN.iter().find(|s| s.scheme == name) {
        Some(scheme) => Err(invalid(format!(
            "the {name}:// backend is not compiled into this program: enable the cargo \
             feature `{}` of mq-core (`mq-core = {{ version = \"0.1\", features = [\"{}\"] }}`); \
             this build opens {}",
            scheme.feature,
            scheme.feature,
            usages()
        ))),
        None => Err(invalid(format!(
            "unknown scheme `{name}`; this build opens {}",
            usages()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_exactly_the_compiled_backends() {
        let usages = usages();
        assert!(usages.contains("memory://"), "{usages}");
        assert_eq!(usages.contains("sqlite://PATH"), cfg!(feature = "sqlite"));
        assert_eq!(usages.contains("beanstalk://"), cfg!(feature = "beanstalk"));
        assert_eq!(usages.contains("nats://"), cfg!(feature = "nats"));
        assert_eq!(usages.contains("postgres://"), cfg!(feature = "postgres"));
    }

    #[test]
    fn unknown_and_malformed_urls_say_what_this_build_opens() {
        let error = lookup("redis://x").expect_err("no redis backend");
        assert!(
            error.to_string().contains("unknown scheme `redis`"),
            "{error}"
        );
        assert!(error.to_string().contains("memory://"), "{error}");
        let error = lookup("mq.db").expect_err("no scheme");
        assert!(error.to_string().contains("expected SCHEME://"), "{error}");
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn postgres_not_compiled_in_names_its_feature() {
        let error = lookup("postgresql://u@h/db").expect_err("not compiled in");
        assert!(error.to_string().contains("feature `postgres`"), "{error}");
    }

    #[cfg(not(feature = "nats"))]
    #[test]
    fn a_backend_not_compiled_in_names_its_feature() {
        let error = lookup("nats://127.0.0.1:4222").expect_err("not compiled in");
        assert!(error.to_string().contains("feature `nats`"), "{error}");
    }
}
