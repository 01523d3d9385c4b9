//! The shop's web app, `cargo run --bin web` (in mq's repository: `cargo run -p shop --bin
//! web`), on `MQ_URL` (unset: `sqlite://mq.db` in the working directory). It listens on
//! `127.0.0.1:3000` or `SHOP_ADDR`, and stops on Ctrl-C or SIGTERM.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq::init_logging();
    // Open the queue now: a bad MQ_URL stops the app here, and the log names the file.
    mq::global().await?;
    let address = std::env::var("SHOP_ADDR").unwrap_or_else(|_| shop::web::DEFAULT_ADDR.into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("web: listening on http://{address} (POST /orders)");
    axum::serve(listener, shop::web::router(&address))
        .with_graceful_shutdown(shop::web::stop_signal())
        .await?;
    println!("web: stopped");
    Ok(())
}
