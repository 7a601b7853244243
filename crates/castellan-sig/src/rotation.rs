//! Key rotation, TUF-style: a versioned signer-set document, and the rule by which a new
//! one takes the place of the set in force.
//!
//! # The document
//!
//! One self-contained TOML file, independent of any host, so it can travel through an
//! inbox and be signed as bytes:
//!
//! ```toml
//! version = 2
//!
//! [thresholds]                 # operation -> distinct signer keys needed (default 1)
//! destroy = 2
//! rotate_keys = 2
//!
//! [[key]]
//! principal = "alice@example.com"
//! role = "operational"         # operational | recovery | reviewer
//! public_key = "ssh-ed25519 AAAAC3Nza... alice@laptop"
//! valid_before = "2027-01-01T00:00:00Z"   # optional, as are valid_after and namespaces
//!
//! [[key]]
//! principal = "break-glass"
//! role = "recovery"
//! public_key = "ssh-ed25519 AAAAC3Nza..."
//! namespaces = ["castellan-signers"]      # optional: allowed_signers' namespaces=
//! ```
//!
//! A [`SignerSet`] is what a `signers.toml` and its allowed_signers file say, in one file:
//! [`SignerSet::to_config`] gives the [`SignerConfig`] the gate uses, and
//! [`SignerSet::allowed_signers_text`] the allowed_signers file `ssh-keygen -Y verify`
//! reads. Each key has one principal name (no patterns) and one role; a principal may
//! have several keys, all with the same role. Parsing refuses unknown fields, a document
//! over [`MAX_SIGNER_SET_BYTES`], a version below 1, a key type castellan does not verify,
//! the same public key twice (under one principal or two), a principal given two roles,
//! and a threshold higher than the number of distinct keys able to meet it: keys whose
//! role the operation table permits for that operation and whose `namespaces` admit its
//! signatures. Every set must hold at least `rotate_keys` (default 1) keys able to sign
//! its own replacement, or it could never be replaced. All problems are listed at once.
//!
//! **Version 1.** The agent's existing `signers.toml` (which carries no version) is the
//! set in force at version [`BOOTSTRAP_VERSION`]; [`SignerSet::from_config`] writes it out
//! as a document, and the first rotation is version 2.
//!
//! # Who must sign
//!
//! What is signed is the document's exact bytes, by `ssh-keygen -Y sign -n
//! castellan-signers` ([`SIGNERS_NAMESPACE`], distinct from the ops' `castellan-op`, so
//! neither kind of signature can stand for the other). [`verify_rotation`] accepts a
//! new set when, in this order:
//!
//! 1. the document parses and validates;
//! 2. its version is greater than the version of the set in force (an older or equal
//!    version is never accepted again);
//! 3. at least the in-force set's `rotate_keys` threshold of distinct keys **of the set in
//!    force** signed it, each with a role that may rotate keys (`operational` or
//!    `recovery`: the `rotate_keys` row of the operation table), permitted by its entry's
//!    namespaces and inside its validity window;
//! 4. at least the **new** set's own `rotate_keys` threshold of distinct keys of the new
//!    set signed it, by the same rule applied to the new set.
//!
//! A reviewer key's signature counts for nothing, a key that signed twice counts once,
//! and a signature that does not verify (unknown key, other namespace, expired key,
//! tampered bytes) is set aside; each of these is named when a threshold is not met.
//! Once the agent puts the accepted set in force, a key it no longer lists is simply
//! unknown: its signatures are refused at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use castellan_core::{Operation, RejectReason, Role};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ssh_key::{HashAlg, PublicKey};

use crate::allowed_signers::{AllowedSigners, SignerEntry, parse_public_key, quote, read_limited};
use crate::signers::{SignerConfig, SignerConfigError, is_threshold_name, origin};
use crate::sshsig::{OP_NAMESPACE, Rejected};

/// The namespace signer-set documents are signed under (`ssh-keygen -Y sign -n
/// castellan-signers`).
pub const SIGNERS_NAMESPACE: &str = "castellan-signers";

/// Largest signer-set document read or parsed.
pub const MAX_SIGNER_SET_BYTES: usize = 256 * 1024;

/// The version of the set in force before any rotation: the agent's `signers.toml`.
pub const BOOTSTRAP_VERSION: u64 = 1;

/// Longest principal name in a signer set.
pub const MAX_PRINCIPAL_CHARS: usize = 256;

/// The name of the threshold (and the operation) a rotation is counted against.
pub fn rotate_keys() -> &'static str {
    Operation::RotateKeys.as_str()
}

/// The roles that may sign a rotation (the `rotate_keys` row of the operation table).
pub fn rotate_roles() -> &'static [Role] {
    Operation::RotateKeys.spec().roles
}

/// A validated, versioned signer set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerSet {
    /// The version, at least 1; a new set must have a greater one than the set in force.
    pub version: u64,
    /// The keys, in document order.
    pub keys: Vec<SetKey>,
    /// Operation -> distinct signer keys required (absent: 1).
    pub thresholds: BTreeMap<String, u32>,
}

/// One key of a signer set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetKey {
    /// The principal name the key signs as (a name, not a pattern).
    pub principal: String,
    /// What the key may authorise.
    pub role: Role,
    /// The public key (with its comment, if the line had one).
    pub public_key: PublicKey,
    /// The key's `SHA256:` fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The namespace patterns the key may sign under (allowed_signers' `namespaces=`);
    /// `None` is any.
    pub namespaces: Option<Vec<String>>,
    /// The key is not valid before this instant.
    pub valid_after: Option<Timestamp>,
    /// The key is not valid at or after this instant.
    pub valid_before: Option<Timestamp>,
}

/// Why a signer-set document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerSetError {
    /// The file could not be read.
    #[error("{}: cannot read signer set: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong (I/O error, too large, not UTF-8).
        reason: String,
    },
    /// Larger than [`MAX_SIGNER_SET_BYTES`].
    #[error("{}signer set is {size} bytes, more than the limit of {limit}", origin(path.as_deref()))]
    TooLarge {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8.
    #[error("{}signer set: line {line}: not valid utf-8", origin(path.as_deref()))]
    NotUtf8 {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The first line with invalid bytes.
        line: usize,
    },
    /// Not valid TOML, or an unknown, missing or mistyped field.
    #[error("{}not a signer set: {message}", origin(path.as_deref()))]
    Toml {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The TOML error, with its line and column.
        message: String,
    },
    /// Validation problems, every one listed.
    #[error("{}invalid signer set:\n  {}", origin(path.as_deref()), problems.join("\n  "))]
    Invalid {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// One message per problem.
        problems: Vec<String>,
    },
}

impl SignerSetError {
    fn invalid(problems: Vec<String>) -> Self {
        Self::Invalid {
            path: None,
            problems,
        }
    }

