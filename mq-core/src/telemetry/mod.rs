//! What operators see of mq beyond the log: `tracing` spans named and attributed after
//! OpenTelemetry's messaging semantic conventions, the trace context carried in the
//! envelope's headers (feature `otel`), metrics on the `metrics` facade and the worker's
//! `/metrics` and `/healthz` endpoint (feature `metrics`). See [`guide::observability`](crate::guide::observability).
//!
//! The spans are plain `tracing`, always compiled: when no subscriber wants them, a span
//! macro is one check of its call site's cached interest and its fields are never
//! evaluated, so they cost the hot path nothing worth measuring ([`guide::performance`](crate::guide::performance)).

#[cfg(feature = "prometheus")]
pub(crate) mod endpoint;
#[cfg(feature = "prometheus")]
pub(crate) mod health;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod spans;

/// The `messaging.system` value of a transport, from the scheme its `describe()` starts
/// with: OpenTelemetry's names where it has one (`nats`, `postgresql`), the backend's own
/// otherwise (`beanstalkd`, `sqlite`, `memory`), `other` for a backend of another crate.
pub(crate) fn messaging_system(describe: &str) -> &'static str {
    let scheme = describe.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "beanstalk" => "beanstalkd",
        "sqlite" => "sqlite",
        "nats" => "nats",
        "postgres" | "postgresql" => "postgresql",
        "memory" => "memory",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_by_scheme() {
        for (url, system) in [
            ("beanstalk://127.0.0.1:11300", "beanstalkd"),
            ("sqlite:///tmp/mq.db", "sqlite"),
            ("nats://127.0.0.1:4222", "nats"),
            ("postgres://app@db:5432/shop?schema=mq", "postgresql"),
            ("memory://t", "memory"),
            ("myq://host", "other"),
            ("garbage", "other"),
        ] {
            assert_eq!(messaging_system(url), system, "{url}");
        }
    }
}
