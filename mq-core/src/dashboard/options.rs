//! What the dashboard allows and knows: the operator token, read-only, showing bodies, the
//! routing table.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Registry;

/// The environment variable `mq dashboard` and [`Options::token_from_env`] read the token
/// from.
///
/// ```
/// assert_eq!(mq::dashboard::TOKEN_VAR, "MQ_DASHBOARD_TOKEN");
/// ```
pub const TOKEN_VAR: &str = "MQ_DASHBOARD_TOKEN";

/// How the dashboard behaves; [`Options::new`] is the safe default: read-only (no token),
/// bodies hidden, no routing table.
///
/// ```
/// let options = mq::dashboard::Options::new()
///     .token_from_env() // MQ_DASHBOARD_TOKEN: retry, remove and flush for who signs in
///     .show_bodies(false);
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) token: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) show_bodies: bool,
    pub(crate) registry: Option<Arc<Registry>>,
    pub(crate) backend_timeout: Duration,
    pub(crate) sample_every: Duration,
}

impl Options {
    /// The defaults: no token (so nothing can be changed), bodies hidden, no routing table,
    /// backend calls given up after 5 s, counts sampled every 5 s for the chart.
    ///
    /// ```
    /// let options = mq::dashboard::Options::new();
    /// assert!(options.is_read_only() && !options.has_token());
    /// ```
    pub fn new() -> Options {
        Options {
            token: None,
            read_only: false,
            show_bodies: false,
            registry: None,
            backend_timeout: Duration::from_secs(5),
            sample_every: Duration::from_secs(5),
        }
    }

    /// The operator token: retry, remove and flush need a browser signed in with it, or an
    /// `Authorization: Bearer TOKEN` header. An empty token counts as none.
    ///
    /// ```
    /// let options = mq::dashboard::Options::new().token("s3cret-operator-token");
    /// assert!(options.has_token() && !options.is_read_only());
    /// assert!(!mq::dashboard::Options::new().token("").has_token());
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Options {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// The token from `MQ_DASHBOARD_TOKEN`, when it is set and not empty.
    ///
    /// ```
    /// // `mq dashboard` does this: the token stays out of the command line.
    /// let options = mq::dashboard::Options::new().token_from_env();
    /// assert_eq!(options.has_token(), std::env::var("MQ_DASHBOARD_TOKEN").is_ok_and(|t| !t.is_empty()));
    /// ```
    pub fn token_from_env(self) -> Options {
        match std::env::var(TOKEN_VAR) {
            Ok(token) => self.token(token),
            Err(_) => self,
        }
    }

    /// Turns every action off, token or not.
    ///
    /// ```
    /// let options = mq::dashboard::Options::new().token("t").read_only(true);
    /// assert!(options.is_read_only());
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Options {
        self.read_only = read_only;
        self
    }

    /// Shows message bodies to every viewer, not only to a signed-in operator.
    ///
    /// ```
    /// let options = mq::dashboard::Options::new().show_bodies(true);
    /// # let _ = options;
    /// ```
    pub fn show_bodies(mut self, show: bool) -> Options {
        self.show_bodies = show;
        self
    }

    /// The routing table to show (message, queue, slots), and to tell which slots of a
    /// failed message succeeded: usually [`Registry::linked`].
    ///
    /// ```
    /// let options = mq::dashboard::Options::new().registry(mq::Registry::linked()?);
    /// # let _ = options;
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn registry(mut self, registry: Registry) -> Options {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// How long a page waits for the backend before it shows it as unreachable.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = mq::dashboard::Options::new().backend_timeout(Duration::from_secs(2));
    /// # let _ = options;
    /// ```
    pub fn backend_timeout(mut self, timeout: Duration) -> Options {
        self.backend_timeout = timeout;
        self
    }

    /// How often the counts are sampled for the last hour's chart.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = mq::dashboard::Options::new().sample_every(Duration::from_secs(15));
    /// # let _ = options;
    /// ```
    pub fn sample_every(mut self, every: Duration) -> Options {
        self.sample_every = every.max(Duration::from_millis(100));
        self
    }

    /// Whether actions can be used at all: a token is set and not read-only.
    pub(crate) fn actions(&self) -> bool {
        self.token.is_some() && !self.read_only
    }

    /// Whether a token was given.
    ///
    /// ```
    /// assert!(mq::dashboard::Options::new().token("t").has_token());
    /// ```
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the dashboard is read-only: `read_only`, or no token.
    ///
    /// ```
    /// assert!(mq::dashboard::Options::new().is_read_only()); // no token
    /// assert!(!mq::dashboard::Options::new().token("t").is_read_only());
    /// ```
    pub fn is_read_only(&self) -> bool {
        !self.actions()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("read_only", &self.read_only)
            .field("show_bodies", &self.show_bodies)
            .field("registry", &self.registry.is_some())
            .field("backend_timeout", &self.backend_timeout)
            .field("sample_every", &self.sample_every)
            .finish()
    }
}
