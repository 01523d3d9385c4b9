//! The failure store: a tube `mq-failed.QUEUE` per queue of buried jobs whose bodies are
//! failure records (see [`guide::beanstalkd`](crate::guide::beanstalkd)), and the operations on it.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::connection::Connection;
use super::proto::{check_tube_name, parse_yaml_map, Command, Response};
use super::{unexpected, Inner, FAILED_PREFIX, MAX_CHUNK};
use crate::transport::failures::record::Record;
use crate::transport::{FailedMessage, Failure, FailureStore, Job, PutOptions};
use crate::{Error, Result};

/// Priority of failure records: all equal, so that they are reserved oldest first.
const FAILED_PRIORITY: u32 = 0;

fn failed_tube(queue: &str) -> Result<String> {
    let tube = format!("{FAILED_PREFIX}{queue}");
    check_tube_name(&tube).map_err(|reason| {
        Error::Config(format!(
            "queue `{queue}` has no valid failure tube `{tube}`: {reason}"
        ))
    })?;
    Ok(tube)
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("… (truncated)");
    }
}

impl Inner {
    /// The record of a failed message, its texts cut short if it would be over
    /// max-job-size otherwise.
    fn record_bytes(
        &self,
        queue: &str,
        body: &[u8],
        options: PutOptions,
        failure: Failure,
    ) -> Vec<u8> {
        let mut record = Record::new(queue, body, options, failure);
        let bytes = record.encode();
        if bytes.len() <= self.max_job_size {
            return bytes;
        }
        truncate(&mut record.failure.reason, 1000);
        for slot in &mut record.failure.slots {
            truncate(&mut slot.error, 1000);
        }
        record.encode()
    }

    /// Puts a failure record and buries it; returns its id.
    async fn put_record(&self, tube: &str, record: &[u8]) -> Result<u64> {
        let producer = self.producer().await?;
        let put = Command::Put {
            priority: FAILED_PRIORITY,
            delay: 0,
            ttr: 60,
            body: record,
        };
        let id = match producer.send_using(tube, &[put]).await?.pop() {
            Some(Response::Inserted(id)) => id,
            Some(Response::JobTooBig) => {
                return Err(Error::TooLarge {
                    name: "(failure record)".into(),
                    size: record.len(),
                    limit: self.max_job_size,
                })
            }
            Some(other) => return Err(unexpected("put", &other)),
            None => return Err(unexpected("put", &Response::NotFound)),
        };
        // Ready until buried: a listing that reserves it first buries it itself.
        let bury = Command::Bury {
            id,
            priority: FAILED_PRIORITY,
        };
        let replies = producer.send(&[Command::ReserveJob(id), bury]).await?;
        if let [Response::Reserved { .. }, reply] = &replies[..] {
            if *reply != Response::Buried {
                return Err(unexpected("bury", reply));
            }
        }
        Ok(id)
    }

