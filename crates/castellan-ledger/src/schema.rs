//! The identifiers of the `host_service_owner_response_acceptance_v1` contract.
//!
//! Field names, reviewer check ids, outcome lane ids, blocked action ids and schema
//! versions are kept exactly as the seed ledger defines them (and a test compares them
//! with the seed when `CASTELLAN_SEED_DIR` names it); the human text is castellan's own, in English.

/// The acceptance report's schema version.
pub const ACCEPTANCE_SCHEMA: &str = "host_service_owner_response_acceptance_v1";
/// The inventory report's schema version.
pub const INVENTORY_SCHEMA: &str = "host_service_config_inventory_v1";
/// The owner request draft report's schema version.
pub const REQUEST_SCHEMA: &str = "host_service_owner_request_draft_v1";
/// The owner response document's schema version.
pub const RESPONSE_SCHEMA: &str = "host_service_owner_response_v1";
/// The acceptance report's `status`: it never authorises anything.
pub const ACCEPTANCE_STATUS: &str = "owner_response_acceptance_ledger_ready_no_runtime_action";
/// The prefix of an acceptance candidate id (`PREFIX:surface_id`).
pub const CANDIDATE_PREFIX: &str = "host_service_owner_response_acceptance";
/// The placeholder the seed puts in every owner-supplied text field until a response arrives.
pub const PENDING: &str = "pending_owner_response";

/// Every field of an acceptance candidate that the contract names, in contract order.
pub const ACCEPTANCE_FIELDS: [&str; 34] = [
    "acceptance_candidate_id",
    "request_id",
    "surface_id",
    "label",
    "expected_host_scope",
    "config_kind",
    "service_scope",
    "control_tier",
    "repo_source_path",
    "repo_sha256",
    "source_line_count",
    "write_capable_surface",
    "requires_live_evidence",
    "owner_response_ref",
    "owner_role_or_team",
    "decision",
    "decision_reason",
    "affected_scope",
    "redacted_evidence_refs",
    "live_config_hash_ref",
    "maintenance_window",
    "restart_window",
    "rollback_owner",
    "post_check_plan",
    "disable_switch",
    "config_source_of_truth_ref",
    "service_dependency_map_ref",
    "port_binding_inventory_ref",
    "cold_start_sequence_ref",
    "incident_recovery_evidence_ref",
    "daemon_runner_contention_ref",
    "reviewer_outcome",
    "followup_owner",
    "not_approval",
];

/// Every owner field of a response: the request's own fields, then the incident-recovery
/// references.
pub const OWNER_FIELDS: [&str; 18] = [
    "owner_role_or_team",
    "decision",
    "decision_reason",
    "affected_scope",
    "redacted_evidence_refs",
    "live_config_hash_ref",
    "maintenance_window",
    "restart_window",
    "rollback_owner",
    "post_check_plan",
    "disable_switch",
    "followup_owner",
    "config_source_of_truth_ref",
    "service_dependency_map_ref",
    "port_binding_inventory_ref",
    "cold_start_sequence_ref",
    "incident_recovery_evidence_ref",
    "daemon_runner_contention_ref",
];

/// The fields an owner request asks for (before the incident fields are appended).
pub const REQUIRED_OWNER_FIELDS: &[&str] = OWNER_FIELDS.split_at(12).0;

/// The incident-recovery references every owner response must also carry.
pub const INCIDENT_OWNER_RESPONSE_FIELDS: &[&str] = OWNER_FIELDS.split_at(12).1;

/// A reviewer check: its id (contract) and what it demands (castellan's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDef {
    /// The contract id.
    pub check_id: &'static str,
    /// What the check demands.
    pub instruction: &'static str,
}

macro_rules! checks {
    ($($id:literal => $text:literal,)*) => {
        [$(CheckDef { check_id: $id, instruction: $text },)*]
    };
}

/// The 21 reviewer checks, in contract order.
pub const REVIEWER_CHECKS: [CheckDef; 21] = checks![
    "owner_identity_present" => "The owning role or team must be named so the response can be traced.",
    "decision_reason_present" => "A decision and the reason for it must both be given.",
    "affected_scope_matches_surface" => "The affected scope must map back to the committed surface_id.",
    "redacted_refs_only" => "Evidence may only be redacted references: a hash, ticket, commit or artifact pointer.",
    "secret_value_absent" => "No token, password, cookie, private key, environment dump or partial secret may appear.",
    "live_config_hash_metadata_only" => "The live config hash is an owner-supplied metadata reference; raw live config must not be pasted.",
    "maintenance_window_present" => "Any future host read, restart, repair-bot run or Ansible action needs its own maintenance window.",
    "restart_window_separate_from_action" => "The restart window is a window, not a docker or systemctl action, and nothing runs automatically.",
    "rollback_owner_present" => "A rollback owner, rollback reference or disable path must be given.",
    "post_check_plan_present" => "The post-check must cover service health, routes, queues, logs and the rollback stop condition.",
    "disable_switch_present" => "A repair bot, Ansible role or service config needs a disable switch or freeze rule.",
    "config_source_of_truth_present" => "References to the repo, live, runner and backup sources of truth are required; a verbal description is not enough.",
    "service_dependency_map_present" => "A dependency map reference must cover upstreams, downstreams, databases, queues, registries, AI providers and public routes.",
    "port_binding_inventory_present" => "A port binding and exposure inventory reference must keep host ports, container ports, proxy and firewall state from drifting apart.",
    "cold_start_sequence_present" => "A cold-start and recovery sequence reference must order the Docker daemon, compose stacks, systemd units, runners and post-checks.",
    "incident_recovery_evidence_present" => "A response about a service fault, restart or port incident must reference recovery time, service health, route health and the operator notice.",
    "daemon_runner_contention_reviewed" => "The response must say whether the Docker daemon, iptables/xtables, runners, repair bots, backup jobs or compose actions can contend.",
    "silent_restart_not_accepted" => "A silent restart or reload without actor, reason, dependency map, port inventory, rollback and post-check is never accepted.",
    "write_capable_requires_extra_review" => "A write-capable surface needs additional reviewer records; it is never accepted directly.",
    "no_runtime_request" => "A response carrying an SSH, Docker, systemctl, repair-bot, Ansible, sudo or host-write request is rejected.",
    "counts_transition_safe" => "Only reviewer records move received, accepted and rejected counts, and never open a runtime gate.",
];

