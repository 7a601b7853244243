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
    // The host-service ledger: the leaked token is quarantined (its value never printed),
    // the clean response is accepted by the signed reviewer record, no runtime gate opens.
    assert!(
        stdout.contains("lane: quarantine_secret_or_raw_payload: GitHub"),
        "{stdout}"
    );
    assert!(!stdout.contains("ghp_"), "{stdout}");
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
