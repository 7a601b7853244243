//! Parameter validation mirroring `PVE::JSONSchema::check_object` / `check_prop` / `check_type`.
//!
//! Every message text is PVE's own, from pve-common `src/PVE/JSONSchema.pm`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use crate::formats::check_named;
use crate::model::{Format, Method, ObjectSchema, PropSchema, Schema, Segment};

/// Parameter errors: parameter name → PVE's message, as in the `errors` object of a
/// `400 Parameter verification failed.` response.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ParamErrors {
    /// Parameter name (or `path.key` inside property strings) → message.
    pub errors: BTreeMap<String, String>,
}

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parameter verification failed.")?;
        for (k, v) in &self.errors {
            write!(f, " {k}: {}", v.trim_end())?;
        }
        Ok(())
    }
}

impl ParamErrors {
    /// A single error.
    pub fn single(param: impl Into<String>, msg: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(param.into(), msg.into());
        ParamErrors { errors }
    }

    /// `PVE::JSONSchema::add_error`: a second message for the same path is appended with a
    /// literal backslash-n (Perl's single-quoted `'\n'`).
    fn add(&mut self, path: &str, msg: impl Into<String>) {
        let path = if path.is_empty() { "_root" } else { path };
        let msg = msg.into();
        match self.errors.get_mut(path) {
            Some(existing) => {
                existing.push_str("\\n");
                existing.push_str(&msg);
            }
            None => {
                self.errors.insert(path.to_string(), msg);
            }
        }
    }
}

/// A concrete request path matched to a path template and method.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    /// The template, e.g. `/nodes/{node}/lxc/{vmid}/config`.
    pub template: &'a str,
    /// The method schema.
    pub method: &'a Method,
    /// Path parameters taken from the concrete path (percent-decoded).
    pub path_params: BTreeMap<String, String>,
}

impl Schema {
    /// Matches a concrete path (e.g. `/nodes/pve-01/lxc/101/config`, relative to
    /// `/api2/json`) to a template. Literal segments win over parameters.
    pub fn match_path(&self, concrete: &str) -> Option<(&str, BTreeMap<String, String>)> {
        let segs: Vec<&str> = concrete.trim_end_matches('/').split('/').skip(1).collect();
        let mut best: Option<(usize, &crate::model::Template)> = None;
        for t in self.templates() {
            if t.segments.len() != segs.len() {
                continue;
            }
            let mut literals = 0;
            let ok = t.segments.iter().zip(&segs).all(|(ts, s)| match ts {
                Segment::Literal(l) => {
                    literals += 1;
                    l == s
                }
                Segment::Param(_) => !s.is_empty(),
            });
            if ok && best.is_none_or(|(n, _)| literals > n) {
                best = Some((literals, t));
            }
        }
        let (_, t) = best?;
        let mut params = BTreeMap::new();
        for (ts, s) in t.segments.iter().zip(&segs) {
            if let Segment::Param(name) = ts {
                params.insert(name.clone(), percent_decode(s));
            }
        }
        Some((t.path.as_str(), params))
    }

    /// Resolves method + concrete path. `None` means the node would answer
    /// `501 Method 'GET /path' not implemented`.
    pub fn resolve(&self, method: &str, concrete: &str) -> Option<Resolved<'_>> {
        let (template, path_params) = self.match_path(concrete)?;
        let m = self.method(template, method)?;
        Some(Resolved {
            template,
            method: m,
            path_params,
        })
    }

    /// Validates a request's parameters (path parameters are taken from the path and validated
    /// too). An unknown path or method yields a `_root` error naming it.
    pub fn validate(
        &self,
        method: &str,
        concrete_path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<(), ParamErrors> {
        match self.resolve(method, concrete_path) {
            Some(r) => validate_resolved(&r, params),
            None => Err(ParamErrors::single(
                "_root",
                format!(
                    "Method '{} {}' not implemented",
                    method.to_ascii_uppercase(),
                    concrete_path
                ),
            )),
        }
    }

    /// The schema of one parameter of a method, resolving indexed names (`net0` → `net[n]`).
    pub fn property(&self, template: &str, method: &str, key: &str) -> Option<&PropSchema> {
        lookup(&self.method(template, method)?.parameters, key)
    }
}

