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
use std::io::{Read, Write};
use std::sync::LazyLock;

use castellan_sig::SignerConfig;
use serde_json::{Map, Value, json};

use crate::input::{AcceptanceDraft, InputError, PASS_THROUGH_FIELDS, ReportHead, read_requests};
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

/// The surface a candidate is about: what its state depends on besides the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceRef<'a> {
    /// `surface_id`.
    pub surface_id: &'a str,
    /// `repo_sha256`: the version reviewer records must be bound to.
    pub repo_sha256: &'a str,
    /// Whether accepting needs more than one reviewer.
    pub write_capable_surface: bool,
}

impl<'a> From<&'a RequestDraft> for SurfaceRef<'a> {
    fn from(d: &'a RequestDraft) -> Self {
        Self {
            surface_id: &d.surface_id,
            repo_sha256: &d.repo_sha256,
            write_capable_surface: d.write_capable_surface,
        }
    }
}

impl<'a> From<&'a AcceptanceDraft> for SurfaceRef<'a> {
    fn from(d: &'a AcceptanceDraft) -> Self {
        Self {
            surface_id: &d.surface_id,
            repo_sha256: &d.repo_sha256,
            write_capable_surface: d.write_capable_surface,
        }
    }
}

/// Derives a candidate's state from the records.
pub fn derive_state<'a>(
    surface: impl Into<SurfaceRef<'a>>,
    view: Option<&LedgerView>,
    signers: Option<&SignerConfig>,
) -> CandidateState {
    let surface = surface.into();
    let waiting = CandidateState {
        lane: Lane::WaitingOwnerResponse,
        reviewer_outcome: "waiting_owner_response",
        latest: None,
        outcome: Outcome::Pending,
        stale: false,
    };
    let Some(view) = view else { return waiting };
    let id = candidate_id(surface.surface_id);
    let Some(latest) = view.latest(&id).map(|i| i.record.clone()) else {
        return waiting;
    };
    let lane = latest.lane().unwrap_or(Lane::RequestSupplement);
    if latest.surface_sha256 != surface.repo_sha256 {
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
                && r.payload.surface_sha256 == surface.repo_sha256
        })
        .cloned()
        .collect();
    let need = review::reviewers_needed(signers, surface.write_capable_surface);
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

// ---- writing the report ------------------------------------------------------------------
//
// The report is written as it is made, candidate by candidate, in exactly the bytes
// `serde_json::to_string_pretty` gives for the whole document (sorted keys, 2-space
// indentation): `acceptance_candidates` sorts first among the top-level keys, so every
// candidate can be written before the counters that follow it are known. A candidate's
// keys, and the value of each key that is the same for every candidate, are worked out
// once ([`Template`]); per candidate only its own values are serialised.

/// The candidate every draft starts as: the seed's defaults, with every flag `false`.
/// Per-candidate values are filled in by [`Template`]'s dynamic slots.
fn default_candidate() -> Map<String, Value> {
    let mut c = json!({
        "acceptance_candidate_id": null,
        "status": null,
        "request_id": null,
        "surface_id": null,
        "repo_sha256": null,
        "write_capable_surface": false,
        "requires_live_evidence": false,
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
        "reviewer_outcome": null,
        "followup_owner": PENDING,
        "acceptance_fields": &ACCEPTANCE_FIELDS[..],
        "required_owner_fields": [],
        "reviewer_checks": REVIEWER_CHECKS.iter().map(|c| c.check_id).collect::<Vec<_>>(),
        "outcome_lanes": OUTCOME_LANES.iter().map(|l| l.lane_id).collect::<Vec<_>>(),
        "blocked_actions": &BLOCKED_ACTIONS[..],
        "not_approval": true,
    });
    let Value::Object(map) = &mut c else {
        return Map::new();
    };
    for field in PASS_THROUGH_FIELDS {
        map.insert(field.to_owned(), Value::Null);
    }
    for flag in counted_flags() {
        map.insert(flag.to_owned(), Value::Bool(false));
    }
    std::mem::take(map)
}

