#[derive(mq::Message)]
union Number {
    int: u32,
    float: f32,
}

fn main() {}
