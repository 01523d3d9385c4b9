//! The shop on PostgreSQL: placing an order stores it and dispatches its confirmation in one
//! transaction of the application's database, so there is never an e-mail for an order that
//! was rolled back, nor an order whose e-mail was lost.
//!
//! Two binaries share this crate: `web` (an axum server: `POST /orders`) and `worker`
//! (`mq::Worker::builder()` with the command line of `mq::run_worker()`, whose slot "sends"
//! the e-mail). Both read `MQ_URL`, a
//! `postgres://` URL; the web app's own pool uses the same database.

use serde::{Deserialize, Serialize};

/// The database both binaries use unless `MQ_URL` says otherwise.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Sent when an order was placed: confirm it to the customer.
#[derive(mq::Message, Serialize, Deserialize, Debug)]
#[message(queue = "emails", retries = 5)]
pub struct SendOrderConfirmation {
    pub order_id: i64,
    pub to: String,
    pub total_cents: i64,
}

#[mq::slot]
async fn send_confirmation(msg: &SendOrderConfirmation, ctx: mq::Context) {
    println!(
        "mail: to {} — your order {} of {} cents is confirmed (message {})",
        msg.to,
        msg.order_id,
        msg.total_cents,
        ctx.id()
    );
}

/// `MQ_URL`, or [`DEFAULT_URL`].
pub fn url() -> String {
    std::env::var("MQ_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// The URL of the application's own pool: mq's URL without mq's options (`?schema=`).
pub fn database_url(mq_url: &str) -> &str {
    mq_url
        .split_once('?')
        .map_or(mq_url, |(database, _)| database)
}
