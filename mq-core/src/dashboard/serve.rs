//! Serving the dashboard on an address of its own, as `mq dashboard` does: the address
//! checked (loopback unless a token or read-only says otherwise), bound with errors a
//! person can act on, served until a signal.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use super::options::Options;
use crate::{Error, Result};

/// Binds `listen` (`127.0.0.1:8080`, `[::1]:8080`, port 0 for any) for a dashboard with
/// `options`.
///
/// # Errors
///
/// [`Error::Config`] when `listen` is not an address with a port; when it is not a
/// loopback address and the options have neither a token nor read-only (anyone who can
/// reach it could otherwise look; a token or `--read-only` says that is meant); when the
/// address is in use or may not be bound.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let options = mq::dashboard::Options::new();
/// let listener = mq::dashboard::bind("127.0.0.1:0", &options).await?;
/// assert!(listener.local_addr().is_ok());
/// assert!(mq::dashboard::bind("localhost", &options).await.is_err()); // no port
/// # Ok(()) }
/// ```
pub async fn bind(listen: &str, options: &Options) -> Result<TcpListener> {
    let address: SocketAddr = listen.trim().parse().map_err(|_| {
        Error::Config(format!(
            "--listen {listen:?} is not an address with a port, such as 127.0.0.1:8080 or [::1]:8080"
        ))
    })?;
    if !address.ip().is_loopback() && !options.has_token() && !options.read_only {
        return Err(Error::Config(format!(
            "refusing to serve the dashboard on {address}, which is not a loopback address, \
             without MQ_DASHBOARD_TOKEN or --read-only: set a token (actions need it) or pass \
             --read-only to show it to everyone who can reach {address}"
        )));
    }
    TcpListener::bind(address).await.map_err(|error| {
        let why = match error.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is in use (another dashboard?); pick another port with --listen"
                    .to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges); pick another with --listen"
                    .to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this machine has that address".to_owned()
            }
            _ => error.to_string(),
        };
        Error::Config(format!("cannot listen on {address}: {why}"))
    })
}

/// Serves `router` on `listener` until `shutdown` completes; requests under way finish.
///
/// # Errors
///
/// [`Error::Config`] when accepting connections fails for good.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let transport = mq::transport::connect("memory://").await?;
/// let options = mq::dashboard::Options::new();
/// let listener = mq::dashboard::bind("127.0.0.1:0", &options).await?;
/// let router = mq::dashboard::router(transport, options);
/// // Stops at once here; `mq dashboard` passes Ctrl-C.
/// mq::dashboard::serve(listener, router, async {}).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| Error::Config(format!("the dashboard's server stopped: {error}")))
}
