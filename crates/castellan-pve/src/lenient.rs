//! Tolerant decoding of the scalars where Proxmox VE's JSON is inconsistent.
//!
//! PVE's API is Perl; JSON::XS serialises a scalar as a number or a string depending on how
//! it was last used, not on the schema. In practice (seen in proxmoxer and go-proxmox issue
//! trackers, and in `luthermonson/go-proxmox`'s `IsTemplate`/`StringOrInt` helpers):
//! `vmid` arrives as `"101"` from `GET /nodes/{node}/lxc` but as `101` from `.../qemu`;
//! booleans arrive as `0`/`1`, `"0"`/`"1"`, `true`/`false` or `""`; numbers such as `maxmem`
//! or `cpus` occasionally as strings; and a string such as a numeric `name` as a number.
//! These helpers accept exactly those variants and nothing else.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::Value;

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// A u32 from a JSON number or a decimal string.
pub(crate) fn u32_from_value(v: &Value) -> Result<u32, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("expected a non-negative integer, found {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected an integer, found string {s:?}")),
        other => Err(format!("expected an integer, found {}", describe(other))),
    }
}

/// A u64 from a JSON number (integral, or a float with no fraction) or a decimal string.
pub(crate) fn u64_from_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("expected a non-negative integer, found {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected an integer, found string {s:?}")),
        other => Err(format!("expected an integer, found {}", describe(other))),
    }
}

/// An f64 from a JSON number or a decimal string.
pub(crate) fn f64_from_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("expected a number, found {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected a number, found string {s:?}")),
        other => Err(format!("expected a number, found {}", describe(other))),
    }
}

/// A boolean from `true`/`false`, `0`/`1`, `"0"`/`"1"`, `"true"`/`"false"` or `""` (false).
pub(crate) fn bool_from_value(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(format!("expected a boolean, found {n}")),
        },
        Value::String(s) => match s.trim() {
            "" | "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            other => Err(format!("expected a boolean, found string {other:?}")),
        },
        Value::Null => Ok(false),
        other => Err(format!("expected a boolean, found {}", describe(other))),
    }
}

/// A string from a JSON string, number or boolean (booleans as `0`/`1`, PVE's own form).
pub(crate) fn string_from_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    }
}

pub(crate) fn de_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    u32_from_value(&Value::deserialize(d)?).map_err(D::Error::custom)
}

pub(crate) fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        v => u64_from_value(&v).map(Some).map_err(D::Error::custom),
    }
}

pub(crate) fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an integer, found {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, found string {s:?}"))),
        other => Err(D::Error::custom(format!(
            "expected an integer, found {}",
            describe(&other)
        ))),
    }
}

pub(crate) fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        v => f64_from_value(&v).map(Some).map_err(D::Error::custom),
    }
}

pub(crate) fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    bool_from_value(&Value::deserialize(d)?).map_err(D::Error::custom)
}

/// A required string that may arrive as a number.
pub(crate) fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    string_from_value(&v)
        .ok_or_else(|| D::Error::custom(format!("expected a string, found {}", describe(&v))))
}

/// An optional string that may arrive as a number; `null` and `""` are `None` (PVE sends
/// `"lock": ""` for an unlocked container).
pub(crate) fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v => string_from_value(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected a string, found {}", describe(&v)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans() {
        for (v, want) in [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!("1"), true),
            (json!("0"), false),
            (json!(""), false),
            (json!("true"), true),
        ] {
            assert_eq!(bool_from_value(&v), Ok(want), "{v}");
        }
        for v in [json!(2), json!("yes"), json!([1])] {
            assert!(bool_from_value(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(u32_from_value(&json!(101)), Ok(101));
        assert_eq!(u32_from_value(&json!("101")), Ok(101));
        assert!(u32_from_value(&json!(-1)).is_err());
        assert!(u32_from_value(&json!("10x")).is_err());
        assert!(u32_from_value(&json!(5_000_000_000u64)).is_err());
        assert_eq!(u64_from_value(&json!(2147483648u64)), Ok(2147483648));
        assert_eq!(u64_from_value(&json!("512")), Ok(512));
        assert_eq!(u64_from_value(&json!(512.0)), Ok(512));
        assert!(u64_from_value(&json!(1.5)).is_err());
        assert_eq!(f64_from_value(&json!("1.5")), Ok(1.5));
        assert_eq!(f64_from_value(&json!(2)), Ok(2.0));
    }

    #[test]
    fn strings() {
        assert_eq!(string_from_value(&json!("a")), Some("a".into()));
        assert_eq!(string_from_value(&json!(4096)), Some("4096".into()));
        assert_eq!(string_from_value(&json!(true)), Some("1".into()));
        assert_eq!(string_from_value(&json!(null)), None);
        assert_eq!(string_from_value(&json!({})), None);
    }
}
