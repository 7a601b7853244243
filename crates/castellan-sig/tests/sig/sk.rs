//! Security-key (FIDO/U2F) signatures, minted in the test per OpenSSH PROTOCOL.u2f:
//! the key signs SHA256(application) || flags || counter || SHA256(SSHSIG signed data).

use castellan_core::RejectReason;
use castellan_sig::sshsig::armor;
use castellan_sig::{OP_NAMESPACE, verify};
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::common::{keygen_verify, parse, put_mpint, put_string, sshsig_blob};

const MSG: &[u8] = b"op = \"destroy\"\n";
const UP: u8 = 0x01;

fn sk_signed(app: &str, flags: u8, counter: u32, ns: &str, msg: &[u8]) -> Vec<u8> {
    let inner = SshSig::signed_data(ns, HashAlg::Sha512, msg).unwrap();
    let mut d = Sha256::digest(app.as_bytes()).to_vec();
    d.push(flags);
    d.extend_from_slice(&counter.to_be_bytes());
    d.extend_from_slice(&Sha256::digest(&inner));
    d
}

/// An sk-ssh-ed25519 key from a fixed seed: (public key blob, allowed_signers key text).
pub struct SkEd {
    sk: ed25519_dalek::SigningKey,
    app: String,
}

impl SkEd {
    pub fn new(seed: u8, app: &str) -> Self {
        Self {
            sk: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            app: app.into(),
        }
    }
    pub fn blob(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_string(&mut b, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut b, self.sk.verifying_key().as_bytes());
        put_string(&mut b, self.app.as_bytes());
        b
    }
    pub fn line(&self) -> String {
        PublicKey::from_bytes(&self.blob())
            .unwrap()
            .to_openssh()
            .unwrap()
    }
    pub fn sign(&self, flags: u8, ns: &str, msg: &[u8]) -> Vec<u8> {
        let sig = self.sk.sign(&sk_signed(&self.app, flags, 7, ns, msg));
        let mut s = Vec::new();
        put_string(&mut s, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut s, &sig.to_bytes());
        s.push(flags);
        s.extend_from_slice(&7u32.to_be_bytes());
        armor(&sshsig_blob(&self.blob(), ns, "sha512", &s)).into_bytes()
    }
}

/// An sk-ecdsa-sha2-nistp256 key from a fixed scalar.
pub struct SkEcdsa {
    sk: p256::ecdsa::SigningKey,
    app: String,
}

impl SkEcdsa {
    pub fn new(seed: u8, app: &str) -> Self {
        Self {
            sk: p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap(),
            app: app.into(),
        }
    }
    pub fn blob(&self) -> Vec<u8> {
        let point = self.sk.verifying_key().to_encoded_point(false);
        let mut b = Vec::new();
        put_string(&mut b, b"sk-ecdsa-sha2-nistp256@openssh.com");
        put_string(&mut b, b"nistp256");
        put_string(&mut b, point.as_bytes());
        put_string(&mut b, self.app.as_bytes());
        b
    }
    pub fn line(&self) -> String {
        PublicKey::from_bytes(&self.blob())
            .unwrap()
            .to_openssh()
            .unwrap()
    }
    pub fn sign(&self, flags: u8, ns: &str, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::Signature = self.sk.sign(&sk_signed(&self.app, flags, 9, ns, msg));
        let (r, s) = sig.split_bytes();
        let mut inner = Vec::new();
        put_mpint(&mut inner, &r);
        put_mpint(&mut inner, &s);
        let mut out = Vec::new();
        put_string(&mut out, b"sk-ecdsa-sha2-nistp256@openssh.com");
        put_string(&mut out, &inner);
        out.push(flags);
        out.extend_from_slice(&9u32.to_be_bytes());
        armor(&sshsig_blob(&self.blob(), ns, "sha512", &out)).into_bytes()
    }
}

