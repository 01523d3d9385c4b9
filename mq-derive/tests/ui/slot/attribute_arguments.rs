use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[mq::slot(queue = "x")]
fn handle(_msg: Ping) {}

// The slot is still registered as a type: naming it adds no error of its own.
fn main() {
    let _ = mq::SlotDef::of::<handle>();
}
