//! `castellan journal`: the agent's in-flight intents that recovery holds for an
//! operator, and how an operator settles one.
//!
//! Recovery holds an intent when it cannot prove what became of a destructive request
//! (whether a destroy reached the node): it never guesses, and nothing more is attempted
//! on that guest until an operator, having looked at the node (its task log, the guest),
//! records the outcome here. The agent must not be running: `resolve` takes the data
//! directory's lock. Every resolution is audited.
//!
//! Exit codes: 0 done; 1 nothing to resolve (no such held intent); 2 the command could not
//! run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use castellan_store::{AuditEvent, AuditFields, Intent, IntentId, Outcome, Store};
use clap::{Subcommand, ValueEnum};

/// `castellan journal` subcommands.
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// List the intents held for an operator (read-only).
    Held {
        /// The agent's data directory (holding castellan.db).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Record the outcome of a held intent, after looking at the node yourself. The
    /// agent must be stopped.
    Resolve {
        /// The held intent's id (`castellan journal held` lists them).
        intent: u64,
        /// The agent's data directory (holding castellan.db).
        #[arg(long)]
        data_dir: PathBuf,
        /// What the node shows happened.
        #[arg(long = "as", value_enum)]
        outcome: Resolution,
        /// Why, for the audit log (what you saw on the node).
        #[arg(long)]
        reason: String,
    },
}

/// The outcome an operator records for a held intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resolution {
    /// The request ran and completed (the guest is gone).
    Succeeded,
    /// The request ran and failed.
    Failed,
    /// The request never ran; nothing happened.
    RolledBack,
}

/// Runs one `castellan journal` subcommand.
pub fn run(cmd: JournalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JournalCommand::Held { data_dir } => held_cmd(&data_dir),
        JournalCommand::Resolve {
            intent,
            data_dir,
            outcome,
            reason,
        } => resolve_cmd(&data_dir, IntentId(intent), outcome, &reason),
    }
}

/// The intents recovery holds for an operator, oldest first.
pub fn held(data_dir: &Path) -> Result<Vec<Intent>, castellan_store::StoreError> {
    let store = Store::open_readonly(data_dir)?;
    Ok(store
        .in_flight()?
        .into_iter()
        .filter(|i| i.held.is_some())
        .collect())
}

/// One line per held intent, with the command that settles it.
pub fn describe_held(data_dir: &Path, intents: &[Intent]) -> String {
    let mut out = String::new();
    for i in intents {
        out.push_str(&format!(
            "  intent {}: {} {} held: {}\n    after checking the node: castellan journal resolve {} --data-dir {} --as succeeded|failed|rolled-back --reason \"...\"\n",
            i.id,
            i.op,
            i.target,
            i.held.as_deref().unwrap_or_default(),
            i.id,
            data_dir.display()
        ));
    }
    out
}

fn held_cmd(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let intents = held(data_dir)
        .with_context(|| format!("cannot read the journal in {}", data_dir.display()))?;
    if intents.is_empty() {
        crate::outln!("no intent is held for an operator")?;
    } else {
        crate::out!("{}", describe_held(data_dir, &intents))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn resolve_cmd(
    data_dir: &Path,
    id: IntentId,
    resolution: Resolution,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason must say what you saw on the node");
    }
    // The agent must not be settling the same intent: take its lock.
    let _lock = castellan_agent::lock_data_dir(data_dir)?;
    if !data_dir.join(castellan_store::DB_FILE_NAME).is_file() {
        bail!(
            "{} holds no castellan.db: nothing to resolve",
            data_dir.display()
        );
    }
    let mut store = Store::open(data_dir)
        .with_context(|| format!("cannot open the journal in {}", data_dir.display()))?;
    let Some(intent) = store.intent(id)? else {
        crate::outln!("no intent {id} in the journal")?;
        return Ok(ExitCode::from(1));
    };
    if intent.state.is_terminal() || intent.held.is_none() {
        crate::outln!(
            "intent {id} is not held for an operator (it is {}); nothing to resolve",
            intent.state
        )?;
        return Ok(ExitCode::from(1));
    }
    let now = jiff::Timestamp::now();
    let (word, outcome) = match resolution {
        Resolution::Succeeded => ("succeeded", Outcome::Succeeded),
        Resolution::Failed => (
            "failed",
            Outcome::Failed {
                error: format!("resolved by an operator: {reason}"),
            },
        ),
        Resolution::RolledBack => (
            "rolled_back",
            Outcome::RolledBack {
                reason: format!("resolved by an operator: {reason}"),
            },
        ),
    };
    let fields = AuditFields::action(
        intent.target.clone(),
        intent.op.clone(),
        intent.action_id.clone(),
    )
    .intent(id);
    store.append_audit(
        AuditEvent::IntentResolved {
            outcome: word.to_owned(),
            reason: reason.to_owned(),
        }
        .with(fields),
        now,
    )?;
    let ev = outcome.event();
    store.mark_terminal(id, outcome, ev, now)?;
    crate::outln!(
        "intent {id} ({} {}) recorded as {word}",
        intent.op,
        intent.target
    )?;
    Ok(ExitCode::SUCCESS)
}
