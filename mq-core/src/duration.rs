//! The one duration syntax of mq at run time: the worker's flags and `MQ_*` variables, the
//! `mq` command's options and URL options (`ack_wait=`) all read durations here.

use std::time::Duration;

/// Parses a duration as people write it: `90s`, `2m`, `1h30m`, `1h 30m`, `500ms`; a bare
/// number is seconds (`30` is `30s`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(mq::parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(mq::parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert!(mq::parse_duration("soon").is_err());
/// ```
///
/// # Errors
///
/// A text that is neither: the error says what it is and how to write one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    // The parser's own words ("expected number at 0") would only puzzle a person.
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!(
            "`{text}` is not a duration: write a number and a unit, e.g. 90s, 2m, 1h30m, \
             500ms, or a number of seconds (30)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 30 "), Ok(Duration::from_secs(30)));
        let error = parse_duration("soon").unwrap_err();
        assert!(error.contains("e.g. 90s"), "{error}");
        assert!(!error.contains("expected"), "{error}");
        assert!(parse_duration("-3").is_err());
    }
}
