//! `mq relay`: moves what an application committed to its PostgreSQL outbox
//! (`--outbox`, `MQ_OUTBOX`) onto the broker of `--url`, until SIGINT or SIGTERM; any
//! number may run on one outbox (see `mq::relay`).

use clap::Args;

use crate::{CliResult, Ctx};

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The outbox: a postgres:// schema no worker consumes (postgres://app@db/shop?schema=outbox).
    #[arg(long, env = "MQ_OUTBOX", value_name = "URL")]
    outbox: String,
    /// The most messages per batch, also the most a relay killed mid-batch puts twice.
    #[arg(long, default_value_t = 256, value_name = "N")]
    batch: usize,
    /// How long a batch is held before another relay may take it (a killed relay's rows
    /// wait this long): 30s unless set.
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration)]
    lease: Option<std::time::Duration>,
}

#[cfg(feature = "postgres")]
pub(crate) async fn run(ctx: &Ctx, args: &RelayArgs) -> CliResult {
    let outbox = mq::transport::connect(&args.outbox).await?;
    let from = mq::transport::redacted(&outbox.describe());
    let to = mq::transport::redacted(&ctx.transport.describe());
    let mut relay = mq::relay::Relay::new(outbox, ctx.transport.clone())?.batch(args.batch);
    if let Some(lease) = args.lease {
        relay = relay.lease(lease);
    }
    eprintln!("mq relay: from {from} to {to}; stop with Ctrl-C or SIGTERM");
    let stats = relay.run(stopped()).await?;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({
            "relayed": stats.relayed,
            "refused": stats.refused,
        }));
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    writeln!(
        out,
        "relayed {} message{} ({} refused by the broker and tried again)",
        stats.relayed,
        plural(stats.relayed),
        stats.refused
    )?;
    Ok(())
}

#[cfg(not(feature = "postgres"))]
pub(crate) async fn run(_ctx: &Ctx, _args: &RelayArgs) -> CliResult {
    Err(crate::CliError::Usage(
        "this build of mq has no postgres:// backend, which an outbox is: enable the cargo \
         feature `postgres` of mq-core"
            .to_owned(),
    ))
}

/// Completes on SIGINT or SIGTERM.
#[cfg(feature = "postgres")]
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
