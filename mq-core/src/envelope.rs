//! The wire format: one JSON envelope per queued item (see
//! [`guide::wire_format`](crate::guide::wire_format)).
//!
//! Decoding reads the header and keeps the body as raw JSON text, so each slot deserializes
//! the body straight into its own type and nothing is parsed twice.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The envelope format this version writes and reads.
pub(crate) const VERSION: u32 = 1;

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
            body,
        }
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
        // Serializing a struct of strings, numbers and already-valid raw JSON cannot fail.
        serde_json::to_vec(self)
            .expect("an envelope always serializes")
            .into()
    }
}

/// `SystemTime` as an RFC 3339 string with milliseconds, in UTC.
pub(crate) mod system_time {
    use std::time::SystemTime;

    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(D::Error::custom)
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
