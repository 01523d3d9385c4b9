//! `mq failed list | show | retry | remove`: the failure store.

use std::collections::HashSet;
use std::io::{self, Write};
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use mq::signing::Signer;
use mq::transport::{FailedMessage, PutOptions, SlotFailure};
use mq::Envelope;
use serde::Serialize;

use crate::progress::Progress;
use crate::table::{clip, write_fields, Align, Table};
use crate::view::{self, EnvelopeView, Held};
use crate::{CliError, CliResult, Ctx};

/// Entries listed per round trip by `--all`.
const BATCH: usize = 500;

#[derive(Debug, Subcommand)]
pub(crate) enum FailedCommand {
    /// List failed messages, oldest first.
    List {
        /// Only those of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most N entries.
        #[arg(long, value_name = "N", default_value_t = 100)]
        max: usize,
    },
    /// Everything about one failed message: each failing slot with its error, the body.
    Show {
        /// The entry's id (first column of `mq failed list`).
        id: u64,
    },
    /// Put failed messages back on their queues (only their failing slots run again).
    Retry(RetryArgs),
    /// Delete failed messages for good.
    Remove(Selection),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "all"])))]
pub(crate) struct Selection {
    /// Ids of entries (first column of `mq failed list`).
    #[arg(value_name = "ID")]
    ids: Vec<u64>,
    /// Every entry (of --queue, if given) that is in the store when the command starts.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    /// With --all: only the entries of this queue.
    #[arg(long, requires = "all")]
    queue: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    #[command(flatten)]
    selection: Selection,
    /// Sign again, with the first key of MQ_SIGNING_KEYS, each entry whose signature does
    /// not verify (unsigned, an old key, changed): you vouch for what you retry.
    #[arg(long)]
    resign: bool,
}

/// A failure store entry as `list` and `show` print it (and `--json` writes it).
#[derive(Debug, Serialize)]
struct FailedView {
    id: u64,
    queue: String,
    /// Attempts made before it failed (the failure record's count).
    attempts: u32,
    failed_at: String,
    reason: String,
    slots: Vec<SlotFailure>,
    /// How a retry puts it back (`delay` and `ttr` in milliseconds).
    options: PutOptions,
    envelope: EnvelopeView,
}

impl FailedView {
    /// The view of an entry, with at most `max_body` bytes of its body.
    fn new(failed: FailedMessage, max_body: Option<usize>) -> Self {
        FailedView {
            id: failed.id,
            queue: failed.queue,
            attempts: failed.failure.attempts,
            failed_at: view::time(failed.failure.failed_at),
            reason: failed.failure.reason,
            slots: failed.failure.slots,
            options: failed.options,
            envelope: EnvelopeView::decode_bounded(&failed.body, max_body),
        }
    }
}

pub(crate) async fn run(ctx: &Ctx, command: FailedCommand) -> CliResult {
    match command {
        FailedCommand::List { queue, max } => list(ctx, queue.as_deref(), max).await,
        FailedCommand::Show { id } => show(ctx, id).await,
        FailedCommand::Retry(args) => {
            if args.resign && ctx.signer.is_none() {
                return Err(CliError::Usage(
                    "--resign signs with the first key of MQ_SIGNING_KEYS, which is not set".into(),
                ));
            }
            apply(
                ctx,
                Op::Retry {
                    resign: args.resign,
                },
                &args.selection,
            )
            .await
        }
        FailedCommand::Remove(selection) => apply(ctx, Op::Remove, &selection).await,
    }
}

async fn list(ctx: &Ctx, queue: Option<&str>, max: usize) -> CliResult {
    let entries: Vec<FailedView> = ctx
        .transport
        .failure_store()
        .list(queue, max)
        .await?
        .into_iter()
        .map(|failed| FailedView::new(failed, Some(view::LISTED_BODY_BYTES)))
        .collect();
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let mut out = io::stdout().lock();
    if entries.is_empty() {
        match queue {
            Some(queue) => writeln!(out, "no failed messages of queue {queue}")?,
            None => writeln!(out, "no failed messages")?,
        }
        return Ok(());
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("QUEUE", Align::Left),
        ("MESSAGE", Align::Left),
        ("MESSAGE ID", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("FAILED AT", Align::Left),
        ("FAILED SLOTS", Align::Left),
        ("REASON", Align::Left),
    ]);
    for entry in &entries {
        let slots: Vec<&str> = entry.slots.iter().map(|s| s.slot.as_str()).collect();
        table.row(vec![
            entry.id.to_string(),
            entry.queue.clone(),
            entry.envelope.name_or_mark(),
            entry
                .envelope
                .message_id
                .clone()
                .unwrap_or_else(|| "-".into()),
            entry.attempts.to_string(),
            entry.failed_at.clone(),
            if slots.is_empty() {
                "-".into()
            } else {
                clip(&slots.join(", "), 48)
            },
            clip(&entry.reason, 72),
        ]);
    }
    table.write(&mut out)?;
    if entries.len() == max {
        writeln!(
            out,
            "(first {max} shown; --max N for more, `mq stats` for the counts)"
        )?;
    }
    Ok(())
}

