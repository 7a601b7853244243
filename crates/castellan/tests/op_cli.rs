//! `castellan op` and `castellan audit`: the real binary, with keys made by the real
//! `ssh-keygen` (ed25519, ecdsa, rsa) in temporary directories. Signatures come from both
//! `castellan op sign` and plain `ssh-keygen -Y sign`, and `ssh-keygen -Y verify` checks
//! the ones castellan made.
//!
//! Without ssh-keygen the signing tests are skipped with a note, except under `CI=true`,
//! where they fail.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use castellan_core::op::SignedOp;
use castellan_store::{AuditEvent, AuditFields, Store};
use castellan_testkit::{Key, ci, keygen, load_key, need_ssh_keygen, run_ok};

const DIGEST: &str = "9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20";

/// The fixture's keys (alice, bob, carol, rescue, mallory), made once and kept under the
/// test target directory, so that not every test waits for an RSA key. Never modified by
/// a test.
fn shared_keys() -> &'static [Key; 5] {
    static KEYS: OnceLock<[Key; 5]> = OnceLock::new();
    KEYS.get_or_init(|| {
        const SPECS: [(&str, &str, Option<u32>); 5] = [
            ("alice", "ed25519", None),
            ("bob", "ecdsa", Some(256)),
            ("carol", "rsa", Some(3072)),
            ("rescue", "ed25519", None),
            ("mallory", "ed25519", None),
        ];
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join("op_cli-keys-v1");
        if !dir.join("complete").exists() {
            // Made whole in a temporary directory, then renamed into place.
            let tmp = tempfile::tempdir_in(&base).unwrap();
            for (name, ty, bits) in SPECS {
                keygen(tmp.path(), name, ty, bits);
            }
            std::fs::write(tmp.path().join("complete"), "").unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let made = tmp.keep();
            if std::fs::rename(&made, &dir).is_err() {
                // Another test process got there first.
                let _ = std::fs::remove_dir_all(&made);
                assert!(
                    dir.join("complete").exists(),
                    "cannot set up {}",
                    dir.display()
                );
            }
        }
        SPECS.map(|(name, _, _)| load_key(&dir.join(name)))
    })
}

/// A directory with keys, an allowed_signers file and two signer configs:
/// `signers.toml` (threshold 1) and `signers2.toml` (destroy needs 2 keys).
struct Fixture {
    dir: tempfile::TempDir,
    /// ed25519, alice@example.com, operational.
    alice: Key,
    /// ecdsa p256, bob@example.com, operational.
    bob: Key,
    /// rsa 3072, carol@example.com, operational.
    carol: Key,
    /// ed25519, recovery@example.com, recovery.
    rescue: Key,
    /// ed25519, in no allowed_signers entry.
    mallory: Key,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let k = shared_keys();
        let f = Fixture {
            dir,
            alice: k[0].clone(),
            bob: k[1].clone(),
            carol: k[2].clone(),
            rescue: k[3].clone(),
            mallory: k[4].clone(),
        };
        f.write_signers(&[]);
        f
    }

    /// Writes allowed_signers, signers.toml and signers2.toml: the fixture's signers plus
    /// `extra` operational ones.
    fn write_signers(&self, extra: &[(&str, &Key)]) {
        let mut allowed = format!(
            "alice@example.com {}\nbob@example.com {}\ncarol@example.com {}\nrecovery@example.com {}\n",
            self.alice.line, self.bob.line, self.carol.line, self.rescue.line
        );
        let mut roles = "[roles]\n\
             \"alice@example.com\" = \"operational\"\n\
             \"bob@example.com\" = \"operational\"\n\
             \"carol@example.com\" = \"operational\"\n\
             \"recovery@example.com\" = \"recovery\"\n"
            .to_owned();
        for (principal, key) in extra {
            allowed.push_str(&format!("{principal} {}\n", key.line));
            roles.push_str(&format!("\"{principal}\" = \"operational\"\n"));
        }
        std::fs::write(self.path().join("allowed_signers"), allowed).unwrap();
        std::fs::write(
            self.path().join("signers.toml"),
            format!("allowed_signers = \"allowed_signers\"\n\n{roles}"),
        )
        .unwrap();
        std::fs::write(
            self.path().join("signers2.toml"),
            format!(
                "allowed_signers = \"allowed_signers\"\n\n{roles}\n[thresholds]\ndestroy = 2\n"
            ),
        )
        .unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `castellan ARGS` in the fixture's directory.
    fn castellan(&self, args: &[&str]) -> Output {
        castellan_in(self.path(), args)
    }

    /// `castellan op new destroy --host pve-01 --guest 101 --precondition DIGEST ...EXTRA -o NAME`.
    fn new_op(&self, name: &str, extra: &[&str]) -> PathBuf {
        let mut args = vec![
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
            "--precondition",
            DIGEST,
            "--output",
            name,
        ];
        args.extend_from_slice(extra);
        let out = self.castellan(&args);
        assert_eq!(code(&out), 0, "op new: {}", stderr(&out));
        self.path().join(name)
    }

    /// `castellan op sign NAME --key KEY`; returns the signature path it printed.
    fn sign(&self, name: &str, key: &Key) -> PathBuf {
        let key = key.private.to_str().unwrap();
        let out = self.castellan(&["op", "sign", name, "--key", key]);
        assert_eq!(code(&out), 0, "op sign: {}", stderr(&out));
        self.path().join(stdout(&out).trim())
    }

    fn verify(&self, name: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "op",
            "verify",
            name,
            "--signers",
            "signers.toml",
            "--host",
            "pve-01",
        ];
        args.extend_from_slice(extra);
        self.castellan(&args)
    }
}

