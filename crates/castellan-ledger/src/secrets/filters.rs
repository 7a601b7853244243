//! Value checks that a regular expression cannot express (the `regex` crate has no
//! look-around): placeholders, references to where a secret lives, and prose.
//!
//! The guiding rule: an owner response may *name* a secret (`${DB_PASSWORD}`,
//! `{{ vault_db_password }}`, `op://ops/db/password`, `<redacted>`), never *carry* one.
//! `changeme` and other well-known defaults are deliberately **not** placeholders: a
//! default credential that is really in use is a secret all the same.

use std::ops::Range;

use base64::Engine as _;

/// The value check a rule applies to each match (`filter:` in the rule file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    /// Every match is a finding.
    None,
    /// The secret must not be a placeholder or a reference.
    Value,
    /// As `Value`, and a bare `key: value` must not be the start of a sentence.
    Assignment,
    /// A cookie list (`a=b; c=d`) with at least one real value.
    Cookie,
    /// Base64 of `user:password` with a real password.
    BasicAuth,
    /// A block of `key: value` lines with at least one real value.
    KvBlock,
    /// As `Value`, and shaped like a password: at least 8 characters with a lower-case
    /// letter, a digit, and an upper-case letter or a symbol; not a ticket id or a hash.
    PasswordLike,
}

impl Filter {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "value" => Self::Value,
            "assignment" => Self::Assignment,
            "cookie" => Self::Cookie,
            "basic_auth" => Self::BasicAuth,
            "kv_block" => Self::KvBlock,
            "password_like" => Self::PasswordLike,
            _ => return None,
        })
    }

    /// Whether the match whose secret is `text[secret]` is a finding.
    pub(super) fn accept(self, text: &str, secret: Range<usize>) -> bool {
        let value = &text[secret.clone()];
        match self {
            Self::None => true,
            Self::Value => !is_placeholder(value),
            Self::Assignment => !is_placeholder(value) && !is_prose(text, secret),
            Self::Cookie => value.split(';').any(|pair| {
                let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
                !COOKIE_ATTRIBUTES.contains(&name.trim().to_ascii_lowercase().as_str())
                    && !is_placeholder(v)
            }),
            Self::BasicAuth => decode_base64(value)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(_, password)| !is_placeholder(password))
                })
                .unwrap_or(false),
            Self::PasswordLike => !is_placeholder(value) && is_password_like(value),
            Self::KvBlock => value.lines().any(|line| {
                line.split_once(':')
                    .is_some_and(|(_, v)| !is_placeholder(v))
            }),
        }
    }
}

const COOKIE_ATTRIBUTES: &[&str] = &[
    "path",
    "domain",
    "expires",
    "max-age",
    "samesite",
    "secure",
    "httponly",
    "priority",
    "partitioned",
];

/// Words that stand in for a value rather than being one (compared lower-cased).
const PLACEHOLDER_WORDS: &[&str] = &[
    "none",
    "null",
    "nil",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "n/a",
    "na",
    "tbd",
    "todo",
    "unset",
    "notset",
    "not_set",
    "not-set",
    "empty",
    "hidden",
    "masked",
    "omitted",
    "removed",
    "pending",
    "required",
    "optional",
    "string",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "api_key",
    "apikey",
    "value",
    "example",
    "sample",
    "dummy",
    "vault",
    "keyvault",
    "sops",
    "ssm",
    "stdin",
    "prompt",
    "undefined",
    // Statements about a secret, not the secret.
    "rotated",
    "revoked",
    "expired",
    "disabled",
    "external",
    "managed",
    "vaulted",
    "unchanged",
    "inherited",
    "generated",
    "random",
    "auto",
    "automatic",
    "unknown",
    "varies",
    "various",
];

/// Prefixes of references to a secret store (compared lower-cased).
const REFERENCE_PREFIXES: &[&str] = &[
    "vault:",
    "op://",
    "ref+",
    "arn:aws:secretsmanager:",
    "arn:aws:ssm:",
    "secretsmanager:",
    "ssm:",
    "sops:",
    "env:",
    "file:",
    "awskms:",
    "gcpkms:",
    "azurekv:",
    "keyvault:",
    "akv:",
    "bw:",
    "gopass:",
    "lookup(",
    "kv/",
    "secret/",
    "secrets/",
    "http://",
    "https://",
    "enc[",
];

