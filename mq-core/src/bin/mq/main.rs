//! `mq`: the operator's command. Looks at queues and the failure store of any backend,
//! publishes and peeks messages by hand. It works on the wire format and the `Transport`
//! trait only, so it needs none of the application's message types.
//!
//! Exit codes: 0 success, 1 runtime error (unreachable server, unknown id, ...), 2 usage
//! error (unknown command, bad argument, `flush` without `--force`). See `mq::guide::cli`.

mod dashboard;
mod failed;
mod migrate;
mod progress;
mod queue;
mod relay;
mod schedules;
mod stats;
mod table;
mod view;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mq::transport::Transport;

/// Look at and operate mq queues: counts, the failure store, publishing and peeking.
#[derive(Debug, Parser)]
#[command(name = "mq", version, propagate_version = true)]
struct Cli {
    // The help lists the backends of this build (the scheme table).
    #[arg(long, global = true, env = "MQ_URL", value_name = "URL", help = url_help())]
    url: Option<String>,

    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Counts per queue (ready, reserved, delayed, failed) and the server's own figures.
    Stats(stats::StatsArgs),
    /// The failure store: list, show, retry, remove.
    #[command(subcommand)]
    Failed(failed::FailedCommand),
    /// Put a message on a queue by hand; prints its message id.
    Publish(queue::PublishArgs),
    /// Show the next ready message of a queue without taking it.
    Peek(QueueArg),
    /// Delete every ready and delayed message of a queue (needs --force).
    Flush(queue::FlushArgs),
    /// Create or upgrade the backend's tables; --print shows the SQL instead (postgres).
    Migrate(migrate::MigrateArgs),
    /// Move what was committed to a PostgreSQL outbox (--outbox) onto the broker of --url.
    Relay(relay::RelayArgs),
    /// Serve the web dashboard: queues, failures, retry and remove in the browser.
    Dashboard(dashboard::DashboardArgs),
    /// The schedules the workers run: when each ticks, its next and last tick.
    Schedules,
}

#[derive(Debug, Args)]
struct QueueArg {
    /// The queue.
    queue: String,
}

/// What the command prints and which exit code ends it.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Runtime(String),
    /// Stdout was closed by the reader (`mq failed list | head`): stop quietly.
    BrokenPipe,
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

impl From<mq::Error> for CliError {
    fn from(error: mq::Error) -> Self {
        CliError::Runtime(error.to_string())
    }
}

impl From<io::Error> for CliError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Runtime(format!("cannot write output: {error}"))
        }
    }
}

impl From<serde_json::Error> for CliError {
    fn from(error: serde_json::Error) -> Self {
        if error.io_error_kind() == Some(io::ErrorKind::BrokenPipe) {
            CliError::BrokenPipe
        } else {
            CliError::Runtime(format!("cannot write JSON: {error}"))
        }
    }
}

/// What every command gets: the transport, where it points, and the output mode.
pub(crate) struct Ctx {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) json: bool,
    /// The keys of `MQ_SIGNING_KEYS`: `publish` signs with the first, `failed retry` checks
    /// and (with `--resign`) signs.
    pub(crate) signer: Option<mq::signing::Signer>,
}

impl Ctx {
    /// Prints `value` as one line of JSON.
    pub(crate) fn print_json(&self, value: &impl serde::Serialize) -> CliResult {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, value)?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    }
}

pub(crate) use mq::parse_duration;

/// The `--url` help: the URL forms of the backends compiled into this build.
fn url_help() -> String {
    format!(
        "The queue backend: {} (default: $MQ_URL, else sqlite://mq.db)",
        mq::transport::scheme::usages()
    )
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return report(CliError::Runtime(format!(
                "cannot start the async runtime: {error}"
            )))
        }
    };
    // Warnings of the transports (a reconnect, an entry left behind) go to stderr.
    mq::init_logging_at("warn");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

