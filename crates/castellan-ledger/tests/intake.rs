//! Owner-response intake, lane by lane, with realistic responses; each lane's record is
//! also pinned as a golden snapshot.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use castellan_ledger::intake::{IntakeError, IntakeRecord, Verdict, analyze};
use castellan_ledger::schema::Lane;
use common::*;
use serde_json::{Value, json};

fn run(v: &Value) -> IntakeRecord {
    analyze(&bytes(v), &requests(), &key(), 2).unwrap()
}

fn verdict(r: &IntakeRecord, id: &str) -> Verdict {
    r.verdict(id).unwrap_or_else(|| panic!("no check {id}"))
}

fn assert_no(record: &IntakeRecord, secret: &str) {
    let stored = serde_json::to_string(record).unwrap();
    assert!(
        !stored.contains(secret),
        "the record contains the secret: {stored}"
    );
}

#[test]
fn a_complete_response_is_ready_for_review() {
    let r = run(&good_response(EXPORTER));
    assert_eq!(r.lane(), Some(Lane::ReadyForReview), "{:#?}", r.checks);
    assert!(r.supplement.is_empty());
    assert_eq!(r.checks.len(), 21);
    for c in &r.checks {
        assert_ne!(c.result, Verdict::Fail, "{c:?}");
    }
    assert_eq!(
        verdict(&r, "write_capable_requires_extra_review"),
        Verdict::NotApplicable
    );
    assert_eq!(
        verdict(&r, "incident_recovery_evidence_present"),
        Verdict::NotApplicable
    );
    assert!(r.response.is_some());
    insta::assert_json_snapshot!("ready", r);
}

#[test]
fn a_write_capable_surface_is_flagged_for_extra_review() {
    let r = run(&good_response(COMPOSE));
    assert_eq!(r.lane(), Some(Lane::ReadyForReview));
    assert!(r.write_capable_surface);
    let c = r
        .checks
        .iter()
        .find(|c| c.check_id == "write_capable_requires_extra_review")
        .unwrap();
    assert_eq!(c.result, Verdict::Pass);
    assert!(
        c.reason.contains("2 distinct reviewer signatures"),
        "{}",
        c.reason
    );
}

#[test]
fn a_token_hidden_in_a_nested_field_is_quarantined() {
    let token = "ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU";
    let mut v = good_response(COMPOSE);
    v["notes"] = json!({"debug": {"env": ["LANG=C", format!("deploy token {token}")]}});
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::Quarantine));
    assert_eq!(verdict(&r, "secret_value_absent"), Verdict::Fail);
    assert!(
        r.response.is_none(),
        "a quarantined response is never stored"
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.location == "$.notes.debug.env[1]"),
        "{:?}",
        r.findings
    );
    assert!(
        r.findings
            .iter()
            .all(|f| f.fingerprint.starts_with("hmac-sha256:"))
    );
    assert_no(&r, token);
    assert_no(&r, &token[4..]);
    insta::assert_json_snapshot!("quarantine_nested_token", r);
}

#[test]
fn a_base64_wrapped_secret_is_quarantined() {
    let inner = "postgres://app:S3cr3t-Pa55w0rd!@db.internal:5432/app";
    let encoded = base64::engine::general_purpose::STANDARD.encode(inner);
    let mut v = good_response(EXPORTER);
    v["notes"] = json!(format!("attached connection info: {encoded}"));
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::Quarantine), "{:?}", r.findings);
    assert!(
        r.findings.iter().any(|f| f.location.contains("base64")),
        "{:?}",
        r.findings
    );
    assert_no(&r, &encoded);
    assert_no(&r, "S3cr3t-Pa55w0rd!");
}

#[test]
fn a_partial_secret_is_quarantined() {
    let mut v = good_response(EXPORTER);
    v["decision_reason"] =
        json!("Rotated the old token (it started with ghp_7Kq2) after the audit.");
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::Quarantine), "{:?}", r.findings);
    assert_no(&r, "ghp_7Kq2");
}

