//! `check`: before a deploy, what of the queued and failed messages this build cannot read,
//! by message name and version, and why.
//!
//! Only the application's build knows its message types, so the check runs in it: as
//! `my-worker check` ([`run_worker`](crate::run_worker)'s command line), or in code with
//! [`check`]. It reads every item of every queue the backend shows ([`Transport::browse`]),
//! and the failure store, and decodes each body as the worker would (through the upcasters
//! of older versions); with signing keys ([`check_signed`], and the worker binary's `check`
//! with `MQ_SIGNING_KEYS`), it also reports what the worker would refuse for its signature.
//! It changes nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::envelope::Envelope;
use crate::registry::Registry;
use crate::signing::{Signatures, Signer, Verifier};
use crate::transport::Transport;
use crate::Result;

/// Items read per call of [`Transport::browse`].
const PAGE: usize = 500;
/// The most failure records read (the store lists without paging).
const MOST_FAILED: usize = 1_000_000;

/// What [`check`] found.
///
/// ```
/// let report = mq::check::Report::default();
/// assert!(report.all_readable());
/// assert_eq!(report.to_string(), "0 messages readable, 0 not readable by this build\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Report {
    /// How many items this build can decode.
    pub readable: u64,
    /// What it cannot, grouped by place, message name, version and reason.
    pub unreadable: Vec<Unreadable>,
}

/// Items of one kind that this build cannot decode.
///
/// ```
/// let item = mq::check::Unreadable {
///     place: "queue orders".into(),
///     name: "OrderPlaced".into(),
///     version: 3,
///     reason: "`OrderPlaced` version 3 was dispatched by a newer build".into(),
///     count: 2,
/// };
/// assert!(item.to_string().starts_with("queue orders: OrderPlaced version 3 (2 items): "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    /// Where they are: `queue NAME` or `failure store (queue NAME)`.
    pub place: String,
    /// The envelope's message name (empty when the item is no envelope).
    pub name: String,
    /// The envelope's `message_version` (0 when the item is no envelope).
    pub version: u32,
    /// Why this build cannot decode them: what a person can act on.
    pub reason: String,
    /// How many.
    pub count: u64,
}

