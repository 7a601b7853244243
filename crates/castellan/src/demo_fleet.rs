//! `castellan demo`, the fleet part: a hub (embedded SQLite, a fresh self-signed
//! certificate), two simulated nodes and their two agents, all in this process. A change
//! is pushed through the hub to both nodes; a destroy on one is held, its payload reaches
//! the hub in the agent's report, the operator signs it and relays it through the hub,
//! the host verifies and executes it once, and the same op relayed again is refused as
//! a replay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use castellan_agent::{AgentConfig, Mode};
use castellan_hub::store::HubStore as _;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, SqliteStore};
use castellan_pve::{Fingerprint, TlsMode};
use jiff::Timestamp;
use pvesim::{Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=fleet-demo-4c1e";
const NODES: [&str; 2] = ["pve-11", "pve-12"];

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "web"
cores = 1

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "old-build"
cores = 1
"#;

fn desired(node: &str, cores: u32, destroy_102: bool) -> String {
    let second = if destroy_102 {
        "\n# Retired: destroying is destructive, so it waits for a signed op.\n\
         [[guest]]\nvmid = 102\nkind = \"lxc\"\nensure = \"absent\"\n"
    } else {
        "\n[[guest]]\nvmid = 102\nkind = \"lxc\"\n"
    };
    format!(
        "node = \"{node}\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"running\"\ncores = {cores}\n{second}"
    )
}

fn cores(sim: &SimHandle, vmid: u32) -> Option<String> {
    sim.guest(vmid).and_then(|g| g.config.get("cores").cloned())
}

fn destroys(sim: &SimHandle, vmid: u32) -> usize {
    let suffix = format!("/lxc/{vmid}");
    sim.requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&suffix))
        .count()
}

