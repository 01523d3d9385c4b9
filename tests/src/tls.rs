//! Certificates for the TLS tests, made per test in a folder of its own: a certificate
//! authority, a server certificate it signed for `localhost` and `127.0.0.1`, and a second
//! authority that signed nothing (a client that trusts only it must refuse the server).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// PEM files in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    /// Makes the two authorities and the server's certificate and key.
    pub fn make() -> Certificates {
        let dir = tempfile::Builder::new()
            .prefix("mq-tls-")
            .tempdir()
            .expect("a temporary folder");
        let ca = authority("mq test CA");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("the server's names");
        let key = KeyPair::generate().expect("a key pair");
        let server = params
            .signed_by(&key, &ca)
            .expect("sign the server's certificate");
        let other = authority("another CA");
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("write a PEM file");
        };
        write("ca.pem", ca.pem());
        write("other-ca.pem", other.pem());
        write("server.pem", server.pem());
        write("server.key", key.serialize_pem());
        Certificates { dir }
    }

    /// The folder, for a server that wants its files beside its data (PostgreSQL).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The authority that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// An authority that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The server's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("a key pair");
    CertifiedIssuer::self_signed(params, key).expect("a self-signed authority")
}
