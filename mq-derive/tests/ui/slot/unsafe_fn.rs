use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[mq::slot]
unsafe fn handle(_msg: Ping) {}

fn main() {}
