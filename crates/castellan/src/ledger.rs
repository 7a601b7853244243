//! `castellan ledger`: host-service governance (see `castellan_ledger`).
//!
//! - `ledger inventory` finds every host-service surface in an ops repository;
//! - `ledger requests` drafts one owner request per surface;
//! - `ledger intake` checks an owner response and records it in a lane;
//! - `ledger review` signs and records a reviewer decision (`castellan-review` SSHSIG);
//! - `ledger acceptance` writes the `host_service_owner_response_acceptance_v1` report;
//! - `ledger rescan` re-scans the stored responses with the current rules;
//! - `ledger show` prints one candidate's records.
//!
//! Exit codes: 0 done; 1 the input was refused (a malformed response, a review that may not
//! be made, a signature that does not verify) and nothing was recorded; 2 the command could
//! not run (bad arguments, unreadable files, a refused signer config).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use castellan_core::op::format_time;
use castellan_ledger::acceptance::{self, CandidateState, LedgerView, derive_state};
use castellan_ledger::intake::{self, IntakeRecord, MAX_RESPONSE_BYTES, Verdict};
use castellan_ledger::model::{InventoryReport, RequestDraft, RequestReport};
use castellan_ledger::review::{self, Decision, Prepared, ReviewRequest, StoredReview};
use castellan_ledger::schema::{CANDIDATE_PREFIX, Lane};
use castellan_ledger::secrets::{Scanner, read_rule_dir};
use castellan_ledger::store::{Appended, Ledger, REQUESTS_FILE, SIGNERS_FILE};
use castellan_ledger::{input, inventory, now_utc8, requests, to_pretty_json};
use castellan_sig::SignerConfig;
use clap::Subcommand;
use jiff::Timestamp;

