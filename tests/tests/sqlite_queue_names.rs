//! SQLite serves every queue name a `&str` can hold: empty, any Unicode, NUL bytes, long
//! ones. Names are compared byte for byte, so names that differ only after a NUL byte, or
//! only in case, are different queues. (The only limit is SQLite's of 1 GB per value.)

use std::time::Duration;

use mq::transport::sqlite::SqliteTransport;
use mq::transport::{Failure, PutOptions, Transport};

fn names() -> Vec<String> {
    vec![
        String::new(),
        "a".into(),
        "a\0b".into(),
        "a\0c".into(),
        "\0".into(),
        "A".into(),
        "a ".into(),
        "ünïcødé 名前 🚀".into(),
        "with/slash.and:colon*star>gt".into(),
        "x".repeat(1 << 20),
    ]
}

#[tokio::test]
async fn every_queue_name_is_served_and_names_are_compared_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteTransport::open(dir.path().join("mq.db"))
        .await
        .unwrap();
    let names = names();
    for (n, name) in names.iter().enumerate() {
        for copy in 0..=n {
            let body = format!("{n}-{copy}");
            queue
                .put(name, body.into(), PutOptions::default())
                .await
                .unwrap();
        }
    }

    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.len(), names.len(), "one queue per name");
    for (n, name) in names.iter().enumerate() {
        let counts = stats.iter().find(|s| &s.queue == name).unwrap();
        assert_eq!(counts.ready, n as u64 + 1, "queue {n}");
        let peeked = queue.peek(name).await.unwrap().unwrap();
        assert_eq!(&peeked.body[..], format!("{n}-0").as_bytes());
    }

    for (n, name) in names.iter().enumerate() {
        let jobs = queue
            .reserve(std::slice::from_ref(name), 100, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            jobs.len(),
            n + 1,
            "queue {n} hands out its own messages only"
        );
        for job in &jobs {
            assert_eq!(&job.queue, name);
            assert!(job.body.starts_with(format!("{n}-").as_bytes()));
        }
        let failure = Failure::new(Vec::new(), "test".into(), 1, std::time::SystemTime::now());
        let (first, rest) = jobs.split_first().unwrap();
        let body = first.body.clone();
        queue
            .fail(first, body, PutOptions::default(), failure)
            .await
            .unwrap();
        for job in rest {
            queue.ack(job).await.unwrap();
        }
        let failed = queue.failure_store().list(Some(name), 10).await.unwrap();
        assert_eq!(failed.len(), 1, "queue {n} has its own failure store");
        assert_eq!(&failed[0].queue, name);
        queue.failure_store().retry(failed[0].id).await.unwrap();
        assert_eq!(queue.flush(name).await.unwrap(), 1, "queue {n}");
    }
    assert!(queue.stats().await.unwrap().is_empty());
}
