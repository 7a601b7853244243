//! Walking an owner response: every string with its location, the envelope's fields, the shown names and the JSON errors.

use super::*;

pub(super) struct Str<'a> {
    pub(super) location: String,
    pub(super) text: &'a str,
    pub(super) is_key: bool,
    /// Free text where incident content counts (not reference fields, not the envelope ids).
    pub(super) prose: bool,
}

pub(super) static PLAIN_KEY: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$").unwrap()
});

/// A key as shown in a location: itself if it is a plain name with nothing secret in it,
/// else its ordinal.
pub(super) fn key_segment(scanner: &Scanner, key: &str, ordinal: usize) -> String {
    let mut f = Vec::new();
    if PLAIN_KEY.is_match(key) {
        scanner.scan(key, "", &mut f);
        if f.is_empty() {
            return format!(".{key}");
        }
    }
    format!("{{#{ordinal}}}")
}

pub(super) fn top_field(location: &str) -> &str {
    let rest = location.strip_prefix("$.").unwrap_or("");
    let end = rest.find(['.', '[', '{']).unwrap_or(rest.len());
    &rest[..end]
}

pub(super) fn walk<'a>(scanner: &Scanner, v: &'a Value, location: String, out: &mut Vec<Str<'a>>) {
    match v {
        Value::String(s) => {
            let field = top_field(&location);
            let prose = !is_ref_field(field)
                && !matches!(
                    field,
                    "schema_version"
                        | "request_id"
                        | "surface_id"
                        | "repo_sha256"
                        | "redacted_evidence_refs"
                        | "responded_at"
                );
            out.push(Str {
                location,
                text: s,
                is_key: false,
                prose,
            });
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(scanner, x, format!("{location}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (i, (k, x)) in o.iter().enumerate() {
                let child = format!("{location}{}", key_segment(scanner, k, i));
                out.push(Str {
                    location: format!("{child} (key)"),
                    text: k,
                    is_key: true,
                    prose: false,
                });
                walk(scanner, x, child, out);
            }
        }
        _ => {}
    }
}

pub(super) fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 64 => shown_id(s),
        other => type_name(other).to_owned(),
    }
}

pub(super) static PLAIN_ID: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z0-9_:./@+-]{1,300}$").unwrap()
});

/// A field name fit to show in an error, or a description of it.
pub(super) fn shown_name(k: &str) -> String {
    let mut f = Vec::new();
    Scanner::builtin().scan(k, "", &mut f);
    if PLAIN_KEY.is_match(k) && f.is_empty() {
        format!("{k:?}")
    } else {
        "(a key that is not a field name; not shown)".to_owned()
    }
}

/// An id fit to show in an error.
pub(super) fn shown_id(s: &str) -> String {
    let mut f = Vec::new();
    Scanner::builtin().scan(s, "", &mut f);
    if PLAIN_ID.is_match(s) && f.is_empty() {
        format!("{s:?}")
    } else {
        "(not shown: not an id)".to_owned()
    }
}

pub(super) fn envelope<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, IntakeError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(v) => Err(IntakeError::BadEnvelope {
            field,
            found: format!(", found {}", type_name(v)),
        }),
        None => Err(IntakeError::BadEnvelope {
            field,
            found: " (missing)".into(),
        }),
    }
}

pub(super) fn json_error(e: serde_json::Error) -> IntakeError {
    // Syntax and EOF messages name positions, never values.
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        _ => e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("syntax error")
            .to_owned(),
    };
    IntakeError::Json(format!("{what} at line {} column {}", e.line(), e.column()))
}