    /// The same error, naming the file it came from.
    pub fn with_path(self, file: &Path) -> Self {
        let p = Some(file.to_owned());
        match self {
            Self::TooLarge { size, limit, .. } => Self::TooLarge {
                path: p,
                size,
                limit,
            },
            Self::NotUtf8 { line, .. } => Self::NotUtf8 { path: p, line },
            Self::Toml { message, .. } => Self::Toml { path: p, message },
            Self::Invalid { problems, .. } => Self::Invalid { path: p, problems },
            other @ Self::Read { .. } => other,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    version: i64,
    #[serde(default)]
    thresholds: BTreeMap<String, i64>,
    #[serde(default, rename = "key")]
    keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    principal: String,
    role: String,
    public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_before: Option<String>,
}

impl SetKey {
    /// A key from its principal, role and OpenSSH public key line (`TYPE BASE64
    /// [COMMENT]`, what a `.pub` file holds), checked as a document's keys are; valid in
    /// every namespace and at all times.
    pub fn new(principal: &str, role: Role, public_key: &str) -> Result<Self, SignerSetError> {
        let raw = RawKey {
            principal: principal.to_owned(),
            role: role.as_str().to_owned(),
            public_key: public_key.to_owned(),
            namespaces: None,
            valid_after: None,
            valid_before: None,
        };
        let mut problems = Vec::new();
        let key = parse_key(raw, "key", &mut problems);
        match key {
            Some(k) if problems.is_empty() => Ok(k),
            _ => Err(SignerSetError::invalid(problems)),
        }
    }

    /// The public key as one OpenSSH line, `TYPE BASE64 [COMMENT]`.
    pub fn public_key_line(&self) -> String {
        // Unreachable for a parsed key; keep the line recognisably broken.
        self.public_key
            .to_openssh()
            .unwrap_or_else(|_| "invalid-key".to_owned())
    }

    /// Whether the key may sign under namespace `ns` (always without `namespaces`).
    pub fn permits_namespace(&self, ns: &str) -> bool {
        self.entry(0).permits_namespace(ns)
    }

    /// The allowed_signers entry for this key, at position `line`.
    fn entry(&self, line: usize) -> SignerEntry {
        SignerEntry {
            principals: vec![self.principal.clone()],
            namespaces: self.namespaces.clone(),
            valid_after: self.valid_after,
            valid_before: self.valid_before,
            key: self.public_key.clone(),
            fingerprint: self.fingerprint.clone(),
            line,
        }
    }

    fn to_raw(&self) -> RawKey {
        RawKey {
            principal: self.principal.clone(),
            role: self.role.as_str().to_owned(),
            public_key: self.public_key_line(),
            namespaces: self.namespaces.clone(),
            valid_after: self.valid_after.map(|t| t.to_string()),
            valid_before: self.valid_before.map(|t| t.to_string()),
        }
    }
}

/// Checks one raw key, pushing its problems (prefixed by `at`); the key when it has none.
fn parse_key(raw: RawKey, at: &str, problems: &mut Vec<String>) -> Option<SetKey> {
    let before = problems.len();
    let principal = raw.principal;
    if principal.is_empty() {
        problems.push(format!("{at}: empty principal"));
    } else if principal.chars().count() > MAX_PRINCIPAL_CHARS {
        problems.push(format!(
            "{at}: principal {} is longer than {MAX_PRINCIPAL_CHARS} characters",
            quote(&principal)
        ));
    } else if principal.contains(['*', '?', '!', ',']) {
        problems.push(format!(
            "{at}: principal {}: a key is given to a principal name, not a pattern (no * ? ! ,)",
            quote(&principal)
        ));
    } else if principal
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        || principal.starts_with('#')
    {
        problems.push(format!(
            "{at}: principal {}: no blanks, quotes or control characters, and no leading #",
            quote(&principal)
        ));
    }
    let role = raw
        .role
        .parse::<Role>()
        .map_err(|e| problems.push(format!("{at}: {e}")))
        .ok();
    let public_key = if raw.public_key.chars().any(char::is_control) {
        problems.push(format!(
            "{at}: public_key holds a control character (one line: TYPE BASE64 [COMMENT])"
        ));
        None
    } else {
        parse_public_key(raw.public_key.trim_matches([' ', '\t']))
            .map_err(|e| problems.push(format!("{at}: public_key: {e}")))
            .ok()
    };
    let namespaces = match raw.namespaces {
        None => None,
        Some(list) if list.is_empty() => {
            problems.push(format!(
                "{at}: namespaces = []: an empty list permits nothing (leave it out to permit every namespace)"
            ));
            None
        }
        Some(list) => {
            for ns in &list {
                if ns.is_empty()
                    || ns == "!"
                    || ns
                        .chars()
                        .any(|c| c == ',' || c == '"' || c.is_whitespace() || c.is_control())
                {
                    problems.push(format!(
                        "{at}: namespace pattern {}: not empty, no commas, quotes or blanks",
                        quote(ns)
                    ));
                }
            }
            Some(list)
        }
    };
    let mut time = |field: &str, value: Option<String>| -> Option<Timestamp> {
        let value = value?;
        match value.parse::<Timestamp>() {
            Ok(t) if t.subsec_nanosecond() != 0 => {
                problems.push(format!(
                    "{at}: {field} = {}: whole seconds only",
                    quote(&value)
                ));
                None
            }
            Ok(t) if t <= Timestamp::UNIX_EPOCH => {
                problems.push(format!(
                    "{at}: {field} = {}: must be after 1970-01-01T00:00:00Z",
                    quote(&value)
                ));
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!(
                    "{at}: {field} = {}: not an RFC 3339 time such as 2027-01-01T00:00:00Z: {e}",
                    quote(&value)
                ));
                None
            }
        }
    };
    let valid_after = time("valid_after", raw.valid_after);
    let valid_before = time("valid_before", raw.valid_before);
    if let (Some(a), Some(b)) = (valid_after, valid_before)
        && b <= a
    {
        problems.push(format!("{at}: valid_before is not after valid_after"));
    }
    if problems.len() != before {
        return None;
    }
    let (role, public_key) = (role?, public_key?);
    let fingerprint = public_key.fingerprint(HashAlg::Sha256).to_string();
    Some(SetKey {
        principal,
        role,
        public_key,
        fingerprint,
        namespaces,
        valid_after,
        valid_before,
    })
}

/// Which roles may meet threshold `name`, and the namespace its signatures are made under
/// (`None`: a threshold the operation table does not know, such as the ledger's
/// `review`, which any key holding a role may count towards).
fn threshold_scope(name: &str) -> (&'static [Role], Option<&'static str>) {
    match Operation::from_name(name) {
        Some(Operation::RotateKeys) => (rotate_roles(), Some(SIGNERS_NAMESPACE)),
        Some(op) if op.signable() => (op.spec().roles, Some(OP_NAMESPACE)),
        _ => (&Role::ALL, None),
    }
}

fn join_roles(roles: &[Role]) -> String {
    let words: Vec<&str> = roles.iter().map(Role::as_str).collect();
    match words.as_slice() {
        [] => "none".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl SignerSet {
    /// Parses and validates a signer-set document (at most [`MAX_SIGNER_SET_BYTES`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, SignerSetError> {
        if bytes.len() > MAX_SIGNER_SET_BYTES {
            return Err(SignerSetError::TooLarge {
                path: None,
                size: bytes.len(),
                limit: MAX_SIGNER_SET_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let valid = e.valid_up_to();
            let line = 1 + bytes[..valid].iter().filter(|&&b| b == b'\n').count();
            SignerSetError::NotUtf8 { path: None, line }
        })?;
        let raw: RawSet = toml::from_str(text).map_err(|e| SignerSetError::Toml {
            path: None,
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_raw(raw)
    }

    /// Reads and parses a signer-set document; errors name the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SignerSetError> {
        let path = path.as_ref();
        let limit = MAX_SIGNER_SET_BYTES as u64;
        let text = read_limited(path, limit).map_err(|p| SignerSetError::Read {
            path: path.to_owned(),
            reason: p.to_string(),
        })?;
        Self::parse(text.as_bytes()).map_err(|e| e.with_path(path))
    }

    /// Checks a set built in code (an edited one, say) as [`Self::parse`] checks a
    /// document.
    pub fn validate(&self) -> Result<Self, SignerSetError> {
        Self::from_raw(self.to_raw())
    }

    fn to_raw(&self) -> RawSet {
        RawSet {
            version: i64::try_from(self.version).unwrap_or(i64::MAX),
            thresholds: self
                .thresholds
                .iter()
                .map(|(k, v)| (k.clone(), i64::from(*v)))
                .collect(),
            keys: self.keys.iter().map(SetKey::to_raw).collect(),
        }
    }

    fn from_raw(raw: RawSet) -> Result<Self, SignerSetError> {
        let mut problems = Vec::new();
        let version = match u64::try_from(raw.version) {
            Ok(v) if v >= 1 => v,
            _ => {
                problems.push(format!(
                    "version = {}: a signer set's version is a whole number from 1",
                    raw.version
                ));
                0
            }
        };
        if raw.keys.is_empty() {
            problems.push("no [[key]]: a signer set holds at least one key".to_owned());
        }

        let mut keys: Vec<SetKey> = Vec::new();
        let mut refused_keys = false;
        // Fingerprint -> the first key (1-based) with it; principal -> its role and key.
        let mut by_fingerprint: BTreeMap<String, (usize, String)> = BTreeMap::new();
        let mut by_principal: BTreeMap<String, (Role, usize)> = BTreeMap::new();
        for (index, raw_key) in raw.keys.into_iter().enumerate() {
            let n = index + 1;
            let at = format!("key #{n} ({})", quote(&raw_key.principal));
            let Some(key) = parse_key(raw_key, &at, &mut problems) else {
                refused_keys = true;
                continue;
            };
            if let Some((first, who)) = by_fingerprint.get(&key.fingerprint) {
                problems.push(format!(
                    "{at}: the same public key as key #{first} ({}), {}: a key appears once",
                    quote(who),
                    key.fingerprint
                ));
                refused_keys = true;
                continue;
            }
            if let Some((role, first)) = by_principal.get(&key.principal)
                && *role != key.role
            {
                problems.push(format!(
                    "{at}: role {} but key #{first} gives this principal role {role}: a principal has one role",
                    key.role
                ));
                refused_keys = true;
                continue;
            }
            by_fingerprint.insert(key.fingerprint.clone(), (n, key.principal.clone()));
            by_principal
                .entry(key.principal.clone())
                .or_insert((key.role, n));
            keys.push(key);
        }

        let mut thresholds = BTreeMap::new();
        for (name, value) in raw.thresholds {
            let at = format!("thresholds.{}", quote(&name));
            if !is_threshold_name(&name) {
                problems.push(format!(
                    "{at}: operation names are lower-case letters, digits, _ and -"
                ));
            }
            if value < 1 {
                problems.push(format!("{at} = {value}: a threshold is at least 1"));
            } else if let Ok(v) = u32::try_from(value) {
                thresholds.insert(name, v);
            } else {
                problems.push(format!("{at} = {value}: too large"));
            }
        }

        // Whether each threshold can be met, only once every key was read (a refused key
        // would make the count misleading). rotate_keys is checked even when absent: a
        // set nobody can replace is a dead end.
        if !refused_keys && !keys.is_empty() {
            let mut names: BTreeSet<&str> = thresholds.keys().map(String::as_str).collect();
            names.insert(rotate_keys());
            for name in names {
                let needed = thresholds
                    .get(name)
                    .copied()
                    .unwrap_or_else(|| crate::signers::default_threshold(name));
                let (roles, ns) = threshold_scope(name);
                let able: BTreeSet<&str> = keys
                    .iter()
                    .filter(|k| roles.contains(&k.role))
                    .filter(|k| ns.is_none_or(|ns| k.permits_namespace(ns)))
                    .map(|k| k.fingerprint.as_str())
                    .collect();
                if usize::try_from(needed).unwrap_or(usize::MAX) > able.len() {
                    let value = if thresholds.contains_key(name) {
                        format!("thresholds.{name} = {needed}")
                    } else {
                        format!("thresholds.{name} (absent: {needed})")
                    };
                    let scope = match ns {
                        Some(ns) => format!(
                            "with role {} whose namespaces permit {ns}",
                            join_roles(roles)
                        ),
                        None => "holding a role".to_owned(),
                    };
                    let consequence = if name == rotate_keys() {
                        "so this set could never be replaced"
                    } else {
                        "so the operation could never be authorised"
                    };
                    problems.push(format!(
                        "{value}: only {} distinct key(s) {scope}, {consequence}",
                        able.len()
                    ));
                }
            }
        }

        if !problems.is_empty() {
            return Err(SignerSetError::invalid(problems));
        }
        let set = Self {
            version,
            keys,
            thresholds,
        };
        // Whatever the gate's own configuration refuses is refused here too.
        set.to_config()?;
        Ok(set)
    }

    /// The document: TOML that [`Self::parse`] reads back as this set. Its exact bytes are
    /// what is signed.
    pub fn render(&self) -> Result<String, SignerSetError> {
        toml::to_string(&self.to_raw()).map_err(|e| SignerSetError::Toml {
            path: None,
            message: e.to_string(),
        })
    }

    /// The signer configuration the gate uses, exactly as a `signers.toml` with the same
    /// keys, roles and thresholds would give it. The allowed_signers entries' "line" is
    /// the key's position in the document (key #1 is line 1).
    pub fn to_config(&self) -> Result<SignerConfig, SignerSetError> {
        let allowed = self.allowed_signers();
        let roles = self
            .keys
            .iter()
            .map(|k| (k.principal.clone(), k.role))
            .collect();
        SignerConfig::from_parts(allowed, roles, self.thresholds.clone()).map_err(|e| match e {
            SignerConfigError::Invalid { problems, .. } => SignerSetError::invalid(problems),
            other => SignerSetError::invalid(vec![other.to_string()]),
        })
    }

    fn allowed_signers(&self) -> AllowedSigners {
        AllowedSigners {
            entries: self
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| k.entry(i + 1))
                .collect(),
        }
    }

    /// The set's keys as an OpenSSH allowed_signers file (one line per key, in order), so
    /// that `ssh-keygen -Y verify` can check the same signatures.
    pub fn allowed_signers_text(&self) -> String {
        self.allowed_signers().to_text()
    }

    /// The threshold for `op`: as set, else the operation table's default (see
    /// [`crate::signers::default_threshold`]).
    pub fn threshold(&self, op: &str) -> u32 {
        self.thresholds
            .get(op)
            .copied()
            .unwrap_or_else(|| crate::signers::default_threshold(op))
    }

    /// Writes a signer configuration out as a signer set of `version`: how the agent's
    /// `signers.toml` becomes version [`BOOTSTRAP_VERSION`]. Each allowed_signers entry
    /// becomes one key under the `[roles]` principal its pattern-list matches; an entry
    /// that matches none holds no role, authorises nothing, and is left out. Refused
    /// (every problem listed) when an entry matches the principals of several roles, when
    /// one key is listed twice, or when the result is not a valid set (a threshold no key
    /// able to sign could meet, say: the message says which).
    pub fn from_config(config: &SignerConfig, version: u64) -> Result<Self, SignerSetError> {
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        for entry in &config.allowed.entries {
            let held: Vec<(&String, &Role)> = config
                .roles
                .iter()
                .filter(|(p, _)| entry.matches_principal(p))
                .collect();
            match held.as_slice() {
                [] => {}
                [(principal, role)] => keys.push(SetKey {
                    principal: (*principal).clone(),
                    role: **role,
                    public_key: entry.key.clone(),
                    fingerprint: entry.fingerprint.clone(),
                    namespaces: entry.namespaces.clone(),
                    valid_after: entry.valid_after,
                    valid_before: entry.valid_before,
                }),
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|(p, r)| format!("{} ({r})", quote(p)))
                        .collect();
                    problems.push(format!(
                        "allowed_signers line {} ({}) matches the role principals {}: in a signer set a key has one principal and one role",
                        entry.line,
                        entry.fingerprint,
                        names.join(", ")
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(SignerSetError::invalid(problems));
        }
        Self {
            version,
            keys,
            thresholds: config.thresholds.clone(),
        }
        .validate()
    }
}

/// What a file holding the set in force is: the agent's `signers.toml` (version
/// [`BOOTSTRAP_VERSION`]) or a signer-set document put in force by a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetFileKind {
    /// A `signers.toml`: it names an `allowed_signers` file.
    SignersToml,
    /// A signer-set document (or not TOML at all: [`SignerSet::parse`] then says why).
    SignerSet,
}

impl SetFileKind {
    /// Tells the two apart by their contents: a `signers.toml` has an `allowed_signers`
    /// key, a signer set never does.
    pub fn of(text: &str) -> Self {
        match toml::from_str::<toml::Table>(text) {
            Ok(t) if t.contains_key("allowed_signers") => SetFileKind::SignersToml,
            _ => SetFileKind::SignerSet,
        }
    }
}

impl fmt::Display for SetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.principal, self.role, self.fingerprint
        )
    }
}

/// Whether `bytes` are meant as a signer-set document rather than a signed op (both
/// arrive through an agent's inbox): TOML with `[[key]]` tables and no `op`. Whether it is
/// a valid one is [`SignerSet::parse`]'s to say.
pub fn is_signer_set_document(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    match toml::from_str::<toml::Table>(text) {
        Ok(t) => t.contains_key("key") && !t.contains_key("op"),
        Err(_) => false,
    }
}

/// The SHA-256 of a document's bytes, lower-case hex: its identity in the audit log.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---- signatures -------------------------------------------------------------------------

/// The two groups of keys that must sign a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignerGroup {
    /// The keys of the set in force.
    InForce,
    /// The keys of the proposed set.
    New,
}

