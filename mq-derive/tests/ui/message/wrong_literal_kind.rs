use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(priority = "high")]
struct Ping;

fn main() {}
