use serde::Serialize;

#[derive(mq::Message, Serialize)]
struct Ping {
    id: u64,
}

fn main() {}
