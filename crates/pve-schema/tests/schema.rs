#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]
//! Validation against the real PVE schema (`data/api-schema-subset.json`) and the
//! embedded subset's fidelity to it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pve_schema::{Format, Schema, embedded};

/// The real schema subset, vendored in this crate's `data/`.
fn full_schema() -> Schema {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/api-schema-subset.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the schema {}: {e}", path.display()));
    Schema::from_json_str(&text).expect("the schema parses")
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err_of(
    schema: &Schema,
    method: &str,
    path: &str,
    p: &[(&str, &str)],
) -> BTreeMap<String, String> {
    match schema.validate(method, path, &params(p)) {
        Ok(()) => BTreeMap::new(),
        Err(e) => e.errors,
    }
}

fn check_error(method: &str, path: &str, p: &[(&str, &str)], param: &str, msg: &str) {
    for (name, schema) in [("embedded", embedded()), ("full", full_schema())] {
        let errs = err_of(&schema, method, path, p);
        assert_eq!(
            errs.get(param).map(String::as_str),
            Some(msg),
            "{name}: {method} {path} {p:?}: got {errs:?}"
        );
    }
}

const LXC_CFG: &str = "/nodes/pve-01/lxc/101/config";
const QM_CFG: &str = "/nodes/pve-01/qemu/100/config";

#[test]
fn error_additional_property() {
    check_error(
        "PUT",
        LXC_CFG,
        &[("bogus", "1")],
        "bogus",
        "property is not defined in schema and the schema does not allow additional properties",
    );
}

#[test]
fn error_missing_required() {
    // No method pvesim serves has a required non-path parameter, so use the real schema's
    // vzdump extractconfig (`volume`) and a minimal hand-made schema.
    {
        let schema = full_schema();
        let errs = err_of(&schema, "GET", "/nodes/pve-01/vzdump/extractconfig", &[]);
        assert_eq!(
            errs.get("volume").map(String::as_str),
            Some("property is missing and it is not optional")
        );
    }
    let s = Schema::from_json_str(
        r#"{"paths":{"/x":{"GET":{"parameters":{"additionalProperties":0,"properties":{"a":{"type":"string"}}}}}}}"#,
    )
    .expect("parses");
    assert_eq!(
        err_of(&s, "GET", "/x", &[]).get("a").map(String::as_str),
        Some("property is missing and it is not optional")
    );
}

#[test]
fn error_type_integer() {
    check_error(
        "PUT",
        LXC_CFG,
        &[("cores", "abc")],
        "cores",
        "type check ('integer') failed - got 'abc'",
    );
}

#[test]
fn error_type_boolean_and_number() {
    check_error(
        "PUT",
        LXC_CFG,
        &[("onboot", "maybe")],
        "onboot",
        "type check ('boolean') failed - got 'maybe'",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("cpulimit", "x1")],
        "cpulimit",
        "type check ('number') failed - got 'x1'",
    );
}

#[test]
fn booleans_accept_pve_spellings() {
    for v in [
        "1", "0", "true", "false", "yes", "no", "on", "off", "TRUE", "Off",
    ] {
        assert!(
            embedded()
                .validate("PUT", LXC_CFG, &params(&[("onboot", v)]))
                .is_ok(),
            "{v}"
        );
    }
}

#[test]
fn error_minimum_maximum() {
    check_error(
        "PUT",
        LXC_CFG,
        &[("cores", "0")],
        "cores",
        "value must have a minimum value of 1",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("cores", "8193")],
        "cores",
        "value must have a maximum value of 8192",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("memory", "8")],
        "memory",
        "value must have a minimum value of 16",
    );
}

#[test]
fn error_max_length() {
    let long = "x".repeat(8193);
    check_error(
        "PUT",
        LXC_CFG,
        &[("description", &long)],
        "description",
        "value may only be 8192 characters long",
    );
    let ok = "é".repeat(8192); // characters, not bytes
    assert!(
        embedded()
            .validate("PUT", LXC_CFG, &params(&[("description", &ok)]))
            .is_ok()
    );
}

