//! Signed envelopes: an HMAC-SHA-256, under a key of `MQ_SIGNING_KEYS`, of the envelope's
//! name, id and body, carried in the envelope's `sig` field (`KEY_ID:MAC`, the MAC in
//! URL-safe base64 without padding) and checked by the worker before the body is decoded.
//!
//! The signed bytes are `mq-sig-1\n`, then the name and the id each as `LENGTH:TEXT` (the
//! byte length in decimal), then the body exactly as the envelope carries it:
//!
//! ```text
//! mq-sig-1\n21:SendOrderConfirmation36:0193a8f2-7c4e-7d1a-9b1e-2f4c6a8e0b12{"order_id":7}
//! ```
//!
//! The attempt, the slots still to run and the dispatch time are not signed: a retry
//! rewrites the first two, and none of them says what a slot does. A signature proves who
//! made the message, not that it is fresh: a copy of a signed envelope put again runs
//! again, with its id (see the semantics' idempotency).
//!
//! The MAC is RustCrypto's `hmac` and `sha2`, compared in constant time (`verify_slice`).

mod keys;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use keys::{KeyError, MIN_KEY_BYTES};

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
/// assert_eq!(signer.verify(None, "Ping", "1", b"{}"), Err(Refusal::Unsigned));
/// let forged = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// assert_eq!(signer.verify(Some(forged), "Ping", "1", b"{}"), Err(Refusal::Mismatch("k1".into())));
/// # Ok::<(), mq::signing::KeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `sig` field, and unsigned envelopes are not accepted.
    #[error("the envelope is not signed, and this worker requires signatures")]
    Unsigned,
    /// A `sig` that is not `KEY_ID:MAC`.
    #[error("the envelope's signature `{0}` is not KEY_ID:MAC")]
    Malformed(String),
    /// A key id this worker does not have.
    #[error("the envelope is signed with key `{0}`, which this worker does not have")]
    UnknownKey(String),
    /// The MAC does not match: the envelope was changed or made without the key.
    #[error("the envelope's signature (key `{0}`) does not match its name, id and body")]
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
    /// let sig = signer.sign("Ping", "id-1", br#"{"n":1}"#);
    /// assert!(sig.starts_with("k2026:"));
    /// assert!(signer.verify(Some(&sig), "Ping", "id-1", br#"{"n":1}"#).is_ok());
    /// assert!(signer.verify(Some(&sig), "Ping", "id-1", br#"{"n":2}"#).is_err());
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

    /// The `sig` value of an envelope of `name`, `id` and `body` (the body's exact bytes).
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
    /// let sig = signer.sign("SendOrderConfirmation", "id-7", br#"{"order_id":7}"#);
    /// assert!(sig.starts_with("k1:") && sig.len() == "k1:".len() + 43);
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn sign(&self, name: &str, id: &str, body: &[u8]) -> String {
        let key = &self.keys[0];
        let mac = mac(&key.secret, name, id, body).finalize().into_bytes();
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac);
        format!("{}:{mac}", key.id)
    }

    /// Checks the `sig` of an envelope of `name`, `id` and `body`: `Ok` when one of the
    /// keys signed exactly these. Whether an unsigned envelope may pass is the worker's
    /// choice (`Refusal::Unsigned` here).
    ///
    /// # Errors
    ///
    /// The [`Refusal`] to record in the failure store.
    ///
    /// ```
    /// let signer = mq::signing::Signer::parse("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")?;
    /// let sig = signer.sign("Refund", "r-1", br#"{"cents":100}"#);
    /// assert!(signer.verify(Some(&sig), "Refund", "r-1", br#"{"cents":100}"#).is_ok());
    /// assert!(signer.verify(Some(&sig), "Refund", "r-1", br#"{"cents":99900}"#).is_err());
    /// # Ok::<(), mq::signing::KeyError>(())
    /// ```
    pub fn verify(
        &self,
        sig: Option<&str>,
        name: &str,
        id: &str,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let sig = sig.ok_or(Refusal::Unsigned)?;
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
        mac(&key.secret, name, id, body)
            .verify_slice(&given)
            .map_err(|_| Refusal::Mismatch(key.id.clone()))
    }
}

/// The MAC over the signed bytes (see the module doc), not yet finalized.
fn mac(secret: &[u8], name: &str, id: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `keys` has checked it is at least 32 bytes.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(SCHEME);
    for part in [name, id] {
        mac.update(part.len().to_string().as_bytes());
        mac.update(b":");
        mac.update(part.as_bytes());
    }
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const NEW: &str = "new:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn rotation_signs_with_the_first_and_accepts_any() {
        let before = Signer::parse(OLD).unwrap();
        let during = Signer::parse(&format!("{NEW},{OLD}")).unwrap();
        let after = Signer::parse(NEW).unwrap();
        let old_sig = before.sign("Ping", "1", b"{}");
        let new_sig = during.sign("Ping", "1", b"{}");
        assert!(new_sig.starts_with("new:"));
        assert_eq!(during.verify(Some(&old_sig), "Ping", "1", b"{}"), Ok(()));
        assert_eq!(after.verify(Some(&new_sig), "Ping", "1", b"{}"), Ok(()));
        assert_eq!(
            after.verify(Some(&old_sig), "Ping", "1", b"{}"),
            Err(Refusal::UnknownKey("old".into()))
        );
    }

    #[test]
    fn any_change_is_refused() {
        let signer = Signer::parse(OLD).unwrap();
        let sig = signer.sign("Refund", "7", br#"{"cents":100}"#);
        for (name, id, body) in [
            ("Refund", "7", &br#"{"cents":100000}"#[..]),
            ("Refunds", "7", br#"{"cents":100}"#),
            ("Refund", "8", br#"{"cents":100}"#),
            // The boundary between name and id is signed too.
            ("Refund7", "", br#"{"cents":100}"#),
        ] {
            assert_eq!(
                signer.verify(Some(&sig), name, id, body),
                Err(Refusal::Mismatch("old".into())),
                "{name} {id}"
            );
        }
        assert_eq!(
            signer.verify(None, "Refund", "7", b"{}"),
            Err(Refusal::Unsigned)
        );
        assert!(matches!(
            signer.verify(Some("nocolon"), "Refund", "7", b"{}"),
            Err(Refusal::Malformed(_))
        ));
    }

    /// The documented example: a producer in another language computes the same MAC.
    #[test]
    fn matches_the_documented_bytes() {
        let key = [0x11u8; 32];
        let signer = Signer::parse(&format!("k:{}", "11".repeat(32))).unwrap();
        let mut expected = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        expected.update(b"mq-sig-1\n4:Ping3:id1{\"n\":1}");
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(expected.finalize().into_bytes());
        assert_eq!(
            signer.sign("Ping", "id1", br#"{"n":1}"#),
            format!("k:{expected}")
        );
    }
}
