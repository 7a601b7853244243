//! `run = "stopped"` brings a guest down cleanly: the real `castellan agent` against
//! pvesim with guests that do not react to a shutdown (no ACPI, a hung init). A hard stop
//! can corrupt the guest's data, so the agent never sends `status/stop` for it and asks
//! the node to force a stop after the timeout only where the desired state allows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use pvesim::{Fault, FaultRule, GuestStatus, Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=shutdown-secret-3c1a";

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "stubborn-ct"

[[guest]]
vmid = 200
kind = "qemu"
status = "running"
[guest.config]
name = "stubborn-vm"

[[guest]]
vmid = 300
kind = "qemu"
status = "running"
[guest.config]
name = "polite-vm"
"#;

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(desired: &str) -> Env {
        let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(SEED).unwrap());
        cfg.task_duration = Duration::from_millis(20);
        // 101 and 200 ignore a clean shutdown; 300 shuts down when asked.
        cfg.faults = [101, 200]
            .into_iter()
            .map(|vmid| FaultRule {
                vmid: Some(vmid),
                method: Some("POST".into()),
                path_suffix: Some("status/shutdown".into()),
                times: None,
                fault: Fault::ShutdownIgnored,
            })
            .collect();
        let sim = pvesim::start(cfg, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!(
                "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\
                 [desired]\nfile = \"desired.toml\"\n[agent]\nbackoff_base_ms = 20\nonce_attempts = 2\n",
                sim.base_url()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("desired.toml"), desired).unwrap();
        Env { sim, dir }
    }

    fn agent_once(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_castellan"))
            .args(["agent", "--once", "--config"])
            .arg(self.dir.path().join("agent.toml"))
            .output()
            .unwrap()
    }

    fn posts(&self, vmid: u32, what: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/{vmid}/status/{what}")))
            .map(|r| r.params)
            .collect()
    }

    fn status(&self, vmid: u32) -> GuestStatus {
        self.sim.guest(vmid).unwrap().status
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// By default: a clean shutdown with the default timeout, never a hard stop. A guest that
/// does not shut down is reported with the node's own words and left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_means_a_clean_shutdown_never_a_hard_stop() {
    let env = Env::new(
        "node = \"pve-01\"\n\
         [[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"stopped\"\n\
         [[guest]]\nvmid = 200\nkind = \"qemu\"\nrun = \"stopped\"\n\
         [[guest]]\nvmid = 300\nkind = \"qemu\"\nrun = \"stopped\"\nshutdown_timeout = 30\n",
    )
    .await;
    let out = env.agent_once();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("container did not stop"), "{stdout}");
    assert!(
        stdout.contains("VM quit/powerdown failed - got timeout"),
        "{stdout}"
    );
    // The polite one is down; the stubborn ones still run.
    assert_eq!(env.status(300), GuestStatus::Stopped);
    assert_eq!(env.status(101), GuestStatus::Running);
    assert_eq!(env.status(200), GuestStatus::Running);
    for vmid in [101, 200, 300] {
        assert!(
            env.posts(vmid, "stop").is_empty(),
            "a hard stop was sent to {vmid}"
        );
        let shutdowns = env.posts(vmid, "shutdown");
        assert!(!shutdowns.is_empty(), "{vmid} was asked to shut down");
        for p in shutdowns {
            assert!(!p.contains_key("forceStop"), "{vmid}: {p:?}");
            let want = if vmid == 300 { "30" } else { "180" };
            assert_eq!(p.get("timeout").map(String::as_str), Some(want), "{vmid}");
        }
    }
}

/// `force_stop = true`: the node may stop the guest once the timeout has passed; the
/// agent still never sends a hard stop itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_stop_only_where_the_desired_state_allows_it() {
    let env = Env::new(
        "node = \"pve-01\"\n\
         [[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"stopped\"\nforce_stop = true\nshutdown_timeout = 5\n\
         [[guest]]\nvmid = 200\nkind = \"qemu\"\nrun = \"stopped\"\n",
    )
    .await;
    let out = env.agent_once();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        env.status(101),
        GuestStatus::Stopped,
        "forced after the timeout"
    );
    assert_eq!(
        env.status(200),
        GuestStatus::Running,
        "not allowed to force"
    );
    let p = env.posts(101, "shutdown");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].get("forceStop").map(String::as_str), Some("1"));
    assert_eq!(p[0].get("timeout").map(String::as_str), Some("5"));
    assert!(env.posts(101, "stop").is_empty() && env.posts(200, "stop").is_empty());
}