async fn run(cli: Cli) -> CliResult {
    // Refuse usage errors before connecting, so that they are usage errors whatever the URL.
    match &cli.command {
        Command::Flush(args) => queue::check_flush(args)?,
        Command::Publish(args) => drop(queue::check_publish(args)?),
        Command::Dashboard(args) => dashboard::check(args)?,
        _ => {}
    }
    let given = cli.url.filter(|url| !url.is_empty());
    let defaulted = given.is_none() && std::env::var("MQ_URL").map_or(true, |u| u.is_empty());
    let url = given.unwrap_or_else(mq::transport::url_from_env);
    if let Command::Migrate(migrate::MigrateArgs { print: true }) = &cli.command {
        return migrate::print(&url);
    }
    let transport = if cli.command.writes() {
        connect_creating(&url).await?
    } else {
        mq::transport::connect_existing(&url)
            .await
            .map_err(|error| {
                if !defaulted {
                    return CliError::from(error);
                }
                CliError::Runtime(format!(
                    "{error} (neither --url nor MQ_URL is set, so mq looked for the default, \
                     {}, in the working directory)",
                    mq::transport::DEFAULT_URL
                ))
            })?
    };
    let signer =
        mq::signing::Signer::from_env().map_err(|error| CliError::Usage(error.to_string()))?;
    let ctx = Ctx {
        transport,
        json: cli.json,
        signer,
    };
    match cli.command {
        Command::Stats(args) => stats::run(&ctx, &args).await,
        Command::Failed(command) => failed::run(&ctx, command).await,
        Command::Publish(args) => queue::publish(&ctx, &args).await,
        Command::Peek(args) => queue::peek(&ctx, &args.queue).await,
        Command::Flush(args) => queue::flush(&ctx, &args).await,
        Command::Migrate(_) => migrate::run(&ctx),
        Command::Relay(args) => relay::run(&ctx, &args).await,
        Command::Dashboard(args) => dashboard::run(&ctx, &args).await,
        Command::Schedules => schedules::run(&ctx).await,
    }
}

impl Command {
    /// Whether the command puts messages or tables where they may not exist yet: it may
    /// create an SQLite file. The others inspect or delete, and open only what exists.
    fn writes(&self) -> bool {
        matches!(
            self,
            Command::Publish(_) | Command::Migrate(_) | Command::Relay(_)
        )
    }
}

/// Opens `url`, creating its queue if it stores in a local file that is not there yet, and
/// then says so on stderr, naming the file (the usual cause: the wrong working directory).
async fn connect_creating(url: &str) -> CliResult<Arc<dyn Transport>> {
    let local = mq::transport::scheme::of(url).is_some_and(|s| s.connect_existing.is_some());
    if local {
        if let Ok(transport) = mq::transport::connect_existing(url).await {
            return Ok(transport);
        }
    }
    let transport = mq::transport::connect(url).await?;
    if local {
        warn(&format!(
            "created a new, empty queue {}: a worker sees what is put there only if its \
             MQ_URL names this file",
            transport.describe()
        ));
    }
    Ok(transport)
}

/// One line `mq: warning: ...` on stderr: what the operator should know, though the
/// command did what it was asked.
pub(crate) fn warn(text: &str) {
    let _ = writeln!(io::stderr(), "mq: warning: {text}");
}

/// clap's errors, as one line and exit 2; `--help` and `--version` print as usual.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            // clap writes the error, indented details, tips, then usage: keep all but the
            // usage, on one line.
            let text = error.render().to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|line| !line.starts_with("Usage:"))
                .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
                .collect();
            let joined = parts.join(" ");
            let first = joined.strip_prefix("error: ").unwrap_or(&joined);
            report(CliError::Usage(format!("{first} (see `mq --help`)")))
        }
    }
}

fn report(error: CliError) -> ExitCode {
    let (message, code) = match error {
        CliError::Usage(message) => (message, 2),
        CliError::Runtime(message) => (message, 1),
        CliError::BrokenPipe => return ExitCode::SUCCESS,
    };
    let one_line = message.replace(['\r', '\n'], " ");
    let _ = writeln!(io::stderr(), "mq: error: {one_line}");
    ExitCode::from(code)
}
