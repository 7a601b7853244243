//! Verification of real ssh-keygen signatures, and every way one is refused.

use castellan_core::RejectReason;
use castellan_sig::sshsig::{armor, dearmor};
use castellan_sig::{OP_NAMESPACE, verify};
use jiff::Timestamp;

use crate::common::{Key, keygen, parse, sign, split_strings, sshsig_blob, ts};
use crate::need_ssh_keygen;

const MSG: &[u8] = b"op = \"destroy\"\ntarget = 104\n";

fn now() -> Timestamp {
    Timestamp::now()
}

fn one_key(ty: &str, bits: Option<u32>) -> (tempfile::TempDir, Key) {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "op", ty, bits);
    (dir, key)
}

#[test]
fn every_supported_algorithm_verifies() {
    need_ssh_keygen!();
    let cases = [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", Some(256), "ecdsa-sha2-nistp256"),
        ("ecdsa", Some(384), "ecdsa-sha2-nistp384"),
        ("ecdsa", Some(521), "ecdsa-sha2-nistp521"),
        ("rsa", Some(2048), "rsa-sha2-512"),
    ];
    for (ty, bits, alg) in cases {
        let (_dir, key) = one_key(ty, bits);
        let signers = parse(&format!("alice@example.com {}\n", key.line));
        for hash in [None, Some("sha256"), Some("sha512")] {
            let sig = sign(&key.private, OP_NAMESPACE, MSG, hash);
            let v = verify(&signers, OP_NAMESPACE, MSG, &sig, now())
                .unwrap_or_else(|r| panic!("{ty} {bits:?} {hash:?}: {r}"));
            assert_eq!(v.algorithm, alg);
            assert_eq!(v.principals, vec!["alice@example.com"]);
            assert_eq!(v.entry_line, 1);
            assert_eq!(v.fingerprint, signers.entries[0].fingerprint);
        }
    }
}

#[test]
fn fingerprint_is_what_ssh_keygen_prints() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("ed25519", None);
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key.public)
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    let fp = printed.split_whitespace().nth(1).unwrap();
    assert_eq!(parse(&format!("a {}", key.line)).entries[0].fingerprint, fp);
}

#[test]
fn refusals() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let alice = keygen(dir.path(), "alice", "ed25519", None);
    let mallory = keygen(dir.path(), "mallory", "ed25519", None);
    let signers = parse(&format!(
        "alice@example.com {}\n\
         git@example.com namespaces=\"git\" {}\n",
        alice.line,
        // mallory's key is trusted for git only
        mallory.line,
    ));
    let good = sign(&alice.private, OP_NAMESPACE, MSG, None);
    assert!(verify(&signers, OP_NAMESPACE, MSG, &good, now()).is_ok());

    let reject = |sig: &[u8], ns: &str, msg: &[u8]| -> castellan_sig::Rejected {
        verify(&signers, ns, msg, sig, now()).expect_err("must be refused")
    };

    // Tampered message.
    let r = reject(&good, OP_NAMESPACE, b"op = \"destroy\"\ntarget = 105\n");
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");
    assert!(r.detail.contains(&signers.entries[0].fingerprint), "{r}");

    // Signed under another namespace.
    let file_sig = sign(&alice.private, "file", MSG, None);
    let r = reject(&file_sig, OP_NAMESPACE, MSG);
    assert_eq!(r.reason, RejectReason::WrongNamespace);
    assert_eq!(
        r.to_string(),
        "wrong_namespace: signed for namespace \"file\", expected \"castellan-op\""
    );

    // Right namespace in the signature, but the entry does not permit it.
    let m = sign(&mallory.private, OP_NAMESPACE, MSG, None);
    let r = reject(&m, OP_NAMESPACE, MSG);
    assert_eq!(r.reason, RejectReason::WrongNamespace, "{r}");
    assert!(r.detail.contains("line 2"), "{r}");
    // ... and that key is fine for what it is permitted.
    let g = sign(&mallory.private, "git", MSG, None);
    assert!(verify(&signers, "git", MSG, &g, now()).is_ok());

    // Unknown signer.
    let stranger = keygen(dir.path(), "stranger", "ecdsa", Some(256));
    let s = sign(&stranger.private, OP_NAMESPACE, MSG, None);
    let r = reject(&s, OP_NAMESPACE, MSG);
    assert_eq!(r.reason, RejectReason::UnknownSigner);
    let stranger_fp = parse(&format!("x {}", stranger.line)).entries[0]
        .fingerprint
        .clone();
    assert_eq!(
        r.detail,
        format!("no allowed_signers entry for key {stranger_fp}")
    );
}

