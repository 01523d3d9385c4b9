#[mq::slot]
fn handle(msg: impl mq::Message) {
    let _ = msg;
}

fn main() {}
