//! The message and slots of a crate with a renamed mq-core run on a real worker.

use std::sync::atomic::Ordering;

use my_mq::{Registry, SlotDef, Worker};
use renamed::{count, count_again, OrderPlaced, SEEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_dependency_dispatches_and_runs_its_slots() {
    let bus = my_mq::Bus::connect("memory://").await.unwrap();
    bus.dispatch(OrderPlaced { order_id: 21 }).await.unwrap();
    let registry =
        Registry::from_slots([SlotDef::of::<count>(), SlotDef::of::<count_again>()]).unwrap();
    let exit = Worker::builder()
        .transport(bus.transport().clone())
        .registry(registry)
        .limit(1)
        .run()
        .await
        .unwrap();
    assert_eq!(exit, my_mq::Exit::Limit);
    assert_eq!(SEEN.load(Ordering::SeqCst), 42, "both slots ran once");
}
