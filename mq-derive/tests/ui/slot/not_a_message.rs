struct Order {
    id: u64,
}

#[mq::slot]
fn handle(msg: Order) {
    let _ = msg.id;
}

fn main() {}
