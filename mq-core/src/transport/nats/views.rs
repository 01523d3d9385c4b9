//! What an operator sees and does by hand: counts per queue, the server's figures, the
//! next ready item of a queue, and the purge of a queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::StreamExt;

use super::layout::{self, Slot};
use super::{account, failed, nats_by, Shared};
use crate::transport::{Job, QueueStats};
use crate::Result;

/// The counts of the queue whose encoded name is `token`, made on first use.
fn entry<'a>(out: &'a mut BTreeMap<String, QueueStats>, token: &str) -> Option<&'a mut QueueStats> {
    let queue = layout::decode(token)?;
    Some(out.entry(queue.clone()).or_insert_with(|| QueueStats {
        queue,
        ..QueueStats::default()
    }))
}

impl Shared {
    /// Items per subject, with what each subject's consumer has not delivered yet and has
    /// delivered but not seen acked: `reserved` is the latter; an item counted by neither is
    /// one a restarted server brought back below the ack floor (see `residue`), not counted.
    pub(super) async fn stats(&self) -> Result<Vec<QueueStats>> {
        let stream = self.stream().await?;
        let mut counts: HashMap<Slot, u64> = HashMap::new();
        for (subject, count) in self.subject_counts(stream, layout::SUBJECTS).await? {
            if let Some(slot) = layout::parse_subject(&subject) {
                *counts.entry(slot).or_default() += count;
            }
        }
        let mut out = BTreeMap::new();
        // (not yet delivered, delivered and not acked) per consumer.
        let mut consumers: HashMap<Slot, (u64, u64)> = HashMap::new();
        let mut list = stream.consumers();
        while let Some(info) = list.next().await {
            let info = info.map_err(|error| nats_by("consumer list", error))?;
            let Some(slot) = layout::parse_consumer(&info.name) else {
                continue;
            };
            let acking = info.num_ack_pending as u64;
            if let Slot::Band(token, _) = &slot {
                if let Some(s) = entry(&mut out, token) {
                    s.reserved += acking;
                }
            }
            consumers.insert(slot, (info.num_pending, acking));
        }
        for (slot, count) in counts {
            let consumer = consumers.get(&slot).copied();
            match slot {
                Slot::Band(token, _) => {
                    if let Some(s) = entry(&mut out, &token) {
                        s.ready += match consumer {
                            Some((pending, acking)) => count.saturating_sub(acking).min(pending),
                            None => count,
                        };
                    }
                }
                Slot::Delayed(token) => {
                    if let Some(s) = entry(&mut out, &token) {
                        s.delayed += match consumer {
                            Some((pending, acking)) => count.min(pending.saturating_add(acking)),
                            None => count,
                        };
                    }
                }
            }
        }
        let failed = self.failed_stream().await?;
        for (subject, count) in self.subject_counts(failed, layout::FAILED_SUBJECTS).await? {
            if let Some(token) = subject.strip_prefix("mq_failed.") {
                if let Some(s) = entry(&mut out, token) {
                    s.failed += count;
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// The server's name, version and cluster, and the account's JetStream figures.
    pub(super) async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        let info = self.client.server_info();
        let account = account::figures(&self.js).await?;
        let mut figures = vec![
            ("server_name".to_owned(), info.server_name),
            ("version".to_owned(), info.version),
            ("cluster".to_owned(), info.cluster.unwrap_or_default()),
        ];
        for (name, value) in [
            ("jetstream_streams", account.streams),
            ("jetstream_consumers", account.consumers),
            ("jetstream_storage_bytes", account.storage),
            ("jetstream_memory_bytes", account.memory),
        ] {
            if let Some(value) = value {
                figures.push((name.to_owned(), value.to_string()));
            }
        }
        Ok(figures)
    }

    /// The first item of the lowest non-empty band of `queue` (encoded: `token`) that its
    /// consumer has not handed out yet.
    pub(super) async fn peek(&self, queue: &str, token: &str) -> Result<Option<Job>> {
        let stream = self.stream().await?;
        let mut bands = BTreeSet::new();
        for (subject, count) in self
            .subject_counts(stream, &format!("mq.{token}.p.*"))
            .await?
        {
            if let Some(Slot::Band(_, band)) = layout::parse_subject(&subject) {
                if count > 0 {
                    bands.insert(band);
                }
            }
        }
        for band in bands {
            let name = layout::band_consumer(token, band);
            let subject = layout::band_subject(token, band);
            // The next item this band's consumer has not handed out yet.
            let from = match stream.consumer_info(&name).await {
                Ok(info) => info.delivered.stream_sequence + 1,
                Err(_) => 1,
            };
            let next = stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject)
                .send()
                .await;
            match next {
                Ok(message) => {
                    return Ok(Some(Job::new(message.sequence, queue, message.payload, 0)))
                }
                Err(error) if failed::no_message(&error) => {}
                Err(error) => return Err(nats_by("peek", error)),
            }
        }
        Ok(None)
    }

    /// Up to `limit` items of `queue` (encoded: `token`), ready or delayed, handed out or not,
    /// from stream sequence `after + 1` on: one direct read by sequence and subject each,
    /// which consumes nothing.
    pub(super) async fn browse(
        &self,
        queue: &str,
        token: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Job>> {
        let stream = self.stream().await?;
        let subject = format!("mq.{token}.>");
        let mut jobs = Vec::new();
        let mut from = after.saturating_add(1);
        while jobs.len() < limit {
            let next = stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match next {
                Ok(message) => {
                    from = message.sequence.saturating_add(1);
                    jobs.push(Job::new(message.sequence, queue, message.payload, 0));
                }
                Err(error) if failed::no_message(&error) => break,
                Err(error) => return Err(nats_by("browse", error)),
            }
        }
        Ok(jobs)
    }

    /// Purges every item of the queue whose encoded name is `token`.
    pub(super) async fn flush(&self, token: &str) -> Result<u64> {
        let stream = self.stream().await?;
        let purged = stream
            .purge()
            .filter(format!("mq.{token}.>"))
            .await
            .map_err(|error| nats_by("purge", error))?;
        Ok(purged.purged)
    }
}
