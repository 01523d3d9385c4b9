use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(name = "Order", queue = "orders", priority = 10, delay = "1s", ttr = "2m", timeout = "90s", retries = 5, backoff = "2s", backoff_max = "10m")]
struct Order {
    id: u64,
}

#[derive(mq::Message, Serialize, Deserialize)]
pub enum Event {
    Started,
    Stopped { at: u64 },
}

struct Counter;

#[derive(Debug)]
struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

#[mq::slot]
fn by_value(msg: Order) {
    let _ = msg.id;
}

#[mq::slot]
fn by_ref(msg: &Order) {
    let _ = msg.id;
}

#[mq::slot]
async fn async_with_state_and_context(
    msg: Order,
    counter: mq::State<Counter>,
    ctx: mq::Context,
) -> Result<(), Failure> {
    let _ = (msg.id, &*counter, ctx);
    Ok(())
}

#[mq::slot]
fn sync_returning_result(_msg: &Event, _ctx: mq::Context) -> Result<(), String> {
    Ok(())
}

#[mq::slot]
pub async fn permanent(_msg: Event) -> Result<(), mq::SlotError> {
    Err(mq::SlotError::permanent("no"))
}

fn main() {
    let registry = mq::Registry::from_slots([
        mq::SlotDef::of::<by_value>(),
        mq::SlotDef::of::<by_ref>(),
        mq::SlotDef::of::<async_with_state_and_context>(),
        mq::SlotDef::of::<sync_returning_result>(),
        mq::SlotDef::of::<permanent>(),
    ])
    .unwrap();
    assert_eq!(registry.route("Order").unwrap().slots().count(), 3);
    assert_eq!(registry.route("Event").unwrap().slots().count(), 2);
}