/// `castellan ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Inventory the host-service surfaces of an ops repository
    /// (`host_service_config_inventory_v1`).
    Inventory {
        /// The repository root.
        #[arg(long)]
        repo: PathBuf,
        /// Write the report here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Fix the report time (for committed snapshots); default now, in UTC+8.
        #[arg(long, value_name = "TS")]
        generated_at: Option<String>,
    },
    /// Draft one owner request per inventoried surface
    /// (`host_service_owner_request_draft_v1`). Nothing is sent.
    Requests {
        /// The inventory report.
        #[arg(long)]
        inventory: PathBuf,
        /// Write the drafts here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Fix the report time; default now, in UTC+8.
        #[arg(long, value_name = "TS")]
        generated_at: Option<String>,
    },
    /// Check an owner response and record it in its outcome lane.
    Intake {
        /// The response (`host_service_owner_response_v1` JSON).
        response: PathBuf,
        /// The ledger directory (created on first use).
        #[arg(long)]
        ledger: PathBuf,
        /// The owner request report; default LEDGER/owner-requests.json.
        #[arg(long)]
        requests: Option<PathBuf>,
        /// Print the stored record as JSON.
        #[arg(long)]
        json: bool,
        /// More secret rules: a directory of rule files in Nosey Parker's YAML format (for
        /// example a checkout of its maintained `rules/` directory), added to the built-in set.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Sign and record a reviewer decision on a candidate's latest owner response.
    Review {
        /// The acceptance candidate id (or its surface_id).
        candidate: String,
        /// The decision.
        #[arg(long, value_enum)]
        decision: ReviewDecision,
        /// Why, in one line (scanned for secrets before signing).
        #[arg(long)]
        reason: String,
        /// The reviewer's signing key: a private key file, or a public key (`.pub`) whose
        /// private half is in the ssh-agent at SSH_AUTH_SOCK.
        #[arg(long, short = 'k', alias = "sign-key")]
        key: PathBuf,
        /// Sign with the ssh-agent: needs SSH_AUTH_SOCK; for a private key path, its
        /// `.pub` beside it is used, so the private key file is never read.
        #[arg(long)]
        agent: bool,
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// The owner request report; default LEDGER/owner-requests.json.
        #[arg(long)]
        requests: Option<PathBuf>,
        /// The reviewer signer configuration; default LEDGER/signers.toml.
        #[arg(long)]
        signers: Option<PathBuf>,
        /// More secret rules for scanning the reason (see `ledger intake --rules`).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Write the owner-response acceptance report
    /// (`host_service_owner_response_acceptance_v1`).
    Acceptance {
        /// The ops repository (for git_commit, and where the default reports are).
        #[arg(long, alias = "root", default_value = ".")]
        repo: PathBuf,
        /// The inventory report; default
        /// REPO/docs/security/host-service-config-inventory.snapshot.json.
        #[arg(long, alias = "inventory-report")]
        inventory: Option<PathBuf>,
        /// The owner request report; default
        /// REPO/docs/security/host-service-owner-request-draft.snapshot.json.
        #[arg(long, alias = "owner-request-report")]
        requests: Option<PathBuf>,
        /// Write the report here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Fix the report time; default now, in UTC+8.
        #[arg(long, value_name = "TS")]
        generated_at: Option<String>,
        /// Derive candidate states and counters from this ledger's records (default: none,
        /// every counter 0).
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// The reviewer signer configuration; default LEDGER/signers.toml.
        #[arg(long, requires = "ledger")]
        signers: Option<PathBuf>,
    },
    /// Scan every stored owner response again with the current secret rules, and
    /// quarantine (by an appended superseding record) each one in which they now find a
    /// secret or raw configuration. Idempotent.
    Rescan {
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// More secret rules (see `ledger intake --rules`).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Push an acceptance report to the hub, whose web UI shows it to operators
    /// (read-only: the hub's Host services page).
    Publish {
        /// The acceptance report (`castellan ledger acceptance -o FILE`).
        report: PathBuf,
        #[command(flatten)]
        hub: crate::hub::HubArgs,
    },
    /// Show one candidate: its state, every intake record and reviewer record.
    Show {
        /// The acceptance candidate id (or its surface_id).
        candidate: String,
        /// The ledger directory.
        #[arg(long)]
        ledger: PathBuf,
        /// The owner request report; default LEDGER/owner-requests.json.
        #[arg(long)]
        requests: Option<PathBuf>,
        /// The reviewer signer configuration; default LEDGER/signers.toml.
        #[arg(long)]
        signers: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A reviewer's decision, as `ledger review --decision` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReviewDecision {
    /// The owner response is accepted (still not a runtime approval).
    Accepted,
    /// The owner response is rejected.
    Rejected,
}

impl From<ReviewDecision> for Decision {
    fn from(d: ReviewDecision) -> Self {
        match d {
            ReviewDecision::Accepted => Decision::Accepted,
            ReviewDecision::Rejected => Decision::Rejected,
        }
    }
}

/// Where `ledger acceptance` looks for the inventory report in the ops repository.
pub const DEFAULT_INVENTORY: &str = "docs/security/host-service-config-inventory.snapshot.json";
/// Where `ledger acceptance` looks for the owner request report in the ops repository.
pub const DEFAULT_REQUESTS: &str = "docs/security/host-service-owner-request-draft.snapshot.json";

/// An input refused: printed, exit 1, nothing recorded.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refused(msg.into()))
}

/// Runs one `castellan ledger` subcommand.
pub async fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        LedgerCommand::Inventory {
            repo,
            output,
            generated_at,
        } => inventory_cmd(&repo, output.as_deref(), generated_at),
        LedgerCommand::Requests {
            inventory,
            output,
            generated_at,
        } => requests_cmd(&inventory, output.as_deref(), generated_at),
        LedgerCommand::Intake {
            response,
            ledger,
            requests,
            json,
            rules,
        } => intake_cmd(
            &response,
            &ledger,
            requests.as_deref(),
            json,
            rules.as_deref(),
        ),
        LedgerCommand::Review {
            candidate,
            decision,
            reason,
            key,
            agent,
            ledger,
            requests,
            signers,
            rules,
        } => review_cmd(
            &candidate,
            decision.into(),
            &reason,
            &key,
            agent,
            &ledger,
            requests.as_deref(),
            signers.as_deref(),
            rules.as_deref(),
        ),
        LedgerCommand::Acceptance {
            repo,
            inventory,
            requests,
            output,
            generated_at,
            ledger,
            signers,
        } => acceptance_cmd(
            &repo,
            // Given paths are relative to the current directory, as everywhere; only the
            // defaults live in the ops repository.
            &inventory.unwrap_or_else(|| repo.join(DEFAULT_INVENTORY)),
            &requests.unwrap_or_else(|| repo.join(DEFAULT_REQUESTS)),
            output.as_deref(),
            generated_at,
            ledger.as_deref(),
            signers.as_deref(),
        ),
        LedgerCommand::Rescan { ledger, rules } => rescan_cmd(&ledger, rules.as_deref()),
        LedgerCommand::Publish { report, hub } => publish_cmd(&report, &hub).await,
        LedgerCommand::Show {
            candidate,
            ledger,
            requests,
            signers,
            json,
        } => show_cmd(
            &candidate,
            &ledger,
            requests.as_deref(),
            signers.as_deref(),
            json,
        ),
    };
    match result {
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("refused: {}", crate::error_text(&e));
            Ok(ExitCode::from(1))
        }
        other => other,
    }
}

