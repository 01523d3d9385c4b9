//! Message versions: a body written in an older shape of a message, read into today's type.
//!
//! `#[message(version = 3, previous(1 = OrderPlacedV1, 2 = OrderPlacedV2))]` says that this
//! build writes version 3 and reads versions 1 and 2 through their old types, each turned into
//! the current one by its `From` impl (the *upcaster*). The derive generates
//! [`Message::decode_version`] from that list; [`DecodeError`] says what a body that cannot be
//! read lacks (see [`guide::messages_and_slots`](crate::guide::messages_and_slots)).

use std::fmt;

use serde::de::DeserializeOwned;

use crate::message::{DeserializeMessage, Message};

/// Why a body cannot become its message type in this build.
///
/// ```
/// use mq::Message as _;
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(version = 2)]
/// struct OrderPlaced { id: u64 }
///
/// let newer = OrderPlaced::decode_version(r#"{"id":7}"#, 3).err().unwrap();
/// assert!(matches!(newer, mq::DecodeError::Newer { version: 3, current: 2, .. }));
/// assert!(newer.to_string().contains("dispatched by a newer build"));
/// let older = OrderPlaced::decode_version(r#"{"id":7}"#, 1).err().unwrap();
/// assert!(older.to_string().contains("previous(1 = "));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is of a version above the one this build writes: a newer build dispatched it.
    Newer {
        /// The message's wire name.
        name: &'static str,
        /// The envelope's `message_version`.
        version: u32,
        /// The version this build writes.
        current: u32,
    },
    /// The body is of an older version that `#[message(previous(...))]` does not list.
    NoReader {
        /// The message's wire name.
        name: &'static str,
        /// The envelope's `message_version`.
        version: u32,
        /// The version this build writes.
        current: u32,
        /// The older versions this build reads.
        previous: &'static [u32],
        /// The Rust type of the message, as `std::any::type_name` gives it.
        type_name: &'static str,
    },
    /// The body does not deserialize into the type of its version.
    Body {
        /// The Rust type the body was read as: the message's, or the older shape's.
        type_name: &'static str,
        /// The envelope's `message_version`.
        version: u32,
        /// The version this build writes.
        current: u32,
        /// serde's error.
        source: serde_json::Error,
    },
}

impl DecodeError {
    /// The error for a body of `version`, which `M` has no reader for.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Ping;
    ///
    /// let error = mq::DecodeError::unreadable::<Ping>(2);
    /// assert!(error.is_newer());
    /// assert!(!mq::DecodeError::unreadable::<Ping>(0).is_newer());
    /// ```
    pub fn unreadable<M: Message>(version: u32) -> DecodeError {
        unreadable(
            M::NAME,
            std::any::type_name::<M>(),
            M::VERSION,
            M::PREVIOUS_VERSIONS,
            version,
        )
    }

    /// True when a newer build dispatched the message: a worker of that build can read it,
    /// so the worker retries it (as a message of an unknown name) before it fails it.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// assert!(mq::DecodeError::unreadable::<Ping>(5).is_newer());
    /// ```
    pub fn is_newer(&self) -> bool {
        matches!(self, DecodeError::Newer { .. })
    }
}

