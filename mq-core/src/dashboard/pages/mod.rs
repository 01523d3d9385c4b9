//! The pages, one file each, and what several of them show alike: the notice after an
//! action, a message body (or why it is hidden), an envelope's header.

pub(crate) mod failed;
pub(crate) mod failures;
pub(crate) mod overview;
pub(crate) mod queue;
pub(crate) mod routes;

use maud::{html, Markup};
use serde::Deserialize;

use super::auth::Viewer;
use super::html::time;
use crate::envelope::Envelope;

/// The largest body shown whole; longer ones are cut (the `mq` command shows them all).
const SHOWN_BODY_BYTES: usize = 64 * 1024;

/// What an action did, carried to the page it redirects to (`?done=retried&n=3`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Notice {
    #[serde(default)]
    done: String,
    #[serde(default)]
    n: String,
}

impl Notice {
    /// `?done=VERB&n=COUNT`.
    pub(crate) fn query(done: &str, n: u64) -> String {
        format!("done={done}&n={n}")
    }

    /// The green line at the top, for the verbs the actions use; nothing otherwise.
    pub(crate) fn markup(&self) -> Markup {
        let n: u64 = self.n.parse().unwrap_or(0);
        let plural = if n == 1 { "" } else { "s" };
        let text = match self.done.as_str() {
            "retried" => format!("Retried {n} failed message{plural}: back on their queues."),
            "removed" => format!("Removed {n} failed message{plural} for good."),
            "flushed" => format!("Flushed {n} message{plural} from the queue."),
            _ => return html! {},
        };
        html! { div.banner.notice role="status" { (text) } }
    }
}

/// A message body as indented JSON, or the note saying why it is hidden.
pub(crate) fn body(viewer: &Viewer, raw: &str) -> Markup {
    if !viewer.bodies {
        return html! {
            p.note {
                "The body is hidden: sign in with the operator token, or start the dashboard with "
                code { "--show-bodies" } "."
            }
        };
    }
    let pretty = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| raw.to_owned());
    let (shown, cut) = match pretty.char_indices().nth(SHOWN_BODY_BYTES) {
        Some((at, _)) => (&pretty[..at], true),
        None => (pretty.as_str(), false),
    };
    html! {
        pre.body { (shown) }
        @if cut { p.note { "Cut at " (SHOWN_BODY_BYTES) " characters: " code { "mq failed show ID" } " or " code { "mq peek QUEUE" } " shows it all." } }
    }
}

/// The `dt`/`dd` rows of an envelope's header (or why the bytes are not an envelope).
pub(crate) fn envelope_fields(envelope: &Result<Envelope, String>) -> Markup {
    html! {
        @match envelope {
            Ok(envelope) => {
                dt { "message" } dd { code { (envelope.name) } }
                dt { "message id" } dd { code { (envelope.id) } }
                dt { "dispatched at" } dd { (time(envelope.dispatched_at)) }
            }
            Err(error) => {
                dt { "message" } dd { "(undecodable)" }
                dt { "decode error" } dd { (error) }
            }
        }
    }
}

/// The raw body text of `bytes`: the envelope's body, or the bytes as text.
pub(crate) fn raw_body(envelope: &Result<Envelope, String>, bytes: &[u8]) -> String {
    match envelope {
        Ok(envelope) => envelope.body.get().to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