fn castellan_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(args)
        .current_dir(dir)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run castellan")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ssh-keygen -Y sign -f KEY -n NS FILE` (writes `FILE.sig`).
fn keygen_sign(key: &Key, ns: &str, file: &Path) -> PathBuf {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-f"])
            .arg(&key.private)
            .args(["-n", ns])
            .arg(file),
    );
    let mut sig = file.as_os_str().to_owned();
    sig.push(".sig");
    PathBuf::from(sig)
}

/// Signs a copy of `file` with plain ssh-keygen and puts the signature at `dest`.
fn keygen_sign_to(key: &Key, ns: &str, file: &Path, dest: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("op");
    std::fs::copy(file, &copy).unwrap();
    let sig = keygen_sign(key, ns, &copy);
    std::fs::copy(sig, dest).unwrap();
}

/// Asserts `castellan op verify` rejected with `reason` (exit 1, `rejected: REASON: ...`).
fn assert_rejected(out: &Output, reason: &str) {
    let text = stdout(out);
    assert_eq!(code(out), 1, "{text}{}", stderr(out));
    assert!(
        text.starts_with(&format!("rejected: {reason}: ")),
        "expected {reason}: {text}"
    );
}

fn accepted_line(key: &Key, principal: &str) -> String {
    format!(
        "accepted: destroy lxc/101 on pve-01 signed by {principal} ({}, role operational)",
        key.fingerprint
    )
}

// ---- op new / sign / verify: acceptance ---------------------------------------------------

#[test]
fn new_sign_verify_accepts_ed25519_ecdsa_and_rsa() {
    need_ssh_keygen!();
    let f = Fixture::new();
    for (key, principal) in [
        (&f.alice, "alice@example.com"),
        (&f.bob, "bob@example.com"),
        (&f.carol, "carol@example.com"),
    ] {
        let name = format!("{principal}.op");
        let op = f.new_op(&name, &["--param", "purge=1"]);
        let sig = f.sign(&name, key);
        assert_eq!(sig, f.path().join(format!("{name}.sig")));

        let out = f.verify(&name, &[]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(
            stdout(&out),
            format!(
                "{}\nnote: precondition not checked (no --state-digest)\n\
                 note: replay not checked here: the agent's journal decides\n",
                accepted_line(key, principal)
            )
        );

        // OpenSSH accepts what castellan signed, with the same allowed_signers file.
        let out = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(f.path().join("allowed_signers"))
            .args(["-I", principal, "-n", "castellan-op", "-s"])
            .arg(&sig)
            .stdin(std::fs::File::open(&op).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen -Y verify refused castellan's signature: {}",
            stderr(&out)
        );
    }
}

#[test]
fn plain_ssh_keygen_signatures_verify() {
    need_ssh_keygen!();
    let f = Fixture::new();
    for (key, principal) in [
        (&f.alice, "alice@example.com"),
        (&f.bob, "bob@example.com"),
        (&f.carol, "carol@example.com"),
    ] {
        let name = format!("{principal}.op");
        let op = f.new_op(&name, &[]);
        keygen_sign(key, "castellan-op", &op);
        let out = f.verify(&name, &["--state-digest", DIGEST]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with(&accepted_line(key, principal)), "{text}");
        // The precondition was checked this time.
        assert!(!text.contains("precondition not checked"), "{text}");
    }
}

#[test]
fn op_new_prints_the_canonical_op_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = castellan_in(
        dir.path(),
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
            "--precondition",
            DIGEST,
            "--not-before",
            "2026-11-22T10:00:00Z",
            "--ttl",
            "30m",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let op = SignedOp::parse(text.as_bytes()).expect("canonical op on stdout");
    assert_eq!(op.render(), text);
    assert_eq!(op.nonce.len(), 32);
    assert_eq!(
        text,
        format!(
            "version = 3\nop = \"destroy\"\nhost = \"pve-01\"\ntarget = \"lxc/101\"\n\
             precondition = \"{DIGEST}\"\nnonce = \"{}\"\n\
             not_before = \"2026-11-22T10:00:00Z\"\nnot_after = \"2026-11-22T10:30:00Z\"\n",
            op.nonce
        )
    );
    // Every op gets a fresh nonce.
    let again = castellan_in(
        dir.path(),
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
            "--precondition",
            DIGEST,
        ],
    );
    let op2 = SignedOp::parse(&again.stdout).unwrap();
    assert_ne!(op.nonce, op2.nonce);
    // Default window: from now, one hour.
    assert_eq!(
        op2.not_before.duration_until(op2.not_after),
        jiff::SignedDuration::from_hours(1)
    );
    let age = op2.not_before.duration_until(jiff::Timestamp::now());
    assert!(age >= jiff::SignedDuration::ZERO && age < jiff::SignedDuration::from_mins(5));
}

