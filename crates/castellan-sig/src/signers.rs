//! The agent's signer configuration, `signers.toml`:
//!
//! ```toml
//! allowed_signers = "allowed_signers"   # OpenSSH format; relative to this file's directory
//!
//! [roles]                               # principal name -> role
//! "alice@example.com" = "operational"
//! "break-glass" = "recovery"
//!
//! [thresholds]                          # operation -> distinct signer keys needed
//!                                       # (default 1; decommission 2)
//! destroy = 2
//! ```
//!
//! Parsed in two stages: a raw serde structure that refuses unknown fields, then a
//! validation that lists every problem at once. A configuration is refused when:
//!
//! - a role word is not `operational`, `recovery` or `reviewer`;
//! - a role's principal is empty or contains pattern characters (`*`, `?`, `!`, `,`):
//!   roles are given to names, patterns belong in `allowed_signers`;
//! - a role's principal matches no `allowed_signers` entry (a typo, or a key that was
//!   removed: either way the role could never be exercised and the file is wrong);
//! - a threshold's operation name is not `[a-z0-9_-]+`, or the threshold is 0, negative
//!   or over `u32::MAX`;
//! - a threshold is larger than the number of distinct keys that hold any role, so the
//!   operation could never be authorised.
//!
//! An entry's roles are every `[roles]` principal its pattern-list matches
//! ([`SignerConfig::roles_of`]), so an entry `*@example.com` holds the roles of
//! `alice@example.com` and `bob@example.com` alike. Entries matching no role principal
//! are allowed; they verify but authorise nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use castellan_core::Role;
use jiff::Timestamp;
use serde::Deserialize;

use crate::allowed_signers::{
    AllowedSigners, AllowedSignersError, SignerEntry, quote, read_limited,
};
use crate::sshsig::{Rejected, Verified, verify};

/// Largest `signers.toml` read.
pub const MAX_SIGNER_CONFIG_BYTES: u64 = 64 * 1024;

/// A validated signer configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerConfig {
    /// The trusted keys.
    pub allowed: AllowedSigners,
    /// Principal name -> role.
    pub roles: BTreeMap<String, Role>,
    /// Operation -> distinct signer keys required (absent: 1).
    pub thresholds: BTreeMap<String, u32>,
}

/// Why a signer configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerConfigError {
    /// The configuration file could not be read.
    #[error("{}: cannot read signer config: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong (I/O error, too large, not UTF-8).
        reason: String,
    },
    /// Not valid TOML, or an unknown or mistyped field.
    #[error("{}{message}", origin(path.as_deref()))]
    Toml {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The TOML error, with its line and column.
        message: String,
    },
    /// The allowed_signers file it names was refused.
    #[error("{}{source}", origin(path.as_deref()))]
    AllowedSigners {
        /// The signer config file, when loaded from one.
        path: Option<PathBuf>,
        /// The allowed_signers error (it names its own file).
        source: AllowedSignersError,
    },
    /// Validation problems, every one listed.
    #[error("{}invalid signer config:\n  {}", origin(path.as_deref()), problems.join("\n  "))]
    Invalid {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// One message per problem.
        problems: Vec<String>,
    },
}

/// `FILE: ` when a message concerns a file, nothing otherwise.
pub(crate) fn origin(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    allowed_signers: PathBuf,
    #[serde(default)]
    roles: BTreeMap<String, String>,
    #[serde(default)]
    thresholds: BTreeMap<String, i64>,
}

impl SignerConfig {
    /// Reads `signers.toml` and the allowed_signers file it names (relative to its own
    /// directory).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SignerConfigError> {
        let path = path.as_ref();
        let text =
            read_limited(path, MAX_SIGNER_CONFIG_BYTES).map_err(|p| SignerConfigError::Read {
                path: path.to_owned(),
                reason: p.to_string(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_str_in(&text, base).map_err(|e| e.with_path(path))
    }

    /// Parses `signers.toml` text; a relative `allowed_signers` path is resolved against
    /// `base_dir`.
    pub fn from_str_in(text: &str, base_dir: &Path) -> Result<Self, SignerConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| SignerConfigError::Toml {
            path: None,
            message: e.to_string().trim_end().to_owned(),
        })?;
        let allowed_path = base_dir.join(&raw.allowed_signers);
        let allowed = AllowedSigners::load(&allowed_path)
            .map_err(|source| SignerConfigError::AllowedSigners { path: None, source })?;
        Self::validate(raw, allowed)
    }

    /// Parses `signers.toml` text against an already-read allowed_signers list (its
    /// `allowed_signers` path is checked for type only), with the same validation as
    /// [`Self::load`]: the pure part of loading, for fuzzing.
    pub fn parse_with(text: &str, allowed: AllowedSigners) -> Result<Self, SignerConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| SignerConfigError::Toml {
            path: None,
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::validate(raw, allowed)
    }

    /// Builds a configuration from parts, with the same validation as [`Self::load`].
    pub fn from_parts(
        allowed: AllowedSigners,
        roles: BTreeMap<String, Role>,
        thresholds: BTreeMap<String, u32>,
    ) -> Result<Self, SignerConfigError> {
        let raw = RawConfig {
            allowed_signers: PathBuf::new(),
            roles: roles
                .into_iter()
                .map(|(k, v)| (k, v.as_str().to_owned()))
                .collect(),
            thresholds: thresholds
                .into_iter()
                .map(|(k, v)| (k, i64::from(v)))
                .collect(),
        };
        Self::validate(raw, allowed)
    }

