#[mq::slot]
fn tick() {}

fn main() {}
