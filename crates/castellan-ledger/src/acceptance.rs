//! The acceptance report, `host_service_owner_response_acceptance_v1`.
//!
//! Compatible with the seed ledger: the same top-level keys, summary counters, execution
//! boundaries, candidate fields and default values, in sorted-key JSON. Without a ledger
//! every candidate waits for its owner and every counter is 0, as in the seed. With one,
//! each candidate's state is derived from the records:
//!
//! - its latest intake record (by append order) sets the lane and, unless quarantined, the
//!   owner's answers; a record made against an older version of the surface (its
//!   `repo_sha256` changed since) counts as a request for a fresh answer;
//! - verified reviewer records bound to that response and that surface version decide
//!   accepted / rejected ([`crate::review::combine`]); an acceptance counts only for a
//!   response in `ready_for_host_service_review`, and a write-capable surface needs at
//!   least two distinct reviewer keys.
//!
//! Whatever the records say, every `*_authorized`, `runtime_gate` and
//! `action_buttons_allowed` stays `false`: acceptance is not runtime approval.

use std::collections::{BTreeMap, HashMap};

use castellan_sig::SignerConfig;
use serde_json::{Map, Value, json};

use crate::intake::{IntakeRecord, Verdict, candidate_id};
use crate::model::{InventoryReport, RequestDraft, RequestReport};
use crate::review::{self, Outcome, VerifiedReview};
use crate::schema::{
    ACCEPTANCE_FIELDS, ACCEPTANCE_SCHEMA, ACCEPTANCE_STATUS, BLOCKED_ACTIONS,
    INCIDENT_OWNER_RESPONSE_FIELDS, Lane, NEXT_STEPS, OUTCOME_LANES, OWNER_FIELDS, PENDING,
    REVIEWER_CHECKS,
};
use crate::store::{Ledger, LedgerError, StoredIntake};

/// Per-field acceptance flags: (flag, the check whose pass it needs).
const ACCEPTED_FLAGS: [(&str, &str); 12] = [
    (
        "live_config_hash_accepted",
        "live_config_hash_metadata_only",
    ),
    ("maintenance_window_accepted", "maintenance_window_present"),
    (
        "restart_window_accepted",
        "restart_window_separate_from_action",
    ),
    ("rollback_owner_accepted", "rollback_owner_present"),
    ("post_check_plan_accepted", "post_check_plan_present"),
    ("disable_switch_accepted", "disable_switch_present"),
    (
        "config_source_of_truth_accepted",
        "config_source_of_truth_present",
    ),
    (
        "service_dependency_map_accepted",
        "service_dependency_map_present",
    ),
    (
        "port_binding_inventory_accepted",
        "port_binding_inventory_present",
    ),
    (
        "cold_start_sequence_accepted",
        "cold_start_sequence_present",
    ),
    (
        "incident_recovery_evidence_accepted",
        "incident_recovery_evidence_present",
    ),
    (
        "daemon_runner_contention_accepted",
        "daemon_runner_contention_reviewed",
    ),
];

/// The flags the records move.
const TRANSITION_FLAGS: [&str; 20] = [
    "request_sent",
    "recipient_confirmed",
    "owner_response_received",
    "owner_response_accepted",
    "owner_response_rejected",
    "owner_response_quarantined",
    "supplement_requested",
    "live_evidence_received",
    "live_config_hash_accepted",
    "maintenance_window_accepted",
    "restart_window_accepted",
    "rollback_owner_accepted",
    "post_check_plan_accepted",
    "disable_switch_accepted",
    "config_source_of_truth_accepted",
    "service_dependency_map_accepted",
    "port_binding_inventory_accepted",
    "cold_start_sequence_accepted",
    "incident_recovery_evidence_accepted",
    "daemon_runner_contention_accepted",
];

/// Authorisation flags: always false.
const AUTHORIZATION_FLAGS: [&str; 13] = [
    "host_write_authorized",
    "ssh_read_authorized",
    "ssh_write_authorized",
    "docker_compose_action_authorized",
    "systemctl_action_authorized",
    "repair_bot_execution_authorized",
    "ansible_apply_authorized",
    "sudo_action_authorized",
    "secret_value_collection_allowed",
    "active_scan_authorized",
    "live_host_read_authorized",
    "runtime_gate",
    "action_buttons_allowed",
];

/// The candidate flags the summary counts, in the seed's order (`X` → `X_count`;
/// `action_buttons_allowed` → `action_button_count`).
fn counted_flags() -> impl Iterator<Item = &'static str> {
    TRANSITION_FLAGS.into_iter().chain(AUTHORIZATION_FLAGS)
}

