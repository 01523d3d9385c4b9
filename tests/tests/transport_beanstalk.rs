//! The transport conformance suite on a real beanstalkd, one server per check.

use std::sync::Arc;

use mq::transport::Transport;
use mq_tests::beanstalkd::Beanstalkd;

async fn fresh() -> (Beanstalkd, Arc<dyn Transport>) {
    let server = Beanstalkd::start();
    let transport = mq::transport::connect(&server.url())
        .await
        .expect("connect");
    (server, transport)
}

mq_tests::transport_suite!(fresh());
mq_tests::unique_suite!(refused fresh());
