//! A one-line progress bar on stderr, drawn only when stderr is a terminal: piped or
//! redirected output gets nothing extra.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the bar is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);
/// Width of the bar itself, in cells.
const BAR: usize = 30;

/// Progress of `done` out of `total` items; a no-op unless stderr is a terminal.
#[derive(Debug)]
pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A bar for `total` items, labelled `what` (`retrying`).
    pub(crate) fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            drawn: None,
            enabled: io::stderr().is_terminal(),
        }
    }

    /// One more item done.
    pub(crate) fn inc(&mut self) {
        self.done += 1;
        if self.done > self.total {
            self.total = self.done;
        }
        if self.enabled && self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let filled = self
            .done
            .saturating_mul(BAR as u64)
            .checked_div(self.total)
            .map_or(BAR, |cells| usize::try_from(cells).unwrap_or(BAR))
            .min(BAR);
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR - filled));
        let _ = write!(
            io::stderr(),
            "\r{} [{bar}] {}/{}",
            self.what,
            self.done,
            self.total
        );
        let _ = io::stderr().flush();
        self.drawn = Some(Instant::now());
    }

    /// Draws the final state and ends the line.
    pub(crate) fn finish(mut self) {
        if self.enabled && self.drawn.is_some() {
            self.draw();
        }
    }
}

impl Drop for Progress {
    /// Ends the bar's line, also when the operation stops on an error, so that the error
    /// line starts on a line of its own.
    fn drop(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = writeln!(io::stderr());
        }
    }
}
