use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(crate = "not a path")]
struct Ping;

fn main() {}
