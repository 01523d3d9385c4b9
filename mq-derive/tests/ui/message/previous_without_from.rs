use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct OrderPlacedV1 {
    id: u64,
}

struct OrderPlacedV2 {
    id: u64,
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(version = 3, previous(1 = OrderPlacedV1, 2 = OrderPlacedV2))]
struct OrderPlaced {
    id: u64,
}

impl From<OrderPlacedV2> for OrderPlaced {
    fn from(old: OrderPlacedV2) -> Self {
        OrderPlaced { id: old.id }
    }
}

fn main() {}
