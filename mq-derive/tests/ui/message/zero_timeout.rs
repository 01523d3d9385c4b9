use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(timeout = "0s")]
struct Ping;

fn main() {}
