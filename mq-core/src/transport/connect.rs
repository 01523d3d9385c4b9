//! Opening a transport from a URL, the URL from the environment, and a URL fit for logs.

use std::sync::Arc;

use super::{scheme, Transport};
use crate::Result;

/// The URL used when `MQ_URL` is not set: an SQLite file in the working directory.
///
/// ```
/// std::env::remove_var("MQ_URL");
/// assert_eq!(mq::transport::url_from_env(), mq::transport::DEFAULT_URL);
/// assert_eq!(mq::transport::DEFAULT_URL, "sqlite://mq.db");
/// ```
pub const DEFAULT_URL: &str = "sqlite://mq.db";

/// Opens the transport a URL names: one of the [`scheme::compiled`] schemes, e.g.
/// `memory://[NAME]` (an in-process queue shared by every user of the same name in this
/// process), `sqlite://PATH`, `beanstalk://HOST[:PORT]`,
/// `nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][?replicas=N&ack_wait=DURATION&ca=PATH]`
/// (NATS JetStream, with the `nats` feature),
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME]` (with the `postgres` feature).
///
/// # Errors
///
/// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a URL that names no backend of this build (saying which cargo
/// feature compiles it in, for one of mq's own) or is malformed; the backend's own errors
/// when it cannot be opened or reached.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("mq.db").display());
/// let transport = mq::transport::connect(&url).await?;
/// assert!(transport.describe().ends_with("mq.db"));
/// assert!(matches!(
///     mq::transport::connect("amqp://127.0.0.1").await,
///     Err(mq::Error::InvalidUrl { .. })
/// ));
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Transport>> {
    scheme::lookup(url)?(url).await
}

/// Like [`connect`], but creates nothing: a queue whose storage is not there yet (an
/// `sqlite://` file) is an error naming where it looked, instead of a new, empty queue. For
/// tools that inspect queues (`mq stats`, `mq failed`); backends on a server open as
/// [`connect`] does.
///
/// # Errors
///
/// As [`connect`]; [`Error::Sqlite`](crate::Error::Sqlite) with the absolute path when the
/// file does not exist.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("mq.db").display());
/// assert!(mq::transport::connect_existing(&url).await.is_err()); // no file yet, none made
/// mq::transport::connect(&url).await?;
/// assert!(mq::transport::connect_existing(&url).await.is_ok());
/// # Ok(()) }
/// ```
pub async fn connect_existing(url: &str) -> Result<Arc<dyn Transport>> {
    scheme::lookup_existing(url)?(url).await
}

/// `url` with its user information (`user:password@`) replaced by `***@`, for logs.
///
/// ```
/// use mq::transport::redacted;
///
/// assert_eq!(redacted("postgres://app:secret@db/shop"), "postgres://***@db/shop");
/// assert_eq!(redacted("beanstalk://127.0.0.1:11300"), "beanstalk://127.0.0.1:11300");
/// ```
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // A path (`sqlite:///srv/a@b/mq.db`) has no user information. Otherwise everything up
    // to the last `@` before the query is hidden, so a password with an unescaped `/` is too.
    if rest.starts_with('/') {
        return url.to_owned();
    }
    let before_query = rest.find('?').unwrap_or(rest.len());
    match rest[..before_query].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The URL from `MQ_URL`, or [`DEFAULT_URL`].
///
/// ```
/// std::env::set_var("MQ_URL", "beanstalk://10.0.0.5");
/// assert_eq!(mq::transport::url_from_env(), "beanstalk://10.0.0.5");
/// std::env::set_var("MQ_URL", ""); // empty is unset
/// assert_eq!(mq::transport::url_from_env(), "sqlite://mq.db");
/// ```
pub fn url_from_env() -> String {
    std::env::var("MQ_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_hides_user_information_only() {
        assert_eq!(
            super::redacted("nats://me:secret@10.0.0.1:4222,10.0.0.2:4222"),
            "nats://***@10.0.0.1:4222,10.0.0.2:4222"
        );
        assert_eq!(
            super::redacted("beanstalk://127.0.0.1:11300"),
            "beanstalk://127.0.0.1:11300"
        );
        assert_eq!(
            super::redacted("sqlite:///srv/a@b/mq.db"),
            "sqlite:///srv/a@b/mq.db"
        );
        assert_eq!(super::redacted("memory://"), "memory://");
        assert_eq!(
            super::redacted("nats://u:pa/ss@h:4222"),
            "nats://***@h:4222"
        );
    }
}