fn write_out(doc: &str, output: Option<&Path>) -> anyhow::Result<()> {
    write_streaming(output, |out| {
        out.write_all(doc.as_bytes())
            .context("cannot write the report")
    })
}

/// Reads a JSON document of type `T`, naming the file and the problem.
fn read_doc<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    const MAX: u64 = 512 * 1024 * 1024;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > MAX {
        bail!("{what} {} is larger than 512 MiB", path.display());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow!("{} is not a valid {what}: {e}", path.display()))
}

fn inventory_cmd(
    repo: &Path,
    output: Option<&Path>,
    generated_at: Option<String>,
) -> anyhow::Result<ExitCode> {
    // A running count on a terminal (a large repository takes a while); nothing otherwise.
    let progress = crate::progress::counter("scanning", "files");
    let scan = inventory::scan_repo_watched(repo, 0, &|| progress.inc(1))?;
    progress.finish_and_clear();
    let report = inventory::report(
        scan,
        &generated_at.unwrap_or_else(now_utc8),
        &inventory::git_short_sha(repo),
    );
    write_out(&to_pretty_json(&report), output)?;
    eprintln!(
        "HOST_SERVICE_CONFIG_INVENTORY_OK surfaces={} write_capable={} live_evidence={} files={}",
        report.summary.surface_count,
        report.summary.write_capable_surface_count,
        report.summary.live_evidence_required_count,
        report.summary.scanned_file_count,
    );
    Ok(ExitCode::SUCCESS)
}

fn requests_cmd(
    inventory: &Path,
    output: Option<&Path>,
    generated_at: Option<String>,
) -> anyhow::Result<ExitCode> {
    let inv: InventoryReport = read_doc(inventory, "inventory report")?;
    let report = requests::build(&inv, &generated_at.unwrap_or_else(now_utc8));
    write_streaming(output, |out| {
        requests::write_report(&report, out)
            .map(|_| ())
            .context("cannot write the request drafts")
    })?;
    eprintln!(
        "HOST_SERVICE_OWNER_REQUEST_DRAFT_OK requests={} write_capable={} fields={} sent=0",
        report.summary.request_draft_count,
        report.summary.write_capable_request_count,
        report.summary.required_owner_field_count,
    );
    Ok(ExitCode::SUCCESS)
}

fn load_requests(ledger: &Path, requests: Option<&Path>) -> anyhow::Result<RequestReport> {
    let path = requests.map_or_else(|| ledger.join(REQUESTS_FILE), Path::to_owned);
    if requests.is_none() && !path.exists() {
        bail!(
            "no owner request report: pass --requests FILE or put it at {}",
            path.display()
        );
    }
    read_doc(&path, "owner request report")
}

