//! Owner-response intake: the automated reviewer checks and the routing to an outcome lane.
//!
//! [`analyze`] is pure: it takes the response bytes, the owner request drafts and the
//! ledger's fingerprint key, and returns the [`IntakeRecord`] to append (or an
//! [`IntakeError`] naming what is malformed — then nothing is recorded).
//!
//! # The response document (`host_service_owner_response_v1`)
//!
//! A JSON object with `schema_version`, `request_id` and `surface_id` (both as in the
//! owner request), optionally `repo_sha256` (the surface version the owner answered),
//! `responded_at` and free-form `notes`, and the owner fields the request lists (see
//! [`crate::requests::required_fields`]). An owner field is a string, or nested JSON
//! (arrays and objects) when the owner needs structure; `redacted_evidence_refs` is an
//! array of reference strings or `{"ref": ..., ...}` objects. Any other top-level key is
//! refused.
//!
//! # Routing (first match wins)
//!
//! 1. any secret (every string and key, decoded base64 included) or a raw configuration
//!    pasted anywhere → `quarantine_secret_or_raw_payload`: the record keeps only redacted
//!    fingerprints, locations and check results, never the response;
//! 2. an execution request (ssh, docker compose, systemctl, repair-bot runs, Ansible
//!    applies, sudo, host file writes, firewall changes, "please restart ...") →
//!    `reject_execution_request`;
//! 3. incident, silent-restart, port-incident or cold-start content without the incident
//!    evidence it needs → `incident_recovery_backfill_required`;
//! 4. a required field missing or a placeholder, the scope not naming the surface, a
//!    reference field holding prose → `request_supplement`, listing exactly what is missing;
//! 5. otherwise → `ready_for_host_service_review` (write-capable surfaces flagged: they
//!    need more than one reviewer signature).
//!
//! `incident_recovery_evidence_ref` is demanded only when the response mentions an
//! incident; the other five incident-recovery references are always required.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::detect;
use crate::model::{RequestDraft, RequestReport};
pub use crate::schema::OWNER_FIELDS;
use crate::schema::{
    CANDIDATE_PREFIX, INCIDENT_OWNER_RESPONSE_FIELDS, Lane, PENDING, RESPONSE_SCHEMA,
};
use crate::secrets::{Finding, FingerprintKey, RedactedFinding, Scanner};

/// Largest response accepted.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Version of the stored record layout.
pub const RECORD_VERSION: u32 = 1;

/// Top-level keys besides the owner fields.
const ENVELOPE_KEYS: [&str; 6] = [
    "schema_version",
    "request_id",
    "surface_id",
    "repo_sha256",
    "responded_at",
    "notes",
];

/// Whether owner field `field` must hold references, not prose: the live config hash and
/// the incident-recovery references.
fn is_ref_field(field: &str) -> bool {
    field == "live_config_hash_ref" || INCIDENT_OWNER_RESPONSE_FIELDS.contains(&field)
}

/// Why a response was refused outright (nothing is recorded). Never carries a value
/// from the response: field names only when they look like field names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntakeError {
    /// Over [`MAX_RESPONSE_BYTES`].
    #[error("response is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8.
    #[error("response is not UTF-8 text (invalid byte at offset {0})")]
    NotUtf8(usize),
    /// Not JSON.
    #[error("response is not valid JSON: {0}")]
    Json(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("response nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not a JSON object.
    #[error("response must be a JSON object (host_service_owner_response_v1), found {0}")]
    NotAnObject(&'static str),
    /// Wrong or missing `schema_version`.
    #[error("schema_version must be \"{RESPONSE_SCHEMA}\"{0}")]
    SchemaVersion(String),
    /// A top-level key that is not part of the format.
    #[error("unknown field {0} (expected the envelope {ENVELOPE_KEYS:?} and the owner fields)")]
    UnknownField(String),
    /// An envelope field is missing or not a string.
    #[error("field {field} must be a non-empty string{found}")]
    BadEnvelope {
        /// The field.
        field: &'static str,
        /// What was found instead.
        found: String,
    },
    /// The response answers a request the ledger does not know.
    #[error("request_id {0} is not in the owner request report")]
    UnknownRequest(String),
}

/// One reviewer check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Satisfied.
    Pass,
    /// Not satisfied.
    Fail,
    /// Does not apply to this response or surface.
    NotApplicable,
}

/// One reviewer check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// The contract check id.
    pub check_id: String,
    /// The verdict.
    pub result: Verdict,
    /// Why (field names and locations only, never response values).
    pub reason: String,
}

/// Something found at a location of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Located {
    /// JSON path (`$.notes.steps[2]`); keys that are not plain names are shown as `{#n}`.
    pub location: String,
    /// What (`raw_compose`, a blocked action id, an incident signal).
    pub label: String,
    /// The matched text, for execution requests in non-quarantined responses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// The stored result of one intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeRecord {
    /// [`RECORD_VERSION`].
    pub record_version: u32,
    /// `owner_response:` + keyed hash of the response bytes: its identity in the ledger.
    pub response_id: String,
    /// The acceptance candidate.
    pub candidate_id: String,
    /// The owner request answered.
    pub request_id: String,
    /// The surface.
    pub surface_id: String,
    /// The committed surface's sha256 at intake.
    pub surface_sha256: String,
    /// Whether the surface is write-capable (needs more reviewer records).
    pub write_capable_surface: bool,
    /// The outcome lane id.
    pub lane: String,
    /// Every reviewer check, in contract order.
    pub checks: Vec<CheckResult>,
    /// What the owner must supply (field: problem), for `request_supplement` and
    /// `incident_recovery_backfill_required`.
    pub supplement: Vec<String>,
    /// Secrets found, redacted.
    pub findings: Vec<RedactedFinding>,
    /// Raw configuration pasted into the response.
    pub raw_payloads: Vec<Located>,
    /// Execution requests found.
    pub execution_requests: Vec<Located>,
    /// Incident signals found.
    pub incident_signals: Vec<Located>,
    /// Size of the response in bytes.
    pub response_bytes: u64,
    /// Owner fields present (names only).
    pub present_fields: Vec<String>,
    /// The response itself, only when nothing was quarantined.
    pub response: Option<Value>,
}

