use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
struct Envelope<T> {
    body: T,
}

fn main() {}
