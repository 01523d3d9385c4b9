use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(ttr = "500ms")]
struct Ping;

fn main() {}