/// What the ledger holds, verified: intake records and the reviewer records whose
/// signatures and roles check out.
#[derive(Debug, Default)]
pub struct LedgerView {
    /// Intake records in append order.
    pub intakes: Vec<StoredIntake>,
    /// Reviewer records that verified.
    pub reviews: Vec<VerifiedReview>,
    /// Reviewer records that did not verify: (sequence number, why). They count for nothing.
    pub refused: Vec<(i64, String)>,
    /// Candidate id -> index in `intakes` of its latest record.
    latest: HashMap<String, usize>,
    /// Candidate id -> indexes in `reviews`.
    by_candidate: HashMap<String, Vec<usize>>,
}

impl LedgerView {
    /// A view of these records, indexed by candidate.
    pub fn new(
        intakes: Vec<StoredIntake>,
        reviews: Vec<VerifiedReview>,
        refused: Vec<(i64, String)>,
    ) -> Self {
        let mut latest = HashMap::new();
        for (i, rec) in intakes.iter().enumerate() {
            latest.insert(rec.record.candidate_id.clone(), i);
        }
        let mut by_candidate: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in reviews.iter().enumerate() {
            by_candidate
                .entry(r.payload.candidate.clone())
                .or_default()
                .push(i);
        }
        Self {
            intakes,
            reviews,
            refused,
            latest,
            by_candidate,
        }
    }

    /// The latest intake record of candidate `id`.
    pub fn latest(&self, id: &str) -> Option<&StoredIntake> {
        self.latest.get(id).and_then(|&i| self.intakes.get(i))
    }

    /// The verified reviewer records of candidate `id`, in append order.
    pub fn reviews_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a VerifiedReview> + 'a {
        self.by_candidate
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.reviews.get(i))
    }

    /// Reads and verifies everything in `ledger`. Reviewer records need `signers`; without
    /// it, every reviewer record is refused.
    pub fn load(ledger: &Ledger, signers: Option<&SignerConfig>) -> Result<Self, LedgerError> {
        let mut reviews = Vec::new();
        let mut refused = Vec::new();
        for row in ledger.reviews()? {
            match signers {
                None => refused.push((row.seq, "no signer configuration to verify it".into())),
                Some(s) => match review::verify(&row.review, s) {
                    Ok(v) if v.payload.candidate == row.candidate_id => reviews.push(v),
                    Ok(_) => refused.push((
                        row.seq,
                        "stored candidate differs from the signed one".into(),
                    )),
                    Err(e) => refused.push((row.seq, e.to_string())),
                },
            }
        }
        Ok(LedgerView::new(ledger.intakes()?, reviews, refused))
    }
}

/// One candidate's derived state.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateState {
    /// The lane (`status`).
    pub lane: Lane,
    /// `reviewer_outcome`.
    pub reviewer_outcome: &'static str,
    /// The latest intake record, if any.
    pub latest: Option<IntakeRecord>,
    /// The combined reviewer outcome for it.
    pub outcome: Outcome,
    /// Whether the latest record answered an older version of the surface.
    pub stale: bool,
}

/// Derives a candidate's state from the records.
pub fn derive_state(
    draft: &RequestDraft,
    view: Option<&LedgerView>,
    signers: Option<&SignerConfig>,
) -> CandidateState {
    let id = candidate_id(&draft.surface_id);
    let waiting = CandidateState {
        lane: Lane::WaitingOwnerResponse,
        reviewer_outcome: "waiting_owner_response",
        latest: None,
        outcome: Outcome::Pending,
        stale: false,
    };
    let Some(view) = view else { return waiting };
    let Some(latest) = view.latest(&id).map(|i| i.record.clone()) else {
        return waiting;
    };
    let lane = latest.lane().unwrap_or(Lane::RequestSupplement);
    if latest.surface_sha256 != draft.repo_sha256 {
        return CandidateState {
            lane: Lane::RequestSupplement,
            reviewer_outcome: "surface_changed_since_response",
            latest: Some(latest),
            outcome: Outcome::Pending,
            stale: true,
        };
    }
    let bound: Vec<VerifiedReview> = view
        .reviews_of(&id)
        .filter(|r| {
            r.payload.response == latest.response_id
                && r.payload.surface_sha256 == draft.repo_sha256
        })
        .cloned()
        .collect();
    let need = review::reviewers_needed(signers, draft.write_capable_surface);
    let mut outcome = review::combine(&bound, need);
    if matches!(
        outcome,
        Outcome::Accepted { .. } | Outcome::NeedsMore { .. }
    ) && lane != Lane::ReadyForReview
    {
        // An acceptance of a response that is not ready counts for nothing.
        outcome = Outcome::Pending;
    }
    let (lane, reviewer_outcome) = match (&outcome, lane) {
        (Outcome::Rejected, _) => (Lane::OwnerReviewOnlyUpdate, "rejected"),
        (Outcome::Accepted { .. }, _) => (Lane::WaitingRuntimeGate, "accepted"),
        (Outcome::NeedsMore { .. }, l) => (l, "extra_reviewer_record_required"),
        (Outcome::Pending, Lane::ReadyForReview) => {
            (Lane::ReadyForReview, "awaiting_reviewer_record")
        }
        (Outcome::Pending, l) => (l, "owner_action_required"),
    };
    CandidateState {
        lane,
        reviewer_outcome,
        latest: Some(latest),
        outcome,
        stale: false,
    }
}

