use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[mq::slot(queue = "x")]
fn handle(_msg: Ping) {}

fn main() {}
