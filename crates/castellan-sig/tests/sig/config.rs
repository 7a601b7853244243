//! signers.toml: loading, validation, roles and thresholds.

use std::collections::BTreeSet;

use castellan_core::Role;
use castellan_sig::{SignerConfig, SignerConfigError, Verified};

const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
const K2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICAeXPKcJnMTRS9Tg4emm1wS/O+r9jnb/DJ//VlOEkMg";

fn setup(allowed: &str, toml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/allowed_signers"), allowed).unwrap();
    let path = dir.path().join("signers.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

fn verified(c: &SignerConfig, line: usize) -> Verified {
    let e = c.allowed.entries.iter().find(|e| e.line == line).unwrap();
    Verified {
        fingerprint: e.fingerprint.clone(),
        principals: e.principals.clone(),
        algorithm: "ssh-ed25519".into(),
        entry_line: line,
    }
}

#[test]
fn loads_and_answers_roles_and_thresholds() {
    let (_dir, path) = setup(
        &format!("alice@example.com,alice {K1}\n*@ops.example.com,!eve@ops.example.com {K2}\n"),
        r#"
allowed_signers = "keys/allowed_signers"

[roles]
"alice@example.com" = "operational"
"break-glass@ops.example.com" = "recovery"
"bob@ops.example.com" = "reviewer"

[thresholds]
destroy = 2
storage_wipe = 1
"#,
    );
    let c = SignerConfig::load(&path).unwrap();
    assert_eq!(c.threshold("destroy"), 2);
    assert_eq!(c.threshold("restore-overwrite"), 1);
    assert_eq!(
        c.roles_of(&verified(&c, 1)),
        BTreeSet::from([Role::Operational])
    );
    // A pattern entry holds every role whose principal it matches.
    assert_eq!(
        c.roles_of(&verified(&c, 2)),
        BTreeSet::from([Role::Recovery, Role::Reviewer])
    );
    // A verification that did not come from this list has no roles.
    let mut foreign = verified(&c, 1);
    foreign.entry_line = 9;
    assert!(c.roles_of(&foreign).is_empty());
}

#[test]
fn every_problem_is_listed() {
    let (_dir, path) = setup(
        &format!("alice {K1}\nbob {K2}\n"),
        r#"
allowed_signers = "keys/allowed_signers"
[roles]
alice = "operational"
bob = "admin"
carol = "operational"
"*" = "recovery"
[thresholds]
destroy = 0
wipe = 3
Bad = 1
"#,
    );
    let e = SignerConfig::load(&path).unwrap_err();
    let SignerConfigError::Invalid { problems, .. } = &e else {
        panic!("{e}")
    };
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}: invalid signer config:", path.display())),
        "{text}"
    );
    let want = [
        "roles.\"bob\": unknown role \"admin\"",
        "roles.\"carol\": no allowed_signers entry has this principal",
        "roles.\"*\": a role is given to a principal name, not a pattern",
        "thresholds.\"destroy\" = 0: a threshold is at least 1",
        "thresholds.\"wipe\" = 3: only 1 distinct key(s) hold a role",
        "thresholds.\"Bad\": operation names are lower-case",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p.contains(w)),
            "missing {w:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
}

#[test]
fn unknown_fields_and_bad_files_are_refused() {
    let (_dir, path) = setup(
        &format!("alice {K1}\n"),
        "allowed_signers = \"keys/allowed_signers\"\nallowed_signer = \"typo\"\n",
    );
    let e = SignerConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("unknown field `allowed_signer`"), "{e}");
    assert!(e.contains("line 2"), "{e}");

    let (dir, path) = setup(&format!("alice {K1}\n"), "allowed_signers = \"missing\"\n");
    let e = SignerConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().join("missing").display().to_string()),
        "{e}"
    );

    let (_dir, path) = setup(
        "alice restrict ssh-ed25519 AAAA\n",
        "allowed_signers = \"keys/allowed_signers\"\n",
    );
    let e = SignerConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("allowed_signers: line 1: unknown option \"restrict\""),
        "{e}"
    );

    let e = SignerConfig::load(dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("absent.toml: cannot read signer config: "),
        "{e}"
    );
    assert!(!e.contains("allowed_signers"), "{e}");

    // roles and thresholds may be absent.
    let (dir, _path) = setup(&format!("alice {K1}\n"), "");
    let c = SignerConfig::from_str_in("allowed_signers = \"keys/allowed_signers\"", dir.path())
        .unwrap();
    assert!(c.roles.is_empty());
    assert_eq!(c.threshold("destroy"), 1);
}

/// A signer file swapped for a FIFO (or any non-regular file) is refused at once, never
/// waited on: the agent re-reads these files at every decision.
#[test]
fn fifo_signer_files_are_refused_without_blocking() {
    let (dir, path) = setup(
        &format!("alice {K1}\n"),
        "allowed_signers = \"keys/allowed_signers\"\n",
    );
    let fifo = |p: &std::path::Path| {
        let _ = std::fs::remove_file(p);
        let ok = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", p.display());
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let allowed = dir.path().join("keys/allowed_signers");
    fifo(&allowed);
    let p = path.clone();
    std::thread::spawn(move || tx.send(SignerConfig::load(&p).map(|_| ())).unwrap());
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading blocked on a FIFO allowed_signers")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");

    fifo(&path);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(SignerConfig::load(&path).map(|_| ())).unwrap());
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading blocked on a FIFO signers.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
}
