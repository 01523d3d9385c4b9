use std::rc::Rc;

use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Ping;

async fn later() {}

#[mq::slot]
async fn handle(_msg: Ping) {
    let count = Rc::new(1);
    later().await;
    drop(count);
}

fn main() {}
