//! NATS with authentication and TLS, on nats-server processes of each test's own: a user and
//! password, a token, a credentials file in operator mode, TLS signed by the test's own
//! certificate authority. A refused password
//! or certificate is an error that says what to check, and no output of mq (its errors,
//! `describe()`, the `mq` command, a worker's log at `debug`) shows a password or a token.

mod cli_support;

use std::time::Duration;

use mq::Bus;
use mq_tests::nats::NatsServer;
use mq_tests::tls::Certificates;
use mq_tests::worker_process::{wait_until_recorded, Work, WorkerProcess};

const PASSWORD: &str = "pw-Zq81-secret";
const TOKEN: &str = "tok-Hx42-secret";
const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn with_user() -> NatsServer {
    NatsServer::start_with(&format!(
        "authorization {{ user: mq, password: \"{PASSWORD}\" }}"
    ))
}

fn user_url(server: &NatsServer) -> String {
    format!("nats://mq:{PASSWORD}@127.0.0.1:{}", server.port())
}

/// Connects, checks `describe()`, puts, reserves and acks one item.
async fn round_trip(url: &str) {
    mq_tests::round_trip(url, &[PASSWORD, TOKEN]).await;
}

fn assert_hidden(text: &str) {
    assert!(
        !text.contains(PASSWORD) && !text.contains(TOKEN),
        "a secret is shown: {text}"
    );
}

#[tokio::test]
async fn a_user_and_password_in_the_url() {
    let server = with_user();
    round_trip(&user_url(&server)).await;

    let wrong = format!("nats://mq:not-{PASSWORD}@127.0.0.1:{}", server.port());
    let error = mq::transport::connect(&wrong).await.expect_err("refused");
    let text = format!("{error} / {error:?}");
    assert!(
        text.contains("refused the connection's credentials")
            && text.contains("check the user and password"),
        "{text}"
    );
    assert_hidden(&text);

    let error = mq::transport::connect(&server.url())
        .await
        .expect_err("no credentials");
    assert!(
        error.to_string().contains("no credentials were given"),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_in_the_url() {
    let server = NatsServer::start_with(&format!("authorization {{ token: \"{TOKEN}\" }}"));
    round_trip(&format!("nats://{TOKEN}@127.0.0.1:{}", server.port())).await;
    let wrong = format!("nats://x{TOKEN}@127.0.0.1:{}", server.port());
    let error = mq::transport::connect(&wrong).await.expect_err("refused");
    assert!(error.to_string().contains("check the token"), "{error}");
    assert_hidden(&format!("{error} / {error:?}"));
}

/// `MQ_NATS_USER` and `MQ_NATS_PASSWORD`, or `MQ_NATS_TOKEN`, give the `mq` command what the
/// URL does not say; a refused password is one error line without it.
#[test]
fn credentials_from_the_variables_of_the_mq_command() {
    let server = with_user();
    let plain = server.url();
    let run = cli_support::run(
        cli_support::command(&["--url", &plain, "publish", "Ping", "{}", "--queue", "vars"])
            .env("MQ_NATS_USER", "mq")
            .env("MQ_NATS_PASSWORD", PASSWORD),
    );
    run.ok();
    let stats = cli_support::run(
        cli_support::command(&["--url", &plain, "stats", "--json"])
            .env("MQ_NATS_USER", "mq")
            .env("MQ_NATS_PASSWORD", PASSWORD)
            .env("RUST_LOG", "debug"),
    );
    assert_eq!(stats.code, 0, "{stats:#?}");
    assert!(stats.stdout.contains("\"vars\""), "{stats:#?}");
    assert_hidden(&format!("{}{}", stats.stdout, stats.stderr));

    let wrong = format!("nats://mq:not-{PASSWORD}@127.0.0.1:{}", server.port());
    let refused = cli_support::run(
        cli_support::command(&["--url", &wrong, "stats"]).env("RUST_LOG", "debug"),
    );
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("refused the connection's credentials"),
        "{refused:#?}"
    );
    assert_hidden(&format!("{}{}", refused.stdout, refused.stderr));

    let token_server = NatsServer::start_with(&format!("authorization {{ token: \"{TOKEN}\" }}"));
    let run = cli_support::run(
        cli_support::command(&["--url", &token_server.url(), "stats"]).env("MQ_NATS_TOKEN", TOKEN),
    );
    assert_hidden(run.ok());
}

/// A worker whose `MQ_URL` holds the password handles what was dispatched, and its log at
/// `debug` does not show the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_password_logs_none() {
    let server = with_user();
    let url = user_url(&server);
    let text = worker_log(&url, &url, &[], 3).await;
    assert!(
        text.contains("127.0.0.1"),
        "the log names the server: {text}"
    );
    assert_hidden(&text);
}

