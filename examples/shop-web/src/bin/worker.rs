//! The shop's worker: `cargo run -p shop-web --bin worker` (on `MQ_URL`, default
//! [`shop_web::DEFAULT_URL`]); `--help` lists its flags.

use shop_web as _;

fn main() -> mq::Result<()> {
    if std::env::var_os("MQ_URL").is_none() {
        // Before any thread exists: the worker reads MQ_URL.
        std::env::set_var("MQ_URL", shop_web::DEFAULT_URL);
    }
    tokio::runtime::Runtime::new()?.block_on(mq::run_worker())
}
