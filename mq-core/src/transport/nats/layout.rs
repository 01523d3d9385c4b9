//! Names and settings of the streams, subjects and consumers mq uses on JetStream.
//!
//! One work-queue stream `MQ` holds every queue (`mq.<queue>.p.<band>` for ready items,
//! `mq.<queue>.delayed` for items waiting for their delay); one limits stream `MQ_FAILED` holds the
//! failure store (`mq_failed.<queue>`). Each (queue, priority band) has a durable pull consumer
//! named `<queue>_p<band>`, and each queue one `<queue>_delayed`. Stream sequences are unique over
//! all queues, so they serve as item ids. [`guide::nats`](crate::guide::nats) says why.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use super::{nats, nats_by};
use crate::{Error, Result};

/// The work-queue stream of every queue.
pub(super) const STREAM: &str = "MQ";
/// Its subjects.
pub(super) const SUBJECTS: &str = "mq.>";
/// The failure store.
pub(super) const FAILED_STREAM: &str = "MQ_FAILED";
/// Its subjects.
pub(super) const FAILED_SUBJECTS: &str = "mq_failed.>";

/// Header: the item's TTR in milliseconds.
pub(super) const TTR: &str = "Mq-Ttr";
/// Header: the item's priority.
pub(super) const PRIORITY: &str = "Mq-Priority";
/// Header: a delayed item's delay in milliseconds, counted from its publication.
pub(super) const DELAY: &str = "Mq-Delay";
/// Header (failure store): the `PutOptions` as JSON.
pub(super) const OPTIONS: &str = "Mq-Options";
/// Header (failure store): the `Failure` as JSON.
pub(super) const FAILURE: &str = "Mq-Failure";

/// The longest consumer name nats-server accepts.
pub(super) const MAX_CONSUMER_NAME: usize = 255;
/// What a band consumer's name adds to the queue's token: `_p` and ten digits.
const BAND_SUFFIX: usize = 12;
/// The longest encoded queue name NATS can serve: its band consumers' names must fit.
pub(super) const MAX_TOKEN: usize = MAX_CONSUMER_NAME - BAND_SUFFIX;

/// A queue name as a subject token and consumer-name part: `[A-Za-z0-9_]` as is, every
/// other byte as `-XX` (hex), so that any queue name maps to a distinct valid token made of
/// the characters every NATS tool accepts in names (`order-mails` is `order-2Dmails`).
///
/// A name whose token is longer than [`MAX_TOKEN`] is refused ([`Error::Config`]): no
/// consumer could be made for it, so it could be put but never consumed.
pub(super) fn encode(queue: &str) -> Result<String> {
    if queue.is_empty() {
        return Err(Error::Config("a queue name must not be empty".into()));
    }
    let mut out = String::with_capacity(queue.len());
    for byte in queue.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("-{byte:02X}"));
        }
    }
    if out.len() > MAX_TOKEN {
        let mut shown: String = queue.chars().take(40).collect();
        if shown.len() < queue.len() {
            shown.push_str("...");
        }
        return Err(Error::Config(format!(
            "queue `{shown}` ({} bytes) is {} characters once escaped for NATS, over the \
             {MAX_TOKEN} it can serve: its consumer names (`<queue>_p<band>`) must fit NATS's \
             limit of {MAX_CONSUMER_NAME}; use a shorter name (every byte other than \
             A-Z, a-z, 0-9 and `_` takes 3)",
            queue.len(),
            out.len()
        )));
    }
    Ok(out)
}

/// The inverse of [`encode`]; `None` for a token mq did not write.
pub(super) fn decode(token: &str) -> Option<String> {
    crate::transport::escape::unescape(token, b'-')
}

/// The band of a priority: priorities below 8 are bands of their own; above, a band is the
/// priority with all but its three highest bits cleared (so a band spans at most a quarter
/// of its value: 1024..1279, 1280..1535, ...). Lower bands are reserved first.
pub(super) fn band(priority: u32) -> u32 {
    if priority < 8 {
        return priority;
    }
    let shift = 32 - priority.leading_zeros() - 3;
    (priority >> shift) << shift
}

