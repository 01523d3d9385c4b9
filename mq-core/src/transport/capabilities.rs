//! What a backend declares it can do, and the checks made against it: at dispatch (an
//! envelope's size, a priority, a delay) and at worker start-up (the options of every
//! registered message), so that what a backend cannot hold is refused, never approximated
//! in silence.

use std::time::Duration;

use super::PutOptions;
use crate::message::{MessageInfo, DEFAULT_PRIORITY};
use crate::{Error, Result};

/// What a backend can do. Each backend builds its own from [`Capabilities::new`].
///
/// ```
/// use mq::transport::{Capabilities, KeepAlive, Priorities};
/// use std::time::Duration;
///
/// // What a backend like beanstalkd declares.
/// let can = Capabilities::new()
///     .with_delays(Duration::from_secs(1), Some(Duration::from_secs(u32::MAX.into())))
///     .with_max_message_size(65_535);
/// assert_eq!((can.priorities, can.keep_alive), (Priorities::Exact, KeepAlive::Native));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// How priorities order reservations.
    pub priorities: Priorities,
    /// The step delays and TTRs are counted in; a value between two steps rounds up, never
    /// down (beanstalkd: one second).
    pub delay_step: Duration,
    /// The longest delay or TTR the backend can express, if it has a limit.
    pub max_delay: Option<Duration>,
    /// The largest envelope the backend accepts, in bytes, if it has a limit.
    pub max_message_size: Option<usize>,
    /// How a reservation is kept past its TTR while slots still run.
    pub keep_alive: KeepAlive,
    /// Whether it keeps unique keys ([`Feature::Unique`]).
    pub unique: bool,
    /// Whether it keeps per-key concurrency permits ([`Feature::KeyLimits`]).
    pub key_limits: bool,
    /// Whether it can debounce ([`Feature::Debounce`]).
    pub debounce: bool,
}

/// A feature that needs the backend to keep state of its own, beyond queued items; a
/// backend that cannot give its guarantee does not declare it, and using it there is
/// refused with an error that names the backends that can (see [`Capabilities::require`]).
///
/// ```
/// use mq::transport::{Capabilities, Feature};
///
/// assert!(!Capabilities::new().supports(Feature::Unique));
/// assert!(Capabilities::new().with_feature(Feature::Unique).supports(Feature::Unique));
/// assert_eq!(Feature::Unique.to_string(), "unique messages");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Unique messages: a key held while a message is queued or running (and for a time
    /// after), so that a second dispatch with it returns the first message's id.
    Unique,
    /// Per-key concurrency limits: at most N messages with one key run at once, across
    /// every worker on the backend, by permits the backend keeps.
    KeyLimits,
    /// Debounce: a burst of dispatches with one key becomes one message, run after a quiet
    /// period with the latest body, never later than a maximum wait.
    Debounce,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Feature::Unique => "unique messages",
            Feature::KeyLimits => "per-key concurrency limits",
            Feature::Debounce => "debounce",
        })
    }
}

/// How a backend orders ready items by priority.
///
/// ```
/// use mq::transport::{Capabilities, Priorities};
///
/// let banded = Capabilities::new().with_priorities(Priorities::Banded { exact_below: 10 });
/// assert!(matches!(banded.priorities, Priorities::Banded { exact_below: 10 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Priorities {
    /// Every priority is its own level: lower is always reserved first.
    Exact,
    /// Priorities below `exact_below` are exact; above, items are ordered by band, and
    /// within a band by age (NATS: a consumer per band).
    Banded {
        /// The first priority that shares its band with others.
        exact_below: u32,
    },
    /// Items are reserved by age only: a message that asks for another priority than the
    /// default is refused (at dispatch and at worker start-up).
    None,
}

/// How a reservation is kept alive.
///
/// ```
/// use mq::transport::{Capabilities, KeepAlive};
/// use std::time::Duration;
///
/// let lease = KeepAlive::Emulated { lease: Duration::from_secs(30) };
/// assert_eq!(Capabilities::new().with_keep_alive(lease).keep_alive, lease);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepAlive {
    /// The server keeps each reservation for the item's own TTR and extends it by that on
    /// [`keep_alive`](super::Transport::keep_alive) (beanstalkd `touch`, a lease renewed in
    /// SQLite or memory).
    Native,
    /// The server's reservation has one fixed length for every item (`lease`, NATS's
    /// AckWait); the transport renews it while the item's TTR lasts and hands the item back
    /// when the TTR runs out. A worker killed with SIGKILL gets its items back after
    /// `lease`, not after their TTR.
    Emulated {
        /// The server's fixed reservation length.
        lease: Duration,
    },
}

