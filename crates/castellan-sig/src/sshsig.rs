//! Armored SSHSIG signatures (`ssh-keygen -Y sign`, OpenSSH `PROTOCOL.sshsig`): decoding
//! and verification against an [`AllowedSigners`] list.
//!
//! Verification follows the trust rules in the crate documentation: the key embedded in
//! the signature only selects candidate entries by fingerprint; the signature is checked
//! with the key from the trusted entry.

use std::fmt;

use castellan_core::RejectReason;
use jiff::Timestamp;
use ssh_encoding::Decode;
use ssh_key::{Algorithm, HashAlg, SshSig};

use crate::allowed_signers::{AllowedSigners, SignerEntry, quote};

/// Largest armored signature accepted (a 16384-bit RSA signature is about 5 KiB armored).
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// The armor's first line.
pub const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
/// The armor's last line.
pub const ARMOR_END: &str = "-----END SSH SIGNATURE-----";

/// The namespace castellan's signed operations are made under.
pub const OP_NAMESPACE: &str = "castellan-op";

/// The U2F/FIDO "user present" flag of a security-key signature.
const SK_USER_PRESENT: u8 = 0x01;

/// Why an armored signature could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_SIGNATURE_BYTES`].
    #[error("signature is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The input's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not armored as `-----BEGIN SSH SIGNATURE-----` ... `-----END SSH SIGNATURE-----`.
    #[error("not an armored ssh signature: {0}")]
    Armor(&'static str),
    /// The armor's body is not base64.
    #[error("signature armor is not valid base64")]
    Base64,
    /// The decoded SSHSIG structure is malformed.
    #[error("malformed sshsig: {0}")]
    Malformed(String),
    /// A legacy `ssh-rsa` (SHA-1) signature, which castellan refuses.
    #[error(
        "ssh-rsa signatures use sha-1 and are not accepted; sign with rsa-sha2-512 (what ssh-keygen -Y sign writes)"
    )]
    RsaSha1,
}

/// A signature that verified: who made it, according to the trusted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signing key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// The principal patterns of the allowed_signers entry that admitted the signature.
    pub principals: Vec<String>,
    /// The signature algorithm (`ssh-ed25519`, `rsa-sha2-512`, ...).
    pub algorithm: String,
    /// The line of that entry in the allowed_signers file.
    pub entry_line: usize,
}

/// A refused signature: the typed reason and a human-readable detail (never secret
/// material; fingerprints, namespaces and line numbers only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// What exactly.
    pub detail: String,
}

impl Rejected {
    /// A rejection for `reason` with `detail`.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejected {}

/// Decodes an armored SSHSIG (at most [`MAX_SIGNATURE_BYTES`]). Accepts what
/// `ssh-keygen -Y sign` writes: version 1, hash `sha256` or `sha512`, no trailing data.
pub fn decode_armored(armored: &[u8]) -> Result<SshSig, DecodeError> {
    if armored.len() > MAX_SIGNATURE_BYTES {
        return Err(DecodeError::TooLarge {
            size: armored.len(),
            limit: MAX_SIGNATURE_BYTES,
        });
    }
    let blob = dearmor(armored)?;
    decode_blob(&blob)
}

/// Removes the armor and decodes the base64 body (as OpenSSH `sshsig_dearmor`, but
/// allowing CRLF line ends and refusing anything but blanks after the footer).
pub fn dearmor(armored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let text = std::str::from_utf8(armored).map_err(|_| DecodeError::Armor("not text"))?;
    let body = text
        .strip_prefix(ARMOR_BEGIN)
        .and_then(|r| r.strip_prefix('\n').or_else(|| r.strip_prefix("\r\n")))
        .ok_or(DecodeError::Armor(
            "missing -----BEGIN SSH SIGNATURE----- line",
        ))?;
    let end = body
        .find(ARMOR_END)
        .filter(|&i| i > 0 && body[..i].ends_with('\n'))
        .ok_or(DecodeError::Armor(
            "missing -----END SSH SIGNATURE----- line",
        ))?;
    if !body[end + ARMOR_END.len()..].trim().is_empty() {
        return Err(DecodeError::Armor("text after the END line"));
    }
    let b64: String = body[..end]
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r' | ' ' | '\t'))
        .collect();
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(&b64).map_err(|_| DecodeError::Base64)
}

/// Armors a binary SSHSIG blob as `ssh-keygen` does (70 columns).
pub fn armor(blob: &[u8]) -> String {
    use base64ct::Encoding;
    let b64 = base64ct::Base64::encode_string(blob);
    let mut out = String::with_capacity(b64.len() + 80);
    out.push_str(ARMOR_BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(70) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(ARMOR_END);
    out.push('\n');
    out
}

/// A cursor over SSH wire data (RFC 4251 `uint32` and `string`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Malformed(format!("truncated at the {what}")));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        let len =
            usize::try_from(len).map_err(|_| DecodeError::Malformed(format!("{what} too long")))?;
        self.take(len, what)
    }
}

