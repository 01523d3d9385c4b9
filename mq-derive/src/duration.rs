//! Durations as people write them (`"90s"`, `"2m"`, `"1h30m"`), read at compile time.

use std::time::Duration;

use syn::LitStr;

/// Parses the literal of option `key`, or an error spanned at it that names the option as
/// written and shows how to write it, `example` first (the parser's own words, such as
/// "expected number at 0", would only puzzle).
pub(crate) fn parse(key: &str, lit: &LitStr, example: &str) -> syn::Result<Duration> {
    let text = lit.value();
    humantime::parse_duration(&text).map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "`{key} = \"{text}\"` is not a duration: write a number and a unit, e.g. \
                 `{key} = \"{example}\"` (units ms, s, m, h, d; combined: \"1h30m\")"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str) -> LitStr {
        LitStr::new(text, proc_macro2::Span::call_site())
    }

    #[test]
    fn reads_what_people_write() {
        let parse = |text| parse("ttr", &lit(text), "2m");
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn refuses_words() {
        let error = parse("timeout", &lit("soon"), "90s")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`timeout = \"soon\"` is not a duration"),
            "{error}"
        );
        assert!(error.contains("`timeout = \"90s\"`"), "{error}");
        assert!(!error.contains("expected number"), "{error}");
    }
}