#[test]
fn validity_window() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("ed25519", None);
    let signers = parse(&format!(
        "a valid-after=\"20240101Z\",valid-before=\"20250101Z\" {}\n",
        key.line
    ));
    let sig = sign(&key.private, OP_NAMESPACE, MSG, None);
    let at = |s| verify(&signers, OP_NAMESPACE, MSG, &sig, ts(s));
    assert!(at("2024-06-01T00:00:00Z").is_ok());
    assert!(
        at("2024-01-01T00:00:00Z").is_ok(),
        "valid-after is inclusive"
    );
    let r = at("2023-12-31T23:59:59Z").unwrap_err();
    assert_eq!(r.reason, RejectReason::NotYetValid, "{r}");
    assert!(r.detail.contains("valid-after 2024-01-01T00:00:00Z"), "{r}");
    let r = at("2025-01-01T00:00:00Z").unwrap_err();
    assert_eq!(
        r.reason,
        RejectReason::Expired,
        "valid-before is exclusive: {r}"
    );
    let r = at("2030-01-01T00:00:00Z").unwrap_err();
    assert_eq!(r.reason, RejectReason::Expired);
    assert!(r.detail.contains("line 1"), "{r}");
}

#[test]
fn a_later_entry_for_the_same_key_can_admit() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("ed25519", None);
    let signers = parse(&format!(
        "old valid-before=\"20200101Z\" {k}\n\
         git namespaces=\"git\" {k}\n\
         alice@example.com,ops-* namespaces=\"castellan-*\" {k}\n",
        k = key.line
    ));
    let sig = sign(&key.private, OP_NAMESPACE, MSG, None);
    let v = verify(&signers, OP_NAMESPACE, MSG, &sig, now()).unwrap();
    assert_eq!(v.entry_line, 3);
    assert_eq!(v.principals, vec!["alice@example.com", "ops-*"]);
}

#[test]
fn malformed_signatures_are_bad_format() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("ed25519", None);
    let signers = parse(&format!("a {}\n", key.line));
    let good = sign(&key.private, OP_NAMESPACE, MSG, None);
    let text = String::from_utf8(good.clone()).unwrap();
    let blob = dearmor(&good).unwrap();

    let mut trailing = blob.clone();
    trailing.push(0);
    let mut v2 = blob.clone();
    v2[9] = 2;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "missing -----BEGIN"),
        ("garbage", b"hello world".to_vec(), "missing -----BEGIN"),
        ("binary", vec![0xff, 0xfe, 0], "not text"),
        (
            "header only",
            b"-----BEGIN SSH SIGNATURE-----\n".to_vec(),
            "missing -----END",
        ),
        (
            "truncated armor",
            text.as_bytes()[..text.len() / 2].to_vec(),
            "missing -----END",
        ),
        (
            "bad base64",
            text.replacen("U1NIU0lH", "U1NI*0lH", 1).into_bytes(),
            "base64",
        ),
        (
            "text after end",
            format!("{text}more\n").into_bytes(),
            "text after the END line",
        ),
        (
            "truncated blob",
            armor(&blob[..blob.len() - 10]).into_bytes(),
            "truncated",
        ),
        (
            "trailing data",
            armor(&trailing).into_bytes(),
            "trailing data",
        ),
        (
            "version 2",
            armor(&v2).into_bytes(),
            "unsupported version 2",
        ),
        (
            "wrong magic",
            armor(&[b"SSHSIX", &blob[6..]].concat()).into_bytes(),
            "magic",
        ),
        (
            "too large",
            vec![b'A'; castellan_sig::sshsig::MAX_SIGNATURE_BYTES + 1],
            "more than the limit",
        ),
    ];
    for (name, sig, want) in cases {
        let r = verify(&signers, OP_NAMESPACE, MSG, &sig, now()).expect_err(name);
        assert_eq!(r.reason, RejectReason::BadFormat, "{name}: {r}");
        assert!(r.detail.contains(want), "{name}: {r}");
    }

    // An unsupported hash algorithm.
    let parts = split_strings(&blob[10..]);
    let sha1 = sshsig_blob(&parts[0], OP_NAMESPACE, "sha1", &parts[4]);
    let r = verify(&signers, OP_NAMESPACE, MSG, armor(&sha1).as_bytes(), now()).unwrap_err();
    assert_eq!(r.reason, RejectReason::BadFormat);
    assert!(
        r.detail.contains("unsupported hash algorithm \"sha1\""),
        "{r}"
    );

    // CRLF line ends are fine.
    let crlf = text.replace('\n', "\r\n");
    assert!(verify(&signers, OP_NAMESPACE, MSG, crlf.as_bytes(), now()).is_ok());
}

