//! `mq publish`, `mq peek`, `mq flush`: one queue at a time.

use std::io::{self, Write};
use std::time::Duration;

use clap::Args;
use mq::transport::PutOptions;
use mq::Envelope;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::table::write_fields;
use crate::view::{EnvelopeView, Held};
use crate::{parse_duration, warn, CliError, CliResult, Ctx};

/// The queue of a message that names none (`#[message]` without `queue`).
const DEFAULT_QUEUE: &str = "default";

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The message's wire name, as its worker knows it (`SendOrderConfirmation`).
    wire_name: String,
    /// The message body as JSON, e.g. '{"order_id":7,"to":"a@b.c","total_cents":4200}'.
    #[arg(value_name = "JSON")]
    body: String,
    /// The queue to put it on: the `queue` of the message's `#[message]` (without it, the
    /// message goes to `default`, with a warning).
    #[arg(long)]
    queue: Option<String>,
    /// Keep it invisible this long first (30s, 2m, 1h).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Lower is sooner; 0 is the most urgent.
    #[arg(long)]
    priority: Option<u32>,
    /// Time to run: how long a worker may hold it before it is handed out again.
    #[arg(long, value_parser = parse_duration)]
    ttr: Option<Duration>,
    /// The version of the message's shape the JSON is written in: the `version` of its
    /// `#[message]` (a worker reads a lower one through the type's upcaster).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    message_version: u32,
}

#[derive(Debug, Args)]
pub(crate) struct FlushArgs {
    /// The queue.
    queue: String,
    /// Really delete: without it `flush` refuses.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Serialize)]
struct Published<'a> {
    message_id: &'a str,
    name: &'a str,
    queue: &'a str,
    item: u64,
}

/// The body must be JSON and the name not empty: checked before anything is opened.
pub(crate) fn check_publish(args: &PublishArgs) -> CliResult<Box<RawValue>> {
    if args.wire_name.trim().is_empty() {
        return Err(CliError::Usage("the wire name is empty".into()));
    }
    serde_json::from_str(&args.body)
        .map_err(|e| CliError::Usage(format!("the message body is not valid JSON: {e}")))
}

pub(crate) async fn publish(ctx: &Ctx, args: &PublishArgs) -> CliResult {
    let body = check_publish(args)?;
    let defaults = PutOptions::default();
    let options = PutOptions::new(
        args.priority.unwrap_or(defaults.priority),
        args.delay.unwrap_or(defaults.delay),
        args.ttr.unwrap_or(defaults.ttr),
    );
    let queue = args.queue.as_deref().unwrap_or(DEFAULT_QUEUE);
    mq::transport::check_queue_name(queue)?;
    let mut envelope = Envelope::new(&args.wire_name, body);
    envelope.message_version = args.message_version;
    if let Some(signer) = &ctx.signer {
        envelope = envelope.signed(signer);
    }
    let item = ctx.transport.put(queue, envelope.encode(), options).await?;
    if args.queue.is_none() {
        warn(&format!(
            "no --queue given, so the message went to queue `{DEFAULT_QUEUE}`, which workers \
             read only for messages that name no queue: pass --queue with the `queue` of \
             {}'s #[message]",
            args.wire_name
        ));
    }
    if ctx.json {
        return ctx.print_json(&Published {
            message_id: &envelope.id,
            name: &envelope.name,
            queue,
            item,
        });
    }
    writeln!(io::stdout(), "{}", envelope.id)?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct Peeked {
    item: u64,
    queue: String,
    #[serde(flatten)]
    envelope: EnvelopeView,
}

pub(crate) async fn peek(ctx: &Ctx, queue: &str) -> CliResult {
    let job = ctx.transport.peek(queue).await?;
    let peeked = job.map(|job| Peeked {
        item: job.id,
        queue: job.queue,
        envelope: EnvelopeView::decode_bounded(&job.body, None),
    });
    if ctx.json {
        return ctx.print_json(&peeked);
    }
    let mut out = io::stdout().lock();
    let Some(peeked) = peeked else {
        writeln!(out, "no ready message in queue {queue}")?;
        return Ok(());
    };
    let mut fields = vec![
        ("item", peeked.item.to_string()),
        ("queue", peeked.queue.clone()),
    ];
    fields.extend(peeked.envelope.fields(Held::Queued));
    write_fields(&mut out, &fields)?;
    Ok(())
}

/// `flush` without `--force` is refused before anything is opened.
pub(crate) fn check_flush(args: &FlushArgs) -> CliResult {
    if args.force {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "`mq flush {}` deletes every ready and delayed message of that queue; \
         add --force to do it",
        args.queue
    )))
}

#[derive(Debug, Serialize)]
struct Flushed<'a> {
    queue: &'a str,
    deleted: u64,
}

pub(crate) async fn flush(ctx: &Ctx, args: &FlushArgs) -> CliResult {
    check_flush(args)?;
    let deleted = ctx.transport.flush(&args.queue).await?;
    if ctx.json {
        return ctx.print_json(&Flushed {
            queue: &args.queue,
            deleted,
        });
    }
    writeln!(
        io::stdout(),
        "deleted {deleted} message{} from queue {}",
        if deleted == 1 { "" } else { "s" },
        args.queue
    )?;
    Ok(())
}
