//! What the command shows of queued bytes: the envelope header, or why it does not decode.

use std::time::SystemTime;

use mq::Envelope;
use serde::Serialize;
use serde_json::value::RawValue;

/// The header of an envelope, as `peek` and `failed` show it.
#[derive(Debug, Serialize)]
pub(crate) struct EnvelopeView {
    /// The message's wire name; `None` when the bytes are not an envelope.
    pub(crate) name: Option<String>,
    /// The message id.
    pub(crate) message_id: Option<String>,
    /// The envelope's attempt counter.
    pub(crate) attempt: Option<u32>,
    /// The slots still to run (`None`: all, or undecodable).
    pub(crate) slots: Option<Vec<String>>,
    /// When the message was dispatched (RFC 3339).
    pub(crate) dispatched_at: Option<String>,
    /// Why the bytes are not an envelope.
    pub(crate) decode_error: Option<String>,
    /// The message body as JSON, or the raw bytes as (lossy) text when they are not an
    /// envelope.
    pub(crate) body: Body,
}

/// A message body: JSON when it is, text otherwise.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Body {
    Json(Box<RawValue>),
    Text(String),
}

impl Body {
    pub(crate) fn text(&self) -> &str {
        match self {
            Body::Json(raw) => raw.get(),
            Body::Text(text) => text,
        }
    }
}

impl EnvelopeView {
    pub(crate) fn decode(bytes: &[u8]) -> EnvelopeView {
        match Envelope::decode(bytes) {
            Ok(envelope) => EnvelopeView {
                name: Some(envelope.name),
                message_id: Some(envelope.id),
                attempt: Some(envelope.attempt),
                slots: envelope.slots,
                dispatched_at: Some(time(envelope.dispatched_at)),
                decode_error: None,
                body: Body::Json(envelope.body),
            },
            Err(error) => EnvelopeView {
                name: None,
                message_id: None,
                attempt: None,
                slots: None,
                dispatched_at: None,
                decode_error: Some(error),
                body: Body::Text(String::from_utf8_lossy(bytes).into_owned()),
            },
        }
    }

    /// The wire name, or `(undecodable)`.
    pub(crate) fn name_or_mark(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| "(undecodable)".to_owned())
    }

    /// The `key: value` lines of the header.
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        match &self.decode_error {
            None => {
                fields.push(("message", self.name.clone().unwrap_or_default()));
                fields.push(("message id", self.message_id.clone().unwrap_or_default()));
                if let Some(attempt) = self.attempt {
                    fields.push(("attempt", attempt.to_string()));
                }
                fields.push((
                    "slots to run",
                    self.slots
                        .as_ref()
                        .map_or_else(|| "all".to_owned(), |slots| slots.join(", ")),
                ));
                if let Some(at) = &self.dispatched_at {
                    fields.push(("dispatched at", at.clone()));
                }
            }
            Some(error) => {
                fields.push(("message", "(undecodable)".to_owned()));
                fields.push(("decode error", error.clone()));
            }
        }
        fields.push(("body", self.body.text().to_owned()));
        fields
    }
}

/// A time as RFC 3339 in UTC, to the second.
pub(crate) fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A duration for people: `2m`, `1h 30m`, `500ms`, `0s`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(d).to_string()
}
