//! The command line of `mq::run_worker()`: flags and `MQ_*` variables into [`Options`]
//! (the `cli` feature).

use std::time::Duration;

use clap::Parser;

use super::options::{parse_bytes, Options, DEFAULT_CONCURRENCY};
use crate::duration::parse_duration;

/// The `--url` help: the URL forms of the backends compiled into this build.
fn url_help() -> String {
    format!("Queue URL: {}", crate::transport::scheme::usages())
}

const ENVIRONMENT: &str = "\
Environment:
  MQ_URL            queue URL (default sqlite://mq.db; the --url above lists the backends)
  MQ_OUTBOX         the same as --outbox
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
    // The help lists the backends of this build.
    #[arg(long, env = "MQ_URL", value_name = "URL", help = url_help())]
    url: Option<String>,

    /// A postgres:// outbox whose committed messages this worker also relays to --url
    /// (the application dispatches into it with `within`; see `mq relay`)
    #[arg(long, env = "MQ_OUTBOX", value_name = "URL")]
    outbox: Option<String>,

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
            outbox: self.outbox.filter(|url| !url.is_empty()),
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn url_help_lists_the_compiled_backends() {
        let help = url_help();
        assert!(help.contains("memory://"), "{help}");
        assert_eq!(help.contains("nats://"), cfg!(feature = "nats"));
    }
}
