//! Provisioning benchmark: a node of N declared guests, none of which exists, taken from
//! empty to converged by one agent process (`castellan agent --once`, HTTPS with a pinned
//! certificate): half LXC containers restored from a backup, half VMs cloned from a
//! template, each then started.
//!
//! Reports the wall time and, beside pvesim's own task time, the agent's overhead per
//! guest: every guest costs two tasks (the creation and the start), so with tasks of
//! `task` ms a slot spends `2 × task` waiting on the node and the rest is castellan's
//! (journal with full durability for the creation, the cluster check, observing, polling).
//! Run with `cargo bench -p castellan --bench provision`; under `cargo test` it runs a
//! 10-guest smoke version and checks the node converged.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pvesim::{Seed, SimConfig};

const TOKEN: &str = "root@pam!bench=bench-secret";
const PARALLEL: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u32 = if bench { 500 } else { 10 };
    let rt = tokio::runtime::Runtime::new()?;
    let task_durations: &[u64] = if bench { &[0, 50] } else { &[10] };
    for &task_ms in task_durations {
        rt.block_on(run(n, task_ms))?;
    }
    Ok(())
}

const SEED: &str = r#"
[[storage]]
id = "local"
type = "dir"
content = ["iso", "vztmpl", "backup"]
total = "10T"

[[storage]]
id = "local-lvm"
type = "lvmthin"
content = ["images", "rootdir"]
total = "100T"

[[backup]]
storage = "local"
vmid = 900
kind = "lxc"
size = "256M"

[[guest]]
vmid = 9000
kind = "qemu"
status = "stopped"
[guest.config]
name = "tmpl"
template = 1
memory = "512"
scsi0 = "local-lvm:base-9000-disk-0,size=2G"
"#;

fn desired(n: u32) -> String {
    let mut s = String::from("node = \"pve-01\"\n");
    for i in 0..n {
        let vmid = 1000 + i;
        let (kind, source) = if i % 2 == 0 {
            (
                "lxc",
                "{ restore = \"local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst\", storage = \"local-lvm\" }",
            )
        } else {
            (
                "qemu",
                "{ clone = 9000, full = true, storage = \"local-lvm\" }",
            )
        };
        s += &format!(
            "[[guest]]\nvmid = {vmid}\nkind = \"{kind}\"\nrun = \"running\"\nsource = {source}\n"
        );
    }
    s
}

async fn run(n: u32, task_ms: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(SEED)?);
    cfg.tls = true;
    cfg.task_duration = Duration::from_millis(task_ms);
    let sim = pvesim::start(cfg, "127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("desired.toml"), desired(n))?;
    let fp = sim.fingerprint().ok_or("no fingerprint")?;
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nfingerprint = \"{fp}\"\n[desired]\nfile = \"desired.toml\"\n[agent]\nmax_parallel = {PARALLEL}\n",
            sim.base_url()
        ),
    )?;

    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.arg("agent")
        .arg("--config")
        .arg(&agent_toml)
        .args(["--log", "warn", "--once"])
        .stdout(Stdio::null());
    let status = tokio::task::spawn_blocking(move || cmd.status()).await??;
    let wall = started.elapsed();
    if !status.success() {
        return Err(format!("agent --once failed with {status}").into());
    }
    for i in 0..n {
        let g = sim
            .guest(1000 + i)
            .ok_or("a declared guest was not created")?;
        if g.status != pvesim::GuestStatus::Running {
            return Err(format!("guest {} not running", 1000 + i).into());
        }
    }
    let created = sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && (r.path.ends_with("/nodes/pve-01/lxc") || r.path.ends_with("/clone"))
        })
        .count();
    if created != n as usize {
        return Err(format!("{created} creations for {n} guests").into());
    }

    let secs = wall.as_secs_f64();
    let slot_ms = secs * 1000.0 * PARALLEL as f64 / f64::from(n);
    let node_ms = 2.0 * task_ms as f64;
    println!(
        "provision n={n} task={task_ms}ms parallel={PARALLEL}: wall {secs:.2}s, {:.0} guests/s, {slot_ms:.2} ms per guest per slot, of which node tasks {node_ms:.0} ms, castellan overhead {:.2} ms",
        f64::from(n) / secs,
        slot_ms - node_ms
    );
    let _ = std::io::stdout().flush();
    sim.shutdown().await;
    Ok(())
}
