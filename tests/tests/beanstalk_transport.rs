//! The beanstalkd transport against real servers: the `Transport` contract, the failure
//! store, errors, and a server killed and restarted mid-run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mq::transport::beanstalk::proto::{parse_yaml_map, Command, Response};
use mq::transport::beanstalk::BeanstalkTransport;
use mq::transport::{Failure, Job, PutOptions, SlotFailure};
use mq::{Error, Transport};
use mq_tests::beanstalkd::Beanstalkd;
use serde::{Deserialize, Serialize};

async fn transport(server: &Beanstalkd) -> BeanstalkTransport {
    BeanstalkTransport::connect_url(&server.url())
        .await
        .unwrap()
}

fn opts(priority: u32) -> PutOptions {
    PutOptions::new(priority, Duration::ZERO, Duration::from_secs(60))
}

fn q(name: &str) -> Vec<String> {
    vec![name.to_owned()]
}

fn bodies(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .map(|j| String::from_utf8_lossy(&j.body).into_owned())
        .collect()
}

async fn stats_job(t: &BeanstalkTransport, id: u64) -> std::collections::BTreeMap<String, String> {
    let c = t.open_connection().await.unwrap();
    let Response::Ok(yaml) = c.call(Command::StatsJob(id)).await.unwrap() else {
        panic!("job {id} gone")
    };
    parse_yaml_map(&yaml).unwrap()
}