impl IntakeRecord {
    /// The lane as an enum.
    pub fn lane(&self) -> Option<Lane> {
        Lane::from_id(&self.lane)
    }

    /// The verdict of check `id`.
    pub fn verdict(&self, id: &str) -> Option<Verdict> {
        self.checks
            .iter()
            .find(|c| c.check_id == id)
            .map(|c| c.result)
    }

    /// An owner field of the stored response rendered as text, if present.
    pub fn field_text(&self, field: &str) -> Option<String> {
        let v = self.response.as_ref()?.get(field)?;
        if !present(v) {
            return None;
        }
        Some(render_text(v))
    }

    /// This record without anything of the response: no response, no excerpts. What a
    /// quarantined record keeps, and what a record superseded by a quarantine is reduced to.
    pub fn scrubbed(&self) -> IntakeRecord {
        let mut r = self.clone();
        r.response = None;
        for e in &mut r.execution_requests {
            e.excerpt = None;
        }
        r
    }

    /// The evidence references of the stored response, as strings.
    pub fn evidence_refs(&self) -> Vec<String> {
        let Some(v) = self
            .response
            .as_ref()
            .and_then(|r| r.get("redacted_evidence_refs"))
        else {
            return Vec::new();
        };
        ref_items(v)
            .into_iter()
            .filter_map(|(_, item)| item.map(str::to_owned))
            .collect()
    }
}

/// The candidate id for a surface.
pub fn candidate_id(surface_id: &str) -> String {
    format!("{CANDIDATE_PREFIX}:{surface_id}")
}

/// Runs the intake over `bytes`. `reviewers_needed` is how many distinct reviewer
/// signatures a write-capable surface will need (reported in the check's reason).
pub fn analyze(
    bytes: &[u8],
    requests: &RequestReport,
    key: &FingerprintKey,
    reviewers_needed: u32,
) -> Result<IntakeRecord, IntakeError> {
    analyze_with(Scanner::builtin(), bytes, requests, key, reviewers_needed)
}