#[test]
fn hash_algorithm_is_bound() {
    need_ssh_keygen!();
    // Relabelling a sha512 signature as sha256 must not verify.
    let (_dir, key) = one_key("ed25519", None);
    let signers = parse(&format!("a {}\n", key.line));
    let blob = dearmor(&sign(&key.private, OP_NAMESPACE, MSG, Some("sha512"))).unwrap();
    let p = split_strings(&blob[10..]);
    let relabelled = sshsig_blob(&p[0], OP_NAMESPACE, "sha256", &p[4]);
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&relabelled).as_bytes(),
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");
}

#[test]
fn swapped_embedded_key_does_not_verify() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let trusted = keygen(dir.path(), "trusted", "ed25519", None);
    let attacker = keygen(dir.path(), "attacker", "ed25519", None);
    let signers = parse(&format!("alice {}\n", trusted.line));
    let trusted_blob = parse(&format!("x {}", trusted.line)).entries[0]
        .key
        .to_bytes()
        .unwrap();

    // The attacker signs with their own key, then claims to be the trusted key.
    let sig = dearmor(&sign(&attacker.private, OP_NAMESPACE, MSG, None)).unwrap();
    let p = split_strings(&sig[10..]);
    let forged = sshsig_blob(&trusted_blob, OP_NAMESPACE, "sha512", &p[4]);
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&forged).as_bytes(),
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");

    // A different algorithm's signature under the trusted key's name.
    let ec = keygen(dir.path(), "ec", "ecdsa", Some(256));
    let sig = dearmor(&sign(&ec.private, OP_NAMESPACE, MSG, None)).unwrap();
    let p = split_strings(&sig[10..]);
    let forged = sshsig_blob(&trusted_blob, OP_NAMESPACE, "sha512", &p[4]);
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&forged).as_bytes(),
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");
    assert!(r.detail.contains("does not fit"), "{r}");
}

#[test]
fn ssh_rsa_sha1_signatures_are_refused() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("rsa", Some(2048));
    let signers = parse(&format!("a {}\n", key.line));
    let blob = dearmor(&sign(&key.private, OP_NAMESPACE, MSG, None)).unwrap();
    let p = split_strings(&blob[10..]);
    // Re-label the rsa-sha2-512 signature as ssh-rsa (what a SHA-1 signature is called).
    let inner = split_strings(&p[4]);
    assert_eq!(inner[0], b"rsa-sha2-512");
    let mut sig = Vec::new();
    crate::common::put_string(&mut sig, b"ssh-rsa");
    crate::common::put_string(&mut sig, &inner[1]);
    let relabelled = sshsig_blob(&p[0], OP_NAMESPACE, "sha512", &sig);
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&relabelled).as_bytes(),
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");
    assert!(r.detail.contains("sha-1"), "{r}");

    // rsa-sha2-256 is fine when genuine; relabelling 512 as 256 is not.
    let mut sig = Vec::new();
    crate::common::put_string(&mut sig, b"rsa-sha2-256");
    crate::common::put_string(&mut sig, &inner[1]);
    let relabelled = sshsig_blob(&p[0], OP_NAMESPACE, "sha512", &sig);
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&relabelled).as_bytes(),
        now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature, "{r}");
}

#[test]
fn rejected_display_and_details_carry_no_key_material() {
    need_ssh_keygen!();
    let (_dir, key) = one_key("ed25519", None);
    let private = std::fs::read_to_string(&key.private).unwrap();
    let signers = parse(&format!("a {}\n", key.line));
    let sig = sign(&key.private, OP_NAMESPACE, MSG, None);
    let r = verify(&signers, OP_NAMESPACE, b"other", &sig, now()).unwrap_err();
    assert_eq!(r.to_string(), format!("{}: {}", r.reason, r.detail));
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!r.detail.contains(line));
    }
}