#[tokio::test]
async fn put_reserve_ack_with_priorities_and_queue_order() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    assert_eq!(t.capabilities().max_message_size, Some(65_535));
    assert_eq!(t.describe(), server.url());
    t.put("low", "l1".into(), opts(1)).await.unwrap();
    t.put("high", "h-late".into(), opts(500)).await.unwrap();
    t.put("high", "h-urgent".into(), opts(2)).await.unwrap();
    t.put("high", "h-late2".into(), opts(500)).await.unwrap();
    // Ready items: earlier queues first, each by priority then age.
    let jobs = t
        .reserve(&["high".into(), "low".into()], 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(bodies(&jobs), ["h-urgent", "h-late", "h-late2", "l1"]);
    assert_eq!(jobs[3].queue, "low");
    assert_eq!(jobs[0].queue, "high");
    for job in &jobs {
        t.ack(job).await.unwrap();
    }
    assert!(matches!(t.ack(&jobs[0]).await, Err(Error::ReservationLost(id)) if id == jobs[0].id));
    // Nothing left: an empty batch after about the timeout (rounded up to a second).
    let started = Instant::now();
    assert!(t
        .reserve(&q("high"), 5, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn batches_fill_up_to_max_and_wait_for_the_first() {
    let server = Beanstalkd::start();
    let t = Arc::new(transport(&server).await);
    for i in 0..300 {
        t.put("bulk", format!("m{i}").into(), opts(10))
            .await
            .unwrap();
    }
    let first = t
        .reserve(&q("bulk"), 256, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 256);
    let rest = t
        .reserve(&q("bulk"), 256, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(rest.len(), 44);
    let all: BTreeSet<u64> = first.iter().chain(&rest).map(|j| j.id).collect();
    assert_eq!(all.len(), 300);
    for job in first.iter().chain(&rest) {
        t.ack(job).await.unwrap();
    }
    // A waiting reserve (nothing held) wakes up for an item put meanwhile, in either queue.
    let waiter = {
        let t = t.clone();
        tokio::spawn(async move {
            t.reserve(&["a".into(), "b".into()], 4, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.put("b", "late".into(), opts(1)).await.unwrap();
    let jobs = waiter.await.unwrap().unwrap();
    assert_eq!(bodies(&jobs), ["late"]);
    assert_eq!(jobs[0].queue, "b");
    // While it is held, a reserve polls (so the ack below is not held back) and still
    // gets what arrives.
    let waiter = {
        let t = t.clone();
        tokio::spawn(async move { t.reserve(&q("a"), 4, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    t.ack(&jobs[0]).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "ack not held back by the reserve"
    );
    t.put("a", "polled".into(), opts(1)).await.unwrap();
    assert_eq!(bodies(&waiter.await.unwrap().unwrap()), ["polled"]);
}

#[tokio::test]
async fn delays_round_up_and_unrepresentable_values_are_refused() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    let options = PutOptions::new(3, Duration::from_millis(1200), Duration::from_millis(10));
    let id = t.put("d", "x".into(), options).await.unwrap();
    let stats = stats_job(&t, id).await;
    assert_eq!(stats["delay"], "2", "1.2 s rounds up to 2 s");
    assert_eq!(stats["ttr"], "1", "a TTR under a second becomes 1 s");
    assert_eq!(stats["pri"], "3");
    assert_eq!(stats["state"], "delayed");
    assert!(t
        .reserve(&q("d"), 1, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let jobs = t.reserve(&q("d"), 1, Duration::from_secs(4)).await.unwrap();
    assert_eq!(bodies(&jobs), ["x"]);

    let too_long = Duration::from_secs(u64::from(u32::MAX) + 1);
    let error = t
        .put("d", "x".into(), opts(0).with_delay(too_long))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unrepresentable { what: "delay", .. }),
        "{error}"
    );
    let error = t
        .put("d", "x".into(), opts(0).with_ttr(too_long))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unrepresentable { what: "ttr", .. }),
        "{error}"
    );
    let error = t.put("bad queue", "x".into(), opts(0)).await.unwrap_err();
    assert!(error.to_string().contains("bad queue"), "{error}");
}

#[tokio::test]
async fn retry_release_keep_alive() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    t.put("r", "first".into(), opts(7)).await.unwrap();
    let job = t
        .reserve(&q("r"), 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);

    // keep-alive = touch; release keeps the priority.
    t.keep_alive(&job).await.unwrap();
    t.release(&job).await.unwrap();
    assert!(matches!(
        t.keep_alive(&job).await,
        Err(Error::ReservationLost(_))
    ));
    assert!(matches!(
        t.release(&job).await,
        Err(Error::ReservationLost(_))
    ));
    assert_eq!(stats_job(&t, job.id).await["pri"], "7");

    // retry = put the new body with its delay, then delete the old item.
    let job = t
        .reserve(&q("r"), 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    let delayed = opts(7).with_delay(Duration::from_millis(100));
    t.retry(&job, "second".into(), delayed).await.unwrap();
    assert!(matches!(
        t.retry(&job, "third".into(), delayed).await,
        Err(Error::ReservationLost(_))
    ));
    let c = t.open_connection().await.unwrap();
    assert_eq!(
        c.call(Command::Peek(job.id)).await.unwrap(),
        Response::NotFound,
        "old item deleted"
    );
    let stats = t.stats().await.unwrap();
    let r = stats.iter().find(|s| s.queue == "r").unwrap();
    assert_eq!((r.ready, r.delayed, r.reserved), (0, 1, 0));
    let again = t.reserve(&q("r"), 1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(bodies(&again), ["second"]);
    t.ack(&again[0]).await.unwrap();

    // A slot slower than its TTR keeps its item with touches: nobody else gets it.
    let ttr = opts(0).with_ttr(Duration::from_secs(2));
    t.put("slow", "slow".into(), ttr).await.unwrap();
    let job = t
        .reserve(&q("slow"), 1, Duration::from_secs(1))
        .await
        .unwrap()
        .remove(0);
    let other = transport(&server).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        t.keep_alive(&job).await.unwrap();
    }
    assert!(other
        .reserve(&q("slow"), 1, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    t.ack(&job).await.unwrap();
}

fn failure(text: &str) -> Failure {
    Failure::new(
        vec![SlotFailure {
            slot: "app::slot".into(),
            error: text.into(),
        }],
        format!("failed 4 times: {text}"),
        4,
        SystemTime::now(),
    )
}

#[tokio::test]
async fn failure_store_list_show_retry_remove() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    for (queue, body) in [
        ("emails", "e1"),
        ("emails", "e2"),
        ("search", "s1"),
        ("emails", "\u{1}not json"),
    ] {
        t.put(queue, Bytes::from(body.to_owned()), opts(9))
            .await
            .unwrap();
    }
    let mut held = t
        .reserve(&q("emails"), 10, Duration::from_secs(1))
        .await
        .unwrap();
    held.extend(
        t.reserve(&q("search"), 10, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    assert_eq!(held.len(), 4);
    for job in &held {
        let retry_body = Bytes::from(format!("{{\"retry_of\":\"{}\"}}", job.id));
        let body = if job.body.starts_with(b"\x01") {
            job.body.clone()
        } else {
            retry_body
        };
        t.fail(job, body, opts(9), failure(&format!("boom {}", job.id)))
            .await
            .unwrap();
    }
    assert!(
        matches!(t.ack(&held[0]).await, Err(Error::ReservationLost(_))),
        "failed item is gone"
    );

    let stats = t.stats().await.unwrap();
    let emails = stats.iter().find(|s| s.queue == "emails").unwrap();
    assert_eq!((emails.ready, emails.reserved, emails.failed), (0, 0, 3));
    assert_eq!(
        stats.iter().find(|s| s.queue == "search").unwrap().failed,
        1
    );

    let all = t.failure_store().list(None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let emails = t.failure_store().list(Some("emails"), 100).await.unwrap();
    assert_eq!(emails.len(), 3);
    assert!(emails.iter().all(|f| f.queue == "emails"));
    assert_eq!(
        t.failure_store()
            .list(Some("emails"), 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        t.failure_store()
            .list(Some("nothing-here"), 10)
            .await
            .unwrap()
            .len(),
        0
    );
    // Listing twice gives the same (the scan puts records back).
    let again: Vec<u64> = t
        .failure_store()
        .list(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(again, all.iter().map(|f| f.id).collect::<Vec<_>>());

    let raw = all.iter().find(|f| f.body.starts_with(b"\x01")).unwrap();
    assert_eq!(
        &raw.body[..],
        "\u{1}not json".as_bytes(),
        "non-JSON bytes kept exactly"
    );
    let first = &all[0];
    let shown = t.failure_store().show(first.id).await.unwrap().unwrap();
    assert_eq!(shown.queue, first.queue);
    assert_eq!(shown.body, first.body);
    assert_eq!(shown.options, opts(9));
    assert_eq!(shown.failure.attempts, 4);
    assert_eq!(shown.failure.slots[0].slot, "app::slot");
    assert!(shown.failure.reason.starts_with("failed 4 times: boom"));
    // An id that is not a failure entry is none.
    let plain = t.put("emails", "plain".into(), opts(1)).await.unwrap();
    assert!(t.failure_store().show(plain).await.unwrap().is_none());
    assert!(!t.failure_store().remove(plain).await.unwrap());
    assert!(
        matches!(t.failure_store().retry(plain).await, Err(Error::NotFound(id)) if id == plain)
    );
    assert!(t.failure_store().show(9_999_999).await.unwrap().is_none());

    // retry: back on its queue, out of the store.
    let new_id = t.failure_store().retry(first.id).await.unwrap();
    assert!(t.failure_store().show(first.id).await.unwrap().is_none());
    let c = t.open_connection().await.unwrap();
    let Response::Found { body, .. } = c.call(Command::Peek(new_id)).await.unwrap() else {
        panic!()
    };
    assert_eq!(body, first.body);
    // remove
    assert!(t.failure_store().remove(all[1].id).await.unwrap());
    assert!(!t.failure_store().remove(all[1].id).await.unwrap());
    assert_eq!(t.failure_store().list(None, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn peek_flush_stats() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    assert!(t.peek("p").await.unwrap().is_none());
    t.put("p", "one".into(), opts(5)).await.unwrap();
    t.put("p", "urgent".into(), opts(1)).await.unwrap();
    t.put(
        "p",
        "later".into(),
        opts(1).with_delay(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let peeked = t.peek("p").await.unwrap().unwrap();
    assert_eq!(&peeked.body[..], b"urgent");
    let held = t.reserve(&q("p"), 1, Duration::from_secs(1)).await.unwrap();
    let stats = t.stats().await.unwrap();
    let p = stats.iter().find(|s| s.queue == "p").unwrap();
    assert_eq!((p.ready, p.reserved, p.delayed, p.failed), (1, 1, 1, 0));
    assert!(
        stats.iter().all(|s| s.queue != "default"),
        "the empty default tube is not listed"
    );
    assert_eq!(
        t.flush("p").await.unwrap(),
        2,
        "ready and delayed, not reserved"
    );
    assert!(t.peek("p").await.unwrap().is_none());
    t.ack(&held[0]).await.unwrap();
    assert_eq!(t.flush("never-used").await.unwrap(), 0);
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_are_clear_errors() {
    for url in [
        "beanstalk://",
        "beanstalk://host:port",
        "beanstalk://host:0",
        "beanstalk://h/x",
        "beanstalk://u@h",
    ] {
        let error = mq::transport::connect(url).await.unwrap_err();
        assert!(matches!(error, Error::InvalidUrl { .. }), "{url}: {error}");
    }
    // A port bound but not listening: it refuses connections, and no other test can take
    // it while this socket holds it.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let started = Instant::now();
    let error = mq::transport::connect(&format!("beanstalk://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6));
    let text = error.to_string();
    assert!(matches!(error, Error::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("refused"),
        "{text}"
    );
    // A name that does not resolve: an error within the bound, never a panic.
    let started = Instant::now();
    let error = mq::transport::connect("beanstalk://no-such-host.invalid:11300")
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(7));
    assert!(
        matches!(error, Error::InvalidUrl { .. } | Error::Unreachable { .. }),
        "{error}"
    );
}

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "big")]
struct Big {
    text: String,
}

#[tokio::test]
async fn oversize_message_is_refused_at_dispatch() {
    let server = Beanstalkd::start_with(&["-z", "1000"]);
    let t: Arc<dyn Transport> = mq::transport::connect(&server.url()).await.unwrap();
    assert_eq!(t.capabilities().max_message_size, Some(1000));
    let bus = mq::Bus::new(t.clone());
    bus.dispatch(Big {
        text: "small".into(),
    })
    .await
    .unwrap();
    let error = bus
        .dispatch(Big {
            text: "x".repeat(2000),
        })
        .await
        .unwrap_err();
    let Error::TooLarge { size, limit, .. } = &error else {
        panic!("{error}")
    };
    assert!(*size > 2000);
    assert_eq!(*limit, 1000);
    assert!(error.to_string().contains("1000"), "{error}");
    // Nothing was sent: one item only.
    assert_eq!(
        t.stats()
            .await
            .unwrap()
            .iter()
            .find(|s| s.queue == "big")
            .unwrap()
            .ready,
        1
    );
    // The transport itself refuses too, for callers other than the bus.
    let error = t
        .put("big", vec![b'x'; 1001].into(), opts(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::TooLarge {
                size: 1001,
                limit: 1000,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn server_killed_and_restarted_with_binlog_loses_nothing() {
    let binlog = tempfile::tempdir().unwrap();
    let mut server = Beanstalkd::with_binlog(binlog.path());
    let t = transport(&server).await;
    for i in 0..100 {
        t.put("durable", format!("m{i}").into(), opts(10))
            .await
            .unwrap();
    }
    let done = t
        .reserve(&q("durable"), 30, Duration::from_secs(1))
        .await
        .unwrap();
    for job in &done {
        t.ack(job).await.unwrap();
    }
    let in_flight = t
        .reserve(&q("durable"), 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(in_flight.len(), 10);

    server.kill();
    // Calls fail clearly while the server is down.
    assert!(matches!(
        t.ack(&in_flight[0]).await,
        Err(Error::ReservationLost(_))
    ));
    let error = t
        .reserve(&q("durable"), 10, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(t.put("durable", "x".into(), opts(1)).await.is_err());
    server.restart();

    // In flight when the server died: reserved jobs are ready again after the restart, and
    // acks of the old reservations are refused.
    for job in &in_flight[1..] {
        assert!(matches!(t.ack(job).await, Err(Error::ReservationLost(_))));
    }
    t.put("durable", "after restart".into(), opts(10))
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 71 && Instant::now() < deadline {
        match t.reserve(&q("durable"), 50, Duration::from_secs(1)).await {
            Ok(jobs) => {
                for job in jobs {
                    seen.insert(String::from_utf8_lossy(&job.body).into_owned());
                    t.ack(&job).await.unwrap();
                }
            }
            Err(error) => panic!("reserve after restart: {error}"),
        }
    }
    let expected: BTreeSet<String> = (30..100)
        .map(|i| format!("m{i}"))
        .chain(["after restart".to_owned()])
        .collect();
    assert_eq!(seen, expected);
}

/// A server restarted from its binlog counts `total-jobs` anew while its ids go on: browse
/// still finds the jobs above the ids of the deleted ones.
#[tokio::test]
async fn browse_finds_jobs_past_total_jobs_after_a_restart_from_the_binlog() {
    let binlog = tempfile::tempdir().unwrap();
    let mut server = Beanstalkd::with_binlog(binlog.path());
    let t = transport(&server).await;
    let gone: Vec<Bytes> = (0..1_200).map(|i| format!("g{i}").into()).collect();
    for put in t.put_many("gone", gone, opts(10)).await.unwrap() {
        put.unwrap();
    }
    let mut kept = Vec::new();
    for body in ["k1", "k2", "k3"] {
        kept.push(t.put("kept", body.into(), opts(10)).await.unwrap());
    }
    assert_eq!(t.flush("gone").await.unwrap(), 1_200);
    server.kill();
    server.restart();

    let t = transport(&server).await;
    let found = t.browse("kept", 0, 10).await.unwrap();
    assert_eq!(found.iter().map(|job| job.id).collect::<Vec<_>>(), kept);
    assert_eq!(bodies(&found), ["k1", "k2", "k3"]);
    assert!(t.browse("gone", 0, 10).await.unwrap().is_empty());
}

/// `send_ack` returns while beanstalkd has not answered (here: cannot, stopped with
/// SIGSTOP); `acks_answered` waits for the answer. A `delete` the server refuses (another
/// connection holds the job now) is logged, deletes nothing, and is answered all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_ack_returns_before_the_reply_and_is_answered_later() {
    let server = Beanstalkd::start();
    let t = transport(&server).await;
    t.put("sent", "a".into(), opts(1)).await.unwrap();
    let job = t
        .reserve(&q("sent"), 1, Duration::from_secs(1))
        .await
        .unwrap();
    server.pause();
    tokio::time::timeout(Duration::from_secs(2), t.send_ack(&job[0]))
        .await
        .expect("send_ack does not wait for a server that answers nothing")
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), t.acks_answered())
            .await
            .is_err(),
        "answered by a stopped server"
    );
    server.resume();
    tokio::time::timeout(Duration::from_secs(5), t.acks_answered())
        .await
        .expect("answered once the server runs again");
    let c = t.open_connection().await.unwrap();
    assert_eq!(
        c.call(Command::StatsJob(job[0].id)).await.unwrap(),
        Response::NotFound
    );

    // A reservation that ran out and went to another consumer: its ack is refused.
    let short = PutOptions::new(1, Duration::ZERO, Duration::from_secs(1));
    t.put("sent", "b".into(), short).await.unwrap();
    let lapsed = t
        .reserve(&q("sent"), 1, Duration::from_secs(1))
        .await
        .unwrap();
    let other = transport(&server).await;
    let taken = other
        .reserve(&q("sent"), 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(taken[0].id, lapsed[0].id);
    t.send_ack(&lapsed[0]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), t.acks_answered())
        .await
        .expect("a refused ack is answered too");
    assert_eq!(stats_job(&t, taken[0].id).await["state"], "reserved");
    other.ack(&taken[0]).await.unwrap();
}
