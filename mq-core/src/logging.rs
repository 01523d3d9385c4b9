//! One logging set-up for the worker and the `mq` command: `tracing` to stderr, filtered by
//! `RUST_LOG`, in colour only on a terminal and never when `NO_COLOR` is set
//! (<https://no-color.org>).

use std::ffi::OsString;

/// The filter of [`init_logging`] when `RUST_LOG` is unset: `info`, without the spans of
/// each message (`mq.publish`, `mq.process`, `mq.slot`).
///
/// Those spans are at `info` for tracing layers (OpenTelemetry); a log that records them
/// formats their fields for every message, whether or not a line is ever logged inside
/// them: on a worker with a no-op slot that was a third of its instructions
/// (docs/performance.md, "Speed as deployed"). The worker's own warnings and errors about a
/// message name it (`message`, `id`) without them. `RUST_LOG=info` puts them back: then
/// every line logged while a message is handled, your slots' too, carries its span.
pub const DEFAULT_LOG_FILTER: &str = "info,mq::telemetry::spans=warn";

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default
/// [`DEFAULT_LOG_FILTER`]: `info` without the per-message spans), unless the application
/// installed its own subscriber. `run_worker` calls it; call it before
/// `Worker::builder()...run()` to see the worker's log.
///
/// Colour only when stderr is a terminal, `NO_COLOR` is unset or empty, and `TERM` is not
/// `dumb`.
///
/// ```
/// mq::init_logging();
/// mq::init_logging(); // a second call keeps the first subscriber
/// tracing::info!("printed on stderr");
/// ```
pub fn init_logging() {
    init_logging_at(DEFAULT_LOG_FILTER);
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
    let colour = use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR"),
        std::env::var_os("TERM"),
    );
    // An application that set its own subscriber keeps it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether to colour the log: on a terminal only, and not when `NO_COLOR` is set to
/// anything but the empty string (as the convention says), nor on a `TERM=dumb` terminal.
fn use_colour(terminal: bool, no_color: Option<OsString>, term: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty()) && term.is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_leaves_out_the_spans_of_each_message() {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER))
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            use crate::telemetry::spans;
            assert!(spans::publish("memory", "q", "Ping", 1).is_disabled());
            assert!(spans::process("memory", "q", "Ping", "id", 1).is_disabled());
            assert!(spans::slot("ping::pong", 1).is_disabled());
            assert!(!tracing::info_span!("an application's span").is_disabled());
            assert!(tracing::enabled!(tracing::Level::INFO));
        });
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let some = |s: &str| Some(OsString::from(s));
        assert!(use_colour(true, None, some("xterm-256color")));
        assert!(use_colour(true, some(""), None));
        assert!(!use_colour(true, some("1"), some("xterm")));
        assert!(
            !use_colour(true, some("0"), None),
            "any value but empty turns it off"
        );
        assert!(
            !use_colour(false, None, some("xterm")),
            "never on a pipe or file"
        );
        assert!(!use_colour(true, None, some("dumb")));
    }
}