impl SignerGroup {
    /// `the set in force` / `the new set`.
    pub fn describe(&self) -> &'static str {
        match self {
            SignerGroup::InForce => "the set in force",
            SignerGroup::New => "the new set",
        }
    }

    /// The snake_case word (`in_force`, `new`).
    pub fn as_str(&self) -> &'static str {
        match self {
            SignerGroup::InForce => "in_force",
            SignerGroup::New => "new",
        }
    }
}

impl fmt::Display for SignerGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How one signature over a signer-set document fared against one group's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCheck {
    /// Verified, by a key whose role may rotate keys: counts towards the threshold.
    Counted {
        /// The key's `SHA256:` fingerprint.
        fingerprint: String,
        /// The principals of the entry that admitted it.
        principals: Vec<String>,
        /// The roles it holds.
        roles: BTreeSet<Role>,
    },
    /// Verified, by a key that already counted: a key counts once.
    Repeated {
        /// The key's `SHA256:` fingerprint.
        fingerprint: String,
    },
    /// Verified, by a key none of whose roles may rotate keys (a reviewer, or a key with
    /// no role): counts for nothing.
    WrongRole {
        /// The key's `SHA256:` fingerprint.
        fingerprint: String,
        /// The principals of the entry that admitted it.
        principals: Vec<String>,
        /// The roles it holds (perhaps none).
        roles: BTreeSet<Role>,
    },
    /// Refused: not a key of this group, a signature that does not verify, another
    /// namespace, a key outside its validity window.
    Rejected(Rejected),
}

