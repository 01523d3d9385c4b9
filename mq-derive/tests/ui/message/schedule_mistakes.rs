use serde::{Deserialize, Serialize};

// Hour 25.
#[derive(mq::Message, Serialize, Deserialize, Default)]
#[message(schedule = "0 0 25 * * *")]
struct Report;

// A zone that does not exist.
#[derive(mq::Message, Serialize, Deserialize, Default)]
#[message(schedule = "0 0 9 * * *", schedule_zone = "Europe/Berlinn")]
struct Digest;

// A zone without an expression.
#[derive(mq::Message, Serialize, Deserialize, Default)]
#[message(schedule_zone = "UTC")]
struct Purge;

// A recurring message is made with `Default::default()`.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(schedule = "*/10 * * * * *")]
struct Poll {
    shard: u32,
}

fn main() {}
