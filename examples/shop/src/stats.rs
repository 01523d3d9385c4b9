//! The slot that updates sales statistics: a second listener of the same message.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::SendOrderConfirmation;

/// Shared application state, given to the worker with `.state(..)`.
#[derive(Default)]
pub struct Stats {
    orders: AtomicU64,
    revenue_cents: AtomicU64,
}

#[mq::slot]
fn count_sale(msg: SendOrderConfirmation, stats: mq::State<Stats>) {
    let orders = stats.orders.fetch_add(1, Ordering::Relaxed) + 1;
    let revenue = stats
        .revenue_cents
        .fetch_add(msg.total_cents, Ordering::Relaxed)
        + msg.total_cents;
    println!(
        "stats: order {} counted — {orders} orders, {}.{:02} total",
        msg.order_id,
        revenue / 100,
        revenue % 100
    );
}
