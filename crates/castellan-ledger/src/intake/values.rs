//! What a value in an owner response says: present or placeholder, rendered as text, a reference or a list of them.

use super::*;

/// Whether an owner field counts as answered: not null, not empty, not a placeholder.
pub fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(_) | Value::Number(_) => true,
        Value::String(s) => !is_placeholder(s),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => o.values().any(present),
    }
}

pub(super) fn is_placeholder(s: &str) -> bool {
    let t = s.trim().to_ascii_lowercase();
    matches!(
        t.as_str(),
        "" | "-" | "?" | "n/a" | "na" | "none" | "null" | "tbd" | "todo" | "unknown" | "later"
    ) || t == PENDING
}

/// An owner field as one line of text (arrays joined with `; `, objects as compact JSON).
pub fn render_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter(|x| present(x))
            .map(render_text)
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The items of `redacted_evidence_refs`: (index suffix, the reference string if the item
/// has one).
pub(super) fn ref_items(v: &Value) -> Vec<(String, Option<&str>)> {
    fn item(x: &Value) -> Option<&str> {
        match x {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("ref").and_then(Value::as_str),
            _ => None,
        }
    }
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter(|(_, x)| present(x))
            .map(|(i, x)| (format!("[{i}]"), item(x)))
            .collect(),
        other => vec![(String::new(), item(other))],
    }
}

pub(super) static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    // A hash, commit, URL, URI-like pointer, ticket id, or path@commit / image@digest.
    #[allow(clippy::unwrap_used)] // a constant pattern, pinned by the tests
    Regex::new(
        r"(?x)^(?:
            (?:sha1|sha256|sha384|sha512|blake3|md5):[0-9a-fA-F]{32,128}
          | [0-9a-fA-F]{7,128}
          | https?://[^\s]+
          | [a-z][a-z0-9+.-]{1,30}:(?://)?[^\s]+
          | [A-Z][A-Z0-9]{1,15}-[0-9]{1,9}
          | \#[0-9]{1,9}
          | [A-Za-z0-9_./-]+@(?:sha256:)?[0-9a-fA-F]{7,64}
        )$",
    )
    .unwrap()
});

pub(super) static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z][A-Za-z0-9_-]{0,30}[:=]$").unwrap()
});

/// Whether `s` is one or more references, optionally labelled (`repo=git:ops@3f2a1bc
/// live: sha256:...`), separated by whitespace, commas or semicolons.
pub fn is_reference_list(s: &str) -> bool {
    let mut any = false;
    for token in s.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let token = token
            .trim_matches(|c| c == '(' || c == ')')
            .trim_end_matches('.');
        if token.is_empty() || LABEL.is_match(token) {
            continue;
        }
        // `label=ref` / `label:ref` where the label is a plain word and the rest a ref.
        let bare = token
            .split_once('=')
            .filter(|(l, _)| LABEL.is_match(&format!("{l}=")))
            .map(|(_, r)| r)
            .unwrap_or(token);
        if REFERENCE.is_match(bare) {
            any = true;
        } else {
            return false;
        }
    }
    any
}

pub(super) fn is_reference_value(v: &Value) -> bool {
    match v {
        Value::String(s) => is_reference_list(s),
        Value::Array(a) => {
            let items: Vec<&Value> = a.iter().filter(|x| present(x)).collect();
            !items.is_empty() && items.into_iter().all(is_reference_value)
        }
        Value::Object(o) => o.get("ref").is_some_and(is_reference_value),
        _ => false,
    }
}
