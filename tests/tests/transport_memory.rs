//! The transport conformance suite on `memory://`.

use std::sync::Arc;

use mq::transport::memory::MemoryTransport;
use mq::transport::Transport;

async fn fresh() -> ((), Arc<dyn Transport>) {
    ((), MemoryTransport::new())
}

mq_tests::transport_suite!(fresh());
mq_tests::unique_suite!(fresh());
