//! Worker options, and the command line of `mq::run_worker()` that sets them.

use std::time::Duration;

use clap::Parser;

use crate::retry::Backoff;

/// Everything that tunes a worker; the builder and the command line both fill it.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) url: Option<String>,
    pub(crate) queues: Vec<String>,
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
}

/// Default for `--concurrency`: messages whose slots run at once.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default for `--grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            queues: Vec::new(),
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
        }
    }
}

const ENVIRONMENT: &str = "\
Environment:
  MQ_URL            queue URL (default sqlite://mq.db): sqlite://PATH, beanstalk://HOST[:PORT],
                    nats://HOST:PORT[,HOST:PORT...], memory://
  MQ_QUEUES, MQ_CONCURRENCY, MQ_LIMIT, MQ_TIME_LIMIT, MQ_MEMORY_LIMIT, MQ_FAILURE_LIMIT,
  MQ_GRACE, MQ_RETRIES   the same as the flags above
  RUST_LOG          log filter (default info), e.g. RUST_LOG=mq=debug

Exit codes:
  0  stopped by SIGINT/SIGTERM, --limit or --time-limit
  1  could not start (bad URL, unreachable server, registry error)
  2  bad command line
  3  --memory-limit reached
  4  --failure-limit reached
  130  a second SIGINT/SIGTERM: stopped at once, running messages come back to their queue";

/// Consumes messages and emits each to every slot linked into this binary.
#[derive(Debug, Parser)]
#[command(version, after_help = ENVIRONMENT)]
pub(crate) struct Cli {
    /// Queue URL: sqlite://PATH, beanstalk://HOST[:PORT], nats://HOST:PORT[,...] or memory://
    #[arg(long, env = "MQ_URL", value_name = "URL")]
    url: Option<String>,

    /// Queues to consume, earlier first [default: every queue with a slot in this binary]
    #[arg(long, env = "MQ_QUEUES", value_delimiter = ',', value_name = "A,B")]
    queues: Vec<String>,

    /// Messages whose slots run at once
    #[arg(long, env = "MQ_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY as u64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    concurrency: u64,

    /// Stop after handling N messages
    #[arg(long, env = "MQ_LIMIT", value_name = "N")]
    limit: Option<u64>,

    /// Stop after running this long, e.g. 1h30m
    #[arg(long, env = "MQ_TIME_LIMIT", value_parser = parse_duration, value_name = "DURATION")]
    time_limit: Option<Duration>,

    /// Stop when resident memory exceeds this, e.g. 256MiB or 1G
    #[arg(long, env = "MQ_MEMORY_LIMIT", value_parser = parse_bytes, value_name = "SIZE")]
    memory_limit: Option<u64>,

    /// Stop after N messages failed (retried or moved to the failure store)
    #[arg(long, env = "MQ_FAILURE_LIMIT", value_name = "N")]
    failure_limit: Option<u64>,

    /// On SIGINT/SIGTERM, how long running slots may take to finish
    #[arg(long, env = "MQ_GRACE", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,

    /// Retries after the first attempt, for messages without #[message(retries = N)]
    #[arg(long, env = "MQ_RETRIES", default_value_t = crate::message::DEFAULT_RETRIES)]
    retries: u32,

    /// Print the routing table (message, type, queue, slots) and exit
    #[arg(long)]
    pub(crate) list: bool,
}

impl Cli {
    pub(crate) fn into_options(self) -> Options {
        Options {
            url: self.url,
            queues: self.queues,
            concurrency: usize::try_from(self.concurrency).unwrap_or(DEFAULT_CONCURRENCY),
            limit: self.limit,
            time_limit: self.time_limit,
            memory_limit: self.memory_limit,
            failure_limit: self.failure_limit,
            grace: self.grace,
            retries: self.retries,
            ..Options::default()
        }
    }
}

/// Parses a duration as people write it: `90s`, `2m`, `1h30m`, `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 90s, 2m or 1h30m"))
}

/// Parses a size: a number of bytes with an optional unit (`K`, `M`, `G`, `KiB`, `MiB`,
/// `GiB`, `KB`, `MB`, `GB`; all binary).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").unwrap_err().contains("e.g. 90s"));
    }

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
    fn command_line_reads_every_flag() {
        let cli = Cli::try_parse_from([
            "worker",
            "--queues",
            "a,b",
            "--concurrency",
            "8",
            "--limit",
            "10",
            "--time-limit",
            "1m",
            "--memory-limit",
            "64M",
            "--failure-limit",
            "2",
            "--grace",
            "5s",
            "--retries",
            "7",
        ])
        .unwrap();
        let options = cli.into_options();
        assert_eq!(options.queues, ["a", "b"]);
        assert_eq!(options.concurrency, 8);
        assert_eq!(options.limit, Some(10));
        assert_eq!(options.time_limit, Some(Duration::from_secs(60)));
        assert_eq!(options.memory_limit, Some(64 << 20));
        assert_eq!(options.failure_limit, Some(2));
        assert_eq!(options.grace, Duration::from_secs(5));
        assert_eq!(options.retries, 7);
    }

    #[test]
    fn zero_concurrency_is_refused() {
        assert!(Cli::try_parse_from(["worker", "--concurrency", "0"]).is_err());
    }
}
