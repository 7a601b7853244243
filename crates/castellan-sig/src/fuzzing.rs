//! Fuzz target bodies. `fuzz/fuzz_targets/*.rs` (cargo-fuzz, nightly) call these, and the
//! crate's own property tests run the same bodies on the stable toolchain. Each body
//! must never panic on any input; the assertions inside check invariants that hold for
//! every input.

use std::sync::OnceLock;

use castellan_core::RejectReason;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::allowed_signers::AllowedSigners;
use crate::rotation::{GroupReport, SignerGroup, SignerSet, rotate_keys, verify_rotation};
use crate::sshsig::{DecodeError, OP_NAMESPACE, armor, decode_armored, verify};

/// The fixed allowed_signers list [`sshsig_decode`] verifies against: one ed25519 key
/// twice (namespaces `castellan-op` and `file`), an expired P-256 key and a not yet
/// valid RSA key.
pub const FIXTURE_ALLOWED_SIGNERS: &str = include_str!("../testdata/fuzz/allowed_signers");
/// The message the fixture signatures are made over.
pub const FIXTURE_MESSAGE: &[u8] = include_bytes!("../testdata/fuzz/message");
/// A valid `castellan-op` signature over [`FIXTURE_MESSAGE`] by the fixture's ed25519 key.
pub const FIXTURE_ED25519_SIG: &[u8] = include_bytes!("../testdata/fuzz/ed25519.sig");
/// The same by the expired P-256 key.
pub const FIXTURE_P256_SIG: &[u8] = include_bytes!("../testdata/fuzz/p256.sig");
/// The same by the not yet valid RSA key.
pub const FIXTURE_RSA_SIG: &[u8] = include_bytes!("../testdata/fuzz/rsa.sig");

/// The instant the fuzz bodies verify at (2025-06-01T00:00:00Z).
pub fn fixture_time() -> Timestamp {
    Timestamp::from_second(1_748_736_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn fixture() -> Option<&'static AllowedSigners> {
    static SIGNERS: OnceLock<Option<AllowedSigners>> = OnceLock::new();
    SIGNERS
        .get_or_init(|| AllowedSigners::parse_in(FIXTURE_ALLOWED_SIGNERS, &TimeZone::UTC).ok())
        .as_ref()
}

/// Decodes `data` as an armored SSHSIG (or, when it is not armored, as a binary SSHSIG
/// blob, which is armored first) and verifies it against the fixture for two namespaces.
/// Checks that decoding and verification agree and that a verification names the
/// embedded key and an entry of the fixture.
pub fn sshsig_decode(data: &[u8]) {
    #[allow(clippy::expect_used)]
    let signers = fixture().expect("the fuzz fixture parses");
    let armored = if data.starts_with(b"-----BEGIN") {
        data.to_vec()
    } else {
        armor(data).into_bytes()
    };
    let decoded = decode_armored(&armored);
    for ns in [OP_NAMESPACE, "file"] {
        let result = verify(signers, ns, FIXTURE_MESSAGE, &armored, fixture_time());
        match (&decoded, &result) {
            (Err(DecodeError::RsaSha1), Err(r)) => assert_eq!(r.reason, RejectReason::BadSignature),
            (Err(_), Err(r)) => assert_eq!(r.reason, RejectReason::BadFormat),
            (Err(e), Ok(_)) => panic!("verified a signature that does not decode: {e}"),
            (Ok(_), Err(r)) => {
                assert_ne!(r.reason, RejectReason::BadFormat, "{r}");
                assert!(!r.detail.is_empty());
            }
            (Ok(sig), Ok(v)) => {
                assert_eq!(sig.namespace(), ns);
                let fp = sig
                    .public_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    .to_string();
                assert_eq!(v.fingerprint, fp);
                assert!(signers.entries.iter().any(|e| e.line == v.entry_line
                    && e.fingerprint == fp
                    && e.permits_namespace(ns)));
            }
        }
    }
}

/// Parses `data` as allowed_signers text (UTC for local times). When it parses, the
/// canonical text of the result must parse to the same entries, and the matchers must
/// run on arbitrary names.
pub fn allowed_signers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = AllowedSigners::parse_in(text, &TimeZone::UTC) else {
        return;
    };
    let canonical = parsed.to_text();
    let reparsed = match AllowedSigners::parse_in(&canonical, &TimeZone::UTC) {
        Ok(r) => r,
        Err(e) => panic!("canonical text does not parse: {e}\n{canonical}"),
    };
    assert_eq!(parsed.entries.len(), reparsed.entries.len());
    for (a, b) in parsed.entries.iter().zip(&reparsed.entries) {
        assert_eq!(a.principals, b.principals);
        assert_eq!(a.namespaces, b.namespaces);
        assert_eq!(a.valid_after, b.valid_after);
        assert_eq!(a.valid_before, b.valid_before);
        assert_eq!(a.key, b.key);
        assert_eq!(a.fingerprint, b.fingerprint);
        for name in [
            "",
            "alice@example.com",
            "castellan-op",
            text.get(..8).unwrap_or(""),
        ] {
            assert_eq!(a.matches_principal(name), b.matches_principal(name));
            assert_eq!(a.permits_namespace(name), b.permits_namespace(name));
        }
    }
}

