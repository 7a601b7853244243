//! Convergence benchmark: N drifted guests on one pvesim, converged by one agent process
//! (`castellan agent --once`), over HTTPS with a pinned certificate.
//!
//! Reports wall time, actions per second, the per-action cost, the agent's peak RSS
//! (VmHWM) and, afterwards, the idle agent's CPU use over 10 s. Run with
//! `cargo bench -p castellan --bench converge`; under `cargo test` it runs a 20-guest
//! smoke version and checks the node converged.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pvesim::{Seed, SimConfig};

const TOKEN: &str = "root@pam!bench=bench-secret";
const PARALLEL: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u32 = if bench { 1000 } else { 20 };
    let rt = tokio::runtime::Runtime::new()?;
    let task_durations: &[u64] = if bench { &[0, 50] } else { &[10] };
    for &task_ms in task_durations {
        rt.block_on(run(n, task_ms, bench))?;
    }
    Ok(())
}

fn seed(n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        let vmid = 1000 + i;
        let (kind, name, mem) = if i % 2 == 0 {
            ("lxc", "hostname", "512".to_owned())
        } else {
            ("qemu", "name", "\"512\"".to_owned())
        };
        s += &format!(
            "[[guest]]\nvmid = {vmid}\nkind = \"{kind}\"\nstatus = \"stopped\"\n[guest.config]\n{name} = \"g{vmid}\"\ncores = 1\nmemory = {mem}\ntags = \"old\"\n\n"
        );
    }
    s
}

fn desired(n: u32) -> String {
    let mut s = String::from("node = \"pve-01\"\n");
    for i in 0..n {
        let kind = if i % 2 == 0 { "lxc" } else { "qemu" };
        s += &format!(
            "[[guest]]\nvmid = {}\nkind = \"{kind}\"\nrun = \"running\"\ncores = 2\nmemory = \"1GiB\"\ntags = [\"bench\"]\n",
            1000 + i
        );
    }
    s
}

async fn run(n: u32, task_ms: u64, bench: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(&seed(n))?);
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

    // Converge.
    let started = Instant::now();
    let mut child = agent(&agent_toml, true).spawn()?;
    let peak_kib = watch_peak_rss(child.id());
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    let wall = started.elapsed();
    let peak = peak_kib.join().unwrap_or(0);
    if !status.success() {
        return Err(format!("agent --once failed with {status}").into());
    }
    // Check the node really converged (and that the measurement measured work).
    let mut actions = 0u64;
    for i in 0..n {
        let g = sim.guest(1000 + i).ok_or("guest vanished")?;
        if g.status != pvesim::GuestStatus::Running {
            return Err(format!("guest {} not running", 1000 + i).into());
        }
        actions += 2; // set_config + start
    }

    // Idle: the continuous agent on a converged node.
    let mut idle = agent(&agent_toml, false).spawn()?;
    std::thread::sleep(Duration::from_secs(if bench { 3 } else { 1 }));
    let window = Duration::from_secs(if bench { 10 } else { 1 });
    let cpu0 = cpu_ticks(idle.id())?;
    std::thread::sleep(window);
    let cpu1 = cpu_ticks(idle.id())?;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(idle.id().to_string())
        .status();
    let _ = idle.wait();
    let idle_pct = (cpu1 - cpu0) as f64 / 100.0 / window.as_secs_f64() * 100.0;

    let secs = wall.as_secs_f64();
    let line = format!(
        "converge n={n} task={task_ms}ms parallel={PARALLEL}: wall {secs:.2}s, {actions} actions, {:.0} actions/s, {:.2} ms per action per slot (incl. task), agent peak RSS {:.1} MiB, idle CPU {idle_pct:.2}% over {}s",
        actions as f64 / secs,
        secs * 1000.0 * PARALLEL as f64 / actions as f64,
        peak as f64 / 1024.0,
        window.as_secs()
    );
    println!("{line}");
    let _ = std::io::stdout().flush();
    sim.shutdown().await;
    Ok(())
}

fn agent(config: &Path, once: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.arg("agent")
        .arg("--config")
        .arg(config)
        .arg("--log")
        .arg("warn");
    if once {
        cmd.arg("--once");
    }
    cmd.stdout(Stdio::null());
    cmd
}

/// Samples VmHWM (peak resident set) of `pid` until it exits; returns the last value.
fn watch_peak_rss(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        let path = format!("/proc/{pid}/status");
        while let Ok(status) = std::fs::read_to_string(&path) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            if status.contains("State:\tZ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).ok_or("bad stat")?.parse::<u64>()?
        + f.get(12).ok_or("bad stat")?.parse::<u64>()?)
}