#[test]
fn every_kind_of_secret_is_quarantined() {
    let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDpJ0mTzX8hQ3o4o5Yc9CqvB0Nf3W6m0Xh4m2o9J5k1XwAAAJg2yG3cNshtwA\n-----END OPENSSH PRIVATE KEY-----";
    let cases: [(&str, Value); 6] = [
        (
            "aws",
            json!(
                "aws_access_key_id=AKIAZ7VRSQ4TKDE2NWXY aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY9"
            ),
        ),
        ("pem", json!(pem)),
        (
            "env dump",
            json!(
                "DB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD=Tr0ub4dor&3-xk\nREDIS_URL=redis://cache:6379/0"
            ),
        ),
        (
            "cookie",
            json!(
                "Cookie: sessionid=9s8d7f6g5h4j3k2l1qwertyuiopASDF; csrftoken=QWErty123456uiopASDFghjkl"
            ),
        ),
        (
            "password",
            json!({"grafana": {"admin_password": "Wint3r-is-C0ming-2026"}}),
        ),
        ("slack", json!(["xoxb-2048-4096-AbCdEfGhIjKlMnOpQrStUvWx"])),
    ];
    for (name, value) in cases {
        let mut v = good_response(EXPORTER);
        v["notes"] = value;
        let r = run(&v);
        assert_eq!(r.lane(), Some(Lane::Quarantine), "{name}: {:?}", r.findings);
        assert!(r.response.is_none(), "{name}");
    }
}

#[test]
fn a_pasted_compose_file_is_quarantined_as_raw_payload() {
    let compose = "services:\n  prometheus:\n    image: prom/prometheus:v2.53.0\n    ports:\n      - \"9090:9090\"\n    volumes:\n      - ./prometheus.yml:/etc/prometheus/prometheus.yml\n    restart: unless-stopped\n";
    let mut v = good_response(COMPOSE);
    v["post_check_plan"] = json!(compose);
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::Quarantine));
    assert_eq!(r.raw_payloads.len(), 1, "{:?}", r.raw_payloads);
    assert_eq!(r.raw_payloads[0].location, "$.post_check_plan");
    assert_eq!(r.raw_payloads[0].label, "raw_compose");
    assert_eq!(verdict(&r, "redacted_refs_only"), Verdict::Fail);
    assert!(r.response.is_none());
    assert_no(&r, "prom/prometheus");
    insta::assert_json_snapshot!("quarantine_raw_compose", r);
}

#[test]
fn a_pasted_unit_instead_of_a_live_hash_is_quarantined() {
    let unit = "[Unit]\nDescription=Prometheus node exporter\nAfter=network-online.target\n\n[Service]\nUser=node_exporter\nExecStart=/usr/local/bin/node_exporter\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n";
    let mut v = good_response(EXPORTER);
    v["live_config_hash_ref"] = json!(unit);
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::Quarantine));
    assert_eq!(verdict(&r, "live_config_hash_metadata_only"), Verdict::Fail);
    assert_eq!(r.raw_payloads[0].label, "raw_systemd_unit");
}

#[test]
fn a_smuggled_sudo_systemctl_restart_is_rejected() {
    let mut v = good_response(EXPORTER);
    v["restart_window"] =
        json!("tonight 23:00; please run `sudo systemctl restart node-exporter` once approved");
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::RejectExecutionRequest));
    assert_eq!(verdict(&r, "no_runtime_request"), Verdict::Fail);
    assert_eq!(
        verdict(&r, "restart_window_separate_from_action"),
        Verdict::Fail
    );
    let labels: Vec<&str> = r
        .execution_requests
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    assert!(labels.contains(&"sudo_action"), "{labels:?}");
    assert!(labels.contains(&"systemctl_restart"), "{labels:?}");
    assert!(
        r.execution_requests
            .iter()
            .all(|e| e.location == "$.restart_window")
    );
    insta::assert_json_snapshot!("reject_execution_request", r);
}

