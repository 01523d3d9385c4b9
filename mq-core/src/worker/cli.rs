//! The worker's command line (the `cli` feature): flags and `MQ_*` variables over the options
//! the program set, which `--help` shows as the defaults.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

use super::options::{format_bytes, parse_bytes, Options, DEFAULT_CONCURRENCY};
use crate::duration::parse_duration;

/// The `--url` help: the URL forms of the backends compiled into this build.
fn url_help() -> String {
    format!("Queue URL: {}", crate::transport::scheme::usages())
}

const ENVIRONMENT: &str = "\
Environment:
  MQ_URL            the same as --url (default sqlite://mq.db, unless --url shows another)
  MQ_OUTBOX         the same as --outbox
  MQ_QUEUES, MQ_CONCURRENCY, MQ_LIMIT, MQ_TIME_LIMIT, MQ_MEMORY_LIMIT, MQ_FAILURE_LIMIT,
  MQ_GRACE, MQ_RETRIES   the same as the flags above
  MQ_RATE_LIMIT     the same as --rate-limit, comma-separated: emails=50,geocode=10
  MQ_SIGNATURES     the same as --signatures
  MQ_SIGNING_KEYS   KEY_ID:SECRET[,KEY_ID:SECRET...]: check every envelope's signature, sign
                    what slots dispatch (the first key signs; keys of 32+ random bytes, hex or base64)
  MQ_METRICS_ADDR, MQ_HEALTH_TIMEOUT   the same as --metrics-addr and --health-timeout, in
                    a worker built with mq-core's cargo feature `prometheus`
  RUST_LOG          log filter (default info), e.g. RUST_LOG=mq=debug
  A flag wins over its variable, and both over the defaults shown above.

Exit codes (of `check`: 0 every message readable, 1 could not read the backend, 3 some
message not readable by this build):
  0  stopped by SIGINT/SIGTERM, --limit or --time-limit
  1  could not start (bad URL, unreachable server, registry error)
  2  bad command line
  3  --memory-limit reached
  4  --failure-limit reached
  130  a second SIGINT/SIGTERM: stopped at once, running messages come back to their queue";

// Every option is `None` (empty) unless a flag or its variable gives it: [`Cli::apply`] puts
// what was given over the program's options. (A doc comment here would be the help's text.)
/// Consumes messages and emits each to every slot linked into this binary.
#[derive(Debug, Parser)]
#[command(after_help = ENVIRONMENT)]
pub(crate) struct Cli {
    // The help lists the backends of this build.
    #[arg(long, env = "MQ_URL", value_name = "URL", help = url_help())]
    url: Option<String>,

    /// A postgres:// outbox whose committed messages this worker also relays to --url
    /// (the application dispatches into it with `within`; see `mq relay`)
    #[arg(long, env = "MQ_OUTBOX", value_name = "URL")]
    outbox: Option<String>,

    /// Queues to consume, earlier first; without it, every queue with a slot in this binary
    #[arg(long, env = "MQ_QUEUES", value_delimiter = ',', value_name = "A,B")]
    queues: Vec<String>,

    /// At most R messages of QUEUE start per second, counted by the backend: give every
    /// worker of the queue the same rate (repeat for more queues)
    #[arg(long, env = "MQ_RATE_LIMIT", value_delimiter = ',', value_parser = parse_rate, value_name = "QUEUE=R")]
    rate_limit: Vec<(String, u32)>,

    /// Messages whose slots run at once
    #[arg(long, env = "MQ_CONCURRENCY", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    concurrency: Option<u64>,

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
    #[arg(long, env = "MQ_GRACE", value_parser = parse_duration, value_name = "DURATION")]
    grace: Option<Duration>,

    /// Retries after the first attempt, for messages without #[message(retries = N)]
    #[arg(long, env = "MQ_RETRIES", value_name = "N")]
    retries: Option<u32>,

    /// Serve Prometheus's /metrics and a /healthz on this address, e.g. 127.0.0.1:9464
    #[cfg(feature = "prometheus")]
    #[arg(long, env = "MQ_METRICS_ADDR", value_parser = parse_addr, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// How long reserves may fail before /healthz answers 503
    #[cfg(feature = "prometheus")]
    #[arg(long, env = "MQ_HEALTH_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    health_timeout: Option<Duration>,

    /// With MQ_SIGNING_KEYS set: `required` (default) sends unsigned envelopes to the
    /// failure store, `accept-unsigned` runs them (a migration); forged ones never run
    #[arg(long, env = "MQ_SIGNATURES", value_name = "POLICY")]
    signatures: Option<crate::signing::Signatures>,

    /// Print the routing table (message, type, queue, slots) and exit
    #[arg(long)]
    pub(crate) list: bool,

    /// Print the schedules (name, message, when, next tick) and exit
    #[cfg(feature = "schedules")]
    #[arg(long)]
    pub(crate) schedules: bool,

    #[command(subcommand)]
    pub(crate) command: Option<WorkerCommand>,
}

/// What the worker binary does instead of consuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum WorkerCommand {
    /// Before a deploy: read every queued and failed message of --url and report, by message
    /// name and version, what this build cannot decode and why; exit 0 when it reads them
    /// all, 3 when not (1: the backend could not be read)
    Check {
        /// Print the report as JSON: {"readable": N, "unreadable": [{"place", "name",
        /// "version", "reason", "count"}, ...]}
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Parses `args` (the program first) and the `MQ_*` variables. `--help` shows `defaults`
    /// (what the program set) as the defaults; `--version` prints the program's file name and
    /// `version`, else the version of mq it was built with.
    pub(crate) fn try_parse_over(
        args: impl IntoIterator<Item = OsString>,
        defaults: &Options,
        version: Option<&str>,
    ) -> Result<Cli, clap::Error> {
        let mut args = args.into_iter().peekable();
        let name = args
            .peek()
            .and_then(|program| Path::new(program).file_name())
            .map_or_else(
                || "worker".to_owned(),
                |name| name.to_string_lossy().into_owned(),
            );
        let version = version.map_or_else(
            || format!("(mq {})", env!("CARGO_PKG_VERSION")),
            str::to_owned,
        );
        let command = show_defaults(Cli::command().name(name).version(version), defaults);
        Cli::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    /// Puts every option given, by a flag or its variable, over `options`.
    pub(crate) fn apply(self, options: &mut Options) {
        if self.url.is_some() {
            options.url = self.url;
        }
        if let Some(outbox) = self.outbox {
            // An empty MQ_OUTBOX turns the outbox off.
            options.outbox = Some(outbox).filter(|url| !url.is_empty());
        }
        if !self.queues.is_empty() {
            options.queues = self.queues;
        }
        for (queue, rate) in self.rate_limit {
            options.set_queue_rate(queue, rate);
        }
        if let Some(concurrency) = self.concurrency {
            options.concurrency = usize::try_from(concurrency).unwrap_or(DEFAULT_CONCURRENCY);
        }
        options.limit = self.limit.or(options.limit);
        options.time_limit = self.time_limit.or(options.time_limit);
        options.memory_limit = self.memory_limit.or(options.memory_limit);
        options.failure_limit = self.failure_limit.or(options.failure_limit);
        options.grace = self.grace.unwrap_or(options.grace);
        options.retries = self.retries.unwrap_or(options.retries);
        options.signatures = self.signatures.or(options.signatures);
        #[cfg(feature = "prometheus")]
        {
            options.metrics_addr = self.metrics_addr.or(options.metrics_addr);
            options.health_timeout = self.health_timeout.unwrap_or(options.health_timeout);
        }
    }
}

/// Parses `--rate-limit QUEUE=R`: a queue's name and a rate of 1 or more a second.
fn parse_rate(text: &str) -> Result<(String, u32), String> {
    let Some((queue, rate)) = text.split_once('=') else {
        return Err(format!(
            "`{text}` is not QUEUE=R; write e.g. emails=50 (at most 50 a second)"
        ));
    };
    let queue = queue.trim();
    if queue.is_empty() {
        return Err(format!("`{text}` names no queue; write e.g. emails=50"));
    }
    match rate.trim().parse::<u32>() {
        Ok(0) => Err(format!(
            "a rate of 0 would never run a message of `{queue}`; give 1 or more"
        )),
        Ok(rate) => Ok((queue.to_owned(), rate)),
        Err(_) => Err(format!(
            "`{rate}` is not a rate; write a whole number a second, e.g. {queue}=50"
        )),
    }
}

/// Parses `--metrics-addr`: an IP address and a port (a host name would make the port
/// depend on name resolution at start-up).
#[cfg(feature = "prometheus")]
fn parse_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("`{text}` is not an address and port; write e.g. 127.0.0.1:9464 or [::]:9464")
    })
}

