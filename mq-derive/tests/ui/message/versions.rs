use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct OrderPlacedV1 {
    id: u64,
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(version = 0)]
struct VersionZero;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(version = 2, previous(1 = OrderPlacedV1, 2 = OrderPlacedV1, 3 = OrderPlacedV1))]
struct NotOlder;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(version = 3, previous(1 = OrderPlacedV1, 1 = OrderPlacedV1))]
struct ListedTwice;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(previous(1 = OrderPlacedV1))]
struct PreviousWithoutVersion;

#[derive(mq::Message, Serialize, Deserialize)]
#[message(version = 2, previous(OrderPlacedV1))]
struct PreviousWithoutNumber;

fn main() {}
