//! The operator's command line: `castellan plan`, `castellan agent`, `castellan demo`,
//! `castellan op` (signed operations), `castellan signers` (key rotation), `castellan audit`
//! (the agent's audit log) and `castellan ledger` (host-service governance).

/// Writes to stdout like `print!`, but returns the I/O error instead of panicking, so a
/// closed pipe (`castellan plan | head`) ends the command quietly (see `main`).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// Like `println!`, returning the I/O error; see [`out!`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod audit;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod demo_fleet;
#[cfg(feature = "demo")]
pub mod demo_ledger;
pub mod followups;
pub mod hub;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod manual;
pub mod op;
pub mod progress;
pub mod render;
pub mod signers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use castellan_agent::{AgentConfig, Mode, PveBackend, load_desired, observe_node};
use castellan_core::plan;
use castellan_pve::PveClient;
use clap::{Parser, Subcommand};

/// What `castellan --help` says castellan is.
const ABOUT: &str = "castellan runs Proxmox VE guests from declared state: reversible changes \
(power, cores, memory, description, tags) are applied automatically; irreversible ones (destroying \
a guest) only with an operator's SSH signature.";

const LONG_ABOUT: &str = "castellan runs Proxmox VE guests from declared state.

An agent compares each node with its desired state (desired.toml) and applies the reversible \
changes itself (power state, cores, memory, description, tags). Irreversible ones, such as \
destroying a guest, are only reported: they run once an operator's SSH signature approves that \
exact change (castellan op). Every decision goes to a hash-chained audit log (castellan audit). \
Host-service changes (compose, systemd, Ansible) first go through an owner-response acceptance \
ledger (castellan ledger).

Start with `castellan demo`: the whole system on this machine, against a simulated node.";

