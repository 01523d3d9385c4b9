//! `mq dashboard` over HTTP, on a real backend (an SQLite file, a beanstalkd of the test's
//! own): every page, escaping, 404s, the token, the anti-forgery checks, read-only, bodies,
//! the command line's refusals, a backend that goes away and comes back, and the router
//! mounted under a path of an application's own with its routing table.

mod cli_support;
mod dashboard_support;

use std::time::{Duration, Instant};

use dashboard_support::{csrf_of, session_of, Backend};
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::dashboard::Dashboard;
use mq_tests::http::{get, post, try_request};

const TOKEN: &str = "s3cret-operator-token";
const SCRIPT_ERROR: &str = "<script>alert('mq')</script>";

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("mq.db").display())
}

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

/// An SQLite queue with two failed messages (one whose error text is a script) and one
/// ready message; returns the backend and the script entry's id.
fn filled(url: &str) -> (Backend, u64) {
    let backend = Backend::connect(url);
    let id = backend.fail(
        "emails",
        "SendMail",
        r#"{"to":"<img src=x onerror=alert(1)>"}"#,
        &[("app::mail::send", SCRIPT_ERROR)],
        "1 of 2 slots failed: <b>smtp</b>",
    );
    backend.fail(
        "reports",
        "BuildReport",
        r#"{"day":"2026-12-01"}"#,
        &[("app::reports::build", "disk full")],
        "1 of 1 slots failed",
    );
    backend.put("emails", "SendMail", r#"{"to":"<svg onload=alert(2)>"}"#);
    (backend, id)
}

#[test]
fn every_page_escapes_and_unknown_things_are_404() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let (_backend, id) = filled(&url);
    let dash = Dashboard::start(cli_support::binary(), &url, Some(TOKEN), &[]);
    assert!(
        dash.banner.contains("actions need the token"),
        "{}",
        dash.banner
    );
    let at = dash.address.as_str();

    let overview = get(at, "/", &[]);
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(
        overview.body.contains(r#"data-queue="emails""#),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains(r#"id="total-failed">2<"#),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains("<svg"),
        "the chart: {}",
        overview.body
    );
    let csp = overview.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(overview.header("x-frame-options"), Some("DENY"));

    let live = get(at, "/live", &[]);
    assert_eq!(live.status, 200);
    assert!(
        live.body.contains(r#"id="total-ready">1<"#),
        "{}",
        live.body
    );
    assert!(!live.body.contains("<html"), "a fragment: {}", live.body);
    let api = get(at, "/api/stats", &[]);
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("JSON");
    let emails = json["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == "emails")
        .expect("emails");
    assert_eq!(
        (emails["ready"].as_u64(), emails["failed"].as_u64()),
        (Some(1), Some(1))
    );

    // The failure store: the script is text, in the list and on the entry's page.
    let list = get(at, "/failed", &[]);
    assert_eq!(list.status, 200);
    for page in [&list.body, &get(at, &format!("/failed/{id}"), &[]).body] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert("), "{page}");
        assert!(!page.contains("<b>smtp"), "{page}");
    }
    assert!(list.body.contains("2 failed messages"), "{}", list.body);
    let search = get(at, "/failed?error=ALERT&slot=mail", &[]);
    assert!(
        search.body.contains("1 failed message match"),
        "{}",
        search.body
    );
    assert!(
        search.body.contains(&format!(r#"data-id="{id}""#)),
        "{}",
        search.body
    );
    let by_name = get(at, "/failed?message=buildrep", &[]);
    assert!(
        by_name.body.contains("1 failed message match"),
        "{}",
        by_name.body
    );
    assert!(!by_name.body.contains(&format!(r#"data-id="{id}""#)));
    let none = get(at, "/failed?message=Nothing&page=zz", &[]);
    assert!(
        none.body.contains("Nothing matches this search."),
        "{}",
        none.body
    );

    let entry = get(at, &format!("/failed/{id}"), &[]);
    assert_eq!(entry.status, 200);
    for text in [
        "app::mail::send",
        "failed</span>",
        r#"id="attempts">3<"#,
        "SendMail",
        "The body is hidden",
    ] {
        assert!(entry.body.contains(text), "no {text:?} in {}", entry.body);
    }
    assert!(
        !entry.body.contains("onerror"),
        "the body is hidden from a viewer without the token"
    );
    // An operator (bearer token) sees the body, escaped.
    let operator = get(at, &format!("/failed/{id}"), &[(bearer().0, &bearer().1)]);
    assert!(
        operator.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        operator.body
    );
    assert!(!operator.body.contains("<img src=x"), "{}", operator.body);

    let queue = get(at, "/queues/emails", &[]);
    assert_eq!(queue.status, 200);
    assert!(
        queue.body.contains(r#"id="peek""#) && queue.body.contains("SendMail"),
        "{}",
        queue.body
    );
    assert!(!queue.body.contains("onload"), "{}", queue.body);
    let peeked = get(at, "/queues/emails", &[(bearer().0, &bearer().1)]);
    assert!(
        peeked.body.contains("&lt;svg onload=alert(2)&gt;"),
        "{}",
        peeked.body
    );
    let empty = get(at, "/queues/reports", &[]);
    assert!(empty.body.contains("No ready message"), "{}", empty.body);

    let routes = get(at, "/routes", &[]);
    assert_eq!(routes.status, 200);
    assert!(
        routes.body.contains("not given a routing table"),
        "{}",
        routes.body
    );

    for (path, says) in [
        ("/failed/987654", "no failed message with id 987654"),
        ("/failed/abc", "no failed message with id abc"),
        (
            "/queues/nope%3Cb%3E",
            "no queue named &quot;nope&lt;b&gt;&quot;",
        ),
        ("/no/such/page", "no such page"),
    ] {
        let reply = get(at, path, &[]);
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(
            reply.body.contains(says),
            "{path}: no {says:?} in {}",
            reply.body
        );
    }
}

#[test]
fn changes_need_the_token_and_refuse_forged_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let (backend, id) = filled(&url);
    let dash = Dashboard::start(cli_support::binary(), &url, Some(TOKEN), &[]);
    let at = dash.address.as_str();
    let csrf = csrf_of(&get(at, "/login", &[]).body);
    let retry = format!("/failed/{id}/retry");

    // No token, a wrong token, a wrong sign-in: refused, nothing changed.
    let anonymous = post(at, &retry, &[("csrf", &csrf)], &[]);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("needs the operator token"),
        "{}",
        anonymous.body
    );
    let wrong = post(at, &retry, &[], &[("Authorization", "Bearer nope")]);
    assert_eq!(wrong.status, 401);
    let bad_login = post(at, "/login", &[("token", "nope"), ("csrf", &csrf)], &[]);
    assert_eq!(bad_login.status, 401);
    assert!(bad_login.header("set-cookie").is_none());
    assert!(backend.failed_ids().contains(&id));

    // Signed in, but the request is forged: no anti-forgery token, another site, another
    // origin.
    let login = post(at, "/login", &[("token", TOKEN), ("csrf", &csrf)], &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = session_of(&login);
    assert!(login.header("set-cookie").unwrap().contains("HttpOnly"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds a session value, not the token"
    );
    let signed_in = [("Cookie", cookie.as_str())];
    let no_csrf = post(at, &retry, &[], &signed_in);
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    assert!(
        no_csrf.body.contains("anti-forgery token"),
        "{}",
        no_csrf.body
    );
    let stale = post(at, &retry, &[("csrf", "0000")], &signed_in);
    assert_eq!(stale.status, 403);
    let cross_site = post(
        at,
        &retry,
        &[("csrf", &csrf)],
        &[signed_in[0], ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert!(cross_site.body.contains("cross-site request refused"));
    let other_origin = post(
        at,
        &retry,
        &[("csrf", &csrf)],
        &[signed_in[0], ("Origin", "http://evil.example")],
    );
    assert_eq!(other_origin.status, 403, "{}", other_origin.body);
    assert!(backend.failed_ids().contains(&id), "nothing was retried");

    // The real thing: the entry leaves the store and its message is ready on its queue.
    let page = get(at, &format!("/failed/{id}"), &signed_in);
    assert!(
        page.body.contains(r#"id="retry""#),
        "an operator sees the buttons"
    );
    let done = post(
        at,
        &retry,
        &[("csrf", &csrf_of(&page.body))],
        &[
            signed_in[0],
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", &format!("http://{at}")),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/failed?done=retried&n=1"));
    assert!(!backend.failed_ids().contains(&id));
    assert!(get(at, "/failed?done=retried&n=1", &[])
        .body
        .contains("Retried 1 failed message"));
    let live = get(at, "/live", &[]);
    assert!(
        live.body.contains(r#"id="total-ready">2<"#),
        "{}",
        live.body
    );
    let again = post(at, &retry, &[("csrf", &csrf)], &signed_in);
    assert_eq!(again.status, 404, "{}", again.body);

    // Remove every match of a search (a bearer request needs no form token); flush a queue.
    let removed = post(
        at,
        "/failed/remove",
        &[("message", "Report")],
        &[(bearer().0, &bearer().1)],
    );
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert_eq!(
        removed.header("location"),
        Some("/failed?message=Report&done=removed&n=1")
    );
    assert!(backend.failed_ids().is_empty());
    let flushed = post(at, "/queues/emails/flush", &[("csrf", &csrf)], &signed_in);
    assert_eq!(flushed.status, 303, "{}", flushed.body);
    assert_eq!(
        flushed.header("location"),
        Some("/queues/emails?done=flushed&n=2")
    );

    let logout = post(at, "/logout", &[("csrf", &csrf)], &signed_in);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[test]
fn read_only_dashboards_change_nothing_and_hide_bodies_unless_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let (backend, id) = filled(&url);
    let retry = format!("/failed/{id}/retry");

    let read_only = Dashboard::start(cli_support::binary(), &url, Some(TOKEN), &["--read-only"]);
    let refused = post(
        &read_only.address,
        &retry,
        &[],
        &[(bearer().0, &bearer().1)],
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("read-only"), "{}", refused.body);
    let page = get(
        &read_only.address,
        &format!("/failed/{id}"),
        &[(bearer().0, &bearer().1)],
    );
    assert!(page.body.contains("The body is hidden"), "{}", page.body);
    assert!(!page.body.contains(r#"id="retry""#));

    let tokenless = Dashboard::start(cli_support::binary(), &url, None, &["--show-bodies"]);
    assert!(
        tokenless
            .banner
            .contains("read-only: set MQ_DASHBOARD_TOKEN"),
        "{}",
        tokenless.banner
    );
    let refused = post(&tokenless.address, &retry, &[], &[]);
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("no operator token"),
        "{}",
        refused.body
    );
    let page = get(&tokenless.address, &format!("/failed/{id}"), &[]);
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
    assert!(backend.failed_ids().contains(&id));
}

#[test]
fn the_command_line_refuses_bad_and_public_addresses_and_a_taken_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let _backend = Backend::connect(&url);
    let bad = cli_support::mq(&url, &["dashboard", "--listen", "localhost"]);
    assert!(
        bad.fails(2).contains("is not an address with a port"),
        "{bad:?}"
    );
    let public = cli_support::mq(&url, &["dashboard", "--listen", "0.0.0.0:0"]);
    assert!(
        public.fails(2).contains("not a loopback address"),
        "{public:?}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let busy = cli_support::mq(&url, &["dashboard", "--listen", &address]);
    assert!(busy.fails(1).contains("the address is in use"), "{busy:?}");
}

/// Waits up to 20 s until `path` answers `status`; returns that answer.
fn wait_for(at: &str, path: &str, status: u16) -> mq_tests::http::Reply {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = try_request(at, "GET", path, &[], None).expect("the dashboard answers");
        if reply.status == status {
            return reply;
        }
        assert!(
            Instant::now() < until,
            "{path} still answers {}: {}",
            reply.status,
            reply.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_backend_that_goes_away_shows_a_banner_and_the_pages_recover() {
    let mut server = Beanstalkd::start();
    let backend = Backend::connect(&server.url());
    let id = backend.fail(
        "emails",
        "SendMail",
        "{}",
        &[("app::mail::send", SCRIPT_ERROR)],
        "failed",
    );
    drop(backend);
    let mut dash = Dashboard::start(cli_support::binary(), &server.url(), Some(TOKEN), &[]);
    let at = dash.address.clone();
    assert_eq!(get(&at, "/", &[]).status, 200);

    server.kill();
    for path in [
        "/",
        "/live",
        "/failed",
        &format!("/failed/{id}"),
        "/queues/emails",
    ] {
        let reply = wait_for(&at, path, 503);
        assert!(
            reply.body.contains("The backend does not answer"),
            "{path}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(r#"role="alert""#),
            "{path}: {}",
            reply.body
        );
    }
    let api = get(&at, "/api/stats", &[]);
    assert_eq!(api.status, 503);
    assert!(api.body.contains("\"error\""), "{}", api.body);
    assert!(dash.running(), "the dashboard is still up");

    server.restart();
    let back = wait_for(&at, "/", 200);
    assert!(
        !back.body.contains("The backend does not answer"),
        "{}",
        back.body
    );
    assert_eq!(wait_for(&at, "/failed", 200).status, 200);
    assert!(dash.running());
}