/// `mq.<queue>.p.<band>`, the band zero-padded to ten digits.
pub(super) fn band_subject(queue: &str, band: u32) -> String {
    format!("mq.{queue}.p.{band:010}")
}

/// `mq.<queue>.delayed`.
pub(super) fn delayed_subject(queue: &str) -> String {
    format!("mq.{queue}.delayed")
}

/// `mq_failed.<queue>`.
pub(super) fn failed_subject(queue: &str) -> String {
    format!("mq_failed.{queue}")
}

/// What a subject of the `MQ` stream (or its consumer) serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    /// Ready items of a band.
    Band(String, u32),
    /// Delayed items.
    Delayed(String),
}

/// Parses a subject of the `MQ` stream (queue still encoded).
pub(super) fn parse_subject(subject: &str) -> Option<Slot> {
    let rest = subject.strip_prefix("mq.")?;
    let (queue, tail) = rest.split_once('.')?;
    if tail == "delayed" {
        return Some(Slot::Delayed(queue.to_owned()));
    }
    let band = tail.strip_prefix("p.")?.parse().ok()?;
    Some(Slot::Band(queue.to_owned(), band))
}

/// The consumer of a band: `<queue>_p<band>`.
pub(super) fn band_consumer(queue: &str, band: u32) -> String {
    format!("{queue}_p{band:010}")
}

/// The consumer of the delayed items of a queue: `<queue>_delayed`.
pub(super) fn delayed_consumer(queue: &str) -> String {
    format!("{queue}_delayed")
}

/// What a consumer mq made serves (queue still encoded), `None` for other consumers.
pub(super) fn parse_consumer(name: &str) -> Option<Slot> {
    if let Some((queue, band)) = name.rsplit_once("_p") {
        if band.len() == 10 && band.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Slot::Band(queue.to_owned(), band.parse().ok()?));
        }
    }
    let queue = name.strip_suffix("_delayed")?;
    Some(Slot::Delayed(queue.to_owned()))
}

/// How the streams are created.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// Replicas of both streams; `None`: 1 on creation, and any existing count accepted.
    pub(super) replicas: Option<usize>,
    /// AckWait of every consumer: how soon a dead worker's items come back.
    pub(super) ack_wait: Duration,
}

/// The stream `name`, created with `want` when missing; an existing stream whose settings
/// differ from what mq needs is an error: mq never changes a stream.
pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    want: stream::Config,
    replicas_given: bool,
) -> Result<stream::Stream> {
    for _ in 0..3 {
        match js.get_stream(&want.name).await {
            Ok(stream) => {
                check_stream(&stream.cached_info().config, &want, replicas_given)?;
                return Ok(stream);
            }
            Err(error) if stream_missing(&error) => {}
            Err(error) => return Err(nats(format!("stream `{}`: {error}", want.name))),
        }
        match js.create_stream(want.clone()).await {
            Ok(stream) => return Ok(stream),
            // Another process created it between our look-up and our create: look again.
            Err(error) if error.to_string().contains("already in use") => continue,
            Err(error) => {
                return Err(nats(format!(
                    "cannot create stream `{}`: {error}",
                    want.name
                )))
            }
        }
    }
    Err(nats(format!(
        "stream `{}` keeps changing while mq creates it",
        want.name
    )))
}