#[test]
fn sk_ed25519_needs_user_presence() {
    let key = SkEd::new(1, "ssh:");
    let signers = parse(&format!("alice {}\n", key.line()));
    let now = jiff::Timestamp::now();

    let v = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &key.sign(UP, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap();
    assert_eq!(v.algorithm, "sk-ssh-ed25519@openssh.com");
    // UP together with other flags (user verified, 0x04) is fine.
    assert!(
        verify(
            &signers,
            OP_NAMESPACE,
            MSG,
            &key.sign(UP | 0x04, OP_NAMESPACE, MSG),
            now
        )
        .is_ok()
    );

    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &key.sign(0, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(r.detail.starts_with("user presence not asserted"), "{r}");
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &key.sign(0x04, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap_err();
    assert!(r.detail.starts_with("user presence not asserted"), "{r}");

    // A tampered message fails as a signature, not as user presence.
    let r = verify(
        &signers,
        OP_NAMESPACE,
        b"x",
        &key.sign(0, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(r.detail.contains("does not verify"), "{r}");
}

#[test]
fn flipping_the_flags_breaks_the_signature() {
    // The flags are covered by the signature: setting UP afterwards does not help.
    let key = SkEd::new(2, "ssh:");
    let signers = parse(&format!("alice {}\n", key.line()));
    let sig = key.sign(0, OP_NAMESPACE, MSG);
    let mut blob = castellan_sig::sshsig::dearmor(&sig).unwrap();
    let flags_at = blob.len() - 5;
    blob[flags_at] = UP;
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        armor(&blob).as_bytes(),
        jiff::Timestamp::now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(r.detail.contains("does not verify"), "{r}");
}

#[test]
fn sk_ecdsa_needs_user_presence() {
    let key = SkEcdsa::new(3, "ssh:");
    let signers = parse(&format!("alice {}\n", key.line()));
    let now = jiff::Timestamp::now();
    let v = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &key.sign(UP, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap();
    assert_eq!(v.algorithm, "sk-ecdsa-sha2-nistp256@openssh.com");
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &key.sign(0, OP_NAMESPACE, MSG),
        now,
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(r.detail.starts_with("user presence not asserted"), "{r}");
}

#[test]
fn application_string_is_part_of_the_key() {
    // Same key pair, other application: a different key, not in the list.
    let trusted = SkEd::new(4, "ssh:");
    let other_app = SkEd::new(4, "ssh:castellan");
    let signers = parse(&format!("alice {}\n", trusted.line()));
    let r = verify(
        &signers,
        OP_NAMESPACE,
        MSG,
        &other_app.sign(UP, OP_NAMESPACE, MSG),
        jiff::Timestamp::now(),
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::UnknownSigner, "{r}");
}

#[test]
fn ssh_keygen_accepts_the_minted_signatures() {
    crate::need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let ed = SkEd::new(5, "ssh:");
    let ec = SkEcdsa::new(6, "ssh:");
    let allowed = format!("alice {}\nbob {}\n", ed.line(), ec.line());
    let ours = parse(&allowed);
    let now = jiff::Timestamp::now();
    for (principal, sig) in [
        ("alice", ed.sign(UP, OP_NAMESPACE, MSG)),
        ("bob", ec.sign(UP, OP_NAMESPACE, MSG)),
    ] {
        assert!(verify(&ours, OP_NAMESPACE, MSG, &sig, now).is_ok());
        assert!(
            keygen_verify(
                dir.path(),
                &allowed,
                principal,
                OP_NAMESPACE,
                &sig,
                MSG,
                None,
                None
            ),
            "ssh-keygen refused the {principal} signature"
        );
    }
    // ssh-keygen -Y verify does not require user presence; castellan does.
    let no_up = ed.sign(0, OP_NAMESPACE, MSG);
    assert!(keygen_verify(
        dir.path(),
        &allowed,
        "alice",
        OP_NAMESPACE,
        &no_up,
        MSG,
        None,
        None
    ));
    assert!(verify(&ours, OP_NAMESPACE, MSG, &no_up, now).is_err());
}
