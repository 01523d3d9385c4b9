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
    /// The envelope's attempt counter: the attempt its next delivery is; in the failure
    /// store, the number a retry carries (one more than the attempts made).
    pub(crate) attempt: Option<u32>,
    /// The slots still to run (`None`: all, or undecodable).
    pub(crate) slots: Option<Vec<String>>,
    /// When the message was dispatched (RFC 3339).
    pub(crate) dispatched_at: Option<String>,
    /// The version of the message's shape (`#[message(version = N)]`); not shown when 1.
    #[serde(skip_serializing_if = "is_first_version")]
    pub(crate) message_version: u32,
    /// The envelope's headers (the trace context, with `otel`); not shown when none.
    #[serde(skip_serializing_if = "mq::Headers::is_empty")]
    pub(crate) headers: mq::Headers,
    /// Why the bytes are not an envelope.
    pub(crate) decode_error: Option<String>,
    /// The message body as JSON, or the raw bytes as (lossy) text when they are not an
    /// envelope, or when it is shown cut or nested too deep for JSON readers (see
    /// `body_note`).
    pub(crate) body: Body,
    /// Why `body` is text, not the body as it was: cut, or nested too deep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body_note: Option<String>,
}

/// The deepest nesting of a body shown as JSON: deeper ones are shown as text, so that a
/// script's JSON reader (serde_json stops at 128 levels, Python at about 1,000) reads the
/// rest of the output.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// How many bytes of each body a listing shows.
pub(crate) const LISTED_BODY_BYTES: usize = 1024;

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
                message_version: envelope.message_version,
                headers: envelope.headers,
                decode_error: None,
                body: Body::Json(envelope.body),
                body_note: None,
            },
            Err(error) => EnvelopeView {
                name: None,
                message_id: None,
                attempt: None,
                slots: None,
                dispatched_at: None,
                message_version: 1,
                headers: mq::Headers::new(),
                decode_error: Some(error),
                body: Body::Text(String::from_utf8_lossy(bytes).into_owned()),
                body_note: None,
            },
        }
    }

    /// Like [`decode`](EnvelopeView::decode), with the body bounded: at most `max_bytes` of
    /// it (a listing), and as text when it is nested deeper than [`MAX_JSON_DEPTH`]; either
    /// is said in `body_note`.
    pub(crate) fn decode_bounded(bytes: &[u8], max_bytes: Option<usize>) -> EnvelopeView {
        let mut view = EnvelopeView::decode(bytes);
        let text = view.body.text();
        let size = text.len();
        let mut notes = Vec::new();
        if json_depth(text) > MAX_JSON_DEPTH {
            notes.push(format!("nested deeper than {MAX_JSON_DEPTH} levels"));
        }
        let shown = match max_bytes {
            Some(max) if size > max => {
                notes.push(format!(
                    "cut: the first {} of {size} bytes (`mq failed show ID` shows it all)",
                    floor_char_boundary(text, max)
                ));
                &text[..floor_char_boundary(text, max)]
            }
            _ => text,
        };
        if !notes.is_empty() {
            view.body_note = Some(format!("body shown as text: {}", notes.join("; ")));
            view.body = Body::Text(shown.to_owned());
        }
        view
    }

    /// The wire name, or `(undecodable)`.
    pub(crate) fn name_or_mark(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| "(undecodable)".to_owned())
    }

    /// The `key: value` lines of the header of a message that is `held` as a queued one
    /// (`peek`: the attempt it is, the slots it runs) or a failed one (`failed show`: the
    /// slots a retry runs; the attempts made are the failure record's, not shown here).
    pub(crate) fn fields(&self, held: Held) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        match &self.decode_error {
            None => {
                fields.push(("message", self.name.clone().unwrap_or_default()));
                fields.push(("message id", self.message_id.clone().unwrap_or_default()));
                if let (Some(attempt), Held::Queued) = (self.attempt, held) {
                    fields.push(("attempt", attempt.to_string()));
                }
                let slots = self
                    .slots
                    .as_ref()
                    .map_or_else(|| "all".to_owned(), |slots| slots.join(", "));
                match held {
                    Held::Queued => fields.push(("slots to run", slots)),
                    Held::Failed => fields.push(("a retry runs", slots)),
                }
                if let Some(at) = &self.dispatched_at {
                    fields.push(("dispatched at", at.clone()));
                }
                if self.message_version != 1 {
                    fields.push(("message version", self.message_version.to_string()));
                }
                for (name, value) in &self.headers {
                    fields.push(("header", format!("{name}: {value}")));
                }
            }
            Some(error) => {
                fields.push(("message", "(undecodable)".to_owned()));
                fields.push(("decode error", error.clone()));
            }
        }
        if let Some(note) = &self.body_note {
            fields.push(("body note", note.clone()));
        }
        fields.push(("body", self.body.text().to_owned()));
        fields
    }
}

/// Where the shown message is, which decides what its header means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Held {
    /// On its queue (`peek`).
    Queued,
    /// In the failure store (`failed show`).
    Failed,
}

/// How deep arrays and objects nest in `json`, outside strings.
pub(crate) fn json_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The largest index at most `max` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    (0..=max.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
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

/// Whether an envelope's `message_version` is the first, which is not shown.
fn is_first_version(version: &u32) -> bool {
    *version == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_version_above_1_is_shown() {
        let second = br#"{"v":1,"name":"X","id":"1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","message_version":2,"body":{}}"#;
        let view = EnvelopeView::decode(second);
        assert!(view
            .fields(Held::Queued)
            .contains(&("message version", "2".to_owned())));
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.contains(r#""message_version":2"#), "{json}");
        let first = br#"{"v":1,"name":"X","id":"1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","body":{}}"#;
        let view = EnvelopeView::decode(first);
        assert!(!view
            .fields(Held::Queued)
            .iter()
            .any(|(k, _)| *k == "message version"));
        assert!(!serde_json::to_string(&view)
            .unwrap()
            .contains("message_version"));
    }

    #[test]
    fn headers_are_shown_when_there_are_some() {
        let headed = br#"{"v":1,"name":"X","id":"1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","headers":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},"body":{}}"#;
        let view = EnvelopeView::decode(headed);
        let fields = view.fields(Held::Queued);
        assert!(fields.contains(&(
            "header",
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
        )));
        let json = serde_json::to_string(&view).unwrap();
        assert!(json.contains(r#""headers":{"traceparent":"#), "{json}");

        let plain = br#"{"v":1,"name":"X","id":"1","attempt":1,"dispatched_at":"2026-11-28T09:30:00Z","body":{}}"#;
        let view = EnvelopeView::decode(plain);
        assert!(!view
            .fields(Held::Queued)
            .iter()
            .any(|(k, _)| *k == "header"));
        assert!(!serde_json::to_string(&view).unwrap().contains("headers"));
    }
}
