//! End to end: the real `castellan` binary against pvesim.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pvesim::{Fault, FaultRule, GuestStatus, Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=e2e-secret-6f1d";

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "web-1"
cores = 1
memory = 512
description = "web"
tags = "web"

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "db-1"
cores = 2
memory = 2048

[[guest]]
vmid = 103
kind = "lxc"
status = "running"
[guest.config]
hostname = "cache-1"
cores = 1

[[guest]]
vmid = 150
kind = "lxc"
status = "running"
[guest.config]
hostname = "stray"

[[guest]]
vmid = 200
kind = "qemu"
status = "stopped"
[guest.config]
name = "vm-1"
cores = 1
memory = "1024"
"#;

const DESIRED: &str = r#"node = "pve-01"
[[guest]]
vmid = 101
kind = "lxc"
run = "running"
cores = 2
memory = "1GiB"
description = "web"
tags = ["web", "prod"]

[[guest]]
vmid = 102
kind = "lxc"
memory = "4GiB"

[[guest]]
vmid = 103
kind = "lxc"
cores = 4

[[guest]]
vmid = 104
kind = "qemu"
run = "running"

[[guest]]
vmid = 200
kind = "qemu"
run = "running"
cores = 2
memory = 2147483648
description = "vm one"
"#;

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(faults: Vec<FaultRule>) -> Env {
        let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(SEED).expect("seed"));
        cfg.tls = true;
        cfg.task_duration = Duration::from_millis(20);
        cfg.faults = faults;
        let sim = pvesim::start(cfg, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("pvesim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let fp = sim.fingerprint().expect("tls fingerprint");
        write_config(dir.path(), &sim.base_url(), &fp);
        std::fs::write(dir.path().join("desired.toml"), DESIRED).expect("write desired");
        Env { sim, dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    fn castellan(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
        cmd.args(args).arg("--config").arg(self.config());
        cmd.output().expect("castellan runs")
    }

    fn writes(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn guest(&self, vmid: u32) -> pvesim::GuestView {
        self.sim
            .guest(vmid)
            .unwrap_or_else(|| panic!("guest {vmid} exists"))
    }
}

fn write_config(dir: &Path, url: &str, fp: &str) {
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\nfingerprint = \"{fp}\"\n[desired]\nfile = \"desired.toml\"\nwatch_ms = 100\n[agent]\nbackoff_base_ms = 50\nonce_attempts = 3\nresync_secs = 1\n"
        ),
    )
    .expect("write agent.toml");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reports_and_executes_nothing() {
    let env = Env::new(vec![]).await;
    let out = env.castellan(&["plan", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
    let actions: Vec<(u64, String)> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["vmid"].as_u64().unwrap_or(0),
                a["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expect: Vec<(u64, String)> = [
        (101, "set_config"),
        (101, "start"),
        (102, "set_config"),
        (103, "set_config"),
        (200, "set_config"),
        (200, "start"),
    ]
    .iter()
    .map(|(v, k)| (*v, k.to_string()))
    .collect();
    assert_eq!(actions, expect);
    assert_eq!(plan["actions"][0]["params"]["tags"], "prod;web");
    assert_eq!(plan["actions"][0]["params"]["memory"], "1024");
    assert_eq!(
        plan["candidates"],
        serde_json::json!([
            {"vmid": 104, "kind": "provisioning", "guest_type": "qemu"},
            {"vmid": 150, "kind": "destroy", "guest_type": "lxc"}
        ])
    );
    assert!(env.writes().is_empty(), "plan wrote: {:?}", env.writes());

    let human = env.castellan(&["plan"]);
    let table = text(&human.stdout);
    assert!(
        table.contains("Plan for node pve-01: 6 actions, 2 candidates"),
        "{table}"
    );
    assert!(table.contains("150    lxc   destroy"), "{table}");
    let detailed = env.castellan(&["plan", "--detailed-exitcode"]);
    assert_eq!(detailed.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_once_converges_and_leaves_candidates_alone() {
    let env = Env::new(vec![]).await;
    let out = env.castellan(&["agent", "--once", "--json"]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report is JSON");
    assert_eq!(report["converged"], true);
    assert_eq!(report["applied"].as_array().map(Vec::len), Some(6));

    let g = env.guest(101);
    assert_eq!(g.status, GuestStatus::Running);
    assert_eq!(g.config.get("cores").map(String::as_str), Some("2"));
    assert_eq!(g.config.get("memory").map(String::as_str), Some("1024"));
    assert_eq!(g.config.get("tags").map(String::as_str), Some("prod;web"));
    assert_eq!(
        env.guest(102).config.get("memory").map(String::as_str),
        Some("4096")
    );
    assert_eq!(
        env.guest(103).config.get("cores").map(String::as_str),
        Some("4")
    );
    let vm = env.guest(200);
    assert_eq!(vm.status, GuestStatus::Running);
    assert_eq!(vm.config.get("cores").map(String::as_str), Some("2"));
    assert_eq!(vm.config.get("memory").map(String::as_str), Some("2048"));
    assert_eq!(
        vm.config.get("description").map(String::as_str),
        Some("vm one")
    );
    // The destroy candidate is untouched; the provisioning candidate was not created.
    assert_eq!(env.guest(150).status, GuestStatus::Running);
    assert!(env.sim.guest(104).is_none());
    assert!(
        !env.writes()
            .iter()
            .any(|w| w.contains("/150") || w.contains("/104") || w.starts_with("DELETE")),
        "{:?}",
        env.writes()
    );
    // Idempotent: a second run has nothing to do.
    env.sim.clear_requests();
    let again = env.castellan(&["agent", "--once"]);
    assert!(again.status.success());
    assert!(
        env.writes().is_empty(),
        "second run wrote: {:?}",
        env.writes()
    );
    assert!(
        env.castellan(&["plan", "--detailed-exitcode"])
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_guest_does_not_stop_the_rest() {
    let env = Env::new(vec![FaultRule {
        vmid: Some(103),
        method: Some("PUT".into()),
        path_suffix: Some("config".into()),
        times: None,
        fault: Fault::InternalError {
            message: "unable to write config: disk full".into(),
        },
    }])
    .await;
    let out = env.castellan(&["agent", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Not converged"), "{stdout}");
    assert!(
        stdout.contains("103: gave up") && stdout.contains("disk full"),
        "{stdout}"
    );
    assert_eq!(env.guest(101).status, GuestStatus::Running);
    assert_eq!(
        env.guest(102).config.get("memory").map(String::as_str),
        Some("4096")
    );
    assert_eq!(env.guest(200).status, GuestStatus::Running);
    assert_eq!(
        env.guest(103).config.get("cores").map(String::as_str),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_desired_state_is_refused_and_changes_nothing() {
    let env = Env::new(vec![]).await;
    let cases = [
        (
            "node = \"pve-01\"\n[[guest]\nvmid = 101\n",
            "TOML parse error at line 2",
        ),
        (
            "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncpus = 2\n",
            "unknown field `cpus`",
        ),
        (
            "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = -1\n",
            "cores: must be between 1 and 8192, got -1",
        ),
        (
            "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\n",
            "duplicate vmid",
        ),
        ("node = \"pve-02\"\n", "is for node \"pve-02\""),
    ];
    for (desired, want) in cases {
        std::fs::write(env.dir.path().join("desired.toml"), desired).expect("write");
        for cmd in [&["agent", "--once"][..], &["plan"][..]] {
            let out = env.castellan(cmd);
            assert_eq!(out.status.code(), Some(1), "{cmd:?} accepted {desired:?}");
            let err = text(&out.stderr);
            assert!(err.contains(want), "{cmd:?}: want {want:?} in {err}");
            assert!(!err.contains("e2e-secret"), "secret leaked: {err}");
        }
    }
    assert!(
        env.sim.requests().is_empty(),
        "a refused desired state reached the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_agent_follows_edits_and_keeps_the_last_valid_state() {
    let env = Env::new(vec![]).await;
    let child = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["agent", "--log-format", "json", "--config"])
        .arg(env.config())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agent starts");
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("initial convergence", &|| {
        env.sim
            .guest(103)
            .and_then(|g| g.config.get("cores").cloned())
            .as_deref()
            == Some("4")
    });
    // An invalid edit is refused; the agent carries on with the last valid state.
    std::fs::write(
        env.dir.path().join("desired.toml"),
        "node = \"pve-01\"\n[[guest]]\nvmid = 103\nkind = \"lxc\"\ncores = 0\n",
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(500));
    // A valid edit is picked up.
    std::fs::write(
        env.dir.path().join("desired.toml"),
        DESIRED.replace("cores = 4", "cores = 6"),
    )
    .expect("write");
    wait_for("the edit to converge", &|| {
        env.sim
            .guest(103)
            .and_then(|g| g.config.get("cores").cloned())
            .as_deref()
            == Some("6")
    });
    // Drift made behind the agent's back is corrected at the next resync.
    let token: castellan_pve::ApiToken = TOKEN.parse().expect("token");
    let mut cfg = castellan_pve::ClientConfig::new(env.sim.base_url().parse().expect("url"), token);
    cfg.tls = castellan_pve::TlsMode::CaPem(env.sim.ca_pem().expect("ca"));
    let client = castellan_pve::PveClient::new(cfg).expect("client");
    let kind = castellan_pve::GuestKind::Lxc;
    let current = client
        .guest_config("pve-01", kind, 103)
        .await
        .expect("read");
    let update = castellan_pve::ConfigUpdate::new(current.digest).set("cores", "1");
    client
        .update_config("pve-01", kind, 103, &update)
        .await
        .expect("out-of-band write");
    wait_for("out-of-band drift to be corrected", &|| {
        env.sim
            .guest(103)
            .and_then(|g| g.config.get("cores").cloned())
            .as_deref()
            == Some("6")
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().expect("agent exits");
    assert!(out.status.success(), "graceful shutdown: {:?}", out.status);
    let logs = text(&out.stderr);
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let has = |event: &str| events.iter().any(|e| e["event"] == event);
    assert!(has("action_applied"), "{logs}");
    assert!(has("desired_state_refused"), "{logs}");
    assert!(has("candidate_refused"), "{logs}");
    assert!(!logs.contains("e2e-secret"), "secret in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_certificate_pin_is_refused() {
    let env = Env::new(vec![]).await;
    write_config(
        env.dir.path(),
        &env.sim.base_url(),
        &format!("{}AB", "AB:".repeat(31)),
    );
    let out = env.castellan(&["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr).to_lowercase();
    assert!(err.contains("fingerprint") || err.contains("tls"), "{err}");
    assert!(
        env.sim.requests().is_empty(),
        "a request got through a bad pin"
    );
}

#[test]
fn demo_converges_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .arg("demo")
        .output()
        .expect("demo runs");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Converged."), "{stdout}");
    // The destroy waits for a signature, then runs once the demo's operator signed it.
    let pending = stdout
        .find("150: destroy pending a signed op")
        .expect("pending first");
    let done = stdout
        .find("150    destroy     signed by SHA256:")
        .expect("then destroyed");
    assert!(pending < done, "{stdout}");
    assert!(stdout.contains("200    reboot"), "{stdout}");
    // Guest 104 is restored from its declared backup, grown and started; 105, declared
    // without a source, is only reported.
    for line in ["104    provision", "104    resize", "104    start"] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(
        stdout.contains("105: provisioning candidate, still absent: not created"),
        "{stdout}"
    );
    // The signed destroy took its safety backup first, and says which.
    assert!(
        stdout.contains("; safety backup local:backup/vzdump-lxc-150-"),
        "{stdout}"
    );
    // The host-service ledger: the leaked token is quarantined (its value never printed),
    // the clean response is accepted by the signed reviewer record, no runtime gate opens.
    assert!(
        stdout.contains("lane: quarantine_secret_or_raw_payload: GitHub"),
        "{stdout}"
    );
    assert!(!stdout.contains("ghp_"), "{stdout}");
    // The fleet: a change through the hub reaches both nodes; the destroy is held, then
    // signed, relayed and run once; relayed again it is refused as a replay.
    let fleet = stdout
        .find("== a fleet: one hub, two nodes, two agents ==")
        .expect("the fleet part");
    let fleet = &stdout[fleet..];
    assert_eq!(fleet.matches("has it on the node").count(), 2, "{fleet}");
    let held = fleet
        .find("held on pve-11, waiting for a signature: pve-11-lxc-102-destroy.op")
        .expect("held first");
    let run = fleet
        .find("verified the signature itself and destroyed guest 102")
        .expect("then run");
    assert!(held < run, "{fleet}");
    assert!(
        fleet.contains("refused by pve-11 as a replay: guest 102 destroyed 1 time in all"),
        "{fleet}"
    );
    assert!(
        stdout.contains(
            "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK candidates=2 write_capable=1 checks=21 lanes=8 accepted=1 runtime_gate=0"
        ),
        "{stdout}"
    );
}

/// Regression: `castellan demo | head -1` used to panic with "failed printing to stdout:
/// Broken pipe"; a reader that goes away now ends the command quietly.
#[test]
fn closed_stdout_is_not_a_crash() {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo runs");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("demo prints");
    drop(stdout);
    let out = child.wait_with_output().expect("demo exits");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

// ---- what a new user meets --------------------------------------------------------------

fn castellan_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("castellan runs")
}

/// How often `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Writes an agent.toml for a node at `url` that does not answer, with one quick attempt.
fn unreachable_config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n[desired]\nfile = \"desired.toml\"\n[agent]\nbackoff_base_ms = 10\nonce_attempts = 1\n"
        ),
    )
    .expect("write agent.toml");
    std::fs::write(dir.join("desired.toml"), "node = \"pve-01\"\n").expect("write desired");
}

/// Regression: `cannot read agent.toml: No such file or directory` was printed with its
/// cause twice, every desired-state problem twice, `file is not a database` three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_said_once() {
    let env = Env::new(vec![]).await;
    let dir = env.dir.path();

    let out = castellan_in(dir, &["plan", "-c", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(count(&err, "No such file or directory"), 1, "{err}");
    assert_eq!(count(&err, "missing.toml"), 1, "{err}");

    std::fs::write(
        dir.join("desired.toml"),
        "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = -1\nmemory = \"3XB\"\n",
    )
    .expect("write");
    for cmd in [&["agent", "--once"][..], &["plan"][..]] {
        let out = env.castellan(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = text(&out.stderr);
        assert_eq!(
            count(&err, "cores: must be between 1 and 8192"),
            1,
            "{cmd:?}: {err}"
        );
        assert_eq!(count(&err, "unknown unit \"XB\""), 1, "{cmd:?}: {err}");
        assert_eq!(
            count(&err, "invalid desired state (2 problems)"),
            1,
            "{cmd:?}: {err}"
        );
        assert_eq!(count(&err, "error:"), 1, "{cmd:?}: {err}");
    }

    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("castellan.db"), "this is not sqlite\n").expect("write");
    for cmd in ["verify", "show", "export"] {
        let out = castellan_in(dir, &["audit", cmd, "--data-dir", "bad"]);
        assert_eq!(out.status.code(), Some(2), "audit {cmd}");
        let err = text(&out.stderr);
        assert_eq!(
            count(&err, "file is not a database"),
            1,
            "audit {cmd}: {err}"
        );
    }
}

#[test]
fn a_tampered_op_is_rejected_with_its_reason_once() {
    castellan_testkit::need_ssh_keygen!();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let alice = castellan_testkit::keygen(d, "alice", "ed25519", None);
    std::fs::write(
        d.join("allowed_signers"),
        format!("alice@example.com {}\n", alice.line),
    )
    .expect("write");
    std::fs::write(
        d.join("signers.toml"),
        "allowed_signers = \"allowed_signers\"\n[roles]\n\"alice@example.com\" = \"operational\"\n",
    )
    .expect("write");
    let new = castellan_in(
        d,
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
            "--precondition",
            "9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20",
            "-o",
            "x.op",
        ],
    );
    assert!(new.status.success(), "{}", text(&new.stderr));
    let key = alice.private.to_str().expect("utf-8 path");
    let sign = castellan_in(d, &["op", "sign", "x.op", "--key", key]);
    assert!(sign.status.success(), "{}", text(&sign.stderr));
    let op = std::fs::read_to_string(d.join("x.op")).expect("read");
    std::fs::write(d.join("x.op"), op.replace("lxc/101", "lxc/102")).expect("write");
    let out = castellan_in(
        d,
        &[
            "op",
            "verify",
            "x.op",
            "--signers",
            "signers.toml",
            "--host",
            "pve-01",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(count(&stdout, "does not verify"), 1, "{stdout}");
    assert!(
        stdout.starts_with("rejected: bad_signature: ") && stdout.contains("x.op.sig"),
        "{stdout}"
    );
}

/// Flags that would be ignored, and values the parser can check, are refused by the parser:
/// exit 2 with a message naming the flag.
#[test]
fn refused_flags_and_values_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases: &[(&[&str], &[&str])] = &[
        (&["agent", "--json"], &["--once"]),
        (
            &[
                "ledger",
                "review",
                "X",
                "--decision",
                "maybe",
                "--reason",
                "r",
                "--key",
                "k",
                "--ledger",
                "l",
            ],
            &["'maybe'", "accepted", "rejected"],
        ),
        (
            &["audit", "show", "--data-dir", "x", "--last", "0"],
            &["--last", "at least 1"],
        ),
        (
            &["audit", "show", "--data-dir", "x", "--last", "many"],
            &["--last", "whole number"],
        ),
    ];
    for (args, wants) in cases {
        let out = castellan_in(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        for want in *wants {
            assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        }
        assert_eq!(count(&err, "error:"), 1, "{args:?}: {err}");
    }
}

/// One vocabulary: `--key` (and `--agent`) wherever a key signs, `--repo` for the ops
/// repository, `--requests` for the owner request report, `--inventory` for the inventory.
#[test]
fn one_vocabulary_across_subcommands() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_castellan"))
            .args(args)
            .arg("--help")
            .output()
            .expect("help");
        assert!(out.status.success(), "{args:?}");
        text(&out.stdout)
    };
    for args in [&["op", "sign"][..], &["ledger", "review"][..]] {
        let h = help(args);
        assert!(
            h.contains("--key <KEY>") && h.contains("--agent"),
            "{args:?}: {h}"
        );
        assert!(!h.contains("sign-key"), "{args:?}: {h}");
    }
    let h = help(&["ledger", "review"]);
    assert!(
        h.contains("Possible values:") && h.contains("- accepted") && h.contains("- rejected"),
        "{h}"
    );
    let h = help(&["ledger", "acceptance"]);
    for want in [
        "--repo <REPO>",
        "--inventory <INVENTORY>",
        "--requests <REQUESTS>",
    ] {
        assert!(h.contains(want), "{want}: {h}");
    }
    for gone in ["--root", "--inventory-report", "--owner-request-report"] {
        assert!(!h.contains(gone), "{gone}: {h}");
    }
    assert!(help(&["ledger", "requests"]).contains("--inventory <INVENTORY>"));
    for args in [&["ledger", "intake"][..], &["ledger", "show"][..]] {
        assert!(help(args).contains("--requests <REQUESTS>"), "{args:?}");
    }
    assert!(help(&["ledger", "show"]).contains("--json"));
}

/// The README's ledger pipeline, run from a directory that is not the ops repository:
/// every path is relative to the current directory (`ledger acceptance` resolved its reports
/// against `--root`, so this failed), and `ledger show --json` prints the candidate.
#[test]
fn the_ledger_pipeline_runs_from_anywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ops = d.join("ops");
    std::fs::create_dir_all(ops.join("systemd")).expect("mkdir");
    std::fs::write(
        ops.join("systemd/node-exporter.service"),
        "[Unit]\nDescription=Prometheus node exporter\n\n[Service]\nExecStart=/usr/local/bin/node_exporter\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    .expect("write");
    let work = d.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let run = |args: &[&str]| {
        let out = castellan_in(&work, args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
    run(&[
        "ledger",
        "inventory",
        "--repo",
        "../ops",
        "-o",
        "inventory.json",
    ]);
    run(&[
        "ledger",
        "requests",
        "--inventory",
        "inventory.json",
        "-o",
        "ledger/owner-requests.json",
    ]);
    let requests: serde_json::Value = serde_json::from_slice(
        &std::fs::read(work.join("ledger/owner-requests.json")).expect("read"),
    )
    .expect("json");
    let draft = &requests["request_drafts"][0];
    let response = serde_json::json!({
        "schema_version": "host_service_owner_response_v1",
        "request_id": draft["request_id"],
        "surface_id": draft["surface_id"],
        "repo_sha256": draft["repo_sha256"],
    });
    std::fs::write(
        work.join("response.json"),
        serde_json::to_vec(&response).expect("json"),
    )
    .expect("write");
    run(&["ledger", "intake", "response.json", "--ledger", "ledger"]);
    let out = run(&[
        "ledger",
        "acceptance",
        "--repo",
        "../ops",
        "--inventory",
        "inventory.json",
        "--requests",
        "ledger/owner-requests.json",
        "--ledger",
        "ledger",
        "-o",
        "report.json",
    ]);
    assert!(
        text(&out.stderr).contains("HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK"),
        "{}",
        text(&out.stderr)
    );
    assert!(work.join("report.json").is_file());
    // The old spelling still works.
    run(&[
        "ledger",
        "acceptance",
        "--root",
        "../ops",
        "--inventory-report",
        "inventory.json",
        "--owner-request-report",
        "ledger/owner-requests.json",
    ]);
    let surface = draft["surface_id"].as_str().expect("surface id");
    let out = run(&["ledger", "show", surface, "--ledger", "ledger", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("show --json");
    assert_eq!(shown["surface"]["surface_id"], surface);
    assert_eq!(shown["runtime_gate"], false);
    assert_eq!(shown["intake_records"].as_array().map(Vec::len), Some(1));
}

/// `op sign` checks the key before it starts, and reports the file it really wrote (not
/// ssh-keygen's name in its temporary directory).
#[test]
fn op_sign_checks_the_key_and_names_the_file_it_wrote() {
    castellan_testkit::need_ssh_keygen!();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let alice = castellan_testkit::keygen(d, "alice", "ed25519", None);
    let new = castellan_in(
        d,
        &[
            "op",
            "new",
            "destroy",
            "--host",
            "pve-01",
            "--target",
            "lxc/101",
            "--precondition",
            "9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20",
            "-o",
            "x.op",
        ],
    );
    assert!(new.status.success(), "{}", text(&new.stderr));
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = entries();
    std::fs::write(d.join("notakey"), "hello\n").expect("write");
    let before_with = entries();
    let sign = |key: &str| {
        Command::new(env!("CARGO_BIN_EXE_castellan"))
            .args(["op", "sign", "x.op", "--key", key])
            .current_dir(d)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("runs")
    };
    let public = alice.public.to_str().expect("utf-8");
    for (key, want) in [
        ("nokey", "key file not found"),
        ("notakey", "is not an SSH private key"),
        (".", "not a regular file"),
        (public, "is a public key"),
    ] {
        let out = sign(key);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{key}: want {want:?} in {err}");
        assert_eq!(count(&err, "error:"), 1, "{key}: {err}");
        assert!(
            !err.contains("signing x.op"),
            "{key}: started anyway: {err}"
        );
        assert_eq!(entries(), before_with, "{key}: something was written");
    }
    assert!(before.iter().all(|n| !n.ends_with(".sig")));

    let private = alice.private.to_str().expect("utf-8");
    let first = sign(private);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout).trim(), "x.op.sig");
    // A second signature goes to x.op.2.sig, and that is the name reported.
    let second = sign(private);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout).trim(), "x.op.2.sig");
    let err = text(&second.stderr);
    assert!(err.contains("x.op.2.sig"), "{err}");
    assert!(
        !err.contains("Write signature to") && !err.contains("Signing file"),
        "ssh-keygen's temporary names leak: {err}"
    );
    assert!(!entries().iter().any(|n| n.starts_with(".castellan-sign")));
}

/// Logs on a pipe carry no ANSI escapes; the top-level help says what castellan is for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_logs_are_plain_and_help_explains_castellan() {
    let env = Env::new(vec![]).await;
    let out = env.castellan(&["agent", "--once"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!out.stderr.is_empty(), "no logs to check");
    assert!(
        !out.stderr.contains(&0x1b),
        "ANSI escapes in piped logs: {}",
        text(&out.stderr)
    );
    for flag in ["-h", "--help"] {
        let help = castellan_in(env.dir.path(), &[flag]);
        let h = text(&help.stdout);
        assert!(
            h.contains("Proxmox VE") && h.contains("signature"),
            "{flag}: {h}"
        );
        assert!(flag == "-h" || h.contains("castellan demo"), "{flag}: {h}");
        assert!(!h.contains("the operator CLI (plan, agent"), "{flag}: {h}");
    }
}

/// A node that cannot be reached is reported as the node's failure, never as vmid 0, and a
/// run that applied nothing does not print an empty "Applied 0 actions" header. An `http://`
/// URL is warned about.
#[test]
fn a_node_failure_is_not_vmid_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    unreachable_config(d, "http://127.0.0.1:9");
    let out = castellan_in(d, &["agent", "--once", "--json", "-c", "agent.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["failed"], serde_json::json!({}), "{report}");
    let node = report["node_failed"].as_array().expect("node_failed");
    assert!(
        node.iter().any(|e| e
            .as_str()
            .is_some_and(|s| s.contains("cannot observe the node"))),
        "{report}"
    );
    assert!(
        !report["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r.as_str().is_some_and(|s| s.starts_with("0:"))),
        "{report}"
    );
    let err = text(&out.stderr);
    assert!(err.contains("plain http"), "{err}");
    assert!(!err.contains("e2e-secret"), "{err}");

    let out = castellan_in(d, &["agent", "--once", "-c", "agent.toml"]);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("Applied 0 actions"), "{stdout}");
    assert!(stdout.contains("No action applied on pve-01."), "{stdout}");
    assert!(stdout.contains("node: cannot observe the node"), "{stdout}");
    assert!(!stdout.contains("\n  0: "), "{stdout}");
}

/// The demo's plan lists every action the agent then applies, its `op show` lines are what
/// `op show` prints, and every command it prints is one the CLI accepts in full.
#[test]
fn the_demo_shows_what_it_does() {
    let out = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .arg("demo")
        .output()
        .expect("demo runs");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        !out.stderr.contains(&0x1b),
        "ANSI escapes: {}",
        text(&out.stderr)
    );

    // Plan == applied: the same (vmid, action) pairs, the count in the header included.
    let plan_start = stdout.find("== castellan plan ==").expect("plan");
    let apply_start = stdout.find("== castellan agent --once ==").expect("apply");
    let plan = &stdout[plan_start..apply_start];
    let applied = &stdout[apply_start..];
    let header = plan
        .lines()
        .find(|l| l.starts_with("Plan for node pve-01: "))
        .expect("plan header");
    let planned_count: usize = header["Plan for node pve-01: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("action count");
    let pairs = |block: &str, cols: usize| {
        let mut v: Vec<(String, String)> = block
            .lines()
            .map(str::split_whitespace)
            .filter_map(|mut w| {
                let vmid = w.next()?;
                vmid.parse::<u32>().ok()?;
                let action = if cols == 3 {
                    w.next()?;
                    w.next()?
                } else {
                    w.next()?
                };
                Some((vmid.to_owned(), action.to_owned()))
            })
            .collect();
        v.sort();
        v
    };
    let table = &plan[..plan.find("Destructive").unwrap_or(plan.len())];
    let planned = pairs(table, 3);
    let applied_count: usize = applied
        .lines()
        .find_map(|l| l.strip_prefix("Applied "))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("applied count");
    let first_report = &applied[..applied.find("\nPlan for node").expect("final plan")];
    let done = pairs(first_report, 2);
    assert_eq!(planned_count, applied_count, "{plan}\n{first_report}");
    assert_eq!(planned, done, "{plan}\n{first_report}");

    // `op show`, as it prints it.
    let show = stdout
        .split("$ castellan op show ")
        .nth(1)
        .expect("op show in the demo");
    let labels: Vec<&str> = show
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .filter_map(|l| l.trim_start().split(':').next())
        .collect();
    assert_eq!(
        labels,
        [
            "op file",
            "operation",
            "effect",
            "parameters",
            "precondition",
            "valid from",
            "valid until",
            "status",
            "nonce",
            "digest",
            "signatures"
        ],
        "{show}"
    );

    // Every `$ castellan ...` line parses as the CLI's own command line, in full.
    let commands: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .collect();
    assert!(commands.len() >= 9, "{commands:?}");
    for c in &commands {
        let c = c.split("    (").next().unwrap_or(c);
        let words = shell_words(c);
        if let Err(e) = <castellan::Cli as clap::Parser>::try_parse_from(&words) {
            panic!("the demo prints a command the CLI refuses: {c}\n{e}");
        }
    }
    for (cmd, wants) in [
        ("castellan ledger intake ", &["--ledger"][..]),
        (
            "castellan ledger review ",
            &["--decision", "--reason", "--key", "--ledger"][..],
        ),
        (
            "castellan ledger acceptance ",
            &["--repo", "--inventory", "--requests", "--ledger"][..],
        ),
    ] {
        let line = commands
            .iter()
            .find(|c| c.starts_with(cmd))
            .unwrap_or_else(|| panic!("no {cmd} in the demo"));
        for w in wants {
            assert!(line.contains(w), "{line}: no {w}");
        }
    }
}

/// Splits a command line as a shell would, for the simple quoting the demo prints.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `demo --keep` names the binary that runs it (not on PATH after `cargo run`), keeps the
/// token file 0600, and an edit of its desired.toml shows up in the log.
#[test]
fn demo_keep_stays_useful() {
    use std::io::{BufRead as _, Read as _};
    let mut child = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["demo", "--keep"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log_writer = log.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut l) = log_writer.lock() {
                l.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut told = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.starts_with("  pvesim: ");
        told.push(line);
        if done {
            break;
        }
    }
    let text_told = told.join("\n");
    let kill = |child: &mut std::process::Child| {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    };
    let exe = env!("CARGO_BIN_EXE_castellan");
    let desired = told
        .iter()
        .find_map(|l| l.strip_prefix("  edit "))
        .and_then(|l| l.split(" and watch").next())
        .map(PathBuf::from);
    let Some(desired) = desired else {
        kill(&mut child);
        panic!("no desired.toml named: {text_told}");
    };
    let kept = desired.parent().expect("kept dir").to_owned();
    let result = std::panic::catch_unwind(|| {
        assert!(
            text_told.contains(&format!("  plan:   {exe} plan -c ")),
            "{text_told}"
        );
        assert!(
            !text_told.contains("demo-secret"),
            "token printed: {text_told}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(kept.join("pve-token"))
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
        }
        // The agent is up (and its log at info) before the edit.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !log
            .lock()
            .map(|l| l.contains("agent_started"))
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "the agent did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&desired).expect("read desired");
        let edited = text.replace(
            "vmid = 103\nkind = \"lxc\"\ncores = 2",
            "vmid = 103\nkind = \"lxc\"\ncores = 3",
        );
        assert_ne!(text, edited, "the demo's desired state changed shape");
        std::fs::write(&desired, edited).expect("edit desired");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = log.lock().map(|l| l.clone()).unwrap_or_default();
            if seen.contains("action_applied") && seen.contains("vmid=103") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the edit left no trace in the log: {seen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    kill(&mut child);
    let status = child.wait().expect("demo exits");
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&kept);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(status.success(), "{status:?}");
}

/// The README's pvesim example uses a seed that is in the repository.
#[test]
fn the_readme_pvesim_seed_is_in_the_repo() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let seed = readme
        .split("--seed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the README's pvesim example names a seed");
    let text = std::fs::read_to_string(root.join(seed))
        .unwrap_or_else(|e| panic!("README seed {seed}: {e}"));
    let seed = Seed::from_toml_str(&text).expect("the seed parses");
    assert!(!seed.guests.is_empty());
    assert!(readme.contains("cargo install --path crates/castellan"));
}

/// Every desired-state example in the README parses as the agent would read it.
#[test]
fn the_readme_desired_state_examples_parse() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.trim_start().starts_with("node = ") && !b.contains("data_dir"))
        .collect();
    assert!(blocks.len() >= 2, "guests and containers are both shown");
    let mut containers = 0;
    for b in blocks {
        let text: String = b.lines().map(|l| format!("{}\n", l.trim_start())).collect();
        let d = castellan_core::parse_desired(&text)
            .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{text}"));
        containers += d.containers.declared.len();
    }
    assert!(containers > 0, "the Docker example declares a container");
}
