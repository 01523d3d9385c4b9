#[mq::slot]
struct Handler {
    count: u64,
}

fn main() {}
