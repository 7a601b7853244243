//! The acceptance report keeps the seed ledger's contract: its identifiers are read out of
//! the seed itself (`000_f4f35929da6e81ed.txt` in `CASTELLAN_SEED_DIR`, when it is set)
//! and compared with what castellan writes, so a renamed field, a dropped check or a
//! changed default fails here.

#![allow(clippy::unwrap_used)]

#[path = "common/seed_py.rs"]
mod seed_py;

use std::collections::BTreeSet;
use std::path::Path;

use castellan_ledger::acceptance::{ReportInputs, build_report, summary_line};
use castellan_ledger::model::{
    ConfigKind, INVENTORY_STATUS, InventoryReport, InventorySummary, Surface,
};
use castellan_ledger::requests;
use castellan_ledger::schema::{self, INVENTORY_SCHEMA};
use regex::Regex;
use serde_json::Value;

/// The seed, when `CASTELLAN_SEED_DIR` names it (see `common/seed_py.rs`: without it these
/// tests print a skip).
fn seed() -> Option<String> {
    let path = seed_py::require(Path::new("000_f4f35929da6e81ed.txt"))?;
    Some(std::fs::read_to_string(path).unwrap())
}

/// The text between `start` and the first `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the seed"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

fn quoted(text: &str) -> Vec<String> {
    Regex::new(r#""([^"]+)""#)
        .unwrap()
        .captures_iter(text)
        .map(|c| c[1].to_owned())
        .collect()
}

/// `"key": value` pairs of a Python dict literal's lines (one per line).
fn dict_pairs(text: &str) -> Vec<(String, String)> {
    let re = Regex::new(r#"(?m)^\s*"([a-z0-9_]+)":\s*(.*?),?\s*$"#).unwrap();
    re.captures_iter(text)
        .map(|c| (c[1].to_owned(), c[2].trim_end_matches(',').to_owned()))
        .collect()
}

fn surface(i: usize, kind: ConfigKind, write: bool) -> Surface {
    let path = format!("hosts/h{i}/compose.yml");
    Surface {
        surface_id: format!("{kind}:{path}"),
        label: format!("compose: app{i}"),
        expected_host_scope: format!("h{i}"),
        config_kind: kind,
        service_scope: format!("app{i}"),
        control_tier: kind.control_tier(),
        repo_source_path: path,
        repo_sha256: format!("{i:064x}"),
        source_line_count: 10 + i as u64,
        write_capable_surface: write,
        requires_live_evidence: true,
    }
}

fn report() -> Value {
    let surfaces = vec![
        surface(1, ConfigKind::DockerCompose, true),
        surface(2, ConfigKind::SystemdService, false),
    ];
    let inventory = InventoryReport {
        schema_version: INVENTORY_SCHEMA.into(),
        generated_at: "2026-11-22T10:00:00+08:00".into(),
        git_commit: "abc1234".into(),
        status: INVENTORY_STATUS.into(),
        summary: InventorySummary {
            scanned_file_count: 2,
            surface_count: 2,
            config_kind_counts: Default::default(),
            write_capable_surface_count: 1,
            live_evidence_required_count: 2,
        },
        surfaces,
    };
    let requests = requests::build(&inventory, "2026-11-22T10:00:00+08:00");
    build_report(&ReportInputs {
        inventory: &inventory,
        requests: &requests,
        view: None,
        signers: None,
        generated_at: "2026-11-22T10:00:00+08:00",
        git_commit: "abc1234",
    })
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn identifier_lists_match_the_seed() {
    let Some(seed) = seed() else { return };
    let r = report();
    let fields = quoted(section(&seed, "ACCEPTANCE_FIELDS = [", "]"));
    assert_eq!(fields.len(), 34);
    assert_eq!(fields, schema::ACCEPTANCE_FIELDS);
    assert_eq!(r["acceptance_fields"], serde_json::json!(fields));

    let incident = quoted(section(&seed, "INCIDENT_OWNER_RESPONSE_FIELDS = [", "]"));
    assert_eq!(incident, schema::INCIDENT_OWNER_RESPONSE_FIELDS);

    let checks: Vec<String> = Regex::new(r#""check_id": "([a-z_]+)""#)
        .unwrap()
        .captures_iter(&seed)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(checks.len(), 21);
    let ours: Vec<&str> = r["reviewer_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(ours, checks);

    let lanes: Vec<String> = Regex::new(r#""lane_id": "([a-z_]+)""#)
        .unwrap()
        .captures_iter(&seed)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(lanes.len(), 8);
    let ours: Vec<&str> = r["outcome_lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lane_id"].as_str().unwrap())
        .collect();
    assert_eq!(ours, lanes);
    // Every check and lane has English text of its own.
    for item in r["reviewer_checks"].as_array().unwrap() {
        assert!(item["instruction"].as_str().unwrap().is_ascii());
    }
    for item in r["outcome_lanes"].as_array().unwrap() {
        assert!(item["meaning"].as_str().unwrap().is_ascii());
    }

    let blocked = quoted(section(&seed, "BLOCKED_ACTIONS = [", "]"));
    assert_eq!(blocked.len(), 27);
    assert_eq!(r["blocked_actions"], serde_json::json!(blocked));
}

#[test]
fn top_level_summary_and_boundaries_match_the_seed() {
    let Some(seed) = seed() else { return };
    let r = report();
    let build = section(&seed, "def build_report(", "def main(");
    let ret = section(
        build,
        "return {",
        "\"acceptance_candidates\": acceptance_candidates,",
    );
    // Top-level keys: those at the return dict's first indentation level; the seed text
    // lost its indentation, so take every key and remove the nested ones.
    let summary_text = section(ret, "\"summary\": {", "},");
    let boundaries_text = section(ret, "\"execution_boundaries\": {", "},");
    let summary_keys: BTreeSet<String> =
        dict_pairs(summary_text).into_iter().map(|p| p.0).collect();
    let boundary_pairs = dict_pairs(boundaries_text);
    let nested: BTreeSet<String> = summary_keys
        .iter()
        .cloned()
        .chain(boundary_pairs.iter().map(|p| p.0.clone()))
        .collect();
    let mut top: BTreeSet<String> = dict_pairs(ret)
        .into_iter()
        .map(|p| p.0)
        .filter(|k| !nested.contains(k) || k == "summary" || k == "execution_boundaries")
        .collect();
    top.extend(["acceptance_candidates".to_owned(), "next_steps".to_owned()]);
    top.insert("summary".into());
    top.insert("execution_boundaries".into());
    assert_eq!(keys(&r), top);

    assert_eq!(summary_keys.len(), 42, "the seed's summary counters");
    assert_eq!(keys(&r["summary"]), summary_keys);
    // Without a ledger every counter of a transition or an authorisation is 0.
    for k in &summary_keys {
        if k.ends_with("_count")
            && ![
                "source_owner_request_count",
                "acceptance_candidate_count",
                "write_capable_acceptance_candidate_count",
                "live_evidence_required_candidate_count",
                "acceptance_field_count",
                "required_owner_field_count",
                "reviewer_check_count",
                "outcome_lane_count",
                "blocked_action_count",
            ]
            .contains(&k.as_str())
        {
            assert_eq!(r["summary"][k], 0, "{k}");
        }
    }
    assert_eq!(r["summary"]["acceptance_candidate_count"], 2);
    assert_eq!(r["summary"]["write_capable_acceptance_candidate_count"], 1);
    assert_eq!(r["summary"]["required_owner_field_count"], 18);
    assert_eq!(r["summary"]["acceptance_field_count"], 34);

    assert_eq!(boundary_pairs.len(), 16);
    for (k, v) in &boundary_pairs {
        let want = match v.as_str() {
            "True" => true,
            "False" => false,
            other => panic!("unexpected boundary value {other}"),
        };
        assert_eq!(r["execution_boundaries"][k], want, "{k}");
    }
    assert_eq!(keys(&r["execution_boundaries"]).len(), boundary_pairs.len());
    assert_eq!(
        r["schema_version"],
        "host_service_owner_response_acceptance_v1"
    );
    assert_eq!(
        r["status"],
        "owner_response_acceptance_ledger_ready_no_runtime_action"
    );
    assert_eq!(r["source_inventory_schema_version"], INVENTORY_SCHEMA);
    assert_eq!(r["next_steps"].as_array().unwrap().len(), 3);
}

#[test]
fn candidates_have_the_seeds_fields_and_defaults() {
    let Some(seed) = seed() else { return };
    let r = report();
    let body = section(&seed, "def acceptance_candidate(", "def build_report(");
    let pairs = dict_pairs(section(body, "return {", "\n}"));
    assert!(pairs.len() >= 70, "parsed {} candidate fields", pairs.len());
    let seed_keys: BTreeSet<String> = pairs.iter().map(|p| p.0.clone()).collect();
    for c in r["acceptance_candidates"].as_array().unwrap() {
        assert_eq!(keys(c), seed_keys);
        for (k, v) in &pairs {
            let want = match v.as_str() {
                "None" => Some(Value::Null),
                "True" => Some(Value::Bool(true)),
                "False" => Some(Value::Bool(false)),
                "[]" => Some(serde_json::json!([])),
                s if s.starts_with('"') && !s.contains('{') => {
                    Some(Value::String(s.trim_matches('"').to_owned()))
                }
                _ => None, // computed from the request
            };
            if let Some(want) = want {
                assert_eq!(c[k], want, "candidate field {k}");
            }
        }
        let id = c["surface_id"].as_str().unwrap();
        assert_eq!(
            c["acceptance_candidate_id"],
            format!("host_service_owner_response_acceptance:{id}")
        );
        assert_eq!(c["required_owner_fields"].as_array().unwrap().len(), 18);
        assert_eq!(c["reviewer_checks"].as_array().unwrap().len(), 21);
        assert_eq!(c["outcome_lanes"].as_array().unwrap().len(), 8);
        assert_eq!(c["blocked_actions"].as_array().unwrap().len(), 27);
    }
}

#[test]
fn the_summary_line_has_the_seeds_shape() {
    let Some(seed) = seed() else { return };
    let mut keys = Vec::new();
    let part = section(
        &seed,
        "\"HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK \"",
        "file=sys.stderr",
    );
    for c in Regex::new(r#"f"([a-z_]+)=\{summary\['([a-z_]+)'\]\}"#)
        .unwrap()
        .captures_iter(part)
    {
        keys.push((c[1].to_owned(), c[2].to_owned()));
    }
    assert_eq!(keys.len(), 6);
    let r = report();
    let line = summary_line(&r);
    let expected = format!(
        "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK {}",
        keys.iter()
            .map(|(name, key)| format!("{name}={}", r["summary"][key]))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(line, expected);
    assert_eq!(
        line,
        "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK candidates=2 write_capable=1 checks=21 lanes=8 accepted=0 runtime_gate=0"
    );
}

#[test]
fn json_is_sorted_with_two_space_indent() {
    let text = castellan_ledger::to_pretty_json(&report());
    assert!(text.starts_with("{\n  \"acceptance_candidates\": [\n    {\n      \""));
    assert!(text.ends_with("}\n"));
    // Sorted: the top-level keys appear in lexical order.
    let top: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  \""))
        .map(|l| l.trim_start().split('"').nth(1).unwrap())
        .collect();
    let mut sorted = top.clone();
    sorted.sort_unstable();
    assert_eq!(top, sorted);
}
