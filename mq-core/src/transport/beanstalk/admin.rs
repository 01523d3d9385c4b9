//! Administration: queue and server statistics, listing tubes, peeking, browsing (every
//! job of a tube, by `stats-job` and `peek` over the job ids) and flushing a queue.

use std::collections::BTreeMap;

use super::connection::Connection;
use super::proto::{parse_yaml_list, parse_yaml_map, Command, Response};
use super::{check_queue, unexpected, Inner, FAILED_PREFIX};
use crate::transport::{Job, QueueStats};
use crate::{Error, Result};

/// The keys of beanstalkd's `stats` reply that
/// [`Transport::server_stats`](crate::transport::Transport::server_stats) reports, in this
/// order (see beanstalkd's `protocol.txt` for their meaning).
const SERVER_FIGURES: &[&str] = &[
    "version",
    "hostname",
    "pid",
    "uptime",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "current-tubes",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "total-jobs",
    "job-timeouts",
    "total-connections",
    "max-job-size",
    "binlog-current-index",
    "binlog-max-size",
];

/// How many job ids one pipelined round of [`Inner::browse`] asks about.
const BROWSE_WINDOW: u64 = 1000;
/// Past `total-jobs`, how many windows in a row without a job end [`Inner::browse`].
const EMPTY_WINDOWS: u32 = 10;

impl Inner {
    pub(super) async fn list_tubes(&self, connection: &Connection) -> Result<Vec<String>> {
        match connection.call(Command::ListTubes).await? {
            Response::Ok(body) => parse_yaml_list(&body).map_err(|e| Error::Protocol {
                backend: "beanstalkd",
                detail: format!("`list-tubes`: {e}"),
            }),
            other => Err(unexpected("list-tubes", &other)),
        }
    }

    /// Counts of one tube from `stats-tube`: ready, reserved, delayed, buried.
    fn counts(reply: &Response) -> Option<[u64; 4]> {
        let Response::Ok(body) = reply else {
            return None;
        };
        let stats = parse_yaml_map(body).ok()?;
        let get = |key: &str| stats.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some([
            get("current-jobs-ready"),
            get("current-jobs-reserved"),
            get("current-jobs-delayed"),
            get("current-jobs-buried"),
        ])
    }

    pub(super) async fn stats(&self) -> Result<Vec<QueueStats>> {
        let producer = self.producer().await?;
        let tubes = self.list_tubes(&producer).await?;
        let commands: Vec<Command<'_>> = tubes.iter().map(|t| Command::StatsTube(t)).collect();
        let replies = producer.send(&commands).await?;
        let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
        for (tube, reply) in tubes.iter().zip(&replies) {
            // A tube that vanished meanwhile answers NOT_FOUND: skip it.
            let Some([ready, reserved, delayed, buried]) = Inner::counts(reply) else {
                continue;
            };
            let (queue, failed) = match tube.strip_prefix(FAILED_PREFIX) {
                Some(queue) => (queue, true),
                None => (tube.as_str(), false),
            };
            if !failed && tube == "default" && ready + reserved + delayed + buried == 0 {
                continue;
            }
            let entry = out.entry(queue.to_owned()).or_insert_with(|| QueueStats {
                queue: queue.to_owned(),
                ..QueueStats::default()
            });
            if failed {
                entry.failed += ready + reserved + delayed + buried;
            } else {
                entry.ready += ready;
                entry.reserved += reserved;
                entry.delayed += delayed;
            }
        }
        Ok(out.into_values().collect())
    }

    pub(super) async fn server_stats(&self) -> Result<Vec<(String, String)>> {
        let producer = self.producer().await?;
        let mut stats = match producer.call(Command::Stats).await? {
            Response::Ok(body) => parse_yaml_map(&body).map_err(|e| Error::Protocol {
                backend: "beanstalkd",
                detail: format!("`stats`: {e}"),
            })?,
            other => return Err(unexpected("stats", &other)),
        };
        Ok(SERVER_FIGURES
            .iter()
            .filter_map(|key| Some(((*key).to_owned(), stats.remove(*key)?)))
            .collect())
    }