/// The candidate document for `draft` in state `state`.
pub fn candidate(draft: &RequestDraft, state: &CandidateState) -> Value {
    let surface_id = &draft.surface_id;
    let mut required: Vec<Value> = draft
        .required_owner_fields
        .iter()
        .map(|f| json!(f))
        .collect();
    required.extend(INCIDENT_OWNER_RESPONSE_FIELDS.iter().map(|f| json!(f)));
    let mut c = json!({
        "acceptance_candidate_id": candidate_id(surface_id),
        "status": state.lane.id(),
        "request_id": draft.request_id,
        "surface_id": surface_id,
        "label": draft.label,
        "expected_host_scope": draft.expected_host_scope,
        "config_kind": draft.config_kind,
        "service_scope": draft.service_scope,
        "control_tier": draft.control_tier,
        "repo_source_path": draft.repo_source_path,
        "repo_sha256": draft.repo_sha256,
        "source_line_count": draft.source_line_count,
        "write_capable_surface": draft.write_capable_surface,
        "requires_live_evidence": draft.requires_live_evidence,
        "owner_response_ref": null,
        "owner_role_or_team": PENDING,
        "decision": PENDING,
        "decision_reason": PENDING,
        "affected_scope": PENDING,
        "redacted_evidence_refs": [],
        "live_config_hash_ref": null,
        "maintenance_window": PENDING,
        "restart_window": PENDING,
        "rollback_owner": PENDING,
        "post_check_plan": PENDING,
        "disable_switch": PENDING,
        "config_source_of_truth_ref": null,
        "service_dependency_map_ref": null,
        "port_binding_inventory_ref": null,
        "cold_start_sequence_ref": null,
        "incident_recovery_evidence_ref": null,
        "daemon_runner_contention_ref": null,
        "reviewer_outcome": state.reviewer_outcome,
        "followup_owner": PENDING,
        "acceptance_fields": &ACCEPTANCE_FIELDS[..],
        "required_owner_fields": required,
        "reviewer_checks": REVIEWER_CHECKS.iter().map(|c| c.check_id).collect::<Vec<_>>(),
        "outcome_lanes": OUTCOME_LANES.iter().map(|l| l.lane_id).collect::<Vec<_>>(),
        "blocked_actions": &BLOCKED_ACTIONS[..],
        "not_approval": true,
    });
    let Value::Object(map) = &mut c else {
        return c;
    };
    if let Some(latest) = &state.latest {
        fill_from_record(map, latest);
    }
    for (k, v) in flags(state) {
        map.insert(k.to_owned(), Value::Bool(v));
    }
    c
}

/// A candidate's counted flags (transitions from the records; authorisations always false).
pub fn flags(state: &CandidateState) -> BTreeMap<&'static str, bool> {
    let mut flags: BTreeMap<&'static str, bool> = counted_flags().map(|f| (f, false)).collect();
    if let Some(latest) = &state.latest {
        let accepted = matches!(state.outcome, Outcome::Accepted { .. });
        let lane = latest.lane();
        flags.insert("request_sent", true);
        flags.insert("recipient_confirmed", true);
        flags.insert("owner_response_received", true);
        flags.insert("owner_response_quarantined", lane == Some(Lane::Quarantine));
        flags.insert(
            "supplement_requested",
            state.stale || lane == Some(Lane::RequestSupplement),
        );
        flags.insert(
            "live_evidence_received",
            latest.response.is_some()
                && latest.verdict("live_config_hash_metadata_only") == Some(Verdict::Pass),
        );
        flags.insert("owner_response_accepted", accepted);
        flags.insert(
            "owner_response_rejected",
            matches!(state.outcome, Outcome::Rejected),
        );
        for (flag, check) in ACCEPTED_FLAGS {
            flags.insert(
                flag,
                accepted && latest.verdict(check) == Some(Verdict::Pass),
            );
        }
    }
    for f in AUTHORIZATION_FLAGS {
        // Never derived from anything: acceptance is not authorisation.
        flags.insert(f, false);
    }
    flags
}

fn fill_from_record(map: &mut Map<String, Value>, rec: &IntakeRecord) {
    map.insert("owner_response_ref".into(), json!(rec.response_id));
    if rec.response.is_none() {
        return; // quarantined: nothing of the response is shown
    }
    for f in OWNER_FIELDS {
        if f == "redacted_evidence_refs" {
            map.insert(f.into(), json!(rec.evidence_refs()));
        } else if let Some(text) = rec.field_text(f) {
            map.insert(f.to_owned(), json!(text));
        }
    }
}

