//! Signed envelopes end to end: a worker process with `MQ_SIGNING_KEYS` runs what a keyed
//! bus dispatched, and sends everything else (envelopes put straight on beanstalkd, rows
//! written straight into the SQLite file) to the failure store with the reason, without
//! running a slot. Key rotation across worker restarts, the migration policy, and the
//! start-up errors of bad keys.

use std::path::Path;
use std::time::{Duration, Instant};

use mq::signing::Signer;
use mq::transport::Transport;
use mq::Envelope;
use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::worker_process::{recorded, wait_until_recorded, Work, WorkerProcess};
use serde_json::value::RawValue;

mod cli_support;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

const OLD: &str = "old:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NEW: &str = "new:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
/// A key of nobody the worker knows: an attacker's.
const EVIL: &str = "evil:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn signer(keys: &str) -> Signer {
    Signer::parse(keys).expect("valid test keys")
}

fn work(n: u64) -> Work {
    Work {
        n,
        sleep_ms: 0,
        panic: false,
    }
}

/// An envelope of `Work { n }` as a producer without mq would write it.
fn work_envelope(n: u64) -> Envelope {
    let body = format!(r#"{{"n":{n},"sleep_ms":0,"panic":false}}"#);
    Envelope::new("Work", RawValue::from_string(body).expect("JSON"))
}

/// The four ways to get an envelope past a worker without the key, numbered from `base`:
/// unsigned, a signed envelope whose body was changed, signed with another key, and a
/// signature that is not one. With the reason each must be refused for.
fn forgeries(base: u64) -> Vec<(Envelope, &'static str)> {
    let unsigned = work_envelope(base);
    let mut tampered = work_envelope(base + 1).signed(&signer(NEW));
    tampered.body = work_envelope(base + 1_000).body;
    let foreign = work_envelope(base + 2).signed(&signer(EVIL));
    let mut garbage = work_envelope(base + 3);
    garbage.sig = Some("not-a-signature".into());
    vec![
        (unsigned, "the envelope is not signed"),
        (tampered, "does not match its name, id, version and body"),
        (
            foreign,
            "signed with key `evil`, which this worker does not have",
        ),
        (garbage, "is not KEY_ID:MAC"),
    ]
}

/// Waits until the failure store holds `count` entries (at most 30 s) and returns their
/// reasons.
async fn wait_for_failed(transport: &dyn Transport, count: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let failed = transport.failure_store().list(None, 100).await.unwrap();
        if failed.len() >= count {
            return failed.into_iter().map(|f| f.failure.reason).collect();
        }
        assert!(
            Instant::now() < until,
            "{} of {count} in the failure store",
            failed.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_refused(reasons: &[String], forgeries: &[(Envelope, &str)]) {
    assert_eq!(reasons.len(), forgeries.len(), "{reasons:#?}");
    for (_, why) in forgeries {
        assert!(
            reasons
                .iter()
                .any(|reason| reason.starts_with("signature refused: ") && reason.contains(why)),
            "no failure says `{why}`: {reasons:#?}"
        );
    }
}

fn worker(url: &str, dir: &Path, env: &[(&str, &str)]) -> WorkerProcess {
    WorkerProcess::start_with_env(
        WORKER,
        url,
        &dir.join("record"),
        env,
        &dir.join("worker.log"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_envelopes_put_on_beanstalkd_never_reach_a_slot() {
    let server = Beanstalkd::start();
    let dir = tempfile::tempdir().unwrap();
    let bus = mq::Bus::connect(&server.url())
        .await
        .unwrap()
        .with_signer(signer(NEW));
    bus.dispatch(work(1)).await.unwrap();
    bus.dispatch(work(2)).await.unwrap();
    // Straight onto the tube, with another client, as anyone who reaches the port can.
    let forgeries = forgeries(100);
    let mut raw = beanstalkc::Beanstalkc::new()
        .host("127.0.0.1")
        .port(server.port())
        .connect()
        .unwrap();
    raw.use_tube("work").unwrap();
    for (envelope, _) in &forgeries {
        raw.put(
            &envelope.encode(),
            0,
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .unwrap();
    }
    let _worker = worker(&server.url(), dir.path(), &[("MQ_SIGNING_KEYS", NEW)]);

    let reasons = wait_for_failed(bus.transport().as_ref(), forgeries.len()).await;
    wait_until_recorded(&dir.path().join("record"), 2);
    assert_refused(&reasons, &forgeries);
    let mut ran = recorded(&dir.path().join("record"));
    ran.sort_unstable();
    assert_eq!(ran, [1, 2], "only the signed messages ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_rows_written_into_the_sqlite_file_never_reach_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mq.db");
    let url = format!("sqlite://{}", file.display());
    let bus = mq::Bus::connect(&url)
        .await
        .unwrap()
        .with_signer(signer(NEW));
    bus.dispatch(work(1)).await.unwrap();
    // Straight into the file, with SQLite itself, as anyone who can write it can.
    let forgeries = forgeries(200);
    let sqlite = rusqlite::Connection::open(&file).unwrap();
    sqlite.busy_timeout(Duration::from_secs(5)).unwrap();
    for (envelope, _) in &forgeries {
        sqlite
            .execute(
                "INSERT INTO mq_messages \
                 (queue, priority, state, due_at, ttr_ms, deliveries, created_at, body) \
                 VALUES ('work', 0, 0, 0, 5000, 0, 0, ?1)",
                [&envelope.encode()[..]],
            )
            .unwrap();
    }
    drop(sqlite);
    let _worker = worker(&url, dir.path(), &[("MQ_SIGNING_KEYS", NEW)]);

    let reasons = wait_for_failed(bus.transport().as_ref(), forgeries.len()).await;
    wait_until_recorded(&dir.path().join("record"), 1);
    assert_refused(&reasons, &forgeries);
    assert_eq!(recorded(&dir.path().join("record")), [1]);
}

/// A rotation as the docs describe it: workers learn the new key (second), producers sign
/// with it (first), workers drop the old one. Nothing signed is refused on the way, and once
/// the old key is gone an envelope still signed with it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_runs_every_message_signed_with_a_key_the_workers_have() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let record = dir.path().join("record");
    let producer = |keys: &str| {
        let signer = signer(keys);
        let url = url.clone();
        async move { mq::Bus::connect(&url).await.unwrap().with_signer(signer) }
    };
    let old_producer = producer(OLD).await;

    // Before: everyone on `old`.
    let mut before = worker(&url, dir.path(), &[("MQ_SIGNING_KEYS", OLD)]);
    old_producer.dispatch(work(1)).await.unwrap();
    wait_until_recorded(&record, 1);
    before.signal("TERM");
    assert!(before.wait_for(Duration::from_secs(30)).is_some());

    // Step 1: workers accept `new` as well; producers still sign with `old`.
    let both = format!("{OLD},{NEW}");
    let mut step1 = worker(&url, dir.path(), &[("MQ_SIGNING_KEYS", &both)]);
    old_producer.dispatch(work(2)).await.unwrap();
    wait_until_recorded(&record, 2);
    // Step 2: producers sign with `new` (first), still holding `old`.
    let new_producer = producer(&format!("{NEW},{OLD}")).await;
    new_producer.dispatch(work(3)).await.unwrap();
    wait_until_recorded(&record, 3);
    step1.signal("TERM");
    assert!(step1.wait_for(Duration::from_secs(30)).is_some());

    // Step 3: `old` is gone from the workers; a straggler still signing with it is refused.
    let _after = worker(&url, dir.path(), &[("MQ_SIGNING_KEYS", NEW)]);
    new_producer.dispatch(work(4)).await.unwrap();
    old_producer.dispatch(work(5)).await.unwrap();
    let reasons = wait_for_failed(new_producer.transport().as_ref(), 1).await;
    wait_until_recorded(&record, 4);
    assert_eq!(recorded(&record), [1, 2, 3, 4]);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("signed with key `old`, which this worker does not have"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_unsigned_runs_the_unsigned_and_still_refuses_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let unkeyed = mq::Bus::new(mq::transport::connect(&url).await.unwrap());
    unkeyed.dispatch(work(1)).await.unwrap();
    let mut tampered = work_envelope(2).signed(&signer(NEW));
    tampered.body = work_envelope(666).body;
    let options = mq::transport::PutOptions::default();
    unkeyed
        .transport()
        .put("work", tampered.encode(), options)
        .await
        .unwrap();
    let _worker = worker(
        &url,
        dir.path(),
        &[
            ("MQ_SIGNING_KEYS", NEW),
            ("MQ_SIGNATURES", "accept-unsigned"),
        ],
    );
    let reasons = wait_for_failed(unkeyed.transport().as_ref(), 1).await;
    wait_until_recorded(&dir.path().join("record"), 1);
    assert_eq!(recorded(&dir.path().join("record")), [1]);
    assert!(reasons[0].contains("does not match"), "{reasons:?}");
}

/// A worker whose keys cannot be used does not start: exit 1, and a log line that says
/// which key and why, without its secret.
#[test]
fn a_worker_with_unusable_keys_or_none_to_require_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let secret = "abcdef0123";
    for (env, says) in [
        (
            vec![("MQ_SIGNATURES", "required")],
            "no signing key is set: set MQ_SIGNING_KEYS=KEY_ID:SECRET",
        ),
        (
            vec![("MQ_SIGNING_KEYS", "k1:abcdef0123")],
            "key `k1` is 5 bytes; a key needs at least 32 random bytes",
        ),
        (
            vec![("MQ_SIGNING_KEYS", &format!("{NEW},{NEW}") as &str)],
            "key id `new` is given twice",
        ),
        (
            vec![("MQ_SIGNING_KEYS", "k1:not hex, not base64!")],
            "key `k1`: the secret is neither hex nor base64",
        ),
    ] {
        let log = dir.path().join("worker.log");
        let mut worker =
            WorkerProcess::start_with_env(WORKER, &url, &dir.path().join("record"), &env, &log);
        let status = worker
            .wait_for(Duration::from_secs(30))
            .expect("the worker exits");
        assert_eq!(status.code(), Some(1), "{env:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(says), "{env:?}: {text}");
        assert!(!text.contains(secret), "the log shows a secret: {text}");
    }
}

/// `mq publish` signs with `MQ_SIGNING_KEYS`; `mq failed retry` warns when what it puts back
/// will be refused again, and `--resign` vouches for it with the first key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mq_publish_signs_and_failed_retry_resigns_what_an_operator_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let record = dir.path().join("record");
    let keyed = |args: &[&str]| {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        let mut command = cli_support::command(&all);
        command.env("MQ_SIGNING_KEYS", NEW);
        cli_support::run(&mut command)
    };
    let body = |n: u64| format!(r#"{{"n":{n},"sleep_ms":0,"panic":false}}"#);

    let transport = mq::transport::connect(&url).await.unwrap();
    keyed(&["publish", "Work", &body(1), "--queue", "work"]).ok();
    let published = transport.peek("work").await.unwrap().expect("published");
    let envelope = Envelope::decode(&published.body).unwrap();
    assert_eq!(signer(NEW).verify(&envelope), Ok(()));

    // An unsigned message from before signing was turned on.
    let options = mq::transport::PutOptions::default();
    let unsigned = work_envelope(2).encode();
    transport.put("work", unsigned, options).await.unwrap();
    let _worker = worker(&url, dir.path(), &[("MQ_SIGNING_KEYS", NEW)]);
    wait_until_recorded(&record, 1);
    wait_for_failed(transport.as_ref(), 1).await;
    let id = transport.failure_store().list(None, 1).await.unwrap()[0].id;

    // A plain retry puts it back as it is, says so, and the worker refuses it again.
    let retry = keyed(&["failed", "retry", &id.to_string()]);
    assert_eq!(retry.code, 0, "{retry:#?}");
    assert!(
        retry
            .stderr
            .contains("does not carry a valid signature (the envelope is not signed)"),
        "{retry:#?}"
    );
    let again = loop {
        let failed = transport.failure_store().list(None, 10).await.unwrap();
        match failed.iter().find(|f| f.id != id) {
            Some(entry) => break entry.id,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(recorded(&record), [1]);

    // --resign: the operator vouches for it; it runs.
    let resigned = keyed(&["failed", "retry", &again.to_string(), "--resign"]);
    assert!(
        resigned.ok().contains("signed again with key new"),
        "{resigned:#?}"
    );
    wait_until_recorded(&record, 2);
    assert_eq!(recorded(&record), [1, 2]);
    assert!(transport
        .failure_store()
        .list(None, 10)
        .await
        .unwrap()
        .is_empty());

    // Without keys there is nothing to sign with.
    let unkeyed = cli_support::mq(&url, &["failed", "retry", "--all", "--resign"]);
    assert!(unkeyed.fails(2).contains("MQ_SIGNING_KEYS"), "{unkeyed:#?}");
}

/// The wire format's Python producer, run as written: the worker's check accepts what it
/// signs, and refuses it once its body is changed.
#[test]
fn the_documented_python_producer_signs_as_the_worker_checks() {
    let page = include_str!("../../docs/wire-format.md");
    let (_, after) = page
        .split_once("```python\n")
        .expect("a Python block in docs/wire-format.md");
    let (program, _) = after.split_once("```").expect("the block's end");
    let output = std::process::Command::new("python3")
        .args(["-c", program])
        .env("MQ_SIGNING_KEYS", format!("{NEW},{OLD}"))
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{output:?}");
    let envelope = Envelope::decode(&output.stdout).expect("an envelope");
    assert_eq!(envelope.name, "SendOrderConfirmation");
    assert!(envelope.sig.as_deref().unwrap().starts_with("new:"));
    let worker_keys = signer(&format!("{OLD},{NEW}"));
    assert_eq!(worker_keys.verify(&envelope), Ok(()));
    let mut changed = envelope;
    changed.body =
        RawValue::from_string(r#"{"order_id":7,"to":"ada@example.com","total_cents":1}"#.into())
            .unwrap();
    assert!(worker_keys.verify(&changed).is_err());
}

/// What a slot dispatches goes out signed with the worker's keys (and its message version
/// with it), so a worker that requires signatures runs the follow-up too.
mod follow_ups {
    use serde::{Deserialize, Serialize};

    #[derive(mq::Message, Serialize, Deserialize)]
    #[message(queue = "signed-orders")]
    pub struct OrderPlaced {
        pub order_id: u64,
    }

    /// At version 2: the signature covers the message version the bus writes.
    #[derive(mq::Message, Serialize, Deserialize)]
    #[message(queue = "signed-orders", version = 2, previous(1 = SendReceiptV1))]
    pub struct SendReceipt {
        pub order_id: u64,
    }

    #[derive(Deserialize)]
    pub struct SendReceiptV1 {
        pub order: u64,
    }

    impl From<SendReceiptV1> for SendReceipt {
        fn from(old: SendReceiptV1) -> SendReceipt {
            SendReceipt {
                order_id: old.order,
            }
        }
    }

    #[mq::slot]
    async fn place(order: OrderPlaced, ctx: mq::Context) -> mq::Result<()> {
        ctx.dispatch(SendReceipt {
            order_id: order.order_id,
        })
        .await?;
        Ok(())
    }

    #[mq::slot]
    fn receipt(_: SendReceipt) {}

    pub fn registry() -> mq::Registry {
        mq::Registry::from_slots([mq::SlotDef::of::<place>(), mq::SlotDef::of::<receipt>()])
            .unwrap()
    }
}

#[tokio::test]
async fn what_a_slot_dispatches_is_signed_with_the_workers_keys() {
    use mq::testing::Outcome;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let bus = mq::Bus::connect(&url)
        .await
        .unwrap()
        .with_signer(signer(NEW));
    bus.dispatch(follow_ups::OrderPlaced { order_id: 7 })
        .await
        .unwrap();
    let report = mq::Worker::builder()
        .url(&url)
        .registry(follow_ups::registry())
        .signer(signer(NEW))
        .run_until_idle()
        .await
        .unwrap();
    let names: Vec<(&str, Outcome)> = report
        .messages()
        .iter()
        .map(|m| (m.name.as_str(), m.outcome))
        .collect();
    assert_eq!(
        names,
        [
            ("OrderPlaced", Outcome::Finished),
            ("SendReceipt", Outcome::Finished)
        ]
    );
}

/// `check` in a worker with keys names what the workers would refuse for its signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_keys_names_what_the_workers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let signed = mq::Bus::connect(&url)
        .await
        .unwrap()
        .with_signer(signer(NEW));
    signed.dispatch(work(1)).await.unwrap();
    let mut tampered = work_envelope(2).signed(&signer(NEW));
    tampered.body = work_envelope(666).body;
    let options = mq::transport::PutOptions::default();
    signed
        .transport()
        .put("work", tampered.encode(), options)
        .await
        .unwrap();
    let check = |keys: &str| {
        std::process::Command::new(WORKER)
            .arg("check")
            .env("MQ_URL", &url)
            .env("MQ_SIGNING_KEYS", keys)
            .env("RUST_LOG", "warn")
            .output()
            .expect("test-worker runs")
    };
    let keyed = check(NEW);
    let out = String::from_utf8_lossy(&keyed.stdout);
    assert_eq!(keyed.status.code(), Some(3), "{out}");
    assert!(
        out.contains("queue work: Work version 1 (1 item): signature refused: the envelope's signature (key `new`) does not match"),
        "{out}"
    );
    assert!(out.contains("1 messages readable, 1 not readable"), "{out}");
    // Without keys the signatures are not checked: both bodies decode.
    let unkeyed = check("");
    assert_eq!(
        unkeyed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&unkeyed.stdout)
    );
}
