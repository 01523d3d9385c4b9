//! The failure store: the limits stream `MQ_FAILED`, one subject per queue
//! (`mq_failed.<queue>`); an entry's id is its stream sequence. The body is the envelope to
//! run again; headers carry the put options and the failure, as JSON.

use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;

use super::{layout, nats, nats_by, Shared};
use crate::transport::{FailedMessage, Failure, FailureStore, PutOptions};
use crate::{Error, Result};

/// Whether a message look-up failed only because there is no such message.
pub(super) fn no_message(error: &jetstream::stream::RawMessageError) -> bool {
    match error.kind() {
        jetstream::stream::RawMessageErrorKind::NoMessageFound => true,
        jetstream::stream::RawMessageErrorKind::JetStream(error) => {
            error.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| nats_by("encode failure entry", error))
}

/// Adds an entry; waits until the stream stored it.
pub(super) async fn store(
    shared: &Shared,
    queue: &str,
    body: Bytes,
    options: PutOptions,
    failure: &Failure,
) -> Result<u64> {
    let token = layout::encode(queue)?;
    shared.failed_stream().await?;
    let mut headers = HeaderMap::new();
    headers.insert(layout::OPTIONS, json(&options)?.as_str());
    headers.insert(layout::FAILURE, json(failure)?.as_str());
    shared
        .publish(layout::failed_subject(&token), headers, body)
        .await
}

fn entry(message: StreamMessage) -> Result<FailedMessage> {
    let id = message.sequence;
    let bad = |what: &str| nats(format!("failure store entry {id}: {what}"));
    let queue = message
        .subject
        .strip_prefix("mq_failed.")
        .and_then(layout::decode)
        .ok_or_else(|| bad("not written by mq (unexpected subject)"))?;
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .ok_or_else(|| bad(&format!("header {name} missing")))
    };
    let options: PutOptions = serde_json::from_str(&header(layout::OPTIONS)?)
        .map_err(|error| bad(&format!("header {}: {error}", layout::OPTIONS)))?;
    let failure: Failure = serde_json::from_str(&header(layout::FAILURE)?)
        .map_err(|error| bad(&format!("header {}: {error}", layout::FAILURE)))?;
    Ok(FailedMessage {
        id,
        queue,
        body: message.payload,
        options,
        failure,
    })
}

/// One entry, `None` if there is none with this id.
pub(super) async fn show(shared: &Shared, id: u64) -> Result<Option<FailedMessage>> {
    let stream = shared.failed_stream().await?;
    match stream.get_raw_message(id).await {
        Ok(message) => entry(message).map(Some),
        Err(error) if no_message(&error) => Ok(None),
        Err(error) => Err(nats_by("failure store", error)),
    }
}

/// Oldest first, at most `max`: one look-up per entry (`next_by_subj`), which an operator's
/// listing can afford.
pub(super) async fn list(
    shared: &Shared,
    queue: Option<&str>,
    max: usize,
) -> Result<Vec<FailedMessage>> {
    let stream = shared.failed_stream().await?;
    let filter = match queue {
        Some(queue) => layout::failed_subject(&layout::encode(queue)?),
        None => layout::FAILED_SUBJECTS.to_owned(),
    };
    let mut out = Vec::new();
    let mut from = 1;
    while out.len() < max {
        let next = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(filter.clone())
            .send()
            .await;
        match next {
            Ok(message) => {
                from = message.sequence + 1;
                out.push(entry(message)?);
            }
            Err(error) if no_message(&error) => break,
            Err(error) => return Err(nats_by("failure store", error)),
        }
    }
    Ok(out)
}

/// Removes an entry; false if there was none.
pub(super) async fn remove(shared: &Shared, id: u64) -> Result<bool> {
    let stream = shared.failed_stream().await?;
    match stream.delete_message(id).await {
        Ok(deleted) => Ok(deleted),
        Err(error) => match error.kind() {
            jetstream::stream::DeleteMessageErrorKind::JetStream(_) => Ok(false),
            _ => Err(nats_by("failure store", error)),
        },
    }
}

/// The failure store of a NATS JetStream: the stream `MQ_FAILED`.
pub(super) struct Failures<'a>(pub(super) &'a Shared);

#[async_trait]
impl FailureStore for Failures<'_> {
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64> {
        let shared = self.0;
        let store = store(shared, queue, body, options, &failure);
        shared.online("failure store", store).await
    }

    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        let shared = self.0;
        shared
            .online("failure store", list(shared, queue, max))
            .await
    }

    async fn show(&self, id: u64) -> Result<Option<FailedMessage>> {
        let shared = self.0;
        shared.online("failure store", show(shared, id)).await
    }

    async fn retry(&self, id: u64) -> Result<u64> {
        let shared = self.0;
        let retry = async {
            let entry = show(shared, id).await?.ok_or(Error::NotFound(id))?;
            let options = entry.options.with_delay(Duration::ZERO);
            let new_id = shared.put(&entry.queue, entry.body, options).await?;
            remove(shared, id).await?;
            Ok(new_id)
        };
        shared.online("failure store", retry).await
    }

    async fn remove(&self, id: u64) -> Result<bool> {
        let shared = self.0;
        shared.online("failure store", remove(shared, id)).await
    }
}
