//! The wire format: one JSON envelope per queued item (see
//! [`guide::wire_format`](crate::guide::wire_format)).
//!
//! Decoding reads the header and keeps the body as raw JSON text, so each slot deserializes
//! the body straight into its own type and nothing is parsed twice.
//!
//! [`Headers`] carry metadata beside the message (the W3C trace context of `otel`): an
//! empty map costs no allocation and is not written, so a message without headers encodes
//! to the same bytes as before they existed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The envelope format this version writes and reads.
pub(crate) const VERSION: u32 = 1;

/// The envelope's `headers`: names to text values. Names are lower-case by convention
/// (`traceparent`); see [`guide::wire_format`](crate::guide::wire_format).
///
/// ```
/// let mut headers = mq::Headers::new();
/// headers.insert("traceparent".into(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
/// let json = serde_json::to_string(&headers).unwrap();
/// assert!(json.starts_with(r#"{"traceparent":"00-"#));
/// ```
pub type Headers = BTreeMap<String, String>;

/// A decoded envelope: the header, with the body kept as raw JSON.
///
/// ```
/// let body = serde_json::value::to_raw_value(&serde_json::json!({"order_id": 7})).unwrap();
/// let envelope = mq::Envelope::new("OrderPlaced", body);
/// assert_eq!((envelope.v, envelope.attempt, envelope.slots.clone()), (1, 1, None));
/// assert_eq!(envelope.body.get(), r#"{"order_id":7}"#);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// Format version: 1 (see [`guide::wire_format`](crate::guide::wire_format)).
    pub v: u32,
    /// The message's wire name.
    pub name: String,
    /// The message id, unique per dispatch; kept across retries.
    pub id: String,
    /// 1 for the first attempt, incremented by each retry.
    pub attempt: u32,
    /// The slots still to run; absent means all slots of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<String>>,
    /// When the message was dispatched (RFC 3339, UTC).
    #[serde(with = "system_time")]
    pub dispatched_at: SystemTime,
    /// Metadata beside the message (`traceparent`, `tracestate`, ...); kept across retries.
    /// Empty when none, and then not written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: Headers,
    /// The version of the message's shape the body was written in (`#[message(version =
    /// N)]`); 1 when absent, and then not written.
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub message_version: u32,
    /// The signature, `KEY_ID:MAC` (see [`signing`](crate::signing)); absent when the
    /// producer had no signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// The message itself, as its type serializes.
    pub body: Box<RawValue>,
}

impl Envelope {
    /// A first-attempt envelope of `body` (already JSON) with a fresh id.
    ///
    /// ```
    /// let body = serde_json::value::RawValue::from_string("{}".to_owned()).unwrap();
    /// let first = mq::Envelope::new("Ping", body.clone());
    /// let second = mq::Envelope::new("Ping", body);
    /// assert_eq!((first.name.as_str(), first.attempt), ("Ping", 1));
    /// assert_ne!(first.id, second.id);
    /// ```
    pub fn new(name: &str, body: Box<RawValue>) -> Envelope {
        Envelope {
            v: VERSION,
            name: name.to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            slots: None,
            dispatched_at: SystemTime::now(),
            headers: Headers::new(),
            message_version: 1,
            sig: None,
            body,
        }
    }

    /// This envelope with its `sig` set by `signer` (see [`signing`](crate::signing)).
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse(&format!("k1:{}", "ab".repeat(32)))?;
    /// let body = serde_json::value::RawValue::from_string("{}".to_owned()).unwrap();
    /// let envelope = mq::Envelope::new("Ping", body).signed(&signer);
    /// assert!(envelope.sig.as_deref().is_some_and(|sig| sig.starts_with("k1:")));
    /// assert!(signer.verify(&envelope).is_ok());
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    #[must_use]
    pub fn signed(mut self, signer: &crate::signing::Signer) -> Envelope {
        self.sig = Some(signer.sign(&self));
        self
    }

    /// Reads an envelope from the bytes of a queued item.
    ///
    /// # Errors
    ///
    /// A text for the failure store: not JSON, not an envelope, or a newer version.
    ///
    /// ```
    /// let item = br#"{"v":1,"name":"Ping","id":"01a2","attempt":2,
    ///     "dispatched_at":"2026-01-01T00:00:00.000Z","body":null}"#;
    /// let envelope = mq::Envelope::decode(item).unwrap();
    /// assert_eq!((envelope.name.as_str(), envelope.attempt), ("Ping", 2));
    /// assert!(mq::Envelope::decode(b"hello").unwrap_err().starts_with("not an mq envelope"));
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| format!("not an mq envelope: {e}"))?;
        if envelope.v != VERSION {
            return Err(format!(
                "envelope version {} is not supported by this worker (it reads version {VERSION})",
                envelope.v
            ));
        }
        Ok(envelope)
    }

    /// The bytes to put on a queue.
    ///
    /// ```
    /// let body = serde_json::value::RawValue::from_string("[1,2]".to_owned()).unwrap();
    /// let envelope = mq::Envelope::new("Batch", body);
    /// let again = mq::Envelope::decode(&envelope.encode()).unwrap();
    /// assert_eq!((again.id, again.body.get()), (envelope.id, "[1,2]"));
    /// ```
    pub fn encode(&self) -> bytes::Bytes {
        // Room for the body and the fields around it at once: no reallocation on the way.
        let mut bytes = Vec::with_capacity(self.body.get().len() + 256);
        // Serializing a struct of strings, numbers and already-valid raw JSON into a `Vec`
        // cannot fail.
        serde_json::to_writer(&mut bytes, self).expect("an envelope always serializes");
        bytes.into()
    }
}

