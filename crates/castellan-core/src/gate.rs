//! The reversibility gate: the pure decision whether an action may execute.
//!
//! - A benign action is allowed unsigned.
//! - A destructive action is accepted only with signed-op evidence that passes every
//!   check below, in this order (the first failure is the reason reported):
//!   1. at least one signature verified against the host's allowed signers
//!      (otherwise the first signature's own reason: `unknown_signer`, `bad_signature`,
//!      `wrong_namespace`, `expired`, ...);
//!   2. the op names this host (`wrong_host`);
//!   3. the op's operation, target (kind and id) and parameters are exactly the action's
//!      (`binding_mismatch`);
//!   4. the op's window contains the effective time — `max(now, high-water)`, so a clock
//!      set back cannot revive an expired op (`not_yet_valid`, `expired`);
//!   5. its nonce has never been consumed (`replayed`);
//!   6. some verified signer's role permits the operation (`role_denied`);
//!   7. enough distinct permitted keys signed it (`threshold_not_met`);
//!   8. the target's state digest is the one the op was approved against
//!      (`stale_precondition`).
//! - A destructive action without any op is `pending_signature`, with the payload to sign.
//!
//! The gate does no I/O: signature checks arrive as [`SignatureCheck`] values computed by
//! the verifier, the nonce's state and the effective time are passed in. An
//! [`Approval`] can only be made here, so an executor that takes one cannot be handed an
//! action nobody approved.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use crate::classify::{Class, Classification};
use crate::op::SignedOp;
use crate::operation::Operation;
use crate::role::{RejectReason, Role};
use crate::target::Target;

/// A destructive action the agent would take, as the planner or the operator described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestructiveAction {
    /// The operation.
    pub op: Operation,
    /// This host.
    pub host: String,
    /// What it acts on.
    pub target: Target,
    /// The operation's parameters.
    pub params: BTreeMap<String, String>,
    /// The digest of the target's current state (a guest's configuration digest, a
    /// container's declaration and volumes).
    pub state_digest: String,
}

impl DestructiveAction {
    /// The op payload an operator signs to approve this action.
    pub fn payload(&self, nonce: String, not_before: Timestamp, not_after: Timestamp) -> SignedOp {
        SignedOp {
            op: self.op.as_str().to_owned(),
            host: self.host.clone(),
            target: self.target.clone(),
            precondition: Some(self.state_digest.clone()),
            nonce,
            not_before,
            not_after,
            params: self.params.clone(),
        }
    }
}

/// One signature's verification result, as the verifier reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The signature verified against an allowed-signers entry.
    Verified {
        /// `SHA256:...` fingerprint of the trusted key.
        fingerprint: String,
        /// The entry's principals, for reports.
        principals: Vec<String>,
        /// Every role the signer config gives those principals.
        roles: BTreeSet<Role>,
    },
    /// The signature was refused.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail for people (never secret).
        detail: String,
    },
}

/// Everything the gate needs about one destructive action's evidence.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The signed op offered for the action.
    pub op: &'a SignedOp,
    /// The verifier's result for each signature over the op.
    pub signatures: &'a [SignatureCheck],
    /// Whether the op's nonce was already consumed.
    pub nonce_consumed: bool,
}

/// The policy inputs: who this host is, what time it is, how many signers an op needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// This host's node name.
    pub host: &'a str,
    /// `max(now, persisted high-water mark)`.
    pub effective_now: Timestamp,
    /// Distinct signer keys the operation needs (at least 1).
    pub threshold: u32,
    /// When this host's current state began: an op valid from earlier is refused
    /// (`predates_state`). `None` where no state applies (`castellan op verify`).
    pub state_since: Option<Timestamp>,
}

/// Proof that the gate accepted a destructive action. Only [`decide`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    action: DestructiveAction,
    op_digest: String,
    nonce: String,
    not_after: Timestamp,
    signers: Vec<String>,
    roles: BTreeSet<Role>,
}

impl Approval {
    /// The approved action.
    pub fn action(&self) -> &DestructiveAction {
        &self.action
    }
    /// SHA-256 of the approving op's canonical bytes.
    pub fn op_digest(&self) -> &str {
        &self.op_digest
    }
    /// The op's nonce, to be consumed before execution.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
    /// When the op expires (nonces may be pruned after it).
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }
    /// Fingerprints of the distinct keys whose signatures counted.
    pub fn signers(&self) -> &[String] {
        &self.signers
    }
    /// The roles those signers hold.
    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Benign: executes without a signature.
    Allowed,
    /// Destructive and approved.
    Accepted(Approval),
    /// Destructive with no op offered: waits for a signature, never executes.
    PendingSignature,
    /// Destructive and the offered op was refused.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail for people.
        detail: String,
    },
}

/// Which roles may authorise `op` (its row of the operation table).
pub fn roles_permitted(op: Operation) -> &'static [Role] {
    op.spec().roles
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Decision {
    Decision::Rejected {
        reason,
        detail: detail.into(),
    }
}