impl Report {
    /// True when this build reads every item: the exit code of `check` is then 0.
    ///
    /// ```
    /// let mut report = mq::check::Report::default();
    /// report.readable = 7;
    /// assert!(report.all_readable());
    /// ```
    pub fn all_readable(&self) -> bool {
        self.unreadable.is_empty()
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        let name = if self.name.is_empty() {
            "(not an mq envelope)"
        } else {
            &self.name
        };
        write!(
            f,
            "{}: {name} version {} ({} item{plural}): {}",
            self.place, self.version, self.count, self.reason
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.unreadable {
            writeln!(f, "{item}")?;
        }
        let count: u64 = self.unreadable.iter().map(|u| u.count).sum();
        writeln!(
            f,
            "{} messages readable, {count} not readable by this build",
            self.readable
        )
    }
}

/// Reads every queued item (ready, delayed, and reserved where the backend shows them) and
/// every failure record of `transport`, and reports what `registry`'s message types cannot
/// decode. Changes nothing.
///
/// # Errors
///
/// The transport's, when a read fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{PutOptions, Transport};
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// struct Ping { n: u64 }
///
/// let transport = mq::transport::connect("memory://check-doc").await?;
/// mq::Bus::new(transport.clone()).dispatch(Ping { n: 1 }).await?;
/// let stranger = br#"{"v":1,"name":"Pong","id":"x","attempt":1,"dispatched_at":"2026-01-01T00:00:00Z","body":{}}"#;
/// transport.put("default", stranger.to_vec().into(), PutOptions::default()).await?;
///
/// let report = mq::check(transport.as_ref(), &mq::Registry::linked()?).await?;
/// assert_eq!(report.readable, 1);
/// assert_eq!(report.unreadable[0].name, "Pong");
/// assert!(report.unreadable[0].reason.starts_with("no message type named `Pong`"));
/// # Ok(()) }
/// ```
pub async fn check(transport: &dyn Transport, registry: &Registry) -> Result<Report> {
    tally(transport, Tally::new(registry, Verifier::default())).await
}

/// [`check`], and what a worker with `signer`'s keys and `policy` would refuse for its
/// signature (before decoding: such an item counts once, for its signature).
///
/// # Errors
///
/// The transport's, when a read fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::signing::{Signatures, Signer};
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// struct Refund { cents: u64 }
///
/// let signer = Signer::parse(&format!("k1:{}", "ab".repeat(32)))?;
/// let transport = mq::transport::connect("memory://check-signed-doc").await?;
/// let signed = mq::Bus::new(transport.clone()).with_signer(signer.clone());
/// signed.dispatch(Refund { cents: 100 }).await?;
/// mq::Bus::new(transport.clone()).dispatch(Refund { cents: 99_900 }).await?; // unsigned
///
/// let registry = mq::Registry::linked()?;
/// let report = mq::check::check_signed(transport.as_ref(), &registry, &signer, Signatures::Required).await?;
/// assert_eq!(report.readable, 1);
/// assert!(report.unreadable[0].reason.starts_with("signature refused: the envelope is not signed"));
/// # Ok(()) }
/// ```
pub async fn check_signed(
    transport: &dyn Transport,
    registry: &Registry,
    signer: &Signer,
    policy: Signatures,
) -> Result<Report> {
    let verifier = Verifier::new(Some(signer.clone()), Some(policy))?;
    tally(transport, Tally::new(registry, verifier)).await
}

/// Reads every queued item and failure record of `transport` into `tally`.
async fn tally(transport: &dyn Transport, mut tally: Tally<'_>) -> Result<Report> {
    for stats in transport.stats().await? {
        let place = format!("queue {}", stats.queue);
        let mut after = 0;
        loop {
            let page = transport.browse(&stats.queue, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for job in &page {
                tally.read(&place, &job.body);
            }
        }
    }
    for failed in transport.failure_store().list(None, MOST_FAILED).await? {
        let place = format!("failure store (queue {})", failed.queue);
        tally.read(&place, &failed.body);
    }
    Ok(tally.report())
}

/// The counts so far.
struct Tally<'a> {
    registry: &'a Registry,
    verifier: Verifier,
    readable: u64,
    unreadable: BTreeMap<(String, String, u32, String), u64>,
}

impl<'a> Tally<'a> {
    fn new(registry: &'a Registry, verifier: Verifier) -> Tally<'a> {
        Tally {
            registry,
            verifier,
            readable: 0,
            unreadable: BTreeMap::new(),
        }
    }

    /// Counts one item found at `place`.
    fn read(&mut self, place: &str, bytes: &[u8]) {
        let (name, version, reason) = match Envelope::decode(bytes) {
            Err(reason) => (String::new(), 0, reason),
            Ok(envelope) => match self.why_unreadable(&envelope) {
                None => {
                    self.readable += 1;
                    return;
                }
                Some(reason) => (envelope.name, envelope.message_version, reason),
            },
        };
        *self
            .unreadable
            .entry((place.to_owned(), name, version, reason))
            .or_default() += 1;
    }

    fn why_unreadable(&self, envelope: &Envelope) -> Option<String> {
        if let Err(refusal) = self.verifier.check(envelope) {
            return Some(format!("signature refused: {refusal}"));
        }
        let Some(route) = self.registry.route(&envelope.name) else {
            return Some(format!(
                "no message type named `{}` in this build",
                envelope.name
            ));
        };
        route
            .info()
            .decode(envelope.body.get(), envelope.message_version)
            .err()
            .map(|error| error.to_string())
    }

    fn report(self) -> Report {
        Report {
            readable: self.readable,
            unreadable: self
                .unreadable
                .into_iter()
                .map(|((place, name, version, reason), count)| Unreadable {
                    place,
                    name,
                    version,
                    reason,
                    count,
                })
                .collect(),
        }
    }
}
