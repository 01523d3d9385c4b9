//! The shop's worker: `cargo run -p shop-web --bin worker` (on `MQ_URL`, default
//! [`shop_web::DEFAULT_URL`]); `--help` lists its flags.

use shop_web as _;

#[tokio::main]
async fn main() -> mq::Result<()> {
    mq::Worker::builder()
        .url(shop_web::DEFAULT_URL) // a default: MQ_URL or --url override it
        .app_version(env!("CARGO_PKG_VERSION"))
        .command_line()
        .run_and_exit()
        .await
}
