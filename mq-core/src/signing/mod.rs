//! Signed envelopes: an HMAC-SHA-256, under a key of `MQ_SIGNING_KEYS`, of the envelope's
//! name, id, message version and body, carried in the envelope's `sig` field (`KEY_ID:MAC`, the MAC in
//! URL-safe base64 without padding) and checked by the worker before the body is decoded.
//!
//! The signed bytes are `mq-sig-1\n`, then the name, the id and the message version (in
//! decimal, `1` when the envelope has none) each as `LENGTH:TEXT` (the byte length in
//! decimal), then the body exactly as the envelope carries it:
//!
//! ```text
//! mq-sig-1\n21:SendOrderConfirmation36:0193a8f2-7c4e-7d1a-9b1e-2f4c6a8e0b121:1{"order_id":7}
//! ```
//!
//! The attempt, the slots still to run, the dispatch time and the headers are not signed: a
//! retry rewrites the first two, and none of them says what a slot does (the headers carry
//! a trace context). A signature proves who
//! made the message, not that it is fresh: a copy of a signed envelope put again runs
//! again, with its id (see the semantics' idempotency).
//!
//! The MAC is RustCrypto's `hmac` and `sha2`, compared in constant time (`verify_slice`).

mod keys;
mod policy;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Envelope;

pub use keys::{KeyError, MIN_KEY_BYTES};
pub use policy::Signatures;
pub(crate) use policy::Verifier;

/// The domain-separation prefix of the signed bytes; a new layout would change it.
const SCHEME: &[u8] = b"mq-sig-1\n";

/// The variable that holds the keys.
///
/// ```
/// assert_eq!(mq::signing::KEYS_VARIABLE, "MQ_SIGNING_KEYS");
/// ```
pub const KEYS_VARIABLE: &str = "MQ_SIGNING_KEYS";

/// The keys a process signs and checks envelopes with: the first signs, all are accepted.
///
/// ```
/// // During a rotation: `new` signs, envelopes signed with `old` are still accepted.
/// let signer = mq::signing::Signer::parse(&format!("new:{},old:{}", "ab".repeat(32), "cd".repeat(32)))?;
/// assert_eq!(signer.signing_key_id(), "new");
/// # Ok::<(), mq::signing::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<keys::Key>,
}

/// Why a worker did not accept an envelope's signature: the failure store's reason.
///
/// ```
/// use mq::signing::{Refusal, Signer};
///
/// let signer = Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
/// let mut envelope = mq::Envelope::new("Ping", serde_json::value::RawValue::from_string("{}".into()).unwrap());
/// assert_eq!(signer.verify(&envelope), Err(Refusal::Unsigned));
/// envelope.sig = Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
/// assert_eq!(signer.verify(&envelope), Err(Refusal::Mismatch("k1".into())));
/// # Ok::<(), mq::signing::KeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `sig` field, and unsigned envelopes are not accepted.
    #[error("the envelope is not signed")]
    Unsigned,
    /// A `sig` that is not `KEY_ID:MAC`.
    #[error("the envelope's signature `{0}` is not KEY_ID:MAC")]
    Malformed(String),
    /// A key id this worker does not have.
    #[error("the envelope is signed with key `{0}`, which this worker does not have")]
    UnknownKey(String),
    /// The MAC does not match: the envelope was changed or made without the key.
    #[error("the envelope's signature (key `{0}`) does not match its name, id, version and body")]
    Mismatch(String),
}

