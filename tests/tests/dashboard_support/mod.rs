//! What the dashboard tests share: a backend filled through the transport API (failed
//! messages as a worker leaves them, ready messages), on a runtime of its own.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mq::transport::{Failure, PutOptions, SlotFailure, Transport};

/// A transport on a runtime of its own (its connections live there).
pub struct Backend {
    pub runtime: tokio::runtime::Runtime,
    pub transport: Arc<dyn Transport>,
}

impl Backend {
    /// Connects to `url`, creating its queue where it is a file.
    pub fn connect(url: &str) -> Backend {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let transport = runtime
            .block_on(mq::transport::connect(url))
            .expect("connect");
        Backend { runtime, transport }
    }

    /// Puts an envelope of `name` with `body` (JSON) on `queue`, ready.
    pub fn put(&self, queue: &str, name: &str, body: &str) {
        let raw = serde_json::value::RawValue::from_string(body.to_owned()).expect("JSON");
        let envelope = mq::Envelope::new(name, raw);
        self.runtime
            .block_on(
                self.transport
                    .put(queue, envelope.encode(), PutOptions::default()),
            )
            .expect("put");
    }

    /// Puts a message on `queue`, reserves it and fails it as a worker would, with `slots`
    /// (path, error) failed; returns the failure store entry's id.
    pub fn fail(
        &self,
        queue: &str,
        name: &str,
        body: &str,
        slots: &[(&str, &str)],
        reason: &str,
    ) -> u64 {
        let raw = serde_json::value::RawValue::from_string(body.to_owned()).expect("JSON");
        let envelope = mq::Envelope::new(name, raw).encode();
        let failure = Failure::new(
            slots
                .iter()
                .map(|(slot, error)| SlotFailure {
                    slot: (*slot).to_owned(),
                    error: (*error).to_owned(),
                })
                .collect(),
            reason.to_owned(),
            3,
            SystemTime::now(),
        );
        let t = &self.transport;
        self.runtime.block_on(async {
            let options = PutOptions::new(100, Duration::ZERO, Duration::from_secs(60));
            t.put(queue, envelope.clone(), options).await.expect("put");
            let job = t
                .reserve(&[queue.to_owned()], 1, Duration::from_secs(5))
                .await
                .expect("reserve")
                .into_iter()
                .next()
                .expect("the item just put");
            let before = self.failed_ids_in(queue).await;
            t.fail(&job, envelope, options, failure)
                .await
                .expect("fail");
            self.failed_ids_in(queue)
                .await
                .into_iter()
                .find(|id| !before.contains(id))
                .expect("the new failure entry")
        })
    }

    async fn failed_ids_in(&self, queue: &str) -> Vec<u64> {
        let store = self.transport.failure_store();
        let listed = store.list(Some(queue), 10_000).await.expect("list");
        listed.iter().map(|f| f.id).collect()
    }

    /// The ids in the failure store.
    pub fn failed_ids(&self) -> Vec<u64> {
        self.runtime.block_on(async {
            let store = self.transport.failure_store();
            let listed = store.list(None, 10_000).await.expect("list");
            listed.iter().map(|f| f.id).collect()
        })
    }
}

/// The value of the hidden `csrf` field in `page`.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field in the page:\n{page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// The `name=value` of the session cookie set by `reply`.
pub fn session_of(reply: &mq_tests::http::Reply) -> String {
    let set = reply
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie set: {reply:#?}"));
    set.split(';').next().expect("name=value").to_owned()
}