impl GroupCheck {
    /// Whether the signature counts towards the group's threshold.
    pub fn counts(&self) -> bool {
        matches!(self, GroupCheck::Counted { .. })
    }

    /// Why the signature does not count, in words (`None` when it counts).
    pub fn why_not(&self) -> Option<String> {
        match self {
            GroupCheck::Counted { .. } => None,
            GroupCheck::Repeated { fingerprint } => {
                Some(format!("by {fingerprint} again: a key counts once"))
            }
            GroupCheck::WrongRole {
                fingerprint,
                principals,
                roles,
            } => {
                let held = if roles.is_empty() {
                    "holds no role".to_owned()
                } else {
                    let r: Vec<Role> = roles.iter().copied().collect();
                    format!("holds role {}", join_roles(&r).replace(" or ", " and "))
                };
                Some(format!(
                    "by {fingerprint} ({}) counts for nothing: it {held}, and only {} may sign a rotation",
                    principals.join(","),
                    join_roles(rotate_roles())
                ))
            }
            GroupCheck::Rejected(r) => Some(format!("refused: {r}")),
        }
    }
}

/// How the signatures over a signer-set document fared against one group's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// Which group.
    pub group: SignerGroup,
    /// The group's set version.
    pub version: u64,
    /// Its `rotate_keys` threshold: distinct keys needed.
    pub needed: u32,
    /// How many distinct keys of the group could sign a rotation at all (a role that may
    /// rotate, a namespace that permits it; validity windows aside).
    pub able: usize,
    /// One check per signature, in the order given.
    pub checks: Vec<GroupCheck>,
}

impl GroupReport {
    /// Checks each signature in `sigs` over `doc` against `config`, the keys of `group`
    /// (at `version`), at time `at`.
    pub fn check(
        group: SignerGroup,
        config: &SignerConfig,
        version: u64,
        doc: &[u8],
        sigs: &[Vec<u8>],
        at: Timestamp,
    ) -> Self {
        let allowed = rotate_roles();
        let mut counted: BTreeSet<String> = BTreeSet::new();
        let checks = sigs
            .iter()
            .map(|sig| match config.verify(SIGNERS_NAMESPACE, doc, sig, at) {
                Err(r) => GroupCheck::Rejected(r),
                Ok(v) => {
                    let roles = config.roles_of(&v);
                    if !roles.iter().any(|r| allowed.contains(r)) {
                        GroupCheck::WrongRole {
                            fingerprint: v.fingerprint,
                            principals: v.principals,
                            roles,
                        }
                    } else if counted.insert(v.fingerprint.clone()) {
                        GroupCheck::Counted {
                            fingerprint: v.fingerprint,
                            principals: v.principals,
                            roles,
                        }
                    } else {
                        GroupCheck::Repeated {
                            fingerprint: v.fingerprint,
                        }
                    }
                }
            })
            .collect();
        let able: BTreeSet<&str> = config
            .allowed
            .entries
            .iter()
            .filter(|e| e.permits_namespace(SIGNERS_NAMESPACE))
            .filter(|e| {
                config
                    .roles
                    .iter()
                    .any(|(p, r)| allowed.contains(r) && e.matches_principal(p))
            })
            .map(|e| e.fingerprint.as_str())
            .collect();
        Self {
            group,
            version,
            needed: config.threshold(rotate_keys()).max(1),
            able: able.len(),
            checks,
        }
    }

