//! One trace from a producer process to every slot run in a worker process, through a real
//! backend (an SQLite file): the producer (`otel-producer`) dispatches inside a `request`
//! span; the worker (`otel-worker`) continues its trace from the envelope's `traceparent`.
//! Both export finished spans with OpenTelemetry to files the test reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mq_tests::otel::{read_spans, SpanLine};
use mq_tests::worker_process::{recorded, WorkerProcess};

const PRODUCER: &str = env!("CARGO_BIN_EXE_otel-producer");
const WORKER: &str = env!("CARGO_BIN_EXE_otel-worker");

/// Runs the producer on `url` with `args`; the trace id of its `request` span.
fn produce(url: &str, spans: &Path, args: &[&str]) -> String {
    let output = Command::new(PRODUCER)
        .args(args)
        .env("MQ_URL", url)
        .env("MQ_TEST_SPANS", spans)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the producer");
    assert!(output.status.success(), "the producer failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn named<'a>(spans: &'a [SpanLine], name: &str) -> Vec<&'a SpanLine> {
    spans.iter().filter(|span| span.name == name).collect()
}

#[test]
fn slot_runs_continue_the_producers_trace_and_a_retry_is_attempt_2_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mq.db").display());
    let producer_spans = dir.path().join("producer.jsonl");
    let worker_spans = dir.path().join("worker.jsonl");
    let record = dir.path().join("record");

    let trace_id = produce(&url, &producer_spans, &["1:fail-first", "2"]);
    assert_eq!(trace_id.len(), 32, "a trace id: {trace_id}");

    // Message 1's first attempt, message 2, message 1's second attempt: three reservations.
    let mut worker = WorkerProcess(
        Command::new(WORKER)
            .args(["--limit", "3"])
            .env("MQ_URL", &url)
            .env("MQ_TEST_SPANS", &worker_spans)
            .env("MQ_TEST_RECORD", &record)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the worker"),
    );
    let status = worker
        .wait_for(Duration::from_secs(60))
        .expect("the worker stops after --limit 3");
    assert_eq!(status.code(), Some(0));
    let mut handled = recorded(&record);
    handled.sort_unstable();
    assert_eq!(handled, [1, 2]);

    // The producer: request → mq.publish (producer kind) per message, one trace.
    let produced = read_spans(&producer_spans);
    let request = named(&produced, "request");
    assert_eq!(request.len(), 1, "{produced:#?}");
    let publishes = named(&produced, "mq.publish");
    assert_eq!(publishes.len(), 2, "{produced:#?}");
    for publish in &publishes {
        assert_eq!(publish.trace_id, trace_id);
        assert_eq!(publish.parent_span_id, request[0].span_id);
        assert_eq!(publish.kind, "Producer");
        assert_eq!(publish.attribute("messaging.system"), "sqlite");
        assert_eq!(publish.attribute("messaging.operation.type"), "publish");
        assert_eq!(publish.attribute("messaging.destination.name"), "traced");
        assert!(!publish.attribute("messaging.message.id").is_empty());
    }
    let first_id = publishes[0].attribute("messaging.message.id");

    // The worker: every span is in the producer's trace.
    let worked = read_spans(&worker_spans);
    for span in &worked {
        assert_eq!(span.trace_id, trace_id, "{span:#?}");
    }
    // One mq.process per reservation, each a child of its message's publish span.
    let processes = named(&worked, "mq.process");
    assert_eq!(processes.len(), 3, "{worked:#?}");
    let publish_of: BTreeMap<&str, &str> = publishes
        .iter()
        .map(|p| (p.attribute("messaging.message.id"), p.span_id.as_str()))
        .collect();
    for process in &processes {
        let id = process.attribute("messaging.message.id");
        assert_eq!(process.parent_span_id, publish_of[id], "{process:#?}");
        assert_eq!(process.kind, "Consumer");
        assert_eq!(process.attribute("messaging.system"), "sqlite");
        assert_eq!(process.attribute("messaging.operation.type"), "process");
        assert_eq!(process.attribute("messaging.destination.name"), "traced");
    }

    // The slot runs: two for message 2; for message 1 both slots at attempt 1 (the flaky one
    // failed) and the flaky one alone at attempt 2.
    let message_of: BTreeMap<&str, &str> = processes
        .iter()
        .map(|p| (p.span_id.as_str(), p.attribute("messaging.message.id")))
        .collect();
    let mut runs: Vec<(bool, &str, &str, &str)> = named(&worked, "mq.slot")
        .into_iter()
        .map(|slot| {
            let message = message_of[slot.parent_span_id.as_str()];
            let short = slot.attribute("mq.slot").rsplit("::").next().unwrap();
            (
                message == first_id,
                short,
                slot.attribute("mq.attempt"),
                slot.status.as_str(),
            )
        })
        .collect();
    runs.sort_unstable();
    // A synchronous slot's own span is a child of its mq.slot (it runs on another thread).
    let slot_ids: Vec<&str> = named(&worked, "mq.slot")
        .iter()
        .map(|slot| slot.span_id.as_str())
        .collect();
    let inner = named(&worked, "traced_ok.work");
    assert_eq!(inner.len(), 2, "{worked:#?}");
    for span in inner {
        assert!(
            slot_ids.contains(&span.parent_span_id.as_str()),
            "{span:#?}"
        );
    }
    assert_eq!(
        runs,
        [
            (false, "traced_flaky", "1", "Unset"),
            (false, "traced_ok", "1", "Unset"),
            (true, "traced_flaky", "1", "Error"),
            (true, "traced_flaky", "2", "Unset"),
            (true, "traced_ok", "1", "Unset"),
        ]
    );
}
