//! `castellan demo`: the whole benign loop on one machine. pvesim serves a small node over
//! HTTPS with a fresh self-signed certificate; an agent pinned to that certificate plans,
//! converges the node, and reports what it refused to touch; then a small ops repository
//! goes through the host-service ledger (`demo_ledger`), and a fleet of two nodes is run
//! through a hub (`demo_fleet`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use castellan_agent::{AgentConfig, Mode};
use pvesim::{Fault, FaultRule, Seed, SimConfig};

use crate::render;

/// The simulated node, in drift: see `DESIRED` for what it should be. The same file is the
/// seed the README's pvesim example uses.
pub const SEED: &str = include_str!("../../pvesim/seeds/pve-01.toml");

/// What the operator declared.
pub const DESIRED: &str = r#"node = "pve-01"

# Stopped, too small, missing a tag: start it, resize it, tag it. Its description reads back
# from PVE with a trailing newline, which is not drift.
[[guest]]
vmid = 101
kind = "lxc"
run = "running"
cores = 2
memory = "1GiB"
description = "web front end"
tags = ["web", "prod"]

[[guest]]
vmid = 102
kind = "lxc"
memory = "4GiB"
description = "primary database"
tags = ["db", "prod"]

# pvesim makes its config lock contended twice; the agent retries.
[[guest]]
vmid = 103
kind = "lxc"
cores = 2

# Declared gone: destroying is destructive, so it waits for an operator's signed op.
[[guest]]
vmid = 150
kind = "lxc"
ensure = "absent"

# Declared but absent, with a source: restored from a backup (benign, recorded as the
# agent's own creation), its disk grown, started.
[[guest]]
vmid = 104
kind = "lxc"
run = "running"
source = { restore = "local:backup/vzdump-lxc-900-2026_11_30-03_00_00.tar.zst", storage = "local-lvm" }
disks = { rootfs = "12GiB" }

# Declared but absent, without a source: a provisioning candidate, not acted on.
[[guest]]
vmid = 105
kind = "lxc"
run = "running"

# A running VM cannot take new cores live: they go pending, and the policy says reboot.
[[guest]]
vmid = 200
kind = "qemu"
run = "running"
cores = 4
restart = "reboot"

[[guest]]
vmid = 201
kind = "qemu"
run = "stopped"

# Pending memory on a running VM with the default policy: reported, not rebooted.
[[guest]]
vmid = 202
kind = "qemu"
memory = "16GiB"
tags = ["ci"]
"#;

const TOKEN: &str = "root@pam!castellan=demo-secret-0b7d2c8e";

