//! `mq::testing` with real slots: the recording bus and its assertions (passing and
//! failing), a slot taking `Context` called directly, and `run_until_idle` with slots that
//! succeed, fail once, always fail, and dispatch follow-ups.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use mq::testing::{Outcome, RecordingBus, Report};
use mq::{Bus, Context, EventKind, Exit, Registry, SlotDef, SlotError};
use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
#[message(queue = "orders")]
struct OrderPlaced {
    order_id: u64,
}

#[derive(mq::Message, Serialize, Deserialize, Debug, PartialEq)]
#[message(queue = "emails", retries = 2, backoff = "1h", backoff_max = "2h")]
struct SendOrderConfirmation {
    order_id: u64,
    to: String,
}

/// The code under test: it takes a `&Bus`.
async fn place_order(bus: &Bus, order_id: u64) -> mq::Result<()> {
    bus.dispatch(OrderPlaced { order_id }).await?;
    Ok(())
}

/// The panic text of `f`.
fn panic_text(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn assertions_pass_on_what_was_dispatched() {
    let bus = RecordingBus::new();
    bus.assert_nothing_dispatched();
    place_order(&bus, 7).await.unwrap();
    place_order(&bus, 8).await.unwrap();
    let seven = bus.assert_dispatched_once::<OrderPlaced>(|m| m.order_id == 7);
    assert_eq!(seven, OrderPlaced { order_id: 7 });
    bus.assert_dispatched::<OrderPlaced>(|_| true);
    bus.assert_not_dispatched::<SendOrderConfirmation>();
    assert_eq!(bus.dispatched::<OrderPlaced>().len(), 2);
    let first = &bus.dispatches()[0];
    assert_eq!(
        (
            first.name.as_str(),
            first.queue.as_str(),
            first.body.as_str()
        ),
        ("OrderPlaced", "orders", r#"{"order_id":7}"#)
    );
    bus.clear();
    bus.assert_nothing_dispatched();
}

#[tokio::test]
async fn dispatch_all_is_recorded() {
    let bus = RecordingBus::new();
    bus.dispatch_all((1..=3).map(|order_id| OrderPlaced { order_id }))
        .await
        .unwrap();
    assert_eq!(
        bus.dispatched::<OrderPlaced>(),
        (1..=3)
            .map(|order_id| OrderPlaced { order_id })
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failing_assertion_lists_what_was_dispatched() {
    let bus = RecordingBus::new();
    place_order(&bus, 8).await.unwrap();
    let text = panic_text(|| {
        bus.assert_dispatched_once::<OrderPlaced>(|m| m.order_id == 7);
    });
    assert_eq!(
        text,
        "expected exactly one dispatched `OrderPlaced` that matches, found 0; dispatched were\n  \
         1. OrderPlaced {\"order_id\":8}"
    );
    let text = panic_text(|| bus.assert_nothing_dispatched());
    assert!(text.starts_with("expected nothing dispatched; dispatched were\n  1. OrderPlaced"));
    let text = panic_text(|| {
        RecordingBus::new().assert_dispatched::<OrderPlaced>(|_| true);
    });
    assert_eq!(
        text,
        "expected a dispatched `OrderPlaced` that matches; dispatched were none"
    );
}

#[tokio::test]
#[should_panic(
    expected = "expected no dispatched `OrderPlaced`; dispatched were\n  1. OrderPlaced"
)]
async fn assert_not_dispatched_panics_with_the_list() {
    let bus = RecordingBus::new();
    place_order(&bus, 1).await.unwrap();
    bus.assert_not_dispatched::<OrderPlaced>();
}

// ---------------------------------------------------------------------------------------
// Slots

#[mq::slot]
async fn confirm(msg: &OrderPlaced, ctx: Context) -> Result<(), mq::Error> {
    ctx.dispatch(SendOrderConfirmation {
        order_id: msg.order_id,
        to: format!("customer-{}@shop.test", msg.order_id),
    })
    .await?;
    Ok(())
}

/// Order 1 fails once then succeeds; order 2 always fails; order 3 fails for good.
#[mq::slot]
async fn send_confirmation(msg: SendOrderConfirmation, ctx: Context) -> Result<(), SlotError> {
    match msg.order_id {
        1 if ctx.attempt() == 1 => Err(SlotError::retry("smtp timeout")),
        2 => Err(SlotError::retry("mailbox full")),
        3 => Err(SlotError::permanent("no such address")),
        _ => Ok(()),
    }
}

#[mq::slot]
fn audit(_: &SendOrderConfirmation) {}

#[tokio::test]
async fn a_slot_taking_context_runs_directly() {
    let bus = RecordingBus::new();
    let ctx = bus
        .context::<OrderPlaced>()
        .id("order-7")
        .attempt(2)
        .build();
    assert_eq!(
        (ctx.id(), ctx.attempt(), ctx.queue(), ctx.name()),
        ("order-7", 2, "orders", "OrderPlaced")
    );
    confirm(&OrderPlaced { order_id: 7 }, ctx).await.unwrap();
    bus.assert_dispatched_once::<SendOrderConfirmation>(|m| {
        m.order_id == 7 && m.to == "customer-7@shop.test"
    });

    let ctx = bus.context::<SendOrderConfirmation>().build();
    let failed = send_confirmation(
        SendOrderConfirmation {
            order_id: 3,
            to: String::new(),
        },
        ctx,
    )
    .await
    .unwrap_err();
    assert!(failed.is_permanent());
}

fn slots() -> Registry {
    Registry::from_slots([
        SlotDef::of::<confirm>(),
        SlotDef::of::<send_confirmation>(),
        SlotDef::of::<audit>(),
    ])
    .unwrap()
}

/// A worker of `slots()` on `bus`'s queue, until it is idle.
async fn run_until_idle(bus: &RecordingBus) -> Report {
    bus.worker()
        .registry(slots())
        .run_until_idle()
        .await
        .unwrap()
}

#[tokio::test]
async fn run_until_idle_reports_each_message_and_slot() {
    let bus = RecordingBus::new();
    for order_id in [1, 2, 3, 4] {
        place_order(&bus, order_id).await.unwrap();
    }
    let report = run_until_idle(&bus).await;
    assert!(report.idle(), "{report}");
    assert_eq!(report.exit(), Exit::Stopped);

    // Four orders and their four follow-ups, each dispatched once.
    assert_eq!(report.of::<OrderPlaced>().len(), 4, "{report}");
    assert!(report
        .of::<OrderPlaced>()
        .iter()
        .all(|m| m.outcome == Outcome::Finished && m.attempts == 1));
    assert_eq!(bus.dispatched::<SendOrderConfirmation>().len(), 4);
    let mails = report.of::<SendOrderConfirmation>();
    let mail = |order_id: u64| {
        let id = &bus
            .dispatches()
            .into_iter()
            .find(|d| {
                d.is::<SendOrderConfirmation>()
                    && d.decode::<SendOrderConfirmation>().unwrap().order_id == order_id
            })
            .unwrap()
            .id;
        mails.iter().find(|m| &m.id == id).copied().unwrap()
    };

    // Fails once, then succeeds: retried at once, the backoff reported, audit ran once.
    let flaky = mail(1);
    assert_eq!((flaky.outcome, flaky.attempts), (Outcome::Finished, 2));
    assert_eq!(flaky.errors.len(), 1);
    assert!(
        flaky.errors[0].contains("smtp timeout"),
        "{:?}",
        flaky.errors
    );
    assert_eq!(flaky.backoffs.len(), 1);
    assert!(
        flaky.backoffs[0] >= Duration::from_secs(30 * 60),
        "{:?}",
        flaky.backoffs
    );
    let slot = flaky.slot("send_confirmation").unwrap();
    assert_eq!((slot.outcome, slot.runs), (Outcome::Finished, 2));
    assert_eq!(slot.error.as_deref(), Some("smtp timeout"));
    let audit = flaky.slot("audit").unwrap();
    assert_eq!((audit.outcome, audit.runs), (Outcome::Finished, 1));

    // Always fails: three attempts (retries = 2), then the failure store.
    let broken = mail(2);
    assert_eq!((broken.outcome, broken.attempts), (Outcome::Failed, 3));
    let slot = broken.slot("send_confirmation").unwrap();
    assert_eq!((slot.outcome, slot.runs), (Outcome::Failed, 3));
    assert_eq!(slot.error.as_deref(), Some("mailbox full"));
    assert_eq!(broken.slot("audit").unwrap().runs, 1);

    // A permanent error: the failure store at once.
    let gone = mail(3);
    assert_eq!((gone.outcome, gone.attempts), (Outcome::Failed, 1));

    assert_eq!(mail(4).outcome, Outcome::Finished);
    assert_eq!(report.count(Outcome::Failed), 2);
    assert_eq!(report.count(Outcome::Finished), 6);

    // The failed ones are in the failure store.
    let failed = bus
        .transport()
        .failure_store()
        .list(None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);

    let text = panic_text(|| report.assert_all_finished());
    assert!(
        text.contains("Failed after 3 attempts")
            && text.contains("last error: mailbox full")
            && text.ends_with("the queues went idle"),
        "{text}"
    );
}

#[tokio::test]
async fn run_until_idle_on_nothing_returns_at_once_and_leaves_delayed_messages() {
    let bus = RecordingBus::new();
    let report = run_until_idle(&bus).await;
    assert!(report.messages().is_empty());
    report.assert_all_finished();

    bus.dispatch(OrderPlaced { order_id: 4 })
        .delay(Duration::from_secs(3600))
        .await
        .unwrap();
    let report = run_until_idle(&bus).await;
    assert!(report.messages().is_empty());
    assert_eq!(report.delayed(), 1);
}

#[tokio::test]
async fn the_builders_own_event_hook_still_runs() {
    let bus = RecordingBus::new();
    place_order(&bus, 4).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = seen.clone();
    let report = bus
        .worker()
        .registry(slots())
        .on_event(move |event| hook.lock().unwrap().push(event.kind))
        .run_until_idle()
        .await
        .unwrap();
    report.assert_all_finished();
    let finished = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|kind| **kind == EventKind::Finished)
        .count();
    assert_eq!(finished, 2);
}