// ---- rejections ---------------------------------------------------------------------------

#[test]
fn tampered_op_is_rejected() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let op = f.new_op("op.toml", &[]);
    f.sign("op.toml", &f.alice);
    let original = std::fs::read_to_string(&op).unwrap();

    // Still a canonical op, but not the one signed.
    std::fs::write(&op, original.replace("lxc/101", "lxc/102")).unwrap();
    assert_rejected(&f.verify("op.toml", &[]), "bad_signature");

    // Not canonical any more.
    std::fs::write(&op, format!("# approved\n{original}")).unwrap();
    assert_rejected(&f.verify("op.toml", &[]), "bad_format");

    // Not an op at all.
    std::fs::write(&op, "hello\n").unwrap();
    assert_rejected(&f.verify("op.toml", &[]), "bad_format");
    std::fs::write(&op, vec![b'#'; 20_000]).unwrap();
    assert_rejected(&f.verify("op.toml", &[]), "bad_format");

    // The original verifies again.
    std::fs::write(&op, &original).unwrap();
    assert_eq!(code(&f.verify("op.toml", &[])), 0);
}

#[test]
fn other_host_is_wrong_host() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    f.sign("op.toml", &f.alice);
    let out = f.castellan(&[
        "op",
        "verify",
        "op.toml",
        "--signers",
        "signers.toml",
        "--host",
        "pve-02",
    ]);
    assert_rejected(&out, "wrong_host");
    assert!(stdout(&out).contains("\"pve-01\""), "{}", stdout(&out));
}

#[test]
fn signature_under_another_namespace_is_wrong_namespace() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let op = f.new_op("op.toml", &[]);
    keygen_sign(&f.alice, "file", &op);
    assert_rejected(&f.verify("op.toml", &[]), "wrong_namespace");
}

#[test]
fn key_not_in_allowed_signers_is_unknown_signer() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    f.sign("op.toml", &f.mallory);
    let out = f.verify("op.toml", &[]);
    assert_rejected(&out, "unknown_signer");
    assert!(
        stdout(&out).contains(&f.mallory.fingerprint),
        "{}",
        stdout(&out)
    );
}

#[test]
fn recovery_key_cannot_destroy() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    f.sign("op.toml", &f.rescue);
    let out = f.verify("op.toml", &[]);
    assert_rejected(&out, "role_denied");
    assert!(stdout(&out).contains("recovery"), "{}", stdout(&out));
}