/// [`analyze`] with another secret scanner (the built-in rules plus the operator's, see
/// [`Scanner::with_extra_rules`]).
pub fn analyze_with(
    scanner: &Scanner,
    bytes: &[u8],
    requests: &RequestReport,
    key: &FingerprintKey,
    reviewers_needed: u32,
) -> Result<IntakeRecord, IntakeError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(IntakeError::TooLarge {
            size: bytes.len(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| IntakeError::NotUtf8(e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(json_error)?;
    if depth(&value) > MAX_DEPTH {
        return Err(IntakeError::TooDeep);
    }
    let Value::Object(obj) = &value else {
        return Err(IntakeError::NotAnObject(type_name(&value)));
    };
    for k in obj.keys() {
        if !ENVELOPE_KEYS.contains(&k.as_str()) && !OWNER_FIELDS.contains(&k.as_str()) {
            return Err(IntakeError::UnknownField(shown_name(k)));
        }
    }
    match obj.get("schema_version") {
        Some(Value::String(s)) if s == RESPONSE_SCHEMA => {}
        Some(v) => {
            return Err(IntakeError::SchemaVersion(format!(
                ", found {}",
                describe(v)
            )));
        }
        None => return Err(IntakeError::SchemaVersion(" (missing)".into())),
    }
    let request_id = envelope(obj, "request_id")?;
    let surface_id = envelope(obj, "surface_id")?;
    let Some(request) = requests
        .request_drafts
        .iter()
        .find(|d| d.request_id == request_id)
    else {
        return Err(IntakeError::UnknownRequest(shown_id(request_id)));
    };

    // Everything the owner wrote, with where it is.
    let mut strings = Vec::new();
    walk(scanner, &value, "$".to_owned(), &mut strings);

    let mut found: Vec<Finding> = Vec::new();
    let mut raw_payloads = Vec::new();
    let mut execution = Vec::new();
    let mut incidents = Vec::new();
    for s in &strings {
        quarantine_scan(scanner, s, &mut found, &mut raw_payloads);
        if s.is_key {
            continue;
        }
        for (action, excerpt) in execution_requests(s.text) {
            execution.push(Located {
                location: s.location.clone(),
                label: action.to_owned(),
                excerpt: Some(excerpt),
            });
        }
        if s.prose {
            for signal in incident_signals(s.text) {
                incidents.push(Located {
                    location: s.location.clone(),
                    label: signal.to_owned(),
                    excerpt: None,
                });
            }
        }
    }
    let quarantined = !found.is_empty() || !raw_payloads.is_empty();
    let findings: Vec<RedactedFinding> = found.iter().map(|f| f.redact(key)).collect();
    if quarantined {
        for e in &mut execution {
            e.excerpt = None;
        }
    }

    let ctx = Ctx {
        obj,
        request,
        surface_id,
        raw_payloads: &raw_payloads,
        findings: &findings,
        execution: &execution,
        incidents: &incidents,
        reviewers_needed,
    };
    let (checks, supplement, incident_missing) = ctx.checks();

    let silent_restart_failed = checks
        .iter()
        .any(|c| c.check_id == "silent_restart_not_accepted" && c.result == Verdict::Fail);
    let lane = if quarantined {
        Lane::Quarantine
    } else if !execution.is_empty() {
        Lane::RejectExecutionRequest
    } else if incident_missing || silent_restart_failed {
        Lane::IncidentBackfill
    } else if !supplement.is_empty() {
        Lane::RequestSupplement
    } else {
        Lane::ReadyForReview
    };

    let present_fields = OWNER_FIELDS
        .iter()
        .filter(|f| obj.get(**f).is_some_and(present))
        .map(|f| (*f).to_owned())
        .collect();
    Ok(IntakeRecord {
        record_version: RECORD_VERSION,
        response_id: response_id(key, bytes),
        candidate_id: candidate_id(&request.surface_id),
        request_id: request.request_id.clone(),
        surface_id: request.surface_id.clone(),
        surface_sha256: request.repo_sha256.clone(),
        write_capable_surface: request.write_capable_surface,
        lane: lane.id().to_owned(),
        checks,
        supplement: if quarantined { Vec::new() } else { supplement },
        findings,
        raw_payloads,
        execution_requests: execution,
        incident_signals: incidents,
        response_bytes: bytes.len() as u64,
        present_fields,
        response: if quarantined {
            None
        } else {
            Some(value.clone())
        },
    })
}

/// What quarantines a response, for one string of it: secrets (in keys too) and, in
/// values, pasted raw configuration.
fn quarantine_scan(
    scanner: &Scanner,
    s: &Str<'_>,
    found: &mut Vec<Finding>,
    raw_payloads: &mut Vec<Located>,
) {
    scanner.scan(s.text, &s.location, found);
    if s.is_key {
        return;
    }
    if let Some(label) = detect::raw_payload(s.text) {
        raw_payloads.push(Located {
            location: s.location.clone(),
            label: label.to_owned(),
            excerpt: None,
        });
    }
}

/// The `secret_value_absent` check for these findings.
fn secret_check(findings: &[RedactedFinding]) -> CheckResult {
    if findings.is_empty() {
        return check(
            "secret_value_absent",
            Verdict::Pass,
            "no secret found in any field, key or decoded payload",
        );
    }
    let locs: BTreeSet<String> = findings
        .iter()
        .map(|f| format!("{} at {}", f.rule_name, f.location))
        .collect();
    check(
        "secret_value_absent",
        Verdict::Fail,
        format!(
            "{} secret(s) found, only fingerprints kept: {}",
            findings.len(),
            locs.into_iter().collect::<Vec<_>>().join("; ")
        ),
    )
}

/// Scans a stored record's response again with `scanner` (the current rules) for what
/// quarantines a response. When something is found now, returns the record that
/// supersedes it: the same response id, candidate and surface, in
/// `quarantine_secret_or_raw_payload`, with the findings redacted under `key` and
/// without the response ([`IntakeRecord::scrubbed`]). `None` when nothing is found, or
/// when the record keeps no response (it is already quarantined).
pub fn rescan(
    scanner: &Scanner,
    record: &IntakeRecord,
    key: &FingerprintKey,
) -> Option<IntakeRecord> {
    let value = record.response.as_ref()?;
    let mut strings = Vec::new();
    walk(scanner, value, "$".to_owned(), &mut strings);
    let mut found = Vec::new();
    let mut raw_payloads = Vec::new();
    for s in &strings {
        quarantine_scan(scanner, s, &mut found, &mut raw_payloads);
    }
    if found.is_empty() && raw_payloads.is_empty() {
        return None;
    }
    let mut superseding = record.scrubbed();
    superseding.lane = Lane::Quarantine.id().to_owned();
    superseding.findings = found.iter().map(|f| f.redact(key)).collect();
    superseding.supplement.clear();
    let secret = secret_check(&superseding.findings);
    let raw = raw_payloads.first().map(|raw| {
        check(
            "redacted_refs_only",
            Verdict::Fail,
            format!(
                "raw configuration ({}) pasted at {}",
                raw.label, raw.location
            ),
        )
    });
    for c in &mut superseding.checks {
        if c.check_id == secret.check_id {
            *c = secret.clone();
        } else if let Some(raw) = raw.as_ref().filter(|r| r.check_id == c.check_id) {
            *c = raw.clone();
        }
    }
    superseding.raw_payloads = raw_payloads;
    Some(superseding)
}

/// `owner_response:` + the first 32 hex digits of HMAC-SHA256(key, bytes).
pub fn response_id(key: &FingerprintKey, bytes: &[u8]) -> String {
    let digest = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(bytes);
            hex::encode(mac.finalize().into_bytes())
        }
        // A 32-byte key is always a valid HMAC key.
        Err(_) => String::new(),
    };
    format!("owner_response:{}", &digest[..digest.len().min(32)])
}

struct Ctx<'a> {
    obj: &'a serde_json::Map<String, Value>,
    request: &'a RequestDraft,
    surface_id: &'a str,
    raw_payloads: &'a [Located],
    findings: &'a [RedactedFinding],
    execution: &'a [Located],
    incidents: &'a [Located],
    reviewers_needed: u32,
}

fn need(supplement: &mut Vec<String>, field: &str, problem: &str) {
    supplement.push(format!("{field}: {problem}"));
}

fn check(id: &str, result: Verdict, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        check_id: id.to_owned(),
        result,
        reason: reason.into(),
    }
}