fn load_signers(
    ledger: &Path,
    signers: Option<&Path>,
    required: bool,
) -> anyhow::Result<Option<SignerConfig>> {
    let path = signers.map_or_else(|| ledger.join(SIGNERS_FILE), Path::to_owned);
    if signers.is_none() && !path.exists() {
        if required {
            bail!(
                "no reviewer signer configuration: pass --signers FILE or put signers.toml in {}",
                ledger.display()
            );
        }
        return Ok(None);
    }
    Ok(Some(SignerConfig::load(&path)?))
}

fn find_draft<'a>(
    requests: &'a RequestReport,
    candidate: &str,
) -> anyhow::Result<&'a RequestDraft> {
    let surface = candidate
        .strip_prefix(CANDIDATE_PREFIX)
        .and_then(|s| s.strip_prefix(':'))
        .unwrap_or(candidate);
    requests
        .request_drafts
        .iter()
        .find(|d| d.surface_id == surface)
        .ok_or_else(|| anyhow!("no candidate {candidate:?} in the owner request report"))
}

/// The built-in secret scanner, or one with the operator's extra rules.
enum Rules {
    Builtin,
    Extended(Box<Scanner>),
}

impl Rules {
    fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        match dir {
            None => Ok(Rules::Builtin),
            Some(dir) => {
                let files = read_rule_dir(dir)?;
                Ok(Rules::Extended(Box::new(Scanner::with_extra_rules(
                    &files,
                )?)))
            }
        }
    }

    fn scanner(&self) -> &Scanner {
        match self {
            Rules::Builtin => Scanner::builtin(),
            Rules::Extended(s) => s,
        }
    }
}