/// Appends `[default: ...]` to the help of each option that `defaults` sets. Shown only, never
/// parsed: an option not given keeps the program's value as it is (a URL's password hidden).
fn show_defaults(command: clap::Command, defaults: &Options) -> clap::Command {
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let shown = [
        (
            "url",
            defaults.url.as_deref().map(crate::transport::redacted),
        ),
        (
            "outbox",
            defaults.outbox.as_deref().map(crate::transport::redacted),
        ),
        (
            "queues",
            (!defaults.queues.is_empty()).then(|| defaults.queues.join(",")),
        ),
        (
            "rate_limit",
            (!defaults.rates.is_empty()).then(|| {
                let rates = defaults.rates.iter().map(|(q, r)| format!("{q}={r}"));
                rates.collect::<Vec<_>>().join(",")
            }),
        ),
        ("concurrency", Some(defaults.concurrency.to_string())),
        ("limit", defaults.limit.map(|n| n.to_string())),
        ("time_limit", defaults.time_limit.map(duration)),
        ("memory_limit", defaults.memory_limit.map(format_bytes)),
        (
            "failure_limit",
            defaults.failure_limit.map(|n| n.to_string()),
        ),
        ("grace", Some(duration(defaults.grace))),
        ("retries", Some(defaults.retries.to_string())),
        #[cfg(feature = "prometheus")]
        ("metrics_addr", defaults.metrics_addr.map(|a| a.to_string())),
        #[cfg(feature = "prometheus")]
        ("health_timeout", Some(duration(defaults.health_timeout))),
    ];
    shown
        .into_iter()
        .fold(command, |command, (id, default)| match default {
            Some(default) => command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            }),
            None => command,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], defaults: &Options) -> Result<Options, clap::Error> {
        let args = std::iter::once("worker").chain(args.iter().copied());
        let cli = Cli::try_parse_over(args.map(OsString::from), defaults, None)?;
        let mut options = defaults.clone();
        cli.apply(&mut options);
        Ok(options)
    }

    #[test]
    fn command_line_reads_every_flag() {
        let options = parse(
            &[
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
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(options.queues, ["a", "b"]);
        assert_eq!(options.concurrency, 8);
        assert_eq!(options.limit, Some(10));
        assert_eq!(options.time_limit, Some(Duration::from_secs(60)));
        assert_eq!(options.memory_limit, Some(64 << 20));
        assert_eq!(options.failure_limit, Some(2));
        assert_eq!(options.grace, Duration::from_secs(5));
        assert_eq!(options.retries, 7);
    }

    fn set_in_code() -> Options {
        Options {
            url: Some("postgres://app:secret@db/shop".into()),
            queues: vec!["emails".into()],
            concurrency: 16,
            limit: Some(3),
            time_limit: Some(Duration::from_secs(90)),
            memory_limit: Some(512 << 20),
            grace: Duration::from_secs(5),
            ..Options::default()
        }
    }

    #[test]
    fn what_the_code_set_stays_unless_given() {
        let defaults = set_in_code();
        let options = parse(&[], &defaults).unwrap();
        assert_eq!(options.url, defaults.url);
        assert_eq!(options.queues, ["emails"]);
        assert_eq!(options.concurrency, 16);
        assert_eq!(options.limit, Some(3));
        assert_eq!(options.time_limit, Some(Duration::from_secs(90)));
        assert_eq!(options.memory_limit, Some(512 << 20));
        assert_eq!(options.grace, Duration::from_secs(5));

        let options = parse(&["--limit", "2", "--url", "memory://"], &defaults).unwrap();
        assert_eq!(options.limit, Some(2));
        assert_eq!(options.url.as_deref(), Some("memory://"));
        assert_eq!(options.concurrency, 16);
    }

    #[test]
    fn help_shows_what_the_code_set_as_defaults() {
        let help = parse(&["--help"], &set_in_code()).unwrap_err().to_string();
        for shown in [
            "[default: postgres://***@db/shop]",
            "[default: emails]",
            "[default: 16]",
            "[default: 3]",
            "[default: 1m 30s]",
            "[default: 512M]",
            "[default: 5s]",
            "Usage: worker",
        ] {
            assert!(help.contains(shown), "no {shown} in {help}");
        }
        assert!(!help.contains("secret"), "{help}");
    }

    #[test]
    fn version_names_the_program() {
        let version = |version| {
            let args = ["/usr/bin/shop-worker", "--version"].map(OsString::from);
            let error = Cli::try_parse_over(args, &Options::default(), version).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::DisplayVersion);
            error.to_string()
        };
        assert_eq!(version(Some("2.1.0")), "shop-worker 2.1.0\n");
        assert_eq!(
            version(None),
            format!("shop-worker (mq {})\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[cfg(feature = "prometheus")]
    #[test]
    fn metrics_address_and_health_timeout() {
        let options = parse(
            &[
                "--metrics-addr",
                "127.0.0.1:9464",
                "--health-timeout",
                "10s",
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(options.metrics_addr, Some(([127, 0, 0, 1], 9464).into()));
        assert_eq!(options.health_timeout, Duration::from_secs(10));
        assert_eq!(Options::default().metrics_addr, None);
        let error = parse(&["--metrics-addr", "localhost"], &Options::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("write e.g. 127.0.0.1:9464"), "{error}");
    }

    #[test]
    fn rate_limits_per_queue_over_the_code_s() {
        let mut defaults = Options::default();
        defaults.set_queue_rate("emails".into(), 5);
        defaults.set_queue_rate("geocode".into(), 50);
        let args = ["--rate-limit", "geocode=10", "--rate-limit", "reports=1"];
        let options = parse(&args, &defaults).unwrap();
        assert_eq!(options.queue_rate("emails"), Some(5));
        assert_eq!(options.queue_rate("geocode"), Some(10));
        assert_eq!(options.queue_rate("reports"), Some(1));
        assert_eq!(options.queue_rate("other"), None);
        let help = parse(&["--help"], &defaults).unwrap_err().to_string();
        assert!(help.contains("[default: emails=5,geocode=50]"), "{help}");
        for (bad, says) in [
            ("geocode=0", "a rate of 0 would never run"),
            ("geocode", "is not QUEUE=R"),
            ("=5", "names no queue"),
            ("geocode=fast", "is not a rate"),
        ] {
            let error = parse(&["--rate-limit", bad], &defaults).unwrap_err();
            assert!(error.to_string().contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn zero_concurrency_is_refused() {
        assert!(parse(&["--concurrency", "0"], &Options::default()).is_err());
    }

    #[test]
    fn url_help_lists_the_compiled_backends() {
        let help = url_help();
        assert!(help.contains("memory://"), "{help}");
        assert_eq!(help.contains("nats://"), cfg!(feature = "nats"));
    }
}
