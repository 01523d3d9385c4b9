//! Searching the failure store: by message name, slot, error text and queue, paged.
//!
//! The [`FailureStore`](crate::transport::FailureStore) seam lists entries oldest first
//! with a maximum, and has no search of its own, so the dashboard lists up to
//! [`SCAN_LIMIT`] entries and filters them in memory; a store holding more says so on the
//! page (the newest beyond the limit are not searched).

use serde::Deserialize;

use crate::envelope::Envelope;
use crate::transport::FailedMessage;

/// The most entries one search lists from the store.
pub(crate) const SCAN_LIMIT: usize = 10_000;

/// Entries per page.
pub(crate) const PAGE_SIZE: usize = 50;

/// The search fields, as the query string (`GET /failed?message=..`) or a form gives them.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Search {
    /// Part of the message's wire name.
    #[serde(default)]
    pub(crate) message: String,
    /// Part of a failing slot's path.
    #[serde(default)]
    pub(crate) slot: String,
    /// Part of the error text (a slot's error or the reason).
    #[serde(default)]
    pub(crate) error: String,
    /// The queue, exactly.
    #[serde(default)]
    pub(crate) queue: String,
    /// The page, from 1 (text, so that a bad one is page 1, not an error).
    #[serde(default)]
    pub(crate) page: String,
}

/// A failure store entry with its envelope decoded once.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) failed: FailedMessage,
    /// The envelope, or why the bytes are not one.
    pub(crate) envelope: Result<Envelope, String>,
}

impl Entry {
    pub(crate) fn new(failed: FailedMessage) -> Entry {
        let envelope = Envelope::decode(&failed.body);
        Entry { failed, envelope }
    }

    /// The wire name, or `(undecodable)`.
    pub(crate) fn name(&self) -> &str {
        self.envelope
            .as_ref()
            .map_or("(undecodable)", |envelope| envelope.name.as_str())
    }

    /// The error to show in a listing: the first failing slot's, else the reason.
    pub(crate) fn first_error(&self) -> &str {
        self.failed
            .failure
            .slots
            .first()
            .map_or(self.failed.failure.reason.as_str(), |slot| {
                slot.error.as_str()
            })
    }
}

impl Search {
    /// Whether any field narrows the search.
    pub(crate) fn is_narrowed(&self) -> bool {
        !(self.message.trim().is_empty()
            && self.slot.trim().is_empty()
            && self.error.trim().is_empty()
            && self.queue.trim().is_empty())
    }

    /// The page asked for, from 1.
    pub(crate) fn page(&self) -> usize {
        self.page.trim().parse().unwrap_or(1).max(1)
    }

    /// Whether `entry` matches every field given (case-insensitive parts; the queue exact).
    pub(crate) fn matches(&self, entry: &Entry) -> bool {
        let has = |haystack: &str, needle: &str| {
            let needle = needle.trim();
            needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
        };
        let failure = &entry.failed.failure;
        let queue = self.queue.trim();
        (queue.is_empty() || entry.failed.queue == queue)
            && has(entry.name(), &self.message)
            && (self.slot.trim().is_empty()
                || failure.slots.iter().any(|s| has(&s.slot, &self.slot)))
            && (self.error.trim().is_empty()
                || has(&failure.reason, &self.error)
                || failure.slots.iter().any(|s| has(&s.error, &self.error)))
    }

    /// The query string of this search (without the page), for links.
    pub(crate) fn query(&self) -> String {
        let mut parts = Vec::new();
        for (key, value) in [
            ("message", &self.message),
            ("slot", &self.slot),
            ("error", &self.error),
            ("queue", &self.queue),
        ] {
            if !value.trim().is_empty() {
                parts.push(format!("{key}={}", encode(value.trim())));
            }
        }
        parts.join("&")
    }
}

/// `text` percent-encoded for a query string value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// One page of the entries that match, out of how many matched.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) entries: Vec<Entry>,
    pub(crate) matched: usize,
    pub(crate) page: usize,
    pub(crate) pages: usize,
    /// The store held more than [`SCAN_LIMIT`]: the newest were not searched.
    pub(crate) truncated: bool,
}

/// The entries of `listed` that match `search`, newest first, cut to its page.
pub(crate) fn find(listed: Vec<FailedMessage>, search: &Search) -> Found {
    let truncated = listed.len() >= SCAN_LIMIT;
    let mut matching: Vec<Entry> = listed
        .into_iter()
        .map(Entry::new)
        .filter(|entry| search.matches(entry))
        .collect();
    matching.reverse();
    let matched = matching.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page = search.page().min(pages);
    let entries = matching
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    Found {
        entries,
        matched,
        page,
        pages,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Failure, PutOptions, SlotFailure};
    use std::time::SystemTime;

    fn entry(id: u64, name: &str, slot: &str, error: &str) -> FailedMessage {
        let body = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        let envelope = Envelope::new(name, body);
        let failure = Failure::new(
            vec![SlotFailure {
                slot: slot.into(),
                error: error.into(),
            }],
            "failed".into(),
            3,
            SystemTime::now(),
        );
        FailedMessage::new(id, "q", envelope.encode(), PutOptions::default(), failure)
    }

    #[test]
    fn filters_by_each_field_and_pages_newest_first() {
        let mut listed = Vec::new();
        for id in 1..=120 {
            let name = if id % 2 == 0 { "SendMail" } else { "Index" };
            listed.push(entry(id, name, "app::mail::send", &format!("smtp {id}")));
        }
        let search = Search {
            message: "sendmail".into(),
            ..Search::default()
        };
        let found = find(listed.clone(), &search);
        assert_eq!(found.matched, 60);
        assert_eq!(found.pages, 2);
        assert_eq!(found.entries[0].failed.id, 120);
        let search = Search {
            error: "SMTP 7".into(),
            slot: "mail::".into(),
            page: "x".into(),
            ..Search::default()
        };
        let found = find(listed, &search);
        let ids: Vec<u64> = found.entries.iter().map(|e| e.failed.id).collect();
        assert_eq!(ids, [79, 78, 77, 76, 75, 74, 73, 72, 71, 70, 7]);
        assert_eq!(search.query(), "slot=mail%3A%3A&error=SMTP%207");
    }
}
