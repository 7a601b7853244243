//! Verification throughput: castellan's in-process `verify()` against spawning
//! `ssh-keygen -Y verify` for the same ed25519 signature, message and allowed_signers.
//!
//! `cargo bench -p castellan-sig --bench verify` runs the full measurement; under
//! `cargo test --all-targets` (no `--bench` argument) it runs a quick smoke pass that
//! only checks both paths work. Needs `ssh-keygen` (a missing one fails under `CI=true`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use castellan_sig::{AllowedSigners, OP_NAMESPACE, verify};

const MESSAGE: &[u8] = b"version = 1\nop = \"destroy\"\nhost = \"pve1\"\ntarget = 104\n";

struct Mode {
    runs: usize,
    inproc_iters: usize,
    spawn_iters: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn keygen_verify(dir: &Path) -> bool {
    let msg = std::fs::File::open(dir.join("message")).expect("open message");
    Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(dir.join("allowed_signers"))
        .args(["-I", "alice@example.com", "-n", OP_NAMESPACE, "-s"])
        .arg(dir.join("message.sig"))
        .stdin(Stdio::from(msg))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn ssh-keygen")
        .success()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mode = if full {
        Mode {
            runs: 11,
            inproc_iters: 2000,
            spawn_iters: 40,
        }
    } else {
        Mode {
            runs: 3,
            inproc_iters: 20,
            spawn_iters: 2,
        }
    };
    if castellan_sig::sign::find_ssh_keygen().is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("ssh-keygen not found on PATH, and CI=true");
        }
        eprintln!("note: ssh-keygen not found on PATH; verify benchmark skipped");
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
        .arg(d.join("key")));
    let pubkey = std::fs::read_to_string(d.join("key.pub")).expect("read key.pub");
    let allowed = format!("alice@example.com namespaces=\"castellan-op\" {pubkey}");
    std::fs::write(d.join("allowed_signers"), &allowed).expect("write allowed_signers");
    std::fs::write(d.join("message"), MESSAGE).expect("write message");
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(d.join("key"))
        .args(["-n", OP_NAMESPACE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh-keygen -Y sign");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(MESSAGE)
        .expect("write message");
    let sig = child.wait_with_output().expect("ssh-keygen -Y sign").stdout;
    std::fs::write(d.join("message.sig"), &sig).expect("write signature");

    let signers = AllowedSigners::load(d.join("allowed_signers")).expect("parse allowed_signers");
    let at = jiff::Timestamp::now();
    assert!(verify(&signers, OP_NAMESPACE, MESSAGE, &sig, at).is_ok());
    assert!(
        keygen_verify(d),
        "ssh-keygen -Y verify refused the benchmark signature"
    );

    let mut inproc = Vec::new();
    for _ in 0..mode.runs {
        let start = Instant::now();
        for _ in 0..mode.inproc_iters {
            let v = verify(
                std::hint::black_box(&signers),
                OP_NAMESPACE,
                std::hint::black_box(MESSAGE),
                std::hint::black_box(&sig),
                at,
            );
            assert!(v.is_ok());
        }
        inproc.push(mode.inproc_iters as f64 / start.elapsed().as_secs_f64());
    }
    let mut spawned = Vec::new();
    for _ in 0..mode.runs {
        let start = Instant::now();
        for _ in 0..mode.spawn_iters {
            assert!(keygen_verify(d));
        }
        spawned.push(mode.spawn_iters as f64 / start.elapsed().as_secs_f64());
    }
    let (a, b) = (median(inproc), median(spawned));
    println!(
        "castellan-sig verify ({}; ssh-ed25519, sha512, {}-byte message, median of {} runs)",
        if full { "bench" } else { "smoke" },
        MESSAGE.len(),
        mode.runs
    );
    println!(
        "  in-process verify():         {a:>8.0} verifications/s  ({} per run)",
        mode.inproc_iters
    );
    println!(
        "  spawn ssh-keygen -Y verify:  {b:>8.0} verifications/s  ({} per run)",
        mode.spawn_iters
    );
    println!("  ratio:                        {:>8.0}x", a / b);
}