    pub(super) async fn peek(&self, queue: &str) -> Result<Option<Job>> {
        check_queue(queue)?;
        let producer = self.producer().await?;
        match producer
            .send_using(queue, &[Command::PeekReady])
            .await?
            .pop()
        {
            Some(Response::Found { id, body }) => Ok(Some(Job::new(id, queue, body, 0))),
            Some(Response::NotFound) => Ok(None),
            Some(other) => Err(unexpected("peek-ready", &other)),
            None => Err(unexpected("peek-ready", &Response::NotFound)),
        }
    }

    /// beanstalkd cannot list a tube, but ids are sequential from 1: asks `stats-job` of
    /// every id above `after` up to `total-jobs`, in pipelined windows of [`BROWSE_WINDOW`],
    /// then `peek`s the jobs of `queue`. A server restarted from its binlog counts
    /// `total-jobs` anew while its ids go on, so past `total-jobs` the scan goes on until
    /// [`EMPTY_WINDOWS`] windows in a row find no job of any tube.
    pub(super) async fn browse(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<Job>> {
        check_queue(queue)?;
        let producer = self.producer().await?;
        let total = match producer.call(Command::Stats).await? {
            Response::Ok(body) => parse_yaml_map(&body)
                .ok()
                .and_then(|stats| stats.get("total-jobs")?.parse::<u64>().ok())
                .unwrap_or(0),
            other => return Err(unexpected("stats", &other)),
        };
        let mut jobs = Vec::new();
        let mut next = after.saturating_add(1);
        let mut empty_windows = 0;
        while jobs.len() < limit {
            let ids: Vec<u64> = (next..next.saturating_add(BROWSE_WINDOW)).collect();
            next = next.saturating_add(BROWSE_WINDOW);
            let commands: Vec<Command<'_>> = ids.iter().map(|&id| Command::StatsJob(id)).collect();
            let replies = producer.send(&commands).await?;
            let mut found_any = false;
            let mut mine = Vec::new();
            for (&id, reply) in ids.iter().zip(&replies) {
                let Response::Ok(body) = reply else { continue };
                found_any = true;
                let Ok(stats) = parse_yaml_map(body) else {
                    continue;
                };
                if stats.get("tube").map(String::as_str) == Some(queue) {
                    let reserves = stats.get("reserves").and_then(|r| r.parse().ok());
                    mine.push((id, reserves.unwrap_or(0)));
                }
            }
            let peeks: Vec<Command<'_>> = mine.iter().map(|&(id, _)| Command::Peek(id)).collect();
            let bodies = producer.send(&peeks).await?;
            for ((_, reserves), reply) in mine.iter().zip(bodies) {
                if let Response::Found { id, body } = reply {
                    jobs.push(Job::new(id, queue, body, *reserves));
                }
            }
            empty_windows = if found_any { 0 } else { empty_windows + 1 };
            let past_total = ids.last().is_some_and(|&last| last >= total);
            if past_total && empty_windows >= EMPTY_WINDOWS {
                break;
            }
        }
        jobs.truncate(limit);
        Ok(jobs)
    }

    pub(super) async fn flush(&self, queue: &str) -> Result<u64> {
        check_queue(queue)?;
        let producer = self.producer().await?;
        let reply = producer.call(Command::StatsTube(queue)).await?;
        let Some([ready, _, delayed, _]) = Inner::counts(&reply) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for (peek, count) in [(Command::PeekReady, ready), (Command::PeekDelayed, delayed)] {
            let mut next = producer.send_using(queue, &[peek]).await?.pop();
            for _ in 0..count {
                let Some(Response::Found { id, .. }) = next else {
                    break;
                };
                let replies = producer
                    .send_using(queue, &[Command::Delete(id), peek])
                    .await?;
                if let [done, following] = &replies[..] {
                    deleted += u64::from(*done == Response::Deleted);
                    next = Some(following.clone());
                } else {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}
