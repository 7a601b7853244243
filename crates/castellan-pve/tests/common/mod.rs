//! Helpers shared by the test binaries: the PVE API schema (vendored in
//! `crates/pve-schema/data/`) and an independent parameter check that reads its JSON directly.

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pve-schema/data/api-schema-subset.json")
}

/// The schema's text (part of the repository, so never skipped).
pub fn schema_text() -> String {
    let path = schema_path();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the pve api schema {}: {e}", path.display()))
}

/// Checks one request against the raw apidata JSON; returns the problems found.
pub fn independent_check(
    schema: &Value,
    method: &str,
    template: &str,
    params: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(m) = schema["paths"].get(template).and_then(|p| p.get(method)) else {
        return vec![format!("{method} {template} is not in the schema")];
    };
    let empty = serde_json::Map::new();
    let props = m["parameters"]["properties"].as_object().unwrap_or(&empty);
    for (name, prop) in props {
        let optional = prop.get("optional").and_then(Value::as_u64) == Some(1);
        if !optional && !params.contains_key(name) {
            problems.push(format!(
                "{method} {template}: required parameter {name} missing"
            ));
        }
    }
    for (name, value) in params {
        // Indexed keys (`net0`) are declared as `net[n]`.
        let indexed = format!("{}[n]", name.trim_end_matches(|c: char| c.is_ascii_digit()));
        let Some(prop) = props.get(name).or_else(|| props.get(&indexed)) else {
            problems.push(format!(
                "{method} {template}: parameter {name} is not defined"
            ));
            continue;
        };
        if let Err(why) = check_value(prop, value) {
            problems.push(format!("{method} {template}: {name}={value:?}: {why}"));
        }
    }
    problems
}

fn check_value(prop: &Value, value: &str) -> Result<(), String> {
    let num = |k: &str| prop.get(k).and_then(Value::as_f64);
    match prop["type"].as_str().unwrap_or("string") {
        "integer" => {
            let n: i64 = value.parse().map_err(|_| "not an integer".to_owned())?;
            if num("minimum").is_some_and(|min| (n as f64) < min) {
                return Err("below minimum".into());
            }
            if num("maximum").is_some_and(|max| (n as f64) > max) {
                return Err("above maximum".into());
            }
        }
        "number" => {
            let n: f64 = value.parse().map_err(|_| "not a number".to_owned())?;
            if num("minimum").is_some_and(|min| n < min)
                || num("maximum").is_some_and(|max| n > max)
            {
                return Err("out of range".into());
            }
        }
        // PVE's parse_boolean accepts more, but the client sends exactly 0/1.
        "boolean" if !matches!(value, "0" | "1") => return Err("not 0 or 1".into()),
        "boolean" => {}
        "string" => {
            if num("maxLength").is_some_and(|max| value.chars().count() as f64 > max) {
                return Err("longer than maxLength".into());
            }
            if let Some(pattern) = prop.get("pattern").and_then(Value::as_str) {
                let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
                if !re.is_match(value) {
                    return Err(format!("does not match {pattern}"));
                }
            }
            if let Some(values) = prop.get("enum").and_then(Value::as_array)
                && !values.iter().any(|v| v.as_str() == Some(value))
            {
                return Err("not one of the enum values".into());
            }
            if prop.get("format").and_then(Value::as_str) == Some("pve-configid-list") {
                let id = Regex::new("^[a-z][a-z0-9_]+$").map_err(|e| e.to_string())?;
                if !value
                    .split([',', ';', ' '])
                    .filter(|s| !s.is_empty())
                    .all(|k| id.is_match(k))
                {
                    return Err("not a config id list".into());
                }
            }
        }
        other => return Err(format!("unexpected parameter type {other}")),
    }
    Ok(())
}
