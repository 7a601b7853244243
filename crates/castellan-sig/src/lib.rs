//! SSHSIG verification for castellan's signature gate.
//!
//! A destructive operation runs only with an operator's signature made by
//! `ssh-keygen -Y sign` (SSHSIG), verified on the host itself. This crate holds the
//! pieces of that check that are about signatures, not operations:
//!
//! - [`allowed_signers`]: a parser of OpenSSH's `allowed_signers` format (the host's
//!   trusted keys, their principals, `namespaces=`, `valid-after=`, `valid-before=`);
//! - [`sshsig`]: decoding armored signatures and [`verify`]ing them;
//! - [`signers`]: the agent's `signers.toml` (the allowed_signers file, a role per
//!   principal, M-of-N thresholds per operation);
//! - [`rotation`]: key rotation: the versioned signer-set document, signed by the set in
//!   force and by the new set (namespace [`SIGNERS_NAMESPACE`], `castellan-signers`);
//! - [`sign`]: signing a file with the real `ssh-keygen` (key file, ssh-agent or
//!   security key);
//! - [`fuzzing`]: the fuzz target bodies, shared with the property tests.
//!
//! # Trust rules
//!
//! - **The key comes from the trusted list, never from the signature.** An SSHSIG
//!   carries its signer's public key; [`verify`] uses it only to compute a fingerprint
//!   and find the allowed_signers entries with that key. The signature is then checked
//!   with the *entry's* key. A signature whose embedded key was swapped for a trusted
//!   one fails as [`RejectReason::BadSignature`](castellan_core::RejectReason). For
//!   security keys the whole key is compared, including its FIDO application string.
//! - **Namespace.** The signature must be made under the namespace the caller expects
//!   (castellan ops use [`OP_NAMESPACE`], `castellan-op`; signer-set documents
//!   [`SIGNERS_NAMESPACE`], `castellan-signers`), and the admitting entry's
//!   `namespaces=` must permit it, so a signature made for `git` or `file` can never
//!   authorise an operation, and an op signature never approves a new signer set.
//! - **Validity window.** The entry's `valid-after` / `valid-before` are checked against
//!   the time the caller passes (the agent's monotonic-safe clock): valid when
//!   `valid-after <= at < valid-before`.
//! - **Security keys must assert user presence.** `sk-ssh-ed25519@openssh.com` and
//!   `sk-ecdsa-sha2-nistp256@openssh.com` signatures are accepted only with the
//!   user-presence flag (0x01) set; a valid signature without it is
//!   [`BadSignature`](castellan_core::RejectReason::BadSignature), "user presence not
//!   asserted". (`ssh-keygen -Y verify` does not require it; castellan does.)
//! - **Algorithms.** `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521`, `rsa-sha2-256/512`
//!   (RSA keys of at least 2048 bits) and the two security-key types. Legacy `ssh-rsa`
//!   (SHA-1) signatures are refused. Message hashes `sha256` and `sha512` are accepted.
//! - **No certificates.** `cert-authority` entries are refused when the file is read.
//!
//! Every refusal is a typed [`Rejected`] with a
//! [`RejectReason`](castellan_core::RejectReason) and a detail that names fingerprints,
//! namespaces and line numbers, never secret material.

pub mod allowed_signers;
pub mod fuzzing;
mod pattern;
pub mod rotation;
pub mod sign;
pub mod signers;
pub mod sshsig;

pub use allowed_signers::{AllowedSigners, AllowedSignersError, SignerEntry};
pub use rotation::{
    AcceptedRotation, RotationError, SIGNERS_NAMESPACE, SignerSet, SignerSetError, verify_rotation,
};
pub use sign::{SignError, SignOptions, sign_file};
pub use signers::{SignerConfig, SignerConfigError};
pub use sshsig::{DecodeError, OP_NAMESPACE, Rejected, Verified, decode_armored, verify};
