use serde::Deserialize;

#[derive(mq::Message, Deserialize)]
struct Ping {
    id: u64,
}

fn main() {}
