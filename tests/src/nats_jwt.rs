//! NATS in operator mode, for the credentials-file tests: an operator, its system account
//! (JetStream needs one), an account with JetStream and a user, each an NKey with its JWT, made per test as `nsc` would make them
//! (no `nsc` needed), the server's configuration that trusts the operator, and the user's
//! `.creds` file.
//!
//! A NATS JWT is `HEADER.CLAIMS.SIGNATURE`, each part URL-safe base64 without padding; the
//! header says `ed25519-nkey`, the claims are JSON with the issuer's and subject's public
//! keys and a `nats` section, and the signature is the issuer's Ed25519 signature of
//! `HEADER.CLAIMS`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use nkeys::KeyPair;
use serde_json::{json, Value};

/// An operator, its system account, one account with unlimited JetStream, and one user of it.
pub struct Operator {
    operator: KeyPair,
    system: KeyPair,
    account: KeyPair,
    user: KeyPair,
}

impl Default for Operator {
    fn default() -> Self {
        Operator::new()
    }
}

impl Operator {
    /// Fresh keys.
    pub fn new() -> Operator {
        Operator {
            operator: KeyPair::new_operator(),
            system: KeyPair::new_account(),
            account: KeyPair::new_account(),
            user: KeyPair::new_user(),
        }
    }

    /// What `NatsServer::start_with` adds to the server's configuration: trust the
    /// operator, and know the account from memory.
    pub fn server_config(&self) -> String {
        let operator = jwt(
            &self.operator,
            &self.operator.public_key(),
            "test-operator",
            json!({
                "type": "operator",
                "version": 2,
                "system_account": self.system.public_key()
            }),
        );
        let system = jwt(
            &self.operator,
            &self.system.public_key(),
            "SYS",
            json!({"type": "account", "version": 2, "limits": {"conn": -1, "subs": -1}}),
        );
        let account = jwt(
            &self.operator,
            &self.account.public_key(),
            "test-account",
            json!({
                "type": "account",
                "version": 2,
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                    "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
                    "max_ack_pending": -1, "max_bytes_required": false
                },
                "default_permissions": {"pub": {}, "sub": {}}
            }),
        );
        format!(
            "operator: \"{operator}\"\nsystem_account: {}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {}: \"{system}\"\n  {}: \"{account}\"\n}}\n",
            self.system.public_key(),
            self.system.public_key(),
            self.account.public_key()
        )
    }

    /// Writes the user's credentials file (its JWT and NKey seed, as `nsc` writes them)
    /// into `dir`; its path.
    pub fn write_creds(&self, dir: &Path) -> PathBuf {
        let user = jwt(
            &self.account,
            &self.user.public_key(),
            "test-user",
            json!({
                "type": "user",
                "version": 2,
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1
            }),
        );
        let seed = self.user.seed().expect("a user key has a seed");
        let text = format!(
            "-----BEGIN NATS USER JWT-----\n{user}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        );
        let path = dir.join("user.creds");
        std::fs::write(&path, text).expect("write the credentials file");
        path
    }

    /// The user's NKey seed: the secret no output may show.
    pub fn user_seed(&self) -> String {
        self.user.seed().expect("a user key has a seed")
    }
}

/// A JWT of `subject` with `nats` claims, issued and signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "jti": format!("{:X}", issued_at ^ u64::from(name.len() as u32)),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let signature = issuer.sign(signed.as_bytes()).expect("sign the JWT");
    format!("{signed}.{}", encode(&signature))
}