#[test]
fn error_pattern() {
    check_error(
        "POST",
        QM_CFG,
        &[("bootdisk", "floppy0")],
        "bootdisk",
        "value does not match the regex pattern",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("entrypoint", "a\u{1}b")],
        "entrypoint",
        "value does not match the regex pattern",
    );
}

#[test]
fn error_enum() {
    check_error(
        "PUT",
        LXC_CFG,
        &[("cmode", "x")],
        "cmode",
        "value 'x' does not have a value in the enumeration 'shell, console, tty'",
    );
}

#[test]
fn error_formats() {
    check_error(
        "GET",
        "/nodes/-bad/lxc",
        &[],
        "node",
        "invalid format - value does not look like a valid node name\n",
    );
    check_error(
        "GET",
        "/nodes/pve-01/lxc/99/config",
        &[],
        "vmid",
        "invalid format - value does not look like a valid VM ID\n",
    );
    check_error(
        "GET",
        "/nodes/pve-01/lxc/abc/config",
        &[],
        "vmid",
        "type check ('integer') failed - got 'abc'",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("tags", "ok;b@d")],
        "tags",
        "invalid format - invalid characters in tag\n",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("delete", "cores,1x")],
        "delete",
        "invalid format - invalid configuration ID '1x'\n",
    );
    check_error(
        "PUT",
        LXC_CFG,
        &[("hostname", "bad_name")],
        "hostname",
        "invalid format - value does not look like a valid DNS name\n",
    );
}

#[test]
fn error_requires() {
    check_error(
        "POST",
        QM_CFG,
        &[("force", "1")],
        "delete",
        "missing property - 'force' requires this property",
    );
}

#[test]
fn vmid_range_is_checked_after_format() {
    // 1000000000 has 10 digits: the pve-vmid format rejects it before the maximum check.
    check_error(
        "GET",
        "/nodes/pve-01/lxc/1000000000/config",
        &[],
        "vmid",
        "invalid format - value does not look like a valid VM ID\n",
    );
}

#[test]
fn qemu_memory_property_string() {
    let s = embedded();
    assert!(
        s.validate("POST", QM_CFG, &params(&[("memory", "2048")]))
            .is_ok()
    );
    assert!(
        s.validate("POST", QM_CFG, &params(&[("memory", "current=2048")]))
            .is_ok()
    );
    let errs = err_of(&s, "POST", QM_CFG, &[("memory", "8")]);
    assert_eq!(
        errs.get("memory").map(String::as_str),
        Some(
            "invalid format - format error\nmemory.current: value must have a minimum value of 16\n"
        )
    );
    let errs = err_of(&s, "POST", QM_CFG, &[("memory", "max=1")]);
    assert_eq!(
        errs.get("memory").map(String::as_str),
        Some("invalid format - invalid key in comma-separated list property: max\n")
    );
}

#[test]
fn indexed_parameters() {
    let s = embedded();
    assert!(
        s.validate(
            "PUT",
            LXC_CFG,
            &params(&[("net0", "name=eth0,bridge=vmbr0")])
        )
        .is_ok()
    );
    assert!(
        s.validate("PUT", LXC_CFG, &params(&[("net31", "name=eth0")]))
            .is_ok()
    );
    assert!(
        s.validate("PUT", LXC_CFG, &params(&[("mp255", "local:8,mp=/x")]))
            .is_ok()
    );
    assert!(
        s.validate("POST", QM_CFG, &params(&[("scsi30", "local:8")]))
            .is_ok()
    );
    for bad in ["net32", "scsi31", "net01", "netx"] {
        let errs = err_of(
            &s,
            if bad.starts_with("scsi") {
                "POST"
            } else {
                "PUT"
            },
            if bad.starts_with("scsi") {
                QM_CFG
            } else {
                LXC_CFG
            },
            &[(bad, "x")],
        );
        assert!(errs.contains_key(bad), "{bad}: {errs:?}");
    }
}