/// The `castellan` command line.
#[derive(Debug, Parser)]
#[command(name = "castellan", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging.
    #[command(flatten)]
    pub log: logging::LogArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what the agent would do, without doing it.
    Plan {
        /// The agent configuration.
        #[arg(long, short = 'c', default_value = "agent.toml")]
        config: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 2 when the plan has actions (0 when there is nothing to do).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Run the agent: converge the node towards its desired state.
    Agent {
        /// The agent configuration.
        #[arg(long, short = 'c', default_value = "agent.toml")]
        config: PathBuf,
        /// Reconcile until converged or nothing more can be done, then exit: 0 if
        /// converged, 1 with the reasons otherwise.
        #[arg(long)]
        once: bool,
        /// With --once: print the report as JSON on stdout.
        #[arg(long, requires = "once")]
        json: bool,
        /// Start even though the data directory shows earlier use and its state
        /// (castellan.db) is gone or replaced. Audited; every op valid from before now is
        /// refused, so nothing used before can run again.
        #[arg(long)]
        accept_state_loss: bool,
    },
    /// Run the whole system on one machine against a simulated Proxmox VE node.
    Demo {
        /// Stay up afterwards: the agent keeps running and pvesim stays reachable.
        #[arg(long)]
        keep: bool,
    },
    /// Signed operations: the approvals destructive actions need (new, sign, verify, show).
    Op {
        /// What to do.
        #[command(subcommand)]
        command: op::OpCommand,
    },
    /// Key rotation: a new signer set, signed by the set in force and by its own keys
    /// (propose, sign, show).
    Signers {
        /// What to do.
        #[command(subcommand)]
        command: signers::SignersCommand,
    },
    /// The agent's hash-chained audit log (verify, show, export).
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The agent's journal: intents held for an operator, and settling one.
    Journal {
        /// What to do.
        #[command(subcommand)]
        command: journal::JournalCommand,
    },
    /// Host-service governance: inventory, owner requests, owner-response intake, signed
    /// reviewer records and the acceptance ledger.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
    /// Run the fleet hub (without a subcommand), or manage its tokens.
    #[command(args_conflicts_with_subcommands = true)]
    Hub {
        /// How to serve.
        #[command(flatten)]
        serve: hub::ServeArgs,
        /// What to do instead of serving.
        #[command(subcommand)]
        command: Option<hub::HubCommand>,
    },
    /// Write desired state to the hub: one desired.toml per host (a file, or a folder of
    /// them), each validated first; nothing is sent if one is invalid.
    Apply {
        /// The file or folder.
        #[arg(long = "file", short = 'f', value_name = "PATH")]
        file: PathBuf,
        /// The revision you reviewed (one document only): if someone wrote another since,
        /// nothing is written and the hub answers with a conflict. Without it each
        /// document is based on whatever revision is latest when it is sent.
        #[arg(long, value_name = "REV")]
        based_on: Option<u64>,
        /// The hub.
        #[command(flatten)]
        hub: hub::HubArgs,
    },
    /// The fleet at a glance, from the hub: converged, drifting, pending, errors.
    Status {
        /// The hub.
        #[command(flatten)]
        hub: hub::HubArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script on stdout (for example
    /// `castellan completions bash > /etc/bash_completion.d/castellan`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (castellan.1 and one per subcommand) into a directory.
    Manpages {
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

impl Command {
    /// The exit code for a command that fails with an error. `op` and `audit` answer
    /// questions with 0 (yes) and 1 (no: rejected, broken), so their errors (bad usage,
    /// unreadable files, a refused config) exit 2, as clap's usage errors do, and so do
    /// those of the other operator tools (`signers`, `journal`, `ledger`); the other
    /// commands exit 1 on error.
    pub fn error_exit_code(&self) -> u8 {
        match self {
            Command::Op { .. }
            | Command::Signers { .. }
            | Command::Audit { .. }
            | Command::Journal { .. }
            | Command::Ledger { .. } => 2,
            Command::Plan { .. }
            | Command::Agent { .. }
            | Command::Demo { .. }
            | Command::Hub { .. }
            | Command::Apply { .. }
            | Command::Status { .. } => 1,
            Command::Completions { .. } | Command::Manpages { .. } => 2,
        }
    }
}

/// An error and its causes on one line, each said once. Many library errors already embed
/// their source in their message (`cannot read {path}: {source}`) and also return it from
/// `source()`; printing the whole chain would repeat it. A cause is left out when the text
/// so far already contains it, or when it only restates the cause before it with a prefix
/// (`Error code 26: file is not a database` after `file is not a database`).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        let restates = !last.is_empty() && text.contains(last.as_str());
        if !text.is_empty() && !out.contains(text) && !restates {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(text);
        }
        if !text.is_empty() {
            last = text.to_owned();
        }
    }
    out
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan {
            config,
            json,
            detailed_exitcode,
        } => plan_cmd(&config, json, detailed_exitcode).await,
        Command::Agent {
            config,
            once,
            json,
            accept_state_loss,
        } => agent_cmd(&config, once, json, accept_state_loss).await,
        #[cfg(feature = "demo")]
        Command::Demo { keep } => demo::run(keep).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => anyhow::bail!(
            "this castellan was built without the demo (its simulated node is left out of \
             packaged binaries); build it with `cargo build --features demo`, or run \
             `cargo run -- demo` from the repository"
        ),
        Command::Op { command } => op::run(command).await,
        Command::Signers { command } => signers::run(command),
        Command::Audit { command } => audit::run(command).await,
        Command::Journal { command } => journal::run(command),
        Command::Ledger { command } => ledger::run(command).await,
        Command::Hub {
            serve,
            command: None,
        } => hub::serve(serve).await,
        Command::Hub {
            command: Some(command),
            ..
        } => hub::run(command).await,
        Command::Apply {
            file,
            based_on,
            hub,
        } => hub::apply(&file, based_on, &hub).await,
        Command::Status { hub, json } => hub::status(&hub, json).await,
        Command::Completions { shell } => manual::completions(shell),
        Command::Manpages { out_dir } => manual::manpages(&out_dir),
    }
}

/// A plan, with what its actions are expected to lead to.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan against the node as observed.
    pub plan: castellan_core::Plan,
    /// Actions and notices expected once the plan's own actions are applied.
    pub followups: Vec<followups::FollowUp>,
    /// The host's containers against their declarations (`None`: no `[docker]`).
    pub containers: Option<castellan_docker::ContainerPlan>,
}

/// Observes the node described by `config` and plans against its desired state, as
/// `castellan plan` shows it. Executes nothing.
pub async fn current_plan(config: &AgentConfig) -> anyhow::Result<Planned> {
    let desired = load_desired(&config.desired_file, &config.node)?;
    let containers = match &config.docker {
        Some(d) => {
            let client = castellan_docker::DockerClient::connect(d.socket.as_deref(), &config.node)
                .await
                .context("docker engine")?;
            let (observed, volumes) = castellan_docker::DockerBackend::new(client)
                .observe_all()
                .await
                .context("cannot observe the Docker Engine")?;
            Some(castellan_docker::plan_desired(
                &desired.containers,
                &observed,
                &volumes,
            ))
        }
        None => None,
    };
    let Some(client) = &config.client else {
        // No Proxmox VE node: no guests to plan.
        return Ok(Planned {
            plan: castellan_core::Plan::default(),
            followups: Vec::new(),
            containers,
        });
    };
    let client = PveClient::new(client.clone()).context("proxmox client")?;
    let backend = Arc::new(PveBackend::new(client, config.node.clone()));
    let mut actual = observe_node(&backend, &desired, config.tuning.max_parallel)
        .await
        .with_context(|| format!("cannot observe node {}", config.node))?;
    restored_from_journal(&config.data_dir, &desired, &mut actual)?;
    let plan = plan(&desired, &actual, &config.normalize);
    let followups = followups::expected(&desired, &actual, &plan);
    Ok(Planned {
        plan,
        followups,
        containers,
    })
}

