//! The signed operation, format v3: the payload an operator signs to authorise one
//! destructive action on one host.
//!
//! An op file is a small TOML document in exactly one canonical form, so the bytes that
//! were signed are the bytes that are checked, and one operation has one encoding:
//!
//! ```toml
//! version = 3
//! op = "destroy"
//! host = "pve-01"
//! target = "lxc/101"
//! precondition = "9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20"
//! nonce = "6b1f0e54a9c2d83f71e0a4b59c6d2e13"
//! not_before = "2026-11-22T10:00:00Z"
//! not_after = "2026-11-22T11:00:00Z"
//!
//! [params]
//! purge = "1"
//! ```
//!
//! Canonical form, which [`SignedOp::parse`] requires and [`SignedOp::render`] writes:
//! - the keys above, in that order, one per line, `key = value` with single spaces, each
//!   line ending in `\n`; `precondition` is left out when there is none;
//! - `[params]` after one blank line, only when there are parameters, keys in byte order;
//! - strings in double quotes, drawn from restricted alphabets so no escaping is ever
//!   needed (see the `valid_*` rules below); times are RFC 3339 UTC to the second (`Z`);
//! - nothing else: no comments, no trailing blank lines, no byte-order mark.
//!
//! Anything that parses as TOML but is not byte-for-byte canonical is refused as
//! `bad_format`, so a signed file cannot be reinterpreted by a laxer reader.
//!
//! Version 3 names what the op acts on by its [`Target`] (`lxc/101`, `qemu/101`,
//! `container/web`, `volume/pgdata`): the kind is part of the identity, so an op approved
//! against container 150 can never destroy a virtual machine 150 whose configuration
//! happens to have the same digest, and one format serves every backend. Version 2 (a
//! vmid and a guest kind) and version 1 (a vmid alone) are refused with that reason.
//!
//! The op's [`digest`](SignedOp::digest) — SHA-256 of the canonical bytes — identifies it
//! in the journal and the audit log.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::target::Target;

/// The SSHSIG namespace operations are signed under.
pub const NAMESPACE: &str = "castellan-op";
/// The format version this code reads and writes.
pub const VERSION: u32 = 3;
/// Largest op file accepted.
pub const MAX_OP_BYTES: usize = 16 * 1024;
/// Longest validity window an op may carry: approvals are meant to be used, not stored.
pub const MAX_VALIDITY: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Most parameters an op may carry.
pub const MAX_PARAMS: usize = 32;

/// A signed-operation payload, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedOp {
    /// The operation's name, e.g. `destroy`. Kept as written: a name the operation
    /// table ([`crate::operation`]) does not hold parses, so that it can be reported, but
    /// never becomes an [`Operation`](crate::Operation) and never executes.
    pub op: String,
    /// The node the op is for.
    pub host: String,
    /// What the op acts on.
    pub target: Target,
    /// The digest of the target's state when the op was approved (a guest's
    /// configuration digest, a container's declaration and volumes); the op goes stale
    /// when the target changes.
    pub precondition: Option<String>,
    /// Single-use token: 128 bits or more of randomness, lower-case hex.
    pub nonce: String,
    /// Not valid before this instant.
    pub not_before: Timestamp,
    /// Not valid at or after this instant.
    pub not_after: Timestamp,
    /// Canonical operation parameters.
    pub params: BTreeMap<String, String>,
}