impl Ctx<'_> {
    fn field(&self, name: &str) -> Option<&Value> {
        self.obj.get(name).filter(|v| present(v))
    }

    fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    fn located_in(&self, items: &[Located], field: &str) -> bool {
        let prefix = format!("$.{field}");
        items.iter().any(|l| {
            l.location == prefix
                || l.location.starts_with(&format!("{prefix}."))
                || l.location.starts_with(&format!("{prefix}["))
                || l.location.starts_with(&format!("{prefix}{{"))
        })
    }

    /// The checks, the supplement list, and whether incident evidence is missing.
    fn checks(&self) -> (Vec<CheckResult>, Vec<String>, bool) {
        use Verdict::{Fail, NotApplicable as Na, Pass};
        let mut supplement: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(21);

        // owner_identity_present
        if self.has("owner_role_or_team") {
            out.push(check(
                "owner_identity_present",
                Pass,
                "owner_role_or_team is given",
            ));
        } else {
            need(&mut supplement, "owner_role_or_team", "missing");
            out.push(check(
                "owner_identity_present",
                Fail,
                "owner_role_or_team is missing",
            ));
        }

        // decision_reason_present
        let absent: Vec<&str> = ["decision", "decision_reason"]
            .into_iter()
            .filter(|f| !self.has(f))
            .collect();
        for f in &absent {
            need(&mut supplement, f, "missing");
        }
        out.push(if absent.is_empty() {
            check(
                "decision_reason_present",
                Pass,
                "decision and decision_reason are given",
            )
        } else {
            check(
                "decision_reason_present",
                Fail,
                format!("missing: {}", absent.join(", ")),
            )
        });

        // affected_scope_matches_surface
        let mut scope_problems = Vec::new();
        if self.surface_id != self.request.surface_id {
            scope_problems.push(format!(
                "surface_id does not match the request's surface {}",
                self.request.surface_id
            ));
        }
        if let Some(Value::String(sha)) = self.obj.get("repo_sha256")
            && !sha.eq_ignore_ascii_case(&self.request.repo_sha256)
        {
            scope_problems.push(format!(
                "repo_sha256 answers another version of the surface; the committed one is {}",
                self.request.repo_sha256
            ));
        }
        match self.field("affected_scope") {
            None => scope_problems.push("affected_scope is missing".into()),
            Some(v) => {
                let text = render_text(v);
                if !text.contains(&self.request.surface_id)
                    && !text.contains(&self.request.repo_source_path)
                {
                    scope_problems.push(format!(
                        "affected_scope does not name the surface ({})",
                        self.request.surface_id
                    ));
                }
            }
        }
        for p in &scope_problems {
            supplement.push(p.clone());
        }
        out.push(if scope_problems.is_empty() {
            check(
                "affected_scope_matches_surface",
                Pass,
                "affected_scope names the committed surface",
            )
        } else {
            check(
                "affected_scope_matches_surface",
                Fail,
                scope_problems.join("; "),
            )
        });

        // redacted_refs_only
        let refs_check = if let Some(raw) = self.raw_payloads.first() {
            check(
                "redacted_refs_only",
                Fail,
                format!(
                    "raw configuration ({}) pasted at {}",
                    raw.label, raw.location
                ),
            )
        } else {
            match self
                .obj
                .get("redacted_evidence_refs")
                .filter(|v| present(v))
            {
                None => {
                    supplement.push("redacted_evidence_refs: missing".into());
                    check(
                        "redacted_refs_only",
                        Fail,
                        "redacted_evidence_refs is missing",
                    )
                }
                Some(v) => {
                    let bad: Vec<String> = ref_items(v)
                        .into_iter()
                        .filter(|(_, item)| !item.is_some_and(is_reference_list))
                        .map(|(loc, _)| loc)
                        .collect();
                    if bad.is_empty() {
                        check(
                            "redacted_refs_only",
                            Pass,
                            "every evidence item is a reference",
                        )
                    } else {
                        for loc in &bad {
                            supplement.push(format!(
                                "redacted_evidence_refs{loc}: not a reference (a hash, ticket, commit or artifact pointer)"
                            ));
                        }
                        check(
                            "redacted_refs_only",
                            Fail,
                            format!(
                                "not references: redacted_evidence_refs{}",
                                bad.join(", redacted_evidence_refs")
                            ),
                        )
                    }
                }
            }
        };
        out.push(refs_check);

        out.push(secret_check(self.findings));

        // live_config_hash_metadata_only
        let live_needed = self.request.requires_live_evidence;
        out.push(
            if self.located_in(self.raw_payloads, "live_config_hash_ref") {
                check(
                    "live_config_hash_metadata_only",
                    Fail,
                    "live_config_hash_ref holds raw configuration, not a hash reference",
                )
            } else {
                match self.field("live_config_hash_ref") {
                    None if live_needed => {
                        need(
                            &mut supplement,
                            "live_config_hash_ref",
                            "missing (this surface requires live evidence)",
                        );
                        check(
                            "live_config_hash_metadata_only",
                            Fail,
                            "live_config_hash_ref is missing",
                        )
                    }
                    None => check(
                        "live_config_hash_metadata_only",
                        Na,
                        "this surface does not require live evidence",
                    ),
                    Some(v) if is_reference_value(v) => check(
                        "live_config_hash_metadata_only",
                        Pass,
                        "live_config_hash_ref is a reference",
                    ),
                    Some(_) => {
                        need(
                            &mut supplement,
                            "live_config_hash_ref",
                            "not a hash reference (e.g. sha256:<64 hex>)",
                        );
                        check(
                            "live_config_hash_metadata_only",
                            Fail,
                            "live_config_hash_ref is prose, not a hash reference",
                        )
                    }
                }
            },
        );

        // maintenance_window_present
        out.push(self.presence(
            "maintenance_window_present",
            "maintenance_window",
            &mut supplement,
        ));

        // restart_window_separate_from_action
        out.push(if self.located_in(self.execution, "restart_window") {
            check(
                "restart_window_separate_from_action",
                Fail,
                "restart_window contains an action to run, not only a window",
            )
        } else if self.has("restart_window") {
            check(
                "restart_window_separate_from_action",
                Pass,
                "restart_window is a window only",
            )
        } else {
            supplement.push("restart_window: missing".into());
            check(
                "restart_window_separate_from_action",
                Fail,
                "restart_window is missing",
            )
        });

        out.push(self.presence("rollback_owner_present", "rollback_owner", &mut supplement));

        // post_check_plan_present
        out.push(match self.field("post_check_plan") {
            None => {
                supplement.push("post_check_plan: missing".into());
                check(
                    "post_check_plan_present",
                    Fail,
                    "post_check_plan is missing",
                )
            }
            Some(v) => {
                let text = render_text(v).to_lowercase();
                let mut lacks = Vec::new();
                if !text.contains("health") {
                    lacks.push("a service health check");
                }
                if !["rollback", "roll back", "stop", "abort", "revert"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    lacks.push("the rollback/stop condition");
                }
                if lacks.is_empty() {
                    check(
                        "post_check_plan_present",
                        Pass,
                        "post_check_plan names health checks and a stop condition",
                    )
                } else {
                    let msg = format!("does not name {}", lacks.join(" or "));
                    supplement.push(format!("post_check_plan: {msg}"));
                    check(
                        "post_check_plan_present",
                        Fail,
                        format!("post_check_plan {msg}"),
                    )
                }
            }
        });

        out.push(self.presence("disable_switch_present", "disable_switch", &mut supplement));

        for (id, field) in [
            (
                "config_source_of_truth_present",
                "config_source_of_truth_ref",
            ),
            (
                "service_dependency_map_present",
                "service_dependency_map_ref",
            ),
            (
                "port_binding_inventory_present",
                "port_binding_inventory_ref",
            ),
            ("cold_start_sequence_present", "cold_start_sequence_ref"),
        ] {
            out.push(self.reference(id, field, &mut supplement));
        }

        // incident_recovery_evidence_present
        let incident = !self.incidents.is_empty();
        let mut incident_missing = false;
        out.push(if !incident {
            if self.has("incident_recovery_evidence_ref") {
                self.reference(
                    "incident_recovery_evidence_present",
                    "incident_recovery_evidence_ref",
                    &mut supplement,
                )
            } else {
                check(
                    "incident_recovery_evidence_present",
                    Na,
                    "the response reports no incident, restart or port problem",
                )
            }
        } else {
            let signals: BTreeSet<&str> = self.incidents.iter().map(|l| l.label.as_str()).collect();
            let signals = signals.into_iter().collect::<Vec<_>>().join(", ");
            let absent: Vec<&str> = INCIDENT_OWNER_RESPONSE_FIELDS
                .iter()
                .copied()
                .filter(|f| !self.field(f).is_some_and(is_reference_value))
                .collect();
            if absent.is_empty() {
                check(
                    "incident_recovery_evidence_present",
                    Pass,
                    format!("incident content ({signals}) comes with every incident-recovery reference"),
                )
            } else {
                incident_missing = true;
                for f in &absent {
                    if *f == "incident_recovery_evidence_ref" {
                        supplement.push(format!(
                            "incident_recovery_evidence_ref: required because the response reports {signals}"
                        ));
                    }
                }
                check(
                    "incident_recovery_evidence_present",
                    Fail,
                    format!("incident content ({signals}) without: {}", absent.join(", ")),
                )
            }
        });

        out.push(self.reference(
            "daemon_runner_contention_reviewed",
            "daemon_runner_contention_ref",
            &mut supplement,
        ));

        // silent_restart_not_accepted
        let restarts = self.incidents.iter().any(|l| l.label == "silent_restart");
        out.push(if !restarts {
            check("silent_restart_not_accepted", Na, "the response reports no restart or reload")
        } else {
            let absent: Vec<&str> = [
                "owner_role_or_team",
                "decision_reason",
                "service_dependency_map_ref",
                "port_binding_inventory_ref",
                "rollback_owner",
                "post_check_plan",
            ]
            .into_iter()
            .filter(|f| !self.has(f))
            .collect();
            if absent.is_empty() {
                check(
                    "silent_restart_not_accepted",
                    Pass,
                    "the restart comes with actor, reason, dependency map, port inventory, rollback and post-check",
                )
            } else {
                check(
                    "silent_restart_not_accepted",
                    Fail,
                    format!("a restart is reported without: {}", absent.join(", ")),
                )
            }
        });

        // write_capable_requires_extra_review
        out.push(if self.request.write_capable_surface {
            check(
                "write_capable_requires_extra_review",
                Pass,
                format!(
                    "write-capable surface: acceptance needs {} distinct reviewer signatures",
                    self.reviewers_needed
                ),
            )
        } else {
            check(
                "write_capable_requires_extra_review",
                Na,
                "the surface is not write-capable",
            )
        });

        // no_runtime_request
        out.push(if self.execution.is_empty() {
            check("no_runtime_request", Pass, "no execution request found")
        } else {
            let what: BTreeSet<String> = self
                .execution
                .iter()
                .map(|l| format!("{} at {}", l.label, l.location))
                .collect();
            check(
                "no_runtime_request",
                Fail,
                format!(
                    "execution requested: {}",
                    what.into_iter().collect::<Vec<_>>().join("; ")
                ),
            )
        });

        out.push(check(
            "counts_transition_safe",
            Pass,
            "an intake record never moves accepted or rejected counts; only signed reviewer records do, and none opens a runtime gate",
        ));

        // Missing fields not covered by a check (followup_owner).
        if !self.has("followup_owner") {
            supplement.push("followup_owner: missing".into());
        }
        supplement.sort();
        supplement.dedup();
        (out, supplement, incident_missing)
    }

    fn presence(&self, id: &str, field: &str, supplement: &mut Vec<String>) -> CheckResult {
        if self.has(field) {
            check(id, Verdict::Pass, format!("{field} is given"))
        } else {
            supplement.push(format!("{field}: missing"));
            check(id, Verdict::Fail, format!("{field} is missing"))
        }
    }

    fn reference(&self, id: &str, field: &str, supplement: &mut Vec<String>) -> CheckResult {
        match self.field(field) {
            None => {
                supplement.push(format!("{field}: missing"));
                check(id, Verdict::Fail, format!("{field} is missing"))
            }
            Some(v) if is_reference_value(v) => {
                check(id, Verdict::Pass, format!("{field} is a reference"))
            }
            Some(_) => {
                supplement.push(format!(
                    "{field}: a description, not a reference (give a URL, ticket, commit, hash or artifact pointer)"
                ));
                check(
                    id,
                    Verdict::Fail,
                    format!("{field} is a description, not a reference"),
                )
            }
        }
    }
}

