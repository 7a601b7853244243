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

mod checks;
mod patterns;
mod values;
mod walk;

use checks::*;
use patterns::*;
use values::*;
use walk::*;

#[cfg(test)]
mod tests;

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
