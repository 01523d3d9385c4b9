use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[derive(Debug)]
struct NotDisplay;

#[mq::slot]
fn handle(_msg: Ping) -> Result<(), NotDisplay> {
    Err(NotDisplay)
}

fn main() {}
