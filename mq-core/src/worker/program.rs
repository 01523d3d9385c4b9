//! The worker as a program's `main`: [`WorkerBuilder::command_line`] puts the flags and
//! `MQ_*` variables over what the code set, [`WorkerBuilder::run_and_exit`] runs it with the
//! exit codes. [`run_worker`](crate::run_worker) is both over the defaults.

use super::builder::WorkerBuilder;
use crate::Result;

impl WorkerBuilder {
    /// The application's version, which `--version` prints after the program's name
    /// (default: the version of mq, as `NAME (mq 0.1.0)`). Call it before
    /// [`command_line`](WorkerBuilder::command_line), with `env!("CARGO_PKG_VERSION")`: a
    /// library cannot read its caller's version by itself.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> mq::Result<()> {
    /// mq::Worker::builder()
    ///     .app_version(env!("CARGO_PKG_VERSION")) // `worker --version`: worker 2.1.0 (mq 0.1.0)
    ///     .command_line()
    ///     .run_and_exit()
    ///     .await
    /// # }
    /// ```
    #[cfg(feature = "cli")]
    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Reads the command line and the `MQ_*` variables, as [`run_worker`](crate::run_worker)
    /// does, over what this builder was given so far.
    ///
    /// A flag wins over its `MQ_*` variable, and both over the builder's methods, which are
    /// the defaults an operator may override (`--help` shows them as such): the code says
    /// `.concurrency(16)`, `MQ_CONCURRENCY=32` overrides it, `--concurrency 8` overrides
    /// both. A method called after this one overrides the command line in turn. State, the
    /// registry, the hook and a transport are code only.
    ///
    /// Some arguments end the process here, as `run_worker`'s do: `--help` and `--version`
    /// print and exit 0; a bad command line prints why and exits 2; `--list` prints the
    /// routing table (of [`registry`](WorkerBuilder::registry) if given before, else every
    /// linked slot) and exits 0, or 1 when the registry is broken. So call it before doing
    /// anything that `--help` should not do, and after `.registry(..)` and
    /// [`app_version`](WorkerBuilder::app_version).
    ///
    /// ```no_run
    /// # struct Mailer;
    /// # impl Mailer { fn new() -> Mailer { Mailer } }
    /// #[tokio::main]
    /// async fn main() -> mq::Result<()> {
    ///     mq::Worker::builder()
    ///         .state(Mailer::new()) // for slots taking mq::State<Mailer>
    ///         .concurrency(16) // a default: MQ_CONCURRENCY or --concurrency override it
    ///         .app_version(env!("CARGO_PKG_VERSION"))
    ///         .command_line() // --help, --version, --list, the flags, MQ_*
    ///         .run_and_exit()
    ///         .await
    /// }
    /// ```
    #[cfg(feature = "cli")]
    pub fn command_line(mut self) -> Self {
        let cli = super::cli::Cli::try_parse_over(
            std::env::args_os(),
            &self.options,
            self.app_version.as_deref(),
        )
        .unwrap_or_else(|error| error.exit());
        if cli.list {
            self.list_and_exit();
        }
        self.check_only = cli
            .command
            .map(|super::cli::WorkerCommand::Check { json }| json);
        #[cfg(feature = "schedules")]
        if cli.schedules {
            self.schedules_and_exit();
        }
        cli.apply(&mut self.options);
        self
    }

