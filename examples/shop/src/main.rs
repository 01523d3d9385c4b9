//! The shop: placing an order dispatches `SendOrderConfirmation`; a worker emits it to two
//! slots, one that "sends" the mail and one that updates statistics.
//!
//! `cargo run -p shop` places three orders on the queue of `MQ_URL` (unset: the embedded
//! default, an SQLite file `mq.db` in the working directory), then runs a worker until the
//! three are handled. The worker takes the flags and `MQ_*` variables of `mq::run_worker`
//! (`cargo run -p shop -- --help`, `--list`); the orders go to `MQ_URL`, so choose the queue
//! with `MQ_URL`: a `--url` would move the worker only.

#[cfg(test)]
mod doc_examples;
mod mail;
mod stats;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sent when an order was placed: confirm it to the customer.
#[derive(mq::Message, Serialize, Deserialize, Debug)]
#[message(queue = "emails", priority = 100, ttr = "2m", retries = 5)]
pub struct SendOrderConfirmation {
    pub order_id: u64,
    pub to: String,
    pub total_cents: u64,
}

/// The web request: it records the order and dispatches the confirmation, nothing more.
async fn place_order(order_id: u64, to: &str, total_cents: u64) -> mq::Result<()> {
    let id = mq::dispatch(SendOrderConfirmation {
        order_id,
        to: to.to_owned(),
        total_cents,
    })
    .await?;
    println!("web: order {order_id} placed, confirmation queued as message {id}");
    Ok(())
}

#[tokio::main]
async fn main() -> mq::Result<()> {
    // The worker's command line first, so that `--help` and `--list` answer before an order
    // is placed; the limits below are defaults that `--limit` or `MQ_LIMIT` override.
    let worker = mq::Worker::builder()
        .state(stats::Stats::default())
        .time_limit(Duration::from_secs(30))
        .limit(3)
        .app_version(env!("CARGO_PKG_VERSION"))
        .command_line();
    mq::init_logging();
    place_order(1001, "ada@example.com", 4_200).await?;
    place_order(1002, "grace@example.com", 1_999).await?;
    place_order(1003, "alan@example.com", 12_500).await?;
    let exit = worker.run().await?;
    println!("worker: stopped ({exit:?})");
    Ok(())
}
