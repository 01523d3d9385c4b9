//! Worker options: what the builder and the command line set.

use std::time::Duration;

use crate::retry::Backoff;

/// Everything that tunes a worker; the builder and the command line both fill it.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) url: Option<String>,
    /// A PostgreSQL outbox to relay to the worker's transport (`--outbox`, `MQ_OUTBOX`).
    pub(crate) outbox: Option<String>,
    pub(crate) queues: Vec<String>,
    /// Queues whose messages this worker starts at most so many of per second
    /// (`WorkerBuilder::rate_limit`, `--rate-limit QUEUE=R`), each queue once.
    pub(crate) rates: Vec<(String, u32)>,
    pub(crate) concurrency: usize,
    pub(crate) limit: Option<u64>,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) failure_limit: Option<u64>,
    pub(crate) grace: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) unknown_retries: u32,
    pub(crate) unknown_backoff: Backoff,
    pub(crate) poll: Duration,
    pub(crate) handle_signals: bool,
    /// Where `/metrics` and `/healthz` are served (`--metrics-addr`); off when `None`.
    #[cfg(feature = "prometheus")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// How long reserves may fail before `/healthz` answers 503 (`--health-timeout`).
    #[cfg(feature = "prometheus")]
    pub(crate) health_timeout: Duration,
    /// Put retries back ready at once instead of after their backoff (the testing worker,
    /// [`run_until_idle`](super::WorkerBuilder::run_until_idle)).
    pub(crate) retry_now: bool,
    /// The signing keys (`WorkerBuilder::signer`); `MQ_SIGNING_KEYS` when `None`.
    pub(crate) signer: Option<crate::signing::Signer>,
    /// Whether unsigned envelopes run (`--signatures`, `MQ_SIGNATURES`).
    pub(crate) signatures: Option<crate::signing::Signatures>,
}

/// Default for `--concurrency`: messages whose slots run at once.
///
/// ```
/// assert_eq!(mq::worker::DEFAULT_CONCURRENCY, 64);
/// let builder = mq::Worker::builder().concurrency(mq::worker::DEFAULT_CONCURRENCY * 2);
/// ```
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default for `--grace`.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(mq::worker::DEFAULT_GRACE, Duration::from_secs(30));
/// let builder = mq::Worker::builder().grace(mq::worker::DEFAULT_GRACE * 2);
/// ```
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            outbox: None,
            queues: Vec::new(),
            rates: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            limit: None,
            time_limit: None,
            memory_limit: None,
            failure_limit: None,
            grace: DEFAULT_GRACE,
            retries: crate::message::DEFAULT_RETRIES,
            backoff: Backoff::DEFAULT,
            // About half an hour in all: long enough for a rolling deploy to finish.
            unknown_retries: 10,
            unknown_backoff: Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
            poll: Duration::from_secs(1),
            handle_signals: true,
            #[cfg(feature = "prometheus")]
            metrics_addr: None,
            #[cfg(feature = "prometheus")]
            health_timeout: crate::telemetry::health::DEFAULT_HEALTH_TIMEOUT,
            retry_now: false,
            signer: None,
            signatures: None,
        }
    }
}

/// Parses a size: a number of bytes with an optional unit (`K`, `M`, `G`, `KiB`, `MiB`,
/// `GiB`, `KB`, `MB`, `GB`; all binary).
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 512M or 1G"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}`; use K, M or G"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A size as [`parse_bytes`] reads it back: in the largest unit that divides it.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn format_bytes(bytes: u64) -> String {
    [(30, "G"), (20, "M"), (10, "K")]
        .into_iter()
        .find(|(shift, _)| bytes != 0 && bytes.trailing_zeros() >= *shift)
        .map_or_else(
            || bytes.to_string(),
            |(shift, unit)| format!("{}{unit}", bytes >> shift),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("12X")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn sizes_read_back() {
        for (bytes, text) in [
            (512 << 20, "512M"),
            (3 << 30, "3G"),
            (1536, "1536"),
            (0, "0"),
        ] {
            assert_eq!(format_bytes(bytes), text);
            assert_eq!(parse_bytes(text), Ok(bytes));
        }
    }
}
