use serde::{Deserialize, Serialize};

// A key field that does not exist.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(unique = "order")]
struct Refund {
    order_id: u64,
    cents: u64,
}

// Not a list of field names.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(unique = "order_id + 1")]
struct Charge {
    order_id: u64,
}

// A hold without a key.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(unique_for = "10m")]
struct Reminder {
    order_id: u64,
}

// Fields to name, but the type has none with names.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(unique = "id")]
struct Tuple(u64);

fn main() {}