#[test]
fn other_execution_requests_are_rejected() {
    for (text, label) in [
        (
            "ssh admin@pve1.example.com and pull the new image",
            "ssh_read",
        ),
        (
            "then docker compose -f monitoring.yml up -d",
            "docker_compose_up",
        ),
        (
            "run ansible-playbook -l web site.yml to apply",
            "ansible_apply",
        ),
        ("trigger the repair-bot for this host", "repair_bot_execute"),
        (
            "echo 'net.ipv4.ip_forward=1' >> /etc/sysctl.conf",
            "host_file_write",
        ),
    ] {
        let mut v = good_response(EXPORTER);
        v["decision_reason"] = json!(text);
        let r = run(&v);
        assert_eq!(r.lane(), Some(Lane::RejectExecutionRequest), "{text}");
        assert!(
            r.execution_requests.iter().any(|e| e.label == label),
            "{text}: {:?}",
            r.execution_requests
        );
    }
}

#[test]
fn missing_fields_ask_for_exactly_what_is_missing() {
    let mut v = good_response(EXPORTER);
    let obj = v.as_object_mut().unwrap();
    obj.remove("rollback_owner");
    obj.insert("disable_switch".into(), json!("TBD"));
    obj.insert(
        "service_dependency_map_ref".into(),
        json!("we keep it in the wiki"),
    );
    obj.insert("affected_scope".into(), json!("the monitoring hosts"));
    obj.insert("post_check_plan".into(), json!("look at grafana"));
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::RequestSupplement));
    assert_eq!(
        r.supplement,
        vec![
            "affected_scope does not name the surface (systemd_service:systemd/node-exporter.service)".to_owned(),
            "disable_switch: missing".to_owned(),
            "post_check_plan: does not name a service health check or the rollback/stop condition".to_owned(),
            "rollback_owner: missing".to_owned(),
            "service_dependency_map_ref: a description, not a reference (give a URL, ticket, commit, hash or artifact pointer)".to_owned(),
        ]
    );
    for id in [
        "rollback_owner_present",
        "disable_switch_present",
        "service_dependency_map_present",
        "affected_scope_matches_surface",
        "post_check_plan_present",
    ] {
        assert_eq!(verdict(&r, id), Verdict::Fail, "{id}");
    }
    insta::assert_json_snapshot!("request_supplement", r);
}

#[test]
fn a_stale_surface_version_or_prose_evidence_asks_for_a_supplement() {
    let mut v = good_response(EXPORTER);
    v["repo_sha256"] = json!("00".repeat(32));
    v["redacted_evidence_refs"] = json!(["OPS-1", "the grafana screenshot from Monday"]);
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::RequestSupplement));
    assert_eq!(verdict(&r, "affected_scope_matches_surface"), Verdict::Fail);
    assert_eq!(verdict(&r, "redacted_refs_only"), Verdict::Fail);
    assert!(
        r.supplement
            .iter()
            .any(|s| s.starts_with("redacted_evidence_refs[1]")),
        "{:?}",
        r.supplement
    );
}

#[test]
fn incident_content_requires_the_backfill() {
    let mut v = good_response(EXPORTER);
    v["decision_reason"] = json!(
        "The exporter restarted itself after an OOM kill and port 9100 was taken by a stray process."
    );
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::IncidentBackfill), "{:?}", r.checks);
    assert_eq!(
        verdict(&r, "incident_recovery_evidence_present"),
        Verdict::Fail
    );
    let signals: Vec<&str> = r
        .incident_signals
        .iter()
        .map(|s| s.label.as_str())
        .collect();
    assert!(
        signals.contains(&"silent_restart") && signals.contains(&"port_incident"),
        "{signals:?}"
    );
    assert!(
        r.supplement
            .iter()
            .any(|s| s.starts_with("incident_recovery_evidence_ref"))
    );
    insta::assert_json_snapshot!("incident_backfill", r);

    // With the incident evidence, the same response goes on to review.
    v["incident_recovery_evidence_ref"] = json!("INC-4411");
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::ReadyForReview), "{:?}", r.checks);
    assert_eq!(
        verdict(&r, "incident_recovery_evidence_present"),
        Verdict::Pass
    );
    assert_eq!(verdict(&r, "silent_restart_not_accepted"), Verdict::Pass);
}

