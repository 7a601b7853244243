//! Fixtures shared by the ledger's tests: a request report and realistic owner responses.

#![allow(clippy::unwrap_used, dead_code)]

use castellan_ledger::model::{
    ConfigKind, INVENTORY_STATUS, InventoryReport, InventorySummary, RequestReport, Surface,
};
use castellan_ledger::requests;
use castellan_ledger::schema::{INVENTORY_SCHEMA, RESPONSE_SCHEMA};
use castellan_ledger::secrets::FingerprintKey;
use serde_json::{Value, json};

pub const GENERATED_AT: &str = "2026-11-22T18:00:00+08:00";

pub fn key() -> FingerprintKey {
    FingerprintKey::from_bytes([7; 32])
}

fn surface(kind: ConfigKind, path: &str, scope: &str, write: bool, sha: u8) -> Surface {
    Surface {
        surface_id: format!("{kind}:{path}"),
        label: format!("{kind} {path}"),
        expected_host_scope: scope.into(),
        config_kind: kind,
        service_scope: path.rsplit('/').next().unwrap().into(),
        control_tier: kind.control_tier(),
        repo_source_path: path.into(),
        repo_sha256: format!("{sha:02x}").repeat(32),
        source_line_count: 42,
        write_capable_surface: write,
        requires_live_evidence: true,
    }
}

pub fn inventory() -> InventoryReport {
    let surfaces = vec![
        surface(
            ConfigKind::DockerCompose,
            "hosts/pve1/compose/monitoring/docker-compose.yml",
            "pve1",
            true,
            0xa1,
        ),
        surface(
            ConfigKind::SystemdService,
            "systemd/node-exporter.service",
            "unscoped",
            false,
            0xb2,
        ),
        surface(
            ConfigKind::SystemdTimer,
            "systemd/backup.timer",
            "unscoped",
            true,
            0xc3,
        ),
    ];
    InventoryReport {
        schema_version: INVENTORY_SCHEMA.into(),
        generated_at: GENERATED_AT.into(),
        git_commit: "fixture".into(),
        status: INVENTORY_STATUS.into(),
        summary: InventorySummary {
            scanned_file_count: 3,
            surface_count: 3,
            config_kind_counts: Default::default(),
            write_capable_surface_count: 2,
            live_evidence_required_count: 3,
        },
        surfaces,
    }
}

pub fn requests() -> RequestReport {
    requests::build(&inventory(), GENERATED_AT)
}

pub const COMPOSE: usize = 0;
pub const EXPORTER: usize = 1;
pub const TIMER: usize = 2;

/// A complete, clean response for request `i`: it should land in
/// `ready_for_host_service_review`.
pub fn good_response(i: usize) -> Value {
    let r = &requests().request_drafts[i];
    json!({
        "schema_version": RESPONSE_SCHEMA,
        "request_id": r.request_id,
        "surface_id": r.surface_id,
        "repo_sha256": r.repo_sha256,
        "responded_at": "2026-11-20T09:30:00Z",
        "owner_role_or_team": "platform-observability",
        "decision": "keep",
        "decision_reason": "The stack is current and matches the repo; the owner reviewed drift last sprint.",
        "affected_scope": format!("{} on {} only", r.surface_id, r.expected_host_scope),
        "redacted_evidence_refs": [
            "OPS-2291",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            {"ref": "https://git.example.com/ops/infra/-/merge_requests/812", "kind": "merge_request"}
        ],
        "live_config_hash_ref": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "maintenance_window": "Tuesdays 01:00-03:00 Europe/Berlin, announced 24h ahead in #ops",
        "restart_window": "inside the maintenance window only, after reviewer sign-off",
        "rollback_owner": "platform-observability on-call (runbook OPS-RB-17)",
        "post_check_plan": "Check /-/healthy on prometheus and grafana health, routes via the proxy, queue depth, error logs for 15 minutes; stop and roll back if any health check fails twice.",
        "disable_switch": "compose profile 'monitoring' disabled via OPS-2292 freeze rule",
        "followup_owner": "observability lead",
        "config_source_of_truth_ref": "repo=git:ops/infra@3f2a1bc live=sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae backup=s3://ops-backups/pve1/monitoring",
        "service_dependency_map_ref": "https://wiki.example.com/ops/deps/monitoring",
        "port_binding_inventory_ref": "OPS-2293",
        "cold_start_sequence_ref": "https://wiki.example.com/ops/cold-start#monitoring",
        "incident_recovery_evidence_ref": null,
        "daemon_runner_contention_ref": "OPS-2294",
        "notes": "Reviewed with the platform team."
    })
}

pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}
