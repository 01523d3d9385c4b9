//! The dashboard in a real browser: headless Chromium driven by chromedriver (WebDriver,
//! through fantoccini), against an SQLite queue holding failed messages and a worker process
//! running. It sees the counts (and a count change live, without a reload), searches,
//! signs in, retries one failed message and sees it leave the failure store and its slot
//! run, and has a request without the token refused. One browser session for all of it.
//!
//! It takes a screenshot of each page into `$MQ_DASHBOARD_SCREENSHOTS` (the folder
//! `docs/dashboard/` keeps them: `MQ_DASHBOARD_SCREENSHOTS=$PWD/docs/dashboard cargo test -p
//! mq-tests --test dashboard_browser`), else into a temp folder.
//!
//! `scripts/ensure-chromium.sh` installs `chromium` and `chromium-driver` (`scripts/test`
//! runs it). Where chromedriver is still missing the test says so loudly on stderr and
//! passes without a browser; any other failure fails it.

mod cli_support;
mod dashboard_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dashboard_support::Backend;
use fantoccini::{Client, ClientBuilder, Locator};
use mq_tests::dashboard::Dashboard;
use mq_tests::worker_process::{recorded, wait_until_recorded, WorkerProcess};

const TOKEN: &str = "browser-test-token";
const SLOT: &str = "test_worker::nested::deeper::do_work";

/// chromedriver on a free port, killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = mq_tests::free_port();
    let child = match Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("cannot run {binary}: {error}"),
    };
    let driver = Driver(child, port);
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "chromedriver did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(driver)
}

async fn browser(driver: &Driver) -> Client {
    let mut options = serde_json::json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--force-device-scale-factor=1"],
    });
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(path).exists() {
            options["binary"] = path.into();
            break;
        }
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a chromium session")
}

/// The text of `css`, once it satisfies `ok` (within 15 s).
async fn wait_text(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < until {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let source = client.source().await.unwrap_or_default();
    panic!("{css} never matched; last text {last:?}; page:\n{source}");
}

/// Runs `f` on a thread of its own: the backend's calls block on its own runtime, which
/// may not be started from within the browser's.
fn outside<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("the thread"))
}

async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
}