/// What a signed op may do comes from the operation table: a name it does not hold is
/// refused outright; a known operation this version does not carry out verifies (its
/// role rule is the table's: a recovery key may sign a key rotation, not a wipe) with a
/// note that no agent acts on it.
#[test]
fn operations_are_judged_by_the_table() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let op = f.new_op("op.toml", &[]);
    let original = std::fs::read_to_string(&op).unwrap();
    let renamed = |name: &str| original.replace("op = \"destroy\"", &format!("op = \"{name}\""));

    std::fs::write(&op, renamed("frobnicate")).unwrap();
    f.sign("op.toml", &f.alice);
    let out = f.verify("op.toml", &[]);
    assert_rejected(&out, "bad_format");
    assert!(
        stdout(&out).contains("unknown operation \"frobnicate\""),
        "{}",
        stdout(&out)
    );

    std::fs::write(&op, renamed("rotate_keys")).unwrap();
    f.sign("op.toml", &f.rescue);
    let out = f.verify("op.toml", &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no agent of this version acts on rotate_keys"),
        "{}",
        stdout(&out)
    );

    std::fs::write(&op, renamed("wipe_storage")).unwrap();
    f.sign("op.toml", &f.rescue);
    assert_rejected(&f.verify("op.toml", &[]), "role_denied");
}

#[test]
fn expired_and_not_yet_valid() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op(
        "old.toml",
        &["--not-before", "2020-01-01T00:00:00Z", "--ttl", "5m"],
    );
    // Signing an expired op works, with a warning: the verifier is what refuses it.
    let out = f.castellan(&[
        "op",
        "sign",
        "old.toml",
        "--key",
        f.alice.private.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    let out = f.verify("old.toml", &[]);
    assert_rejected(&out, "expired");
    assert!(
        stdout(&out).contains("2020-01-01T00:05:00Z"),
        "{}",
        stdout(&out)
    );

    f.new_op(
        "future.toml",
        &["--not-before", "2099-01-01T00:00:00Z", "--ttl", "1h"],
    );
    f.sign("future.toml", &f.alice);
    assert_rejected(&f.verify("future.toml", &[]), "not_yet_valid");
}

#[test]
fn changed_guest_is_stale_precondition() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    f.sign("op.toml", &f.alice);
    let out = f.verify("op.toml", &["--state-digest", "0123456789abcdef"]);
    assert_rejected(&out, "stale_precondition");
    assert_eq!(code(&f.verify("op.toml", &["--state-digest", DIGEST])), 0);
}

