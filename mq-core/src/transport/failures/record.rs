//! The failure record: how a failed message is kept where a backend stores it as the body
//! of an item (beanstalkd's buried jobs, [`QueuedFailures`](super::QueuedFailures)); the
//! format [`guide::beanstalkd`](crate::guide::beanstalkd) documents.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::transport::{FailedMessage, Failure, PutOptions};

/// The stored form of a failure record (see [`guide::beanstalkd`](crate::guide::beanstalkd)).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) queue: String,
    pub(crate) options: PutOptions,
    pub(crate) failure: Failure,
    /// The envelope, when it is JSON (always, for envelopes mq wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<Box<RawValue>>,
    /// The item's bytes as text, when they are not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope_text: Option<String>,
    /// The item's bytes in hexadecimal, when they are not even UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope_hex: Option<String>,
}

impl Record {
    pub(crate) fn new(queue: &str, body: &[u8], options: PutOptions, failure: Failure) -> Record {
        let mut record = Record {
            queue: queue.to_owned(),
            options,
            failure,
            envelope: None,
            envelope_text: None,
            envelope_hex: None,
        };
        if let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(body) {
            record.envelope = Some(raw);
        } else if let Ok(text) = std::str::from_utf8(body) {
            record.envelope_text = Some(text.to_owned());
        } else {
            record.envelope_hex = Some(body.iter().map(|b| format!("{b:02x}")).collect());
        }
        record
    }

    pub(crate) fn body(&self) -> Bytes {
        if let Some(raw) = &self.envelope {
            return Bytes::copy_from_slice(raw.get().as_bytes());
        }
        if let Some(text) = &self.envelope_text {
            return Bytes::copy_from_slice(text.as_bytes());
        }
        let hex = self.envelope_hex.as_deref().unwrap_or_default().as_bytes();
        hex.chunks(2)
            .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect::<Vec<u8>>()
            .into()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // Strings, numbers and already-valid raw JSON always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn into_failed(self, id: u64) -> FailedMessage {
        FailedMessage {
            id,
            body: self.body(),
            queue: self.queue,
            options: self.options,
            failure: self.failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn records_keep_any_bytes() {
        let failure = Failure::new(Vec::new(), "r".into(), 1, SystemTime::UNIX_EPOCH);
        for body in [&br#"{"v":1}"#[..], b"not json", b"\xff\x00bin"] {
            let record = Record::new("q", body, PutOptions::default(), failure.clone());
            let back: Record = serde_json::from_slice(&record.encode()).unwrap();
            assert_eq!(&back.body()[..], body);
            assert_eq!(back.queue, "q");
        }
    }
}