/// A per-candidate value.
#[derive(Debug, Clone, Copy)]
enum Field {
    CandidateId,
    Status,
    RequestId,
    SurfaceId,
    RepoSha256,
    WriteCapable,
    RequiresLiveEvidence,
    PassThrough(usize),
    OwnerResponseRef,
    /// An owner field: the response's value, or the default.
    Owner(&'static str),
    ReviewerOutcome,
    RequiredOwnerFields,
    /// A transition flag: from the records, `false` without any.
    Flag(&'static str),
}

impl Field {
    fn of(key: &str) -> Option<Field> {
        let owner = OWNER_FIELDS.iter().find(|f| **f == key);
        let flag = TRANSITION_FLAGS.iter().find(|f| **f == key);
        let pass = PASS_THROUGH_FIELDS.iter().position(|f| *f == key);
        Some(match key {
            "acceptance_candidate_id" => Field::CandidateId,
            "status" => Field::Status,
            "request_id" => Field::RequestId,
            "surface_id" => Field::SurfaceId,
            "repo_sha256" => Field::RepoSha256,
            "write_capable_surface" => Field::WriteCapable,
            "requires_live_evidence" => Field::RequiresLiveEvidence,
            "owner_response_ref" => Field::OwnerResponseRef,
            "reviewer_outcome" => Field::ReviewerOutcome,
            "required_owner_fields" => Field::RequiredOwnerFields,
            _ => match (owner, flag, pass) {
                (Some(f), _, _) => Field::Owner(f),
                (_, Some(f), _) => Field::Flag(f),
                (_, _, Some(i)) => Field::PassThrough(i),
                _ => return None,
            },
        })
    }
}

/// One key of a candidate, in sorted order.
#[derive(Debug)]
struct Slot {
    /// `      "key": ` — or, for a constant, the whole `"key": value`.
    text: Vec<u8>,
    /// `None`: `text` is complete. `Some`: the value comes from the candidate, with
    /// `default` written when it has none of its own.
    field: Option<(Field, Vec<u8>)>,
}

/// Indentation of a candidate's keys.
const CANDIDATE_INDENT: usize = 6;

/// The candidate keys in order, rendered once.
#[derive(Debug)]
struct Template {
    slots: Vec<Slot>,
}

static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    let slots = default_candidate()
        .into_iter()
        .map(|(key, default)| {
            let mut text = Vec::new();
            text.resize(CANDIDATE_INDENT, b' ');
            write_json(&mut text, &Value::String(key.clone()), 0);
            text.extend_from_slice(b": ");
            match Field::of(&key) {
                Some(field) => {
                    let mut d = Vec::new();
                    write_json(&mut d, &default, CANDIDATE_INDENT);
                    Slot {
                        text,
                        field: Some((field, d)),
                    }
                }
                None => {
                    write_json(&mut text, &default, CANDIDATE_INDENT);
                    Slot { text, field: None }
                }
            }
        })
        .collect();
    Template { slots }
});

/// Writes `v` as `serde_json::to_string_pretty` would at `indent` spaces of nesting.
fn write_json(out: &mut Vec<u8>, v: &Value, indent: usize) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                item_break(out, i, indent + 2);
                write_json(out, item, indent + 2);
            }
            close(out, indent, b']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push(b'{');
            for (i, (key, item)) in o.iter().enumerate() {
                item_break(out, i, indent + 2);
                write_str(out, key);
                out.extend_from_slice(b": ");
                write_json(out, item, indent + 2);
            }
            close(out, indent, b'}');
        }
        Value::String(s) => write_str(out, s),
        // Other scalars, `[]` and `{}` are the same compact or pretty; writing to a Vec
        // cannot fail and a Value always serialises.
        _ => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

/// What goes before item `i` of a pretty array or object whose items are at `indent`.
fn item_break(out: &mut Vec<u8>, i: usize, indent: usize) {
    out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
    out.resize(out.len() + indent, b' ');
}

/// The end of a non-empty pretty array or object at `indent`.
fn close(out: &mut Vec<u8>, indent: usize, bracket: u8) {
    out.push(b'\n');
    out.resize(out.len() + indent, b' ');
    out.push(bracket);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The figures the one-line summary prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportSummary {
    /// `acceptance_candidate_count`.
    pub candidates: usize,
    /// `write_capable_acceptance_candidate_count`.
    pub write_capable: usize,
    /// `owner_response_accepted_count`.
    pub accepted: usize,
    /// `runtime_gate_count`.
    pub runtime_gate: usize,
}

impl ReportSummary {
    /// The one-line summary the seed prints on stderr.
    pub fn line(&self) -> String {
        format!(
            "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK candidates={} write_capable={} checks={} lanes={} accepted={} runtime_gate={}",
            self.candidates,
            self.write_capable,
            REVIEWER_CHECKS.len(),
            OUTCOME_LANES.len(),
            self.accepted,
            self.runtime_gate,
        )
    }
}

/// The top-level values that come from outside the candidates.
#[derive(Debug, Clone, Copy)]
pub struct ReportTail<'a> {
    /// The inventory report's `schema_version` and `status`.
    pub inventory: &'a ReportHead,
    /// The owner request report's `schema_version` and `status`.
    pub requests: &'a ReportHead,
    /// `generated_at`.
    pub generated_at: &'a str,
    /// `git_commit`.
    pub git_commit: &'a str,
}

/// Candidates are written to the output in pieces of at least this many bytes.
const OUT_CHUNK: usize = 1 << 20;

/// Writes the report to `out` as candidates are given to it.
#[derive(Debug)]
pub struct ReportWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    candidates: usize,
    write_capable: usize,
    live_evidence: usize,
    required_owner_fields: Option<usize>,
    counts: BTreeMap<&'static str, usize>,
}