/// Token prefixes that do not count as revealed characters of a masked value.
const TOKEN_PREFIXES: &[&str] = &[
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "sk_live_",
    "rk_live_",
    "sk-ant-",
    "sk-proj-",
    "npm_",
    "pypi-",
    "hvs.",
    "dop_v1_",
    "akia",
    "asia",
    "aiza",
];

/// Characters used to mask a value.
fn is_mask_char(c: char) -> bool {
    matches!(c, '*' | '•' | '…' | '.' | '#' | '?' | 'x' | 'X' | '-' | '_')
}

/// Whether `raw` is a placeholder, a reference or too short to be a secret, rather
/// than a secret value.
pub(super) fn is_placeholder(raw: &str) -> bool {
    let v = raw
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '`' | '\\'))
        .trim();
    if v.chars().count() < 3 {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    let first = v.chars().next().unwrap_or(' ');
    let last = v.chars().last().unwrap_or(' ');
    // Wrapped (`<redacted>`, `[REDACTED]`, `(hidden)`) or templated (`{{ x }}`, `{% %}`).
    if matches!((first, last), ('<', '>') | ('[', ']') | ('(', ')')) || first == '{' || first == '<'
    {
        return true;
    }
    // Interpolations: ${VAR}, $(cmd), #{x}, %(x)s, <%= x %>, $VAR, %VAR%.
    if ["${", "$(", "#{", "%(", "<%"]
        .iter()
        .any(|p| v.starts_with(p))
    {
        return true;
    }
    if let Some(name) = v.strip_prefix('$')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return true;
    }
    if first == '%' && last == '%' {
        return true;
    }
    // YAML tags (`!vault |`), anchors and aliases (`*db_password`).
    if first == '!' || first == '&' {
        return true;
    }
    if let Some(alias) = v.strip_prefix('*')
        && alias
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
    {
        return true;
    }
    if lower.contains("redacted")
        || lower.contains("placeholder")
        || lower.contains("pending_owner_response")
    {
        return true;
    }
    if PLACEHOLDER_WORDS.contains(&lower.as_str()) {
        return true;
    }
    if lower.starts_with("your") || lower.ends_with("_here") || lower.ends_with("-here") {
        return true;
    }
    if REFERENCE_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    // A path to where the secret lives (`/run/secrets/db`), not the secret.
    if (v.starts_with('/') || v.starts_with("./") || v.starts_with("../") || v.starts_with("~/"))
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '~'))
    {
        return true;
    }
    if v.chars().all(is_mask_char) {
        return true;
    }
    // Masked (`ghp_****`, `AKIA...`, `hu****`): a placeholder unless it still reveals at
    // least four characters besides a known token prefix.
    if v.contains("**") || v.contains('•') || v.contains('…') || v.contains("...") {
        let rest = TOKEN_PREFIXES
            .iter()
            .find_map(|p| lower.strip_prefix(p).map(|_| &v[p.len()..]))
            .unwrap_or(v);
        return revealed_chars(rest) < 4;
    }
    false
}

/// Whether `v` is shaped like a password rather than a word, an id or a hash.
fn is_password_like(v: &str) -> bool {
    let v = v.trim_end_matches(['.', ',', ')', ']']);
    let lower = v.chars().any(|c| c.is_ascii_lowercase());
    let upper = v.chars().any(|c| c.is_ascii_uppercase());
    let digit = v.chars().any(|c| c.is_ascii_digit());
    let symbol = v
        .chars()
        .any(|c| c.is_ascii_punctuation() && !matches!(c, '-' | '_' | '.' | '/' | ':'));
    let hex = v.chars().all(|c| c.is_ascii_hexdigit());
    let ticket = v.split_once('-').is_some_and(|(a, b)| {
        a.chars().all(|c| c.is_ascii_uppercase()) && b.chars().all(|c| c.is_ascii_digit())
    });
    let hash = v.to_ascii_lowercase().starts_with("sha256:");
    v.chars().count() >= 8 && lower && digit && (upper || symbol) && !hex && !ticket && !hash
}