impl Capabilities {
    /// A backend with exact priorities, millisecond delays of any length, no size limit and
    /// native keep-alive; change the fields that differ.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let can = mq::transport::Capabilities::new();
    /// assert_eq!((can.delay_step, can.max_delay), (Duration::from_millis(1), None));
    /// ```
    pub fn new() -> Capabilities {
        Capabilities {
            priorities: Priorities::Exact,
            delay_step: Duration::from_millis(1),
            max_delay: None,
            max_message_size: None,
            keep_alive: KeepAlive::Native,
            unique: false,
            key_limits: false,
            debounce: false,
        }
    }

    /// The same, declaring `feature`.
    ///
    /// ```
    /// use mq::transport::{Capabilities, Feature};
    ///
    /// assert!(Capabilities::new().with_feature(Feature::Unique).unique);
    /// ```
    pub fn with_feature(self, feature: Feature) -> Capabilities {
        match feature {
            Feature::Unique => Capabilities {
                unique: true,
                ..self
            },
            Feature::KeyLimits => Capabilities {
                key_limits: true,
                ..self
            },
            Feature::Debounce => Capabilities {
                debounce: true,
                ..self
            },
        }
    }

    /// Whether the backend declares `feature`.
    ///
    /// ```
    /// use mq::transport::{Capabilities, Feature};
    ///
    /// assert!(!Capabilities::new().supports(Feature::Unique));
    /// ```
    pub fn supports(&self, feature: Feature) -> bool {
        match feature {
            Feature::Unique => self.unique,
            Feature::KeyLimits => self.key_limits,
            Feature::Debounce => self.debounce,
        }
    }

    /// `Ok` if the backend declares `feature`; else [`Error::Unsupported`] for `what`, naming
    /// `backend` and the backends of mq that declare it.
    ///
    /// ```
    /// use mq::transport::{Capabilities, Feature};
    ///
    /// let error = Capabilities::new()
    ///     .require(Feature::Unique, "`#[message(unique)]` of `Refund`", "beanstalk://127.0.0.1:11300")
    ///     .unwrap_err();
    /// assert!(error.to_string().contains("use a backend that can: "), "{error}");
    /// assert!(error.to_string().contains("memory"), "{error}");
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the backend does not declare `feature`.
    pub fn require(&self, feature: Feature, what: &str, backend: &str) -> Result<()> {
        if self.supports(feature) {
            return Ok(());
        }
        let able = super::scheme::declaring(feature);
        Err(Error::Unsupported {
            what: format!("{what} ({feature})"),
            reason: format!(
                "{} cannot guarantee {feature}; use a backend that can: {}",
                super::redacted(backend),
                if able.is_empty() {
                    "none is compiled into this build".to_owned()
                } else {
                    able.join(", ")
                }
            ),
        })
    }

    /// The same with another priority order.
    ///
    /// ```
    /// use mq::transport::{Capabilities, Priorities};
    ///
    /// let fifo = Capabilities::new().with_priorities(Priorities::None);
    /// assert_eq!(fifo.priorities, Priorities::None);
    /// ```
    pub fn with_priorities(self, priorities: Priorities) -> Capabilities {
        Capabilities { priorities, ..self }
    }

    /// The same with delays and TTRs counted in `step`, at most `max`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let seconds = mq::transport::Capabilities::new().with_delays(Duration::from_secs(1), None);
    /// assert_eq!(seconds.delay_step, Duration::from_secs(1));
    /// ```
    pub fn with_delays(self, step: Duration, max: Option<Duration>) -> Capabilities {
        Capabilities {
            delay_step: step,
            max_delay: max,
            ..self
        }
    }

    /// The same with a size limit.
    ///
    /// ```
    /// let small = mq::transport::Capabilities::new().with_max_message_size(65_535);
    /// assert_eq!(small.max_message_size, Some(65_535));
    /// ```
    pub fn with_max_message_size(self, limit: usize) -> Capabilities {
        Capabilities {
            max_message_size: Some(limit),
            ..self
        }
    }

    /// The same with another kind of keep-alive.
    ///
    /// ```
    /// use mq::transport::{Capabilities, KeepAlive};
    /// use std::time::Duration;
    ///
    /// let lease = KeepAlive::Emulated { lease: Duration::from_secs(30) };
    /// assert_eq!(Capabilities::new().with_keep_alive(lease).keep_alive, lease);
    /// ```
    pub fn with_keep_alive(self, keep_alive: KeepAlive) -> Capabilities {
        Capabilities { keep_alive, ..self }
    }

    /// Checks one dispatch of message `name`: its envelope's size and its options.
    pub(crate) fn check_put(&self, name: &str, size: usize, options: &PutOptions) -> Result<()> {
        if let Some(limit) = self.max_message_size {
            if size > limit {
                return Err(Error::TooLarge {
                    name: name.to_owned(),
                    size,
                    limit,
                });
            }
        }
        self.check_options(name, options.priority, options.delay, options.ttr)
    }

