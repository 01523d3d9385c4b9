use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping {
    seen: bool,
}

#[mq::slot]
fn handle(msg: &mut Ping) {
    msg.seen = true;
}

fn main() {
    let _ = mq::SlotDef::of::<handle>();
}