    /// The fingerprints of the keys that counted, sorted.
    pub fn signers(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .checks
            .iter()
            .filter_map(|c| match c {
                GroupCheck::Counted { fingerprint, .. } => Some(fingerprint),
                _ => None,
            })
            .collect();
        set.into_iter().cloned().collect()
    }

    /// How many distinct keys counted.
    pub fn counted(&self) -> usize {
        self.checks.iter().filter(|c| c.counts()).count()
    }

    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.counted() as u64 >= u64::from(self.needed)
    }

    /// The reason to record when the threshold is not met, as the gate would give it: the
    /// first signature's own reason when none verified, `role_denied` when only keys
    /// with the wrong role signed, `threshold_not_met` otherwise.
    pub fn reason(&self) -> RejectReason {
        if self.counted() > 0 {
            return RejectReason::ThresholdNotMet;
        }
        if self
            .checks
            .iter()
            .any(|c| matches!(c, GroupCheck::WrongRole { .. }))
        {
            return RejectReason::RoleDenied;
        }
        match self.checks.first() {
            Some(GroupCheck::Rejected(r)) => r.reason,
            _ => RejectReason::ThresholdNotMet,
        }
    }

    /// Why the threshold is not met, naming every signature that did not count.
    pub fn shortfall(&self) -> String {
        let mut s = format!(
            "too few signatures by {} (version {}): {} needs {} distinct key(s) with role {}, got {} of {}",
            self.group,
            self.version,
            rotate_keys(),
            self.needed,
            join_roles(rotate_roles()),
            self.counted(),
            self.needed
        );
        if usize::try_from(self.needed).unwrap_or(usize::MAX) > self.able {
            s.push_str(&format!(" (only {} such key(s) in the set)", self.able));
        }
        for (i, check) in self.checks.iter().enumerate() {
            if let Some(why) = check.why_not() {
                s.push_str(&format!("; signature {}: {why}", i + 1));
            }
        }
        s
    }
}

// ---- the decision -----------------------------------------------------------------------

/// A key as a signer configuration holds it, for comparing two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    /// The key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// The key's algorithm (`ssh-ed25519`, ...).
    pub key_type: String,
    /// The principal patterns of its allowed_signers entries.
    pub principals: Vec<String>,
    /// The roles it holds.
    pub roles: BTreeSet<Role>,
    /// Its namespace patterns (`None`: any).
    pub namespaces: Option<Vec<String>>,
    /// Not valid before.
    pub valid_after: Option<Timestamp>,
    /// Not valid at or after.
    pub valid_before: Option<Timestamp>,
}

impl KeyView {
    /// Every key of `config`, by fingerprint. A key on several allowed_signers lines is
    /// one view: its principals and roles joined, any namespace if one line permits any,
    /// the first line's validity window.
    pub fn all(config: &SignerConfig) -> BTreeMap<String, KeyView> {
        let mut out: BTreeMap<String, KeyView> = BTreeMap::new();
        for e in &config.allowed.entries {
            let roles: BTreeSet<Role> = config
                .roles
                .iter()
                .filter(|(p, _)| e.matches_principal(p))
                .map(|(_, r)| *r)
                .collect();
            match out.get_mut(&e.fingerprint) {
                Some(v) => {
                    for p in &e.principals {
                        if !v.principals.contains(p) {
                            v.principals.push(p.clone());
                        }
                    }
                    v.roles.extend(roles);
                    v.namespaces = match (v.namespaces.take(), &e.namespaces) {
                        (Some(mut a), Some(b)) => {
                            for ns in b {
                                if !a.contains(ns) {
                                    a.push(ns.clone());
                                }
                            }
                            Some(a)
                        }
                        _ => None,
                    };
                }
                None => {
                    out.insert(
                        e.fingerprint.clone(),
                        KeyView {
                            fingerprint: e.fingerprint.clone(),
                            key_type: e.key.algorithm().to_string(),
                            principals: e.principals.clone(),
                            roles,
                            namespaces: e.namespaces.clone(),
                            valid_after: e.valid_after,
                            valid_before: e.valid_before,
                        },
                    );
                }
            }
        }
        out
    }
}

/// What changes from one signer configuration to another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetDiff {
    /// Keys only the new configuration holds.
    pub added: Vec<KeyView>,
    /// Keys only the old configuration holds: refused as soon as the new one is in force.
    pub removed: Vec<KeyView>,
    /// Keys both hold, with another principal, role, namespace or validity: (old, new).
    pub changed: Vec<(KeyView, KeyView)>,
    /// Thresholds whose value changes: (name, old, new), absent ones counted as 1.
    pub thresholds: Vec<(String, u32, u32)>,
}

impl SetDiff {
    /// The changes from `old` to `new`.
    pub fn between(old: &SignerConfig, new: &SignerConfig) -> Self {
        let a = KeyView::all(old);
        let b = KeyView::all(new);
        let mut diff = SetDiff::default();
        for (fp, view) in &b {
            match a.get(fp) {
                None => diff.added.push(view.clone()),
                Some(before) if before != view => diff.changed.push((before.clone(), view.clone())),
                Some(_) => {}
            }
        }
        for (fp, view) in &a {
            if !b.contains_key(fp) {
                diff.removed.push(view.clone());
            }
        }
        let names: BTreeSet<&String> = old.thresholds.keys().chain(new.thresholds.keys()).collect();
        for name in names {
            let (x, y) = (old.threshold(name), new.threshold(name));
            if x != y {
                diff.thresholds.push((name.clone(), x, y));
            }
        }
        diff
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.thresholds.is_empty()
    }
}

/// A rotation that passed every check: what the agent puts in force and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRotation {
    /// The new set.
    pub set: SignerSet,
    /// The new set as the gate uses it.
    pub config: SignerConfig,
    /// The new set's version.
    pub version: u64,
    /// The version it replaces.
    pub replaces: u64,
    /// The document's exact bytes (what was signed; what to keep).
    pub bytes: Vec<u8>,
    /// SHA-256 of those bytes, lower-case hex.
    pub digest: String,
    /// The fingerprints of the set in force's keys that counted, sorted.
    pub in_force_signers: Vec<String>,
    /// The fingerprints of the new set's keys that counted, sorted.
    pub new_signers: Vec<String>,
    /// What changes from the set in force.
    pub diff: SetDiff,
}

/// Why a rotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The document is not a valid signer set.
    #[error(transparent)]
    Malformed(#[from] SignerSetError),
    /// Its version is not greater than the set in force's.
    #[error("version {version} is not newer than the set in force, version {in_force}")]
    NotNewer {
        /// The document's version.
        version: u64,
        /// The version of the set in force.
        in_force: u64,
    },
    /// No signature was offered at all.
    #[error(
        "the signer set (version {version}) is not signed: it needs {in_force_needed} signature(s) by the set in force and {new_needed} by the new set (namespace {SIGNERS_NAMESPACE})"
    )]
    Unsigned {
        /// The document's version.
        version: u64,
        /// The set in force's `rotate_keys` threshold.
        in_force_needed: u32,
        /// The new set's `rotate_keys` threshold.
        new_needed: u32,
    },
    /// Too few distinct keys of the set in force that may rotate keys signed it.
    #[error("{}", .0.shortfall())]
    TooFewInForce(GroupReport),
    /// Too few distinct keys of the new set that may rotate keys signed it.
    #[error("{}", .0.shortfall())]
    TooFewNew(GroupReport),
}