/// Waits until `f` holds (or fails after `timeout`, naming `what`).
async fn until(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !f() {
        if started.elapsed() > timeout {
            bail!("the fleet demo timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

/// Runs the fleet part in `dir`; `operator` signs. `Ok(true)` when everything went as
/// told.
pub async fn run(dir: &std::path::Path, operator: &ssh_key::PrivateKey) -> anyhow::Result<bool> {
    crate::outln!("\n== a fleet: one hub, two nodes, two agents ==\n")?;
    let hub_dir = dir.join("hub");
    std::fs::create_dir_all(&hub_dir)?;
    let store = SqliteStore::open(&hub_dir).context("the demo hub's database")?;
    let tls = castellan_hub::tls::self_signed(&hub_dir, &["127.0.0.1".into()])?;
    let hub = Hub::new(store);
    let running = castellan_hub::serve(
        Arc::clone(&hub),
        std::net::TcpListener::bind("127.0.0.1:0")?,
        &tls,
    )?;
    let fingerprint = castellan_hub::tls::fingerprint_text(&tls.fingerprint);
    crate::outln!("  $ castellan hub --data-dir {}", hub_dir.display())?;
    crate::outln!("    castellan hub listening on {}", running.url())?;
    crate::outln!("    certificate fingerprint: {fingerprint}")?;

    let now = Timestamp::now();
    let op_token = Token::generate(TokenKind::Operator);
    hub.store()
        .create_operator_token("operator", op_token.hash(), now)
        .await?;
    let client = HubClient::new(
        running.url().parse()?,
        &TlsMode::Fingerprint(fingerprint.parse::<Fingerprint>()?),
    )?
    .with_token(op_token.reveal().to_owned());

    // Two nodes, each with an agent that enrols with a one-time token and then follows
    // the hub; the operator's key is each host's only signer.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sims = Vec::new();
    let mut agents = Vec::new();
    for node in NODES {
        let mut cfg = SimConfig::new(node, TOKEN, Seed::from_toml_str(SEED)?);
        cfg.task_duration = Duration::from_millis(20);
        let sim = pvesim::start(cfg, "127.0.0.1:0".parse()?).await?;
        let d = dir.join(node);
        std::fs::create_dir_all(&d)?;
        let enrol = Token::generate(TokenKind::Enrol);
        hub.store()
            .create_enrol_token(
                node,
                enrol.hash(),
                now,
                now + jiff::SignedDuration::from_hours(1),
            )
            .await?;
        std::fs::write(d.join("enrol-token"), enrol.reveal())?;
        std::fs::write(
            d.join("allowed_signers"),
            format!("operator@demo {}\n", operator.public_key().to_openssh()?),
        )?;
        std::fs::write(
            d.join("signers.toml"),
            "allowed_signers = \"allowed_signers\"\n\n[roles]\n\"operator@demo\" = \"operational\"\n",
        )?;
        std::fs::write(
            d.join("agent.toml"),
            format!(
                "node = \"{node}\"\ndata_dir = \"state\"\n\n[pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\n\
                 [hub]\nurl = \"{}\"\nfingerprint = \"{fingerprint}\"\nenrol_token_file = \"enrol-token\"\n\n\
                 [signers]\nconfig = \"signers.toml\"\n\n[agent]\nbackoff_base_ms = 50\nresync_secs = 2\n",
                sim.base_url(),
                running.url()
            ),
        )?;
        let config = AgentConfig::load(&d.join("agent.toml"))?;
        std::fs::create_dir_all(&config.data_dir)?;
        let mut stop = stop_rx.clone();
        agents.push(tokio::spawn(async move {
            castellan_agent::run(&config, Mode::Continuous, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        }));
        crate::outln!(
            "  agent for {node} (pvesim at {}): enrols with a one-time token, then follows the hub",
            sim.base_url()
        )?;
        sims.push(sim);
    }

    // 1. A change pushed through the hub.
    crate::outln!("\n  $ castellan apply -f fleet/    (guest 101: 2 cores, on both nodes)")?;
    let mut pushed = Vec::new();
    for node in NODES {
        let r = client
            .put_desired(node, &desired(node, 2, false), 0)
            .await?;
        crate::outln!("    {node}: revision {}", r.revision)?;
        pushed.push(Instant::now());
    }
    for (i, sim) in sims.iter().enumerate() {
        until(
            "the change to reach the nodes",
            Duration::from_secs(30),
            || cores(sim, 101).as_deref() == Some("2"),
        )
        .await?;
        crate::outln!(
            "    {} has it on the node {:.0} ms after the write",
            NODES[i],
            pushed[i].elapsed().as_secs_f64() * 1000.0
        )?;
    }

    // 2. A destroy: held, its payload reported to the hub.
    crate::outln!(
        "\n  $ castellan apply -f fleet/    (pve-11: guest 102 retired, ensure = \"absent\")"
    )?;
    let r = client
        .put_desired("pve-11", &desired("pve-11", 2, true), 1)
        .await?;
    crate::outln!("    pve-11: revision {}", r.revision)?;
    let mut payload = None;
    let started = Instant::now();
    while payload.is_none() && started.elapsed() < Duration::from_secs(30) {
        if let Some(report) = client.host_report("pve-11").await?
            && let Some(p) = report.pending.first()
        {
            payload = Some((p.name.clone(), p.payload.clone()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (name, payload) = payload.context("the held destroy never reached the hub")?;
    crate::outln!("  $ castellan status")?;
    for h in client.hosts().await? {
        crate::outln!(
            "    {:<8} {:<9} revision {} applied, {} waiting for a signature",
            h.host,
            h.state.as_str(),
            h.applied_revision
                .map_or_else(|| "-".into(), |v| v.to_string()),
            h.pending
        )?;
    }
    crate::outln!("    held on pve-11, waiting for a signature: {name} (guest 102 still there)")?;
    if sims[0].guest(102).is_none() {
        bail!("guest 102 was destroyed on the hub's word");
    }

    // 3. Signed by the operator, relayed through the hub, verified and run by the host.
    let sig = operator
        .sign(
            castellan_core::op::NAMESPACE,
            ssh_key::HashAlg::Sha512,
            payload.as_bytes(),
        )
        .context("signing the payload")?
        .to_pem(ssh_key::LineEnding::LF)
        .context("encoding the signature")?;
    crate::outln!(
        "  $ castellan op sign {name} --key KEY    (the operator's key: the hub has none)"
    )?;
    let relayed = client
        .submit_op("pve-11", &payload, vec![sig.clone()])
        .await?;
    crate::outln!("  $ castellan op submit {name} --hub ...")?;
    crate::outln!("    relayed as op {} to pve-11", relayed.id)?;
    until("the signed destroy to run", Duration::from_secs(30), || {
        sims[0].guest(102).is_none()
    })
    .await?;
    crate::outln!("    pve-11 verified the signature itself and destroyed guest 102")?;

    // 4. Relayed again: a replay, refused by the host.
    let again = client.submit_op("pve-11", &payload, vec![sig]).await?;
    crate::outln!("  $ castellan op submit {name} --hub ...    (again)")?;
    let started = Instant::now();
    loop {
        let ops = client.ops("pve-11").await?;
        if ops
            .iter()
            .any(|o| o.id == again.id && o.delivered_at.is_some())
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the relayed replay was never taken");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the host a moment to judge it, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let once = destroys(&sims[0], 102) == 1 && destroys(&sims[1], 102) == 0;
    crate::outln!(
        "    refused by pve-11 as a replay: guest 102 destroyed {} time{} in all",
        destroys(&sims[0], 102),
        if destroys(&sims[0], 102) == 1 {
            ""
        } else {
            "s"
        }
    )?;
    crate::outln!("    pve-12 still has its guest 102: the op named pve-11 only")?;

    let _ = stop_tx.send(true);
    for a in agents {
        a.await.context("an agent task failed")??;
    }
    running.shutdown(Duration::from_secs(2)).await?;
    for sim in sims {
        sim.shutdown().await;
    }
    Ok(once)
}
