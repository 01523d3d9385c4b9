//! A message and two slots in a crate that calls mq-core `my_mq`: the macros' generated
//! code names `my_mq::__private` because `crate = "my_mq"` says so (without it, it would
//! name `::mq`, which this crate does not have, and fail to compile).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The sum of the order ids the slots saw.
pub static SEEN: AtomicU64 = AtomicU64::new(0);

/// A message of a crate with a renamed dependency.
#[derive(my_mq::Message, Serialize, Deserialize)]
#[message(crate = "my_mq", queue = "renamed", retries = 1)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: u64,
}

/// An async slot taking the context.
#[my_mq::slot(crate = "my_mq")]
pub async fn count(msg: OrderPlaced, ctx: my_mq::Context) {
    assert_eq!(ctx.queue(), "renamed");
    SEEN.fetch_add(msg.order_id, Ordering::SeqCst);
}

/// A sync slot taking the message by reference.
#[my_mq::slot(crate = "my_mq")]
pub fn count_again(msg: &OrderPlaced) {
    SEEN.fetch_add(msg.order_id, Ordering::SeqCst);
}