#[tokio::test]
async fn tls_with_the_tests_certificate_authority() {
    let certs = Certificates::make();
    let server = NatsServer::start_with(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n\
         authorization {{ user: mq, password: \"{PASSWORD}\" }}",
        certs.server_cert().display(),
        certs.server_key().display()
    ));
    let base = user_url(&server);
    round_trip(&format!("{base}?ca={}", certs.ca().display())).await;

    for url in [
        format!("{base}?ca={}", certs.other_ca().display()),
        format!("{base}?tls=true"),
    ] {
        let error = mq::transport::connect(&url)
            .await
            .expect_err("a certificate this client does not trust");
        let text = format!("{error} / {error:?}");
        assert!(text.contains("TLS handshake failed"), "{url}: {text}");
        assert_hidden(&text);
    }
}

/// A server in operator mode (an operator, an account with JetStream and a user, their JWTs
/// made by the test): the user's credentials file, by `creds=` and by `MQ_NATS_CREDS`, gets a
/// round trip and a worker process through; no file, or another operator's user, is refused
/// with an error that names the credentials file; the seed appears in no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_file_in_operator_mode() {
    let operator = mq_tests::nats_jwt::Operator::new();
    let server = NatsServer::start_with(&operator.server_config());
    let dir = tempfile::tempdir().unwrap();
    let creds = operator.write_creds(dir.path());
    let seed = operator.user_seed();
    let url = format!(
        "nats://127.0.0.1:{}?creds={}",
        server.port(),
        creds.display()
    );
    mq_tests::round_trip(&url, &[&seed]).await;

    // No credentials: refused, and the error says what to give.
    let error = mq::transport::connect(&server.url())
        .await
        .expect_err("no credentials");
    assert!(
        error.to_string().contains("no credentials were given"),
        "{error}"
    );
    // A user of another operator: refused, naming the credentials file to check.
    let stranger = mq_tests::nats_jwt::Operator::new();
    let other = tempfile::tempdir().unwrap();
    let wrong = format!(
        "nats://127.0.0.1:{}?creds={}",
        server.port(),
        stranger.write_creds(other.path()).display()
    );
    let error = mq::transport::connect(&wrong).await.expect_err("refused");
    let text = format!("{error} / {error:?}");
    assert!(text.contains("check the credentials file"), "{text}");
    assert!(!text.contains(&stranger.user_seed()), "{text}");

    // A worker process given the file by MQ_NATS_CREDS.
    let creds_path = creds.display().to_string();
    let text = worker_log(&url, &server.url(), &[("MQ_NATS_CREDS", &creds_path)], 1).await;
    assert!(!text.contains(&seed), "the log shows the seed: {text}");
}

/// Dispatches `count` works on `url`, runs a worker process on `worker_url` with `env` until
/// it handled them, stops it with SIGTERM, and returns its log at `debug`.
async fn worker_log(url: &str, worker_url: &str, env: &[(&str, &str)], count: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let log = dir.path().join("worker.log");
    let bus = Bus::connect(url).await.unwrap();
    for n in 0..count {
        bus.dispatch(Work {
            n,
            sleep_ms: 0,
            panic: false,
        })
        .await
        .unwrap();
    }
    let file = std::fs::File::create(&log).unwrap();
    let mut worker = WorkerProcess(
        std::process::Command::new(WORKER)
            .envs(env.iter().copied())
            .env("MQ_URL", worker_url)
            .env("MQ_TEST_RECORD", &record)
            .env("RUST_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the worker"),
    );
    wait_until_recorded(&record, count as usize);
    worker.signal("TERM");
    worker
        .wait_for(Duration::from_secs(10))
        .expect("the worker stops");
    std::fs::read_to_string(&log).unwrap()
}
