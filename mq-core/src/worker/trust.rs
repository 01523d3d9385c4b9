//! Signatures in the worker: the builder's keys and policy, and what happens to an envelope
//! whose signature is refused (the failure store, with the reason; never a slot).

use super::builder::WorkerBuilder;
use super::emit::Outcome;
use super::run::Shared;
use super::settle::fail_refused;
use crate::envelope::Envelope;
use crate::signing::{Refusal, Signatures, Signer};
#[cfg(feature = "metrics")]
use crate::telemetry::metrics;
use crate::transport::Job;

impl WorkerBuilder {
    /// The keys that check every envelope before its body is decoded, and sign what the
    /// slots dispatch; default the keys of `MQ_SIGNING_KEYS`, none when it is unset. See
    /// [`signing`](crate::signing).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Refund { cents: u64 }
    /// # #[mq::slot] fn refund(_: Refund) {}
    /// # let registry = || mq::Registry::from_slots([mq::SlotDef::of::<refund>()]);
    /// let signer = mq::signing::Signer::parse(&format!("k1:{}", "ab".repeat(32)))?;
    /// let bus = mq::Bus::connect("memory://signer-doc").await?.with_signer(signer.clone());
    /// bus.dispatch(Refund { cents: 100 }).await?;
    /// // An envelope put without the key, as an attacker with access to the queue could.
    /// mq::Bus::connect("memory://signer-doc").await?.dispatch(Refund { cents: 99_900 }).await?;
    /// let report = mq::Worker::builder()
    ///     .url("memory://signer-doc")
    ///     .registry(registry()?)
    ///     .signer(signer)
    ///     .run_until_idle()
    ///     .await?;
    /// use mq::testing::Outcome;
    /// assert_eq!((report.count(Outcome::Finished), report.count(Outcome::Failed)), (1, 1));
    /// let refused = report.messages().iter().find(|m| m.outcome == Outcome::Failed).unwrap();
    /// assert!(refused.errors[0].starts_with("signature refused: the envelope is not signed"));
    /// # Ok(()) }
    /// ```
    pub fn signer(mut self, signer: Signer) -> Self {
        self.options.signer = Some(signer);
        self
    }

    /// Whether unsigned envelopes run (default [`Signatures::Required`] when the worker has
    /// keys). [`Signatures::Required`] without keys is a start-up error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> mq::Result<()> {
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[mq::slot] fn pong(_: Ping) {}
    /// # let registry = || mq::Registry::from_slots([mq::SlotDef::of::<pong>()]);
    /// use mq::signing::Signatures;
    ///
    /// # std::env::remove_var("MQ_SIGNING_KEYS");
    /// let no_keys = mq::Worker::builder()
    ///     .url("memory://signatures-doc")
    ///     .registry(registry()?)
    ///     .signatures(Signatures::Required)
    ///     .build()
    ///     .await;
    /// assert!(matches!(no_keys, Err(mq::Error::Config(_))));
    /// # Ok(()) }
    /// ```
    pub fn signatures(mut self, policy: Signatures) -> Self {
        self.options.signatures = Some(policy);
        self
    }
}

/// Moves an envelope whose signature `refusal` names to the failure store, never running a
/// slot, and counts it (`mq_signature_refusals_total`).
pub(super) async fn refuse(
    shared: &Shared,
    job: &Job,
    envelope: &Envelope,
    refusal: Refusal,
) -> Outcome {
    tracing::warn!(
        queue = %job.queue,
        name = %envelope.name,
        id = %envelope.id,
        %refusal,
        "signature refused: no slot runs"
    );
    #[cfg(feature = "metrics")]
    metrics::signature_refused(&job.queue, &refusal);
    let outcome = fail_refused(
        shared,
        job,
        envelope,
        format!("signature refused: {refusal}"),
    )
    .await;
    #[cfg(feature = "metrics")]
    metrics::settled(job.queue.clone().into(), "".into(), "failed", &[]);
    outcome
}
