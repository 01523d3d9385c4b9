//! The keys of `#[message(...)]`, in one place.

pub(crate) const MESSAGE: &str = "message";
pub(crate) const NAME: &str = "name";
pub(crate) const QUEUE: &str = "queue";
pub(crate) const PRIORITY: &str = "priority";
pub(crate) const DELAY: &str = "delay";
pub(crate) const TTR: &str = "ttr";
pub(crate) const TIMEOUT: &str = "timeout";
pub(crate) const RETRIES: &str = "retries";
pub(crate) const BACKOFF: &str = "backoff";
pub(crate) const BACKOFF_MAX: &str = "backoff_max";
pub(crate) const UNIQUE: &str = "unique";
pub(crate) const UNIQUE_FOR: &str = "unique_for";
pub(crate) const CONCURRENCY: &str = "concurrency";
pub(crate) const CONCURRENCY_KEY: &str = "concurrency_key";
pub(crate) const RATE_LIMIT: &str = "rate_limit";
pub(crate) const RATE_KEY: &str = "rate_key";
pub(crate) const SCHEDULE: &str = "schedule";
pub(crate) const SCHEDULE_ZONE: &str = "schedule_zone";
pub(crate) const CRATE: &str = "crate";
pub(crate) const VERSION: &str = "version";
pub(crate) const PREVIOUS: &str = "previous";

/// Every key, in the order the error message lists them.
pub(crate) const ALL: [&str; 20] = [
    NAME,
    QUEUE,
    PRIORITY,
    DELAY,
    TTR,
    TIMEOUT,
    RETRIES,
    BACKOFF,
    BACKOFF_MAX,
    VERSION,
    PREVIOUS,
    UNIQUE,
    UNIQUE_FOR,
    CONCURRENCY,
    CONCURRENCY_KEY,
    RATE_LIMIT,
    RATE_KEY,
    SCHEDULE,
    SCHEDULE_ZONE,
    CRATE,
];
