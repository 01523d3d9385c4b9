//! `mq schedules`: the schedules the workers run, as they wrote them down in the backend
//! (`Transport::schedule_notes`): when each ticks, its next and last tick, and when a
//! worker last wrote it. A schedule whose next tick is more than a minute past
//! (`ScheduleNote::is_overdue`) has no worker dispatching it, and says so.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use mq::transport::ScheduleNote;
use serde::Serialize;

use crate::table::{Align, Table};
use crate::{view, CliResult, Ctx};

/// One schedule as `--json` prints it.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    name: &'a str,
    message: &'a str,
    when: &'a str,
    next: Option<String>,
    last: Option<String>,
    /// When a worker last wrote it down.
    seen: String,
    /// How long ago that was, in whole seconds (the table's `SEEN`).
    #[serde(skip)]
    ago: Duration,
    /// The next tick is more than a minute past: no worker runs the schedule now.
    overdue: bool,
}

pub(crate) async fn run(ctx: &Ctx) -> CliResult {
    let notes = ctx.transport.schedule_notes().await?;
    let now = SystemTime::now();
    let entries: Vec<Entry<'_>> = notes.iter().map(|note| entry(note, now)).collect();
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let mut out = io::stdout().lock();
    if entries.is_empty() {
        writeln!(
            out,
            "no schedules on {}: a worker notes each schedule it runs when it starts",
            ctx.transport.describe()
        )?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("MESSAGE", Align::Left),
        ("WHEN", Align::Left),
        ("NEXT (UTC)", Align::Left),
        ("LAST (UTC)", Align::Left),
        ("SEEN", Align::Left),
    ]);
    for entry in &entries {
        let next = entry.next.clone().unwrap_or_else(|| "never".to_owned());
        table.row(vec![
            entry.name.to_owned(),
            entry.message.to_owned(),
            entry.when.to_owned(),
            if entry.overdue {
                format!("{next} (overdue: no worker runs it)")
            } else {
                next
            },
            entry.last.clone().unwrap_or_else(|| "-".to_owned()),
            format!("{} ago", view::duration(entry.ago)),
        ]);
    }
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

fn entry(note: &ScheduleNote, now: SystemTime) -> Entry<'_> {
    let ago = now.duration_since(note.seen).unwrap_or(Duration::ZERO);
    Entry {
        name: &note.name,
        message: &note.message,
        when: &note.when,
        next: note.next.map(view::time),
        last: note.last.map(view::time),
        seen: view::time(note.seen),
        // Whole seconds: `12s ago`, not `12s 345ms 6us ago`.
        ago: Duration::from_secs(ago.as_secs()),
        overdue: note.is_overdue(now),
    }
}
