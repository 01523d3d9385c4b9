//! The shop: placing an order is a web request that dispatches `SendOrderConfirmation`; a
//! worker emits it to two slots, one that "sends" the mail and one that counts the sale.
//!
//! Two binaries share this crate: `web` (axum; see [`web`]) and `worker` (the command line
//! of `mq::run_worker()`, with the [`Stats`] its slot needs). Both use the queue of `MQ_URL`;
//! unset, the embedded default `sqlite://mq.db` in the working directory, so start them from
//! the same directory.

mod mail;
mod stats;
pub mod web;

use serde::{Deserialize, Serialize};

pub use stats::Stats;

/// Sent when an order was placed: confirm it to the customer.
#[derive(mq::Message, Serialize, Deserialize, Debug)]
#[message(queue = "emails", priority = 100, ttr = "2m", retries = 5)]
pub struct SendOrderConfirmation {
    pub order_id: u64,
    pub to: String,
    pub total_cents: u64,
}
