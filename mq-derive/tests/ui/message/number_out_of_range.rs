use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(priority = 5000000000)]
struct Ping;

fn main() {}
