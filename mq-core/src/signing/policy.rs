//! What a worker accepts: [`Signatures`], the policy over unsigned envelopes, and the check
//! the worker runs on each envelope before it decodes the body.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{Refusal, Signer};
use crate::envelope::Envelope;
use crate::{Error, Result};

/// Whether a worker with signing keys runs envelopes that carry no signature.
///
/// A worker with keys checks every signature it is given, whatever the policy: a forged or
/// changed envelope, or one signed with a key the worker does not have, never runs. The
/// policy only decides the unsigned ones. A worker without keys checks nothing; asking it
/// to require signatures is a start-up error.
///
/// ```
/// use mq::signing::Signatures;
///
/// assert_eq!("accept-unsigned".parse::<Signatures>(), Ok(Signatures::AcceptUnsigned));
/// assert_eq!(Signatures::default(), Signatures::Required);
/// assert!("sometimes".parse::<Signatures>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Signatures {
    /// An unsigned envelope goes to the failure store (the default with keys).
    #[default]
    Required,
    /// An unsigned envelope runs; a signed one must verify. For the migration to signed
    /// envelopes, while producers without keys are still deployed.
    AcceptUnsigned,
}

impl FromStr for Signatures {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Signatures, String> {
        match text {
            "required" => Ok(Signatures::Required),
            "accept-unsigned" => Ok(Signatures::AcceptUnsigned),
            other => Err(format!(
                "`{other}` is not a signature policy: use `required` or `accept-unsigned`"
            )),
        }
    }
}

impl fmt::Display for Signatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signatures::Required => "required",
            Signatures::AcceptUnsigned => "accept-unsigned",
        })
    }
}

/// The keys and policy of one worker, settled at start-up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verifier {
    signer: Option<Arc<Signer>>,
    policy: Signatures,
}

impl Verifier {
    /// The verifier of a worker with `signer` (if any) and `policy` (if set).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when signatures are required explicitly and there is no key.
    pub(crate) fn new(signer: Option<Signer>, policy: Option<Signatures>) -> Result<Verifier> {
        if signer.is_none() && policy == Some(Signatures::Required) {
            return Err(Error::Config(format!(
                "signatures are required (--signatures required, MQ_SIGNATURES or \
                 WorkerBuilder::signatures), but no signing key is set: set {}=KEY_ID:SECRET \
                 (e.g. k1:$(openssl rand -hex 32)), the same keys as the producers'",
                super::KEYS_VARIABLE
            )));
        }
        Ok(Verifier {
            signer: signer.map(Arc::new),
            policy: policy.unwrap_or_default(),
        })
    }

    /// The keys, for the worker's own dispatches.
    pub(crate) fn signer(&self) -> Option<&Arc<Signer>> {
        self.signer.as_ref()
    }

    /// `Ok` when `envelope` may reach its slots.
    pub(crate) fn check(&self, envelope: &Envelope) -> std::result::Result<(), Refusal> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        match signer.verify(envelope) {
            Err(Refusal::Unsigned) if self.policy == Signatures::AcceptUnsigned => Ok(()),
            checked => checked,
        }
    }

    /// What the start-up log says of signatures.
    pub(crate) fn describe(&self) -> String {
        match &self.signer {
            None => format!("not checked ({} is not set)", super::KEYS_VARIABLE),
            Some(signer) => format!("{} (keys: {})", self.policy, signer.key_ids().join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    const KEY: &str = "k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn unsigned() -> Envelope {
        Envelope::new("Refund", RawValue::from_string("{}".into()).unwrap())
    }

    #[test]
    fn required_refuses_the_unsigned_and_accept_unsigned_lets_them_run() {
        let required = Verifier::new(Some(Signer::parse(KEY).unwrap()), None).unwrap();
        assert_eq!(required.check(&unsigned()), Err(Refusal::Unsigned));
        let migrating = Verifier::new(
            Some(Signer::parse(KEY).unwrap()),
            Some(Signatures::AcceptUnsigned),
        )
        .unwrap();
        assert_eq!(migrating.check(&unsigned()), Ok(()));
    }

    #[test]
    fn accept_unsigned_still_refuses_a_forgery() {
        let signer = Signer::parse(KEY).unwrap();
        let migrating = Verifier::new(Some(signer), Some(Signatures::AcceptUnsigned)).unwrap();
        let mut forged = unsigned();
        forged.sig = Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
        assert_eq!(
            migrating.check(&forged),
            Err(Refusal::Mismatch("k1".into()))
        );
    }

    #[test]
    fn requiring_without_a_key_is_a_start_up_error() {
        let error = Verifier::new(None, Some(Signatures::Required)).unwrap_err();
        assert!(error.to_string().contains("MQ_SIGNING_KEYS"), "{error}");
        let open = Verifier::new(None, None).unwrap();
        assert_eq!(open.check(&unsigned()), Ok(()));
        assert!(open.describe().starts_with("not checked"));
    }
}