impl Signer {
    /// Reads keys written as `MQ_SIGNING_KEYS` takes them (`KEY_ID:SECRET,...`, the first
    /// signing).
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse(
    ///     "k2026:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    /// )
    /// .unwrap();
    /// let body = serde_json::value::RawValue::from_string(r#"{"n":1}"#.into()).unwrap();
    /// let envelope = mq::Envelope::new("Ping", body).signed(&signer);
    /// assert!(envelope.sig.as_deref().unwrap().starts_with("k2026:"));
    /// assert!(signer.verify(&envelope).is_ok());
    /// assert!(mq::signing::Signer::parse("k:0011").is_err()); // too short
    /// ```
    ///
    /// # Errors
    ///
    /// A [`KeyError`] naming the key that is malformed, too short or given twice.
    pub fn parse(text: &str) -> Result<Signer, KeyError> {
        Ok(Signer {
            keys: keys::parse(text)?,
        })
    }

    /// The keys of `MQ_SIGNING_KEYS`, or `None` when it is unset or empty.
    ///
    /// # Errors
    ///
    /// As [`parse`](Signer::parse).
    ///
    /// ```
    /// match mq::signing::Signer::from_env()? {
    ///     Some(signer) => println!("signing with key {}", signer.signing_key_id()),
    ///     None => println!("MQ_SIGNING_KEYS is not set: envelopes are not signed"),
    /// }
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn from_env() -> Result<Option<Signer>, KeyError> {
        match std::env::var(KEYS_VARIABLE) {
            Ok(text) if !text.trim().is_empty() => Signer::parse(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// The id of the key that signs.
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
    /// assert_eq!(signer.signing_key_id(), "k1");
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// The ids of every key, the signing one first.
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse(&format!("new:{},old:{}", "ab".repeat(32), "cd".repeat(32)))?;
    /// assert_eq!(signer.key_ids(), ["new", "old"]);
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|key| key.id.as_str()).collect()
    }

    /// The `sig` value of `envelope`: a MAC of its name, id, message version and body (the
    /// body's exact JSON text), under the first key. [`Envelope::signed`] sets it.
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
    /// let body = serde_json::value::RawValue::from_string(r#"{"order_id":7}"#.into()).unwrap();
    /// let sig = signer.sign(&mq::Envelope::new("SendOrderConfirmation", body));
    /// assert!(sig.starts_with("k1:") && sig.len() == "k1:".len() + 43);
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn sign(&self, envelope: &Envelope) -> String {
        let key = &self.keys[0];
        let mac = mac(&key.secret, envelope).finalize().into_bytes();
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac);
        format!("{}:{mac}", key.id)
    }

    /// Checks the `sig` of `envelope`: `Ok` when one of the keys signed exactly its name,
    /// id, message version and body. Whether an unsigned envelope may pass is the worker's
    /// choice (`Refusal::Unsigned` here).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] to record in the failure store.
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
    /// let body = |json: &str| serde_json::value::RawValue::from_string(json.into()).unwrap();
    /// let mut envelope = mq::Envelope::new("Refund", body(r#"{"cents":100}"#)).signed(&signer);
    /// assert!(signer.verify(&envelope).is_ok());
    /// envelope.body = body(r#"{"cents":99900}"#);
    /// assert!(signer.verify(&envelope).is_err());
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn verify(&self, envelope: &Envelope) -> Result<(), Refusal> {
        let sig = envelope.sig.as_deref().ok_or(Refusal::Unsigned)?;
        let malformed = || Refusal::Malformed(sig.chars().take(80).collect());
        let (key_id, mac_text) = sig.split_once(':').ok_or_else(malformed)?;
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac_text)
            .map_err(|_| malformed())?;
        let key = self
            .keys
            .iter()
            .find(|key| key.id == key_id)
            .ok_or_else(|| Refusal::UnknownKey(key_id.chars().take(32).collect()))?;
        mac(&key.secret, envelope)
            .verify_slice(&given)
            .map_err(|_| Refusal::Mismatch(key.id.clone()))
    }
}

