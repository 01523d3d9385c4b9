use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queu = "emails")]
struct Ping;

// The type is still a message: its slots add no errors of their own.
#[mq::slot]
fn pong(_msg: Ping) {}

fn main() {
    let _ = mq::SlotDef::of::<pong>();
}