// ---- values ----------------------------------------------------------------------------

/// Whether an owner field counts as answered: not null, not empty, not a placeholder.
pub fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(_) | Value::Number(_) => true,
        Value::String(s) => !is_placeholder(s),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => o.values().any(present),
    }
}

fn is_placeholder(s: &str) -> bool {
    let t = s.trim().to_ascii_lowercase();
    matches!(
        t.as_str(),
        "" | "-" | "?" | "n/a" | "na" | "none" | "null" | "tbd" | "todo" | "unknown" | "later"
    ) || t == PENDING
}

/// An owner field as one line of text (arrays joined with `; `, objects as compact JSON).
pub fn render_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter(|x| present(x))
            .map(render_text)
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The items of `redacted_evidence_refs`: (index suffix, the reference string if the item
/// has one).
fn ref_items(v: &Value) -> Vec<(String, Option<&str>)> {
    fn item(x: &Value) -> Option<&str> {
        match x {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("ref").and_then(Value::as_str),
            _ => None,
        }
    }
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter(|(_, x)| present(x))
            .map(|(i, x)| (format!("[{i}]"), item(x)))
            .collect(),
        other => vec![(String::new(), item(other))],
    }
}

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    // A hash, commit, URL, URI-like pointer, ticket id, or path@commit / image@digest.
    #[allow(clippy::unwrap_used)] // a constant pattern, pinned by the tests
    Regex::new(
        r"(?x)^(?:
            (?:sha1|sha256|sha384|sha512|blake3|md5):[0-9a-fA-F]{32,128}
          | [0-9a-fA-F]{7,128}
          | https?://[^\s]+
          | [a-z][a-z0-9+.-]{1,30}:(?://)?[^\s]+
          | [A-Z][A-Z0-9]{1,15}-[0-9]{1,9}
          | \#[0-9]{1,9}
          | [A-Za-z0-9_./-]+@(?:sha256:)?[0-9a-fA-F]{7,64}
        )$",
    )
    .unwrap()
});

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z][A-Za-z0-9_-]{0,30}[:=]$").unwrap()
});