/// Decodes a binary SSHSIG blob, checking its envelope first for clear errors.
pub fn decode_blob(blob: &[u8]) -> Result<SshSig, DecodeError> {
    let mut w = Wire(blob);
    if w.take(6, "magic preamble")? != b"SSHSIG" {
        return Err(DecodeError::Malformed(
            "missing SSHSIG magic preamble".into(),
        ));
    }
    let version = w.u32("version")?;
    if version != 1 {
        return Err(DecodeError::Malformed(format!(
            "unsupported version {version} (expected 1)"
        )));
    }
    w.string("public key")?;
    let namespace = w.string("namespace")?;
    if namespace.is_empty() {
        return Err(DecodeError::Malformed("empty namespace".into()));
    }
    w.string("reserved field")?;
    let hash = w.string("hash algorithm")?;
    if hash != b"sha256" && hash != b"sha512" {
        return Err(DecodeError::Malformed(format!(
            "unsupported hash algorithm {} (expected sha256 or sha512)",
            quote(&String::from_utf8_lossy(hash))
        )));
    }
    let signature = w.string("signature")?;
    if !w.0.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes of trailing data",
            w.0.len()
        )));
    }
    let sig_alg = Wire(signature).string("signature algorithm")?;
    if sig_alg == b"ssh-rsa" {
        return Err(DecodeError::RsaSha1);
    }
    let mut reader = blob;
    let sig = SshSig::decode(&mut reader).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(sig)
}

/// Does a signature algorithm fit a key algorithm?
fn signature_fits_key(key: &Algorithm, sig: &Algorithm) -> bool {
    match (key, sig) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { hash }) => hash.is_some(),
        (k, s) => k == s,
    }
}

/// Verifies an armored SSHSIG over `message` for `namespace` at time `at`.
///
/// Checks, in order (the first failure is the reason): decodes ([`RejectReason::BadFormat`];
/// an `ssh-rsa` SHA-1 signature is [`RejectReason::BadSignature`]); the signature's
/// namespace is `namespace` ([`RejectReason::WrongNamespace`]); some entry has the
/// embedded key's fingerprint ([`RejectReason::UnknownSigner`]); the signature verifies
/// with the *entry's* key, and a security-key signature asserts user presence
/// ([`RejectReason::BadSignature`]); some such entry permits the namespace
/// ([`RejectReason::WrongNamespace`]); and is valid at `at` ([`RejectReason::Expired`] if
/// an entry's `valid-before` is at or before `at`, else [`RejectReason::NotYetValid`]).
/// Policy reasons (namespace permission, validity) are therefore only reported for
/// signatures that are cryptographically genuine.
pub fn verify(
    signers: &AllowedSigners,
    namespace: &str,
    message: &[u8],
    armored_sig: &[u8],
    at: Timestamp,
) -> Result<Verified, Rejected> {
    let sig = decode_armored(armored_sig).map_err(|e| {
        let reason = match e {
            DecodeError::RsaSha1 => RejectReason::BadSignature,
            _ => RejectReason::BadFormat,
        };
        Rejected::new(reason, e.to_string())
    })?;
    verify_decoded(signers, namespace, message, &sig, at)
}

