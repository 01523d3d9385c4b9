//! `MQ_SIGNING_KEYS`: the signing keys, read and checked at start-up.
//!
//! The text is a comma-separated list of `KEY_ID:SECRET`. A key id is 1 to 32 letters,
//! digits, `-` or `_`; a secret is hex (only hex digits, an even count) or base64 (standard
//! or URL-safe alphabet, padding optional) of at least [`MIN_KEY_BYTES`] bytes. The first
//! key signs; every key is accepted, so a rotation adds the new key first and drops the old
//! one once nothing signed with it is left in the queues.

use std::fmt;

use base64::Engine as _;

/// The shortest secret accepted: HMAC-SHA-256's own output size.
///
/// ```
/// let short = format!("k:{}", "ab".repeat(mq::signing::MIN_KEY_BYTES - 1));
/// assert!(mq::signing::Signer::parse(&short).is_err());
/// ```
pub const MIN_KEY_BYTES: usize = 32;

/// The longest key id.
const MAX_KEY_ID: usize = 32;

/// One key: its id, which travels in the envelope, and its secret, which does not.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) id: String,
    pub(super) secret: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, {} bytes)", self.id, self.secret.len())
    }
}

/// What is wrong with a list of keys; the text names the key and never shows a secret.
///
/// ```
/// let error = mq::signing::Signer::parse("k1:abcd").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "MQ_SIGNING_KEYS: key `k1` is 2 bytes; a key needs at least 32 random bytes (e.g. `openssl rand -hex 32`)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQ_SIGNING_KEYS: {0}")]
pub struct KeyError(String);

/// Reads `text` (see the module doc) into keys, the signing one first.
pub(super) fn parse(text: &str) -> Result<Vec<Key>, KeyError> {
    let mut keys: Vec<Key> = Vec::new();
    for (index, entry) in text.split(',').map(str::trim).enumerate() {
        let place = index + 1;
        let (id, secret) = entry.split_once(':').ok_or_else(|| {
            KeyError(format!(
                "key {place} is not KEY_ID:SECRET (e.g. k2026:<64 hex digits>)"
            ))
        })?;
        let id_ok = (1..=MAX_KEY_ID).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(KeyError(format!(
                "key {place}: the id `{id}` must be 1 to {MAX_KEY_ID} letters, digits, `-` or `_`"
            )));
        }
        if keys.iter().any(|key| key.id == id) {
            return Err(KeyError(format!(
                "key id `{id}` is given twice: each key needs an id of its own"
            )));
        }
        let secret = decode(secret)
            .ok_or_else(|| KeyError(format!("key `{id}`: the secret is neither hex nor base64")))?;
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError(format!(
                "key `{id}` is {} bytes; a key needs at least {MIN_KEY_BYTES} random bytes \
                 (e.g. `openssl rand -hex 32`)",
                secret.len()
            )));
        }
        keys.push(Key {
            id: id.to_owned(),
            secret,
        });
    }
    Ok(keys)
}

/// Hex when the text is only hex digits (an even count), else base64 of either alphabet.
fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return text.len().is_multiple_of(2).then(|| {
            text.as_bytes()
                .chunks(2)
                .map(|pair| {
                    let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    digit(pair[0]) << 4 | digit(pair[1])
                })
                .collect()
        });
    }
    let trimmed = text.trim_end_matches('=');
    let engines = [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(trimmed).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn reads_hex_and_base64_keys_in_order() {
        let base64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let keys = parse(&format!("new:{base64}, old:{HEX}")).unwrap();
        assert_eq!(keys[0].id, "new");
        assert_eq!(keys[0].secret, vec![7u8; 32]);
        assert_eq!(keys[1].id, "old");
        assert_eq!(keys[1].secret[..2], [0x00, 0x11]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 33]);
        assert_eq!(
            parse(&format!("k:{url_safe}")).unwrap()[0].secret,
            vec![0xfb; 33]
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_key_and_says_which() {
        let short = "k1:00112233";
        for (text, says) in [
            (short, "key `k1` is 4 bytes"),
            ("k1", "key 1 is not KEY_ID:SECRET"),
            ("bad id:00", "the id `bad id`"),
            (":00", "the id ``"),
            ("k1:!!not-base64!!", "neither hex nor base64"),
            (&format!("a:{HEX},a:{HEX}") as &str, "`a` is given twice"),
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
            assert!(!error.contains(HEX), "{error}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = parse(&format!("k1:{HEX}")).unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("0011") && shown.contains("k1"), "{shown}");
    }
}
