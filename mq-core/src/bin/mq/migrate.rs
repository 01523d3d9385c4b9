//! `mq migrate`: brings the backend's tables up to this build's schema (every backend does
//! that when it opens, so this is for a DBA running it ahead of the application, as the
//! tables' owner); `mq migrate --print` prints the SQL instead (PostgreSQL), connecting to
//! nothing.

use std::io::Write;

use clap::Args;

use crate::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Print the SQL that creates the tables in an empty database, and change nothing.
    #[arg(long)]
    pub(crate) print: bool,
}

/// `--print`: the script, written before any connection is made.
pub(crate) fn print(url: &str) -> CliResult {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CliError::Usage(format!(
            "`mq migrate --print` prints the SQL of postgres:// queues; `{}` creates its \
             own tables when opened (run `mq migrate` for that)",
            mq::transport::redacted(url)
        )));
    }
    print_postgres(url)
}

#[cfg(feature = "postgres")]
fn print_postgres(url: &str) -> CliResult {
    let script = mq::transport::postgres::migration_script(url)?;
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn print_postgres(_url: &str) -> CliResult {
    Err(CliError::Usage(
        "this build of mq has no postgres:// backend: enable the cargo feature `postgres` of \
         mq-core"
            .to_owned(),
    ))
}

/// Connecting applied the migrations: say where and that it is done.
pub(crate) fn run(ctx: &Ctx) -> CliResult {
    let target = ctx.transport.describe();
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "migrated": target }));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{target}: the schema is up to date")?;
    Ok(())
}
