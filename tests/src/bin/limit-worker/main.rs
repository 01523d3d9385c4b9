//! The worker binary of `limit_option_processes.rs`: its command line (`--rate-limit`, ...)
//! over the slots below. Each appends a line to the file `$MQ_TEST_RECORD`:
//! `KEY N ATTEMPT START-US END-US` (a lookup's key is `lookup`, its end 0).

mod messages;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use messages::{CallCustomerApi, Lookup};

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros())
}

/// A short call; its start and end show how many of one customer ran at once.
#[mq::slot]
async fn call_customer_api(msg: CallCustomerApi, ctx: mq::Context) {
    let start = now_us();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let end = now_us();
    let line = format!("{} {} {} {start} {end}", msg.customer, msg.n, ctx.attempt());
    mq_tests::append_line("MQ_TEST_RECORD", &line);
}

#[mq::slot]
fn lookup(msg: &Lookup, ctx: mq::Context) {
    let line = format!("lookup {} {} {} 0", msg.n, ctx.attempt(), now_us());
    mq_tests::append_line("MQ_TEST_RECORD", &line);
}

#[tokio::main(worker_threads = 2)]
async fn main() -> mq::Result<()> {
    mq::Worker::builder()
        .concurrency(8)
        .poll_interval(Duration::from_millis(50))
        .command_line()
        .run_and_exit()
        .await
}