#[test]
fn threshold_counts_distinct_keys() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    let verify2 = |extra: &[&str]| {
        let mut args = vec![
            "op",
            "verify",
            "op.toml",
            "--signers",
            "signers2.toml",
            "--host",
            "pve-01",
        ];
        args.extend_from_slice(extra);
        f.castellan(&args)
    };

    f.sign("op.toml", &f.alice);
    let out = verify2(&[]);
    assert_rejected(&out, "threshold_not_met");
    assert!(
        stdout(&out).contains("needs 2 distinct"),
        "{}",
        stdout(&out)
    );

    // The same key twice is still one key.
    assert_eq!(f.sign("op.toml", &f.alice), f.path().join("op.toml.2.sig"));
    assert_rejected(&verify2(&[]), "threshold_not_met");

    // A second, distinct key, passed with --sig: accepted, both signers named.
    keygen_sign_to(
        &f.bob,
        "castellan-op",
        &f.path().join("op.toml"),
        &f.path().join("bob.sig"),
    );
    let out = verify2(&["--sig", "bob.sig"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&accepted_line(&f.alice, "alice@example.com")),
        "{text}"
    );
    assert!(
        text.contains(&accepted_line(&f.bob, "bob@example.com")),
        "{text}"
    );

    // A signature that does not count is named, and does not spoil the others.
    keygen_sign_to(
        &f.mallory,
        "castellan-op",
        &f.path().join("op.toml"),
        &f.path().join("mallory.sig"),
    );
    let out = verify2(&["--sig", "bob.sig", "--sig", "mallory.sig"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("signature mallory.sig not counted: unknown_signer"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_without_signature_or_config() {
    need_ssh_keygen!();
    let f = Fixture::new();
    f.new_op("op.toml", &[]);
    // No signature at all.
    let out = f.verify("op.toml", &[]);
    assert_rejected(&out, "bad_format");
    assert!(stdout(&out).contains("no signature"), "{}", stdout(&out));

    f.sign("op.toml", &f.alice);
    // Usage and configuration errors exit 2, on stderr.
    let out = f.castellan(&[
        "op",
        "verify",
        "op.toml",
        "--signers",
        "missing.toml",
        "--host",
        "pve-01",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));

    std::fs::write(f.path().join("bad.toml"), "allowed_signers = 7\n").unwrap();
    let out = f.castellan(&[
        "op",
        "verify",
        "op.toml",
        "--signers",
        "bad.toml",
        "--host",
        "pve-01",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    let out = f.verify("absent.toml", &[]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("absent.toml"), "{}", stderr(&out));

    let out = f.verify("op.toml", &["--sig", "absent.sig"]);
    assert_eq!(code(&out), 2);

    // Missing required flag: clap's usage error, also 2.
    let out = f.castellan(&["op", "verify", "op.toml", "--host", "pve-01"]);
    assert_eq!(code(&out), 2);
}

// ---- op new / op sign refusals ------------------------------------------------------------

#[test]
fn op_new_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "op", "new", "destroy", "--host", "pve-01", "--target", "lxc/101",
    ];
    let refused = |extra: &[&str], needle: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = castellan_in(dir.path(), &args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected {needle:?} in {}",
            stderr(&out)
        );
    };
    refused(
        &[],
        "destroy needs --precondition DIGEST: the target's state digest, shown by \
         `castellan plan` or in the agent's pending payload",
    );
    refused(
        &["--precondition", DIGEST, "--param", "purge"],
        "not KEY=VALUE",
    );
    refused(&["--precondition", DIGEST, "--param", "=1"], "empty name");
    refused(
        &["--precondition", DIGEST, "--param", "force=1"],
        "does not take",
    );
    refused(&["--precondition", DIGEST, "--ttl", "8d"], "7 days");
    refused(&["--precondition", DIGEST, "--ttl", "soon"], "--ttl");
    refused(&["--precondition", "NOT-HEX"], "precondition");
    refused(
        &["--precondition", DIGEST, "--not-before", "tomorrow"],
        "RFC 3339",
    );

    let out = castellan_in(
        dir.path(),
        &[
            "op",
            "new",
            "rotate_keys",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out)
            .contains("unknown operation \"rotate_keys\": this castellan executes only destroy"),
        "{}",
        stderr(&out)
    );
    let out = castellan_in(
        dir.path(),
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve_01!",
            "--target",
            "lxc/101",
            "--precondition",
            DIGEST,
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("host"), "{}", stderr(&out));
    let out = castellan_in(
        dir.path(),
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/7",
            "--precondition",
            DIGEST,
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--target: \"7\" is not a valid lxc id"),
        "{}",
        stderr(&out)
    );

    // An existing file is kept unless --force.
    let args = [
        "op",
        "new",
        "destroy",
        "--host",
        "pve-01",
        "--target",
        "lxc/101",
        "--precondition",
        DIGEST,
        "-o",
        "op.toml",
    ];
    assert_eq!(code(&castellan_in(dir.path(), &args)), 0);
    let first = std::fs::read(dir.path().join("op.toml")).unwrap();
    let out = castellan_in(dir.path(), &args);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("op.toml")).unwrap(), first);
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(code(&castellan_in(dir.path(), &forced)), 0);
    let second = std::fs::read(dir.path().join("op.toml")).unwrap();
    assert_ne!(second, first, "a new op has a new nonce");
    SignedOp::parse(&second).unwrap();
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["op.toml".to_owned()]);
}

#[test]
fn op_sign_refuses_a_malformed_op() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let op = f.new_op("op.toml", &[]);
    let text = std::fs::read_to_string(&op).unwrap();
    std::fs::write(&op, text.replace("host = ", "host  = ")).unwrap();
    let out = f.castellan(&[
        "op",
        "sign",
        "op.toml",
        "--key",
        f.alice.private.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("refusing to sign"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("canonical"), "{}", stderr(&out));
    assert!(!f.path().join("op.toml.sig").exists());

    // A key that does not exist.
    std::fs::write(&op, &text).unwrap();
    let out = f.castellan(&["op", "sign", "op.toml", "--key", "keys/nobody"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("key file not found"),
        "{}",
        stderr(&out)
    );
    assert!(!f.path().join("op.toml.sig").exists());
}

/// An ssh-agent in the foreground on a socket of ours, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Option<Agent> {
        let sock = dir.join("agent.sock");
        let child = match Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(!ci(), "cannot start ssh-agent, and CI=true: {e}");
                eprintln!("note: ssh-agent not available ({e}); skipping");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Agent { child, sock })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn op_sign_with_an_ssh_agent() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let Some(agent) = Agent::start(f.path()) else {
        return;
    };
    let dave = keygen(f.path(), "dave", "ed25519", None);
    f.write_signers(&[("dave@example.com", &dave)]);
    run_ok(
        Command::new("ssh-add")
            .arg(&dave.private)
            .env("SSH_AUTH_SOCK", &agent.sock),
    );
    f.new_op("op.toml", &[]);
    let sign = |sock: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
        cmd.args(["op", "sign", "op.toml", "--agent", "--key"])
            .arg(&dave.private)
            .current_dir(f.path())
            .stdin(Stdio::null())
            .env_remove("SSH_AUTH_SOCK");
        if let Some(s) = sock {
            cmd.env("SSH_AUTH_SOCK", s);
        }
        cmd.output().unwrap()
    };
    // --agent without an agent: a clear error.
    let out = sign(None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("SSH_AUTH_SOCK"), "{}", stderr(&out));

    // Only the agent holds the private key now; --key names the private key's path and
    // its .pub is what ssh-keygen gets.
    std::fs::remove_file(&dave.private).unwrap();
    let out = sign(Some(&agent.sock));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "op.toml.sig");
    let out = f.verify("op.toml", &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).starts_with(&accepted_line(&dave, "dave@example.com")));
    drop(agent);
}