/// Alphanumeric characters of a masked value that are not part of a mask (`xxxx`).
fn revealed_chars(v: &str) -> usize {
    let chars: Vec<char> = v.chars().collect();
    let is_x = |i: usize| chars.get(i).is_some_and(|c| matches!(c, 'x' | 'X'));
    (0..chars.len())
        .filter(|&i| chars[i].is_ascii_alphanumeric())
        .filter(|&i| !(is_x(i) && (is_x(i + 1) || (i > 0 && is_x(i - 1)))))
        .count()
}

/// Words that mark a quoted value as a sentence about the secret, not the secret.
const STOPWORDS: &[&str] = &[
    "the", "in", "via", "see", "from", "stored", "managed", "by", "is", "are", "not", "under",
    "at", "of", "to", "and", "with", "for", "on", "we", "it", "rotated", "kept", "lives",
];

/// Whether the value at `secret` is the first word of prose (`password: stored in Vault`)
/// rather than a value. Applies to a bare value after `:` followed by more words on the
/// line, and to a quoted value that reads as a sentence.
fn is_prose(text: &str, secret: Range<usize>) -> bool {
    let before = &text[..secret.start];
    let quoted = before.ends_with(['"', '\'']);
    let value = &text[secret.clone()];
    if quoted {
        return value.split_whitespace().count() > 1
            && value
                .split_whitespace()
                .any(|w| STOPWORDS.contains(&w.to_ascii_lowercase().as_str()));
    }
    let separator = before
        .trim_end_matches([' ', '\t', '"', '\'', '\\'])
        .chars()
        .last();
    if separator != Some(':') {
        return false;
    }
    let rest = text[secret.end..].lines().next().unwrap_or("").trim_start();
    rest.chars().next().is_some_and(|c| c.is_alphabetic())
}

/// Decodes standard or URL-safe base64, padded or not.
pub(super) fn decode_base64(token: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let url_safe = token.contains(['-', '_']);
    if url_safe && token.contains(['+', '/']) {
        return None;
    }
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    engine.decode(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for p in [
            "",
            "ab",
            "<redacted>",
            "[REDACTED]",
            "REDACTED",
            "***",
            "********",
            "xxxxxxxx",
            "${GITHUB_TOKEN}",
            "$GITHUB_TOKEN",
            "{{",
            "{{ vault_db_password }}",
            "pending_owner_response",
            "%DB_PASSWORD%",
            "!vault",
            "*db_password",
            "op://ops/db/password",
            "/run/secrets/db_password",
            "ghp_****",
            "ghp_...",
            "AKIA...",
            "none",
            "true",
            "ENC[AES256_GCM",
            "your_api_key_here",
            "\"\"",
            "https://vault.example.com/ui/vault/secrets/kv/show/db",
        ] {
            assert!(is_placeholder(p), "{p:?} should be a placeholder");
        }
        for s in [
            "hunter2",
            "changeme",
            "Sup3rS3cret!",
            "ghp_****wxyz",
            "AKIA...WXYZ",
            "correct horse",
            "hu****r2ab",
        ] {
            assert!(!is_placeholder(s), "{s:?} should be a value");
        }
    }

    #[test]
    fn prose_after_colon() {
        let text = "password: stored in Vault";
        assert!(is_prose(text, 10..16));
        let text = "password: hunter2  # rotated";
        assert!(!is_prose(text, 10..17));
        let text = "password=hunter2 psql";
        assert!(!is_prose(text, 9..16));
    }

    #[test]
    fn basic_auth_decodes_user_and_password() {
        assert!(Filter::BasicAuth.accept("dXNlcjpodW50ZXIy", 0..16));
        // "user:<redacted>"
        assert!(!Filter::BasicAuth.accept("dXNlcjo8cmVkYWN0ZWQ+", 0..20));
        assert!(!Filter::BasicAuth.accept("token", 0..5));
    }
}