/// Whether `s` is one or more references, optionally labelled (`repo=git:ops@3f2a1bc
/// live: sha256:...`), separated by whitespace, commas or semicolons.
pub fn is_reference_list(s: &str) -> bool {
    let mut any = false;
    for token in s.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let token = token
            .trim_matches(|c| c == '(' || c == ')')
            .trim_end_matches('.');
        if token.is_empty() || LABEL.is_match(token) {
            continue;
        }
        // `label=ref` / `label:ref` where the label is a plain word and the rest a ref.
        let bare = token
            .split_once('=')
            .filter(|(l, _)| LABEL.is_match(&format!("{l}=")))
            .map(|(_, r)| r)
            .unwrap_or(token);
        if REFERENCE.is_match(bare) {
            any = true;
        } else {
            return false;
        }
    }
    any
}

fn is_reference_value(v: &Value) -> bool {
    match v {
        Value::String(s) => is_reference_list(s),
        Value::Array(a) => {
            let items: Vec<&Value> = a.iter().filter(|x| present(x)).collect();
            !items.is_empty() && items.into_iter().all(is_reference_value)
        }
        Value::Object(o) => o.get("ref").is_some_and(is_reference_value),
        _ => false,
    }
}

// ---- walking ---------------------------------------------------------------------------

struct Str<'a> {
    location: String,
    text: &'a str,
    is_key: bool,
    /// Free text where incident content counts (not reference fields, not the envelope ids).
    prose: bool,
}

static PLAIN_KEY: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$").unwrap()
});

/// A key as shown in a location: itself if it is a plain name with nothing secret in it,
/// else its ordinal.
fn key_segment(scanner: &Scanner, key: &str, ordinal: usize) -> String {
    let mut f = Vec::new();
    if PLAIN_KEY.is_match(key) {
        scanner.scan(key, "", &mut f);
        if f.is_empty() {
            return format!(".{key}");
        }
    }
    format!("{{#{ordinal}}}")
}

fn top_field(location: &str) -> &str {
    let rest = location.strip_prefix("$.").unwrap_or("");
    let end = rest.find(['.', '[', '{']).unwrap_or(rest.len());
    &rest[..end]
}

fn walk<'a>(scanner: &Scanner, v: &'a Value, location: String, out: &mut Vec<Str<'a>>) {
    match v {
        Value::String(s) => {
            let field = top_field(&location);
            let prose = !is_ref_field(field)
                && !matches!(
                    field,
                    "schema_version"
                        | "request_id"
                        | "surface_id"
                        | "repo_sha256"
                        | "redacted_evidence_refs"
                        | "responded_at"
                );
            out.push(Str {
                location,
                text: s,
                is_key: false,
                prose,
            });
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(scanner, x, format!("{location}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (i, (k, x)) in o.iter().enumerate() {
                let child = format!("{location}{}", key_segment(scanner, k, i));
                out.push(Str {
                    location: format!("{child} (key)"),
                    text: k,
                    is_key: true,
                    prose: false,
                });
                walk(scanner, x, child, out);
            }
        }
        _ => {}
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 64 => shown_id(s),
        other => type_name(other).to_owned(),
    }
}

static PLAIN_ID: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"^[A-Za-z0-9_:./@+-]{1,300}$").unwrap()
});

/// A field name fit to show in an error, or a description of it.
fn shown_name(k: &str) -> String {
    let mut f = Vec::new();
    Scanner::builtin().scan(k, "", &mut f);
    if PLAIN_KEY.is_match(k) && f.is_empty() {
        format!("{k:?}")
    } else {
        "(a key that is not a field name; not shown)".to_owned()
    }
}

/// An id fit to show in an error.
fn shown_id(s: &str) -> String {
    let mut f = Vec::new();
    Scanner::builtin().scan(s, "", &mut f);
    if PLAIN_ID.is_match(s) && f.is_empty() {
        format!("{s:?}")
    } else {
        "(not shown: not an id)".to_owned()
    }
}

fn envelope<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, IntakeError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(v) => Err(IntakeError::BadEnvelope {
            field,
            found: format!(", found {}", type_name(v)),
        }),
        None => Err(IntakeError::BadEnvelope {
            field,
            found: " (missing)".into(),
        }),
    }
}

fn json_error(e: serde_json::Error) -> IntakeError {
    // Syntax and EOF messages name positions, never values.
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        _ => e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("syntax error")
            .to_owned(),
    };
    IntakeError::Json(format!("{what} at line {} column {}", e.line(), e.column()))
}

