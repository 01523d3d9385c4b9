//! sqlx's errors as `mq::Error`s a person can act on: an unreachable server, a database
//! that does not exist, a refused password, a missing privilege.

use super::url::PgUrl;
use crate::Error;

/// What was being done when PostgreSQL failed: decides how its error is told.
#[derive(Debug)]
pub(super) enum PgError<'a> {
    /// Connecting to `database` at `address` as `user`.
    Connect {
        address: &'a str,
        user: &'a str,
        database: &'a str,
    },
    /// Creating or migrating the tables of `schema`.
    Migrate { schema: &'a str },
    /// A queue operation.
    Op(&'static str),
    /// A put on the application's connection, inside its transaction, for the bus (or
    /// outbox) of `url`.
    Within { url: &'a PgUrl },
}

/// `error`, told for what `context` was doing.
pub(super) fn translate(error: sqlx::Error, context: &PgError<'_>) -> Error {
    let postgres = |detail: String, error: sqlx::Error| Error::Postgres {
        detail,
        source: Some(Box::new(error)),
    };
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    };
    match (context, code.as_deref(), &error) {
        // rustls's verdict on the server's certificate comes as an I/O error of the
        // handshake (InvalidData); the server's refusal of TLS as sqlx's Tls.
        (PgError::Connect { address, .. }, _, sqlx::Error::Tls(_)) => tls_failed(address, error),
        (PgError::Connect { address, .. }, _, sqlx::Error::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            tls_failed(address, error)
        }
        (PgError::Connect { address, .. }, _, sqlx::Error::Io(io)) => Error::Unreachable {
            address: (*address).to_owned(),
            cause: format!(
                "{io}: is PostgreSQL running and listening there? start it, or fix \
                 HOST:PORT in the URL"
            ),
            source: Some(Box::new(error)),
        },
        (PgError::Connect { address, .. }, _, sqlx::Error::PoolTimedOut) => Error::Unreachable {
            address: (*address).to_owned(),
            cause: "no connection could be made in time: check the host, the port and the \
                    server's max_connections"
                .to_owned(),
            source: Some(Box::new(error)),
        },
        (
            PgError::Connect {
                address, database, ..
            },
            Some("3D000"),
            _,
        ) => postgres(
            format!(
                "database `{database}` does not exist on {address}: create it with \
                 `createdb {database}` (or CREATE DATABASE \"{database}\")"
            ),
            error,
        ),
        (PgError::Connect { user, address, .. }, Some("28P01" | "28000"), _) => postgres(
            format!(
                "{address} refused user `{user}`: check the user and password in the URL \
                 (or PGPASSWORD when the URL has none), and the server's pg_hba.conf"
            ),
            error,
        ),
        (PgError::Migrate { schema }, Some("42501"), _) => postgres(
            format!(
                "may not create the tables of schema `{schema}`: connect once as a user \
                 allowed to (GRANT CREATE ON DATABASE ...), or apply `mq migrate --print` \
                 by hand"
            ),
            error,
        ),
        (PgError::Migrate { schema }, Some("55P03"), _) => postgres(
            format!(
                "migrating schema `{schema}` gave up waiting for a lock on its tables: a \
                 long transaction holds them (see pg_stat_activity); connect again once it \
                 ends"
            ),
            error,
        ),
        (PgError::Migrate { schema }, _, _) => {
            postgres(format!("migrating schema `{schema}`: {error}"), error)
        }
        (PgError::Within { url }, Some("42P01" | "3F000"), _) => postgres(
            format!(
                "dispatch within a transaction: its database has no table \
                 `{}.mq_messages`; the transaction must be on the database of the bus \
                 or outbox, {} (connect it once there to create the tables)",
                url.schema,
                url.describe()
            ),
            error,
        ),
        (PgError::Within { url }, Some("42501"), _) => {
            let schema = &url.schema;
            postgres(
                format!(
                    "dispatch within a transaction: its role may not write to `{schema}`: \
                 GRANT USAGE ON SCHEMA {schema} and INSERT ON {schema}.mq_messages (and \
                 USAGE ON its sequence) to it"
                ),
                error,
            )
        }
        (PgError::Op(what), _, sqlx::Error::PoolTimedOut) => postgres(
            format!(
                "{what}: no connection within 10 s: the server went away, or every connection \
                 of the transport's pool is busy (raise ?pool=N, 10 unless set, or the \
                 server's max_connections)"
            ),
            error,
        ),
        (_, _, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
            let what = match context {
                PgError::Op(what) => *what,
                PgError::Within { .. } => "dispatch within a transaction",
                _ => "connect",
            };
            postgres(format!("{what}: lost the server: {error}"), error)
        }
        (PgError::Within { .. }, _, _) => {
            postgres(format!("dispatch within a transaction: {error}"), error)
        }
        (PgError::Op(what), _, _) => postgres(format!("{what}: {error}"), error),
        (PgError::Connect { address, .. }, _, _) => {
            postgres(format!("connecting to {address}: {error}"), error)
        }
    }
}

/// A TLS handshake that failed at connect: what to check.
fn tls_failed(address: &str, error: sqlx::Error) -> Error {
    Error::Unreachable {
        address: address.to_owned(),
        cause: format!(
            "TLS: {error}; check sslmode= (the server may not offer TLS: see its `ssl` \
             setting) and sslrootcert= (the authority that signed the server's certificate; \
             verify-full also needs the certificate to name the URL's host)"
        ),
        source: Some(Box::new(error)),
    }
}