/// The error for `version` of a message `name` (of Rust type `type_name`) that writes
/// `current` and reads `previous`.
pub(crate) fn unreadable(
    name: &'static str,
    type_name: &'static str,
    current: u32,
    previous: &'static [u32],
    version: u32,
) -> DecodeError {
    if version > current {
        DecodeError::Newer {
            name,
            version,
            current,
        }
    } else {
        DecodeError::NoReader {
            name,
            version,
            current,
            previous,
            type_name,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Newer {
                name,
                version,
                current,
            } => write!(
                f,
                "`{name}` version {version} was dispatched by a newer build: this build reads \
                 up to version {current}; let a worker of the newer build handle it \
                 (`mq failed retry` once one runs)"
            ),
            DecodeError::NoReader {
                name,
                version,
                current,
                previous,
                type_name,
            } => {
                let mut reads: Vec<String> = previous.iter().map(u32::to_string).collect();
                reads.push(current.to_string());
                let ty = type_name.rsplit("::").next().unwrap_or(type_name);
                write!(
                    f,
                    "`{name}` version {version} has no reader in this build (it reads version{} \
                     {}): add its old shape as `previous({version} = {ty}V{version})` to \
                     `#[message(...)]` of `{ty}`, with `impl From<{ty}V{version}> for {ty}`",
                    if reads.len() == 1 { "" } else { "s" },
                    reads.join(", ")
                )
            }
            DecodeError::Body {
                type_name,
                version,
                current,
                source,
            } if version == current => {
                write!(f, "body does not decode as `{type_name}`: {source}")
            }
            DecodeError::Body {
                type_name,
                version,
                source,
                ..
            } => write!(
                f,
                "body of version {version} does not decode as `{type_name}`: {source}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Body { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A body of `M`'s current version.
pub(crate) fn decode_current<M: Message>(body: &str) -> Result<M, DecodeError> {
    <M as DeserializeMessage>::decode_body(body).map_err(|source| DecodeError::Body {
        type_name: std::any::type_name::<M>(),
        version: M::VERSION,
        current: M::VERSION,
        source,
    })
}

/// A body of an older `version`, read as `P` and upcast into `M`.
pub(crate) fn decode_previous<M, P>(body: &str, version: u32) -> Result<M, DecodeError>
where
    M: Message + Upcast<P>,
    P: DeserializePrevious,
{
    match P::decode_previous(body) {
        Ok(previous) => Ok(M::upcast(previous)),
        Err(source) => Err(DecodeError::Body {
            type_name: std::any::type_name::<P>(),
            version,
            current: M::VERSION,
            source,
        }),
    }
}

/// `From<P>`, as the bound of an older shape whose failure says what to write.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no upcaster from its older shape `{P}`",
    label = "no `impl From<{P}> for {Self}`",
    note = "a message reads an older version through `impl From<{P}> for {Self}`: write it, turning the old shape's fields into the current ones"
)]
pub trait Upcast<P>: Sized {
    /// The current message from its older shape.
    fn upcast(previous: P) -> Self;
}

#[diagnostic::do_not_recommend]
impl<P, M: From<P>> Upcast<P> for M {
    fn upcast(previous: P) -> Self {
        M::from(previous)
    }
}

/// `serde::DeserializeOwned`, as the bound of an older shape whose failure says what to
/// derive.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}`, an older shape of a message, must derive serde's `Deserialize`",
    label = "not `serde::Deserialize`",
    note = "add `#[derive(serde::Deserialize)]` to the definition of `{Self}`: the worker reads the old body into it"
)]
pub trait DeserializePrevious: Sized {
    /// The old shape from the JSON body of an envelope.
    fn decode_previous(body: &str) -> Result<Self, serde_json::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: DeserializeOwned> DeserializePrevious for T {
    fn decode_previous(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_to_write_for_an_older_version() {
        let error = unreadable("shop.OrderPlaced", "shop::OrderPlaced", 3, &[2], 1);
        assert_eq!(
            error.to_string(),
            "`shop.OrderPlaced` version 1 has no reader in this build (it reads versions 2, 3): \
             add its old shape as `previous(1 = OrderPlacedV1)` to `#[message(...)]` of \
             `OrderPlaced`, with `impl From<OrderPlacedV1> for OrderPlaced`"
        );
    }

    #[test]
    fn a_version_above_the_current_one_is_newer() {
        let error = unreadable("OrderPlaced", "shop::OrderPlaced", 2, &[1], 3);
        assert!(error.is_newer());
        assert!(error
            .to_string()
            .starts_with("`OrderPlaced` version 3 was dispatched by a newer build"));
    }

    #[test]
    fn a_body_of_the_current_version_keeps_the_words_of_before_versions() {
        let source = serde_json::from_str::<u64>("\"x\"").unwrap_err();
        let error = DecodeError::Body {
            type_name: "shop::Ping",
            version: 1,
            current: 1,
            source,
        };
        assert!(error
            .to_string()
            .starts_with("body does not decode as `shop::Ping`: invalid type"));
    }
}