/// The MAC over the signed bytes (see the module doc), not yet finalized.
fn mac(secret: &[u8], envelope: &Envelope) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `keys` has checked it is at least 32 bytes.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(SCHEME);
    let version = envelope.message_version.to_string();
    for part in [&envelope.name, &envelope.id, &version] {
        mac.update(part.len().to_string().as_bytes());
        mac.update(b":");
        mac.update(part.as_bytes());
    }
    mac.update(envelope.body.get().as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    const OLD: &str = "old:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const NEW: &str = "new:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn envelope(name: &str, id: &str, body: &str) -> Envelope {
        let mut envelope = Envelope::new(name, RawValue::from_string(body.into()).unwrap());
        envelope.id = id.into();
        envelope
    }

    #[test]
    fn rotation_signs_with_the_first_and_accepts_any() {
        let before = Signer::parse(OLD).unwrap();
        let during = Signer::parse(&format!("{NEW},{OLD}")).unwrap();
        let after = Signer::parse(NEW).unwrap();
        let old = envelope("Ping", "1", "{}").signed(&before);
        let new = envelope("Ping", "1", "{}").signed(&during);
        assert!(new.sig.as_deref().unwrap().starts_with("new:"));
        assert_eq!(during.verify(&old), Ok(()));
        assert_eq!(after.verify(&new), Ok(()));
        assert_eq!(after.verify(&old), Err(Refusal::UnknownKey("old".into())));
    }

    #[test]
    fn any_change_is_refused() {
        let signer = Signer::parse(OLD).unwrap();
        let signed = envelope("Refund", "7", r#"{"cents":100}"#).signed(&signer);
        let sig = signed.sig.clone();
        let mut versioned = envelope("Refund", "7", r#"{"cents":100}"#);
        versioned.message_version = 2;
        for mut changed in [
            envelope("Refund", "7", r#"{"cents":100000}"#),
            envelope("Refunds", "7", r#"{"cents":100}"#),
            envelope("Refund", "8", r#"{"cents":100}"#),
            // The boundary between name and id is signed too.
            envelope("Refund7", "", r#"{"cents":100}"#),
            versioned,
        ] {
            changed.sig = sig.clone();
            assert_eq!(
                signer.verify(&changed),
                Err(Refusal::Mismatch("old".into())),
                "{changed:?}"
            );
        }
        assert_eq!(
            signer.verify(&envelope("Refund", "7", "{}")),
            Err(Refusal::Unsigned)
        );
        let mut malformed = envelope("Refund", "7", "{}");
        malformed.sig = Some("nocolon".into());
        assert!(matches!(
            signer.verify(&malformed),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn what_is_not_signed_may_change() {
        let signer = Signer::parse(OLD).unwrap();
        let mut signed = envelope("Refund", "7", r#"{"cents":100}"#).signed(&signer);
        signed.attempt = 3;
        signed.slots = Some(vec!["shop::refund".into()]);
        signed.headers.insert("traceparent".into(), "00-x".into());
        assert_eq!(signer.verify(&signed), Ok(()));
    }

    /// The documented example: a producer in another language computes the same MAC.
    #[test]
    fn matches_the_documented_bytes() {
        let key = [0x11u8; 32];
        let signer = Signer::parse(&format!("k:{}", "11".repeat(32))).unwrap();
        let mut expected = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        expected.update(b"mq-sig-1\n4:Ping3:id11:1{\"n\":1}");
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(expected.finalize().into_bytes());
        assert_eq!(
            signer.sign(&envelope("Ping", "id1", r#"{"n":1}"#)),
            format!("k:{expected}")
        );
    }

    /// The body is signed as the envelope carries it, so a decoded envelope verifies.
    #[test]
    fn a_signed_envelope_verifies_after_the_wire() {
        let signer = Signer::parse(NEW).unwrap();
        let sent = envelope("Ping", "id1", r#"{ "n" : "\u00e9" }"#).signed(&signer);
        let received = Envelope::decode(&sent.encode()).unwrap();
        assert_eq!(signer.verify(&received), Ok(()));
    }

    /// What one signature and one check cost on a bench-sized envelope (about 100 bytes of
    /// body): `cargo test --release -p mq-core --lib signing::tests::cost -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn cost() {
        let signer = Signer::parse(NEW).unwrap();
        let body = r#"{"seq":12345,"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let mut envelope = envelope("Bench", "01a2427d-4561-75d5-a9ba-7fd1bd81b2ae", body);
        let times = 200_000;
        let start = std::time::Instant::now();
        for _ in 0..times {
            envelope.sig = Some(signer.sign(std::hint::black_box(&envelope)));
        }
        let signing = start.elapsed() / times;
        let start = std::time::Instant::now();
        for _ in 0..times {
            assert!(signer.verify(std::hint::black_box(&envelope)).is_ok());
        }
        eprintln!(
            "sign: {signing:?}, verify: {:?} each",
            start.elapsed() / times
        );
    }
}