/// Inputs of [`build_report`].
#[derive(Debug)]
pub struct ReportInputs<'a> {
    /// The inventory report.
    pub inventory: &'a InventoryReport,
    /// The owner request report.
    pub requests: &'a RequestReport,
    /// The ledger's records, when a ledger is given.
    pub view: Option<&'a LedgerView>,
    /// The reviewer signer configuration (thresholds).
    pub signers: Option<&'a SignerConfig>,
    /// `generated_at`.
    pub generated_at: &'a str,
    /// `git_commit`.
    pub git_commit: &'a str,
}

/// Builds the report.
pub fn build_report(inputs: &ReportInputs<'_>) -> Value {
    let drafts = &inputs.requests.request_drafts;
    let states: Vec<CandidateState> = drafts
        .iter()
        .map(|d| derive_state(d, inputs.view, inputs.signers))
        .collect();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for st in &states {
        for (flag, on) in flags(st) {
            *counts.entry(flag).or_default() += usize::from(on);
        }
    }
    let candidates: Vec<Value> = drafts
        .iter()
        .zip(&states)
        .map(|(d, st)| candidate(d, st))
        .collect();
    let count = |flag: &str| counts.get(flag).copied().unwrap_or(0);
    let surfaces = |f: fn(&RequestDraft) -> bool| drafts.iter().filter(|d| f(d)).count();
    let mut summary = json!({
        "source_owner_request_count": drafts.len(),
        "acceptance_candidate_count": candidates.len(),
        "write_capable_acceptance_candidate_count": surfaces(|d| d.write_capable_surface),
        "live_evidence_required_candidate_count": surfaces(|d| d.requires_live_evidence),
        "acceptance_field_count": ACCEPTANCE_FIELDS.len(),
        "required_owner_field_count": candidates.first()
            .and_then(|c| c.get("required_owner_fields"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        "reviewer_check_count": REVIEWER_CHECKS.len(),
        "outcome_lane_count": OUTCOME_LANES.len(),
        "blocked_action_count": BLOCKED_ACTIONS.len(),
    });
    if let Value::Object(map) = &mut summary {
        for flag in counted_flags() {
            let key = if flag == "action_buttons_allowed" {
                "action_button_count".to_owned()
            } else {
                format!("{flag}_count")
            };
            map.insert(key, json!(count(flag)));
        }
    }
    let any_accepted = count("owner_response_accepted") > 0;
    json!({
        "schema_version": ACCEPTANCE_SCHEMA,
        "generated_at": inputs.generated_at,
        "git_commit": inputs.git_commit,
        "source_inventory_schema_version": inputs.inventory.schema_version,
        "source_inventory_status": inputs.inventory.status,
        "source_owner_request_schema_version": inputs.requests.schema_version,
        "source_owner_request_status": inputs.requests.status,
        "status": ACCEPTANCE_STATUS,
        "summary": summary,
        "execution_boundaries": {
            "request_dispatch_authorized": false,
            "owner_response_accepted": any_accepted,
            "live_host_read_authorized": false,
            "host_write_authorized": false,
            "ssh_read_authorized": false,
            "ssh_write_authorized": false,
            "docker_compose_action_authorized": false,
            "systemctl_action_authorized": false,
            "repair_bot_execution_authorized": false,
            "ansible_apply_authorized": false,
            "sudo_action_authorized": false,
            "secret_value_collection_allowed": false,
            "active_scan_authorized": false,
            "runtime_execution_authorized": false,
            "action_buttons_allowed": false,
            "not_authorization": true,
        },
        "acceptance_fields": &ACCEPTANCE_FIELDS[..],
        "reviewer_checks": REVIEWER_CHECKS.iter().map(|c| json!({"check_id": c.check_id, "instruction": c.instruction})).collect::<Vec<_>>(),
        "outcome_lanes": OUTCOME_LANES.iter().map(|l| json!({"lane_id": l.lane_id, "meaning": l.meaning})).collect::<Vec<_>>(),
        "blocked_actions": &BLOCKED_ACTIONS[..],
        "acceptance_candidates": candidates,
        "next_steps": &NEXT_STEPS[..],
    })
}

/// The one-line summary the seed prints on stderr.
pub fn summary_line(report: &Value) -> String {
    let s = |k: &str| {
        report
            .get("summary")
            .and_then(|m| m.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    format!(
        "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK candidates={} write_capable={} checks={} lanes={} accepted={} runtime_gate={}",
        s("acceptance_candidate_count"),
        s("write_capable_acceptance_candidate_count"),
        s("reviewer_check_count"),
        s("outcome_lane_count"),
        s("owner_response_accepted_count"),
        s("runtime_gate_count"),
    )
}
