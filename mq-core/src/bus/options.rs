//! What a dispatch adds to a message besides its body: a unique key (`.unique(key)`) and
//! a per-key limit (`.concurrency_key`, `.rate_limit`, or the type's own).

use std::time::Duration;

use crate::envelope::Envelope;
use crate::message::Message;
use crate::transport::{self, Transport};
use crate::{Error, Result};

/// The unique key a dispatch gives (`.unique(key)`, `.unique_for(d)`), over the type's.
#[derive(Debug, Default, Clone)]
pub(super) struct UniqueKey {
    pub(super) key: Option<String>,
    pub(super) hold_after: Option<Duration>,
    /// `.debounce(key, quiet, max_wait)`.
    pub(super) debounce: Option<(String, Duration, Duration)>,
}

impl UniqueKey {
    /// The key of this dispatch of `message`, namespaced by its wire name, if it has one.
    pub(super) fn resolve<M: Message>(
        self,
        message: &M,
        envelope: &Envelope,
    ) -> Result<Option<transport::Unique>> {
        let key = match self.key {
            Some(key) => key,
            None => match message.unique_key() {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(None),
                Err(source) => {
                    let name = M::NAME.to_owned();
                    return Err(Error::Encode { name, source });
                }
            },
        };
        let hold_after = self
            .hold_after
            .or(M::OPTIONS.unique)
            .unwrap_or(Duration::ZERO);
        let unique = transport::Unique::new(format!("{}:{key}", M::NAME), envelope.id.clone());
        Ok(Some(unique.hold_after(hold_after)))
    }
}

/// A dispatch's limits: at most so many messages with a key run at once (`concurrency`),
/// or start per second (`rate`).
#[derive(Debug, Clone, Default)]
pub(super) struct KeyLimit {
    pub(super) concurrency: Option<(String, u32)>,
    pub(super) rate: Option<(String, u32)>,
}

impl KeyLimit {
    /// The limits of this dispatch of `message`: each one the dispatch gave, else the
    /// type's own (`#[message(concurrency = .., rate_limit = ..)]`), keyed by the type's
    /// wire name and the values of its key fields (`NAME:value`, or `NAME` without key
    /// fields); `None` when there is neither.
    pub(super) fn resolve<M: Message>(
        given: Option<&KeyLimit>,
        message: &M,
    ) -> Result<Option<KeyLimit>> {
        let mut limit = given.cloned().unwrap_or_default();
        let wanted = (
            limit.concurrency.is_none() && M::OPTIONS.concurrency.is_some(),
            limit.rate.is_none() && M::OPTIONS.rate.is_some(),
        );
        if wanted.0 || wanted.1 {
            let (concurrency, rate) = message.limit_keys().map_err(|source| Error::Encode {
                name: M::NAME.to_owned(),
                source,
            })?;
            let key = |value: Option<String>| match value {
                Some(value) => format!("{}:{value}", M::NAME),
                None => M::NAME.to_owned(),
            };
            if let (true, Some(n)) = (wanted.0, M::OPTIONS.concurrency) {
                limit.concurrency = Some((key(concurrency), n));
            }
            if let (true, Some(r)) = (wanted.1, M::OPTIONS.rate) {
                limit.rate = Some((key(rate), r));
            }
        }
        let any = limit.concurrency.is_some() || limit.rate.is_some();
        Ok(any.then_some(limit))
    }

    /// Refuses a limit of 0 and a backend that cannot keep the count.
    pub(super) fn check(&self, name: &str, transport: &dyn Transport) -> Result<()> {
        let limits = [("concurrency", &self.concurrency), ("rate", &self.rate)];
        for (kind, (key, limit)) in limits.iter().filter_map(|(k, l)| Some((k, l.as_ref()?))) {
            if *limit == 0 {
                return Err(Error::Config(format!(
                    "message `{name}`: a {kind} limit of 0 for key `{key}` would never run \
                     it; give 1 or more"
                )));
            }
            let what = format!("{kind} limit of key `{key}` for message `{name}`");
            transport.capabilities().require(
                transport::Feature::KeyLimits,
                &what,
                &transport.describe(),
            )?;
        }
        Ok(())
    }

    /// Writes the limits into the envelope's headers, where the worker reads them.
    pub(super) fn write(&self, headers: &mut crate::envelope::Headers) {
        use crate::worker::{LIMIT, LIMIT_KEY, RATE, RATE_KEY};
        let limits = [
            (LIMIT_KEY, LIMIT, &self.concurrency),
            (RATE_KEY, RATE, &self.rate),
        ];
        for (key_header, limit_header, limit) in limits {
            if let Some((key, limit)) = limit {
                headers.insert(key_header.to_owned(), key.clone());
                headers.insert(limit_header.to_owned(), limit.to_string());
            }
        }
    }
}
