//! The shop's worker, `cargo run --bin worker` (in mq's repository: `cargo run -p shop --bin
//! worker`), on `MQ_URL` (unset: `sqlite://mq.db` in the working directory). It takes the
//! flags and `MQ_*` variables of `mq::run_worker()` (`--help`, `--list`) and runs until Ctrl-C
//! or SIGTERM.

#[tokio::main]
async fn main() -> mq::Result<()> {
    mq::Worker::builder()
        .state(shop::Stats::default()) // for the slot that counts sales
        .app_version(env!("CARGO_PKG_VERSION"))
        .command_line()
        .run_and_exit()
        .await
}
