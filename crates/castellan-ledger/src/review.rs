//! Signed reviewer records: the only thing that moves a candidate to accepted or rejected.
//!
//! A record is a small canonical TOML document, signed as an SSHSIG under namespace
//! [`NAMESPACE`] (so a review signature can never pass as a signed operation, whose
//! namespace is `castellan-op`), and verified by the same verifier as the gate
//! (`castellan-sig`) against the ledger's `signers.toml`: the key must hold the `reviewer`
//! role.
//!
//! ```toml
//! version = 1
//! candidate = "host_service_owner_response_acceptance:docker_compose:hosts/pve1/compose.yml"
//! response = "owner_response:0f3c..."
//! surface_sha256 = "9f86d0..."
//! decision = "accepted"
//! reason = "windows, rollback and post-check verified against OPS-1234"
//! reviewed_at = "2026-11-22T10:00:00Z"
//! nonce = "5b1e..."
//! ```
//!
//! Exactly one byte encoding is accepted: the parser re-renders what it read and refuses
//! anything that differs. A record binds the decision to one owner response (by its
//! ledger id) and one version of the surface, so accepting a response never carries over
//! to the next response or to a changed surface.

use std::collections::{BTreeMap, BTreeSet};

use castellan_core::Role;
use castellan_core::op::format_time;
use castellan_sig::SignerConfig;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::acceptance::{CandidateState, LedgerView};
use crate::model::RequestDraft;
use crate::schema::Lane;
use crate::secrets::Scanner;

/// The SSHSIG namespace of reviewer records.
pub const NAMESPACE: &str = "castellan-review";
/// Longest `reason`.
pub const MAX_REASON_CHARS: usize = 1000;
/// The threshold name in `signers.toml` for ordinary surfaces (default 1).
pub const THRESHOLD_REVIEW: &str = "review";
/// The threshold name for write-capable surfaces (at least 2, whatever is configured).
pub const THRESHOLD_REVIEW_WRITE_CAPABLE: &str = "review_write_capable";

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The owner response is accepted (still not a runtime approval).
    Accepted,
    /// The owner response is rejected.
    Rejected,
}

impl Decision {
    /// `accepted` / `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for Decision {
    type Err = ReviewError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "accepted" => Ok(Decision::Accepted),
            "rejected" => Ok(Decision::Rejected),
            _ => Err(ReviewError::Malformed(
                "decision must be \"accepted\" or \"rejected\"".into(),
            )),
        }
    }
}

/// The signed payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewPayload {
    /// Format version, 1.
    pub version: u32,
    /// The acceptance candidate id.
    pub candidate: String,
    /// The owner response (ledger id) decided on.
    pub response: String,
    /// The surface version the response answered.
    pub surface_sha256: String,
    /// The decision.
    pub decision: Decision,
    /// Why (one line, no secrets: it is scanned before signing).
    pub reason: String,
    /// When (RFC 3339 UTC, seconds).
    pub reviewed_at: String,
    /// 16 random bytes, hex: two otherwise identical reviews stay distinct records.
    pub nonce: String,
}

/// What `ledger review` asks to record, before anything is signed.
#[derive(Debug, Clone, Copy)]
pub struct ReviewRequest<'a> {
    /// The candidate's owner request draft (its surface and version).
    pub draft: &'a RequestDraft,
    /// The decision.
    pub decision: Decision,
    /// The reason, as typed (trimmed here).
    pub reason: &'a str,
    /// The reviewer key's `SHA256:` fingerprint, where it can be told before signing.
    pub signer: Option<&'a str>,
    /// When (RFC 3339 UTC).
    pub reviewed_at: &'a str,
    /// A fresh nonce (hex).
    pub nonce: &'a str,
}

/// What may be recorded for a [`ReviewRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// A new record: sign this payload.
    Sign(ReviewPayload),
    /// The same key already recorded the same decision, with the same reason, on the
    /// same response and surface version: nothing to do.
    AlreadyRecorded {
        /// The existing record's id.
        record_id: String,
    },
}

