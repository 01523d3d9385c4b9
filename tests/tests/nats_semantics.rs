//! What JetStream adds beyond the conformance suite: the layout mq creates, bands of
//! priorities, a failed item leaves the work-queue stream, an incompatible stream is a clear
//! error, and file-stored items survive a restart of the server.

use std::time::Duration;

use bytes::Bytes;
use mq::transport::{Failure, PutOptions};
use mq_tests::nats::NatsServer;

fn opts(priority: u32) -> PutOptions {
    PutOptions::new(priority, Duration::ZERO, Duration::from_secs(30))
}

fn q(name: &str) -> Vec<String> {
    vec![name.to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_in_one_band_are_fifo_and_bands_are_ordered() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    // 1100 and 1024 share the band 1024..1279; 1300 is in the next band, 0 in the first.
    for (body, priority) in [
        ("b-1100", 1100),
        ("c-1300", 1300),
        ("b-1024", 1024),
        ("a-0", 0),
    ] {
        t.put("bands", Bytes::from(body), opts(priority))
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        let job = t
            .reserve(&q("bands"), 1, Duration::from_secs(1))
            .await
            .unwrap()
            .pop()
            .expect("an item");
        order.push(String::from_utf8(job.body.to_vec()).unwrap());
        t.ack(&job).await.unwrap();
    }
    assert_eq!(order, ["a-0", "b-1100", "b-1024", "c-1300"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_names_that_are_not_subject_tokens_work() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    let name = "orders.eu west>*";
    t.put(name, Bytes::from("x"), opts(1)).await.unwrap();
    let job = t
        .reserve(&q(name), 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(job[0].queue, name);
    let stats = t.stats().await.unwrap();
    assert!(
        stats.iter().any(|s| s.queue == name && s.reserved == 1),
        "{stats:?}"
    );
    t.ack(&job[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_leaves_the_work_queue() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    t.put("f", Bytes::from("x"), opts(1)).await.unwrap();
    let job = t
        .reserve(&q("f"), 1, Duration::from_secs(1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let failure = Failure::new(
        Vec::new(),
        "undecodable".into(),
        1,
        std::time::SystemTime::UNIX_EPOCH,
    );
    t.fail(&job, job.body.clone(), opts(1), failure)
        .await
        .unwrap();
    // The term is asynchronous: give the server a moment.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = t.stats().await.unwrap();
        let s = stats.iter().find(|s| s.queue == "f").expect("listed");
        if (s.ready, s.reserved, s.delayed, s.failed) == (0, 0, 0, 1) {
            break;
        }
        assert!(std::time::Instant::now() < until, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_stream_is_a_clear_error_and_is_left_alone() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.address()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MQ".into(),
        subjects: vec!["mq.>".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    let error = t.put("q", Bytes::from("x"), opts(1)).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("stream `MQ` exists with settings mq cannot use")
            && text.contains("retention")
            && text.contains("storage")
            && text.contains("never changes"),
        "{text}"
    );
    let info = js.get_stream("MQ").await.unwrap().cached_info().clone();
    assert_eq!(
        info.config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_beyond_the_cluster_are_a_clear_error() {
    let server = NatsServer::start();
    let t = mq::transport::connect(&format!("{}?replicas=3", server.url()))
        .await
        .unwrap();
    let error = t.put("q", Bytes::from("x"), opts(1)).await.unwrap_err();
    assert!(
        error.to_string().contains("cannot create stream `MQ`"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_clear_errors() {
    for (url, part) in [
        ("nats://127.0.0.1:4222?replicas=9", "replicas=9"),
        ("nats://127.0.0.1:4222?ack_wait=soon", "ack_wait=soon"),
        ("nats://127.0.0.1:4222?colour=red", "unknown option"),
        ("nats://,", "is not HOST:PORT"),
    ] {
        let error = mq::transport::connect(url).await.unwrap_err();
        assert!(
            matches!(error, mq::Error::InvalidUrl { .. }),
            "{url}: {error}"
        );
        assert!(error.to_string().contains(part), "{url}: {error}");
    }
    // Bound but not listening: refuses, and no other test can take the port meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let error = mq::transport::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(error, mq::Error::Unreachable { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stored_items_survive_a_restart_of_the_server() {
    let mut server = NatsServer::start();
    {
        let t = mq::transport::connect(&server.url()).await.unwrap();
        for n in 0..50 {
            t.put("durable", Bytes::from(format!("m{n}")), opts(1))
                .await
                .unwrap();
        }
        let delayed = opts(1).with_delay(Duration::from_secs(1));
        t.put("durable", Bytes::from("late"), delayed)
            .await
            .unwrap();
    }
    server.kill();
    server.restart();
    let t = mq::transport::connect(&server.url()).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 51 {
        assert!(
            std::time::Instant::now() < until,
            "only {} came back",
            seen.len()
        );
        // Right after a restart the stream may still be recovering: errors are retried.
        let Ok(jobs) = t
            .reserve(&q("durable"), 64, Duration::from_millis(500))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for job in jobs {
            seen.insert(String::from_utf8(job.body.to_vec()).unwrap());
            t.ack(&job).await.unwrap();
        }
    }
    assert!(seen.contains("late"));
}
