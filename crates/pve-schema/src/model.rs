//! The apidata data model: paths → methods → parameter object schemas.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::SchemaError;

/// A whole API schema in pve-docs' apidata format.
#[derive(Debug, Clone)]
pub struct Schema {
    paths: BTreeMap<String, BTreeMap<String, Method>>,
    /// Path templates split into segments, for matching concrete paths.
    templates: Vec<Template>,
}

#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) path: String,
    pub(crate) segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Deserialize)]
struct RawSchema {
    paths: BTreeMap<String, BTreeMap<String, Method>>,
}

impl Schema {
    /// Parses an apidata-format JSON document (`{"paths": {...}}`).
    pub fn from_json_str(s: &str) -> Result<Schema, SchemaError> {
        let raw: RawSchema = serde_json::from_str(s)?;
        Schema::from_paths(raw.paths)
    }

    /// Builds a schema from an already parsed JSON value in apidata format.
    pub fn from_json_value(v: Value) -> Result<Schema, SchemaError> {
        let raw: RawSchema = serde_json::from_value(v)?;
        Schema::from_paths(raw.paths)
    }

    fn from_paths(
        paths: BTreeMap<String, BTreeMap<String, Method>>,
    ) -> Result<Schema, SchemaError> {
        let mut templates = Vec::with_capacity(paths.len());
        for path in paths.keys() {
            if !path.starts_with('/') {
                return Err(SchemaError::Path(path.clone()));
            }
            let mut segments = Vec::new();
            for seg in path.split('/').skip(1) {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if name.is_empty() {
                        return Err(SchemaError::Path(path.clone()));
                    }
                    segments.push(Segment::Param(name.to_string()));
                } else {
                    segments.push(Segment::Literal(seg.to_string()));
                }
            }
            templates.push(Template {
                path: path.clone(),
                segments,
            });
        }
        Ok(Schema { paths, templates })
    }

    /// All path templates with their methods.
    pub fn paths(&self) -> &BTreeMap<String, BTreeMap<String, Method>> {
        &self.paths
    }

    /// The method schema for a path template (e.g. `/nodes/{node}/lxc`) and HTTP method.
    pub fn method(&self, template: &str, method: &str) -> Option<&Method> {
        self.paths.get(template)?.get(&method.to_ascii_uppercase())
    }

    pub(crate) fn templates(&self) -> &[Template] {
        &self.templates
    }
}

/// One HTTP method of one path.
#[derive(Debug, Clone, Deserialize)]
pub struct Method {
    /// The parameter schema (path parameters included, as in PVE).
    #[serde(default)]
    pub parameters: ObjectSchema,
    /// The return schema, kept as raw JSON.
    #[serde(default)]
    pub returns: Option<Value>,
    /// Whether API tokens may call this method.
    #[serde(default, deserialize_with = "de_truthy")]
    pub allowtoken: bool,
    /// Whether the method runs in the privileged daemon.
    #[serde(default, deserialize_with = "de_truthy")]
    pub protected: bool,
}

/// An object schema: named properties and whether others are allowed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ObjectSchema {
    /// The declared properties; indexed ones are named like `net[n]`.
    #[serde(default)]
    pub properties: BTreeMap<String, PropSchema>,
    /// `additionalProperties`; absent means allowed, as in `PVE::JSONSchema::check_object`.
    #[serde(
        default = "default_true",
        rename = "additionalProperties",
        deserialize_with = "de_truthy"
    )]
    pub additional_properties: bool,
}

fn default_true() -> bool {
    true
}

/// A property string format: either a registered format name (`pve-node`, `pve-tag-list`) or
/// an inline property-string format (`{"current": {...}}` for QEMU `memory`).
#[derive(Debug, Clone)]
pub enum Format {
    /// A named format, possibly with a `-list` or `-opt` suffix.
    Named(String),
    /// A comma-separated `key=value` property string with these keys.
    Object(BTreeMap<String, PropSchema>),
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(Format::Named(s)),
            Value::Object(_) => {
                let map: BTreeMap<String, PropSchema> =
                    serde_json::from_value(v).map_err(serde::de::Error::custom)?;
                Ok(Format::Object(map))
            }
            other => Err(serde::de::Error::custom(format!(
                "format must be a string or an object, got {other}"
            ))),
        }
    }
}

/// One property (parameter) schema.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PropSchema {
    /// `string`, `integer`, `number`, `boolean`, `array`, `object`, ... (`None` = any).
    #[serde(default, rename = "type", deserialize_with = "de_type")]
    pub ty: Option<String>,
    /// Whether the property may be missing.
    #[serde(default, deserialize_with = "de_truthy")]
    pub optional: bool,
    /// Inclusive lower bound for numeric values.
    #[serde(default, deserialize_with = "de_num")]
    pub minimum: Option<f64>,
    /// Inclusive upper bound for numeric values.
    #[serde(default, deserialize_with = "de_num")]
    pub maximum: Option<f64>,
    /// Maximum string length in characters.
    #[serde(default, rename = "maxLength", deserialize_with = "de_num")]
    pub max_length: Option<f64>,
    /// Minimum string length in characters.
    #[serde(default, rename = "minLength", deserialize_with = "de_num")]
    pub min_length: Option<f64>,
    /// A Perl regex (`(?^:...)` syntax allowed), anchored at both ends when checked.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Allowed values.
    #[serde(default, rename = "enum", deserialize_with = "de_enum")]
    pub enum_values: Option<Vec<String>>,
    /// A named or inline format.
    #[serde(default)]
    pub format: Option<Format>,
    /// The documented default, kept raw.
    #[serde(default)]
    pub default: Option<Value>,
    /// In a property string: the key a bare value (without `key=`) belongs to.
    #[serde(default, deserialize_with = "de_truthy")]
    pub default_key: bool,
    /// In a property string: this key is an alias of another key.
    #[serde(default)]
    pub alias: Option<String>,
    /// In a property string: store the used key name under this key.
    #[serde(default, rename = "keyAlias")]
    pub key_alias: Option<String>,
    /// Another property that must be present when this one is.
    #[serde(default, deserialize_with = "de_requires")]
    pub requires: Option<String>,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(skip)]
    compiled: OnceLock<Option<Regex>>,
}

impl PropSchema {
    /// The compiled, anchored pattern (`None` if there is none or it cannot be translated).
    pub(crate) fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| {
                self.pattern
                    .as_deref()
                    .and_then(crate::pattern::compile_anchored)
            })
            .as_ref()
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Null => false,
        _ => true,
    }
}

fn de_truthy<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(truthy(&Value::deserialize(d)?))
}

fn de_num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("not a number: {s}"))),
        Value::Null => Ok(None),
        other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

fn de_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        // Union types (`["string", "array"]`) are only used in meta schemas; treat as "any".
        _ => Ok(None),
    }
}

fn de_enum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(items) => Ok(Some(
            items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        )),
        Value::Null => Ok(None),
        other => Err(serde::de::Error::custom(format!(
            "enum must be an array, got {other}"
        ))),
    }
}

fn de_requires<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        // Schema-valued `requires` is not used by the guest API; ignore it.
        _ => Ok(None),
    }
}