/// Runs the demo. Exit 0 when the node converged.
pub async fn run(keep: bool) -> anyhow::Result<ExitCode> {
    let seed = Seed::from_toml_str(SEED).context("demo seed")?;
    let mut sim_cfg = SimConfig::new("pve-01", TOKEN, seed);
    sim_cfg.tls = true;
    sim_cfg.faults = vec![FaultRule {
        vmid: Some(103),
        method: Some("PUT".into()),
        path_suffix: Some("config".into()),
        times: Some(2),
        fault: Fault::LockTimeout,
    }];
    let sim = pvesim::start(sim_cfg, "127.0.0.1:0".parse()?)
        .await
        .context("cannot start pvesim")?;
    let fingerprint = sim
        .fingerprint()
        .context("pvesim did not report its certificate fingerprint")?;

    let dir = tempfile::Builder::new()
        .prefix("castellan-demo-")
        .tempdir()?;
    // The demo's operator: a throwaway ed25519 key, made and used in memory (a real
    // operator signs with `castellan op sign` or `ssh-keygen -Y sign`).
    let operator = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(
        &rand::random::<[u8; 32]>(),
    ));
    let config_path = write_files(
        dir.path(),
        &sim.base_url(),
        &fingerprint,
        operator.public_key(),
    )?;
    let config = AgentConfig::load(&config_path)?;

    crate::outln!("castellan demo")?;
    crate::outln!(
        "  pvesim (simulated Proxmox VE node pve-01) at {}",
        sim.base_url()
    )?;
    crate::outln!("  certificate pinned by SHA-256 fingerprint {fingerprint}")?;
    crate::outln!(
        "  fault injected: guest 103's config lock is contended twice (the client backs off and retries)"
    )?;
    crate::outln!("  agent configuration in {}\n", dir.path().display())?;

    // 1. What the agent would do.
    let planned = crate::current_plan(&config).await?;
    crate::outln!("== castellan plan ==\n")?;
    crate::out!(
        "{}",
        render::plan_table(&config.node, &planned.plan, &planned.followups)
    )?;

    // 2. Converge.
    crate::outln!("\n== castellan agent --once ==\n")?;
    let report = castellan_agent::run(&config, Mode::Once, std::future::pending()).await?;
    crate::out!("{}", render::report(&config.node, &report))?;

    // 3. The operator signs the pending destroy; the agent verifies and executes it.
    let payload = config.data_dir.join("pending/pve-01-lxc-150-destroy.op");
    let report = if payload.exists() {
        let bytes = std::fs::read(&payload).context("reading the pending payload")?;
        let op = castellan_core::op::SignedOp::parse(&bytes).context("the pending payload")?;
        crate::outln!("\n== the operator reviews, signs and submits the pending destroy ==\n")?;
        crate::outln!("  $ castellan op show {}", payload.display())?;
        let shown = crate::op::show_text(&payload, &op, &[], jiff::Timestamp::now());
        for line in shown.lines() {
            crate::outln!("    {line}")?;
        }
        let sig = operator
            .sign(
                castellan_core::op::NAMESPACE,
                ssh_key::HashAlg::Sha512,
                &bytes,
            )
            .context("signing the payload")?
            .to_pem(ssh_key::LineEnding::LF)
            .context("encoding the signature")?;
        let sig_path = castellan_sig::sign::signature_path(&payload, 1);
        std::fs::write(&sig_path, &sig)
            .with_context(|| format!("cannot write {}", sig_path.display()))?;
        crate::outln!(
            "  $ castellan op sign {} --key KEY    (here: operator@demo's in-memory key)",
            payload.display()
        )?;
        crate::outln!("    {}", sig_path.display())?;
        // Handed over as `castellan op submit` does it: signatures first, then the op.
        let name = payload
            .file_name()
            .and_then(|n| n.to_str())
            .context("the pending payload has no file name")?;
        let inbox = castellan_agent::inbox::Inbox::open_existing(&config.inbox)
            .with_context(|| format!("cannot open the inbox {}", config.inbox.display()))?;
        let placed = inbox
            .submit(name, &bytes, &[(format!("{name}.sig"), sig.into_bytes())])
            .context("cannot submit the signed op")?;
        crate::outln!(
            "  $ castellan op submit {} --inbox {}",
            payload.display(),
            config.inbox.display()
        )?;
        crate::outln!("    submitted {} with 1 signature", placed.display())?;
        crate::outln!("\n== castellan agent --once ==\n")?;
        let report = castellan_agent::run(&config, Mode::Once, std::future::pending()).await?;
        crate::out!("{}", render::report(&config.node, &report))?;
        report
    } else {
        report
    };

    // 4. Show what was left alone.
    let mut untouched = String::new();
    for c in report.final_plan.iter().flat_map(|p| &p.candidates) {
        let state = match (c.kind, sim.guest(c.vmid).is_some()) {
            (castellan_core::plan::CandidateKind::Destroy, true) => {
                "destroy candidate, still present: not destroyed"
            }
            (castellan_core::plan::CandidateKind::Provisioning, false) => {
                "provisioning candidate, still absent: not created"
            }
            (_, true) => "present",
            (_, false) => "absent",
        };
        let _ = writeln!(untouched, "  {}: {state}", c.vmid);
    }
    crate::outln!(
        "\nOn the node afterwards (nothing is created without a declared source, nothing destroyed\nwithout a signature):\n{untouched}"
    )?;

    // 5. Host services: the owner-response ledger (files only).
    crate::demo_ledger::run(dir.path())?;

    // 6. A fleet through the hub.
    let fleet_ok = crate::demo_fleet::run(&dir.path().join("fleet"), &operator).await?;

    let converged = report.converged() && fleet_ok;
    if keep {
        // Leave the directory for the operator to edit.
        let kept = dir.keep();
        // `cargo run` does not put castellan on PATH: name the binary that is running.
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "cargo run -p castellan --".to_owned());
        crate::outln!("== staying up (Ctrl-C to stop) ==\n")?;
        crate::outln!(
            "  edit {} and watch the agent converge the node (its log is on stderr)",
            kept.join("desired.toml").display()
        )?;
        crate::outln!("  castellan here is {exe}")?;
        crate::outln!(
            "  plan:   {exe} plan -c {}",
            kept.join("agent.toml").display()
        )?;
        crate::outln!(
            "  audit:  {exe} audit show --data-dir {}",
            kept.join("state").display()
        )?;
        crate::outln!(
            "  ledger: {exe} ledger show {} --ledger {}",
            crate::demo_ledger::SHOWN_CANDIDATE,
            kept.join("ledger").display()
        )?;
        crate::outln!(
            "  pvesim: curl -k -H \"Authorization: PVEAPIToken=$(cat {})\" {}/api2/json/nodes/pve-01/lxc",
            kept.join("pve-token").display(),
            sim.base_url()
        )?;
        crate::outln!()?;
        // The story is told: from here on, what the agent does is the point.
        crate::logging::set_default_filter("info");
        castellan_agent::run(&config, Mode::Continuous, crate::shutdown_signal()).await?;
    }
    sim.shutdown().await;
    Ok(if converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes `agent.toml`, `desired.toml` and the token file; returns the config's path.
fn write_files(
    dir: &Path,
    url: &str,
    fingerprint: &str,
    operator: &ssh_key::PublicKey,
) -> anyhow::Result<std::path::PathBuf> {
    std::fs::write(
        dir.join("allowed_signers"),
        format!("operator@demo {}\n", operator.to_openssh()?),
    )?;
    std::fs::write(dir.join("desired.toml"), DESIRED)?;
    write_private(&dir.join("pve-token"), format!("{TOKEN}\n").as_bytes())?;
    std::fs::write(
        dir.join("signers.toml"),
        "allowed_signers = \"allowed_signers\"\n\n[roles]\n\"operator@demo\" = \"operational\"\n",
    )?;
    let config = format!(
        r#"node = "pve-01"
data_dir = "state"

[pve]
url = "{url}"
token_file = "pve-token"
fingerprint = "{fingerprint}"

[desired]
file = "desired.toml"

[signers]
config = "signers.toml"

[agent]
backoff_base_ms = 200
"#
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Writes a secret file readable by its owner only (0600 on Unix), created that way rather
/// than narrowed afterwards.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