/// Why a review may not be made. Nothing is signed or recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewRefused {
    /// No owner response for the candidate yet.
    #[error("{candidate}: no owner response has been recorded yet")]
    NoResponse {
        /// The candidate id.
        candidate: String,
    },
    /// The surface changed after its latest response.
    #[error("the surface changed since its latest owner response; a fresh response is needed")]
    Stale,
    /// Accepting a response that is not ready for review.
    #[error(
        "cannot accept: the latest owner response {response} is in lane {lane}, not ready_for_host_service_review"
    )]
    NotReady {
        /// The response id.
        response: String,
        /// Its lane.
        lane: String,
    },
    /// The reason would put a secret into a signed, kept record.
    #[error("the reason looks like it contains a secret ({rule}); nothing was signed")]
    SecretInReason {
        /// The rule that matched (never the secret).
        rule: String,
    },
    /// The payload is out of range (an over-long reason, a control character).
    #[error(transparent)]
    Invalid(#[from] ReviewError),
}

/// The ledger's rules for a new reviewer record, decided before anything is signed:
/// there must be an owner response, answering the surface as it is now; only a response
/// ready for review may be accepted; the reason must hold no secret (it is signed and
/// kept for good); and re-running the same review changes nothing.
pub fn prepare(
    req: ReviewRequest<'_>,
    state: &CandidateState,
    view: &LedgerView,
    scanner: &Scanner,
) -> Result<Prepared, ReviewRefused> {
    let candidate = crate::intake::candidate_id(&req.draft.surface_id);
    let Some(latest) = &state.latest else {
        return Err(ReviewRefused::NoResponse { candidate });
    };
    if state.stale {
        return Err(ReviewRefused::Stale);
    }
    if req.decision == Decision::Accepted && latest.lane() != Some(Lane::ReadyForReview) {
        return Err(ReviewRefused::NotReady {
            response: latest.response_id.clone(),
            lane: latest.lane.clone(),
        });
    }
    let reason = req.reason.trim();
    let mut found = Vec::new();
    scanner.scan(reason, "reason", &mut found);
    if let Some(f) = found.first() {
        return Err(ReviewRefused::SecretInReason {
            rule: f.rule_name.clone(),
        });
    }
    let payload = ReviewPayload {
        version: 1,
        candidate,
        response: latest.response_id.clone(),
        surface_sha256: req.draft.repo_sha256.clone(),
        decision: req.decision,
        reason: reason.to_owned(),
        reviewed_at: req.reviewed_at.to_owned(),
        nonce: req.nonce.to_owned(),
    };
    payload.validate()?;
    if let Some(fp) = req.signer
        && let Some(prev) = view.reviews.iter().find(|r| {
            r.signer == fp
                && r.payload.candidate == payload.candidate
                && r.payload.response == payload.response
                && r.payload.surface_sha256 == payload.surface_sha256
                && r.payload.decision == payload.decision
                && r.payload.reason == payload.reason
        })
    {
        return Ok(Prepared::AlreadyRecorded {
            record_id: prev.payload.record_id(),
        });
    }
    Ok(Prepared::Sign(payload))
}