fn intake_cmd(
    response: &Path,
    ledger_dir: &Path,
    requests: Option<&Path>,
    json: bool,
    rules: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let rules = Rules::load(rules)?;
    let requests = load_requests(ledger_dir, requests)?;
    let file = std::fs::File::open(response)
        .with_context(|| format!("cannot read response {}", response.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read response {}", response.display()))?;
    let signers = load_signers(ledger_dir, None, false)?;
    let mut ledger = Ledger::open(ledger_dir)?;
    let needed = review::reviewers_needed(signers.as_ref(), true);
    let record = intake::analyze_with(rules.scanner(), &bytes, &requests, ledger.key(), needed)
        .map_err(|e| refuse(format!("{}: {e}; nothing was recorded", response.display())))?;
    let now = format_time(Timestamp::now());
    let appended = ledger.append_intake(&record, &now)?;
    if json {
        crate::outln!("{}", to_pretty_json(&record).trim_end())?;
    } else {
        print_intake(&record, &appended)?;
    }
    if record.lane() == Some(Lane::Quarantine) {
        eprintln!(
            "warning: {} holds secret material or raw configuration; only redacted fingerprints \
             were recorded. Delete the file and rotate any secret it exposed.",
            response.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_intake(record: &IntakeRecord, appended: &Appended) -> anyhow::Result<()> {
    match appended {
        Appended::New(seq) => crate::outln!(
            "recorded {} (#{seq}) for {}",
            record.response_id,
            record.candidate_id
        )?,
        Appended::Existing(seq, at) => crate::outln!(
            "already recorded {} (#{seq}, {at}) for {}: nothing changed",
            record.response_id,
            record.candidate_id
        )?,
    }
    crate::outln!("lane: {}", record.lane)?;
    for c in &record.checks {
        let mark = match c.result {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "n/a ",
        };
        crate::outln!("  {mark}  {:<38} {}", c.check_id, c.reason)?;
    }
    if !record.supplement.is_empty() {
        crate::outln!("the owner must supply:")?;
        for s in &record.supplement {
            crate::outln!("  - {s}")?;
        }
    }
    for f in &record.findings {
        crate::outln!(
            "  secret: {} ({}) at {}, {} bytes, {}",
            f.rule_name,
            f.rule_id,
            f.location,
            f.length,
            f.fingerprint
        )?;
    }
    for r in &record.raw_payloads {
        crate::outln!("  raw payload: {} at {}", r.label, r.location)?;
    }
    for x in &record.execution_requests {
        crate::outln!("  execution request: {} at {}", x.label, x.location)?;
    }
    Ok(())
}

/// The SSH public key fingerprint (`SHA256:...`) of a key file (private or `.pub`).
fn key_fingerprint(key: &Path) -> Option<String> {
    let public = if key.extension().is_some_and(|e| e == "pub") {
        key.to_owned()
    } else {
        let mut p = key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let text = std::fs::read_to_string(&public).ok()?;
    let k = ssh_key::PublicKey::from_openssh(text.trim()).ok()?;
    Some(k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

#[allow(clippy::too_many_arguments)]
fn review_cmd(
    candidate: &str,
    decision: Decision,
    reason: &str,
    key: &Path,
    agent: bool,
    ledger_dir: &Path,
    requests: Option<&Path>,
    signers: Option<&Path>,
    rules: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    // The key is checked before anything else is read or written.
    let opts = crate::keys::sign_options(key, agent)?;
    let rules = Rules::load(rules)?;
    if !ledger_dir.join(castellan_ledger::store::DB_FILE).exists() {
        bail!(
            "{}: no ledger here (run `castellan ledger intake` first)",
            ledger_dir.display()
        );
    }
    let requests = load_requests(ledger_dir, requests)?;
    let draft = find_draft(&requests, candidate)?;
    let signers = load_signers(ledger_dir, signers, true)?
        .ok_or_else(|| anyhow!("no reviewer signer configuration"))?;
    let mut ledger = Ledger::open(ledger_dir)?;
    let view = LedgerView::load(&ledger, Some(&signers))?;
    let state = derive_state(draft, Some(&view), Some(&signers));
    let fingerprint = key_fingerprint(&opts.key);
    let request = ReviewRequest {
        draft,
        decision,
        reason,
        signer: fingerprint.as_deref(),
        reviewed_at: &format_time(Timestamp::now()),
        nonce: &hex::encode(rand::random::<[u8; 16]>()),
    };
    let payload = match review::prepare(request, &state, &view, rules.scanner()) {
        Ok(Prepared::Sign(payload)) => payload,
        Ok(Prepared::AlreadyRecorded { record_id }) => {
            crate::outln!(
                "already recorded {record_id} by {}: nothing changed",
                fingerprint.as_deref().unwrap_or_default()
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(refuse(e.to_string())),
    };

    let scratch = tempfile::Builder::new()
        .prefix(".review-")
        .tempdir_in(ledger_dir)
        .with_context(|| {
            format!(
                "cannot create a scratch directory in {}",
                ledger_dir.display()
            )
        })?;
    let payload_path = scratch.path().join("review.toml");
    let bytes = payload.render().into_bytes();
    std::fs::write(&payload_path, &bytes)
        .with_context(|| format!("cannot write {}", payload_path.display()))?;
    let sig_path = crate::keys::sign(&opts, review::NAMESPACE, &payload_path)?;
    let signature =
        std::fs::read(&sig_path).with_context(|| format!("cannot read {}", sig_path.display()))?;
    let stored = StoredReview {
        payload: bytes,
        signature,
    };
    let verified = review::verify(&stored, &signers).map_err(|e| refuse(e.to_string()))?;
    let now = format_time(Timestamp::now());
    let appended =
        ledger.append_review(&verified.payload, &verified.signer, &stored.signature, &now)?;
    let seq = match appended {
        Appended::New(s) | Appended::Existing(s, _) => s,
    };
    crate::outln!(
        "recorded {} (#{seq}): {} {} by {} ({})",
        verified.payload.record_id(),
        verified.payload.decision.as_str(),
        verified.payload.candidate,
        verified.signer,
        verified.principals.join(",")
    )?;
    let view = LedgerView::load(&ledger, Some(&signers))?;
    let state = derive_state(draft, Some(&view), Some(&signers));
    print_state(&state)?;
    Ok(ExitCode::SUCCESS)
}

fn print_state(state: &CandidateState) -> anyhow::Result<()> {
    crate::outln!(
        "status: {} (reviewer outcome: {})",
        state.lane,
        state.reviewer_outcome
    )?;
    if let acceptance::CandidateState {
        outcome: review::Outcome::NeedsMore { have, need },
        ..
    } = state
    {
        crate::outln!("write-capable surface: {have} of {need} distinct reviewer signatures")?;
    }
    crate::outln!("runtime gate: closed (acceptance is never runtime approval)")?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn acceptance_cmd(
    repo: &Path,
    inventory_report: &Path,
    owner_request_report: &Path,
    output: Option<&Path>,
    generated_at: Option<String>,
    ledger_dir: Option<&Path>,
    signers: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    // Both reports are read as the seed reads them, streaming (castellan_ledger::input);
    // their paths are relative to the current directory, like every path on the line.
    let requests_path = owner_request_report;
    let requests = open_report(requests_path, "owner request report")?;
    let (view, signers) = match ledger_dir {
        None => (None, None),
        Some(dir) => {
            let signers = load_signers(dir, signers, false)?;
            let ledger = Ledger::open_existing(dir)?;
            let view = LedgerView::load(&ledger, signers.as_ref())?;
            for (seq, why) in &view.refused {
                eprintln!("warning: reviewer record #{seq} does not count: {why}");
            }
            (Some(view), signers)
        }
    };
    let generated_at = generated_at.unwrap_or_else(now_utc8);
    // The inventory report and the commit only go into the report's tail: they are read
    // while the candidates stream. An inventory that cannot be read is named first, and
    // replaces nothing.
    let summary = std::thread::scope(|scope| {
        let inventory = scope.spawn(|| -> anyhow::Result<input::ReportHead> {
            input::read_inventory(open_report(inventory_report, "inventory report")?)
                .map_err(|e| anyhow!("{}: {e}", inventory_report.display()))
        });
        let git_commit = scope.spawn(|| inventory::git_short_sha(repo));
        let mut inventory = Some(inventory);
        let stream = |out: &mut dyn std::io::Write| {
            let candidates =
                acceptance::stream_candidates(requests, view.as_ref(), signers.as_ref(), out);
            let head = joined(
                inventory
                    .take()
                    .context("the inventory report was read twice")?,
            )?;
            let candidates = candidates.map_err(|e| anyhow!("{}: {e}", requests_path.display()))?;
            candidates
                .finish(&head, &generated_at, &joined(git_commit))
                .map(|(_, summary)| summary)
                .context("cannot write the report")
        };
        let summary = write_streaming(output, stream);
        if let Some(inventory) = inventory {
            // The output could not be started: the inventory's own error comes first.
            joined(inventory)?;
        }
        summary
    })?;

    eprintln!("{}", summary.line());
    Ok(ExitCode::SUCCESS)
}

/// The result of a scoped thread; its panic goes on unwinding here.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match thread.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Opens a report for buffered reading, naming the file when it cannot be.
fn open_report(path: &Path, what: &str) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(1 << 16, file))
}

/// Runs `write` against `output` (a file, written whole or not at all: beside it, then
/// renamed over) or stdout, buffered.
///
/// The file beside the output gets a fresh random name and is created exclusively, so a
/// name planted in the output's directory (a symlink to somewhere else) is never
/// followed; it is removed whenever the output is not replaced. Not fsynced: a report is
/// remade at will (after a power cut it may read empty until it is made again).
fn write_streaming<T>(
    output: Option<&Path>,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use std::io::Write as _;
    let Some(path) = output else {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let value = write(&mut out)?;
        out.flush().context("cannot write to stdout")?;
        return Ok(value);
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
            p
        }
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let value = write(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error()))?;
    replace(tmp, path)?;
    Ok(value)
}

/// Puts the finished `tmp` in place of `path`, atomically: readers see the old report or
/// the new one, never a part. Where `path` is a regular file already, the two are
/// exchanged (`renameat2(RENAME_EXCHANGE)`) and the old one, now under the temporary
/// name, is removed: a rename over an existing file makes ext4 flush the new file first
/// (`auto_da_alloc`), about 20 ms for a 65 MiB report, which a report remade at will
/// does not need. Anything else (no report yet, a symlink or a directory in its place,
/// a filesystem without the exchange) gets a plain rename.
fn replace(tmp: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let regular = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
    if regular(path) && renameat_with(CWD, tmp.path(), CWD, path, RenameFlags::EXCHANGE).is_ok() {
        if regular(tmp.path()) {
            // The old report, under the temporary name: removed when `tmp` drops.
            drop(tmp);
            return Ok(());
        }
        // Something other than a file was swapped in meanwhile: put it back.
        renameat_with(CWD, tmp.path(), CWD, path, RenameFlags::EXCHANGE)
            .with_context(|| format!("cannot restore {}", path.display()))?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

fn rescan_cmd(ledger_dir: &Path, rules: Option<&Path>) -> anyhow::Result<ExitCode> {
    let rules = Rules::load(rules)?;
    if !ledger_dir.join(castellan_ledger::store::DB_FILE).exists() {
        bail!("{}: no ledger here", ledger_dir.display());
    }
    let mut ledger = Ledger::open(ledger_dir)?;
    let stored = ledger.intakes()?;
    let (mut scanned, mut quarantined) = (0, 0);
    for s in stored.iter().filter(|s| s.superseded.is_none()) {
        if s.record.response.is_none() {
            continue; // quarantined at intake: nothing of the response is kept
        }
        scanned += 1;
        let Some(superseding) = intake::rescan(rules.scanner(), &s.record, ledger.key()) else {
            continue;
        };
        let now = format_time(Timestamp::now());
        if let Appended::New(seq) = ledger.supersede(s.seq, &superseding, "rescan", &now)? {
            quarantined += 1;
            crate::outln!(
                "quarantined intake #{} ({}) for {} by superseding record #{seq}:",
                s.seq,
                superseding.response_id,
                superseding.candidate_id
            )?;
            for f in &superseding.findings {
                crate::outln!(
                    "  secret: {} ({}) at {}, {} bytes, {}",
                    f.rule_name,
                    f.rule_id,
                    f.location,
                    f.length,
                    f.fingerprint
                )?;
            }
            for r in &superseding.raw_payloads {
                crate::outln!("  raw payload: {} at {}", r.label, r.location)?;
            }
        }
    }
    crate::outln!(
        "rescanned {scanned} stored response(s) with {} rules: {quarantined} newly quarantined",
        rules.scanner().rule_count()
    )?;
    if quarantined > 0 {
        eprintln!(
            "warning: the responses quarantined above exposed secret material to whoever held \
             them; their stored copies were scrubbed. Rotate what they exposed."
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show_cmd(
    candidate: &str,
    ledger_dir: &Path,
    requests: Option<&Path>,
    signers: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let requests = load_requests(ledger_dir, requests)?;
    let draft = find_draft(&requests, candidate)?;
    let signers = load_signers(ledger_dir, signers, false)?;
    let ledger = Ledger::open_existing(ledger_dir)?;
    let view = LedgerView::load(&ledger, signers.as_ref())?;
    let id = intake::candidate_id(&draft.surface_id);
    if json {
        let state = derive_state(draft, Some(&view), signers.as_ref());
        let doc = show_json(&id, draft, &state, &view);
        crate::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!("{id}")?;
    crate::outln!(
        "  {} at {} (sha256 {}), write-capable: {}",
        draft.config_kind,
        draft.repo_source_path,
        draft.repo_sha256,
        draft.write_capable_surface
    )?;
    let state = derive_state(draft, Some(&view), signers.as_ref());
    print_state(&state)?;
    crate::outln!("intake records:")?;
    for i in view.intakes.iter().filter(|i| i.record.candidate_id == id) {
        crate::outln!(
            "  #{} {} {} lane={}{}",
            i.seq,
            i.recorded_at,
            i.record.response_id,
            i.record.lane,
            if i.record.supplement.is_empty() {
                String::new()
            } else {
                format!(" missing=[{}]", i.record.supplement.join("; "))
            }
        )?;
        if let Some(sup) = &i.superseded {
            crate::outln!(
                "    superseded by #{} ({}, {}); was lane={}",
                sup.seq,
                sup.reason,
                sup.recorded_at,
                sup.original_lane
            )?;
        }
    }
    crate::outln!("reviewer records (verified):")?;
    for r in view.reviews.iter().filter(|r| r.payload.candidate == id) {
        crate::outln!(
            "  {} {} by {} on {}: {}",
            r.payload.reviewed_at,
            r.payload.decision.as_str(),
            r.signer,
            r.payload.response,
            r.payload.reason
        )?;
    }
    for (seq, why) in &view.refused {
        crate::outln!("  reviewer record #{seq} refused: {why}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `ledger show --json` document: the same facts as the text, one object.
fn show_json(
    id: &str,
    draft: &RequestDraft,
    state: &CandidateState,
    view: &LedgerView,
) -> serde_json::Value {
    let (have, need) = match &state.outcome {
        review::Outcome::NeedsMore { have, need } => (Some(*have), Some(*need)),
        _ => (None, None),
    };
    let intakes: Vec<serde_json::Value> = view
        .intakes
        .iter()
        .filter(|i| i.record.candidate_id == id)
        .map(|i| {
            serde_json::json!({
                "seq": i.seq,
                "recorded_at": i.recorded_at,
                "response_id": i.record.response_id,
                "lane": i.record.lane,
                "missing": i.record.supplement,
            })
        })
        .collect();
    let reviews: Vec<serde_json::Value> = view
        .reviews
        .iter()
        .filter(|r| r.payload.candidate == id)
        .map(|r| {
            serde_json::json!({
                "reviewed_at": r.payload.reviewed_at,
                "decision": r.payload.decision.as_str(),
                "signer": r.signer,
                "principals": r.principals,
                "response_id": r.payload.response,
                "reason": r.payload.reason,
                "record_id": r.payload.record_id(),
            })
        })
        .collect();
    let refused: Vec<serde_json::Value> = view
        .refused
        .iter()
        .map(|(seq, why)| serde_json::json!({"seq": seq, "reason": why}))
        .collect();
    serde_json::json!({
        "candidate_id": id,
        "surface": {
            "surface_id": draft.surface_id,
            "config_kind": draft.config_kind.to_string(),
            "repo_source_path": draft.repo_source_path,
            "repo_sha256": draft.repo_sha256,
            "write_capable_surface": draft.write_capable_surface,
        },
        "status": state.lane.to_string(),
        "reviewer_outcome": state.reviewer_outcome,
        "stale": state.stale,
        "distinct_reviewers": have,
        "reviewers_needed": need,
        "runtime_gate": false,
        "intake_records": intakes,
        "reviewer_records": reviews,
        "refused_reviewer_records": refused,
    })
}

/// `castellan ledger publish REPORT`: checks the report as the hub will, then pushes it.
async fn publish_cmd(report: &Path, hub: &crate::hub::HubArgs) -> anyhow::Result<ExitCode> {
    let limit = castellan_hub::server::LEDGER_BODY as u64;
    let file =
        std::fs::File::open(report).with_context(|| format!("cannot open {}", report.display()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes)
        .with_context(|| format!("cannot read {}", report.display()))?;
    if bytes.len() as u64 > limit {
        anyhow::bail!(
            "{}: larger than the {} MiB the hub takes",
            report.display(),
            limit >> 20
        );
    }
    let candidates = castellan_hub::server::check_ledger_report(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", report.display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)?;
    let pushed = hub.client()?.put_ledger(&doc).await?;
    crate::outln!(
        "pushed acceptance report {} ({candidates} candidates) to the hub",
        pushed.number
    )?;
    Ok(ExitCode::SUCCESS)
}
