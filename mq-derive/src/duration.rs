//! Durations as people write them (`"90s"`, `"2m"`, `"1h30m"`), read at compile time.

use std::time::Duration;

use syn::LitStr;

/// Parses the literal, or an error spanned at it that shows how to write one.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    humantime::parse_duration(&text).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("`{text}` is not a duration ({e}); write e.g. \"90s\", \"2m\" or \"1h30m\""),
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
        assert_eq!(parse(&lit("90s")).unwrap(), Duration::from_secs(90));
        assert_eq!(parse(&lit("2m")).unwrap(), Duration::from_secs(120));
        assert_eq!(parse(&lit("1h30m")).unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(&lit("250ms")).unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn refuses_words() {
        let error = parse(&lit("soon")).unwrap_err().to_string();
        assert!(error.contains("`soon` is not a duration"), "{error}");
        assert!(error.contains("1h30m"), "{error}");
    }
}
