//! A slots-only crate: its slot must be found by a worker that links this crate, even though
//! the binary names nothing in it but `use extra_slots as _;`.

use serde::{Deserialize, Serialize};

/// Sent when a customer signs up.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "accounts")]
pub struct CustomerSignedUp {
    /// The new customer's id.
    pub id: u64,
}

mod private {
    use super::CustomerSignedUp;

    /// A slot in a private module of another crate.
    #[mq::slot]
    fn greet_customer(msg: &CustomerSignedUp) {
        println!("welcome, customer {}", msg.id);
    }
}