async fn show(ctx: &Ctx, id: u64) -> CliResult {
    let Some(failed) = ctx.transport.failure_store().show(id).await? else {
        return Err(mq::Error::NotFound(id).into());
    };
    let entry = FailedView::new(failed, None);
    if ctx.json {
        return ctx.print_json(&entry);
    }
    let mut fields = vec![("id", entry.id.to_string()), ("queue", entry.queue.clone())];
    let mut header = entry.envelope.fields(Held::Failed);
    let body = header.pop();
    fields.extend(header);
    // The record's count; the stored envelope's `attempt` is the number a retry will carry.
    fields.push(("attempts made", entry.attempts.to_string()));
    fields.push(("failed at", entry.failed_at.clone()));
    fields.push(("reason", entry.reason.clone()));
    fields.push((
        "retry puts",
        format!(
            "priority {}, ttr {}",
            entry.options.priority,
            view::duration(entry.options.ttr)
        ),
    ));
    if entry.slots.is_empty() {
        fields.push(("failed slots", "none (no slot ran)".into()));
    }
    let mut out = io::stdout().lock();
    write_fields(&mut out, &fields)?;
    if !entry.slots.is_empty() {
        writeln!(out, "failed slots:")?;
        for slot in &entry.slots {
            writeln!(out, "  {}", slot.slot)?;
            for line in slot.error.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    if let Some((_, body)) = body {
        writeln!(out, "body:")?;
        writeln!(out, "  {body}")?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Retry { resign: bool },
    Remove,
}

/// What `retry` or `remove` did: per entry, the new item's id (retry) or nothing (remove).
#[derive(Debug, Default, Serialize)]
struct Outcome {
    /// Entries done; `item` is the id of the item a retry put on its queue.
    done: Vec<Done>,
    /// Ids that were not (or no longer) in the store.
    missing: Vec<u64>,
    /// Retried entries whose signature does not verify under MQ_SIGNING_KEYS: a worker that
    /// checks signatures refuses them again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unverified: Vec<Unverified>,
}

#[derive(Debug, Serialize)]
struct Unverified {
    id: u64,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Done {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<u64>,
    /// The id of the key a `--resign` signed the entry with.
    #[serde(skip_serializing_if = "Option::is_none")]
    resigned: Option<String>,
}

async fn one(ctx: &Ctx, op: Op, id: u64, outcome: &mut Outcome) -> CliResult {
    let mut resigned = None;
    let result = match op {
        Op::Retry { resign } => match unverified(ctx, id).await? {
            None => ctx.transport.failure_store().retry(id).await.map(Some),
            Some((failed, _)) if resign => match &ctx.signer {
                Some(signer) => {
                    resigned = Some(signer.signing_key_id().to_owned());
                    put_resigned(ctx, failed, signer).await.map(Some)
                }
                None => unreachable!("`run` refuses --resign without keys"),
            },
            Some((_, reason)) => {
                outcome.unverified.push(Unverified { id, reason });
                ctx.transport.failure_store().retry(id).await.map(Some)
            }
        },
        Op::Remove => match ctx.transport.failure_store().remove(id).await {
            Ok(true) => Ok(None),
            Ok(false) => Err(mq::Error::NotFound(id)),
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(item) => outcome.done.push(Done { id, item, resigned }),
        Err(mq::Error::NotFound(_)) => outcome.missing.push(id),
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// The entry `id` and why its signature does not verify, when `MQ_SIGNING_KEYS` is set and
/// it does not; `None` without keys, for a verified or unreadable envelope, or no entry.
async fn unverified(ctx: &Ctx, id: u64) -> CliResult<Option<(FailedMessage, String)>> {
    let Some(signer) = &ctx.signer else {
        return Ok(None);
    };
    let Some(failed) = ctx.transport.failure_store().show(id).await? else {
        return Ok(None);
    };
    let Ok(envelope) = Envelope::decode(&failed.body) else {
        return Ok(None);
    };
    Ok(signer
        .verify(&envelope)
        .err()
        .map(|refusal| (failed, refusal.to_string())))
}

/// Puts `failed` back ready, signed by `signer`, then removes it from the store: a crash in
/// between leaves it in both (a duplicate), never in neither.
async fn put_resigned(ctx: &Ctx, failed: FailedMessage, signer: &Signer) -> mq::Result<u64> {
    let envelope = Envelope::decode(&failed.body)
        .map_err(|reason| mq::Error::Config(format!("entry {}: {reason}", failed.id)))?
        .signed(signer);
    let options = PutOptions::new(failed.options.priority, Duration::ZERO, failed.options.ttr);
    let item = ctx
        .transport
        .put(&failed.queue, envelope.encode(), options)
        .await?;
    ctx.transport.failure_store().remove(failed.id).await?;
    Ok(item)
}

async fn apply(ctx: &Ctx, op: Op, selection: &Selection) -> CliResult {
    let (verb, doing) = match op {
        Op::Retry { .. } => ("retried", "retrying"),
        Op::Remove => ("removed", "removing"),
    };
    let mut outcome = Outcome::default();
    if selection.all {
        all(ctx, op, selection.queue.as_deref(), doing, &mut outcome).await?;
    } else {
        for &id in &selection.ids {
            one(ctx, op, id, &mut outcome).await?;
        }
    }
    if ctx.json {
        ctx.print_json(&outcome)?;
    } else {
        let mut out = io::stdout().lock();
        if selection.all {
            let of = selection
                .queue
                .as_ref()
                .map_or_else(|| "all queues".to_owned(), |q| format!("queue {q}"));
            writeln!(
                out,
                "{verb} {} failed message{} of {of}",
                outcome.done.len(),
                if outcome.done.len() == 1 { "" } else { "s" }
            )?;
        } else {
            for done in &outcome.done {
                match (done.item, &done.resigned) {
                    (Some(item), Some(key)) => writeln!(
                        out,
                        "{verb} {} (now item {item}, signed again with key {key})",
                        done.id
                    )?,
                    (Some(item), None) => writeln!(out, "{verb} {} (now item {item})", done.id)?,
                    (None, _) => writeln!(out, "{verb} {}", done.id)?,
                }
            }
        }
        for unverified in &outcome.unverified {
            crate::warn(&format!(
                "failed message {} does not carry a valid signature ({}), so a worker that \
                 checks signatures will refuse it again: look at it with `mq failed show {}`, \
                 then retry it with --resign if you vouch for it",
                unverified.id, unverified.reason, unverified.id
            ));
        }
    }
    // With --all, an entry that vanished meanwhile (another operator, a second `mq`) is
    // not an error; a named id that does not exist is.
    if !selection.all && !outcome.missing.is_empty() {
        let ids: Vec<String> = outcome.missing.iter().map(u64::to_string).collect();
        return Err(CliError::Runtime(match ids.as_slice() {
            [one] => format!("no failed message with id {one}"),
            many => format!("no failed messages with ids {}", many.join(", ")),
        }));
    }
    Ok(())
}

/// Every entry in the store when the command starts, oldest first, in batches. Entries
/// that fail again during the run get new ids after these and are left alone: the count at
/// the start bounds the run.
async fn all(
    ctx: &Ctx,
    op: Op,
    queue: Option<&str>,
    doing: &'static str,
    outcome: &mut Outcome,
) -> CliResult {
    let total: u64 = ctx
        .transport
        .stats()
        .await?
        .iter()
        .filter(|q| queue.is_none_or(|name| q.queue == name))
        .map(|q| q.failed)
        .sum();
    let mut progress = Progress::new(doing, total);
    let mut seen = HashSet::new();
    let mut left = total;
    while left > 0 {
        let max = usize::try_from(left).unwrap_or(usize::MAX).min(BATCH);
        let batch = ctx.transport.failure_store().list(queue, max).await?;
        let fresh: Vec<u64> = batch
            .iter()
            .map(|failed| failed.id)
            .filter(|id| seen.insert(*id))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for id in fresh {
            if left == 0 {
                break;
            }
            one(ctx, op, id, outcome).await?;
            left -= 1;
            progress.inc();
        }
    }
    progress.finish();
    Ok(())
}
