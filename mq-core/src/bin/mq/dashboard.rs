//! `mq dashboard`: the web dashboard (`mq::dashboard`) on an address of its own.
//!
//! Without the `dashboard` feature the command is still listed, and says how to get it.

use clap::Args;

use crate::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// The address to serve on; a non-loopback one needs MQ_DASHBOARD_TOKEN or --read-only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Nothing can be changed (retry, remove, flush), even with MQ_DASHBOARD_TOKEN set.
    #[arg(long)]
    read_only: bool,
    /// Show message bodies to every viewer, not only to one signed in with the token.
    #[arg(long)]
    show_bodies: bool,
}

#[cfg(feature = "dashboard")]
pub(crate) async fn run(ctx: &Ctx, args: &DashboardArgs) -> CliResult {
    use std::io::Write;

    use mq::dashboard::{self, Options};

    let options = Options::new()
        .token_from_env()
        .read_only(args.read_only)
        .show_bodies(args.show_bodies);
    let listener = dashboard::bind(&args.listen, &options).await?;
    let address = listener
        .local_addr()
        .map_err(|error| CliError::Runtime(format!("cannot read the bound address: {error}")))?;
    let mode = if args.read_only {
        "read-only (--read-only)".to_owned()
    } else if options.has_token() {
        "actions need the token of MQ_DASHBOARD_TOKEN".to_owned()
    } else {
        format!(
            "read-only: set {} to allow retry, remove and flush",
            dashboard::TOKEN_VAR
        )
    };
    let bodies = if args.show_bodies {
        "bodies shown to everyone"
    } else {
        "bodies shown to operators only"
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "mq dashboard on http://{address}/ for {}: {mode}; {bodies}",
            ctx.transport.describe()
        )?;
        out.flush()?;
    }
    let router = dashboard::router(ctx.transport.clone(), options);
    dashboard::serve(listener, router, stop()).await?;
    Ok(())
}

/// SIGINT, or SIGTERM on Unix: the server stops accepting and finishes what it serves.
#[cfg(feature = "dashboard")]
async fn stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Refuses the command before anything is opened: a build without the dashboard, a
/// `--listen` that is not an address, a public address without a token or `--read-only`.
pub(crate) fn check(args: &DashboardArgs) -> CliResult {
    if !cfg!(feature = "dashboard") {
        return Err(CliError::Usage(
            "this mq was built without the dashboard: install it with \
             `cargo install mq-core --features dashboard`"
                .into(),
        ));
    }
    let address: std::net::SocketAddr = args.listen.trim().parse().map_err(|_| {
        CliError::Usage(format!(
            "--listen {:?} is not an address with a port, such as 127.0.0.1:8080 or [::1]:8080",
            args.listen
        ))
    })?;
    let token = std::env::var("MQ_DASHBOARD_TOKEN").is_ok_and(|t| !t.is_empty());
    if !address.ip().is_loopback() && !token && !args.read_only {
        return Err(CliError::Usage(format!(
            "refusing to serve the dashboard on {address}, which is not a loopback address, \
             without MQ_DASHBOARD_TOKEN or --read-only: set a token (actions need it) or pass \
             --read-only to show it to everyone who can reach it"
        )));
    }
    Ok(())
}

#[cfg(not(feature = "dashboard"))]
pub(crate) async fn run(_ctx: &Ctx, args: &DashboardArgs) -> CliResult {
    check(args)
}
