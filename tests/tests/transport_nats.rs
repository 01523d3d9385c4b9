//! The transport conformance suite on a real nats-server with JetStream, one server per
//! check.

use std::sync::Arc;

use mq::transport::Transport;
use mq_tests::nats::NatsServer;

async fn fresh() -> (NatsServer, Arc<dyn Transport>) {
    let server = NatsServer::start();
    let transport = mq::transport::connect(&server.url())
        .await
        .expect("connect");
    (server, transport)
}

mq_tests::transport_suite!(fresh());
mq_tests::unique_suite!(refused fresh());
