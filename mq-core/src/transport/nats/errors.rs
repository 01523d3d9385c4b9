//! The errors of the NATS transport: the client's, in its words or with what was being done,
//! and those of a first connection (refused credentials, a failed TLS handshake, an
//! unreachable server), each saying what to check.

use super::url::NatsUrl;
use crate::Error;

pub(super) fn nats(detail: impl std::fmt::Display) -> Error {
    Error::Nats {
        detail: detail.to_string(),
        source: None,
    }
}

/// [`Error::Nats`] caused by the client's `error`, in its words.
pub(super) fn nats_error(error: impl std::fmt::Display + Into<crate::Cause>) -> Error {
    Error::Nats {
        detail: error.to_string(),
        source: Some(error.into()),
    }
}

/// [`Error::Nats`] caused by the client's `error` while doing `what`.
pub(super) fn nats_by(
    what: impl std::fmt::Display,
    error: impl std::fmt::Display + Into<crate::Cause>,
) -> Error {
    Error::Nats {
        detail: format!("{what}: {error}"),
        source: Some(error.into()),
    }
}

/// The error of a first connection that failed: refused credentials and TLS said as such,
/// anything else as an unreachable server.
pub(super) fn refused(url: &NatsUrl, error: async_nats::ConnectError) -> Error {
    use async_nats::ConnectErrorKind as Kind;
    // rustls's verdict on a certificate reaches us as an I/O error of the handshake.
    let handshake = matches!(error.kind(), Kind::Io) && {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text.contains("certificate") || text.contains("TLS") || text.contains("tls")
    };
    match error.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => Error::Nats {
            detail: format!(
                "{} refused the connection's credentials ({error}): {}",
                url.hosts,
                url.credentials_source()
            ),
            source: Some(Box::new(error)),
        },
        Kind::Tls => tls_failed(url, error),
        Kind::Io if handshake => tls_failed(url, error),
        _ => Error::unreachable_by(url.hosts.clone(), error),
    }
}

pub(super) fn tls_failed(url: &NatsUrl, error: async_nats::ConnectError) -> Error {
    Error::Unreachable {
        address: url.hosts.clone(),
        cause: format!(
            "{error}: the TLS handshake failed; check tls=, ca= (the certificate authority \
                 that signed the server's certificate) and cert=/key="
        ),
        source: Some(Box::new(error)),
    }
}
