//! When a schedule ticks: a cron expression in a time zone, or an interval; parsed once,
//! with errors that say what to write.

use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};

use crate::{Error, Result};

#[derive(Clone)]
pub(super) enum When {
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
        zone: chrono_tz::Tz,
    },
    Every(Duration),
}

impl When {
    pub(super) fn cron(name: &str, expr: &str) -> Result<When> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(expr).map_err(|error| {
            Error::Config(format!(
                "schedule `{name}`: `{expr}` is not a cron expression ({error}); write five \
                 fields (minute hour day month weekday) or six with seconds first, e.g. \
                 \"0 */5 * * * *\" for every five minutes"
            ))
        })?;
        Ok(When::Cron {
            expr: expr.to_owned(),
            cron: Box::new(cron),
            zone: chrono_tz::Tz::UTC,
        })
    }

    pub(super) fn every(name: &str, interval: Duration) -> Result<When> {
        if interval < Duration::from_millis(1) {
            return Err(Error::Config(format!(
                "schedule `{name}`: an interval of {interval:?} never ticks; give one of at \
                 least 1ms, e.g. Duration::from_secs(60)"
            )));
        }
        Ok(When::Every(interval))
    }

    pub(super) fn in_zone(self, name: &str, zone: &str) -> Result<When> {
        let When::Cron { expr, cron, .. } = self else {
            return Err(Error::Config(format!(
                "schedule `{name}`: an interval has no time zone; use a cron expression to \
                 tick at times of day in `{zone}`"
            )));
        };
        let zone = zone.parse::<chrono_tz::Tz>().map_err(|_| {
            Error::Config(format!(
                "schedule `{name}`: `{zone}` is not a time zone of the IANA database; write \
                 one such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
            ))
        })?;
        Ok(When::Cron { expr, cron, zone })
    }

    pub(super) fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match self {
            When::Cron { cron, zone, .. } => {
                let after = DateTime::<Utc>::from(after).with_timezone(zone);
                let next = cron.find_next_occurrence(&after, false).ok()?;
                Some(SystemTime::from(next))
            }
            When::Every(interval) => {
                let since = after.duration_since(SystemTime::UNIX_EPOCH).ok()?;
                let step = interval.as_nanos();
                let next = (since.as_nanos() / step + 1).checked_mul(step)?;
                let next = Duration::from_nanos(u64::try_from(next).ok()?);
                Some(SystemTime::UNIX_EPOCH + next)
            }
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Cron { expr, zone, .. } => write!(f, "cron \"{expr}\" in {zone}"),
            When::Every(interval) => write!(f, "every {}", humantime::format_duration(*interval)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn cron_with_seconds_in_a_zone() {
        let every_ten = When::cron("t", "*/10 * * * * *").unwrap();
        assert_eq!(every_ten.next_after(at(5)), Some(at(10)));
        assert_eq!(every_ten.next_after(at(10)), Some(at(20)), "strictly after");
        let nine = When::cron("t", "0 0 9 * * *").unwrap();
        let berlin = nine.in_zone("t", "Europe/Berlin").unwrap();
        // 1970-01-01 09:00 in Berlin (UTC+1) is 08:00 UTC.
        assert_eq!(berlin.next_after(at(0)), Some(at(8 * 3600)));
        assert_eq!(berlin.to_string(), "cron \"0 0 9 * * *\" in Europe/Berlin");
    }

    #[test]
    fn bad_input_says_what_to_write() {
        let error = When::cron("t", "0 0 25 * * *").err().unwrap().to_string();
        assert!(error.contains("is not a cron expression"), "{error}");
        let zone = When::cron("t", "* * * * *")
            .unwrap()
            .in_zone("t", "Mars/Olympus");
        assert!(zone.err().unwrap().to_string().contains("IANA"));
        assert!(When::every("t", Duration::ZERO).is_err());
        let interval = When::every("t", Duration::from_secs(1)).unwrap();
        assert!(interval.in_zone("t", "UTC").is_err());
    }

    #[test]
    fn intervals_tick_at_multiples_since_the_epoch() {
        let every = When::every("t", Duration::from_millis(1500)).unwrap();
        assert_eq!(
            every.next_after(at(2)),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(3000))
        );
        assert_eq!(every.to_string(), "every 1s 500ms");
    }
}
