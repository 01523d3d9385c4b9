#[mq::slot]
fn handle<M: mq::Message>(msg: M) {
    let _ = msg;
}

fn main() {}