#[test]
fn operator_retries_a_failed_message_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        eprintln!(
            "\n*** SKIPPED: the dashboard's browser test needs chromedriver (Debian: \
             apt-get install chromium chromium-driver, or run scripts/ensure-chromium.sh) ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let shots: PathBuf = std::env::var_os("MQ_DASHBOARD_SCREENSHOTS")
        .map_or_else(|| dir.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let backend = Backend::connect(&url);
    let work = |n: u64| format!(r#"{{"n":{n},"sleep_ms":0,"panic":false}}"#);
    let smtp = backend.fail(
        "work",
        "Work",
        &work(1),
        &[(SLOT, "smtp timeout talking to mail.example.com:25")],
        "1 of 1 slots failed",
    );
    let script = backend.fail(
        "work",
        "Work",
        &work(2),
        &[(SLOT, "<script>alert('xss')</script>")],
        "1 of 1 slots failed",
    );
    backend.fail(
        "work",
        "Work",
        &work(3),
        &[(SLOT, "disk full: /var/spool")],
        "1 of 1 slots failed",
    );
    backend.put(
        "emails",
        "SendOrderConfirmation",
        r#"{"order_id":7,"to":"ada@example.com"}"#,
    );
    let record = dir.path().join("record");
    let _worker = WorkerProcess::start(env!("CARGO_BIN_EXE_test-worker"), &url, &record, &[]);
    let dash = Dashboard::start(cli_support::binary(), &url, Some(TOKEN), &[]);
    let base = format!("http://{}", dash.address);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let client = browser(&driver).await;

        // The overview: the counts, and a new message counted live, without a reload.
        client.goto(&format!("{base}/")).await.expect("open the overview");
        wait_text(&client, "#total-failed", |t| t == "3").await;
        wait_text(&client, "#total-ready", |t| t == "1").await;
        outside(|| backend.put("emails", "SendOrderConfirmation", r#"{"order_id":8,"to":"bob@example.com"}"#));
        wait_text(&client, "#total-ready", |t| t == "2").await;
        wait_text(&client, "#live-status", |t| t.starts_with("live: updated")).await;
        screenshot(&client, &shots, "overview").await;

        // Search by error text.
        client.goto(&format!("{base}/failed")).await.expect("open the failures");
        wait_text(&client, "#matched", |t| t.starts_with("3 failed messages")).await;
        let cell = client.find(Locator::Css(&format!(r#"tr[data-id="{script}"] td.error"#))).await.expect("the script row");
        assert_eq!(cell.text().await.expect("text"), "<script>alert('xss')</script>", "shown as text");
        let search = client.form(Locator::Css("form.search")).await.expect("the search form");
        search.set_by_name("error", "SMTP").await.expect("type");
        search.submit().await.expect("search");
        wait_text(&client, "#matched", |t| t.starts_with("1 failed message match")).await;
        screenshot(&client, &shots, "failures").await;

        // Sign in, open the entry, retry it.
        client.goto(&format!("{base}/login")).await.expect("open the sign-in");
        let login = client.form(Locator::Css("main form")).await.expect("the sign-in form");
        login.set_by_name("token", TOKEN).await.expect("type the token");
        login.submit().await.expect("sign in");
        wait_text(&client, ".who .tag", |t| t == "operator").await;
        client.goto(&format!("{base}/failed?error=smtp")).await.expect("search again");
        client
            .find(Locator::Css(&format!(r#"tr[data-id="{smtp}"] a"#)))
            .await
            .expect("the entry's link")
            .click()
            .await
            .expect("open the entry");
        wait_text(&client, "#slots", |t| t.contains(SLOT) && t.contains("smtp timeout")).await;
        wait_text(&client, "pre.body", |t| t.contains("\"n\": 1")).await;
        screenshot(&client, &shots, "failed").await;
        client.find(Locator::Css("#retry")).await.expect("the retry button").click().await.expect("retry");
        wait_text(&client, ".banner.notice", |t| t.contains("Retried 1 failed message")).await;
        wait_text(&client, "#matched", |t| t.starts_with("2 failed messages")).await;
        assert!(client.find(Locator::Css(&format!(r#"tr[data-id="{smtp}"]"#))).await.is_err(), "it left the store");
        outside(|| wait_until_recorded(&record, 1));
        assert_eq!(recorded(&record), [1], "the worker ran the slot of the retried message");
        client.goto(&format!("{base}/")).await.expect("back to the overview");
        wait_text(&client, "#total-failed", |t| t == "2").await;

        // The other pages.
        client.goto(&format!("{base}/queues/emails")).await.expect("open a queue");
        wait_text(&client, "#peek", |t| t.contains("SendOrderConfirmation")).await;
        screenshot(&client, &shots, "queue").await;
        client.goto(&format!("{base}/routes")).await.expect("open the routes");
        screenshot(&client, &shots, "routes").await;

        // Signed out, a request without the token is refused and changes nothing.
        client.goto(&format!("{base}/failed")).await.expect("open the failures");
        client.form(Locator::Css("header form")).await.expect("sign-out form").submit().await.expect("sign out");
        wait_text(&client, ".who a", |t| t.contains("Sign in")).await;
        let status = client
            .execute_async(
                "const [path, done] = arguments; \
                 const csrf = document.querySelector('input[name=csrf]'); \
                 fetch(path, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, \
                              body: 'csrf=' + (csrf ? csrf.value : '')}) \
                   .then(r => done(r.status), e => done(String(e)));",
                vec![serde_json::json!(format!("/failed/{script}/retry"))],
            )
            .await
            .expect("run the request");
        assert_eq!(status, serde_json::json!(401), "refused without the token");
        assert!(outside(|| backend.failed_ids()).contains(&script), "nothing changed");
        client.close().await.expect("close the browser");
    });
}