/// Why a reviewer record was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// Not the canonical encoding, or a field out of range.
    #[error("malformed reviewer record: {0}")]
    Malformed(String),
    /// The signature did not verify.
    #[error("reviewer signature refused: {0}")]
    Signature(String),
    /// The key verified but does not hold the `reviewer` role.
    #[error("signer {0} does not hold the reviewer role")]
    NotReviewer(String),
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl ReviewPayload {
    /// The canonical bytes (what is signed).
    pub fn render(&self) -> String {
        format!(
            "version = {}\ncandidate = {}\nresponse = {}\nsurface_sha256 = {}\ndecision = {}\nreason = {}\nreviewed_at = {}\nnonce = {}\n",
            self.version,
            quote(&self.candidate),
            quote(&self.response),
            quote(&self.surface_sha256),
            quote(self.decision.as_str()),
            quote(&self.reason),
            quote(&self.reviewed_at),
            quote(&self.nonce),
        )
    }

    /// Parses canonical bytes, refusing any other encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReviewError> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| ReviewError::Malformed("not UTF-8".into()))?;
        let p: ReviewPayload =
            toml::from_str(text).map_err(|e| ReviewError::Malformed(e.message().to_owned()))?;
        p.validate()?;
        if p.render() != text {
            return Err(ReviewError::Malformed(
                "not in canonical form (field order, quoting or whitespace differ)".into(),
            ));
        }
        Ok(p)
    }

    /// Field checks.
    pub fn validate(&self) -> Result<(), ReviewError> {
        let bad = |m: &str| Err(ReviewError::Malformed(m.to_owned()));
        if self.version != 1 {
            return bad("version must be 1");
        }
        if self.reason.trim().is_empty() {
            return bad("reason is empty");
        }
        if self.reason.chars().count() > MAX_REASON_CHARS {
            return bad("reason is longer than 1000 characters");
        }
        if self.reason.chars().any(char::is_control) {
            return bad("reason must be one line of text");
        }
        if !self.candidate.starts_with(crate::schema::CANDIDATE_PREFIX) {
            return bad("candidate is not an acceptance candidate id");
        }
        if !self.response.starts_with("owner_response:") {
            return bad("response is not an owner response id");
        }
        if self.nonce.len() != 32 || !self.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("nonce must be 32 hex digits");
        }
        match self.reviewed_time() {
            Ok(t) if format_time(t) == self.reviewed_at => {}
            _ => {
                return bad(
                    "reviewed_at must be RFC 3339 UTC to the second (YYYY-MM-DDTHH:MM:SSZ)",
                );
            }
        }
        Ok(())
    }

    /// `reviewed_at` as a timestamp.
    pub fn reviewed_time(&self) -> Result<Timestamp, jiff::Error> {
        self.reviewed_at.parse()
    }

    /// The record id: `review:` + SHA-256 of the canonical bytes.
    pub fn record_id(&self) -> String {
        format!(
            "review:{}",
            hex::encode(Sha256::digest(self.render().as_bytes()))
        )
    }
}

/// A reviewer record as stored: payload bytes and the armored signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReview {
    /// Canonical payload bytes.
    pub payload: Vec<u8>,
    /// Armored SSHSIG.
    pub signature: Vec<u8>,
}

/// A reviewer record that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReview {
    /// The payload.
    pub payload: ReviewPayload,
    /// The signing key's fingerprint.
    pub signer: String,
    /// The signer's principals.
    pub principals: Vec<String>,
}

/// Verifies a record: canonical payload, signature by a key in `signers` (checked at
/// `reviewed_at`, so an allowed_signers validity window applies to when the review was
/// made), and the `reviewer` role.
pub fn verify(
    record: &StoredReview,
    signers: &SignerConfig,
) -> Result<VerifiedReview, ReviewError> {
    let payload = ReviewPayload::parse(&record.payload)?;
    let at = payload
        .reviewed_time()
        .map_err(|_| ReviewError::Malformed("reviewed_at is not an RFC 3339 time".into()))?;
    let v = signers
        .verify(NAMESPACE, &record.payload, &record.signature, at)
        .map_err(|r| ReviewError::Signature(r.to_string()))?;
    if !signers.roles_of(&v).contains(&Role::Reviewer) {
        return Err(ReviewError::NotReviewer(v.fingerprint));
    }
    Ok(VerifiedReview {
        payload,
        signer: v.fingerprint,
        principals: v.principals,
    })
}

/// Distinct reviewer signatures needed to accept a surface.
pub fn reviewers_needed(signers: Option<&SignerConfig>, write_capable: bool) -> u32 {
    match (signers, write_capable) {
        (Some(s), true) => s.threshold(THRESHOLD_REVIEW_WRITE_CAPABLE).max(2),
        (None, true) => 2,
        (Some(s), false) => s.threshold(THRESHOLD_REVIEW).max(1),
        (None, false) => 1,
    }
}

/// The combined decision of the verified reviews of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No reviewer record yet.
    Pending,
    /// Some accepted, fewer than needed, none rejected.
    NeedsMore {
        /// Distinct accepting keys.
        have: u32,
        /// Needed.
        need: u32,
    },
    /// Enough distinct keys accepted and none rejected.
    Accepted {
        /// Distinct accepting keys.
        signers: BTreeSet<String>,
    },
    /// At least one reviewer's latest decision is a rejection (a veto).
    Rejected,
}