    /// Checks the options of every message a worker handles, at start-up.
    pub(crate) fn check_messages<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a MessageInfo>,
    ) -> Result<()> {
        for info in messages {
            let options = &info.options;
            self.check_options(info.name, options.priority, options.delay, options.ttr)?;
            if let (Some(backoff), Some(max)) = (options.backoff, self.max_delay) {
                if backoff.max > max {
                    return Err(Error::Unrepresentable {
                        what: "backoff",
                        value: backoff.max,
                        reason: format!(
                            "message `{}` waits up to that between attempts; this backend's \
                             longest delay is {max:?}",
                            info.name
                        ),
                    });
                }
            }
            if options.unique.is_some() {
                let what = format!("`#[message(unique)]` of message `{}`", info.name);
                self.require(Feature::Unique, &what, "this backend")?;
            }
            let limits = [
                ("concurrency", options.concurrency),
                ("rate_limit", options.rate),
            ];
            for (key, limit) in limits.iter().filter_map(|(k, l)| Some((k, (*l)?))) {
                if limit == 0 {
                    return Err(Error::Config(format!(
                        "message `{}`: `{key} = 0` would never run it; give 1 or more",
                        info.name
                    )));
                }
                let what = format!("`#[message({key} = {limit})]` of message `{}`", info.name);
                self.require(Feature::KeyLimits, &what, "this backend")?;
            }
            if let Priorities::Banded { exact_below } = self.priorities {
                if options.priority >= exact_below && options.priority != DEFAULT_PRIORITY {
                    tracing::info!(
                        message = info.name,
                        priority = options.priority,
                        "this backend orders priorities from {exact_below} up in bands: \
                         messages of nearby priorities are reserved by age"
                    );
                }
            }
        }
        Ok(())
    }

    fn check_options(
        &self,
        name: &str,
        priority: u32,
        delay: Duration,
        ttr: Duration,
    ) -> Result<()> {
        if self.priorities == Priorities::None && priority != DEFAULT_PRIORITY {
            return Err(Error::Unsupported {
                what: format!("priority {priority} for message `{name}`"),
                reason: "this backend reserves by age only; remove the priority, or use a \
                         backend with priorities (sqlite, beanstalk)"
                    .to_owned(),
            });
        }
        if let Some(max) = self.max_delay {
            for (what, value) in [("delay", delay), ("ttr", ttr)] {
                if value > max {
                    return Err(Error::Unrepresentable {
                        what,
                        value,
                        reason: format!("message `{name}`: this backend's longest is {max:?}"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// [`Error::TooLarge`] for an item of `queue` a backend refuses at its own `put` (a dispatch
/// is checked before, by [`Capabilities::check_put`]; `mq publish`, a retry whose envelope
/// grew or another producer may not be): named by its envelope's wire name where it has one.
#[cfg_attr(
    not(any(feature = "beanstalk", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn too_large(queue: &str, body: &[u8], limit: usize) -> Error {
    let name = crate::envelope::Envelope::decode(body)
        .map(|envelope| envelope.name)
        .unwrap_or_else(|_| format!("(item for queue {queue})"));
    Error::TooLarge {
        name,
        size: body.len(),
        limit,
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}

/// The error of a default method that only a backend with `feature` overrides: the
/// refusal naming the backends that can, or, from a backend that declares the feature but
/// kept the default, `mistake`.
pub(super) fn missing<T: super::Transport + ?Sized>(
    transport: &T,
    feature: Feature,
    what: String,
    mistake: &str,
) -> Error {
    match transport
        .capabilities()
        .require(feature, &what, &transport.describe())
    {
        Err(refused) => refused,
        Ok(()) => Error::Unsupported {
            what,
            reason: mistake.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_without_priorities_refuses_one_and_takes_the_default() {
        let none = Capabilities::new().with_priorities(Priorities::None);
        let asked = PutOptions::default().with_priority(3);
        let error = none.check_put("shop.Order", 10, &asked).unwrap_err();
        assert!(error.to_string().contains("priority 3"), "{error}");
        none.check_put("shop.Order", 10, &PutOptions::default())
            .unwrap();
        Capabilities::new()
            .check_put("shop.Order", 10, &asked)
            .unwrap();
    }

    #[test]
    fn size_and_delay_limits_are_errors() {
        let small = Capabilities::new()
            .with_max_message_size(100)
            .with_delays(Duration::from_secs(1), Some(Duration::from_secs(60)));
        assert!(matches!(
            small.check_put("m", 101, &PutOptions::default()),
            Err(Error::TooLarge {
                size: 101,
                limit: 100,
                ..
            })
        ));
        let late = PutOptions::default().with_delay(Duration::from_secs(61));
        assert!(matches!(
            small.check_put("m", 10, &late),
            Err(Error::Unrepresentable { what: "delay", .. })
        ));
        small.check_put("m", 100, &PutOptions::default()).unwrap();
    }
}