/// Why an op file was refused. Every variant maps to the `bad_format` rejection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpFormatError {
    /// The file is larger than [`MAX_OP_BYTES`].
    #[error("op file is {0} bytes, more than the {MAX_OP_BYTES} accepted")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("op file is not UTF-8")]
    NotUtf8,
    /// Not TOML, or a missing, unknown or mistyped field.
    #[error("op file is not a castellan op: {0}")]
    Syntax(String),
    /// A field's value is out of its allowed range or alphabet.
    #[error("op field {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Valid content, but not byte-for-byte in canonical form.
    #[error(
        "op file is not in canonical form (line {line}: expected {expected:?}); regenerate it with `castellan op new`"
    )]
    NotCanonical {
        /// First differing line, 1-based.
        line: usize,
        /// What that line should be.
        expected: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOp {
    version: i64,
    op: String,
    host: String,
    target: String,
    precondition: Option<String>,
    nonce: String,
    not_before: String,
    not_after: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> OpFormatError {
    OpFormatError::Invalid {
        field,
        message: message.into(),
    }
}

/// Operation names: lower-case ASCII words joined by `_`.
pub fn valid_op_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !s.starts_with('_')
        && !s.ends_with('_')
}

/// Host names as Proxmox VE accepts node names (`pve-node`: a hostname label). The
/// desired state's `node` obeys the same rule.
pub fn valid_host(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parameter names: lower-case ASCII letters, digits, `-` and `_`.
pub fn valid_param_key(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Most bytes one parameter value holds (a storage wipe's list of volumes is the longest).
pub const MAX_PARAM_VALUE_BYTES: usize = 4096;

/// Parameter values: printable ASCII without quotes, backslashes or spaces, so a value
/// never needs escaping.
pub fn valid_param_value(s: &str) -> bool {
    s.len() <= MAX_PARAM_VALUE_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'\'')
}

fn valid_hex(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses every version but [`VERSION`], naming why the older ones are gone.
fn check_version(version: i64) -> Result<(), OpFormatError> {
    match version {
        1 | 2 => Err(invalid(
            "version",
            format!(
                "version {version} ops name a guest by vmid{} and are no longer accepted; make a \
                 new op (version {VERSION}, with target = \"kind/id\") with `castellan op new`",
                if version == 1 {
                    " alone, without its kind"
                } else {
                    " and kind"
                }
            ),
        )),
        v if v == i64::from(VERSION) => Ok(()),
        v => Err(invalid(
            "version",
            format!("version {v} is not supported (this castellan reads {VERSION})"),
        )),
    }
}

fn parse_time(field: &'static str, s: &str) -> Result<Timestamp, OpFormatError> {
    let t: Timestamp = s
        .parse()
        .map_err(|e| invalid(field, format!("{s:?} is not an RFC 3339 time: {e}")))?;
    Ok(t)
}

/// An instant as the op format writes it: RFC 3339, UTC, whole seconds.
pub fn format_time(t: Timestamp) -> String {
    // Whole seconds only; sub-second precision is dropped, never rounded up.
    let secs = Timestamp::from_second(t.as_second()).unwrap_or(t);
    secs.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl SignedOp {
    /// Parses an op file, which must be in canonical form.
    pub fn parse(bytes: &[u8]) -> Result<SignedOp, OpFormatError> {
        if bytes.len() > MAX_OP_BYTES {
            return Err(OpFormatError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| OpFormatError::NotUtf8)?;
        // Older versions have other fields: when the document is not a current op, its
        // version (read on its own) gives the reason it is refused, rather than an
        // "unknown field".
        #[derive(Deserialize)]
        struct Versioned {
            version: i64,
        }
        let raw: RawOp = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                if let Ok(Versioned { version }) = toml::from_str::<Versioned>(text) {
                    check_version(version)?;
                }
                // toml's messages quote the offending line; keep only the message.
                return Err(OpFormatError::Syntax(e.message().to_owned()));
            }
        };
        check_version(raw.version)?;
        let target: Target = raw
            .target
            .parse()
            .map_err(|e: crate::target::TargetError| invalid("target", e.to_string()))?;
        let op = SignedOp {
            op: raw.op,
            host: raw.host,
            target,
            precondition: raw.precondition,
            nonce: raw.nonce,
            not_before: parse_time("not_before", &raw.not_before)?,
            not_after: parse_time("not_after", &raw.not_after)?,
            params: raw.params,
        };
        op.validate()?;
        let canonical = op.render();
        if canonical.as_bytes() != bytes {
            let line = first_difference(&canonical, text);
            let expected = canonical
                .lines()
                .nth(line - 1)
                .unwrap_or("<end of file>")
                .to_owned();
            return Err(OpFormatError::NotCanonical { line, expected });
        }
        Ok(op)
    }

    /// Checks every field against the format's rules.
    pub fn validate(&self) -> Result<(), OpFormatError> {
        if !valid_op_name(&self.op) {
            return Err(invalid(
                "op",
                format!(
                    "{:?} is not an operation name (lower-case words joined by _)",
                    self.op
                ),
            ));
        }
        if !valid_host(&self.host) {
            return Err(invalid(
                "host",
                format!("{:?} is not a valid node name", self.host),
            ));
        }
        if let Some(p) = &self.precondition
            && !valid_hex(p, 8, 128)
        {
            return Err(invalid(
                "precondition",
                "must be a lower-case hex digest of 8 to 128 digits",
            ));
        }
        if !valid_hex(&self.nonce, 32, 64) {
            return Err(invalid(
                "nonce",
                "must be 32 to 64 lower-case hex digits (128 to 256 bits)",
            ));
        }
        if self.not_before.subsec_nanosecond() != 0 || self.not_after.subsec_nanosecond() != 0 {
            return Err(invalid("not_before", "times are whole seconds"));
        }
        if self.not_after <= self.not_before {
            return Err(invalid("not_after", "must be later than not_before"));
        }
        if self.not_before.duration_until(self.not_after) > MAX_VALIDITY {
            return Err(invalid(
                "not_after",
                "the validity window is longer than the 7 days allowed",
            ));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(invalid(
                "params",
                format!(
                    "{} parameters, more than the {MAX_PARAMS} allowed",
                    self.params.len()
                ),
            ));
        }
        for (k, v) in &self.params {
            if !valid_param_key(k) {
                return Err(invalid(
                    "params",
                    format!("{k:?} is not a parameter name (a-z, 0-9, - and _)"),
                ));
            }
            if !valid_param_value(v) {
                return Err(invalid(
                    "params",
                    format!(
                        "the value of {k:?} must be printable ASCII without spaces or quotes, at most 256 bytes"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The canonical encoding: the exact bytes that are signed.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = writeln!(s, "version = {VERSION}");
        let _ = writeln!(s, "op = \"{}\"", self.op);
        let _ = writeln!(s, "host = \"{}\"", self.host);
        let _ = writeln!(s, "target = \"{}\"", self.target);
        if let Some(p) = &self.precondition {
            let _ = writeln!(s, "precondition = \"{p}\"");
        }
        let _ = writeln!(s, "nonce = \"{}\"", self.nonce);
        let _ = writeln!(s, "not_before = \"{}\"", format_time(self.not_before));
        let _ = writeln!(s, "not_after = \"{}\"", format_time(self.not_after));
        if !self.params.is_empty() {
            s.push_str("\n[params]\n");
            for (k, v) in &self.params {
                let _ = writeln!(s, "{k} = \"{v}\"");
            }
        }
        s
    }

    /// SHA-256 of the canonical encoding, lower-case hex: the op's identity in the journal
    /// and the audit log.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.render().as_bytes()))
    }

    /// Whether the op's window contains `now`: `Err(NotYetValid | Expired)` otherwise.
    pub fn window_check(&self, now: Timestamp) -> Result<(), crate::RejectReason> {
        if now < self.not_before {
            Err(crate::RejectReason::NotYetValid)
        } else if now >= self.not_after {
            Err(crate::RejectReason::Expired)
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for SignedOp {
    /// A human summary, as `castellan op show` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "operation:    {} {} ({}) on host {}",
            self.op,
            self.target.describe(),
            self.target,
            self.host
        )?;
        if self.params.is_empty() {
            writeln!(f, "parameters:   (none)")?;
        } else {
            let p: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "parameters:   {}", p.join(" "))?;
        }
        match &self.precondition {
            Some(p) => writeln!(f, "precondition: state digest {p}")?,
            None => writeln!(f, "precondition: (none: bound to no particular state)")?,
        }
        writeln!(
            f,
            "valid:        {} until {}",
            format_time(self.not_before),
            format_time(self.not_after)
        )?;
        writeln!(f, "nonce:        {}", self.nonce)?;
        write!(f, "digest:       sha256:{}", self.digest())
    }
}

/// The parser's safety property, for fuzzing and property tests: parsing `bytes` never
/// panics, and when it succeeds the op's canonical encoding is exactly `bytes` and its
/// fields pass validation. Panics if the property is violated.
pub fn check_parse_invariant(bytes: &[u8]) {
    if let Ok(op) = SignedOp::parse(bytes) {
        assert_eq!(op.render().as_bytes(), bytes, "parsed op is not canonical");
        assert!(op.validate().is_ok(), "parsed op fails validation");
    }
}

fn first_difference(a: &str, b: &str) -> usize {
    let mut al = a.split_inclusive('\n');
    let mut bl = b.split_inclusive('\n');
    let mut line = 1;
    loop {
        match (al.next(), bl.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            _ => return line,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> SignedOp {
        SignedOp {
            op: "destroy".into(),
            host: "pve-01".into(),
            target: "lxc/101".parse().unwrap(),
            precondition: Some("9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20".into()),
            nonce: "6b1f0e54a9c2d83f71e0a4b59c6d2e13".into(),
            not_before: "2026-11-22T10:00:00Z".parse().unwrap(),
            not_after: "2026-11-22T11:00:00Z".parse().unwrap(),
            params: BTreeMap::from([("purge".into(), "1".into())]),
        }
    }

    #[test]
    fn renders_the_documented_form() {
        let text = sample().render();
        assert_eq!(
            text,
            "version = 3\nop = \"destroy\"\nhost = \"pve-01\"\ntarget = \"lxc/101\"\n\
             precondition = \"9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20\"\n\
             nonce = \"6b1f0e54a9c2d83f71e0a4b59c6d2e13\"\n\
             not_before = \"2026-11-22T10:00:00Z\"\nnot_after = \"2026-11-22T11:00:00Z\"\n\
             \n[params]\npurge = \"1\"\n"
        );
        assert_eq!(SignedOp::parse(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        let text = sample().render();
        for (what, bad) in [
            ("extra space", text.replace("op = ", "op  = ")),
            ("comment", format!("# hi\n{text}")),
            ("trailing blank line", format!("{text}\n")),
            ("crlf", text.replace('\n', "\r\n")),
            ("literal string", text.replace("\"pve-01\"", "'pve-01'")),
            ("offset time", text.replace("10:00:00Z", "11:00:00+01:00")),
            (
                "reordered",
                text.replace(
                    "version = 3\nop = \"destroy\"\n",
                    "op = \"destroy\"\nversion = 3\n",
                ),
            ),
        ] {
            let err = SignedOp::parse(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(err, OpFormatError::NotCanonical { .. }),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn refuses_bad_fields() {
        let mut op = sample();
        op.nonce = "short".into();
        assert!(SignedOp::parse(op.render().as_bytes()).is_err());
        let mut op = sample();
        op.not_after = op.not_before;
        assert!(SignedOp::parse(op.render().as_bytes()).is_err());
        let mut op = sample();
        op.not_after = op.not_before + SignedDuration::from_hours(8 * 24);
        assert!(SignedOp::parse(op.render().as_bytes()).is_err());
        let text = sample().render().replace("version = 3", "version = 4");
        assert!(matches!(
            SignedOp::parse(text.as_bytes()),
            Err(OpFormatError::Invalid {
                field: "version",
                ..
            })
        ));
        // Version 2 (vmid and kind) and version 1 (vmid alone) are refused with the reason.
        let v2 = sample()
            .render()
            .replace("version = 3", "version = 2")
            .replace("target = \"lxc/101\"\n", "guest = 101\nkind = \"lxc\"\n");
        let err = SignedOp::parse(v2.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("version 2 ops name a guest by vmid"), "{err}");
        let v1 = sample()
            .render()
            .replace("version = 3", "version = 1")
            .replace("target = \"lxc/101\"\n", "guest = 101\n");
        let err = SignedOp::parse(v1.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("without its kind"), "{err}");
        for bad in ["vm/101", "lxc/99", "container/-x", "101"] {
            let text = sample()
                .render()
                .replace("\"lxc/101\"", &format!("\"{bad}\""));
            assert!(
                matches!(
                    SignedOp::parse(text.as_bytes()),
                    Err(OpFormatError::Invalid {
                        field: "target",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let text = format!("{}extra = \"x\"\n", sample().render());
        assert!(SignedOp::parse(text.as_bytes()).is_err());
    }

    #[test]
    fn digest_changes_with_any_field() {
        let base = sample().digest();
        let mut op = sample();
        op.target = "lxc/102".parse().unwrap();
        assert_ne!(op.digest(), base);
        let mut op = sample();
        op.target = "qemu/101".parse().unwrap();
        assert_ne!(op.digest(), base);
        let mut op = sample();
        op.params.clear();
        assert_ne!(op.digest(), base);
    }
}