/// Decides whether `action`, classified as `class`, may execute on the strength of
/// `evidence` under `policy`.
pub fn decide(
    action: &DestructiveAction,
    class: Classification,
    evidence: Option<Evidence<'_>>,
    policy: Policy<'_>,
) -> Decision {
    if class.class == Class::Benign {
        return Decision::Allowed;
    }
    let Some(ev) = evidence else {
        return Decision::PendingSignature;
    };
    let op = ev.op;

    // 1. Authenticity first: nothing about an unauthenticated op is worth reporting.
    let verified: Vec<(&String, &BTreeSet<Role>)> = ev
        .signatures
        .iter()
        .filter_map(|s| match s {
            SignatureCheck::Verified {
                fingerprint, roles, ..
            } => Some((fingerprint, roles)),
            SignatureCheck::Rejected { .. } => None,
        })
        .collect();
    if verified.is_empty() {
        return match ev.signatures.first() {
            Some(SignatureCheck::Rejected { reason, detail }) => reject(*reason, detail.clone()),
            _ => reject(RejectReason::BadFormat, "no signature over the op"),
        };
    }

    // 2-3. Binding to this host and this exact action.
    if op.host != policy.host {
        return reject(
            RejectReason::WrongHost,
            format!("op is for host {:?}, this is {:?}", op.host, policy.host),
        );
    }
    if op.op != action.op.as_str() {
        return reject(
            RejectReason::BindingMismatch,
            format!(
                "op authorises {:?}, the action is {:?}",
                op.op,
                action.op.as_str()
            ),
        );
    }
    if op.target != action.target {
        return reject(
            RejectReason::BindingMismatch,
            format!("op targets {}, the action {}", op.target, action.target),
        );
    }
    if op.params != action.params {
        return reject(
            RejectReason::BindingMismatch,
            format!(
                "op parameters {} differ from the action's {}",
                show_params(&op.params),
                show_params(&action.params)
            ),
        );
    }

    // 4. Validity window by the clock that cannot go backwards.
    if let Err(reason) = op.window_check(policy.effective_now) {
        let detail = match reason {
            RejectReason::NotYetValid => format!("op is valid from {}", op.not_before),
            _ => format!("op expired at {}", op.not_after),
        };
        return reject(reason, detail);
    }

    // 4b. Not from before this state began: after a lost database, an op valid from
    //     earlier might have been used already.
    if let Some(since) = policy.state_since
        && op.not_before < since
    {
        return reject(
            RejectReason::PredatesState,
            format!(
                "op is valid from {}, before this host's state began at {since}; make a new op",
                op.not_before
            ),
        );
    }

    // 5. Single use.
    if ev.nonce_consumed {
        return reject(
            RejectReason::Replayed,
            format!("nonce {} was already used", op.nonce),
        );
    }

    // 6. Role scope.
    let allowed = roles_permitted(action.op);
    let permitted: BTreeMap<&String, BTreeSet<Role>> = verified
        .iter()
        .filter(|(_, roles)| roles.iter().any(|r| allowed.contains(r)))
        .map(|(fp, roles)| (*fp, (*roles).clone()))
        .collect();
    if permitted.is_empty() {
        let held: BTreeSet<Role> = verified
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        return reject(
            RejectReason::RoleDenied,
            format!(
                "{} needs role {}; the signers hold {}",
                op.op,
                join(allowed.iter().map(Role::as_str)),
                if held.is_empty() {
                    "no role".to_owned()
                } else {
                    join(held.iter().map(Role::as_str))
                }
            ),
        );
    }

    // 7. M-of-N distinct keys (the map above is keyed by fingerprint, so a key that
    //    signed twice counts once).
    let threshold = policy.threshold.max(1);
    if (permitted.len() as u64) < u64::from(threshold) {
        return reject(
            RejectReason::ThresholdNotMet,
            format!(
                "{} needs {threshold} distinct signer keys, got {}",
                op.op,
                permitted.len()
            ),
        );
    }

    // 8. The state it was approved against.
    match &op.precondition {
        Some(p) if *p == action.state_digest => {}
        Some(p) => {
            return reject(
                RejectReason::StalePrecondition,
                format!(
                    "{} changed since approval (digest {} now, {} approved)",
                    action.target, action.state_digest, p
                ),
            );
        }
        None => {
            return reject(
                RejectReason::StalePrecondition,
                "op carries no precondition; destructive ops must be bound to the state they were approved against",
            );
        }
    }

    Decision::Accepted(Approval {
        action: action.clone(),
        op_digest: op.digest(),
        nonce: op.nonce.clone(),
        not_after: op.not_after,
        signers: permitted.keys().map(|s| (*s).clone()).collect(),
        roles: permitted.values().flatten().copied().collect(),
    })
}

fn show_params(p: &BTreeMap<String, String>) -> String {
    if p.is_empty() {
        "(none)".to_owned()
    } else {
        join(p.iter().map(|(k, v)| format!("{k}={v}")))
    }
}

fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}
