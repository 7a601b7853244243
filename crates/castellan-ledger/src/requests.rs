//! Owner request drafts: one per inventory surface, telling its owner what to answer.
//!
//! A draft is only a draft: nothing is sent, and the report's status says so. The owner
//! answers with a `host_service_owner_response_v1` document (see [`crate::intake`]).

use crate::model::{
    InventoryReport, OwnerQuestion, REQUEST_STATUS, RequestDraft, RequestReport, RequestSummary,
};
use crate::schema::{OWNER_FIELDS, REQUEST_SCHEMA, REQUIRED_OWNER_FIELDS};

/// The question put to the owner for each response field.
pub fn question(field: &str) -> &'static str {
    match field {
        "owner_role_or_team" => "Which role or team owns this surface and answers for it?",
        "decision" => "What do you decide for this surface (keep, change, retire)?",
        "decision_reason" => "Why? One or two sentences a reviewer can check.",
        "affected_scope" => {
            "Which surface_id, hosts and services does this decision affect? Name the surface_id."
        }
        "redacted_evidence_refs" => {
            "Evidence as references only: sha256 hashes, commit ids, ticket ids or artifact URLs. Never paste configs, logs or secrets."
        }
        "live_config_hash_ref" => {
            "A reference to the SHA-256 of the live config on the host (e.g. sha256:<64 hex>), not the config itself."
        }
        "maintenance_window" => {
            "The maintenance window any future host read, restart, repair-bot run or Ansible apply must fall in."
        }
        "restart_window" => {
            "When a restart may happen, as a window only: do not ask castellan to run it."
        }
        "rollback_owner" => {
            "Who owns the rollback, and where is the rollback procedure (a reference)?"
        }
        "post_check_plan" => {
            "How is success checked afterwards: service health, routes, queues, logs, and the condition that stops and rolls back?"
        }
        "disable_switch" => "How is this surface disabled or frozen if it misbehaves?",
        "followup_owner" => "Who follows up on open items?",
        "config_source_of_truth_ref" => {
            "References to the repo, live, runner and backup sources of truth for this config."
        }
        "service_dependency_map_ref" => {
            "A reference to the dependency map: upstreams, downstreams, databases, queues, registries, AI providers, public routes."
        }
        "port_binding_inventory_ref" => {
            "A reference to the port binding and exposure inventory (host ports, container ports, proxy, firewall)."
        }
        "cold_start_sequence_ref" => {
            "A reference to the cold-start order: Docker daemon, compose stacks, systemd units, runners, post-checks."
        }
        "incident_recovery_evidence_ref" => {
            "For any fault, restart or port incident: a reference to recovery time, service health, route health and the operator notice."
        }
        "daemon_runner_contention_ref" => {
            "A reference to the review of contention between the Docker daemon, iptables/xtables, runners, repair bots, backups and compose actions."
        }
        _ => "Answer with a redacted reference.",
    }
}

/// The fields every owner response must fill: the request's own fields, then the
/// incident-recovery references (as the acceptance report lists them).
pub fn required_fields() -> Vec<String> {
    OWNER_FIELDS.iter().map(|f| (*f).to_owned()).collect()
}

/// Builds the request drafts for every surface of `inventory`, in inventory order.
pub fn build(inventory: &InventoryReport, generated_at: &str) -> RequestReport {
    let owner_fields: Vec<String> = REQUIRED_OWNER_FIELDS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    let questions: Vec<OwnerQuestion> = required_fields()
        .into_iter()
        .map(|field| OwnerQuestion {
            question: question(&field).to_owned(),
            field,
        })
        .collect();
    let drafts: Vec<RequestDraft> = inventory
        .surfaces
        .iter()
        .map(|s| RequestDraft {
            request_id: s.request_id(),
            surface_id: s.surface_id.clone(),
            label: s.label.clone(),
            expected_host_scope: s.expected_host_scope.clone(),
            config_kind: s.config_kind,
            service_scope: s.service_scope.clone(),
            control_tier: s.control_tier,
            repo_source_path: s.repo_source_path.clone(),
            repo_sha256: s.repo_sha256.clone(),
            source_line_count: s.source_line_count,
            write_capable_surface: s.write_capable_surface,
            requires_live_evidence: s.requires_live_evidence,
            required_owner_fields: owner_fields.clone(),
            owner_questions: questions.clone(),
        })
        .collect();
    let count = |f: fn(&RequestDraft) -> bool| drafts.iter().filter(|d| f(d)).count() as u64;
    RequestReport {
        schema_version: REQUEST_SCHEMA.to_owned(),
        generated_at: generated_at.to_owned(),
        source_inventory_schema_version: inventory.schema_version.clone(),
        source_inventory_status: inventory.status.clone(),
        source_inventory_git_commit: inventory.git_commit.clone(),
        status: REQUEST_STATUS.to_owned(),
        summary: RequestSummary {
            request_draft_count: drafts.len() as u64,
            write_capable_request_count: count(|d| d.write_capable_surface),
            live_evidence_required_count: count(|d| d.requires_live_evidence),
            required_owner_field_count: owner_fields.len() as u64,
        },
        request_drafts: drafts,
    }
}

/// Writes `report` to `out` as the ledger writes its documents (sorted keys, 2-space
/// indentation, a trailing newline), serialising draft by draft: the request documents
/// declare their fields in sorted order, so no intermediate `Value` is needed.
pub fn write_report<W: std::io::Write>(report: &RequestReport, mut out: W) -> std::io::Result<W> {
    serde_json::to_writer_pretty(&mut out, report)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_field_has_its_own_question() {
        for f in required_fields() {
            assert_ne!(question(&f), question("no_such_field"), "{f}");
        }
        assert_eq!(required_fields().len(), 18);
    }
}
