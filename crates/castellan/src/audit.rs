//! `castellan audit`: check, show and export an agent's hash-chained audit log, read-only
//! (see `castellan_store` for the chain's definition).
//!
//! Exit codes: 0 done (the chain verified); 1 `audit verify` found the chain broken; 2 the
//! command could not run (no database in the data directory, unreadable database).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use castellan_core::op::format_time;
use castellan_store::{AuditEvent, AuditRecord, Store, StoreError, verify_chain};
use clap::Subcommand;

/// `castellan audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain: exit 0 with the record count and head, 1 naming the first
    /// broken record. With `--hub URL --host H`: the host's chain as the hub holds it,
    /// verified here, and every problem the hub found in the host's uploads (gaps, forks,
    /// rewinds). With both `--data-dir` and `--hub`: also that the local log still
    /// holds the head the hub verified (a rewrite on the host is caught).
    Verify {
        /// The agent's data directory (holding castellan.db).
        #[arg(long, required_unless_present = "host")]
        data_dir: Option<PathBuf>,
        /// The host whose chain the hub holds (with --hub).
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        hub: crate::hub::HubArgs,
    },
    /// Print the audit records as a table (not verified: use `castellan audit verify`).
    Show {
        /// The agent's data directory (holding castellan.db).
        #[arg(long)]
        data_dir: PathBuf,
        /// Print the records as a JSON array (each as `audit export` writes it).
        #[arg(long)]
        json: bool,
        /// Only the last N records.
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        last: Option<u64>,
    },
    /// Write every record as one JSON line to stdout (what the hub verifies).
    Export {
        /// The agent's data directory (holding castellan.db).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// Parses `--last N`: a whole number, at least 1.
fn at_least_one(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number, at least 1".into()),
    }
}

/// Runs one `castellan audit` subcommand.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            data_dir,
            host: Some(host),
            hub,
        } => verify_hub_cmd(&hub, &host, data_dir.as_deref()).await,
        AuditCommand::Verify {
            data_dir: Some(data_dir),
            host: None,
            ..
        } => verify_cmd(&data_dir),
        AuditCommand::Verify { .. } => Err(anyhow::anyhow!(
            "give --data-dir DIR (a local log) or --hub URL --host HOST (the hub's copy)"
        )),
        AuditCommand::Show {
            data_dir,
            json,
            last,
        } => show_cmd(&data_dir, json, last),
        AuditCommand::Export { data_dir } => export_cmd(&data_dir),
    }
}

fn open(data_dir: &Path) -> anyhow::Result<Store> {
    Store::open_readonly(data_dir).map_err(|e| match e {
        StoreError::NotFound { path } => anyhow::anyhow!(
            "no audit log in {}: {} does not exist (is --data-dir the agent's data_dir?)",
            data_dir.display(),
            path.display()
        ),
        other => anyhow::Error::new(other),
    })
}

