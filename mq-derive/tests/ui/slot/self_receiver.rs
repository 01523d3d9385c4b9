use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

struct Handler;

impl Handler {
    #[mq::slot]
    fn on_ping(&self, msg: Ping) {
        let _ = msg;
    }
}

fn main() {}