impl<W: Write> ReportWriter<W> {
    /// Starts the report.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"{\n  \"acceptance_candidates\": [")?;
        Ok(Self {
            out,
            buf: Vec::with_capacity(OUT_CHUNK + 65536),
            candidates: 0,
            write_capable: 0,
            live_evidence: 0,
            required_owner_fields: None,
            counts: BTreeMap::new(),
        })
    }

    /// Writes the next candidate.
    pub fn candidate(
        &mut self,
        draft: &AcceptanceDraft,
        state: &CandidateState,
    ) -> std::io::Result<()> {
        let flags = state.latest.as_ref().map(|_| flags(state));
        if let Some(flags) = &flags {
            for (flag, on) in flags {
                *self.counts.entry(flag).or_default() += usize::from(*on);
            }
        }
        let required = draft.required_owner_fields.len() + INCIDENT_OWNER_RESPONSE_FIELDS.len();
        self.required_owner_fields.get_or_insert(required);
        self.candidates += 1;
        self.write_capable += usize::from(draft.write_capable_surface);
        self.live_evidence += usize::from(draft.requires_live_evidence);

        let buf = &mut self.buf;
        buf.extend_from_slice(if self.candidates == 1 {
            b"\n    {\n"
        } else {
            b",\n    {\n"
        });
        for (i, slot) in TEMPLATE.slots.iter().enumerate() {
            if i > 0 {
                buf.extend_from_slice(b",\n");
            }
            buf.extend_from_slice(&slot.text);
            if let Some((field, default)) = &slot.field
                && !write_field(buf, *field, draft, state, flags.as_ref())
            {
                buf.extend_from_slice(default);
            }
        }
        buf.extend_from_slice(b"\n    }");
        // Written in large pieces, which a `BufWriter` passes straight through.
        if buf.len() >= OUT_CHUNK {
            self.out.write_all(buf)?;
            buf.clear();
        }
        Ok(())
    }

    /// Writes everything after the candidates and returns the output and the summary.
    pub fn finish(mut self, tail: &ReportTail<'_>) -> std::io::Result<(W, ReportSummary)> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out
            .write_all(if self.candidates == 0 { b"]" } else { b"\n  ]" })?;
        let count = |flag: &str| self.counts.get(flag).copied().unwrap_or(0);
        let mut summary = json!({
            "source_owner_request_count": self.candidates,
            "acceptance_candidate_count": self.candidates,
            "write_capable_acceptance_candidate_count": self.write_capable,
            "live_evidence_required_candidate_count": self.live_evidence,
            "acceptance_field_count": ACCEPTANCE_FIELDS.len(),
            "required_owner_field_count": self.required_owner_fields.unwrap_or(0),
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
        let rest = json!({
            "schema_version": ACCEPTANCE_SCHEMA,
            "generated_at": tail.generated_at,
            "git_commit": tail.git_commit,
            "source_inventory_schema_version": tail.inventory.schema_version,
            "source_inventory_status": tail.inventory.status,
            "source_owner_request_schema_version": tail.requests.schema_version,
            "source_owner_request_status": tail.requests.status,
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
            "next_steps": &NEXT_STEPS[..],
        });
        let mut buf = Vec::new();
        if let Value::Object(map) = &rest {
            // Every one of these keys sorts after `acceptance_candidates`.
            for (key, value) in map {
                buf.extend_from_slice(b",\n  ");
                write_str(&mut buf, key);
                buf.extend_from_slice(b": ");
                write_json(&mut buf, value, 2);
            }
        }
        buf.extend_from_slice(b"\n}\n");
        self.out.write_all(&buf)?;
        self.out.flush()?;
        let summary = ReportSummary {
            candidates: self.candidates,
            write_capable: self.write_capable,
            accepted: count("owner_response_accepted"),
            runtime_gate: count("runtime_gate"),
        };
        Ok((self.out, summary))
    }
}

/// Writes `field`'s value for this candidate; `false` when it has none of its own (the
/// template's default is written instead).
fn write_field(
    buf: &mut Vec<u8>,
    field: Field,
    draft: &AcceptanceDraft,
    state: &CandidateState,
    flags: Option<&BTreeMap<&'static str, bool>>,
) -> bool {
    let response = state.latest.as_ref().filter(|r| r.response.is_some());
    match field {
        Field::CandidateId => write_str(buf, &candidate_id(&draft.surface_id)),
        Field::Status => write_str(buf, state.lane.id()),
        Field::RequestId => write_str(buf, &draft.request_id),
        Field::SurfaceId => write_str(buf, &draft.surface_id),
        Field::RepoSha256 => write_str(buf, &draft.repo_sha256),
        Field::WriteCapable => buf.extend_from_slice(bool_text(draft.write_capable_surface)),
        Field::RequiresLiveEvidence => {
            buf.extend_from_slice(bool_text(draft.requires_live_evidence));
        }
        Field::PassThrough(i) => match draft.pass_through.get(i) {
            Some(v) => write_json(buf, v, CANDIDATE_INDENT),
            None => return false,
        },
        Field::OwnerResponseRef => match &state.latest {
            Some(rec) => write_str(buf, &rec.response_id),
            None => return false,
        },
        Field::Owner("redacted_evidence_refs") => match response {
            Some(rec) => {
                let refs = Value::from(rec.evidence_refs());
                write_json(buf, &refs, CANDIDATE_INDENT);
            }
            None => return false,
        },
        Field::Owner(f) => match response.and_then(|rec| rec.field_text(f)) {
            Some(text) => write_str(buf, &text),
            None => return false,
        },
        Field::ReviewerOutcome => write_str(buf, state.reviewer_outcome),
        Field::RequiredOwnerFields => {
            // The draft's fields, then the incident ones, as one array.
            let own = &draft.required_owner_fields;
            let indent = CANDIDATE_INDENT + 2;
            buf.push(b'[');
            for (i, item) in own.iter().enumerate() {
                item_break(buf, i, indent);
                write_json(buf, item, indent);
            }
            for (i, f) in INCIDENT_OWNER_RESPONSE_FIELDS.iter().enumerate() {
                item_break(buf, own.len() + i, indent);
                write_str(buf, f);
            }
            if own.is_empty() && INCIDENT_OWNER_RESPONSE_FIELDS.is_empty() {
                buf.push(b']');
            } else {
                close(buf, CANDIDATE_INDENT, b']');
            }
        }
        Field::Flag(f) => match flags.and_then(|m| m.get(f)) {
            Some(on) => buf.extend_from_slice(bool_text(*on)),
            None => return false,
        },
    }
    true
}

fn bool_text(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

/// Inputs of [`write_report`] and [`build_report`], held in memory.
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

/// Writes the report for in-memory inputs.
pub fn write_report<W: Write>(
    inputs: &ReportInputs<'_>,
    out: W,
) -> std::io::Result<(W, ReportSummary)> {
    let mut w = ReportWriter::new(out)?;
    for d in &inputs.requests.request_drafts {
        let draft = AcceptanceDraft::from(d);
        let state = derive_state(&draft, inputs.view, inputs.signers);
        w.candidate(&draft, &state)?;
    }
    w.finish(&ReportTail {
        inventory: &ReportHead::from(inputs.inventory),
        requests: &ReportHead::from(inputs.requests),
        generated_at: inputs.generated_at,
        git_commit: inputs.git_commit,
    })
}

/// The report for in-memory inputs, as a JSON value (for tests and small reports; the CLI
/// streams with [`stream_report`]).
pub fn build_report(inputs: &ReportInputs<'_>) -> Value {
    write_report(inputs, Vec::new())
        .ok()
        .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// Writes the report while reading the owner request report from `requests`, one draft at
/// a time: memory stays flat however many surfaces there are. On an error the output
/// holds a partial report; the caller discards it.
pub fn stream_report<R: Read + Send, W: Write>(
    requests: R,
    inventory: &ReportHead,
    view: Option<&LedgerView>,
    signers: Option<&SignerConfig>,
    generated_at: &str,
    git_commit: &str,
    out: W,
) -> Result<(W, ReportSummary), InputError> {
    stream_candidates(requests, view, signers, out)?
        .finish(inventory, generated_at, git_commit)
        .map_err(InputError::Consumer)
}

/// A report whose candidates are all written; [`Candidates::finish`] adds the rest.
#[derive(Debug)]
pub struct Candidates<W: Write> {
    writer: ReportWriter<W>,
    requests: ReportHead,
}

impl<W: Write> Candidates<W> {
    /// Writes everything after the candidates: the values that come from the inventory
    /// report and the caller, which can be gathered while the candidates stream.
    pub fn finish(
        self,
        inventory: &ReportHead,
        generated_at: &str,
        git_commit: &str,
    ) -> std::io::Result<(W, ReportSummary)> {
        self.writer.finish(&ReportTail {
            inventory,
            requests: &self.requests,
            generated_at,
            git_commit,
        })
    }
}

/// Writes the candidates of the report while reading the owner request report from
/// `requests` (see [`stream_report`]).
///
/// The drafts are parsed on a second thread and handed over in small batches through a
/// bounded channel, so reading and writing overlap. The result is the sequential one: a
/// failure to write a draft is reported before an input error further on, as if the
/// input had stopped being read there.
pub fn stream_candidates<R: Read + Send, W: Write>(
    requests: R,
    view: Option<&LedgerView>,
    signers: Option<&SignerConfig>,
    out: W,
) -> Result<Candidates<W>, InputError> {
    /// Drafts per batch, and batches in flight: a few hundred kilobytes at most.
    const BATCH: usize = 64;
    const IN_FLIGHT: usize = 4;
    let mut w = ReportWriter::new(out).map_err(InputError::Consumer)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<AcceptanceDraft>>(IN_FLIGHT);
    let (read, write_error) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("ledger-input".into())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(BATCH);
                let head = read_requests(requests, &mut |draft| {
                    batch.push(draft);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        tx.send(full)
                            .map_err(|_| std::io::Error::other("the report writer stopped"))?;
                    }
                    Ok(())
                });
                // Whatever was read, also before an input error, is written (or fails
                // to be) first.
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                head
            });
        let reader = match reader {
            Ok(r) => r,
            Err(e) => return (Err(InputError::Consumer(e)), None),
        };
        let mut write_error = None;
        'batches: for batch in rx {
            for draft in &batch {
                let state = derive_state(draft, view, signers);
                if let Err(e) = w.candidate(draft, &state) {
                    // Dropping the receiver stops the reader.
                    write_error = Some(e);
                    break 'batches;
                }
            }
        }
        let read = match reader.join() {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (read, write_error)
    });
    if let Some(e) = write_error {
        return Err(InputError::Consumer(e));
    }
    Ok(Candidates {
        writer: w,
        requests: read?,
    })
}

/// The one-line summary the seed prints on stderr, from a report document.
pub fn summary_line(report: &Value) -> String {
    let s = |k: &str| {
        report
            .get("summary")
            .and_then(|m| m.get(k))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    ReportSummary {
        candidates: s("acceptance_candidate_count"),
        write_capable: s("write_capable_acceptance_candidate_count"),
        accepted: s("owner_response_accepted_count"),
        runtime_gate: s("runtime_gate_count"),
    }
    .line()
}
