//! `mq::dashboard::router` mounted by an application under a path of its own, with its
//! routing table: every link stays under the path, the routes page lists the messages and
//! their slots, and a failed message shows which of its slots failed and which succeeded.

mod dashboard_support;

use std::sync::Arc;

use dashboard_support::Backend;
use mq_tests::http::get;
use serde::{Deserialize, Serialize};

/// A message with two slots: one fails, the other succeeds.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "mounted-mail")]
struct MountedMail {
    to: String,
}

#[mq::slot]
fn send_mounted_mail(_msg: &MountedMail) {}

#[mq::slot]
fn audit_mounted_mail(_msg: &MountedMail) {}

#[test]
fn mounted_under_a_prefix_with_the_routing_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let backend = Backend::connect(&url);
    let registry = mq::Registry::linked().expect("registry");
    let route = registry
        .route(<MountedMail as mq::Message>::NAME)
        .expect("the route");
    let slots: Vec<&str> = route.slots().map(|s| s.path()).collect();
    let failing = *slots
        .iter()
        .find(|s| s.ends_with("send_mounted_mail"))
        .expect("send");
    let succeeding = *slots
        .iter()
        .find(|s| s.ends_with("audit_mounted_mail"))
        .expect("audit");
    let id = backend.fail(
        "mounted-mail",
        <MountedMail as mq::Message>::NAME,
        r#"{"to":"a@b.c"}"#,
        &[(failing, "smtp said no")],
        "1 of 2 slots failed",
    );

    // The application's own runtime, with threads, serving while the test asks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let at = runtime.block_on(async {
        let transport: Arc<dyn mq::Transport> =
            mq::transport::connect(&url).await.expect("connect");
        let options = mq::dashboard::Options::new().registry(registry);
        let app =
            axum::Router::new().nest("/admin/queues", mq::dashboard::router(transport, options));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let at = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        at
    });

    let overview = get(&at, "/admin/queues", &[]);
    assert_eq!(overview.status, 200, "{}", overview.body);
    for link in [
        r#"href="/admin/queues/failed""#,
        r#"href="/admin/queues/assets/style.css""#,
        r#"data-live="/admin/queues/live""#,
        r#"href="/admin/queues/queues/mounted-mail""#,
    ] {
        assert!(
            overview.body.contains(link),
            "no {link} in {}",
            overview.body
        );
    }
    assert!(
        !overview.body.contains(r#"href="/failed""#),
        "{}",
        overview.body
    );
    assert_eq!(get(&at, "/admin/queues/assets/live.js", &[]).status, 200);

    let routes = get(&at, "/admin/queues/routes", &[]);
    assert!(routes.body.contains("MountedMail"), "{}", routes.body);
    assert!(
        routes.body.contains(failing) && routes.body.contains(succeeding),
        "{}",
        routes.body
    );

    let entry = get(&at, &format!("/admin/queues/failed/{id}"), &[]);
    assert_eq!(entry.status, 200, "{}", entry.body);
    let failed_row = entry
        .body
        .find(r#"<tr class="failed-slot">"#)
        .expect("the failed slot");
    let ok_row = entry
        .body
        .find(r#"<tr class="ok-slot">"#)
        .expect("the slot that succeeded");
    assert!(
        entry.body[failed_row..ok_row].contains(failing),
        "{}",
        entry.body
    );
    assert!(entry.body[ok_row..].contains(succeeding), "{}", entry.body);
    assert!(entry.body.contains("smtp said no"));

    let missing = get(&at, "/admin/queues/failed/424242", &[]);
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains(r#"href="/admin/queues/""#),
        "{}",
        missing.body
    );
}
