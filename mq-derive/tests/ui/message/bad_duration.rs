use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(ttr = "soon")]
struct Ping;

fn main() {}
