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
        "stats: order {} counted — {}",
        msg.order_id,
        totals(orders, revenue)
    );
}

/// `1 order, 42.00 total`, `2 orders, ...`.
fn totals(orders: u64, revenue_cents: u64) -> String {
    let plural = if orders == 1 { "" } else { "s" };
    format!(
        "{orders} order{plural}, {}.{:02} total",
        revenue_cents / 100,
        revenue_cents % 100
    )
}

#[cfg(test)]
mod tests {
    use super::totals;

    #[test]
    fn one_order_is_singular() {
        assert_eq!(totals(1, 4_200), "1 order, 42.00 total");
        assert_eq!(totals(2, 6_199), "2 orders, 61.99 total");
    }
}