// ---- execution requests and incident content -------------------------------------------

struct Pattern {
    label: &'static str,
    re: Regex,
}

/// Patterns with a one-pass prefilter: the individual regexes run only where the set
/// says they match.
struct PatternSet {
    set: Option<regex::RegexSet>,
    patterns: Vec<Pattern>,
}

impl PatternSet {
    fn matching<'s>(&'s self, text: &str) -> Vec<&'s Pattern> {
        match &self.set {
            Some(set) => set
                .matches(text)
                .into_iter()
                .filter_map(|i| self.patterns.get(i))
                .collect(),
            None => self.patterns.iter().collect(),
        }
    }
}

fn patterns(list: &[(&'static str, &str)]) -> PatternSet {
    let patterns: Vec<Pattern> = list
        .iter()
        .filter_map(|(label, re)| match Regex::new(re) {
            Ok(re) => Some(Pattern { label, re }),
            Err(e) => {
                tracing::error!(%label, error = %e, "built-in pattern does not compile");
                None
            }
        })
        .collect();
    // Without the set every pattern runs: slower, never less thorough.
    let set = regex::RegexSet::new(patterns.iter().map(|p| p.re.as_str())).ok();
    PatternSet { set, patterns }
}

static EXECUTION: LazyLock<PatternSet> = LazyLock::new(|| {
    patterns(&[
        (
            "ssh_write",
            r"(?i)\b(?:scp|rsync)\s+(?:-\S+\s+)*\S+\s+\S*@?[\w.-]+:\S*",
        ),
        (
            "ssh_read",
            r"(?i)\bssh\s+(?:-\S+\s+(?:\S+\s+)?)*(?:[\w.-]+@)?[\w.-]+\.[\w.-]+|\bssh\s+(?:-\S+\s+)*[\w.-]+@[\w.-]+|\b(?:please|pls|kindly|then|and)\s+ssh\b|\bssh\s+(?:into|to|onto)\s+\S+",
        ),
        (
            "docker_compose_up",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*(?:up|start|restart|run|exec|create)\b",
        ),
        (
            "docker_compose_down",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*(?:down|stop|rm|kill)\b",
        ),
        (
            "docker_compose_pull",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*pull\b|\bdocker\s+pull\s+\S",
        ),
        (
            "docker_compose_up",
            r"(?i)\bdocker\s+(?:container\s+)?(?:run|start|restart|exec|update)\s+\S",
        ),
        (
            "docker_compose_down",
            r"(?i)\bdocker\s+(?:container\s+)?(?:stop|kill|rm|rmi)\s+\S",
        ),
        (
            "systemctl_restart",
            r"(?i)\bsystemctl\s+(?:--?\S+\s+)*(?:restart|try-restart|reload-or-restart|start|stop|kill|enable|disable|mask|unmask|isolate|reboot|poweroff)\b|\bservice\s+[\w@.-]+\s+(?:restart|stop|start)\b",
        ),
        (
            "systemctl_reload",
            r"(?i)\bsystemctl\s+(?:--?\S+\s+)*(?:reload|daemon-reload|daemon-reexec)\b|\bservice\s+[\w@.-]+\s+reload\b",
        ),
        (
            "repair_bot_execute",
            r"(?i)\brepair[-_ ]?bot\s+(?:run|execute|exec|trigger|apply|fix|heal)\b|\b(?:run|trigger|execute|start|kick off|invoke)\s+(?:the\s+)?repair[-_ ]?bot\b",
        ),
        (
            "ansible_apply",
            r"(?i)\bansible-playbook\b|\bansible\s+\S+\s+(?:.*\s)?(?:-m|--module-name|-a|--args|-b|--become)\b|\b(?:run|apply|execute|trigger)\s+(?:the\s+)?(?:ansible|playbook)\b",
        ),
        (
            "sudo_action",
            r"(?i)(?:^|[\s;&|`$(])sudo\s+\S|\bsu\s+-c\s|\bdoas\s+\S",
        ),
        (
            "host_file_write",
            r"(?i)(?:>>?|\btee\s+(?:-a\s+)?)\s*/(?:etc|usr|var|opt|srv|root|home|boot|lib)/|\b(?:rm\s+-[rRf]+|mkfs(?:\.\w+)?|dd\s+if=|sed\s+-i|truncate\s+-s|chmod\s+[0-7+=ugoa]|chown\s+\S+:?\S*\s+/)|\b(?:cp|mv|install|ln\s+-sf?)\s+\S+\s+/(?:etc|usr|opt|srv|boot)/",
        ),
        (
            "firewall_change",
            r"(?i)\b(?:iptables|ip6tables)\s+(?:-t\s+\w+\s+)?-[AIDRFXNP]\b|\bnft\s+(?:add|delete|insert|flush|replace)\b|\bufw\s+(?:allow|deny|delete|reject|enable|disable|insert)\b|\bfirewall-cmd\s+.*--(?:add|remove)-",
        ),
        (
            "restart_without_window",
            r"(?i)\b(?:please|pls|kindly|go ahead and|can you|could you|you can|just)\s+(?:\w+\s+){0,2}(?:restart|reboot|redeploy|bounce|recreate)\b|\b(?:restart|reboot|redeploy)\s+(?:it|them|the\s+\w+)\s+(?:now|immediately|asap|right away)\b",
        ),
        (
            "systemctl_reload",
            r"(?i)\b(?:please|pls|kindly|go ahead and|can you|could you)\s+(?:\w+\s+){0,2}reload\b",
        ),
    ])
});

/// The blocked actions `text` asks for, each with an excerpt (≤ 80 chars).
pub fn execution_requests(text: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for p in EXECUTION.matching(text) {
        if let Some(m) = p.re.find(text) {
            if out.iter().any(|(l, _)| *l == p.label) {
                continue;
            }
            out.push((p.label, excerpt(text, m.start(), m.end())));
        }
    }
    out
}

fn excerpt(text: &str, start: usize, end: usize) -> String {
    let mut end = end.min(start + 80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[start..end].trim().to_owned()
}

static INCIDENT: LazyLock<PatternSet> = LazyLock::new(|| {
    patterns(&[
        (
            "incident",
            r"(?i)\b(?:incident|outage|post-?mortem|sev[ -]?[0-4]\b|went down|was down|crashed|degraded|unavailable for)",
        ),
        (
            "silent_restart",
            r"(?i)\b(?:silent(?:ly)?\s+(?:re)?(?:start|restart|reload)(?:ed|s)?|restarted\s+(?:itself|automatically|on its own|without)|auto-?restart(?:ed|s)?|unexpected(?:ly)?\s+(?:re)?start(?:ed)?|restart\s+loop|crash[- ]?loop(?:ing)?|oom[- ]?kill(?:ed|er)?|reloaded\s+without)",
        ),
        (
            "port_incident",
            r"(?i)\b(?:port\s+(?:conflict|collision|clash|exhaustion|incident|hijack)|address already in use|eaddrinuse|port\s+\d{1,5}\s+(?:was|is|got)\s+(?:taken|occupied|in use|already used)|(?:host|container)\s+port\s+(?:drift|mismatch))",
        ),
        (
            "cold_start",
            r"(?i)\b(?:cold[- ]?(?:start|boot)|after\s+(?:a\s+)?(?:power\s+(?:loss|failure|outage|cut)|host\s+reboot|full\s+reboot)|did\s+not\s+come\s+back\s+(?:up\s+)?after\s+(?:a\s+)?reboot)",
        ),
    ])
});

static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"(?i)\b(?:no|not|never|without|zero|nor|none)\b(?:\s+[\w-]+){0,2}\s*$").unwrap()
});