/// Validates parameters against an already resolved method (path parameters merged in).
pub fn validate_resolved(
    r: &Resolved<'_>,
    params: &BTreeMap<String, String>,
) -> Result<(), ParamErrors> {
    let mut all = params.clone();
    for (k, v) in &r.path_params {
        all.insert(k.clone(), v.clone());
    }
    let mut errors = ParamErrors::default();
    check_object("", &r.method.parameters, &all, &mut errors);
    if errors.errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn lookup<'a>(obj: &'a ObjectSchema, key: &str) -> Option<&'a PropSchema> {
    if let Some(p) = obj.properties.get(key) {
        return Some(p);
    }
    let (base, idx) = indexed_base(key)?;
    let p = obj.properties.get(&format!("{base}[n]"))?;
    match max_index(base) {
        Some(max) if idx > max => None,
        _ => Some(p),
    }
}

/// Splits an indexed parameter name like `net0` into (`net`, 0).
pub fn indexed_base(key: &str) -> Option<(&str, u32)> {
    let digits = key.bytes().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits == key.len() {
        return None;
    }
    let (base, num) = key.split_at(key.len() - digits);
    // `net01` is not `net1` in PVE (the schema lists `net0`..`net31` literally).
    if num.len() > 1 && num.starts_with('0') {
        return None;
    }
    Some((base, num.parse().ok()?))
}

/// Highest index of PVE's indexed options (`MAX_NETS` etc. in qemu-server / pve-container).
fn max_index(base: &str) -> Option<u32> {
    Some(match base {
        "net" | "ipconfig" => 31,
        "mp" | "unused" | "dev" => 255,
        "scsi" => 30,
        "sata" => 5,
        "ide" => 3,
        "virtio" | "hostpci" => 15,
        "usb" => 13,
        "serial" => 3,
        "parallel" => 2,
        "numa" => 7,
        "virtiofs" => 9,
        _ => return None,
    })
}

fn join_path(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// `check_object` for a top-level parameter object.
fn check_object(
    path: &str,
    schema: &ObjectSchema,
    values: &BTreeMap<String, String>,
    errors: &mut ParamErrors,
) {
    check_props(
        path,
        &schema.properties,
        schema.additional_properties,
        values,
        errors,
    );
}

fn check_props(
    path: &str,
    props: &BTreeMap<String, PropSchema>,
    additional: bool,
    values: &BTreeMap<String, String>,
    errors: &mut ParamErrors,
) {
    for (k, p) in props {
        if k.ends_with("[n]") {
            continue; // checked below per concrete key; indexed options are never required
        }
        check_prop(
            values.get(k).map(String::as_str),
            p,
            &join_path(path, k),
            errors,
        );
    }
    for (k, v) in values {
        let newpath = join_path(path, k);
        let direct = props.get(k);
        let sub = direct.or_else(|| {
            let (base, idx) = indexed_base(k)?;
            let p = props.get(&format!("{base}[n]"))?;
            match max_index(base) {
                Some(max) if idx > max => None,
                _ => Some(p),
            }
        });
        if let Some(sub) = sub {
            if let Some(req) = &sub.requires
                && !values.contains_key(req)
            {
                errors.add(
                    &join_path(path, req),
                    format!("missing property - '{newpath}' requires this property"),
                );
            }
            if direct.is_none() {
                check_prop(Some(v), sub, &newpath, errors);
            }
            continue;
        }
        if !additional {
            errors.add(
                &newpath,
                "property is not defined in schema and the schema does not allow additional properties",
            );
        }
    }
}

fn check_prop(value: Option<&str>, p: &PropSchema, path: &str, errors: &mut ParamErrors) {
    let Some(value) = value else {
        if !p.optional && p.alias.is_none() && p.ty.as_deref() != Some("null") {
            errors.add(path, "property is missing and it is not optional");
        }
        return;
    };
    if !check_type(path, p.ty.as_deref(), value, errors) {
        return;
    }
    if let Some(format) = &p.format {
        let res = match format {
            Format::Named(name) => check_named(name, value),
            Format::Object(map) => parse_property_string(map, value, path),
        };
        if let Err(msg) = res {
            errors.add(path, format!("invalid format - {msg}"));
            return;
        }
    }
    if p.pattern.is_some()
        && let Some(re) = p.regex()
        && !re.is_match(value)
    {
        errors.add(path, "value does not match the regex pattern");
        return;
    }
    let len = value.chars().count() as f64;
    if let Some(max) = p.max_length
        && len > max
    {
        errors.add(
            path,
            format!("value may only be {} characters long", num(max)),
        );
        return;
    }
    if let Some(min) = p.min_length
        && len < min
    {
        errors.add(
            path,
            format!("value must be at least {} characters long", num(min)),
        );
        return;
    }
    if is_number(value) {
        let x: f64 = value.trim_end_matches('\n').parse().unwrap_or(f64::NAN);
        if let Some(max) = p.maximum
            && x > max
        {
            errors.add(
                path,
                format!("value must have a maximum value of {}", num(max)),
            );
            return;
        }
        if let Some(min) = p.minimum
            && x < min
        {
            errors.add(
                path,
                format!("value must have a minimum value of {}", num(min)),
            );
            return;
        }
    }
    if let Some(values) = &p.enum_values
        && !values.iter().any(|e| e == value)
    {
        errors.add(
            path,
            format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                values.join(", ")
            ),
        );
    }
}