impl RotationError {
    /// The reason word to record, as the gate uses it: `bad_format` for a malformed or
    /// unsigned document, `replayed` for an old version, and for a threshold not met the
    /// group's [`GroupReport::reason`].
    pub fn reason(&self) -> RejectReason {
        match self {
            RotationError::Malformed(_) | RotationError::Unsigned { .. } => RejectReason::BadFormat,
            RotationError::NotNewer { .. } => RejectReason::Replayed,
            RotationError::TooFewInForce(r) | RotationError::TooFewNew(r) => r.reason(),
        }
    }
}

/// Decides whether the signer set in `doc`, with the armored signatures `sigs`, replaces
/// the set in force (`in_force`, at `in_force_version`) at time `at`. See the module
/// documentation for the rule; the checks run in that order and the first failure is the
/// error. Pure: nothing is read or written.
pub fn verify_rotation(
    in_force: &SignerConfig,
    in_force_version: u64,
    doc: &[u8],
    sigs: &[Vec<u8>],
    at: Timestamp,
) -> Result<AcceptedRotation, RotationError> {
    let set = SignerSet::parse(doc)?;
    if set.version <= in_force_version {
        return Err(RotationError::NotNewer {
            version: set.version,
            in_force: in_force_version,
        });
    }
    let config = set.to_config()?;
    if sigs.is_empty() {
        return Err(RotationError::Unsigned {
            version: set.version,
            in_force_needed: in_force.threshold(rotate_keys()).max(1),
            new_needed: config.threshold(rotate_keys()).max(1),
        });
    }
    let old = GroupReport::check(
        SignerGroup::InForce,
        in_force,
        in_force_version,
        doc,
        sigs,
        at,
    );
    if !old.met() {
        return Err(RotationError::TooFewInForce(old));
    }
    let new = GroupReport::check(SignerGroup::New, &config, set.version, doc, sigs, at);
    if !new.met() {
        return Err(RotationError::TooFewNew(new));
    }
    Ok(AcceptedRotation {
        version: set.version,
        replaces: in_force_version,
        bytes: doc.to_vec(),
        digest: digest(doc),
        in_force_signers: old.signers(),
        new_signers: new.signers(),
        diff: SetDiff::between(in_force, &config),
        set,
        config,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ssh_key::private::Ed25519Keypair;
    use ssh_key::{LineEnding, PrivateKey};

    fn private(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn public(seed: u8) -> String {
        private(seed).public_key().to_openssh().unwrap()
    }

    fn fingerprint(seed: u8) -> String {
        private(seed)
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    fn sign_ns(seed: u8, ns: &str, msg: &[u8]) -> Vec<u8> {
        private(seed)
            .sign(ns, HashAlg::Sha512, msg)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap()
            .into_bytes()
    }

    fn sign(seed: u8, msg: &[u8]) -> Vec<u8> {
        sign_ns(seed, SIGNERS_NAMESPACE, msg)
    }

    /// A document: `keys` as (principal, role, seed), then extra TOML.
    fn doc(version: i64, keys: &[(&str, &str, u8)], extra: &str) -> String {
        let mut s = format!("version = {version}\n{extra}\n");
        for (p, r, seed) in keys {
            s.push_str(&format!(
                "\n[[key]]\nprincipal = \"{p}\"\nrole = \"{r}\"\npublic_key = \"{}\"\n",
                public(*seed)
            ));
        }
        s
    }

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn parses_a_document() {
        let text = format!(
            "version = 3\n\n[thresholds]\ndestroy = 2\nrotate_keys = 2\n\n\
             [[key]]\nprincipal = \"alice@example.com\"\nrole = \"operational\"\npublic_key = \"{} alice laptop\"\n\
             valid_before = \"2027-01-01T00:00:00Z\"\n\n\
             [[key]]\nprincipal = \"bob@example.com\"\nrole = \"operational\"\npublic_key = \"{}\"\n\n\
             [[key]]\nprincipal = \"break-glass\"\nrole = \"recovery\"\npublic_key = \"{}\"\n\
             namespaces = [\"castellan-signers\"]\n",
            public(1),
            public(2),
            public(3)
        );
        let set = SignerSet::parse(text.as_bytes()).unwrap();
        assert_eq!(set.version, 3);
        assert_eq!(set.keys.len(), 3);
        assert_eq!(set.keys[0].public_key.comment(), "alice laptop");
        assert_eq!(set.keys[0].fingerprint, fingerprint(1));
        assert_eq!(
            set.keys[0].valid_before,
            Some("2027-01-01T00:00:00Z".parse().unwrap())
        );
        assert!(set.keys[2].permits_namespace(SIGNERS_NAMESPACE));
        assert!(!set.keys[2].permits_namespace(OP_NAMESPACE));
        assert_eq!(set.threshold("destroy"), 2);
        assert_eq!(set.threshold("remove_volume"), 1);

        // The gate's view: the same keys, roles and thresholds.
        let config = set.to_config().unwrap();
        assert_eq!(config.allowed.entries.len(), 3);
        assert_eq!(config.allowed.entries[2].line, 3);
        assert_eq!(config.roles.get("break-glass"), Some(&Role::Recovery));
        assert_eq!(config.threshold("destroy"), 2);
        let text = set.allowed_signers_text();
        assert!(
            text.starts_with("alice@example.com valid-before=\"20270101000000Z\" ssh-ed25519 "),
            "{text}"
        );
        assert_eq!(
            AllowedSigners::parse(&text).unwrap().entries.len(),
            3,
            "{text}"
        );

        // Rendering gives a document that reads back as the same set.
        let rendered = set.render().unwrap();
        assert_eq!(SignerSet::parse(rendered.as_bytes()).unwrap(), set);
        assert_eq!(set.validate().unwrap(), set);
    }

    #[test]
    fn refusals_list_every_problem() {
        let ok = &[("alice", "operational", 1u8), ("bob", "operational", 2)];
        let same_key = format!(
            "key #2 (\"bob\"): the same public key as key #1 (\"alice\"), {}: a key appears once",
            fingerprint(1)
        );
        let cases: Vec<(String, Vec<&str>)> = vec![
            (doc(0, ok, ""), vec!["version = 0: a signer set's version is a whole number from 1"]),
            (doc(-4, ok, ""), vec!["version = -4"]),
            ("[thresholds]\n".into(), vec!["not a signer set: ", "missing field `version`"]),
            (doc(2, ok, "colour = \"blue\""), vec!["unknown field `colour`"]),
            (
                doc(2, ok, "").replace("role = \"operational\"\n", "role = \"operational\"\nhost = \"pve-01\"\n"),
                vec!["unknown field `host`"],
            ),
            (doc(2, &[], ""), vec!["no [[key]]: a signer set holds at least one key"]),
            (
                doc(2, &[("alice", "admin", 1), ("", "operational", 2), ("*@x", "operational", 3), ("a b", "operational", 4)], ""),
                vec![
                    "key #1 (\"alice\"): unknown role \"admin\"",
                    "key #2 (\"\"): empty principal",
                    "key #3 (\"*@x\"): principal \"*@x\": a key is given to a principal name, not a pattern",
                    "key #4 (\"a b\"): principal \"a b\": no blanks",
                ],
            ),
            (
                doc(2, &[("alice", "operational", 1), ("bob", "recovery", 1)], ""),
                vec![same_key.as_str()],
            ),
            (
                doc(2, &[("alice", "operational", 1), ("alice", "recovery", 2)], ""),
                vec!["key #2 (\"alice\"): role recovery but key #1 gives this principal role operational: a principal has one role"],
            ),
            (
                doc(2, ok, "[thresholds]\nrotate_keys = 3\ndestroy = 0\n\"Bad Name\" = 1\nremove_volume = 99999999999"),
                vec![
                    "thresholds.\"Bad Name\": operation names are lower-case letters, digits, _ and -",
                    "thresholds.\"destroy\" = 0: a threshold is at least 1",
                    "thresholds.\"remove_volume\" = 99999999999: too large",
                    "thresholds.rotate_keys = 3: only 2 distinct key(s) with role operational or recovery whose namespaces permit castellan-signers, so this set could never be replaced",
                ],
            ),
            (
                doc(2, &[("alice", "operational", 1), ("carol", "reviewer", 2)], "[thresholds]\ndestroy = 2\nreview = 2"),
                vec!["thresholds.destroy = 2: only 1 distinct key(s) with role operational whose namespaces permit castellan-op, so the operation could never be authorised"],
            ),
            (
                doc(2, &[("carol", "reviewer", 2)], ""),
                vec!["thresholds.rotate_keys (absent: 1): only 0 distinct key(s) with role operational or recovery whose namespaces permit castellan-signers, so this set could never be replaced"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace(
                    "public_key",
                    "namespaces = [\"castellan-op\"]\npublic_key",
                ),
                vec!["thresholds.rotate_keys (absent: 1): only 0 distinct key(s)"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace(
                    "public_key",
                    "namespaces = []\nvalid_after = \"2027-01-01T00:00:00Z\"\nvalid_before = \"2026-01-01T00:00:00.5Z\"\npublic_key",
                ),
                vec![
                    "namespaces = []: an empty list permits nothing",
                    "valid_before = \"2026-01-01T00:00:00.5Z\": whole seconds only",
                ],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace(
                    "public_key",
                    "valid_after = \"2027-01-01T00:00:00Z\"\nvalid_before = \"2026-01-01T00:00:00Z\"\npublic_key",
                ),
                vec!["key #1 (\"alice\"): valid_before is not after valid_after"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "")
                    .replace("valid", "x")
                    .replace("public_key = \"", "valid_before = \"tomorrow\"\npublic_key = \""),
                vec!["valid_before = \"tomorrow\": not an RFC 3339 time"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace("ssh-ed25519 AAAA", "ssh-ed25519 BBBB"),
                vec!["key #1 (\"alice\"): public_key: invalid ssh-ed25519 key"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace("ssh-ed25519 ", "ssh-dss "),
                vec!["public_key: unsupported key type \"ssh-dss\""],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace("ssh-ed25519 ", "ssh-ed25519-cert-v01@openssh.com "),
                vec!["public_key: certificate key"],
            ),
            (
                doc(2, &[("alice", "operational", 1)], "").replace("\"\n\n[[key", "\"\n").replace(
                    &public(1),
                    &format!("{} evil\\nline", public(1)),
                ),
                vec!["public_key holds a control character"],
            ),
        ];
        for (text, wants) in cases {
            let got = SignerSet::parse(text.as_bytes())
                .expect_err(&text)
                .to_string();
            for want in wants {
                assert!(got.contains(want), "{text}\n---\ngot: {got}\nwant: {want}");
            }
        }
    }

    #[test]
    fn tells_a_signers_toml_from_a_signer_set() {
        assert_eq!(
            SetFileKind::of("allowed_signers = \"a\"\n[roles]\n"),
            SetFileKind::SignersToml
        );
        assert_eq!(
            SetFileKind::of(&doc(2, &[("a", "operational", 1)], "")),
            SetFileKind::SignerSet
        );
        assert_eq!(SetFileKind::of("not = = toml"), SetFileKind::SignerSet);
    }

    #[test]
    fn size_and_encoding_are_bounded() {
        let big = vec![b'#'; MAX_SIGNER_SET_BYTES + 1];
        assert!(matches!(
            SignerSet::parse(&big),
            Err(SignerSetError::TooLarge { .. })
        ));
        let e = SignerSet::parse(b"version = 2\n# \xff\n").unwrap_err();
        assert_eq!(e.to_string(), "signer set: line 2: not valid utf-8");
    }

    #[test]
    fn a_key_built_in_code_is_checked_like_a_documents() {
        let k = SetKey::new("alice@example.com", Role::Operational, &public(1)).unwrap();
        assert_eq!(k.fingerprint, fingerprint(1));
        assert_eq!(k.public_key_line(), public(1));
        let e = SetKey::new("*", Role::Operational, "ssh-ed25519").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("not a pattern"), "{e}");
        assert!(e.contains("missing base64 key after ssh-ed25519"), "{e}");
    }

    #[test]
    fn a_signers_toml_becomes_version_one() {
        let allowed = AllowedSigners::parse_in(
            &format!(
                "*@example.com {}\nbreak-glass namespaces=\"castellan-signers\" {}\nnobody {}\n",
                public(1),
                public(2),
                public(3)
            ),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        let roles = BTreeMap::from([
            ("alice@example.com".to_owned(), Role::Operational),
            ("break-glass".to_owned(), Role::Recovery),
        ]);
        let config =
            SignerConfig::from_parts(allowed, roles, BTreeMap::from([("destroy".into(), 1)]))
                .unwrap();
        let set = SignerSet::from_config(&config, BOOTSTRAP_VERSION).unwrap();
        assert_eq!(set.version, 1);
        // The key with no role authorises nothing and is left out.
        assert_eq!(
            set.keys
                .iter()
                .map(|k| (k.principal.as_str(), k.role))
                .collect::<Vec<_>>(),
            vec![
                ("alice@example.com", Role::Operational),
                ("break-glass", Role::Recovery)
            ]
        );
        assert_eq!(
            set.keys[1].namespaces,
            Some(vec!["castellan-signers".to_owned()])
        );
        let diff = SetDiff::between(&config, &set.to_config().unwrap());
        assert_eq!(diff.removed.len(), 1);
        assert_eq!(diff.removed[0].fingerprint, fingerprint(3));

        // One entry holding two roles cannot be one key of a set.
        let allowed = AllowedSigners::parse(&format!("*@example.com {}\n", public(1))).unwrap();
        let roles = BTreeMap::from([
            ("alice@example.com".to_owned(), Role::Operational),
            ("carol@example.com".to_owned(), Role::Reviewer),
        ]);
        let config = SignerConfig::from_parts(allowed, roles, BTreeMap::new()).unwrap();
        let e = SignerSet::from_config(&config, 1).unwrap_err().to_string();
        assert!(
            e.contains("allowed_signers line 1 (") && e.contains("matches the role principals \"alice@example.com\" (operational), \"carol@example.com\" (reviewer)"),
            "{e}"
        );
    }

    /// The set in force: alice, bob (operational), rex (recovery), carol (reviewer);
    /// rotate_keys = 2.
    fn in_force() -> SignerConfig {
        SignerSet::parse(
            doc(
                4,
                &[
                    ("alice", "operational", 1),
                    ("bob", "operational", 2),
                    ("rex", "recovery", 3),
                    ("carol", "reviewer", 4),
                ],
                "[thresholds]\nrotate_keys = 2",
            )
            .as_bytes(),
        )
        .unwrap()
        .to_config()
        .unwrap()
    }

    /// The proposal: bob removed, dave (5) added; rotate_keys = 2 for the new set too.
    fn proposal(version: i64) -> Vec<u8> {
        doc(
            version,
            &[
                ("alice", "operational", 1),
                ("rex", "recovery", 3),
                ("carol", "reviewer", 4),
                ("dave", "operational", 5),
            ],
            "[thresholds]\nrotate_keys = 2\ndestroy = 2",
        )
        .into_bytes()
    }

    #[test]
    fn rotation_decisions() {
        let current = in_force();
        let new = proposal(5);
        let s = |seed: u8| sign(seed, &new);
        type Check = fn(&RotationError) -> bool;
        /// (case, document, signatures, `Ok(())` or a piece of the error's text and a test)
        type Case = (
            &'static str,
            Vec<u8>,
            Vec<Vec<u8>>,
            Result<(), (&'static str, Check)>,
        );
        let cases: Vec<Case> = vec![
            (
                "both thresholds met",
                new.clone(),
                vec![s(1), s(2), s(5)],
                Ok(()),
            ),
            (
                "a recovery key counts in both",
                new.clone(),
                vec![s(3), s(2), s(5)],
                Ok(()),
            ),
            (
                "too few in force",
                new.clone(),
                vec![s(1), s(5)],
                Err((
                    "too few signatures by the set in force (version 4): rotate_keys needs 2 distinct key(s) with role operational or recovery, got 1 of 2; signature 2: refused: unknown_signer",
                    |e| matches!(e, RotationError::TooFewInForce(r) if r.reason() == RejectReason::ThresholdNotMet),
                )),
            ),
            (
                "too few new",
                new.clone(),
                vec![s(1), s(2)],
                Err((
                    "too few signatures by the new set (version 5): rotate_keys needs 2 distinct key(s) with role operational or recovery, got 1 of 2; signature 2: refused: unknown_signer",
                    |e| matches!(e, RotationError::TooFewNew(_)),
                )),
            ),
            (
                "only a reviewer of the set in force",
                new.clone(),
                vec![s(4)],
                Err(("got 0 of 2; signature 1: by ", |e| {
                    e.to_string().contains("(carol) counts for nothing: it holds role reviewer, and only operational or recovery may sign a rotation")
                            && e.reason() == RejectReason::RoleDenied
                })),
            ),
            (
                "one key twice counts once",
                new.clone(),
                vec![s(1), s(1), s(5), s(3)],
                Ok(()),
            ),
            (
                "one key twice does not make two",
                new.clone(),
                vec![s(1), s(1), s(5)],
                Err(("got 1 of 2; signature 2: by ", |e| {
                    e.to_string().contains("again: a key counts once")
                        && matches!(e, RotationError::TooFewInForce(_))
                })),
            ),
            (
                "lower version",
                proposal(3),
                vec![],
                Err((
                    "version 3 is not newer than the set in force, version 4",
                    |e| e.reason() == RejectReason::Replayed,
                )),
            ),
            (
                "equal version",
                proposal(4),
                vec![],
                Err((
                    "version 4 is not newer than the set in force, version 4",
                    |e| {
                        matches!(
                            e,
                            RotationError::NotNewer {
                                version: 4,
                                in_force: 4
                            }
                        )
                    },
                )),
            ),
            (
                "unsigned",
                new.clone(),
                vec![],
                Err((
                    "the signer set (version 5) is not signed: it needs 2 signature(s) by the set in force and 2 by the new set",
                    |e| e.reason() == RejectReason::BadFormat,
                )),
            ),
            (
                "signed for ops, not for rotation",
                new.clone(),
                vec![
                    sign_ns(1, OP_NAMESPACE, &new),
                    sign_ns(2, OP_NAMESPACE, &new),
                ],
                Err((
                    "signature 1: refused: wrong_namespace: signed for namespace \"castellan-op\", expected \"castellan-signers\"",
                    |e| e.reason() == RejectReason::WrongNamespace,
                )),
            ),
            (
                "signed over other bytes",
                new.clone(),
                vec![sign(1, b"version = 5\n"), sign(2, b"version = 5\n")],
                Err(("refused: bad_signature", |e| {
                    e.reason() == RejectReason::BadSignature
                })),
            ),
            (
                "garbage signature beside good ones",
                new.clone(),
                vec![b"not a signature".to_vec(), s(1), s(2), s(5)],
                Ok(()),
            ),
            (
                "malformed",
                b"version = 5\n".to_vec(),
                vec![s(1)],
                Err(("invalid signer set:\n  no [[key]]", |e| {
                    matches!(e, RotationError::Malformed(_))
                        && e.reason() == RejectReason::BadFormat
                })),
            ),
        ];
        for (name, doc, sigs, want) in cases {
            let got = verify_rotation(&current, 4, &doc, &sigs, now());
            match (got, want) {
                (Ok(a), Ok(())) => {
                    assert_eq!(a.version, 5, "{name}");
                    assert_eq!(a.replaces, 4, "{name}");
                    assert_eq!(a.digest, digest(&doc), "{name}");
                    assert_eq!(a.bytes, doc, "{name}");
                    assert!(a.new_signers.len() >= 2, "{name}");
                    assert!(a.in_force_signers.len() >= 2, "{name}");
                }
                (Err(e), Err((text, check))) => {
                    let msg = e.to_string();
                    assert!(msg.contains(text), "{name}: got {msg:?}, want {text:?}");
                    assert!(check(&e), "{name}: {e:?}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_accepted_rotation_says_what_changed_and_who_signed() {
        let current = in_force();
        let new = proposal(5);
        let a = verify_rotation(
            &current,
            4,
            &new,
            &[sign(1, &new), sign(2, &new), sign(5, &new)],
            now(),
        )
        .unwrap();
        let mut both = vec![fingerprint(1), fingerprint(2)];
        both.sort();
        assert_eq!(a.in_force_signers, both);
        let mut both = vec![fingerprint(1), fingerprint(5)];
        both.sort();
        assert_eq!(a.new_signers, both);
        assert_eq!(
            a.diff
                .added
                .iter()
                .map(|k| &k.fingerprint)
                .collect::<Vec<_>>(),
            vec![&fingerprint(5)]
        );
        assert_eq!(
            a.diff
                .removed
                .iter()
                .map(|k| &k.fingerprint)
                .collect::<Vec<_>>(),
            vec![&fingerprint(2)]
        );
        assert_eq!(a.diff.thresholds, vec![("destroy".to_owned(), 1, 2)]);
        assert!(a.diff.changed.is_empty());

        // bob's key is gone: his op signature is refused by the new configuration.
        let op = b"version = 3\nop = \"destroy\"\n";
        let r = a
            .config
            .verify(OP_NAMESPACE, op, &sign_ns(2, OP_NAMESPACE, op), now())
            .unwrap_err();
        assert_eq!(r.reason, RejectReason::UnknownSigner);
        assert!(
            a.config
                .verify(OP_NAMESPACE, op, &sign_ns(5, OP_NAMESPACE, op), now())
                .is_ok()
        );
    }

    #[test]
    fn keys_outside_their_window_do_not_count() {
        let current = in_force();
        let new = String::from_utf8(proposal(5))
            .unwrap()
            .replacen(
                "principal = \"dave\"",
                "principal = \"dave\"\nvalid_after = \"2030-01-01T00:00:00Z\"",
                1,
            )
            .into_bytes();
        let e = verify_rotation(
            &current,
            4,
            &new,
            &[sign(1, &new), sign(2, &new), sign(5, &new)],
            now(),
        )
        .unwrap_err();
        assert!(matches!(e, RotationError::TooFewNew(_)), "{e}");
        assert!(e.to_string().contains("refused: not_yet_valid"), "{e}");
    }
}