fn verify_cmd(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = open(data_dir)?;
    match verify_chain(&store) {
        Ok(report) => {
            outln!(
                "ok: {} record{}, head {}",
                report.records,
                if report.records == 1 { "" } else { "s" },
                report.head_hash
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            outln!("broken at record {}: {}", broken.seq, broken.reason)?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Verifies the hub's copy of `host`'s chain here (never trusting the hub's word that it
/// verified), lists the problems the hub kept, and with `data_dir` checks the local log
/// against the hub's verified head.
async fn verify_hub_cmd(
    hub: &crate::hub::HubArgs,
    host: &str,
    data_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let client = hub.client()?;
    let mut text = String::new();
    let mut after = 0;
    let (verified, problems) = loop {
        let page = client.host_audit(host, after).await?;
        let Some(last) = page.records.last() else {
            break (page.verified, page.problems);
        };
        let next = last
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if next <= after {
            anyhow::bail!("the hub served record {next} after record {after}: not a chain");
        }
        after = next;
        for r in &page.records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
    };
    let mut ok = true;
    match castellan_store::verify_jsonl(text.as_bytes()) {
        Ok(report) if report.records == verified.seq && report.head_hash == verified.hash => {
            outln!(
                "ok: the hub holds {} record{} of {host}'s chain, head {}",
                report.records,
                if report.records == 1 { "" } else { "s" },
                report.head_hash
            )?;
        }
        Ok(report) => {
            ok = false;
            outln!(
                "broken: the hub served {} records ending at {}, but says it verified up to record {} ({})",
                report.records,
                report.head_hash,
                verified.seq,
                verified.hash
            )?;
        }
        Err(broken) => {
            ok = false;
            outln!("broken at record {}: {}", broken.seq, broken.reason)?;
        }
    }
    for p in &problems {
        ok = false;
        let kind = p.kind.as_str();
        outln!(
            "problem: {kind} at record {} ({} time{}, first {}, last {}): {}",
            p.seq,
            p.count,
            if p.count == 1 { "" } else { "s" },
            p.first_seen,
            p.last_seen,
            castellan_core::Printable(&p.detail)
        )?;
    }
    if let Some(dir) = data_dir {
        let store = open(dir)?;
        let pinned = if verified.seq == 0 {
            verify_chain(&store)
        } else {
            castellan_store::verify_chain_pinned(&store, verified.seq, &verified.hash)
        };
        match pinned {
            Ok(report) => outln!(
                "ok: the local log ({} records) holds the head the hub verified",
                report.records
            )?,
            Err(broken) => {
                ok = false;
                outln!(
                    "local log broken at record {}: {}",
                    broken.seq,
                    broken.reason
                )?;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads every record (or the last `last`), in order.
fn records(store: &Store, last: Option<u64>) -> anyhow::Result<Vec<AuditRecord>> {
    let head = store
        .audit_head()
        .context("cannot read the audit log")?
        .map_or(0, |(seq, _)| seq);
    let from = match last {
        Some(n) => head.saturating_sub(n) + 1,
        None => 1,
    };
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batch = store
            .audit_records(next, 1000)
            .context("cannot read the audit log")?;
        let Some(last) = batch.last() else { break };
        next = last.seq + 1;
        out.extend(batch);
    }
    Ok(out)
}

/// The event-specific detail of a record, plus its intent and nonce.
pub fn detail(r: &AuditRecord) -> String {
    let mut parts = Vec::new();
    match &r.event {
        AuditEvent::OpRejected { reason, detail } => parts.push(format!("{reason}: {detail}")),
        AuditEvent::TaskDispatched { upid: Some(u) } => parts.push(format!("task {u}")),
        AuditEvent::ActionFailed { error } => parts.push(error.clone()),
        AuditEvent::ActionRolledBack { reason } | AuditEvent::UndoStarted { reason } => {
            parts.push(reason.clone())
        }
        AuditEvent::BackupTaken { volume, size } => parts.push(format!(
            "{volume} ({})",
            castellan_core::units::format_size(*size)
        )),
        AuditEvent::BackupWaived { detail } => parts.push(detail.clone()),
        AuditEvent::GuestDestroyed { backup, found_gone } => {
            parts.push(match backup {
                Some(b) => format!("safety backup {b}"),
                None => "no safety backup".to_owned(),
            });
            if *found_gone {
                parts.push("found gone".to_owned());
            }
        }
        AuditEvent::VolumeRemoved {
            volume,
            size,
            found_gone,
        } => parts.push(format!(
            "{volume} ({}){}",
            castellan_core::units::format_size(*size),
            if *found_gone { ", found gone" } else { "" }
        )),
        AuditEvent::SignersRotated {
            version,
            replaces,
            digest,
            detail,
        } => parts.push(format!(
            "version {version} replaces {replaces} (sha256 {digest}): {detail}"
        )),
        AuditEvent::SignersLoaded {
            keys,
            version: Some(v),
        } => parts.push(format!("version {v}, {keys} key(s)")),
        AuditEvent::RecoveryCompleted { intents } => parts.push(format!(
            "{intents} in-flight intent{}",
            if *intents == 1 { "" } else { "s" }
        )),
        _ => {}
    }
    if let Some(i) = r.fields.intent {
        parts.push(format!("intent {}", i.0));
    }
    if let Some(n) = &r.fields.nonce {
        parts.push(format!("nonce {n}"));
    }
    parts.join("; ")
}

/// The records as a table: seq, time, event, target, op, signers, detail.
pub fn table(records: &[AuditRecord]) -> String {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                format_time(r.time),
                r.event.kind().to_owned(),
                r.fields.subject().unwrap_or_default(),
                r.fields.op.clone().unwrap_or_default(),
                r.fields.signer_fingerprints.join(","),
                detail(r),
            ]
        })
        .collect();
    let header = ["SEQ", "TIME", "EVENT", "TARGET", "OP", "SIGNERS", "DETAIL"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else if i == 0 {
                // the sequence number, right-aligned
                let _ = write!(l, "{cell:>w$}  ");
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn show_cmd(data_dir: &Path, json: bool, last: Option<u64>) -> anyhow::Result<ExitCode> {
    let store = open(data_dir)?;
    let records = records(&store, last)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&records)?)?;
    } else if records.is_empty() {
        outln!("the audit log is empty")?;
    } else {
        crate::out!("{}", table(&records))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export_cmd(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = open(data_dir)?;
    match store.export_jsonl(std::io::stdout().lock()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(StoreError::Export(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}
