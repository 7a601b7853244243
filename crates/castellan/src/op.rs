//! `castellan op`: make, sign, check and inspect signed operations (format v1, see
//! `castellan_core::op`).
//!
//! - `op new` writes the canonical payload of one destructive operation;
//! - `op sign` signs it with `ssh-keygen -Y sign -n castellan-op` (key file, ssh-agent or
//!   security key), writing `OPFILE.sig` (or the next free `OPFILE.N.sig`);
//! - `op verify` runs the agent's own verifier and gate over the op and its signatures;
//! - `op show` says what the op would do, and which signatures lie beside it.
//!
//! Exit codes: 0 done (or accepted); 1 `op verify` rejected the op; 2 the command could not
//! run (bad arguments, unreadable files, a refused signer config).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use castellan_agent::gatekeeper::{Offer, StateFacts, check_signatures, judge};
use castellan_agent::inbox::{FileProblem, Inbox, OfferedOp, read_regular};
use castellan_core::Operation;
use castellan_core::Target;
use castellan_core::gate::{Decision, DestructiveAction, SignatureCheck};
use castellan_core::op::{MAX_OP_BYTES, MAX_VALIDITY, NAMESPACE, SignedOp, format_time};
use castellan_sig::SignerConfig;
use clap::Subcommand;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// `castellan op` subcommands.
#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// Write a new signed-operation payload (to sign with `castellan op sign`).
    New {
        /// The operation (this version executes: destroy).
        op: String,
        /// The node the op is for (its Proxmox VE node name).
        #[arg(long)]
        host: String,
        /// What the op acts on, as KIND/ID: `lxc/101` or `qemu/101` (a Proxmox VE guest),
        /// `container/web` or `volume/pgdata` (Docker). The kind is part of the identity:
        /// an op for `lxc/150` authorises nothing on `qemu/150`.
        #[arg(long, value_name = "KIND/ID")]
        target: String,
        /// An operation parameter, `key=value` (repeatable); destroy takes `purge=1`.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// The target's state digest the op is approved against (a guest's config
        /// `digest`; shown by `castellan plan` and in the agent's pending payload).
        /// Required for destroy.
        #[arg(long, value_name = "DIGEST")]
        precondition: Option<String>,
        /// How long the op stays valid: `90s`, `30m`, `1h`, `2d`, `1h30m` (at most 7 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Start of validity (RFC 3339, e.g. 2026-11-22T10:00:00Z); default now. Whole
        /// seconds: a fraction is dropped.
        #[arg(long, value_name = "RFC3339")]
        not_before: Option<String>,
        /// Write the op to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "OPFILE")]
        output: Option<PathBuf>,
        /// Overwrite OPFILE if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Sign an op file with ssh-keygen (`ssh-keygen -Y sign -n castellan-op`).
    Sign {
        /// The op file.
        opfile: PathBuf,
        /// The signing key: a private key file, or a public key (`.pub`) whose private
        /// half is in the ssh-agent at SSH_AUTH_SOCK (agent-held and FIDO keys).
        #[arg(long, short = 'k')]
        key: PathBuf,
        /// Sign with the ssh-agent: needs SSH_AUTH_SOCK; for a private key path, its
        /// `.pub` beside it is used, so the private key file is never read.
        #[arg(long)]
        agent: bool,
    },
    /// Check an op and its signatures as an agent on HOST would: exit 0 when accepted,
    /// 1 with the reason when rejected.
    Verify {
        /// The op file; its signatures are read from OPFILE.sig, OPFILE.2.sig, ...
        opfile: PathBuf,
        /// The signer config (signers.toml) to verify against.
        #[arg(long)]
        signers: PathBuf,
        /// The host doing the checking (its node name).
        #[arg(long)]
        host: String,
        /// A further signature file (repeatable).
        #[arg(long = "sig", value_name = "FILE")]
        sigs: Vec<PathBuf>,
        /// The target's current state digest; without it the precondition is not checked.
        #[arg(long, value_name = "DIGEST")]
        state_digest: Option<String>,
    },
    /// Hand an op and its signatures to an agent: drop them into its inbox atomically
    /// (each file written under a temporary name and renamed into place, the signatures
    /// first and the op last), so the agent never sees a partial file or an unsigned op.
    Submit {
        /// The op file; its signatures are read from OPFILE.sig, OPFILE.2.sig, ...
        opfile: PathBuf,
        /// The agent's signed-op inbox (`[ops] inbox`, default `<data_dir>/inbox`), on
        /// this machine.
        #[arg(long, value_name = "DIR")]
        inbox: Option<PathBuf>,
        /// A further signature file (repeatable).
        #[arg(long = "sig", value_name = "FILE")]
        sigs: Vec<PathBuf>,
        /// Or relay it through the hub to the host it names.
        #[command(flatten)]
        hub: Option<crate::hub::HubArgs>,
    },
    /// Say what an op would do, until when, and which signatures lie beside it.
    Show {
        /// The op file.
        opfile: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `castellan op` subcommand.
pub async fn run(cmd: OpCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OpCommand::New {
            op,
            host,
            target,
            params,
            precondition,
            ttl,
            not_before,
            output,
            force,
        } => {
            let args = NewArgs {
                op,
                host,
                target,
                params,
                precondition,
                ttl,
                not_before,
            };
            new_cmd(&args, output.as_deref(), force)
        }
        OpCommand::Sign { opfile, key, agent } => sign_cmd(&opfile, &key, agent),
        OpCommand::Verify {
            opfile,
            signers,
            host,
            sigs,
            state_digest,
        } => verify_cmd(&opfile, &signers, &host, &sigs, state_digest.as_deref()),
        OpCommand::Submit {
            opfile,
            inbox,
            sigs,
            hub,
        } => match (inbox, hub) {
            (Some(inbox), _) => submit_cmd(&opfile, &inbox, &sigs),
            (None, Some(hub)) => {
                let (offered, sigs) = read_signed(&opfile, &sigs)?;
                let sigs = sigs
                    .into_iter()
                    .map(|(name, bytes)| {
                        String::from_utf8(bytes)
                            .map_err(|_| anyhow!("signature {name} is not text"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                crate::hub::submit_op(&offered, sigs, &hub).await
            }
            (None, None) => bail!("give --inbox DIR (an agent on this machine) or --hub URL"),
        },
        OpCommand::Show { opfile, json } => show_cmd(&opfile, json),
    }
}

// ---- op submit -------------------------------------------------------------------------

/// A signature's file name in an inbox, and its bytes.
type NamedSig = (String, Vec<u8>);

/// Reads an op and its signatures for submission, refusing one that is malformed or
/// unsigned; the signatures come back named as they go into an inbox.
fn read_signed(opfile: &Path, extra: &[PathBuf]) -> anyhow::Result<(OfferedOp, Vec<NamedSig>)> {
    let offered = OfferedOp::read(opfile, extra)
        .with_context(|| format!("cannot read op {}", opfile.display()))?;
    if let Err(e) = &offered.op {
        bail!("refusing to submit {}: {e}", opfile.display());
    }
    if let Some(bad) = offered.bad_sigs.first() {
        bail!(
            "refusing to submit {}: signature {} is unusable: {}",
            opfile.display(),
            bad.path.display(),
            bad.problem
        );
    }
    if offered.sigs.is_empty() {
        bail!(
            "refusing to submit {}: it has no signature (looked for {}; sign it with `castellan op sign`)",
            opfile.display(),
            castellan_sig::sign::signature_path(opfile, 1).display()
        );
    }
    let name = opfile
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no usable file name", opfile.display()))?;
    let sigs: Vec<NamedSig> = offered
        .sigs
        .iter()
        .zip(1u32..)
        .map(|((_, bytes), n)| {
            let sig_name = if n == 1 {
                format!("{name}.sig")
            } else {
                format!("{name}.{n}.sig")
            };
            (sig_name, bytes.clone())
        })
        .collect();
    Ok((offered, sigs))
}

fn submit_cmd(opfile: &Path, inbox: &Path, extra: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (offered, sigs) = read_signed(opfile, extra)?;
    let name = opfile
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no usable file name", opfile.display()))?;
    let inbox = Inbox::open_existing(inbox)
        .with_context(|| format!("cannot open the inbox {}", inbox.display()))?;
    let placed = inbox
        .submit(name, &offered.bytes, &sigs)
        .with_context(|| format!("cannot submit {}", opfile.display()))?;
    outln!(
        "submitted {} with {} signature{}",
        placed.display(),
        sigs.len(),
        if sigs.len() == 1 { "" } else { "s" }
    )?;
    Ok(ExitCode::SUCCESS)
}

// ---- op new ----------------------------------------------------------------------------

/// The fields `op new` builds an op from.
#[derive(Debug, Clone)]
pub struct NewArgs {
    /// The operation.
    pub op: String,
    /// The node.
    pub host: String,
    /// The target, `kind/id`.
    pub target: String,
    /// `key=value` parameters.
    pub params: Vec<String>,
    /// The approved config digest.
    pub precondition: Option<String>,
    /// The validity window's length.
    pub ttl: String,
    /// The window's start (RFC 3339), default `now`.
    pub not_before: Option<String>,
}

/// Builds the op `op new` would write, with `nonce`, at `now`.
pub fn build_op(args: &NewArgs, nonce: String, now: Timestamp) -> anyhow::Result<SignedOp> {
    let Some(operation) = Operation::executable_signed().find(|o| o.as_str() == args.op) else {
        bail!(
            "unknown operation {:?}: this castellan executes only {}",
            args.op,
            Operation::executable_signed_names()
        );
    };
    let mut params = BTreeMap::new();
    for p in &args.params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?} is not KEY=VALUE");
        };
        if k.is_empty() {
            bail!("--param {p:?} has an empty name");
        }
        if params.insert(k.to_owned(), v.to_owned()).is_some() {
            bail!("--param {k} is given twice");
        }
    }
    operation
        .check_params(&params)
        .map_err(|e| anyhow!("{e}: the op must match the agent's action exactly"))?;
    if operation.spec().needs_precondition && args.precondition.is_none() {
        bail!(
            "{operation} needs --precondition DIGEST: the target's state digest, shown by \
             `castellan plan` or in the agent's pending payload"
        );
    }
    let ttl = parse_ttl(&args.ttl)?;
    let start = match &args.not_before {
        Some(s) => s
            .parse::<Timestamp>()
            .map_err(|e| anyhow!("--not-before {s:?} is not an RFC 3339 time: {e}"))?,
        None => now,
    };
    let not_before = Timestamp::from_second(start.as_second())
        .map_err(|e| anyhow!("--not-before is out of range: {e}"))?;
    let not_after = not_before
        .checked_add(ttl)
        .map_err(|e| anyhow!("--not-before plus --ttl is out of range: {e}"))?;
    let target: Target = args.target.parse().map_err(|e| anyhow!("--target: {e}"))?;
    if !operation.spec().targets.contains(&target.kind()) {
        bail!(
            "--target {target}: {operation} acts on {}, not on a {}",
            operation.target_kinds(),
            target.kind().as_str()
        );
    }
    if operation == Operation::WipeStorage
        && let Some(value) = params.get(castellan_core::wipe::VOLUMES_PARAM)
        && let Some(other) = castellan_core::wipe::decode(value)
            .unwrap_or_default()
            .keys()
            .find(|v| !v.starts_with(&format!("{}:", target.id())))
    {
        bail!("--param volumes: {other} is not on {}", target.describe());
    }
    if target.kind() == castellan_core::TargetKind::Node && target.id() != args.host {
        bail!(
            "--target {target}: a node is decommissioned by its own agent; --host is {}",
            args.host
        );
    }
    let op = SignedOp {
        op: args.op.clone(),
        host: args.host.clone(),
        target,
        precondition: args.precondition.clone(),
        nonce,
        not_before,
        not_after,
        params,
    };
    op.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(op)
}

/// Parses a validity length: one or more `<number><unit>` with units `s`, `m`, `h`, `d`
/// (`90s`, `30m`, `1h`, `2d`, `1h30m`); more than zero and at most 7 days.
pub fn parse_ttl(s: &str) -> anyhow::Result<SignedDuration> {
    let bad =
        || anyhow!("--ttl {s:?} is not a duration like 30m, 1h, 2d or 1h30m (units s, m, h, d)");
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = total.saturating_add(n.saturating_mul(secs));
        rest = &rest[digits + 1..];
    }
    let d = SignedDuration::from_secs(total);
    if total <= 0 {
        bail!("--ttl {s:?} must be longer than zero");
    }
    if d > MAX_VALIDITY {
        bail!("--ttl {s:?} is longer than the 7 days an op may be valid");
    }
    Ok(d)
}

fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn new_cmd(args: &NewArgs, output: Option<&Path>, force: bool) -> anyhow::Result<ExitCode> {
    let op = build_op(args, new_nonce(), Timestamp::now())?;
    let text = op.render();
    let Some(path) = output else {
        crate::out!("{text}")?;
        return Ok(ExitCode::SUCCESS);
    };
    write_new(path, text.as_bytes(), force)?;
    let stale: Vec<PathBuf> = (1..=16)
        .map(|n| castellan_sig::sign::signature_path(path, n))
        .filter(|p| p.exists())
        .collect();
    eprintln!(
        "wrote {}: {} {} on host {}, valid {} until {}",
        path.display(),
        op.op,
        op.target,
        op.host,
        format_time(op.not_before),
        format_time(op.not_after)
    );
    if !stale.is_empty() {
        eprintln!(
            "warning: signatures made over the previous content are still beside it \
             and will not verify: {}",
            stale
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "sign it with: castellan op sign {} --key ~/.ssh/id_ed25519",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` whole (temporary file, then rename): never over an existing
/// file unless `force`.
pub(crate) fn write_new(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".castellan-op-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if force {
        tmp.persist(path)
            .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!("{} exists; pass --force to overwrite it", path.display())
            } else {
                anyhow!("cannot write {}: {}", path.display(), e.error)
            }
        })?;
    }
    Ok(())
}

// ---- op sign ---------------------------------------------------------------------------

fn read_op(path: &Path) -> anyhow::Result<(Vec<u8>, SignedOp)> {
    let bytes = read_regular(path, MAX_OP_BYTES as u64)
        .with_context(|| format!("cannot read op file {}", path.display()))?;
    let op = SignedOp::parse(&bytes)
        .map_err(|e| anyhow!("{} is not a valid castellan op: {e}", path.display()))?;
    Ok((bytes, op))
}

fn sign_cmd(opfile: &Path, key: &Path, agent: bool) -> anyhow::Result<ExitCode> {
    let (bytes, op) = read_op(opfile).context("refusing to sign")?;
    // The key is checked before anything is printed or written.
    let opts = crate::keys::sign_options(key, agent).context("refusing to sign")?;
    let now = Timestamp::now();
    eprintln!(
        "signing {}: {} {} on host {}, valid until {}, digest sha256:{}",
        opfile.display(),
        op.op,
        op.target,
        op.host,
        format_time(op.not_after),
        op.digest()
    );
    if now >= op.not_after {
        eprintln!(
            "warning: this op expired at {}; no agent will accept it",
            format_time(op.not_after)
        );
    }
    let sig = crate::keys::sign(&opts, NAMESPACE, opfile)?;
    // The signature covers what ssh-keygen read; make sure that is what was checked.
    let signed_now =
        std::fs::read(opfile).with_context(|| format!("cannot re-read {}", opfile.display()))?;
    if signed_now != bytes {
        let _ = std::fs::remove_file(&sig);
        bail!(
            "{} changed while it was being signed; signature removed",
            opfile.display()
        );
    }
    eprintln!(
        "wrote the signature to {}; hand both to the agent with: castellan op submit {} --inbox INBOX",
        sig.display(),
        opfile.display()
    );
    outln!("{}", sig.display())?;
    Ok(ExitCode::SUCCESS)
}

// ---- op verify -------------------------------------------------------------------------

fn verify_cmd(
    opfile: &Path,
    signers_path: &Path,
    host: &str,
    extra: &[PathBuf],
    state_digest: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let signers = SignerConfig::load(signers_path)?;
    let offered = match OfferedOp::read(opfile, extra) {
        Ok(o) => o,
        // Too large to be an op (or a signature): refused as the agent refuses it.
        Err(e @ FileProblem::TooLarge(_)) => {
            outln!("rejected: bad_format: {} is {e}", opfile.display())?;
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot read op {} and its signatures",
                opfile.display()
            )));
        }
    };
    let op = match &offered.op {
        Ok(op) => op,
        Err(e) => {
            outln!("rejected: bad_format: {e}")?;
            return Ok(ExitCode::from(1));
        }
    };
    let now = Timestamp::now();
    let sigs = offered.sig_bytes();
    if sigs.is_empty() && !offered.bad_sigs.is_empty() {
        for bad in &offered.bad_sigs {
            outln!(
                "rejected: bad_format: signature {} unreadable: {}",
                bad.path.display(),
                bad.problem
            )?;
        }
        return Ok(ExitCode::from(1));
    }
    if sigs.is_empty() {
        outln!(
            "rejected: bad_format: no signature over the op (looked for {}; pass --sig FILE for others)",
            castellan_sig::sign::signature_path(opfile, 1).display()
        )?;
        return Ok(ExitCode::from(1));
    }
    let Some(operation) = Operation::from_name(&op.op) else {
        outln!(
            "rejected: bad_format: unknown operation {:?}: this castellan knows {}",
            op.op,
            Operation::all()
                .filter(|o| o.signable())
                .map(Operation::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        return Ok(ExitCode::from(1));
    };
    let action = DestructiveAction {
        op: operation,
        host: host.to_owned(),
        // The op names the target's kind; the agent checks it against what it sees.
        target: op.target.clone(),
        params: op.params.clone(),
        state_digest: state_digest
            .map(str::to_owned)
            .or_else(|| op.precondition.clone())
            .unwrap_or_default(),
    };
    let offer = Offer {
        op,
        bytes: &offered.bytes,
        sigs: &sigs,
    };
    let decision = judge(
        Some(&signers),
        host,
        &action,
        None,
        offer,
        StateFacts::stateless(now),
    );
    // The same checks the gate ran, for naming the signers and the signatures not counted.
    let checks = check_signatures(Some(&signers), &offered.bytes, &sigs, now);
    let uncounted = |out: &mut Vec<String>| {
        for ((path, _), check) in offered.sigs.iter().zip(&checks) {
            if let SignatureCheck::Rejected { reason, detail } = check {
                out.push(format!(
                    "  signature {} not counted: {reason}: {detail}",
                    path.display()
                ));
            }
        }
        for bad in &offered.bad_sigs {
            out.push(format!(
                "  signature {} not counted: bad_format: {}",
                bad.path.display(),
                bad.problem
            ));
        }
    };
    let mut lines = Vec::new();
    let code = match decision {
        Decision::Accepted(approval) => {
            for fp in approval.signers() {
                let (principals, roles) = checks
                    .iter()
                    .find_map(|c| match c {
                        SignatureCheck::Verified {
                            fingerprint,
                            principals,
                            roles,
                        } if fingerprint == fp => Some((
                            principals.join(","),
                            roles
                                .iter()
                                .map(|r| r.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                        )),
                        _ => None,
                    })
                    .unwrap_or_default();
                lines.push(format!(
                    "accepted: {} {} on {host} signed by {principals} ({fp}, role {roles})",
                    op.op, op.target
                ));
            }
            uncounted(&mut lines);
            if state_digest.is_none() {
                lines.push("note: precondition not checked (no --state-digest)".to_owned());
            }
            lines.push("note: replay not checked here: the agent's journal decides".to_owned());
            if !action.op.spec().executable {
                lines.push(format!(
                    "note: this castellan executes only {}; no agent of this version acts on {}",
                    Operation::executable_signed_names(),
                    op.op
                ));
            }
            ExitCode::SUCCESS
        }
        Decision::Rejected { reason, detail } => {
            // Where the gate's reason is a signature's own, it is said once, naming the file.
            let mut why_not = Vec::new();
            uncounted(&mut why_not);
            let same = format!(" not counted: {reason}: {detail}");
            let (theirs, others): (Vec<String>, Vec<String>) =
                why_not.into_iter().partition(|l| l.ends_with(&same));
            let files: Vec<&str> = theirs
                .iter()
                .filter_map(|l| l.strip_prefix("  signature "))
                .filter_map(|l| l.strip_suffix(same.as_str()))
                .collect();
            if files.is_empty() {
                lines.push(format!("rejected: {reason}: {detail}"));
            } else {
                lines.push(format!(
                    "rejected: {reason}: {detail} (signature {})",
                    files.join(", ")
                ));
            }
            lines.extend(others);
            ExitCode::from(1)
        }
        Decision::Allowed => {
            lines.push(format!(
                "rejected: bad_format: {} is benign: the agent applies it without a signed op",
                op.op
            ));
            ExitCode::from(1)
        }
        Decision::PendingSignature => {
            lines.push("rejected: bad_format: no signature over the op".to_owned());
            ExitCode::from(1)
        }
    };
    for l in lines {
        outln!("{l}")?;
    }
    Ok(code)
}

// ---- op show ---------------------------------------------------------------------------

/// Where an op's validity window stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    /// Before `not_before`.
    NotYetValid,
    /// Inside the window.
    Valid,
    /// At or after `not_after`.
    Expired,
}

impl WindowStatus {
    /// The status of `op` at `now`.
    pub fn of(op: &SignedOp, now: Timestamp) -> Self {
        if now < op.not_before {
            WindowStatus::NotYetValid
        } else if now >= op.not_after {
            WindowStatus::Expired
        } else {
            WindowStatus::Valid
        }
    }

    /// The snake_case word.
    pub fn as_str(&self) -> &'static str {
        match self {
            WindowStatus::NotYetValid => "not_yet_valid",
            WindowStatus::Valid => "valid",
            WindowStatus::Expired => "expired",
        }
    }
}

/// A length of time for people: the two largest units (`2d 3h`, `1h 5m`, `4m 10s`, `9s`).
pub fn human_duration(d: SignedDuration) -> String {
    let s = d.as_secs().unsigned_abs();
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let two = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua} {b}{ub}")
        }
    };
    if days > 0 {
        two(days, "d", hours, "h")
    } else if hours > 0 {
        two(hours, "h", mins, "m")
    } else if mins > 0 {
        two(mins, "m", secs, "s")
    } else {
        format!("{secs}s")
    }
}

/// `in 5m` or `5m ago`, from `now` to `t`.
fn relative(now: Timestamp, t: Timestamp) -> String {
    let d = now.duration_until(t);
    if d.is_negative() {
        format!("{} ago", human_duration(d))
    } else {
        format!("in {}", human_duration(d))
    }
}

/// What executing `op` does, in words.
pub fn effect(op: &SignedOp) -> String {
    match Operation::from_name(&op.op) {
        Some(o) if o.spec().executable => o.describe(&op.target.describe(), &op.params),
        _ => format!(
            "{} is not an operation this castellan executes (it executes {})",
            op.op,
            Operation::executable_signed_names()
        ),
    }
}

/// One signature file found beside an op, decoded but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigInfo {
    /// The file.
    pub path: PathBuf,
    /// What it holds, or why it could not be decoded.
    pub decoded: Result<DecodedSig, String>,
}

/// What an armored signature says about itself (nothing here is verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSig {
    /// The embedded public key's algorithm.
    pub key_type: String,
    /// The embedded public key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// The namespace it was made under.
    pub namespace: String,
}

/// Decodes each signature beside the op (no verification).
pub fn describe_signatures(sigs: &[(PathBuf, Vec<u8>)]) -> Vec<SigInfo> {
    sigs.iter()
        .map(|(path, bytes)| SigInfo {
            path: path.clone(),
            decoded: castellan_sig::decode_armored(bytes)
                .map(|s| DecodedSig {
                    key_type: s.public_key().algorithm().to_string(),
                    fingerprint: s
                        .public_key()
                        .fingerprint(ssh_key::HashAlg::Sha256)
                        .to_string(),
                    namespace: s.namespace().to_owned(),
                })
                .map_err(|e| e.to_string()),
        })
        .collect()
}

/// The human-readable `op show` text for `op` (read from `path`) at `now`.
pub fn show_text(path: &Path, op: &SignedOp, sigs: &[SigInfo], now: Timestamp) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "op file:      {}", path.display());
    let _ = writeln!(
        s,
        "operation:    {} {} ({}) on host {}",
        op.op,
        op.target.describe(),
        op.target,
        op.host
    );
    let _ = writeln!(s, "effect:       {}", effect(op));
    if op.params.is_empty() {
        let _ = writeln!(s, "parameters:   (none)");
    } else {
        let p: Vec<String> = op.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "parameters:   {}", p.join(" "));
    }
    // What the signature removes, one item a line (a wipe's volumes with their sizes, a
    // decommission's guests then volumes).
    if let Some(operation) = Operation::from_name(&op.op) {
        for item in operation.removals(&op.params) {
            let _ = writeln!(s, "removes:      {item}");
        }
        let needs = operation.spec().default_threshold;
        if needs > 1 {
            let _ = writeln!(
                s,
                "signatures:   {needs} distinct keys by default ([thresholds] {} in signers.toml sets another number)",
                op.op
            );
        }
    }
    match &op.precondition {
        Some(p) => {
            let _ = writeln!(
                s,
                "precondition: {}'s state digest is {p} (stale once it changes)",
                op.target.describe()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "precondition: (none: bound to no state; the agent refuses destructive ops without one)"
            );
        }
    }
    let _ = writeln!(
        s,
        "valid from:   {} ({})",
        format_time(op.not_before),
        relative(now, op.not_before)
    );
    let _ = writeln!(
        s,
        "valid until:  {} ({})",
        format_time(op.not_after),
        relative(now, op.not_after)
    );
    let status = match WindowStatus::of(op, now) {
        WindowStatus::NotYetValid => "not yet valid",
        WindowStatus::Valid => "valid now",
        WindowStatus::Expired => "expired",
    };
    let _ = writeln!(s, "status:       {status}");
    let _ = writeln!(s, "nonce:        {}", op.nonce);
    let _ = writeln!(s, "digest:       sha256:{}", op.digest());
    if sigs.is_empty() {
        let _ = writeln!(
            s,
            "signatures:   none (sign with `castellan op sign {} --key KEY`)",
            path.display()
        );
        return s;
    }
    let _ = writeln!(
        s,
        "signatures:   {} found, not verified here (check them with `castellan op verify`)",
        sigs.len()
    );
    let width = sigs
        .iter()
        .map(|sig| sig.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    for sig in sigs {
        let name = sig.path.display().to_string();
        match &sig.decoded {
            Ok(d) => {
                let ns = if d.namespace == NAMESPACE {
                    String::new()
                } else {
                    format!(" (namespace {:?}: not an op signature)", d.namespace)
                };
                let _ = writeln!(s, "  {name:<width$}  {} {}{ns}", d.key_type, d.fingerprint);
            }
            Err(e) => {
                let _ = writeln!(s, "  {name:<width$}  unreadable: {e}");
            }
        }
    }
    s
}

/// The `op show --json` document.
pub fn show_json(
    path: &Path,
    op: &SignedOp,
    sigs: &[SigInfo],
    now: Timestamp,
) -> serde_json::Value {
    let sigs: Vec<serde_json::Value> = sigs
        .iter()
        .map(|s| match &s.decoded {
            Ok(d) => json!({
                "file": s.path.display().to_string(),
                "key_type": d.key_type,
                "fingerprint": d.fingerprint,
                "namespace": d.namespace,
                "verified": false,
            }),
            Err(e) => json!({
                "file": s.path.display().to_string(),
                "error": e,
                "verified": false,
            }),
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "op": {
            "version": castellan_core::op::VERSION,
            "op": op.op,
            "host": op.host,
            "target": op.target,
            "precondition": op.precondition,
            "nonce": op.nonce,
            "not_before": format_time(op.not_before),
            "not_after": format_time(op.not_after),
            "params": op.params,
        },
        "effect": effect(op),
        "executable": Operation::from_name(&op.op).is_some_and(|o| o.spec().executable),
        "digest": format!("sha256:{}", op.digest()),
        "status": WindowStatus::of(op, now).as_str(),
        "signatures": sigs,
    })
}

fn show_cmd(opfile: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let offered = OfferedOp::read(opfile, &[])
        .with_context(|| format!("cannot read op {} and its signatures", opfile.display()))?;
    let op = offered
        .op
        .as_ref()
        .map_err(|e| anyhow!("{} is not a valid castellan op: {e}", opfile.display()))?;
    let sigs = describe_signatures(&offered.sigs);
    let now = Timestamp::now();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&show_json(opfile, op, &sigs, now))?
        )?;
    } else {
        crate::out!("{}", show_text(opfile, op, &sigs, now))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args() -> NewArgs {
        NewArgs {
            op: "destroy".into(),
            host: "pve-01".into(),
            target: "lxc/101".into(),
            params: vec![],
            precondition: Some("9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20".into()),
            ttl: "1h".into(),
            not_before: Some("2026-11-22T10:00:00.75Z".into()),
        }
    }

    const NONCE: &str = "6b1f0e54a9c2d83f71e0a4b59c6d2e13";

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), SignedDuration::from_mins(30));
        assert_eq!(parse_ttl("1h30m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_ttl("7d").unwrap(), MAX_VALIDITY);
        for bad in [
            "",
            "1",
            "h",
            "1w",
            "8d",
            "0m",
            "-1h",
            "1h ",
            "99999999999s",
            "1.5h",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn builds_the_canonical_op() {
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let op = build_op(&args(), NONCE.into(), now).unwrap();
        assert_eq!(op.not_before, "2026-11-22T10:00:00Z".parse().unwrap());
        assert_eq!(op.not_after, "2026-11-22T11:00:00Z".parse().unwrap());
        assert_eq!(SignedOp::parse(op.render().as_bytes()).unwrap(), op);
        let mut a = args();
        a.not_before = None;
        a.params = vec!["purge=1".into()];
        let op = build_op(&a, NONCE.into(), now).unwrap();
        assert_eq!(op.not_before, now);
        assert_eq!(op.params.get("purge").map(String::as_str), Some("1"));
    }

    #[test]
    fn refusals() {
        let now = Timestamp::now();
        let err = |f: &dyn Fn(&mut NewArgs)| {
            let mut a = args();
            f(&mut a);
            build_op(&a, NONCE.into(), now).unwrap_err().to_string()
        };
        assert!(err(&|a| a.op = "rotate_keys".into()).contains("executes only destroy"));
        assert!(
            err(&|a| {
                a.op = "decommission".into();
                a.target = "node/pve-02".into();
            })
            .contains("a node is decommissioned by its own agent")
        );
        assert!(err(&|a| a.precondition = None).contains("destroy needs --precondition DIGEST"));
        assert!(err(&|a| a.params = vec!["purge".into()]).contains("not KEY=VALUE"));
        assert!(err(&|a| a.params = vec!["force=1".into()]).contains("does not take"));
        assert!(err(&|a| a.params = vec!["purge=0".into()]).contains("purge=1"));
        assert!(err(&|a| a.host = "pve_01".into()).contains("host"));
        assert!(err(&|a| a.target = "lxc/5".into()).contains("--target"));
        assert!(err(&|a| a.target = "101".into()).contains("kind/id"));
        assert!(err(&|a| a.target = "volume/pgdata".into()).contains("not on a volume"));
        assert!(err(&|a| a.precondition = Some("XYZ".into())).contains("precondition"));
        let wipe = |a: &mut NewArgs, volumes: &str| {
            a.op = "wipe_storage".into();
            a.target = "storage/local-lvm".into();
            a.params = vec![format!("volumes={volumes}")];
        };
        assert!(
            err(&|a| wipe(a, "other:vm-1-disk-0=5"))
                .contains("other:vm-1-disk-0 is not on storage local-lvm")
        );
        assert!(err(&|a| wipe(a, "local-lvm:b=1,local-lvm:a=1")).contains("volumes"));
        assert!(err(&|a| a.not_before = Some("yesterday".into())).contains("RFC 3339"));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(SignedDuration::from_secs(9)), "9s");
        assert_eq!(human_duration(SignedDuration::from_secs(250)), "4m 10s");
        assert_eq!(human_duration(SignedDuration::from_secs(3600)), "1h");
        assert_eq!(human_duration(SignedDuration::from_secs(-3900)), "1h 5m");
        assert_eq!(
            human_duration(SignedDuration::from_secs(3 * 86_400 + 7200)),
            "3d 2h"
        );
    }
}
