//! `pvesim` binary: parse arguments, set up tracing, run the simulator until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// A stateful Proxmox VE API simulator.
#[derive(Debug, Parser)]
#[command(name = "pvesim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Node name served.
    #[arg(long, default_value = "pve-01")]
    node: String,
    /// API token `USER@REALM!TOKENID=SECRET` (repeatable).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// File with one token per line (repeatable; `#` comments and blank lines ignored).
    #[arg(long = "token-file")]
    token_files: Vec<PathBuf>,
    /// Seed TOML with `[[guest]]` (and optional `[[fault]]`) tables.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    #[arg(long)]
    tls_self_signed: bool,
    /// How long each task runs, in milliseconds.
    #[arg(long, default_value_t = 50)]
    task_duration_ms: u64,
    /// Fault rules TOML (`[[fault]]` tables).
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Full apidata schema file to validate against (default: the embedded subset).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut tokens = args.tokens.clone();
    for f in &args.token_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading token file {}", f.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    let seed = match &args.seed {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading seed {}", p.display()))?;
            pvesim::Seed::from_toml_str(&text).with_context(|| format!("seed {}", p.display()))?
        }
        None => pvesim::Seed::empty(),
    };
    let faults = match &args.faults {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading faults {}", p.display()))?;
            pvesim::faults_from_toml_str(&text)
                .with_context(|| format!("faults {}", p.display()))?
        }
        None => Vec::new(),
    };
    let mut cfg = pvesim::SimConfig::new(args.node.clone(), String::new(), seed);
    cfg.tokens = tokens;
    cfg.task_duration = Duration::from_millis(args.task_duration_ms);
    cfg.tls = args.tls_self_signed;
    cfg.faults = faults;
    cfg.schema_file = args.schema.clone();

    let sim = pvesim::start(cfg, args.listen)
        .await
        .context("starting pvesim")?;
    println!("pvesim listening on {}", sim.base_url());
    if let Some(fp) = sim.fingerprint() {
        println!("fingerprint {fp}");
    }
    tracing::info!(url = %sim.base_url(), guests = sim.guest_ids().len(), "pvesim started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}
