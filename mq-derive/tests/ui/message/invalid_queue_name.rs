use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "order emails")]
struct Ping;

fn main() {}