fn first_version() -> u32 {
    1
}

fn is_first_version(version: &u32) -> bool {
    *version == 1
}

/// `SystemTime` as an RFC 3339 string with milliseconds, in UTC.
pub(crate) mod system_time {
    use std::time::SystemTime;

    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        d.deserialize_str(Rfc3339)
    }

    /// Reads the text where it lies: no copy of it is made.
    struct Rfc3339;

    impl Visitor<'_> for Rfc3339 {
        type Value = SystemTime;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 time")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<SystemTime, E> {
            humantime::parse_rfc3339_weak(text).map_err(E::custom)
        }
    }
}

/// `Duration` as whole milliseconds.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_body_raw() {
        let body = RawValue::from_string(r#"{"order_id":7,"to":"a@b.c"}"#.into()).unwrap();
        let envelope = Envelope::new("SendOrderConfirmation", body);
        let bytes = envelope.encode();
        let back = Envelope::decode(&bytes).unwrap();
        assert_eq!(back.name, "SendOrderConfirmation");
        assert_eq!(back.id, envelope.id);
        assert_eq!(back.attempt, 1);
        assert_eq!(back.slots, None);
        assert_eq!(back.body.get(), r#"{"order_id":7,"to":"a@b.c"}"#);
        let millis = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert_eq!(millis(back.dispatched_at), millis(envelope.dispatched_at));
        assert!(back.headers.is_empty());
    }

    #[test]
    fn no_headers_write_no_field() {
        let body = RawValue::from_string("1".into()).unwrap();
        let bytes = Envelope::new("X", body).encode();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(!text.contains("headers"), "{text}");
    }

    #[test]
    fn headers_round_trip_and_survive_a_retry_copy() {
        let body = RawValue::from_string("{}".into()).unwrap();
        let mut envelope = Envelope::new("X", body);
        envelope
            .headers
            .insert("traceparent".into(), TRACEPARENT.into());
        let retried = Envelope {
            attempt: 2,
            slots: Some(vec!["a::b".into()]),
            ..Envelope::decode(&envelope.encode()).unwrap()
        };
        let back = Envelope::decode(&retried.encode()).unwrap();
        assert_eq!(back.attempt, 2);
        assert_eq!(back.headers, envelope.headers);
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_the_documented_example_with_headers() {
        let text = br#"{"v":1,"name":"SendOrderConfirmation","id":"0193a8f2-7c4e-7d1a-9b1e-2f4c6a8e0b12","attempt":1,"dispatched_at":"2026-11-28T09:30:00.000Z","headers":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"shop=1"},"body":{"order_id":7,"to":"ada@example.com","total_cents":4200}}"#;
        let envelope = Envelope::decode(text).unwrap();
        assert_eq!(envelope.headers["traceparent"], TRACEPARENT);
        assert_eq!(envelope.headers["tracestate"], "shop=1");
    }

    /// What a worker of before headers reads: the same struct without the field. It
    /// ignores `headers` (serde skips unknown fields), so the version stays 1.
    #[test]
    fn a_reader_without_headers_ignores_them() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Older {
            v: u32,
            name: String,
            id: String,
            attempt: u32,
            slots: Option<Vec<String>>,
            dispatched_at: String,
            body: Box<RawValue>,
        }
        let body = RawValue::from_string(r#"{"n":1}"#.into()).unwrap();
        let mut envelope = Envelope::new("X", body);
        envelope.headers.insert("tracestate".into(), "a=b".into());
        let older: Older = serde_json::from_slice(&envelope.encode()).unwrap();
        assert_eq!(older.body.get(), r#"{"n":1}"#);
    }

    #[test]
    fn reads_the_documented_example() {
        let text = br#"{"v":1,"name":"SendOrderConfirmation","id":"0193a8f2-7c4e-7d1a-9b1e-2f4c6a8e0b12","attempt":2,"slots":["shop::mail::send_confirmation"],"dispatched_at":"2026-11-28T09:30:00.000Z","body":{"order_id":7,"to":"ada@example.com"}}"#;
        let envelope = Envelope::decode(text).unwrap();
        assert_eq!(envelope.attempt, 2);
        assert_eq!(
            envelope.slots.as_deref(),
            Some(&["shop::mail::send_confirmation".to_owned()][..])
        );
    }

    #[test]
    fn refuses_garbage_and_future_versions() {
        assert!(Envelope::decode(b"hello")
            .unwrap_err()
            .starts_with("not an mq envelope"));
        let future = br#"{"v":2,"name":"X","id":"1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","body":null}"#;
        assert!(Envelope::decode(future).unwrap_err().contains("version 2"));
    }
}
