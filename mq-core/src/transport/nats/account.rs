//! The account's JetStream figures (`$JS.API.INFO`) for `mq stats`, read tolerantly: the
//! client's own `query_account` needs fields that servers before 2.10 do not send
//! (`reserved_memory`, `reserved_storage`) and fails on 2.9 as a whole. Here every figure
//! is optional, and an error reply is an error that says what the server said.

use async_nats::jetstream;
use serde::Deserialize;

use super::{nats, nats_by};
use crate::Result;

/// What `mq stats` shows of the account; a figure the server does not send is `None`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Figures {
    /// Bytes of file storage in use.
    pub(super) storage: Option<u64>,
    /// Bytes of memory storage in use.
    pub(super) memory: Option<u64>,
    /// Streams of the account.
    pub(super) streams: Option<u64>,
    /// Consumers of the account.
    pub(super) consumers: Option<u64>,
    /// The server's error reply, e.g. JetStream not enabled for the account.
    error: Option<Refusal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Refusal {
    code: u64,
    err_code: u64,
    description: String,
}

/// The account's figures.
pub(super) async fn figures(js: &jetstream::Context) -> Result<Figures> {
    let figures: Figures = js
        .request("INFO", &())
        .await
        .map_err(|error| nats_by("account info", error))?;
    if let Some(refusal) = &figures.error {
        return Err(nats(format!(
            "account info: the server said {} (code {}, error code {})",
            refusal.description, refusal.code, refusal.err_code
        )));
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2_9_reply_without_reserved_figures_parses() {
        // The shape nats-server 2.9.10 answers (no reserved_memory, reserved_storage).
        let reply = r#"{"type":"io.nats.jetstream.api.v1.account_info_response",
            "memory":0,"storage":1234,"streams":2,"consumers":3,
            "limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,
            "max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,
            "max_bytes_required":false},"api":{"total":9,"errors":0}}"#;
        let figures: Figures = serde_json::from_str(reply).unwrap();
        assert_eq!(figures.storage, Some(1234));
        assert_eq!(figures.streams, Some(2));
        assert_eq!(figures.consumers, Some(3));
        assert!(figures.error.is_none());
    }

    #[test]
    fn an_error_reply_is_kept() {
        let reply = r#"{"type":"io.nats.jetstream.api.v1.account_info_response",
            "error":{"code":503,"err_code":10039,"description":"jetstream not enabled for account"}}"#;
        let figures: Figures = serde_json::from_str(reply).unwrap();
        let refusal = figures.error.unwrap();
        assert_eq!(refusal.err_code, 10039);
        assert!(refusal.description.contains("not enabled"));
    }
}