/// `check_type` for string-encoded values.
fn check_type(path: &str, ty: Option<&str>, value: &str, errors: &mut ParamErrors) -> bool {
    let ok = match ty {
        Some("boolean") => parse_boolean(value).is_some(),
        Some("integer") => is_integer(value),
        Some("number") => is_number(value),
        Some(t @ ("array" | "object")) => {
            errors.add(path, format!("type check ('{t}') failed"));
            return false;
        }
        _ => true,
    };
    if !ok && let Some(t) = ty {
        errors.add(path, format!("type check ('{t}') failed - got '{value}'"));
    }
    ok
}

/// `PVE::JSONSchema::parse_boolean`: `1|on|yes|true` / `0|off|no|false`, case-insensitive.
///
/// pve-common's `check_type` itself only takes `1`/`0` for string values; the wider set is
/// accepted here as castellan's contract for the simulator (see the crate docs of `pvesim`).
pub fn parse_boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn is_integer(v: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\A[+-]?\d+\n?\z").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(v))
}

fn is_number(v: &str) -> bool {
    // 'man perlretut', as used by PVE::JSONSchema::is_number
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\A[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?\n?\z").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(v))
}

/// Formats a schema number the way Perl stringifies it (`8192`, `0.1`).
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// `PVE::Tools::split_list`: split on NUL if present, else on `,`, `;` and whitespace.
pub fn split_list(s: &str) -> Vec<&str> {
    if s.contains('\0') {
        let mut v: Vec<&str> = s.split('\0').collect();
        while v.last().is_some_and(|l| l.is_empty()) {
            v.pop();
        }
        return v;
    }
    s.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `PVE::JSONSchema::parse_property_string` followed by `check_object` of the parsed hash,
/// with the error text PVE's exception stringifies to.
fn parse_property_string(
    format: &BTreeMap<String, PropSchema>,
    data: &str,
    path: &str,
) -> Result<(), String> {
    let mut res: BTreeMap<String, String> = BTreeMap::new();
    let mut default_key: Option<String> = None;
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                if res.contains_key(k) {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {k}\n"
                    ));
                }
                let mut k = k.to_string();
                let mut schema = format.get(&k);
                if let Some(alias) = schema.and_then(|s| s.alias.clone()) {
                    if let Some(key_alias) = schema.and_then(|s| s.key_alias.clone()) {
                        if res.contains_key(&key_alias) {
                            return Err(format!("key alias '{key_alias}' is already defined\n"));
                        }
                        res.insert(key_alias, k.clone());
                    }
                    k = alias;
                    schema = format.get(&k);
                }
                let Some(schema) = schema else {
                    return Err(format!(
                        "invalid key in comma-separated list property: {k}\n"
                    ));
                };
                let v = if schema.ty.as_deref() == Some("boolean") {
                    match parse_boolean(v) {
                        Some(b) => if b { "1" } else { "0" }.to_string(),
                        None => v.to_string(),
                    }
                } else {
                    v.to_string()
                };
                res.insert(k, v);
            }
            None => {
                if let Some(dk) = &default_key {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {dk}\n"
                    ));
                }
                let Some((dk, _)) = format.iter().find(|(_, s)| s.default_key) else {
                    return Err(
                        "value without key, but schema does not define a default key\n".into(),
                    );
                };
                if res.contains_key(dk) {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {dk}\n"
                    ));
                }
                default_key = Some(dk.clone());
                res.insert(dk.clone(), part.to_string());
            }
            Some(_) => return Err("missing key in comma-separated list property\n".into()),
        }
    }
    let mut errors = ParamErrors::default();
    check_props(path, format, false, &res, &mut errors);
    if errors.errors.is_empty() {
        return Ok(());
    }
    // PVE::Exception::stringify: message, then "key: error\n" per error.
    let mut msg = String::from("format error\n");
    for (k, v) in &errors.errors {
        msg.push_str(&format!("{k}: {v}\n"));
    }
    Err(msg)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