/// The incident signals in `text` (`incident`, `silent_restart`, `port_incident`,
/// `cold_start`), ignoring negated mentions ("no incident", "never restarted silently").
pub fn incident_signals(text: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for p in INCIDENT.matching(text) {
        let hit = p.re.find_iter(text).any(|m| {
            let mut from = m.start().saturating_sub(32);
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            // The clause before the match, from its last sentence boundary.
            let before = &text[from..m.start()];
            let clause = before
                .rsplit(['.', ';', '!', '?', '\n'])
                .next()
                .unwrap_or(before);
            !NEGATION.is_match(clause)
        });
        if hit && !out.contains(&p.label) {
            out.push(p.label);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_prose() {
        for s in [
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "3f2a1bc",
            "https://git.example.com/ops/infra/-/merge_requests/123",
            "OPS-1234",
            "s3://backups/compose/app.tar.zst",
            "repo=git:ops@3f2a1bc live: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "OPS-1, OPS-2; #42",
            "deploy/app.yml@3f2a1bc",
        ] {
            assert!(is_reference_list(s), "{s}");
        }
        for s in [
            "",
            "we keep it in git",
            "see the wiki",
            "the usual place",
            "OPS-1 and the wiki",
        ] {
            assert!(!is_reference_list(s), "{s}");
        }
    }

    #[test]
    fn execution_requests_are_found_and_windows_are_not() {
        let cases: [(&str, &[&str]); 10] = [
            (
                "please run sudo systemctl restart nginx tonight",
                &["systemctl_restart", "sudo_action"],
            ),
            ("ssh root@web1.example.com and check", &["ssh_read"]),
            ("docker compose -f app.yml up -d", &["docker_compose_up"]),
            (
                "docker-compose pull && docker-compose up -d",
                &["docker_compose_up", "docker_compose_pull"],
            ),
            ("ansible-playbook -i prod site.yml", &["ansible_apply"]),
            (
                "trigger the repair-bot after merge",
                &["repair_bot_execute"],
            ),
            ("echo 'x' >> /etc/hosts", &["host_file_write"]),
            (
                "iptables -A INPUT -p tcp --dport 443 -j ACCEPT",
                &["firewall_change"],
            ),
            ("systemctl daemon-reload", &["systemctl_reload"]),
            (
                "can you just restart the stack",
                &["restart_without_window"],
            ),
        ];
        for (text, want) in cases {
            let got: BTreeSet<&str> = execution_requests(text)
                .into_iter()
                .map(|(l, _)| l)
                .collect();
            for w in want {
                assert!(got.contains(w), "{text}: {got:?}");
            }
        }
        for text in [
            "Sundays 02:00-03:00 UTC, restart window agreed with the web team",
            "curl -fsS https://app.example.com/healthz; systemctl is-active app; check logs",
            "restart only inside the maintenance window after reviewer approval",
            "rollback: revert commit 3f2a1bc via the merge request",
            "docker compose ps shows healthy",
            "the ssh host key fingerprint is recorded in OPS-12",
        ] {
            assert!(
                execution_requests(text).is_empty(),
                "{text}: {:?}",
                execution_requests(text)
            );
        }
    }

    #[test]
    fn incident_signals_skip_negations() {
        assert_eq!(
            incident_signals("the service restarted itself twice at 03:00"),
            vec!["silent_restart"]
        );
        assert_eq!(
            incident_signals("port 8080 was taken by the exporter"),
            vec!["port_incident"]
        );
        assert_eq!(
            incident_signals("after a power loss the stack needed a cold start"),
            vec!["cold_start"]
        );
        assert_eq!(
            incident_signals("last week's outage (INC-7)"),
            vec!["incident"]
        );
        assert!(incident_signals("no incident in the last 90 days").is_empty());
        assert!(incident_signals("it has never restarted silently").is_empty());
        assert!(incident_signals("routine change, config drift only").is_empty());
    }

    #[test]
    fn placeholders_are_not_answers() {
        for s in ["", " ", "TBD", "n/a", "pending_owner_response", "-"] {
            assert!(!present(&Value::String(s.into())), "{s:?}");
        }
        assert!(present(&Value::String("platform-team".into())));
        assert!(!present(&serde_json::json!([null, ""])));
    }
}