    pub(super) async fn fail(
        &self,
        job: &Job,
        body: &[u8],
        options: PutOptions,
        failure: Failure,
    ) -> Result<()> {
        self.holder(job)?;
        let tube = failed_tube(&job.queue)?;
        let bytes = self.record_bytes(&job.queue, body, options, failure);
        if bytes.len() > self.max_job_size {
            // Keep the item where it is, buried, rather than lose it.
            let bury = Command::Bury {
                id: job.id,
                priority: options.priority,
            };
            let reply = self.on_reserved(job, bury, false).await?;
            if reply != Response::Buried {
                return Err(unexpected("bury", &reply));
            }
            return Err(Error::Protocol {
                backend: "beanstalkd",
                detail: format!(
                    "the failure record of item {} ({} bytes) is over max-job-size ({}); the \
                     item was buried in tube `{}` instead (kick it to run it again)",
                    job.id,
                    bytes.len(),
                    self.max_job_size,
                    job.queue
                ),
            });
        }
        self.put_record(&tube, &bytes).await?;
        match self
            .on_reserved(job, Command::Delete(job.id), false)
            .await?
        {
            Response::Deleted => Ok(()),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// Reads up to `max` records of one failure tube, oldest first, on `scan` (a connection
    /// of its own): kicks buried records to ready, reserves them, buries them again.
    async fn scan(
        &self,
        scan: &Connection,
        tube: &str,
        watching: &mut String,
        max: usize,
    ) -> Result<Vec<FailedMessage>> {
        let mut commands = vec![Command::Kick(u32::MAX), Command::Watch(tube)];
        if watching != tube {
            commands.push(Command::Ignore(watching));
        }
        let replies = scan.send_using(tube, &commands).await?;
        for (command, reply) in commands.iter().zip(&replies) {
            if !matches!(reply, Response::KickedCount(_) | Response::Watching(_)) {
                return Err(unexpected(&format!("{command:?}"), reply));
            }
        }
        *watching = tube.to_owned();
        let mut found = Vec::new();
        let mut chunk = 8;
        while found.len() < max {
            chunk = chunk.min(max - found.len()).min(MAX_CHUNK);
            let replies = scan
                .send(&vec![Command::ReserveWithTimeout(0); chunk])
                .await?;
            let before = found.len();
            for reply in replies {
                if let Response::Reserved { id, body } = reply {
                    found.push((id, body));
                }
            }
            if found.len() - before < chunk {
                break;
            }
            chunk *= 2;
        }
        let buries: Vec<Command<'_>> = found
            .iter()
            .map(|(id, _)| Command::Bury {
                id: *id,
                priority: FAILED_PRIORITY,
            })
            .collect();
        if !buries.is_empty() {
            for reply in scan.send(&buries).await? {
                if reply != Response::Buried {
                    return Err(unexpected("bury", &reply));
                }
            }
        }
        Ok(found
            .into_iter()
            .filter_map(|(id, body)| match serde_json::from_slice::<Record>(&body) {
                Ok(record) => Some(record.into_failed(id)),
                Err(error) => {
                    tracing::warn!(item = id, tube, %error, "not an mq failure record; skipped");
                    None
                }
            })
            .collect())
    }

    /// The record of failure entry `id`, if `id` is a job of a failure tube.
    async fn record(&self, id: u64) -> Result<Option<Record>> {
        let producer = self.producer().await?;
        let replies = producer
            .send(&[Command::StatsJob(id), Command::Peek(id)])
            .await?;
        let [stats, peek] = &replies[..] else {
            return Err(unexpected("peek", &Response::NotFound));
        };
        let tube = match stats {
            Response::Ok(body) => parse_yaml_map(body).ok().and_then(|mut s| s.remove("tube")),
            Response::NotFound => return Ok(None),
            other => return Err(unexpected("stats-job", other)),
        };
        if !tube.is_some_and(|tube| tube.starts_with(FAILED_PREFIX)) {
            return Ok(None);
        }
        match peek {
            Response::Found { body, .. } => Ok(serde_json::from_slice(body).ok()),
            Response::NotFound => Ok(None),
            other => Err(unexpected("peek", other)),
        }
    }

    async fn delete_any(&self, connection: &Connection, id: u64) -> Result<bool> {
        match connection.call(Command::Delete(id)).await? {
            Response::Deleted => Ok(true),
            Response::NotFound => Ok(false),
            other => Err(unexpected("delete", &other)),
        }
    }

    /// Costs a connection of its own and, per failure tube read, a `kick`, up to `max`
    /// reserves and as many buries (pipelined); without `queue`, a `list-tubes` too.
    async fn failed_list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        let scan = self.open().await?;
        let tubes = match queue {
            Some(queue) => vec![failed_tube(queue)?],
            None => self
                .list_tubes(&scan)
                .await?
                .into_iter()
                .filter(|tube| tube.starts_with(FAILED_PREFIX))
                .collect(),
        };
        let mut watching = "default".to_owned();
        let mut all = Vec::new();
        for tube in tubes {
            all.extend(self.scan(&scan, &tube, &mut watching, max).await?);
        }
        all.sort_by_key(|failed| failed.id);
        all.truncate(max);
        Ok(all)
    }

    async fn failed_show(&self, id: u64) -> Result<Option<FailedMessage>> {
        Ok(self.record(id).await?.map(|record| record.into_failed(id)))
    }

    async fn failed_retry(&self, id: u64) -> Result<u64> {
        let record = self.record(id).await?.ok_or(Error::NotFound(id))?;
        let options = PutOptions {
            delay: Duration::ZERO,
            ..record.options
        };
        let new_id = self.put(&record.queue, &record.body(), options).await?;
        let producer = self.producer().await?;
        if !self.delete_any(&producer, id).await? {
            tracing::warn!(
                item = id,
                "failure entry requeued but not removed (a listing holds it): it stays in the store"
            );
        }
        Ok(new_id)
    }

    async fn failed_remove(&self, id: u64) -> Result<bool> {
        if self.record(id).await?.is_none() {
            return Ok(false);
        }
        let producer = self.producer().await?;
        self.delete_any(&producer, id).await
    }
}

/// The failure store of a beanstalkd: its buried `mq-failed.QUEUE` tubes.
pub(super) struct Failures<'a>(pub(super) &'a Inner);

#[async_trait]
impl FailureStore for Failures<'_> {
    async fn store(
        &self,
        queue: &str,
        body: Bytes,
        options: PutOptions,
        failure: Failure,
    ) -> Result<u64> {
        let tube = failed_tube(queue)?;
        let bytes = self.0.record_bytes(queue, &body, options, failure);
        self.0.put_record(&tube, &bytes).await
    }

    async fn list(&self, queue: Option<&str>, max: usize) -> Result<Vec<FailedMessage>> {
        self.0.failed_list(queue, max).await
    }

    async fn show(&self, id: u64) -> Result<Option<FailedMessage>> {
        self.0.failed_show(id).await
    }

    async fn retry(&self, id: u64) -> Result<u64> {
        self.0.failed_retry(id).await
    }

    async fn remove(&self, id: u64) -> Result<bool> {
        self.0.failed_remove(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        let mut text = "é".repeat(10);
        truncate(&mut text, 5);
        assert!(text.starts_with("éé"));
        assert!(text.ends_with("(truncated)"));
    }
}
