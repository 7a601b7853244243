//! Signer roles and the typed reasons a signed operation is refused. They are shared by
//! the verifier (`castellan-sig`), the pure gate ([`crate::gate`]) and the audit log, so
//! the same word means the same thing everywhere a decision is reported.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a signer's key may authorise. Set per principal in the signer config
/// (`signers.toml`, `[roles]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Ordinary destructive operations and planned key rotation.
    Operational,
    /// Key rotation only: a break-glass key that cannot destroy anything.
    Recovery,
    /// Signs acceptance-ledger reviewer records; authorises no runtime operation.
    Reviewer,
}

impl Role {
    /// All roles, in a fixed order.
    pub const ALL: [Role; 3] = [Role::Operational, Role::Recovery, Role::Reviewer];

    /// The configuration word for this role.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Operational => "operational",
            Role::Recovery => "recovery",
            Role::Reviewer => "reviewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role word that is not one of `operational`, `recovery`, `reviewer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected \"operational\", \"recovery\" or \"reviewer\")")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Why a signed operation was refused. The snake_case word (`as_str`) is what
/// `castellan op verify` prints after `rejected:` and what the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The op file or a signature could not be decoded, or is not in canonical form.
    BadFormat,
    /// The signing key is in no allowed-signers entry.
    UnknownSigner,
    /// The signature does not verify over the op (or an sk key's user-presence flag is
    /// missing).
    BadSignature,
    /// Signed under another namespace than `castellan-op`, or the signer's entry does not
    /// permit that namespace.
    WrongNamespace,
    /// Past the op's `not_after` or the signer entry's `valid-before`, by a clock that
    /// cannot go backwards.
    Expired,
    /// Before the op's `not_before` or the signer entry's `valid-after`.
    NotYetValid,
    /// The op's nonce was already consumed.
    Replayed,
    /// The op names another host.
    WrongHost,
    /// The op's operation, target or parameters differ from the action it would authorise.
    BindingMismatch,
    /// No signer's role permits this operation.
    RoleDenied,
    /// The target changed since the op was approved (its state digest differs).
    StalePrecondition,
    /// Fewer distinct permitted signer keys than the configured threshold.
    ThresholdNotMet,
    /// The op's validity began before this host's current state did: after a lost
    /// database it might have been used already, so it is never accepted.
    PredatesState,
}

impl RejectReason {
    /// The reason's snake_case word.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::BadFormat => "bad_format",
            RejectReason::UnknownSigner => "unknown_signer",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::WrongNamespace => "wrong_namespace",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::Replayed => "replayed",
            RejectReason::WrongHost => "wrong_host",
            RejectReason::BindingMismatch => "binding_mismatch",
            RejectReason::RoleDenied => "role_denied",
            RejectReason::StalePrecondition => "stale_precondition",
            RejectReason::ThresholdNotMet => "threshold_not_met",
            RejectReason::PredatesState => "predates_state",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_words_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).ok(),
                Some(format!("\"{}\"", r.as_str()))
            );
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn reason_words_match_serde() {
        use RejectReason::*;
        for r in [
            BadFormat,
            UnknownSigner,
            BadSignature,
            WrongNamespace,
            Expired,
            NotYetValid,
            Replayed,
            WrongHost,
            BindingMismatch,
            RoleDenied,
            StalePrecondition,
            ThresholdNotMet,
            PredatesState,
        ] {
            assert_eq!(
                serde_json::to_string(&r).ok(),
                Some(format!("\"{}\"", r.as_str()))
            );
        }
    }
}
