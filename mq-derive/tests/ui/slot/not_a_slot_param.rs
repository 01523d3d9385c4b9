use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

#[mq::slot]
async fn handle(_msg: Ping, name: String) {
    let _ = name;
}

fn main() {}