/// Combines reviews of one response: each signer's latest record (by `reviewed_at`, then
/// order) counts; any rejection vetoes; acceptance needs `need` distinct keys.
pub fn combine(reviews: &[VerifiedReview], need: u32) -> Outcome {
    let mut latest: BTreeMap<&str, &VerifiedReview> = BTreeMap::new();
    for r in reviews {
        match latest.get(r.signer.as_str()) {
            Some(prev) if prev.payload.reviewed_at > r.payload.reviewed_at => {}
            _ => {
                latest.insert(&r.signer, r);
            }
        }
    }
    if latest.is_empty() {
        return Outcome::Pending;
    }
    if latest
        .values()
        .any(|r| r.payload.decision == Decision::Rejected)
    {
        return Outcome::Rejected;
    }
    let signers: BTreeSet<String> = latest.keys().map(|s| (*s).to_owned()).collect();
    let have = signers.len() as u32;
    if have >= need {
        Outcome::Accepted { signers }
    } else {
        Outcome::NeedsMore { have, need }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> ReviewPayload {
        ReviewPayload {
            version: 1,
            candidate: "host_service_owner_response_acceptance:docker_compose:a.yml".into(),
            response: "owner_response:00112233445566778899aabbccddeeff".into(),
            surface_sha256: "ab".repeat(32),
            decision: Decision::Accepted,
            reason: "windows and \"rollback\" verified".into(),
            reviewed_at: "2026-11-22T10:00:00Z".into(),
            nonce: "0f".repeat(16),
        }
    }

    #[test]
    fn canonical_round_trip_and_refusals() {
        let p = payload();
        let bytes = p.render();
        assert_eq!(ReviewPayload::parse(bytes.as_bytes()).ok(), Some(p.clone()));
        // Reordered, extra whitespace, unknown field: refused.
        let reordered = bytes.replacen("version = 1\n", "", 1) + "version = 1\n";
        assert!(ReviewPayload::parse(reordered.as_bytes()).is_err());
        assert!(ReviewPayload::parse(bytes.replace(" = ", "=").as_bytes()).is_err());
        assert!(ReviewPayload::parse(format!("{bytes}extra = 1\n").as_bytes()).is_err());
        let mut bad = p.clone();
        bad.reason = "two\nlines".into();
        assert!(ReviewPayload::parse(bad.render().as_bytes()).is_err());
        let mut bad = p;
        bad.decision = Decision::Rejected;
        assert_ne!(bad.record_id(), payload().record_id());
    }

    fn review(signer: &str, decision: Decision, at: &str) -> VerifiedReview {
        let mut p = payload();
        p.decision = decision;
        p.reviewed_at = at.into();
        VerifiedReview {
            payload: p,
            signer: signer.into(),
            principals: vec![],
        }
    }

    #[test]
    fn combining_counts_distinct_latest_decisions() {
        use Decision::*;
        assert_eq!(combine(&[], 1), Outcome::Pending);
        let a1 = review("A", Accepted, "2026-11-22T10:00:00Z");
        let a1again = review("A", Accepted, "2026-11-22T10:05:00Z");
        assert_eq!(
            combine(&[a1.clone(), a1again.clone()], 2),
            Outcome::NeedsMore { have: 1, need: 2 }
        );
        let b = review("B", Accepted, "2026-11-22T10:06:00Z");
        assert!(matches!(
            combine(&[a1.clone(), b.clone()], 2),
            Outcome::Accepted { .. }
        ));
        let b_rejects_later = review("B", Rejected, "2026-11-22T11:00:00Z");
        assert_eq!(
            combine(&[a1.clone(), b.clone(), b_rejects_later], 2),
            Outcome::Rejected
        );
        // A signer who rejected and later accepted counts as accepting.
        let a_rej = review("A", Rejected, "2026-11-22T09:00:00Z");
        assert!(matches!(combine(&[a_rej, a1], 1), Outcome::Accepted { .. }));
    }
}