    /// `check`: reads the backend, prints the report, exits 0 when this build reads every
    /// message, 3 when not, 1 when the backend or the registry could not be read.
    #[cfg(feature = "cli")]
    async fn check_and_exit(self, json: bool) -> ! {
        let code = match self.check_report().await {
            Ok(report) => {
                match serde_json::to_string(&report) {
                    Ok(text) if json => println!("{text}"),
                    _ => print!("{report}"),
                }
                if report.all_readable() {
                    0
                } else {
                    3
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                1
            }
        };
        std::process::exit(code)
    }

    /// The report of [`crate::check`] on this builder's transport (or URL, which must exist:
    /// a check creates no queue file) and registry.
    #[cfg(feature = "cli")]
    async fn check_report(self) -> Result<crate::check::Report> {
        let registry = match self.registry {
            Some(registry) => registry,
            None => crate::Registry::linked()?,
        };
        let transport = match self.transport {
            Some(transport) => transport,
            None => {
                let url = self
                    .options
                    .url
                    .clone()
                    .unwrap_or_else(crate::transport::url_from_env);
                crate::transport::connect_existing(&url).await?
            }
        };
        let signer = match self.options.signer {
            Some(signer) => Some(signer),
            None => crate::signing::Signer::from_env()?,
        };
        match signer {
            Some(signer) => {
                let policy = self.options.signatures.unwrap_or_default();
                crate::check::check_signed(transport.as_ref(), &registry, &signer, policy).await
            }
            None => crate::check(transport.as_ref(), &registry).await,
        }
    }

    /// `--schedules`: prints the schedules given and those of the recurring messages it
    /// handles, and exits 0; or the error that keeps them from running, and exits 1.
    #[cfg(all(feature = "cli", feature = "schedules"))]
    fn schedules_and_exit(self) -> ! {
        let registry = match self.registry {
            Some(registry) => Ok(registry),
            None => crate::Registry::linked(),
        };
        let mut schedules = self.schedules;
        match registry.and_then(|registry| crate::schedule::linked(&registry)) {
            Ok(linked) => {
                schedules.extend(linked);
                let now = std::time::SystemTime::now();
                print_and_exit(&crate::schedule::table(&schedules, now))
            }
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1)
            }
        }
    }

    /// `--list`: prints the routing table and exits 0, or the registry's error and exits 1.
    #[cfg(feature = "cli")]
    fn list_and_exit(self) -> ! {
        let registry = match self.registry {
            Some(registry) => Ok(registry),
            None => crate::Registry::linked(),
        };
        match registry {
            Ok(registry) => print_and_exit(&registry.table()),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1)
            }
        }
    }

    /// Runs the worker as the program's `main`: starts logging to stderr (unless the
    /// application installed a subscriber; see [`init_logging`](crate::init_logging)),
    /// builds and runs the worker, and exits the process with [`Exit::code`](super::Exit::code)
    /// when it stopped for a limit whose code is not 0, or when a slot abandoned by its
    /// timeout or the grace still holds a thread (the runtime would wait for it). Returns
    /// `Ok(())` otherwise, so that `main` returns it.
    ///
    /// # Errors
    ///
    /// As [`WorkerBuilder::build`]: the worker did not start, and `main` exits 1.
    ///
    /// ```no_run
    /// #[tokio::main]
    /// async fn main() -> mq::Result<()> {
    ///     // No command line: the options are the code's and `MQ_URL`'s only.
    ///     mq::Worker::builder().concurrency(8).memory_limit(1 << 30).run_and_exit().await
    /// }
    /// ```
    pub async fn run_and_exit(self) -> Result<()> {
        #[cfg(feature = "logging")]
        crate::init_logging();
        #[cfg(feature = "cli")]
        if let Some(json) = self.check_only {
            self.check_and_exit(json).await;
        }
        let worker = self.build().await?;
        let exit = worker.run().await?;
        // tokio's runtime waits for its threads when it shuts down, and a slot abandoned by
        // its timeout or the grace may never return: exit without waiting for it.
        if exit.code() != 0 || worker.slots_left_running() > 0 {
            std::process::exit(exit.code());
        }
        Ok(())
    }
}

/// Prints `text` to stdout and exits 0; a closed pipe (`--list | head`) is no error of the
/// worker's.
#[cfg(feature = "cli")]
fn print_and_exit(text: &str) -> ! {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    std::process::exit(0)
}