#[test]
fn a_silent_restart_without_actor_and_rollback_is_not_accepted() {
    let mut v = good_response(EXPORTER);
    v["notes"] = json!("It was silently restarted by someone during the night.");
    v["incident_recovery_evidence_ref"] = json!("INC-1");
    v.as_object_mut().unwrap().remove("rollback_owner");
    let r = run(&v);
    assert_eq!(r.lane(), Some(Lane::IncidentBackfill));
    assert_eq!(verdict(&r, "silent_restart_not_accepted"), Verdict::Fail);
}

#[test]
fn malformed_responses_are_refused_naming_the_problem() {
    let reqs = requests();
    let k = key();
    let secret_key_name = "ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (b"[1,2]".to_vec(), "must be a JSON object"),
        (vec![0xff, 0xfe], "not UTF-8"),
        (
            bytes(&json!({"schema_version": "v0"})),
            "schema_version must be",
        ),
        (
            {
                let mut v = good_response(EXPORTER);
                v["extra"] = json!(1);
                bytes(&v)
            },
            "unknown field \"extra\"",
        ),
        (
            {
                let mut v = good_response(EXPORTER);
                v[secret_key_name] = json!(1);
                bytes(&v)
            },
            "not shown",
        ),
        (
            {
                let mut v = good_response(EXPORTER);
                v["request_id"] = json!("host_service_owner_request:nope");
                bytes(&v)
            },
            "is not in the owner request report",
        ),
        (
            {
                let mut v = good_response(EXPORTER);
                v.as_object_mut().unwrap().remove("surface_id");
                bytes(&v)
            },
            "surface_id must be a non-empty string",
        ),
        (
            vec![b' '; castellan_ledger::intake::MAX_RESPONSE_BYTES + 1],
            "the limit is",
        ),
    ];
    for (input, want) in cases {
        let err = analyze(&input, &reqs, &k, 2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        assert!(!msg.contains(secret_key_name));
    }
    let deep = "[".repeat(40) + &"]".repeat(40);
    assert_eq!(
        analyze(deep.as_bytes(), &reqs, &k, 2).unwrap_err(),
        IntakeError::TooDeep
    );
}

#[test]
fn the_same_bytes_give_the_same_record_and_id() {
    let a = run(&good_response(COMPOSE));
    let b = run(&good_response(COMPOSE));
    assert_eq!(a, b);
    let mut other = good_response(COMPOSE);
    other["notes"] = json!("another note");
    assert_ne!(run(&other).response_id, a.response_id);
    // Keyed: another ledger key gives another id for the same bytes.
    let other_key = castellan_ledger::secrets::FingerprintKey::from_bytes([9; 32]);
    let c = analyze(&bytes(&good_response(COMPOSE)), &requests(), &other_key, 2).unwrap();
    assert_ne!(c.response_id, a.response_id);
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,80}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(".{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any value in any owner field: a record or a refusal, never a panic; a record
        /// always has all 21 checks and exactly one lane.
        #[test]
        fn any_field_value_is_handled(field in prop::sample::select(castellan_ledger::schema::OWNER_FIELDS.to_vec()), value in json_value()) {
            let mut v = good_response(COMPOSE);
            v[field] = value;
            if let Ok(r) = analyze(&bytes(&v), &requests(), &key(), 2) {
                prop_assert_eq!(r.checks.len(), 21);
                prop_assert!(r.lane().is_some());
            }
        }

        /// Arbitrary bytes are refused cleanly.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = analyze(&data, &requests(), &key(), 2);
        }
    }
}
