//! Encoded text: base64 and percent-encoded tokens that are decoded and scanned again.

use std::ops::Range;

use super::entropy::runs;
use super::filters::decode_base64;

/// Shortest base64 token (padding included) worth decoding.
pub(super) const MIN_BASE64_LEN: usize = 16;
/// Share of decoded characters that must be printable (or `\t`, `\n`, `\r`).
const MIN_PRINTABLE_RATIO: f64 = 0.95;

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-')
}

/// Base64 candidates in `text`: runs of the (standard or URL-safe) alphabet with up to
/// two `=` of padding, at least [`MIN_BASE64_LEN`] long. A `=` followed by more
/// alphabet (`KEY=dXNl...`) ends one token and the next starts after it.
pub(super) fn base64_tokens(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let bytes = text.as_bytes();
    runs(bytes, is_base64_byte).filter_map(move |r| {
        let mut end = r.end;
        while end < bytes.len() && end - r.end < 2 && bytes[end] == b'=' {
            end += 1;
        }
        (end - r.start >= MIN_BASE64_LEN).then_some(r.start..end)
    })
}

/// Decodes `token` if it is base64 of mostly printable UTF-8 text.
pub(super) fn decode_printable_base64(token: &str) -> Option<String> {
    let bytes = decode_base64(token)?;
    if bytes.len() < 8 {
        return None;
    }
    let text = String::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .count();
    (printable as f64 >= MIN_PRINTABLE_RATIO * total as f64).then_some(text)
}

fn is_url_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>')
}

/// Percent-encoded tokens in `text` (runs of URL characters holding at least one
/// `%XX`), each with its decoded text when that differs and is UTF-8.
pub(super) fn percent_tokens(text: &str) -> impl Iterator<Item = (Range<usize>, String)> + '_ {
    let bytes = text.as_bytes();
    runs(bytes, is_url_byte).filter_map(move |r| {
        let decoded = percent_decode(&bytes[r.clone()])?;
        Some((r, decoded))
    })
}

fn percent_decode(token: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    // Most tokens have no escape at all: find one before allocating.
    if !token.contains(&b'%')
        || !token
            .windows(3)
            .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    {
        return None;
    }
    let mut out = Vec::with_capacity(token.len());
    let mut changed = false;
    let mut i = 0;
    while i < token.len() {
        if token[i] == b'%'
            && i + 2 < token.len()
            && let (Some(h), Some(l)) = (hex(token[i + 1]), hex(token[i + 2]))
        {
            // h and l are < 16, so this fits in a byte.
            out.push(u8::try_from(h * 16 + l).ok()?);
            changed = true;
            i += 3;
            continue;
        }
        out.push(token[i]);
        i += 1;
    }
    if !changed {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_tokens_split_at_inner_padding() {
        let text = "KEY=dXNlcjpodW50ZXIy and YWRtaW46aHVudGVyMg== done";
        let toks: Vec<&str> = base64_tokens(text).map(|r| &text[r]).collect();
        assert_eq!(toks, ["dXNlcjpodW50ZXIy", "YWRtaW46aHVudGVyMg=="]);
    }

    #[test]
    fn printable_base64_only() {
        assert_eq!(
            decode_printable_base64("dXNlcjpodW50ZXIy").as_deref(),
            Some("user:hunter2")
        );
        assert_eq!(
            decode_printable_base64(
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            ),
            None
        );
        assert_eq!(decode_printable_base64("internationalization"), None);
    }

    #[test]
    fn percent_decoding() {
        let text = "x https://h/?p=p%40ss%21 y";
        let toks: Vec<(Range<usize>, String)> = percent_tokens(text).collect();
        assert_eq!(toks.len(), 1);
        assert_eq!(toks[0].1, "https://h/?p=p@ss!");
        assert!(percent_tokens("100% sure %zz").next().is_none());
    }
}
