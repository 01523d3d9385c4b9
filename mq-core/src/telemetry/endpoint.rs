//! The worker's `--metrics-addr` (feature `prometheus`): one port that answers
//! `GET /metrics` with the Prometheus text format and `GET /healthz` with 200 or 503.
//!
//! A few lines of HTTP/1.1 on tokio rather than the exporter's own listener (hyper): the
//! endpoint has two fixed routes and one reader, Prometheus or a probe, and `/healthz`
//! must sit beside `/metrics`, which the exporter's listener cannot serve. Each request is
//! read within a time limit and a size bound, answered, and its connection closed.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::health::Health;
use crate::{Error, Result};

/// The longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Histogram buckets, in seconds: from a millisecond (a quick slot) to ten minutes (a
/// message that waited behind a backlog).
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// The recorder mq installed in this process, shared by every endpoint of it.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// A bound port, ready to serve.
#[derive(Debug)]
pub(crate) struct Endpoint {
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
}

impl Endpoint {
    /// Installs the Prometheus recorder (once per process) and binds `addr`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the port cannot be bound (in use, not an address of this
    /// machine) or when the application installed another `metrics` recorder.
    pub(crate) async fn bind(addr: SocketAddr, health: Arc<Health>) -> Result<Endpoint> {
        let handle = recorder()?;
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            Error::Config(format!(
                "cannot serve metrics on {addr}: {error}; pick another --metrics-addr \
                 (MQ_METRICS_ADDR)"
            ))
        })?;
        Ok(Endpoint {
            listener,
            handle,
            health,
        })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Answers requests until dropped.
    pub(crate) async fn serve(self) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = self.handle.clone();
            let health = self.health.clone();
            tokio::spawn(async move {
                if let Err(error) = answer(stream, &handle, &health).await {
                    tracing::debug!(%error, "metrics endpoint: request dropped");
                }
            });
        }
    }
}

/// The process's Prometheus recorder: installed by the first endpoint.
fn recorder() -> Result<PrometheusHandle> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|error| Error::Config(format!("metrics buckets: {error}")))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| {
        Error::Config(
            "--metrics-addr installs a Prometheus recorder, but this program installed \
             another `metrics` recorder; serve that one's metrics instead, and leave \
             --metrics-addr unset"
                .into(),
        )
    })?;
    Ok(RECORDER.get_or_init(|| handle).clone())
}

/// Reads one request and writes its answer.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle, health: &Health) -> Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))??;
    let (status, content_type, body) = route(&head, handle, health);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// The request line and headers, up to the blank line (at most [`MAX_REQUEST`] bytes).
async fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || head.len() + read > MAX_REQUEST {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status line, content type and body of the answer to `head`.
fn route(
    head: &str,
    handle: &PrometheusHandle,
    health: &Health,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return (
            "405 Method Not Allowed",
            TEXT,
            "GET /metrics or /healthz\n".into(),
        );
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            handle.run_upkeep();
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                handle.render(),
            )
        }
        "/healthz" => match health.check(Instant::now()) {
            Ok(()) => ("200 OK", TEXT, "ok\n".into()),
            Err(why) => ("503 Service Unavailable", TEXT, format!("{why}\n")),
        },
        _ => ("404 Not Found", TEXT, "GET /metrics or /healthz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_to(head: &str, health: &Health) -> (&'static str, String) {
        // A recorder of the test's own, not installed: nothing global changes.
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let (status, _, body) = route(head, &handle, health);
        (status, body)
    }

    #[test]
    fn routes() {
        let health = Health::new(Duration::from_secs(30));
        let get = |path: &str| answer_to(&format!("GET {path} HTTP/1.1\r\n\r\n"), &health);
        assert_eq!(get("/healthz"), ("200 OK", "ok\n".into()));
        assert_eq!(get("/metrics").0, "200 OK");
        assert_eq!(get("/metrics?x=1").0, "200 OK");
        assert_eq!(get("/").0, "404 Not Found");
        assert_eq!(
            answer_to("POST /metrics HTTP/1.1\r\n\r\n", &health).0,
            "405 Method Not Allowed"
        );
        assert_eq!(answer_to("", &health).0, "405 Method Not Allowed");
    }

    #[test]
    fn healthz_says_why_it_is_unhealthy() {
        let health = Health::new(Duration::ZERO);
        health.reserve_failed(&"connection refused");
        std::thread::sleep(Duration::from_millis(5));
        let (status, body) = answer_to("GET /healthz HTTP/1.1\r\n\r\n", &health);
        assert_eq!(status, "503 Service Unavailable");
        assert!(body.contains("connection refused"), "{body}");
    }
}
