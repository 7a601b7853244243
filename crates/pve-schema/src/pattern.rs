//! Translation of the Perl regexes found in apidata `pattern`s to Rust `regex` syntax.
//!
//! apidata serialises Perl `qr//` objects, so patterns look like `(?^:[a-z]+)` or `(?^i:...)`:
//! `(?^` resets to default flags and then applies the listed ones. Rust's `regex` has no `^`
//! flag reset, but since the default flags are already in force at the top level, `(?^i:` can be
//! written `(?i:` and `(?^:` as `(?:`. Perl's `\0` (NUL) is written `\x00`.

use regex::Regex;

/// Translates a Perl pattern to Rust regex syntax (without anchoring).
pub(crate) fn translate(perl: &str) -> String {
    let mut out = String::with_capacity(perl.len() + 8);
    let chars: Vec<char> = perl.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if n == '0' && !chars.get(i + 2).is_some_and(|d| d.is_ascii_digit()) {
                out.push_str("\\x00");
            } else if n == 'Z' {
                // Perl `\Z`: end of string or before a final newline.
                out.push_str("\\n?\\z");
            } else {
                out.push(c);
                out.push(n);
            }
            i += 2;
            continue;
        }
        if c == '(' && chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'^') {
            // `(?^flags:` → `(?flags:`; Rust needs at least `(?:`.
            let mut j = i + 3;
            let mut flags = String::new();
            while j < chars.len() && chars[j].is_ascii_alphabetic() {
                flags.push(chars[j]);
                j += 1;
            }
            out.push_str("(?");
            out.push_str(&flags);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Compiles a Perl pattern anchored the way `PVE::JSONSchema::check_prop` uses it:
/// `m/^$pattern$/`. Perl's `$` also matches before a trailing newline, so that is allowed too.
/// Returns `None` if the pattern cannot be expressed in Rust's regex dialect.
pub(crate) fn compile_anchored(perl: &str) -> Option<Regex> {
    Regex::new(&format!("\\A(?:{})\\n?\\z", translate(perl))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_flag_resets() {
        assert_eq!(translate("(?^:[a-z]+)"), "(?:[a-z]+)");
        assert_eq!(translate("(?^i:[a-z]+)"), "(?i:[a-z]+)");
        assert_eq!(translate("a\\0b"), "a\\x00b");
        assert_eq!(translate("\\d+"), "\\d+");
    }

    #[test]
    fn anchored_like_perl() {
        let re = compile_anchored("(?^i:[a-z]+)").expect("compiles");
        assert!(re.is_match("abc"));
        assert!(re.is_match("ABC"));
        assert!(re.is_match("abc\n"));
        assert!(!re.is_match("abc1"));
        assert!(!re.is_match("1abc"));
    }

    #[test]
    fn env_pattern_with_nul_compiles() {
        let p = "(?^:(?:\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)(?:\\0\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)*)";
        let re = compile_anchored(p).expect("compiles");
        assert!(re.is_match("A=1\0B=2"));
    }
}
