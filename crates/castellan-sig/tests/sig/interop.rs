//! The same allowed_signers file, signatures and clock through castellan's verifier and
//! `ssh-keygen -Y verify`: the decisions must agree (castellan only being stricter where
//! documented: security-key user presence, the exact valid-before second).

use castellan_sig::{AllowedSigners, OP_NAMESPACE, verify};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::common::{Key, keygen, keygen_verify, sign};
use crate::need_ssh_keygen;

const MSG: &[u8] = b"interop message\n";
/// Central European time as a POSIX TZ string, so neither jiff nor ssh-keygen (glibc)
/// needs the tz database.
const TZ: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

/// castellan's answer to "is `sig` a valid signature by `principal` for `ns` at `at`".
fn ours(signers: &AllowedSigners, principal: &str, ns: &str, sig: &[u8], at: Timestamp) -> bool {
    let Ok(v) = verify(signers, ns, MSG, sig, at) else {
        return false;
    };
    signers.entries.iter().any(|e| {
        e.fingerprint == v.fingerprint
            && e.matches_principal(principal)
            && e.permits_namespace(ns)
            && e.is_valid_at(at)
    })
}

struct Fixture {
    dir: tempfile::TempDir,
    keys: Vec<Key>,
    text: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = vec![
        keygen(d, "alice", "ed25519", None),
        keygen(d, "ops", "ecdsa", Some(256)),
        keygen(d, "carol", "rsa", Some(2048)),
        keygen(d, "dave", "ecdsa", Some(384)),
        keygen(d, "erin", "ecdsa", Some(521)),
        keygen(d, "frank", "ed25519", None),
    ];
    let text = format!(
        "# interop fixture\n\
         alice@example.com {}\n\
         \n\
         \"*@ops.example.com,!mallory@ops.example.com\" namespaces=\"castellan-op,file\" {}\n\
         carol NAMESPACES=\"castellan-*\",Valid-After=\"20200101\",valid-before=\"20990101Z\" {}\n\
         dave valid-before=\"20210101Z\" {}\n\
         erin valid-after=\"209901011200\" {}\n\
         \"frank smith\" namespaces=\"git\" {}\n",
        keys[0].line, keys[1].line, keys[2].line, keys[3].line, keys[4].line, keys[5].line
    );
    Fixture { dir, keys, text }
}

fn agree(f: &Fixture, text: &str, signers: &AllowedSigners) {
    let principals = [
        "alice@example.com",
        "bob@ops.example.com",
        "mallory@ops.example.com",
        "carol",
        "dave",
        "erin",
        "frank smith",
        "nobody",
    ];
    let now = Timestamp::now();
    let mut accepted = 0;
    for key in &f.keys {
        for ns in [OP_NAMESPACE, "file", "git"] {
            let sig = sign(&key.private, ns, MSG, None);
            for p in principals {
                let theirs = keygen_verify(f.dir.path(), text, p, ns, &sig, MSG, None, Some(TZ));
                let mine = ours(signers, p, ns, &sig, now);
                assert_eq!(
                    mine,
                    theirs,
                    "key {} ns {ns} principal {p}: castellan {mine}, ssh-keygen {theirs}",
                    key.private.display()
                );
                accepted += usize::from(mine);
            }
        }
    }
    // alice x3 namespaces, ops: bob x2, carol x1, frank x1.
    assert_eq!(accepted, 7);
}

#[test]
fn decisions_agree_with_ssh_keygen() {
    need_ssh_keygen!();
    let f = fixture();
    let tz = TimeZone::posix(TZ).unwrap();
    let signers = AllowedSigners::parse_in(&f.text, &tz).unwrap();
    agree(&f, &f.text, &signers);
}

#[test]
fn canonical_text_is_accepted_by_ssh_keygen_the_same_way() {
    need_ssh_keygen!();
    let f = fixture();
    let tz = TimeZone::posix(TZ).unwrap();
    let canonical = AllowedSigners::parse_in(&f.text, &tz).unwrap().to_text();
    let signers = AllowedSigners::parse_in(&canonical, &TimeZone::UTC).unwrap();
    agree(&f, &canonical, &signers);
}

#[test]
fn local_time_boundaries_agree() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k", "ed25519", None);
    // Noon in Berlin in winter is 11:00 UTC.
    let text = format!(
        "k valid-after=\"202401011200\",valid-before=\"20240102\" {}\n",
        key.line
    );
    let signers = AllowedSigners::parse_in(&text, &TimeZone::posix(TZ).unwrap()).unwrap();
    let sig = sign(&key.private, OP_NAMESPACE, MSG, None);
    for (t, ok) in [
        ("20240101105959Z", false),
        ("20240101110000Z", true),
        ("20240101225959Z", true),
        ("20240101230001Z", false),
    ] {
        let theirs = keygen_verify(
            dir.path(),
            &text,
            "k",
            OP_NAMESPACE,
            &sig,
            MSG,
            Some(t),
            Some(TZ),
        );
        let at = jiff::civil::DateTime::strptime("%Y%m%d%H%M%SZ", t)
            .unwrap()
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp();
        let mine = ours(&signers, "k", OP_NAMESPACE, &sig, at);
        assert_eq!((mine, theirs), (ok, ok), "at {t}");
    }
    // The one documented difference: at exactly valid-before OpenSSH still accepts,
    // castellan does not (valid-before is exclusive).
    let at = "2024-01-01T23:00:00Z".parse().unwrap();
    assert!(!ours(&signers, "k", OP_NAMESPACE, &sig, at));
    assert!(keygen_verify(
        dir.path(),
        &text,
        "k",
        OP_NAMESPACE,
        &sig,
        MSG,
        Some("20240101230000Z"),
        Some(TZ)
    ));
}
