//! `mq stats [--watch [INTERVAL]]`.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, SystemTime};

use clap::Args;
use mq::transport::QueueStats;
use serde::Serialize;

use crate::table::{write_fields, Align, Table};
use crate::{parse_duration, view, CliResult, Ctx};

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print again every INTERVAL (default 2s) until interrupted.
    #[arg(
        long,
        value_name = "INTERVAL",
        num_args = 0..=1,
        default_missing_value = "2s",
        value_parser = parse_duration
    )]
    watch: Option<Duration>,
}

#[derive(Debug, Serialize)]
struct Snapshot {
    backend: String,
    at: String,
    queues: Vec<QueueStats>,
    /// In the transport's order; counts as JSON numbers.
    #[serde(serialize_with = "server_figures")]
    server: Vec<(String, String)>,
}

fn server_figures<S: serde::Serializer>(
    figures: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(figures.len()))?;
    for (key, value) in figures {
        // Counts as numbers for scripts; versions, names and fractional seconds stay text.
        match value.parse::<u64>() {
            Ok(number) => map.serialize_entry(key, &number)?,
            Err(_) => map.serialize_entry(key, value)?,
        }
    }
    map.end()
}

pub(crate) async fn run(ctx: &Ctx, args: &StatsArgs) -> CliResult {
    let Some(interval) = args.watch else {
        let snapshot = snapshot(ctx).await?;
        return print(ctx, &snapshot);
    };
    let interval = interval.max(Duration::from_millis(100));
    let terminal = io::stdout().is_terminal();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let snapshot = snapshot(ctx).await?;
        if ctx.json {
            ctx.print_json(&snapshot)?;
        } else {
            let mut out = io::stdout().lock();
            if terminal {
                // Clear the screen and go home, like `watch`.
                write!(out, "\x1b[2J\x1b[H")?;
            }
            writeln!(
                out,
                "{}  every {} (Ctrl-C to stop)\n",
                snapshot.at,
                view::duration(interval)
            )?;
            drop(out);
            print(ctx, &snapshot)?;
            if !terminal {
                writeln!(io::stdout())?;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

async fn snapshot(ctx: &Ctx) -> CliResult<Snapshot> {
    let queues = ctx.transport.stats().await?;
    let server = ctx.transport.server_stats().await?;
    Ok(Snapshot {
        backend: ctx.transport.describe(),
        at: view::time(SystemTime::now()),
        queues,
        server,
    })
}

fn print(ctx: &Ctx, snapshot: &Snapshot) -> CliResult {
    if ctx.json {
        return ctx.print_json(snapshot);
    }
    let mut out = io::stdout().lock();
    if snapshot.queues.is_empty() {
        writeln!(out, "no queues on {}", snapshot.backend)?;
    } else {
        let mut table = Table::new(&[
            ("QUEUE", Align::Left),
            ("READY", Align::Right),
            ("RESERVED", Align::Right),
            ("DELAYED", Align::Right),
            ("FAILED", Align::Right),
        ]);
        for q in &snapshot.queues {
            table.row(vec![
                q.queue.clone(),
                q.ready.to_string(),
                q.reserved.to_string(),
                q.delayed.to_string(),
                q.failed.to_string(),
            ]);
        }
        table.write(&mut out)?;
    }
    if !snapshot.server.is_empty() {
        writeln!(out, "\nserver {}", snapshot.backend)?;
        let indented: Vec<(String, String)> = snapshot
            .server
            .iter()
            .map(|(key, value)| (format!("  {key}"), value.clone()))
            .collect();
        let fields: Vec<(&str, String)> = indented
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        write_fields(&mut out, &fields)?;
    }
    out.flush()?;
    Ok(())
}
