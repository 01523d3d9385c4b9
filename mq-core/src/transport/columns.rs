//! How mq's values are kept in SQL columns (SQLite and PostgreSQL alike): ids as signed
//! 64-bit integers, durations and times as whole milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration in whole milliseconds, rounded up so that a delay never shrinks.
pub(crate) fn ms_ceil(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// Milliseconds read back as a duration; a negative count is zero.
pub(crate) fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Milliseconds since the Unix epoch; 0 before it.
pub(crate) fn epoch_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Milliseconds since the Unix epoch read back as a time; a negative count is the epoch.
pub(crate) fn epoch_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + ms_duration(ms)
}

/// An id as the database stores it; an id too large for it names no row.
pub(crate) fn sql_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(-1)
}

/// An id as the database gave it.
pub(crate) fn row_id(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}