/// Fills in the archive each declared `restore_over` guest last had restored over it, from
/// the agent's journal (read-only; an agent that never ran has restored nothing).
fn restored_from_journal(
    data_dir: &std::path::Path,
    desired: &castellan_core::DesiredState,
    actual: &mut castellan_core::ActualState,
) -> anyhow::Result<()> {
    if !desired.guests.values().any(|d| d.restore_over.is_some()) {
        return Ok(());
    }
    if !data_dir.join(castellan_store::DB_FILE_NAME).exists() {
        return Ok(());
    }
    let store = castellan_store::Store::open_readonly(data_dir)
        .with_context(|| format!("cannot read the journal in {}", data_dir.display()))?;
    castellan_agent::observe::fill_restored(&store, desired, actual)?;
    Ok(())
}

/// Warns when the node is reached over plain HTTP: the API token would cross the network
/// unencrypted (`http://` is meant for a local simulator).
fn warn_if_cleartext(config: &AgentConfig) {
    if let Some(client) = &config.client
        && client.base_url.scheme() == "http"
    {
        tracing::warn!(
            event = "cleartext_url",
            url = %client.base_url,
            "the node is reached over plain http: the API token travels unencrypted; use https:// for a real node"
        );
    }
}

async fn plan_cmd(path: &std::path::Path, json: bool, detailed: bool) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load(path)?;
    warn_if_cleartext(&config);
    let Planned {
        plan: p,
        followups,
        containers,
    } = current_plan(&config).await?;
    // Intents recovery holds for an operator (none when the agent never ran here).
    let held = if config
        .data_dir
        .join(castellan_store::DB_FILE_NAME)
        .is_file()
    {
        journal::held(&config.data_dir).unwrap_or_else(|e| {
            tracing::warn!(event = "journal_unreadable", error = %e);
            Vec::new()
        })
    } else {
        Vec::new()
    };
    if json {
        let mut v = serde_json::to_value(&p)?;
        if let Some(obj) = v.as_object_mut() {
            if !held.is_empty() {
                obj.insert("held".into(), serde_json::to_value(&held)?);
            }
            if !followups.is_empty() {
                obj.insert(
                    "expected_followups".into(),
                    serde_json::to_value(&followups)?,
                );
            }
            if let Some(c) = &containers {
                obj.insert("containers".into(), serde_json::to_value(c)?);
            }
        }
        crate::outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        if config.client.is_some() {
            crate::out!("{}", render::plan_table(&config.node, &p, &followups))?;
        }
        if let Some(c) = &containers {
            crate::out!("{}", render::container_plan(&config.node, c))?;
        }
        if !held.is_empty() {
            crate::outln!(
                "\n  Held for an operator (recovery could not tell what became of them; nothing more happens to these guests until resolved):"
            )?;
            crate::out!("{}", journal::describe_held(&config.data_dir, &held))?;
        }
    }
    let container_changes = containers.as_ref().is_some_and(|c| !c.steps.is_empty());
    Ok(
        if detailed && (!p.actions.is_empty() || container_changes) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

async fn agent_cmd(
    path: &std::path::Path,
    once: bool,
    json: bool,
    accept_state_loss: bool,
) -> anyhow::Result<ExitCode> {
    let mut config = AgentConfig::load(path)?;
    warn_if_cleartext(&config);
    config.accept_state_loss = accept_state_loss;
    let mode = if once { Mode::Once } else { Mode::Continuous };
    let report = castellan_agent::run(&config, mode, shutdown_signal()).await?;
    if !once {
        // A continuous agent returns on a signal, or when something stopped it from going
        // on (crash recovery failed): then it exits 1, so its supervisor restarts it.
        for e in &report.node_failed {
            tracing::error!(event = "agent_stopped", error = %e);
        }
        return Ok(if report.node_failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "converged": report.converged(),
                "applied": report.applied,
                "failed": report.failed,
                "node_failed": report.node_failed,
                "final_plan": report.final_plan,
                "containers": report.containers,
                "reasons": report.reasons(),
            }))?
        )?;
    } else {
        crate::out!("{}", render::report(&config.node, &report))?;
    }
    Ok(if report.converged() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
