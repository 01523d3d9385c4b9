//! A worker process killed with SIGKILL while it holds PostgreSQL reservations loses
//! nothing: what it acked is gone, what it held comes back once its lease runs out.
//!
//! The child is this test binary run again with `MQ_PG_CHILD` set: the test
//! `child_process` does the child's part and is a no-op in a normal run.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use mq::transport::postgres::PostgresTransport;
use mq::transport::{PutOptions, Transport};
use mq_tests::postgres::FreshDb;

const ROLE: &str = "MQ_PG_CHILD";
const URL: &str = "MQ_PG_CHILD_URL";

/// The child's part: [`mq_tests::hold_until_killed`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "hold");
    let queue = PostgresTransport::connect(&std::env::var(URL).unwrap())
        .await
        .unwrap();
    mq_tests::hold_until_killed(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_holding_reservations_loses_nothing() {
    let db = FreshDb::create().await;
    let url = db.url("");
    let queue = PostgresTransport::connect(&url).await.unwrap();
    let total = 200;
    let ttr = Duration::from_secs(1);
    for n in 0..total {
        let options = PutOptions::default().with_ttr(ttr);
        queue
            .put("work", format!("m-{n}").into(), options)
            .await
            .unwrap();
    }

    let mut child = mq_tests::child_process(ROLE, "hold")
        .env(URL, &url)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let held = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once("reserved ")?.1.trim().parse::<usize>().ok())
        .expect("the child says what it reserved");
    assert_eq!(held, 50);
    tokio::time::sleep(Duration::from_millis(150)).await; // mid-run: a few acked, most held
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    let killed_at = Instant::now();

    // Until nothing is left on `work`: every message the child held came back and was acked.
    let mut seen = HashSet::new();
    let mut twice = 0;
    let deadline = killed_at + Duration::from_secs(20);
    loop {
        let left = mq_tests::queue_stats(&queue, "work").await;
        if left.ready + left.reserved + left.delayed == 0 || Instant::now() > deadline {
            break;
        }
        let jobs = queue
            .reserve(&["work".into()], 64, Duration::from_secs(3))
            .await
            .unwrap();
        for job in jobs {
            if !seen.insert(String::from_utf8(job.body.to_vec()).unwrap()) {
                twice += 1;
            }
            queue.ack(&job).await.unwrap();
        }
    }
    assert_eq!(twice, 0, "a message handed out twice after the kill");
    let done: HashSet<String> = queue
        .reserve(&["done".into()], 1000, Duration::ZERO)
        .await
        .unwrap()
        .iter()
        .map(|job| String::from_utf8(job.body.to_vec()).unwrap())
        .collect();
    assert!(
        !done.is_empty(),
        "the child acked some before it was killed"
    );
    // The child puts to `done`, then acks: killed between the two, one message is in both
    // (at least once), never more.
    assert!(
        seen.intersection(&done).count() <= 1,
        "acked messages came back: {:?}",
        seen.intersection(&done).collect::<Vec<_>>()
    );
    let all: HashSet<String> = seen.union(&done).cloned().collect();
    let expected: HashSet<String> = (0..total).map(|n| format!("m-{n}")).collect();
    assert_eq!(all, expected, "every message is handled once: none lost");
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "the held items came back after about their TTR"
    );
}