#[test]
fn nested_formats_with_the_full_schema() {
    let s = full_schema();
    assert!(
        s.validate(
            "POST",
            QM_CFG,
            &params(&[("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1")])
        )
        .is_ok()
    );
    let errs = err_of(&s, "POST", QM_CFG, &[("net0", "virtio,bridge=vm br0")]);
    assert!(
        errs.get("net0")
            .is_some_and(|m| m.starts_with("invalid format - format error\n")),
        "{errs:?}"
    );
    let errs = err_of(&s, "POST", QM_CFG, &[("net0", "bogus=1")]);
    assert_eq!(
        errs.get("net0").map(String::as_str),
        Some("invalid format - invalid key in comma-separated list property: bogus\n")
    );
}

#[test]
fn unknown_path() {
    let errs = err_of(&embedded(), "GET", "/nodes/x/foo", &[]);
    assert_eq!(
        errs.get("_root").map(String::as_str),
        Some("Method 'GET /nodes/x/foo' not implemented")
    );
    assert!(embedded().resolve("PATCH", LXC_CFG).is_none());
}

#[test]
fn path_matching_prefers_literals_and_decodes() {
    let s = embedded();
    let r = s
        .resolve("GET", "/nodes/pve-01/tasks/UPID%3Apve-01%3A1/log")
        .expect("resolves");
    assert_eq!(r.template, "/nodes/{node}/tasks/{upid}/log");
    assert_eq!(
        r.path_params.get("upid").map(String::as_str),
        Some("UPID:pve-01:1")
    );
    let r = s
        .resolve("GET", "/nodes/pve-01/lxc/")
        .expect("trailing slash");
    assert_eq!(r.template, "/nodes/{node}/lxc");
}

/// Known-good and known-bad requests against the real schema.
#[test]
fn table_against_the_full_schema() {
    let s = full_schema();
    let good: &[(&str, &str, &[(&str, &str)])] = &[
        ("GET", "/nodes/pve-01/lxc", &[]),
        ("GET", "/nodes/pve-01/qemu", &[("full", "1")]),
        ("GET", "/version", &[]),
        ("GET", "/cluster/resources", &[("type", "vm")]),
        ("GET", "/cluster/nextid", &[("vmid", "150")]),
        ("GET", LXC_CFG, &[("current", "1")]),
        (
            "PUT",
            LXC_CFG,
            &[
                ("cores", "2"),
                ("memory", "1024"),
                ("description", "web: front\nline 2"),
                ("tags", "a;b"),
                ("digest", "0123456789abcdef0123456789abcdef01234567"),
            ],
        ),
        ("PUT", LXC_CFG, &[("delete", "mp0,tags")]),
        (
            "POST",
            QM_CFG,
            &[
                ("cores", "4"),
                ("memory", "4096"),
                ("name", "web-01"),
                ("onboot", "1"),
            ],
        ),
        ("PUT", QM_CFG, &[("delete", "tags"), ("force", "1")]),
        ("POST", QM_CFG, &[("keephugepages", "1")]),
        ("POST", "/nodes/pve-01/lxc/101/status/start", &[]),
        (
            "POST",
            "/nodes/pve-01/qemu/100/status/shutdown",
            &[("timeout", "60"), ("forceStop", "1")],
        ),
        (
            "DELETE",
            "/nodes/pve-01/lxc/101",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        ),
        (
            "GET",
            "/nodes/pve-01/tasks",
            &[("vmid", "101"), ("source", "all"), ("limit", "10")],
        ),
        (
            "GET",
            "/nodes/pve-01/tasks/UPID:pve-01:00001234:00005678:65000000:vzstart:101:root@pam!castellan:/status",
            &[],
        ),
    ];
    for (m, p, q) in good {
        assert_eq!(s.validate(m, p, &params(q)), Ok(()), "{m} {p} {q:?}");
    }
    let bad: &[(&str, &str, &[(&str, &str)], &str)] = &[
        ("GET", "/nodes/pve-01/lxc", &[("full", "1")], "full"),
        ("PUT", LXC_CFG, &[("name", "x")], "name"),
        ("POST", QM_CFG, &[("hostname", "x")], "hostname"),
        ("PUT", LXC_CFG, &[("swap", "-1")], "swap"),
        ("POST", QM_CFG, &[("cores", "0")], "cores"),
        ("PUT", LXC_CFG, &[("digest", &"a".repeat(41))], "digest"),
        ("GET", "/cluster/resources", &[("type", "vms")], "type"),
        ("GET", "/nodes/pve-01/tasks", &[("source", "x")], "source"),
        (
            "POST",
            "/nodes/pve-01/lxc/101/status/start",
            &[("force", "1")],
            "force",
        ),
        (
            "DELETE",
            "/nodes/pve-01/lxc/101",
            &[("purge", "2")],
            "purge",
        ),
    ];
    for (m, p, q, key) in bad {
        let errs = err_of(&s, m, p, q);
        assert!(errs.contains_key(*key), "{m} {p} {q:?}: {errs:?}");
    }
}

