//! Key rotation against the real `ssh-keygen`: a signer set in force (a `signers.toml` on
//! disk, version 1), a proposed version 2, signatures made with `ssh-keygen -Y sign -n
//! castellan-signers`, and every refusal `verify_rotation` must make.
//!
//! Without `ssh-keygen` on PATH the tests print a note and pass, except under `CI=true`,
//! where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use castellan_core::{RejectReason, Role};
use castellan_sig::rotation::{BOOTSTRAP_VERSION, SetKey};
use castellan_sig::{
    OP_NAMESPACE, RotationError, SIGNERS_NAMESPACE, SignOptions, SignerConfig, SignerSet,
    sign_file, verify_rotation,
};
use castellan_testkit::{Key, keygen, need_ssh_keygen};
use jiff::Timestamp;

/// `ssh-keygen -Y sign -f KEY -n NS` over `msg` on stdin: the armored signature.
fn sign(key: &Key, ns: &str, msg: &[u8]) -> Vec<u8> {
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(&key.private)
        .args(["-n", ns])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ssh-keygen -Y verify` of `sig` over `msg` as `principal`, against an allowed_signers
/// text: the oracle that the new set's allowed_signers means what castellan says.
fn keygen_verifies(dir: &Path, allowed: &str, principal: &str, sig: &[u8], msg: &[u8]) -> bool {
    let allowed_path = dir.join("allowed_signers.oracle");
    std::fs::write(&allowed_path, allowed).unwrap();
    let sig_path = dir.join("oracle.sig");
    std::fs::write(&sig_path, sig).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed_path)
        .args(["-I", principal, "-n", SIGNERS_NAMESPACE, "-s"])
        .arg(&sig_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait().unwrap().success()
}

/// Keys and the set in force: alice and bob (operational), rex (recovery, may sign only
/// rotations), carol (reviewer), opsonly (operational, but its allowed_signers entry
/// permits only `castellan-op`); dave is not in it yet.
struct World {
    dir: tempfile::TempDir,
    alice: Key,
    bob: Key,
    rex: Key,
    carol: Key,
    opsonly: Key,
    dave: Key,
    /// The agent's signers.toml: the set in force at version 1.
    in_force: SignerConfig,
}

fn world(rotate_threshold: u32) -> World {
    let dir = tempfile::tempdir().unwrap();
    let k = |name: &str| keygen(dir.path(), name, "ed25519", None);
    let (alice, bob, rex, carol, opsonly, dave) = (
        k("alice"),
        k("bob"),
        k("rex"),
        k("carol"),
        k("opsonly"),
        k("dave"),
    );
    std::fs::write(
        dir.path().join("allowed_signers"),
        format!(
            "alice@example.com {}\nbob@example.com {}\nbreak-glass {}\ncarol@example.com {}\n\
             opsonly@example.com namespaces=\"castellan-op\" {}\n",
            alice.line, bob.line, rex.line, carol.line, opsonly.line
        ),
    )
    .unwrap();
    let signers_toml = dir.path().join("signers.toml");
    std::fs::write(
        &signers_toml,
        format!(
            "allowed_signers = \"allowed_signers\"\n\n[roles]\n\
             \"alice@example.com\" = \"operational\"\n\"bob@example.com\" = \"operational\"\n\
             \"break-glass\" = \"recovery\"\n\"carol@example.com\" = \"reviewer\"\n\
             \"opsonly@example.com\" = \"operational\"\n\n\
             [thresholds]\ndestroy = 2\nrotate_keys = {rotate_threshold}\n"
        ),
    )
    .unwrap();
    let in_force = SignerConfig::load(&signers_toml).unwrap();
    World {
        dir,
        alice,
        bob,
        rex,
        carol,
        opsonly,
        dave,
        in_force,
    }
}

impl World {
    /// The set in force written out as a document (version 1), then edited: bob removed,
    /// dave added, `rotate_keys = new_threshold`, at `version`.
    fn proposal(&self, version: u64, new_threshold: u32) -> (PathBuf, Vec<u8>) {
        let mut set = SignerSet::from_config(&self.in_force, BOOTSTRAP_VERSION).unwrap();
        assert_eq!(set.keys.len(), 5);
        set.version = version;
        set.keys.retain(|k| k.principal != "bob@example.com");
        set.keys
            .push(SetKey::new("dave@example.com", Role::Operational, &self.dave.line).unwrap());
        set.thresholds
            .insert("rotate_keys".to_owned(), new_threshold);
        let set = set.validate().unwrap();
        let path = self.dir.path().join(format!("signers-v{version}.toml"));
        let bytes = set.render().unwrap().into_bytes();
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

#[test]
fn accepted_when_both_thresholds_are_met() {
    need_ssh_keygen!();
    let w = world(2);
    let (_, doc) = w.proposal(2, 2);
    let sigs = vec![
        sign(&w.alice, SIGNERS_NAMESPACE, &doc),
        sign(&w.rex, SIGNERS_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let a = verify_rotation(&w.in_force, BOOTSTRAP_VERSION, &doc, &sigs, now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.version, 2);
    assert_eq!(a.replaces, 1);
    // The digest is the file's sha256, as sha256sum would print it.
    use sha2::Digest as _;
    assert_eq!(a.digest, hex::encode(sha2::Sha256::digest(&doc)));
    // Fingerprints as `ssh-keygen -l` prints them.
    let mut in_force = vec![w.alice.fingerprint.clone(), w.rex.fingerprint.clone()];
    in_force.sort();
    assert_eq!(a.in_force_signers, in_force);
    let mut new = vec![
        w.alice.fingerprint.clone(),
        w.rex.fingerprint.clone(),
        w.dave.fingerprint.clone(),
    ];
    new.sort();
    assert_eq!(a.new_signers, new);
    assert_eq!(a.diff.removed.len(), 1);
    assert_eq!(a.diff.removed[0].fingerprint, w.bob.fingerprint);
    assert_eq!(a.diff.added.len(), 1);
    assert_eq!(a.diff.added[0].fingerprint, w.dave.fingerprint);
    assert_eq!(a.diff.thresholds, vec![]);

    // ssh-keygen reads the new set's allowed_signers the same way.
    let allowed = a.set.allowed_signers_text();
    assert!(keygen_verifies(
        w.dir.path(),
        &allowed,
        "dave@example.com",
        &sigs[2],
        &doc
    ));
    assert!(!keygen_verifies(
        w.dir.path(),
        &allowed,
        "bob@example.com",
        &sign(&w.bob, SIGNERS_NAMESPACE, &doc),
        &doc
    ));
}

#[test]
fn signatures_made_by_sign_file_beside_the_document() {
    need_ssh_keygen!();
    let w = world(1);
    let (path, doc) = w.proposal(2, 1);
    let first = sign_file(
        &SignOptions::new(&w.alice.private),
        SIGNERS_NAMESPACE,
        &path,
    )
    .unwrap();
    let second = sign_file(&SignOptions::new(&w.dave.private), SIGNERS_NAMESPACE, &path).unwrap();
    assert_eq!(first, w.dir.path().join("signers-v2.toml.sig"));
    assert_eq!(second, w.dir.path().join("signers-v2.toml.2.sig"));
    let sigs = vec![
        std::fs::read(first).unwrap(),
        std::fs::read(second).unwrap(),
    ];
    verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn refused_with_too_few_keys_of_the_set_in_force() {
    need_ssh_keygen!();
    let w = world(2);
    let (_, doc) = w.proposal(2, 1);
    // alice counts; dave is not in the set in force yet.
    let sigs = vec![
        sign(&w.alice, SIGNERS_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert!(matches!(e, RotationError::TooFewInForce(_)), "{e:?}");
    assert_eq!(e.reason(), RejectReason::ThresholdNotMet);
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "too few signatures by the set in force (version 1): rotate_keys needs 2 distinct key(s) with role operational or recovery, got 1 of 2"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "signature 2: refused: unknown_signer: no allowed_signers entry for key {}",
            w.dave.fingerprint
        )),
        "{msg}"
    );
}

#[test]
fn refused_with_too_few_keys_of_the_new_set() {
    need_ssh_keygen!();
    let w = world(1);
    let (_, doc) = w.proposal(2, 2);
    // alice and bob satisfy the set in force; bob is not in the new set, so only alice
    // counts there.
    let sigs = vec![
        sign(&w.alice, SIGNERS_NAMESPACE, &doc),
        sign(&w.bob, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert!(matches!(e, RotationError::TooFewNew(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "too few signatures by the new set (version 2): rotate_keys needs 2 distinct key(s) with role operational or recovery, got 1 of 2"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "unknown_signer: no allowed_signers entry for key {}",
            w.bob.fingerprint
        )),
        "{msg}"
    );
}

#[test]
fn a_reviewer_cannot_sign_a_rotation() {
    need_ssh_keygen!();
    let w = world(1);
    let (_, doc) = w.proposal(2, 1);
    let sigs = vec![
        sign(&w.carol, SIGNERS_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert!(matches!(e, RotationError::TooFewInForce(_)), "{e:?}");
    assert_eq!(e.reason(), RejectReason::RoleDenied);
    let msg = e.to_string();
    assert!(msg.contains("got 0 of 1"), "{msg}");
    assert!(
        msg.contains(&format!(
            "signature 1: by {} (carol@example.com) counts for nothing: it holds role reviewer, and only operational or recovery may sign a rotation",
            w.carol.fingerprint
        )),
        "{msg}"
    );
}

#[test]
fn a_key_whose_namespaces_exclude_rotation_cannot_sign_one() {
    need_ssh_keygen!();
    let w = world(1);
    let (_, doc) = w.proposal(2, 1);
    let sigs = vec![
        sign(&w.opsonly, SIGNERS_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert!(matches!(e, RotationError::TooFewInForce(_)), "{e:?}");
    assert_eq!(e.reason(), RejectReason::WrongNamespace);
    assert!(
        e.to_string()
            .contains("does not permit namespace \"castellan-signers\""),
        "{e}"
    );
    // And an op signature is no rotation signature, even by a key that may rotate.
    let sigs = vec![
        sign(&w.alice, OP_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert_eq!(e.reason(), RejectReason::WrongNamespace, "{e}");
    assert!(
        e.to_string()
            .contains("signed for namespace \"castellan-op\", expected \"castellan-signers\""),
        "{e}"
    );
}

#[test]
fn older_and_equal_versions_are_refused() {
    need_ssh_keygen!();
    let w = world(1);
    for (version, in_force, want) in [
        (
            2,
            2,
            "version 2 is not newer than the set in force, version 2",
        ),
        (
            2,
            3,
            "version 2 is not newer than the set in force, version 3",
        ),
    ] {
        let (_, doc) = w.proposal(version, 1);
        // Properly signed by both groups: the version alone refuses it.
        let sigs = vec![
            sign(&w.alice, SIGNERS_NAMESPACE, &doc),
            sign(&w.dave, SIGNERS_NAMESPACE, &doc),
        ];
        assert!(verify_rotation(&w.in_force, version - 1, &doc, &sigs, now()).is_ok());
        let e = verify_rotation(&w.in_force, in_force, &doc, &sigs, now()).unwrap_err();
        assert_eq!(e.to_string(), want);
        assert!(matches!(e, RotationError::NotNewer { .. }));
        assert_eq!(e.reason(), RejectReason::Replayed);
    }
}

#[test]
fn one_key_signing_twice_counts_once() {
    need_ssh_keygen!();
    let w = world(2);
    let (path, doc) = w.proposal(2, 1);
    // Two signature files by alice, made one after the other.
    let opts = SignOptions::new(&w.alice.private);
    let a1 = sign_file(&opts, SIGNERS_NAMESPACE, &path).unwrap();
    let a2 = sign_file(&opts, SIGNERS_NAMESPACE, &path).unwrap();
    assert_ne!(a1, a2);
    let sigs = vec![
        std::fs::read(a1).unwrap(),
        std::fs::read(a2).unwrap(),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    let e = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_err();
    assert!(matches!(e, RotationError::TooFewInForce(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("got 1 of 2"), "{msg}");
    assert!(
        msg.contains(&format!(
            "signature 2: by {} again: a key counts once",
            w.alice.fingerprint
        )),
        "{msg}"
    );
}

#[test]
fn a_removed_key_is_refused_at_once_afterwards() {
    need_ssh_keygen!();
    let w = world(1);
    let op = b"version = 3\nop = \"destroy\"\nhost = \"pve-01\"\ntarget = \"lxc/101\"\n";
    // Before: bob signs ops.
    let bob_op = sign(&w.bob, OP_NAMESPACE, op);
    w.in_force.verify(OP_NAMESPACE, op, &bob_op, now()).unwrap();

    let (_, doc) = w.proposal(2, 1);
    let sigs = vec![
        sign(&w.bob, SIGNERS_NAMESPACE, &doc),
        sign(&w.dave, SIGNERS_NAMESPACE, &doc),
    ];
    // bob may sign his own removal (he is in the set in force).
    let a = verify_rotation(&w.in_force, 1, &doc, &sigs, now()).unwrap_or_else(|e| panic!("{e}"));

    // After: the new set in force refuses bob's op signature, and his rotation signature.
    let r = a
        .config
        .verify(OP_NAMESPACE, op, &bob_op, now())
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::UnknownSigner);
    let checks = a
        .config
        .verify_all(OP_NAMESPACE, op, std::slice::from_ref(&bob_op), now());
    assert!(checks[0].is_err());
    let dave_op = sign(&w.dave, OP_NAMESPACE, op);
    let v = a.config.verify(OP_NAMESPACE, op, &dave_op, now()).unwrap();
    assert_eq!(
        a.config.roles_of(&v).into_iter().collect::<Vec<_>>(),
        vec![Role::Operational]
    );

    // The next rotation is judged by the new set: bob no longer counts.
    let mut next = a.set.clone();
    next.version = 3;
    let next = next.validate().unwrap().render().unwrap().into_bytes();
    let e = verify_rotation(
        &a.config,
        a.version,
        &next,
        &[sign(&w.bob, SIGNERS_NAMESPACE, &next)],
        now(),
    )
    .unwrap_err();
    assert_eq!(e.reason(), RejectReason::UnknownSigner, "{e}");
}

#[test]
fn a_rotated_set_loads_and_converts_like_signers_toml() {
    need_ssh_keygen!();
    let w = world(2);
    let (path, _) = w.proposal(2, 2);
    let set = SignerSet::load(&path).unwrap();
    let config = set.to_config().unwrap();
    // Same answers as a signers.toml with these keys would give.
    assert_eq!(config.threshold("destroy"), 2);
    assert_eq!(config.threshold("rotate_keys"), 2);
    // Unset, a decommission needs the operation table's two keys; anything else one.
    assert!(!config.thresholds.contains_key("decommission"));
    assert_eq!(config.threshold("decommission"), 2);
    assert_eq!(set.threshold("decommission"), 2);
    assert_eq!(config.threshold("review"), 1);
    let roles: BTreeMap<&str, Role> = config.roles.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    assert_eq!(roles.get("break-glass"), Some(&Role::Recovery));
    assert_eq!(roles.get("bob@example.com"), None);
    // opsonly keeps its namespace restriction through the conversion.
    let opsonly = set
        .keys
        .iter()
        .find(|k| k.principal == "opsonly@example.com")
        .unwrap();
    assert_eq!(opsonly.namespaces, Some(vec![OP_NAMESPACE.to_owned()]));

    // A file that is not a set names itself.
    let junk = w.dir.path().join("junk.toml");
    std::fs::write(&junk, "version = \"two\"\n").unwrap();
    let e = SignerSet::load(&junk).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: not a signer set: ", junk.display())),
        "{e}"
    );
}
