//! The transport conformance suite on the embedded SQLite queue, one file per check.

use std::sync::Arc;

use mq::transport::Transport;
use tempfile::TempDir;

async fn fresh() -> (TempDir, Arc<dyn Transport>) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("suite.db").display());
    let transport = mq::transport::connect(&url).await.expect("open");
    (dir, transport)
}

mq_tests::transport_suite!(fresh());
mq_tests::unique_suite!(fresh());