/// Parses `data` as `signers.toml` against the fixture's allowed signers. When it parses,
/// every role names a principal the allowed signers know, every threshold is at least 1
/// and reachable, and a threshold asked for any operation is at least 1.
pub fn signers_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    #[allow(clippy::expect_used)]
    let allowed = fixture().expect("the fuzz fixture parses").clone();
    let Ok(cfg) = crate::SignerConfig::parse_with(text, allowed) else {
        return;
    };
    for principal in cfg.roles.keys() {
        assert!(
            cfg.allowed
                .entries
                .iter()
                .any(|e| e.matches_principal(principal)),
            "role for unknown principal {principal:?}"
        );
    }
    for (op, n) in &cfg.thresholds {
        assert!(*n >= 1, "threshold {op} = {n}");
        assert!(cfg.threshold(op) >= 1);
    }
    for op in ["destroy", "rotate_keys", "no_such_op"] {
        assert!(cfg.threshold(op) >= 1);
    }
}

/// Parses `data` as a signer-set document. When it parses, its rendering parses back to
/// the same set; it converts to a signer configuration with the same keys, roles and
/// thresholds; at least its `rotate_keys` threshold of its keys could sign its
/// replacement; and judging it as a rotation of itself (with the fixture's signature)
/// never panics and never accepts a set that is not newer.
pub fn signer_set(data: &[u8]) {
    let Ok(set) = SignerSet::parse(data) else {
        return;
    };
    let rendered = match set.render() {
        Ok(r) => r,
        Err(e) => panic!("a parsed set does not render: {e}"),
    };
    match SignerSet::parse(rendered.as_bytes()) {
        Ok(again) => assert_eq!(again, set, "{rendered}"),
        Err(e) => panic!("the rendering does not parse: {e}\n{rendered}"),
    }
    let cfg = match set.to_config() {
        Ok(c) => c,
        Err(e) => panic!("a parsed set does not convert: {e}"),
    };
    assert_eq!(cfg.allowed.entries.len(), set.keys.len());
    for k in &set.keys {
        assert_eq!(cfg.roles.get(&k.principal), Some(&k.role));
    }
    for (op, n) in &set.thresholds {
        assert_eq!(cfg.threshold(op), *n);
    }
    let sigs = [FIXTURE_ED25519_SIG.to_vec()];
    let report = GroupReport::check(
        SignerGroup::New,
        &cfg,
        set.version,
        data,
        &sigs,
        fixture_time(),
    );
    assert_eq!(report.needed, set.threshold(rotate_keys()));
    assert!(report.able >= report.needed as usize, "{report:?}");
    assert!(verify_rotation(&cfg, set.version, data, &sigs, fixture_time()).is_err());
    let _ = verify_rotation(
        &cfg,
        set.version.saturating_sub(1),
        data,
        &sigs,
        fixture_time(),
    );
}