    fn validate(raw: RawConfig, allowed: AllowedSigners) -> Result<Self, SignerConfigError> {
        let mut problems = Vec::new();
        let mut roles = BTreeMap::new();
        for (principal, word) in raw.roles {
            let at = format!("roles.{}", quote(&principal));
            let role = match word.parse::<Role>() {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    None
                }
            };
            if principal.is_empty() {
                problems.push(format!("{at}: empty principal"));
            } else if principal.contains(['*', '?', '!', ',']) {
                problems.push(format!(
                    "{at}: a role is given to a principal name, not a pattern (no * ? ! ,)"
                ));
            } else if !allowed
                .entries
                .iter()
                .any(|e| e.matches_principal(&principal))
            {
                problems.push(format!("{at}: no allowed_signers entry has this principal"));
            }
            if let Some(role) = role {
                roles.insert(principal, role);
            }
        }

        // Distinct keys that hold some role.
        let role_keys: BTreeSet<&str> = allowed
            .entries
            .iter()
            .filter(|e| roles.keys().any(|p| e.matches_principal(p)))
            .map(|e| e.fingerprint.as_str())
            .collect();

        let mut thresholds = BTreeMap::new();
        for (op, n) in raw.thresholds {
            let at = format!("thresholds.{}", quote(&op));
            if !is_threshold_name(&op) {
                problems.push(format!(
                    "{at}: operation names are lower-case letters, digits, _ and -"
                ));
            }
            if n < 1 {
                problems.push(format!("{at} = {n}: a threshold is at least 1"));
            } else if let Ok(v) = u32::try_from(n) {
                if usize::try_from(v).unwrap_or(usize::MAX) > role_keys.len() {
                    problems.push(format!(
                        "{at} = {v}: only {} distinct key(s) hold a role, so the operation could never be authorised",
                        role_keys.len()
                    ));
                }
                thresholds.insert(op, v);
            } else {
                problems.push(format!("{at} = {n}: too large"));
            }
        }

        if problems.is_empty() {
            Ok(Self {
                allowed,
                roles,
                thresholds,
            })
        } else {
            Err(SignerConfigError::Invalid {
                path: None,
                problems,
            })
        }
    }

    /// The allowed_signers entry a verification came from, if it is one of ours.
    pub fn entry_of(&self, v: &Verified) -> Option<&SignerEntry> {
        self.allowed
            .entries
            .iter()
            .find(|e| e.line == v.entry_line && e.fingerprint == v.fingerprint)
    }

    /// Every role whose principal name matches the principal pattern-list of the entry
    /// that admitted `v` (empty if `v` did not come from this configuration).
    pub fn roles_of(&self, v: &Verified) -> BTreeSet<Role> {
        let Some(entry) = self.entry_of(v) else {
            return BTreeSet::new();
        };
        self.roles
            .iter()
            .filter(|(principal, _)| entry.matches_principal(principal))
            .map(|(_, role)| *role)
            .collect()
    }

    /// Distinct signer keys operation `op` needs: as configured, else the operation
    /// table's default for it (2 for a `decommission`), else 1.
    pub fn threshold(&self, op: &str) -> u32 {
        self.thresholds
            .get(op)
            .copied()
            .unwrap_or_else(|| default_threshold(op))
    }

    /// [`verify`] against this configuration's allowed signers.
    pub fn verify(
        &self,
        namespace: &str,
        message: &[u8],
        armored_sig: &[u8],
        at: Timestamp,
    ) -> Result<Verified, Rejected> {
        verify(&self.allowed, namespace, message, armored_sig, at)
    }

    /// Verifies each signature independently, in order. Counting distinct keys against
    /// a threshold is the caller's business (see [`Verified::fingerprint`]).
    pub fn verify_all(
        &self,
        namespace: &str,
        message: &[u8],
        sigs: &[Vec<u8>],
        at: Timestamp,
    ) -> Vec<Result<Verified, Rejected>> {
        sigs.iter()
            .map(|s| self.verify(namespace, message, s, at))
            .collect()
    }
}

/// The threshold of `op` where no configuration sets one: the operation table's default
/// for a known operation, 1 for any other name (the ledger's `review`).
pub fn default_threshold(op: &str) -> u32 {
    castellan_core::Operation::from_name(op).map_or(1, |o| o.spec().default_threshold)
}

/// Whether `name` can name a threshold: `[a-z0-9_-]+`.
pub(crate) fn is_threshold_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl SignerConfigError {
    fn with_path(self, file: &Path) -> Self {
        let p = Some(file.to_owned());
        match self {
            Self::Toml { message, .. } => Self::Toml { path: p, message },
            Self::AllowedSigners { source, .. } => Self::AllowedSigners { path: p, source },
            Self::Invalid { problems, .. } => Self::Invalid { path: p, problems },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A threshold signers.toml sets wins, in either direction; unset, the operation
    /// table's default applies (two keys for a decommission), and 1 for other names.
    #[test]
    fn thresholds_fall_back_to_the_operation_table() {
        let config = |t: &[(&str, u32)]| SignerConfig {
            allowed: AllowedSigners::default(),
            roles: BTreeMap::new(),
            thresholds: t.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        };
        let none = config(&[]);
        assert_eq!(none.threshold("decommission"), 2);
        assert_eq!(none.threshold("destroy"), 1);
        assert_eq!(none.threshold("review"), 1);
        let set = config(&[("decommission", 1), ("destroy", 3)]);
        assert_eq!(set.threshold("decommission"), 1);
        assert_eq!(set.threshold("destroy"), 3);
    }
}