/// [`verify`] for an already decoded signature.
pub fn verify_decoded(
    signers: &AllowedSigners,
    namespace: &str,
    message: &[u8],
    sig: &SshSig,
    at: Timestamp,
) -> Result<Verified, Rejected> {
    if sig.namespace() != namespace {
        return Err(Rejected::new(
            RejectReason::WrongNamespace,
            format!(
                "signed for namespace {}, expected {}",
                quote(sig.namespace()),
                quote(namespace)
            ),
        ));
    }

    // The embedded key is used for this lookup only.
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let candidates: Vec<&SignerEntry> = signers
        .entries_for_fingerprint(&fingerprint)
        .filter(|e| e.key.key_data() == sig.public_key())
        .collect();
    let Some(first) = candidates.first() else {
        return Err(Rejected::new(
            RejectReason::UnknownSigner,
            format!("no allowed_signers entry for key {fingerprint}"),
        ));
    };

    // From here on only the trusted entry's key is used.
    let trusted = &first.key;
    let key_alg = trusted.algorithm();
    let sig_alg = sig.algorithm();
    if !signature_fits_key(&key_alg, &sig_alg) {
        return Err(Rejected::new(
            RejectReason::BadSignature,
            format!("signature algorithm {sig_alg} does not fit the {key_alg} key {fingerprint}"),
        ));
    }
    let signed_data = SshSig::signed_data(namespace, sig.hash_alg(), message).map_err(|e| {
        Rejected::new(
            RejectReason::BadFormat,
            format!("cannot build signed data: {e}"),
        )
    })?;
    {
        use signature::Verifier;
        if trusted
            .key_data()
            .verify(&signed_data, sig.signature())
            .is_err()
        {
            return Err(Rejected::new(
                RejectReason::BadSignature,
                format!("{sig_alg} signature by {fingerprint} does not verify over the message"),
            ));
        }
    }
    if matches!(
        key_alg,
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256
    ) {
        // The signature data ends in flags (u8) and counter (u32), covered by the
        // signature just verified.
        let bytes = sig.signature_bytes();
        let flags = bytes
            .len()
            .checked_sub(5)
            .and_then(|i| bytes.get(i))
            .copied()
            .unwrap_or(0);
        if flags & SK_USER_PRESENT == 0 {
            return Err(Rejected::new(
                RejectReason::BadSignature,
                format!("user presence not asserted (security key {fingerprint})"),
            ));
        }
    }

    let permitting: Vec<&SignerEntry> = candidates
        .iter()
        .copied()
        .filter(|e| e.permits_namespace(namespace))
        .collect();
    if permitting.is_empty() {
        return Err(Rejected::new(
            RejectReason::WrongNamespace,
            format!(
                "allowed_signers {} for key {fingerprint} {} not permit namespace {}",
                lines(&candidates),
                if candidates.len() == 1 { "does" } else { "do" },
                quote(namespace)
            ),
        ));
    }

    let Some(entry) = permitting.iter().find(|e| e.is_valid_at(at)) else {
        let expired: Vec<&SignerEntry> = permitting
            .iter()
            .copied()
            .filter(|e| e.valid_before.is_some_and(|t| t <= at))
            .collect();
        return Err(if let Some(e) = expired.first() {
            Rejected::new(
                RejectReason::Expired,
                format!(
                    "key {fingerprint} expired: allowed_signers line {} has valid-before {}, now is {at}",
                    e.line,
                    e.valid_before.map(|t| t.to_string()).unwrap_or_default()
                ),
            )
        } else {
            let e = permitting[0];
            Rejected::new(
                RejectReason::NotYetValid,
                format!(
                    "key {fingerprint} not yet valid: allowed_signers line {} has valid-after {}, now is {at}",
                    e.line,
                    e.valid_after.map(|t| t.to_string()).unwrap_or_default()
                ),
            )
        });
    };

    Ok(Verified {
        fingerprint,
        principals: entry.principals.clone(),
        algorithm: sig_alg.as_str().to_owned(),
        entry_line: entry.line,
    })
}

fn lines(entries: &[&SignerEntry]) -> String {
    let nums: Vec<String> = entries.iter().map(|e| e.line.to_string()).collect();
    if nums.len() == 1 {
        format!("line {}", nums[0])
    } else {
        format!("lines {}", nums.join(", "))
    }
}
