//! Undoing a two-hex-digit escape (`%40` in a PostgreSQL URL, `-2e` in a NATS token): one
//! decoder for the backends that write or read such text.

/// `text` with every `<escape>XX` (two hex digits) replaced by that byte; `None` for a bad
/// escape or bytes that are not UTF-8.
pub(crate) fn unescape(text: &str, escape: u8) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == escape {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn decodes_escapes_and_refuses_bad_ones() {
        assert_eq!(unescape("p%40ss%2F", b'%').as_deref(), Some("p@ss/"));
        assert_eq!(unescape("a-2eb", b'-').as_deref(), Some("a.b"));
        assert_eq!(unescape("%4", b'%'), None);
        assert_eq!(unescape("%zz", b'%'), None);
        assert_eq!(unescape("%ff", b'%'), None, "not UTF-8");
    }
}
