//! sign_file with the real ssh-keygen: key files, an ssh-agent, and failures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use castellan_sig::{OP_NAMESPACE, SignError, SignOptions, sign_file, verify};

use crate::common::{keygen, parse};
use crate::need_ssh_keygen;

#[test]
fn signs_next_to_the_file_without_overwriting() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "alice", "ed25519", None);
    let signers = parse(&format!("alice {}\n", key.line));
    let op = dir.path().join("op.toml");
    std::fs::write(&op, "op = \"destroy\"\n").unwrap();
    let msg = std::fs::read(&op).unwrap();

    let opts = SignOptions::new(&key.private);
    let mut paths = Vec::new();
    for _ in 0..3 {
        paths.push(sign_file(&opts, OP_NAMESPACE, &op).unwrap());
    }
    assert_eq!(
        paths,
        vec![
            dir.path().join("op.toml.sig"),
            dir.path().join("op.toml.2.sig"),
            dir.path().join("op.toml.3.sig"),
        ]
    );
    let first = std::fs::read(&paths[0]).unwrap();
    for p in &paths {
        let sig = std::fs::read(p).unwrap();
        verify(&signers, OP_NAMESPACE, &msg, &sig, jiff::Timestamp::now()).unwrap();
    }
    // Earlier signatures are untouched; no temporary directory is left behind.
    assert_eq!(std::fs::read(&paths[0]).unwrap(), first);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".castellan-sign-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Another namespace, same file: the next free name.
    let sig = sign_file(&opts, "file", &op).unwrap();
    assert_eq!(sig, dir.path().join("op.toml.4.sig"));
}

#[test]
fn failures_are_clear_and_leak_nothing() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let op = dir.path().join("op.toml");
    std::fs::write(&op, "x").unwrap();

    let e = sign_file(
        &SignOptions::new(dir.path().join("nokey")),
        OP_NAMESPACE,
        &op,
    )
    .unwrap_err();
    assert!(matches!(e, SignError::KeyNotFound(_)), "{e}");
    assert!(e.to_string().ends_with("nokey: key file not found"), "{e}");

    // A "key" that is not one: ssh-keygen's own complaint comes through, the content not.
    let bogus = dir.path().join("bogus");
    std::fs::write(
        &bogus,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETMATERIAL\n",
    )
    .unwrap();
    let e = sign_file(&SignOptions::new(&bogus), OP_NAMESPACE, &op).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SignError::Failed { .. }), "{text}");
    assert!(text.starts_with("ssh-keygen -Y sign failed"), "{text}");
    assert!(!text.contains("SECRETMATERIAL"), "{text}");
    assert!(!dir.path().join("op.toml.sig").exists());

    let key = keygen(dir.path(), "k", "ed25519", None);
    let opts = SignOptions {
        ssh_keygen: Some(PathBuf::from("/nonexistent/ssh-keygen")),
        ..SignOptions::new(&key.private)
    };
    let e = sign_file(&opts, OP_NAMESPACE, &op).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ssh-keygen not found at /nonexistent/ssh-keygen: install OpenSSH (e.g. the openssh-client package)"
    );

    let e = sign_file(&SignOptions::new(&key.private), "", &op).unwrap_err();
    assert!(matches!(e, SignError::BadNamespace(_)), "{e}");
    let e = sign_file(&SignOptions::new(&key.private), OP_NAMESPACE, dir.path()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = sign_file(
        &SignOptions::new(&key.private),
        OP_NAMESPACE,
        &dir.path().join("absent"),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("absent: cannot read file to sign"),
        "{e}"
    );
}

/// An ssh-agent in the foreground on a socket of ours, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Self {
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, sock }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn signs_through_an_ssh_agent() {
    need_ssh_keygen!();
    if castellan_sig::sign::find_ssh_keygen()
        .and_then(|p| p.parent().map(|d| d.join("ssh-agent")))
        .is_none_or(|p| !p.exists())
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ssh-agent not found next to ssh-keygen, and CI=true"
        );
        eprintln!("note: ssh-agent not found; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "agentkey", "ed25519", None);
    let agent = Agent::start(dir.path());
    let out = Command::new("ssh-add")
        .arg(&key.private)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the agent holds the private key now.
    std::fs::remove_file(&key.private).unwrap();

    let op = dir.path().join("op.toml");
    std::fs::write(&op, "op = \"destroy\"\n").unwrap();
    let opts = SignOptions {
        agent_socket: Some(agent.sock.clone()),
        ..SignOptions::new(&key.public)
    };
    let sig_path = sign_file(&opts, OP_NAMESPACE, &op).unwrap();
    let signers = parse(&format!("ops {}\n", key.line));
    let v = verify(
        &signers,
        OP_NAMESPACE,
        &std::fs::read(&op).unwrap(),
        &std::fs::read(&sig_path).unwrap(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    assert_eq!(v.principals, vec!["ops"]);

    // Without the agent the public key alone cannot sign.
    let opts = SignOptions {
        agent_socket: Some(dir.path().join("no-agent.sock")),
        ..SignOptions::new(&key.public)
    };
    let e = sign_file(&opts, OP_NAMESPACE, &op).unwrap_err();
    assert!(matches!(e, SignError::Failed { .. }), "{e}");
    drop(agent);
}
