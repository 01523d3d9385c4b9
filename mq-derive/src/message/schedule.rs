//! `schedule = "<cron>"` and `schedule_zone = "<IANA zone>"`: a recurring message, its
//! expression and zone checked here with the parser and zone database mq runs them with,
//! so that a typo is a compile error at the literal rather than a worker that will not start.

use croner::parser::{CronParser, Seconds};
use syn::LitStr;

/// Reads `schedule = "0 */5 * * * *"`.
pub(crate) fn read_cron(lit: &LitStr) -> syn::Result<String> {
    let expr = lit.value();
    let parser = CronParser::builder().seconds(Seconds::Optional).build();
    match parser.parse(&expr) {
        Ok(_) => Ok(expr),
        Err(error) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`schedule = \"{expr}\"` is not a cron expression ({error}): write five fields \
                 (minute hour day month weekday) or six with seconds first, e.g. \
                 `schedule = \"0 */5 * * * *\"` for every five minutes"
            ),
        )),
    }
}

/// Reads `schedule_zone = "Europe/Berlin"`.
pub(crate) fn read_zone(lit: &LitStr) -> syn::Result<String> {
    let zone = lit.value();
    match zone.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(zone),
        Err(_) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`schedule_zone = \"{zone}\"` is not a time zone of the IANA database: write \
                 one such as `schedule_zone = \"Europe/Berlin\"` or `\"America/New_York\"`"
            ),
        )),
    }
}