/// Every embedded path/method/parameter exists in the real schema with the same constraints.
#[test]
fn embedded_matches_the_full_schema() {
    let full = full_schema();
    let emb = embedded();
    let mut checked = 0;
    for (path, methods) in emb.paths() {
        for (method, m) in methods {
            let real = full
                .method(path, method)
                .unwrap_or_else(|| panic!("{method} {path} is not in the real schema"));
            assert_eq!(
                m.parameters.additional_properties, real.parameters.additional_properties,
                "{method} {path} additionalProperties"
            );
            for (name, p) in &m.parameters.properties {
                let r = real.parameters.properties.get(name).unwrap_or_else(|| {
                    panic!("{method} {path}: '{name}' is not in the real schema")
                });
                let ctx = format!("{method} {path} {name}");
                assert_eq!(p.ty, r.ty, "{ctx} type");
                assert_eq!(p.optional, r.optional, "{ctx} optional");
                assert_eq!(p.minimum, r.minimum, "{ctx} minimum");
                assert_eq!(p.maximum, r.maximum, "{ctx} maximum");
                assert_eq!(p.max_length, r.max_length, "{ctx} maxLength");
                assert_eq!(p.min_length, r.min_length, "{ctx} minLength");
                assert_eq!(p.enum_values, r.enum_values, "{ctx} enum");
                assert_eq!(p.pattern, r.pattern, "{ctx} pattern");
                assert_eq!(p.requires, r.requires, "{ctx} requires");
                match (&p.format, &r.format) {
                    (None, _) => {}
                    (Some(Format::Named(a)), Some(Format::Named(b))) => {
                        assert_eq!(a, b, "{ctx} format")
                    }
                    (Some(Format::Object(a)), Some(Format::Object(b))) => {
                        for (k, sub) in a {
                            let rs = b.get(k).unwrap_or_else(|| panic!("{ctx}: format key {k}"));
                            assert_eq!(sub.ty, rs.ty, "{ctx}.{k} type");
                            assert_eq!(sub.minimum, rs.minimum, "{ctx}.{k} minimum");
                            assert_eq!(sub.maximum, rs.maximum, "{ctx}.{k} maximum");
                            assert_eq!(sub.default_key, rs.default_key, "{ctx}.{k} default_key");
                        }
                    }
                    (a, b) => panic!("{ctx}: format differs: {a:?} vs {b:?}"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "only {checked} parameters checked");
}

#[test]
fn every_embedded_pattern_compiles() {
    for methods in embedded().paths().values() {
        for m in methods.values() {
            for (name, p) in &m.parameters.properties {
                if let Some(pat) = &p.pattern {
                    // A value that cannot match most patterns must still be *checked*, i.e.
                    // produce the pattern error rather than be skipped.
                    let s = Schema::from_json_value(serde_json::json!({"paths": {"/t": {"GET": {"parameters": {
                        "additionalProperties": 0, "properties": {"v": {"type": "string", "pattern": pat}}}}}}}))
                    .expect("schema");
                    // Control characters match no pattern but `\S+`, which a space fails.
                    let refused = ["\u{1}\u{2}", " "].iter().any(|probe| {
                        err_of(&s, "GET", "/t", &[("v", probe)])
                            .get("v")
                            .map(String::as_str)
                            == Some("value does not match the regex pattern")
                    });
                    assert!(refused, "{name}: {pat}");
                }
            }
        }
    }
}
