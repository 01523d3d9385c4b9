//! `mq schedules`: the schedules a worker ran, as it wrote them down in the backend, listed
//! by the `mq` command (which does not link the application's code): name, message, when,
//! next and last tick. A schedule whose next tick passed more than a minute ago says that
//! no worker runs it; a backend that cannot run schedules refuses the listing.

mod cli_support;

use std::time::{Duration, SystemTime};

use cli_support::mq;
use mq::schedule::Schedule;
use mq::transport::ScheduleNote;
use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "beats")]
struct Beat;

#[mq::slot]
fn beat(_: &Beat) {}

/// Runs a worker with a schedule ticking every second on `url` for 2.5 s, then lists it.
async fn a_worker_notes_its_schedule(url: &str) {
    // Built first: the listing must follow the worker within the minute before "overdue".
    tokio::task::spawn_blocking(cli_support::binary)
        .await
        .unwrap();
    let every = Schedule::every("heartbeat", Duration::from_secs(1), |_| Beat).unwrap();
    let started = SystemTime::now();
    mq::Worker::builder()
        .url(url)
        .registry(mq::Registry::from_slots([mq::SlotDef::of::<beat>()]).unwrap())
        .schedule(every)
        .handle_signals(false)
        .poll_interval(Duration::from_millis(50))
        .time_limit(Duration::from_millis(2500))
        .build()
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let url = url.to_owned();
    let table = tokio::task::spawn_blocking(move || {
        let table = mq(&url, &["schedules"]).ok().to_owned();
        (table, mq(&url, &["schedules", "--json"]).json())
    });
    let (table, json) = table.await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    for text in ["heartbeat", "Beat", "every 1s", " ago"] {
        assert!(lines[1].contains(text), "no `{text}` in {table}");
    }
    let entry = &json.as_array().unwrap()[0];
    assert_eq!(entry["name"], "heartbeat");
    assert_eq!(entry["message"], "Beat");
    assert_eq!(entry["when"], "every 1s");
    assert_eq!(entry["overdue"], false);
    let time = |field: &str| {
        humantime::parse_rfc3339(entry[field].as_str().unwrap_or_else(|| panic!("{entry}")))
            .unwrap()
    };
    let (next, last) = (time("next"), time("last"));
    assert!(last >= started - Duration::from_secs(1), "{entry}");
    assert_eq!(next, last + Duration::from_secs(1), "{entry}");
    assert!(time("seen") >= last - Duration::from_secs(1), "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_notes_its_schedule_on_sqlite_and_an_old_note_is_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    a_worker_notes_its_schedule(&url).await;

    // A schedule whose next tick passed long ago: no worker runs it.
    let transport = mq::transport::connect(&url).await.unwrap();
    let gone = SystemTime::now() - Duration::from_secs(600);
    let note = ScheduleNote::new("retired", "OldReport", "every 5m").next(Some(gone));
    transport.note_schedule(&note).await.unwrap();
    let table = tokio::task::spawn_blocking(move || mq(&url, &["schedules"]).ok().to_owned());
    let table = table.await.unwrap();
    let retired = table.lines().find(|line| line.starts_with("retired"));
    let retired = retired.unwrap_or_else(|| panic!("{table}"));
    assert!(retired.contains("(overdue: no worker runs it)"), "{table}");
    assert!(retired.contains(" - "), "never dispatched: {table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_notes_its_schedule_on_postgres() {
    let db = mq_tests::postgres::FreshDb::create().await;
    a_worker_notes_its_schedule(&db.url("")).await;
}

#[test]
fn an_empty_listing_says_how_schedules_get_there_and_beanstalkd_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    assert_eq!(mq(&url, &["migrate"]).code, 0);
    let empty = mq(&url, &["schedules"]);
    assert!(
        empty.ok().contains("a worker notes each schedule it runs"),
        "{empty:#?}"
    );
    assert_eq!(
        mq(&url, &["schedules", "--json"]).json(),
        serde_json::json!([])
    );

    let server = mq_tests::beanstalkd::Beanstalkd::start();
    let refused = mq(&server.url(), &["schedules"]);
    let line = refused.fails(1);
    assert!(
        line.contains("use a backend that can: sqlite, postgres"),
        "{line}"
    );
}