// ---- op show -----------------------------------------------------------------------------

/// Replaces the `(in ...)` / `(... ago)` relative times, which depend on the clock.
fn without_relative_times(text: &str) -> String {
    text.lines()
        .map(|l| match l.rfind(" (") {
            Some(i)
                if (l.starts_with("valid from:") || l.starts_with("valid until:"))
                    && l.ends_with(')') =>
            {
                let rel = &l[i + 2..l.len() - 1];
                let shape = if rel.starts_with("in ") {
                    "in"
                } else if rel.ends_with(" ago") {
                    "ago"
                } else {
                    "?"
                };
                format!("{} ({shape} ...)", &l[..i])
            }
            _ => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn op_show_golden() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let op_path = f.new_op(
        "op.toml",
        &[
            "--not-before",
            "2020-01-01T00:00:00Z",
            "--ttl",
            "1h",
            "--param",
            "purge=1",
        ],
    );
    f.sign("op.toml", &f.alice);
    keygen_sign_to(&f.bob, "file", &op_path, &f.path().join("op.toml.2.sig"));
    std::fs::write(f.path().join("op.toml.3.sig"), "not a signature\n").unwrap();
    let op = SignedOp::parse(&std::fs::read(&op_path).unwrap()).unwrap();

    let out = f.castellan(&["op", "show", "op.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let expected = format!(
        "\
op file:      op.toml
operation:    destroy CT 101 (lxc/101) on host pve-01
effect:       deletes CT 101 with its configuration and disks; this cannot be undone (purge: also removes it from backup jobs, replication and HA)
parameters:   purge=1
precondition: CT 101's state digest is {DIGEST} (stale once it changes)
valid from:   2020-01-01T00:00:00Z (ago ...)
valid until:  2020-01-01T01:00:00Z (ago ...)
status:       expired
nonce:        {nonce}
digest:       sha256:{digest}
signatures:   3 found, not verified here (check them with `castellan op verify`)
  op.toml.sig    ssh-ed25519 {alice}
  op.toml.2.sig  ecdsa-sha2-nistp256 {bob} (namespace \"file\": not an op signature)
  op.toml.3.sig  unreadable: not an armored ssh signature: missing -----BEGIN SSH SIGNATURE----- line
",
        nonce = op.nonce,
        digest = op.digest(),
        alice = f.alice.fingerprint,
        bob = f.bob.fingerprint,
    );
    assert_eq!(without_relative_times(&stdout(&out)), expected);

    let out = f.castellan(&["op", "show", "op.toml", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["op"]["op"], "destroy");
    assert_eq!(v["op"]["host"], "pve-01");
    assert_eq!(v["op"]["target"], "lxc/101");
    assert_eq!(v["op"]["precondition"], DIGEST);
    assert_eq!(v["op"]["nonce"], op.nonce.as_str());
    assert_eq!(v["op"]["not_before"], "2020-01-01T00:00:00Z");
    assert_eq!(v["op"]["not_after"], "2020-01-01T01:00:00Z");
    assert_eq!(v["op"]["params"]["purge"], "1");
    assert_eq!(v["digest"], format!("sha256:{}", op.digest()));
    assert_eq!(v["status"], "expired");
    assert_eq!(v["executable"], true);
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 3);
    assert_eq!(sigs[0]["file"], "op.toml.sig");
    assert_eq!(sigs[0]["fingerprint"], f.alice.fingerprint.as_str());
    assert_eq!(sigs[0]["namespace"], "castellan-op");
    assert_eq!(sigs[0]["verified"], false);
    assert_eq!(sigs[1]["namespace"], "file");
    assert!(sigs[2]["error"].is_string());

    // A valid, unsigned op, not yet valid.
    f.new_op(
        "later.toml",
        &["--not-before", "2099-01-01T00:00:00Z", "--ttl", "2d"],
    );
    let out = f.castellan(&["op", "show", "later.toml"]);
    let text = without_relative_times(&stdout(&out));
    assert!(text.contains("parameters:   (none)\n"), "{text}");
    assert!(
        text.contains("valid from:   2099-01-01T00:00:00Z (in ...)\n"),
        "{text}"
    );
    assert!(
        text.contains("valid until:  2099-01-03T00:00:00Z (in ...)\n"),
        "{text}"
    );
    assert!(text.contains("status:       not yet valid\n"), "{text}");
    assert!(
        text.contains("signatures:   none (sign with `castellan op sign later.toml --key KEY`)\n"),
        "{text}"
    );

    // A malformed op is an error (exit 2), not a summary.
    std::fs::write(f.path().join("bad.toml"), "op = \"destroy\"\n").unwrap();
    let out = f.castellan(&["op", "show", "bad.toml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not a valid castellan op"),
        "{}",
        stderr(&out)
    );
}

// ---- audit ---------------------------------------------------------------------------------

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// A store with five audit records, written through castellan-store as the agent would.
fn audit_store(dir: &Path) {
    let mut store = Store::open(dir).unwrap();
    store
        .append_audit(AuditEvent::AgentStarted, ts("2026-01-02T03:04:05Z"))
        .unwrap();
    store
        .append_audit(
            AuditEvent::RecoveryCompleted { intents: 0 },
            ts("2026-01-02T03:04:06Z"),
        )
        .unwrap();
    store
        .append_audit(
            AuditEvent::SignatureAccepted.with(
                AuditFields::action(
                    castellan_core::Target::guest(castellan_core::GuestKind::Lxc, 101),
                    "destroy",
                    "sha256:abc",
                )
                .signer("SHA256:alicekey")
                .nonce("6b1f0e54a9c2d83f71e0a4b59c6d2e13"),
            ),
            ts("2026-01-02T03:05:00Z"),
        )
        .unwrap();
    store
        .append_audit(
            AuditEvent::TaskDispatched {
                upid: Some("UPID:pve-01:1:2:3:vzdestroy:101:root@pam:".into()),
            }
            .with(AuditFields::action(
                castellan_core::Target::guest(castellan_core::GuestKind::Lxc, 101),
                "destroy",
                "sha256:abc",
            )),
            ts("2026-01-02T03:05:01Z"),
        )
        .unwrap();
    store
        .append_audit(
            AuditEvent::OpRejected {
                reason: castellan_core::RejectReason::Expired,
                detail: "op expired at 2026-01-01T00:00:00Z".into(),
            }
            .with(AuditFields::action(
                castellan_core::Target::guest(castellan_core::GuestKind::Lxc, 102),
                "destroy",
                "sha256:def",
            )),
            ts("2026-01-02T03:06:00Z"),
        )
        .unwrap();
}

#[test]
fn audit_verify_show_export_and_tamper() {
    let dir = tempfile::tempdir().unwrap();
    audit_store(dir.path());
    let data_dir = dir.path().to_str().unwrap();
    let head = {
        let store = Store::open_readonly(dir.path()).unwrap();
        castellan_store::verify_chain(&store).unwrap().head_hash
    };

    let out = castellan_in(dir.path(), &["audit", "verify", "--data-dir", data_dir]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("ok: 5 records, head {head}\n"));

    let out = castellan_in(dir.path(), &["audit", "show", "--data-dir", data_dir]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
SEQ  TIME                  EVENT               TARGET   OP       SIGNERS          DETAIL
  1  2026-01-02T03:04:05Z  agent_started
  2  2026-01-02T03:04:06Z  recovery_completed                                     0 in-flight intents
  3  2026-01-02T03:05:00Z  signature_accepted  lxc/101  destroy  SHA256:alicekey  nonce 6b1f0e54a9c2d83f71e0a4b59c6d2e13
  4  2026-01-02T03:05:01Z  task_dispatched     lxc/101  destroy                   task UPID:pve-01:1:2:3:vzdestroy:101:root@pam:
  5  2026-01-02T03:06:00Z  op_rejected         lxc/102  destroy                   expired: op expired at 2026-01-01T00:00:00Z
"
    );

    let out = castellan_in(
        dir.path(),
        &[
            "audit",
            "show",
            "--data-dir",
            data_dir,
            "--last",
            "2",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = v.as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["seq"], 4);
    assert_eq!(recs[1]["seq"], 5);
    assert_eq!(recs[1]["event"]["event"], "op_rejected");
    assert_eq!(recs[1]["event"]["reason"], "expired");
    assert_eq!(recs[1]["hash"], head.as_str());

    let out = castellan_in(dir.path(), &["audit", "export", "--data-dir", data_dir]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 5);
    let report = castellan_store::verify_jsonl(&out.stdout[..]).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.head_hash, head);

    // Tamper with record 3 behind the store's back (dropping the append-only trigger).
    {
        let db =
            rusqlite::Connection::open(dir.path().join(castellan_store::DB_FILE_NAME)).unwrap();
        db.execute_batch("DROP TRIGGER audit_no_update").unwrap();
        let n = db
            .execute(
                "UPDATE audit SET event = replace(event, '\"target\":\"lxc/101\"', '\"target\":\"lxc/109\"') WHERE seq = 3",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let out = castellan_in(dir.path(), &["audit", "verify", "--data-dir", data_dir]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out),
        "broken at record 3: hash does not match the record's contents\n"
    );
}

#[test]
fn audit_without_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    for sub in ["verify", "show", "export"] {
        let out = castellan_in(dir.path(), &["audit", sub, "--data-dir", data_dir]);
        assert_eq!(code(&out), 2, "{sub}");
        assert!(stdout(&out).is_empty(), "{sub}");
        let err = stderr(&out);
        assert!(
            err.contains("no audit log in") && err.contains("castellan.db does not exist"),
            "{sub}: {err}"
        );
    }
    // Nothing was created.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // An empty log verifies.
    drop(Store::open(dir.path()).unwrap());
    let out = castellan_in(dir.path(), &["audit", "verify", "--data-dir", data_dir]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("ok: 0 records, head {}\n", castellan_store::GENESIS_HASH)
    );
    let out = castellan_in(dir.path(), &["audit", "show", "--data-dir", data_dir]);
    assert_eq!(stdout(&out), "the audit log is empty\n");
}

// ---- op submit ---------------------------------------------------------------------------

/// `op submit` drops the op and its signatures into an inbox under their own names, with
/// no temporary file left behind; an unsigned op, a name already there, an inbox that is
/// a link and a FIFO for a signature are each refused with nothing written.
#[test]
fn op_submit_drops_atomically_and_refuses_what_it_must() {
    need_ssh_keygen!();
    let f = Fixture::new();
    let inbox = f.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let listing = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // Unsigned: refused, nothing written.
    f.new_op("op-101", &[]);
    let out = f.castellan(&["op", "submit", "op-101", "--inbox", "inbox"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no signature"),
        "{}",
        stderr(&out)
    );
    assert!(listing(&inbox).is_empty());

    // Signed twice: op and both signatures land under their names.
    f.sign("op-101", &f.alice);
    f.sign("op-101", &f.bob);
    let out = f.castellan(&["op", "submit", "op-101", "--inbox", "inbox"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("with 2 signatures"),
        "{}",
        stdout(&out)
    );
    assert_eq!(listing(&inbox), ["op-101", "op-101.2.sig", "op-101.sig"]);
    assert_eq!(
        std::fs::read(inbox.join("op-101")).unwrap(),
        std::fs::read(f.path().join("op-101")).unwrap()
    );
    // What landed verifies where it lies.
    let out = f.castellan(&[
        "op",
        "verify",
        "inbox/op-101",
        "--signers",
        "signers.toml",
        "--host",
        "pve-01",
    ]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // The same name again: refused, the first copy untouched.
    let out = f.castellan(&["op", "submit", "op-101", "--inbox", "inbox"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("already holds"), "{}", stderr(&out));
    assert_eq!(listing(&inbox), ["op-101", "op-101.2.sig", "op-101.sig"]);

    // An inbox that is a symbolic link: refused.
    std::os::unix::fs::symlink(&inbox, f.path().join("linked")).unwrap();
    f.new_op("op-b", &[]);
    f.sign("op-b", &f.alice);
    let out = f.castellan(&["op", "submit", "op-b", "--inbox", "linked"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));

    // A FIFO as an extra signature: refused at once, not waited on.
    run_ok(Command::new("mkfifo").arg(f.path().join("fifo.sig")));
    let out = f.castellan(&[
        "op", "submit", "op-b", "--inbox", "inbox", "--sig", "fifo.sig",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("FIFO"), "{}", stderr(&out));
    assert_eq!(listing(&inbox), ["op-101", "op-101.2.sig", "op-101.sig"]);
}
