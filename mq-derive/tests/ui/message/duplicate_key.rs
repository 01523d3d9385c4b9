use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "emails", priority = 10, queue = "other")]
struct Ping;

fn main() {}
