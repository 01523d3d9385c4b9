//! One logging set-up for the worker and the `mq` command: `tracing` to stderr, filtered by
//! `RUST_LOG`.

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `info`), unless the
/// application installed its own subscriber. `run_worker` calls it; call it before
/// `Worker::builder()...run()` to see the worker's log.
///
/// ```
/// mq::init_logging();
/// mq::init_logging(); // a second call keeps the first subscriber
/// tracing::info!("printed on stderr");
/// ```
pub fn init_logging() {
    init_logging_at("info");
}

/// As [`init_logging`], with `default_filter` (a `RUST_LOG` directive such as `warn`) when
/// `RUST_LOG` is unset or invalid.
///
/// ```
/// mq::init_logging_at("warn,mq=debug"); // RUST_LOG, when set, wins
/// tracing::debug!(target: "mq", "printed on stderr unless RUST_LOG says otherwise");
/// ```
pub fn init_logging_at(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // An application that set its own subscriber keeps it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