fn stream_missing(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(error)
            if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn check_stream(have: &stream::Config, want: &stream::Config, replicas_given: bool) -> Result<()> {
    let mut problems = Vec::new();
    if have.retention != want.retention {
        problems.push(format!(
            "retention {:?} (mq needs {:?})",
            have.retention, want.retention
        ));
    }
    if have.storage != want.storage {
        problems.push(format!(
            "storage {:?} (mq needs {:?})",
            have.storage, want.storage
        ));
    }
    if have.subjects != want.subjects {
        problems.push(format!(
            "subjects {:?} (mq needs {:?})",
            have.subjects, want.subjects
        ));
    }
    if replicas_given && have.num_replicas != want.num_replicas {
        problems.push(format!(
            "{} replicas (the URL asks for {})",
            have.num_replicas, want.num_replicas
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(nats(format!(
        "stream `{}` exists with settings mq cannot use: {}; mq never changes an existing \
         stream: delete or edit it yourself (`nats stream info {}`), or point mq at another \
         server",
        want.name,
        problems.join(", "),
        want.name
    )))
}

/// The configuration of the work-queue stream.
pub(super) fn work_stream(settings: &Settings) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("mq: every queue, one subject per priority band".to_owned()),
        subjects: vec![SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas.unwrap_or(1),
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// The configuration of the failure store.
pub(super) fn failed_stream(settings: &Settings) -> stream::Config {
    stream::Config {
        name: FAILED_STREAM.to_owned(),
        description: Some("mq: the failure store".to_owned()),
        subjects: vec![FAILED_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas.unwrap_or(1),
        ..Default::default()
    }
}

/// The durable pull consumer `name` over `subject`, created on first use.
pub(super) async fn ensure_consumer(
    stream: &stream::Stream,
    name: &str,
    subject: &str,
    settings: &Settings,
) -> Result<consumer::PullConsumer> {
    let want = consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: subject.to_owned(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: -1,
        max_ack_pending: 100_000,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    };
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(name, want)
        .await
        .map_err(|error| nats_by(format!("consumer `{name}` of stream `{STREAM}`"), error))?;
    let have = &consumer.cached_info().config;
    if have.filter_subject != subject || have.ack_policy != consumer::AckPolicy::Explicit {
        return Err(nats(format!(
            "consumer `{name}` of stream `{STREAM}` exists with filter `{}` and ack policy \
             {:?}; mq needs `{subject}` and explicit acks and never changes a consumer: \
             delete it (`nats consumer rm {STREAM} {name}`)",
            have.filter_subject, have.ack_policy
        )));
    }
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for queue in ["emails", "a.b c", "ü>*", "x_p0000000001", "%", "a-b", "-2D"] {
            let token = encode(queue).unwrap();
            assert!(!token.contains(['.', '*', '>', ' ']));
            assert_eq!(decode(&token).as_deref(), Some(queue));
        }
        assert!(encode("").is_err());
    }

    #[test]
    fn names_nats_cannot_serve_are_refused() {
        let longest = "q".repeat(MAX_TOKEN);
        assert_eq!(
            band_consumer(&encode(&longest).unwrap(), u32::MAX).len(),
            255
        );
        for queue in ["q".repeat(MAX_TOKEN + 1), "ü".repeat(41), "-".repeat(82)] {
            let error = encode(&queue).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{error:?}");
            assert!(error.to_string().contains("243"), "{error}");
        }
        assert!(encode(&"-".repeat(81)).is_ok());
    }

    #[test]
    fn bands_keep_order() {
        assert_eq!(band(1), 1);
        assert_eq!(band(5), 5);
        assert_eq!(band(1024), 1024);
        assert_eq!(band(1279), 1024);
        assert_eq!(band(1280), 1280);
        let mut last = 0;
        for p in (0..100_000u32).chain([u32::MAX - 1, u32::MAX]) {
            let b = band(p);
            assert!(b <= p && b >= last, "{p} -> {b}");
            last = b;
        }
    }

    #[test]
    fn subjects_parse() {
        assert_eq!(
            parse_subject(&band_subject("q", 1024)),
            Some(Slot::Band("q".into(), 1024))
        );
        assert_eq!(
            parse_subject(&delayed_subject("q")),
            Some(Slot::Delayed("q".into()))
        );
        assert_eq!(
            parse_consumer(&band_consumer("a_p1", 7)),
            Some(Slot::Band("a_p1".into(), 7))
        );
        assert_eq!(
            parse_consumer(&delayed_consumer("a_p0000000001")),
            Some(Slot::Delayed("a_p0000000001".into()))
        );
        assert_eq!(parse_consumer("someone_else"), None);
    }
}
