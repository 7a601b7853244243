//! Every request the client can send, checked against the real PVE API schema
//! (`crates/pve-schema/data/api-schema-subset.json`, pve-docs 9.1.3): by the `pve-schema` validator, and
//! by a small independent check reading the JSON directly, so a gap in one is caught by the
//! other.

use crate::common::{independent_check, schema_text};
use castellan_pve::{RequestSpec, request_catalog};
use serde_json::Value;
use std::collections::BTreeMap;

fn describe(spec: &RequestSpec) -> String {
    format!("{} {} {:?}", spec.method, spec.concrete_path(), spec.params)
}

#[test]
fn every_request_the_client_sends_matches_the_pve_schema() -> Result<(), Box<dyn std::error::Error>>
{
    let text = schema_text();
    let raw: Value = serde_json::from_str(&text)?;
    let schema = pve_schema::Schema::from_json_str(&text)?;
    let catalog = request_catalog();
    let mut problems = Vec::new();
    for spec in &catalog {
        problems.extend(independent_check(
            &raw,
            spec.method.as_str(),
            spec.path,
            &spec.all_params(),
        ));
        // The path as it is sent: a volume id's '/' stays inside its segment.
        if let Err(errors) =
            schema.validate(spec.method.as_str(), &spec.encoded_path(), &spec.params)
        {
            problems.push(format!("pve-schema rejects {}: {errors}", describe(spec)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The catalog covers every endpoint the client implements, for both guest kinds.
    let mut endpoints: Vec<String> = catalog
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    for expected in [
        "GET /version",
        "GET /nodes/{node}/lxc",
        "GET /nodes/{node}/qemu",
        "GET /nodes/{node}/lxc/{vmid}/config",
        "GET /nodes/{node}/qemu/{vmid}/config",
        "PUT /nodes/{node}/lxc/{vmid}/config",
        "POST /nodes/{node}/qemu/{vmid}/config",
        "GET /nodes/{node}/lxc/{vmid}/pending",
        "GET /nodes/{node}/qemu/{vmid}/pending",
        "GET /nodes/{node}/lxc/{vmid}/status/current",
        "GET /nodes/{node}/qemu/{vmid}/status/current",
        "POST /nodes/{node}/lxc/{vmid}/status/start",
        "POST /nodes/{node}/qemu/{vmid}/status/reboot",
        "DELETE /nodes/{node}/lxc/{vmid}",
        "DELETE /nodes/{node}/qemu/{vmid}",
        "GET /nodes/{node}/tasks/{upid}/status",
        "GET /nodes/{node}/tasks",
        "POST /nodes/{node}/lxc",
        "POST /nodes/{node}/qemu",
        "POST /nodes/{node}/lxc/{vmid}/clone",
        "POST /nodes/{node}/qemu/{vmid}/clone",
        "PUT /nodes/{node}/lxc/{vmid}/resize",
        "PUT /nodes/{node}/qemu/{vmid}/resize",
        "GET /cluster/nextid",
        "GET /cluster/resources",
        "POST /nodes/{node}/vzdump",
        "GET /nodes/{node}/storage/{storage}/content",
        "DELETE /nodes/{node}/storage/{storage}/content/{volume}",
    ] {
        assert!(
            endpoints.iter().any(|e| e == expected),
            "catalog lacks {expected}"
        );
    }
    assert_eq!(endpoints.len(), 34, "{endpoints:#?}");
    Ok(())
}

#[test]
fn the_independent_check_catches_mistakes() -> Result<(), Box<dyn std::error::Error>> {
    let text = schema_text();
    let raw: Value = serde_json::from_str(&text)?;
    let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let base = [("node", "pve-01"), ("vmid", "101")];
    let tmpl = "/nodes/{node}/lxc/{vmid}/config";
    assert!(independent_check(&raw, "PUT", tmpl, &params(&base)).is_empty());
    for bad in [
        ("vmid", "99"),
        ("memory", "8"),
        ("onboot", "yes"),
        ("no-such-key", "1"),
        ("delete", "Memory"),
        ("digest", &"a".repeat(41)),
    ] {
        let mut p = params(&base);
        p.insert(bad.0.to_owned(), bad.1.to_owned());
        assert!(
            !independent_check(&raw, "PUT", tmpl, &p).is_empty(),
            "{bad:?} passed"
        );
    }
    assert!(!independent_check(&raw, "POST", tmpl, &params(&base)).is_empty());
    assert!(!independent_check(&raw, "PUT", tmpl, &params(&[("node", "pve-01")])).is_empty());
    Ok(())
}