/// An outcome lane: its id (contract) and what it means (castellan's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneDef {
    /// The contract id.
    pub lane_id: &'static str,
    /// What the lane means.
    pub meaning: &'static str,
}

macro_rules! lanes {
    ($($id:literal => $text:literal,)*) => {
        [$(LaneDef { lane_id: $id, meaning: $text },)*]
    };
}

/// The 8 outcome lanes, in contract order.
pub const OUTCOME_LANES: [LaneDef; 8] = lanes![
    "waiting_owner_response" => "No owner response has been received; every accepted and runtime count stays 0.",
    "quarantine_secret_or_raw_payload" => "A secret, environment dump, raw compose file, raw systemd unit or unredacted host config arrived: quarantined, only a redacted fingerprint is kept.",
    "reject_execution_request" => "The response asks for SSH, docker compose, systemctl, a repair-bot run, Ansible, sudo or a host write: rejected.",
    "request_supplement" => "Fields are missing, the scope is unclear, or the live hash ref, rollback or post-check is missing: a supplement is requested.",
    "incident_recovery_backfill_required" => "The response involves a service fault, silent restart, port incident or cold-start recovery: incident backfill first, never accepted directly.",
    "ready_for_host_service_review" => "The metadata passed every automated check; it may only go on to host-service reviewer review.",
    "owner_review_only_update" => "Only the read-only owner review ledger is updated; compose, systemd, repair-bot and Ansible stay untouched.",
    "waiting_runtime_gate" => "Even with the owner response accepted, the runtime gate waits for its own human approval.",
];

/// The 27 actions the ledger never authorises, in contract order.
pub const BLOCKED_ACTIONS: [&str; 27] = [
    "ssh_read",
    "ssh_write",
    "docker_compose_up",
    "docker_compose_down",
    "docker_compose_pull",
    "systemctl_restart",
    "systemctl_reload",
    "repair_bot_execute",
    "ansible_apply",
    "sudo_action",
    "host_file_write",
    "firewall_change",
    "secret_value_collection",
    "active_scan",
    "live_host_read",
    "raw_live_config_storage",
    "restart_without_window",
    "rollback_without_owner",
    "accept_silent_restart",
    "treat_service_healthy_as_config_accepted",
    "skip_config_source_of_truth_review",
    "skip_service_dependency_map",
    "skip_port_binding_review",
    "skip_cold_start_sequence",
    "hide_daemon_runner_contention",
    "runtime_gate_open",
    "add_action_button",
];

/// The report's closing guidance.
pub const NEXT_STEPS: [&str; 3] = [
    "Wait for each owner to answer with redacted metadata references: live config hash, maintenance and restart windows, rollback owner, post-check plan, disable switch, source of truth, dependency map, port bindings, cold-start sequence, incident recovery evidence and the daemon/runner contention review.",
    "Run every response through `castellan ledger intake` first (field completeness, quarantine of sensitive payloads, rejection of execution requests); never read a host, restart, run a repair bot or apply Ansible on the strength of a response.",
    "Write-capable and incident-backfill surfaces need additional signed reviewer records; the runtime gate still needs its own human approval, rollback, dependency, port, cold-start and post-check evidence.",
];

/// The outcome lanes as an enum (the ids above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// `waiting_owner_response`
    WaitingOwnerResponse,
    /// `quarantine_secret_or_raw_payload`
    Quarantine,
    /// `reject_execution_request`
    RejectExecutionRequest,
    /// `request_supplement`
    RequestSupplement,
    /// `incident_recovery_backfill_required`
    IncidentBackfill,
    /// `ready_for_host_service_review`
    ReadyForReview,
    /// `owner_review_only_update`
    OwnerReviewOnlyUpdate,
    /// `waiting_runtime_gate`
    WaitingRuntimeGate,
}

impl Lane {
    /// Every lane, in contract order.
    pub const ALL: [Lane; 8] = [
        Lane::WaitingOwnerResponse,
        Lane::Quarantine,
        Lane::RejectExecutionRequest,
        Lane::RequestSupplement,
        Lane::IncidentBackfill,
        Lane::ReadyForReview,
        Lane::OwnerReviewOnlyUpdate,
        Lane::WaitingRuntimeGate,
    ];

    /// The contract id.
    pub fn id(self) -> &'static str {
        OUTCOME_LANES[self as usize].lane_id
    }

    /// The lane with contract id `id`.
    pub fn from_id(id: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|l| l.id() == id)
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_are_unique_and_lanes_line_up() {
        let checks: BTreeSet<_> = REVIEWER_CHECKS.iter().map(|c| c.check_id).collect();
        assert_eq!(checks.len(), REVIEWER_CHECKS.len());
        let blocked: BTreeSet<_> = BLOCKED_ACTIONS.iter().collect();
        assert_eq!(blocked.len(), BLOCKED_ACTIONS.len());
        for (i, lane) in Lane::ALL.iter().enumerate() {
            assert_eq!(lane.id(), OUTCOME_LANES[i].lane_id);
            assert_eq!(Lane::from_id(lane.id()), Some(*lane));
        }
        assert_eq!(Lane::from_id("nope"), None);
    }
}
