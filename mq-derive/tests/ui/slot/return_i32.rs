use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[mq::slot]
fn handle(_msg: Ping) -> i32 {
    0
}

fn main() {}
