//! `castellan signers`: key rotation from the operator's side (see
//! `castellan_sig::rotation` and docs/signed-ops.md, "Key rotation").
//!
//! - `signers propose` writes the next version of the signer set: the set in force (the
//!   agent's signers.toml, version 1, or the signer-set document last put in force) with
//!   keys added or removed and thresholds changed, validated before it is written;
//! - `signers sign` signs a signer-set document with `ssh-keygen -Y sign -n
//!   castellan-signers`, writing `FILE.sig` (or the next free `FILE.N.sig`);
//! - `signers show` says what the document holds, what changes from the set in force,
//!   which signatures lie beside it, for which group each counts, and whether the set
//!   in force would accept it.
//!
//! Exit codes: 0 done; 2 the command could not run (bad arguments, unreadable or refused
//! files). `show` answers with 0 whatever its verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use castellan_agent::inbox::{FileProblem, MAX_SIG_BYTES, MAX_SIGS, read_regular};
use castellan_core::Role;
use castellan_sig::rotation::{
    BOOTSTRAP_VERSION, GroupCheck, GroupReport, KeyView, MAX_SIGNER_SET_BYTES, SetDiff,
    SetFileKind, SetKey, SignerGroup, digest, rotate_keys, rotate_roles,
};
use castellan_sig::{SIGNERS_NAMESPACE, SignerConfig, SignerSet, verify_rotation};
use clap::Subcommand;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::op::{DecodedSig, SigInfo, describe_signatures};

/// `castellan signers` subcommands.
#[derive(Debug, Subcommand)]
pub enum SignersCommand {
    /// Write the next version of the signer set (to sign with `castellan signers sign`):
    /// the set in force with keys added or removed and thresholds changed.
    Propose {
        /// The set in force: the agent's signers.toml (version 1) or the signer-set
        /// document last put in force.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Add a key: 'PRINCIPAL ROLE KEY', ROLE one of operational, recovery, reviewer,
        /// KEY an OpenSSH public key line or a .pub file (repeatable).
        #[arg(long = "add-key", value_name = "'PRINCIPAL ROLE KEY'")]
        add_keys: Vec<String>,
        /// Remove every key of PRINCIPAL, or the one key with this SHA256:... fingerprint
        /// (repeatable).
        #[arg(long = "remove", value_name = "PRINCIPAL|SHA256:...")]
        remove: Vec<String>,
        /// Set a threshold, OP=N distinct keys (repeatable): rotate_keys=2, destroy=2.
        #[arg(long = "threshold", value_name = "OP=N")]
        thresholds: Vec<String>,
        /// Write the new set to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Sign a signer-set document with ssh-keygen (`ssh-keygen -Y sign -n
    /// castellan-signers`).
    Sign {
        /// The signer-set document.
        file: PathBuf,
        /// The signing key: a private key file, or a public key (`.pub`) whose private
        /// half is in the ssh-agent at SSH_AUTH_SOCK (agent-held and FIDO keys).
        #[arg(long, short = 'k')]
        key: PathBuf,
        /// Sign with the ssh-agent: needs SSH_AUTH_SOCK; for a private key path, its
        /// `.pub` beside it is used, so the private key file is never read.
        #[arg(long)]
        agent: bool,
    },
    /// Say what a signer-set document holds, what it changes, which signatures lie beside
    /// it and whether the set in force would accept it.
    Show {
        /// The signer-set document; its signatures are read from FILE.sig, FILE.2.sig, ...
        file: PathBuf,
        /// The set in force to compare with and judge against (signers.toml or a
        /// signer-set document).
        #[arg(long, value_name = "FILE")]
        current: Option<PathBuf>,
        /// A further signature file (repeatable).
        #[arg(long = "sig", value_name = "FILE")]
        sigs: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `castellan signers` subcommand.
pub fn run(cmd: SignersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SignersCommand::Propose {
            from,
            add_keys,
            remove,
            thresholds,
            output,
            force,
        } => {
            let edits = Edits {
                add: add_keys
                    .iter()
                    .map(|s| parse_add_key(s))
                    .collect::<anyhow::Result<_>>()?,
                remove,
                thresholds: parse_thresholds(&thresholds)?,
            };
            propose_cmd(&from, &edits, output.as_deref(), force)
        }
        SignersCommand::Sign { file, key, agent } => sign_cmd(&file, &key, agent),
        SignersCommand::Show {
            file,
            current,
            sigs,
            json,
        } => show_cmd(&file, current.as_deref(), &sigs, json),
    }
}

// ---- the set in force --------------------------------------------------------------------

/// The set in force, as read from a signers.toml or a signer-set document.
#[derive(Debug, Clone)]
pub struct InForce {
    /// The file.
    pub path: PathBuf,
    /// What the file is.
    pub kind: SetFileKind,
    /// Its version: 1 for a signers.toml.
    pub version: u64,
    /// The configuration the gate uses.
    pub config: SignerConfig,
    /// The document, when the file is one.
    pub set: Option<SignerSet>,
}

impl InForce {
    /// Reads the set in force from `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = read_regular(path, MAX_SIGNER_SET_BYTES as u64)
            .with_context(|| format!("cannot read the set in force {}", path.display()))?;
        let kind = SetFileKind::of(&String::from_utf8_lossy(&bytes));
        match kind {
            SetFileKind::SignersToml => {
                let config = SignerConfig::load(path)?;
                Ok(Self {
                    path: path.to_owned(),
                    kind,
                    version: BOOTSTRAP_VERSION,
                    config,
                    set: None,
                })
            }
            SetFileKind::SignerSet => {
                let set = SignerSet::parse(&bytes).map_err(|e| e.with_path(path))?;
                let config = set.to_config().map_err(|e| e.with_path(path))?;
                Ok(Self {
                    path: path.to_owned(),
                    kind,
                    version: set.version,
                    config,
                    set: Some(set),
                })
            }
        }
    }

    /// `signers.toml, version 1` / `signer set version 3`, with the file.
    pub fn describe(&self) -> String {
        match self.kind {
            SetFileKind::SignersToml => format!(
                "version {} ({}, a signers.toml)",
                self.version,
                self.path.display()
            ),
            SetFileKind::SignerSet => {
                format!("version {} ({})", self.version, self.path.display())
            }
        }
    }

    /// The set in force as a document (a signers.toml written out as version 1).
    pub fn as_set(&self) -> anyhow::Result<SignerSet> {
        match &self.set {
            Some(s) => Ok(s.clone()),
            None => SignerSet::from_config(&self.config, self.version).with_context(|| {
                format!("cannot write {} out as a signer set", self.path.display())
            }),
        }
    }
}

// ---- signers propose ----------------------------------------------------------------------

/// Where a key to add comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An OpenSSH public key line.
    Line(String),
    /// A `.pub` file.
    File(PathBuf),
}

/// One `--add-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddKey {
    /// The principal.
    pub principal: String,
    /// The role.
    pub role: Role,
    /// The public key.
    pub key: KeySource,
}

/// What `propose` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Keys to add.
    pub add: Vec<AddKey>,
    /// Principals or `SHA256:` fingerprints to remove.
    pub remove: Vec<String>,
    /// Thresholds to set.
    pub thresholds: BTreeMap<String, u32>,
}

fn split_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace)?;
    Some((&s[..end], s[end..].trim_start()))
}

/// Whether `s` starts like an OpenSSH public key line (a key type word, then more).
fn looks_like_key_line(s: &str) -> bool {
    split_word(s).is_some_and(|(ty, rest)| {
        !rest.is_empty()
            && (ty.starts_with("ssh-") || ty.starts_with("ecdsa-sha2-") || ty.starts_with("sk-"))
    })
}

/// Parses `--add-key 'PRINCIPAL ROLE KEY'`: KEY is a public key line when it starts with a
/// key type (`ssh-ed25519 AAAA...`), else a file.
pub fn parse_add_key(spec: &str) -> anyhow::Result<AddKey> {
    let usage = || {
        anyhow!(
            "--add-key {spec:?} is not 'PRINCIPAL ROLE KEY' (KEY: an OpenSSH public key line or a .pub file)"
        )
    };
    let (principal, rest) = split_word(spec).ok_or_else(usage)?;
    let (role, key) = split_word(rest).ok_or_else(usage)?;
    let key = key.trim();
    if key.is_empty() {
        return Err(usage());
    }
    let role = role
        .parse::<Role>()
        .map_err(|e| anyhow!("--add-key {spec:?}: {e}"))?;
    let key = if looks_like_key_line(key) {
        KeySource::Line(key.to_owned())
    } else {
        KeySource::File(PathBuf::from(key))
    };
    Ok(AddKey {
        principal: principal.to_owned(),
        role,
        key,
    })
}

/// Parses the `--threshold OP=N` values (each operation at most once, N at least 1).
pub fn parse_thresholds(specs: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (op, n) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--threshold {spec:?} is not OP=N (rotate_keys=2)"))?;
        let n: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| anyhow!("--threshold {spec:?}: N is a whole number from 1"))?;
        if out.insert(op.trim().to_owned(), n).is_some() {
            bail!("--threshold {op} is given twice");
        }
    }
    Ok(out)
}

/// The next version of `base` with `edits` applied (keys removed, then added, then
/// thresholds set), validated. `read_key` reads a `.pub` file named by `--add-key`.
pub fn apply_edits(
    base: &SignerSet,
    edits: &Edits,
    read_key: &dyn Fn(&Path) -> anyhow::Result<String>,
) -> anyhow::Result<SignerSet> {
    let mut set = base.clone();
    set.version = base
        .version
        .checked_add(1)
        .ok_or_else(|| anyhow!("version {} is the last there can be", base.version))?;
    for r in &edits.remove {
        let before = set.keys.len();
        if r.starts_with("SHA256:") {
            set.keys.retain(|k| k.fingerprint != *r);
        } else {
            set.keys.retain(|k| k.principal != *r);
        }
        if set.keys.len() == before {
            let have: Vec<String> = base
                .keys
                .iter()
                .map(|k| format!("{} ({})", k.principal, k.fingerprint))
                .collect();
            bail!(
                "--remove {r}: no such key in version {} (it holds {})",
                base.version,
                have.join(", ")
            );
        }
    }
    for add in &edits.add {
        let line = match &add.key {
            KeySource::Line(l) => l.clone(),
            KeySource::File(p) => read_key(p)?,
        };
        let key = SetKey::new(&add.principal, add.role, &line)
            .with_context(|| format!("--add-key {} {}", add.principal, add.role))?;
        set.keys.push(key);
    }
    for (op, n) in &edits.thresholds {
        set.thresholds.insert(op.clone(), *n);
    }
    set.validate()
        .map_err(|e| anyhow!("the new set would be refused: {e}"))
}

/// `~/...` under `$HOME`: `--add-key` takes the whole spec as one quoted word, where the
/// shell does not expand it.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_owned(),
    }
}

/// Reads a public key file: its first line that is not blank or a comment.
fn read_pub_file(path: &Path) -> anyhow::Result<String> {
    let path = &expand_home(path);
    let bytes = read_regular(path, 64 * 1024).map_err(|e| match e {
        FileProblem::NotFound => anyhow!("{}: public key file not found", path.display()),
        e => anyhow!("cannot read public key file {}: {e}", path.display()),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{} is not a public key file (not text)", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} holds no public key", path.display()))
}

fn propose_cmd(
    from: &Path,
    edits: &Edits,
    output: Option<&Path>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let in_force = InForce::load(from)?;
    let base = in_force.as_set()?;
    let new = apply_edits(&base, edits, &read_pub_file)?;
    let text = new.render()?;
    // What is written is what was checked.
    let reread = SignerSet::parse(text.as_bytes())?;
    if reread != new {
        bail!("internal error: the rendered set does not read back as the set checked");
    }
    let new_config = new.to_config()?;
    let left_out: Vec<&str> = in_force
        .config
        .allowed
        .entries
        .iter()
        .filter(|e| base.keys.iter().all(|k| k.fingerprint != e.fingerprint))
        .map(|e| e.fingerprint.as_str())
        .collect();
    let Some(path) = output else {
        crate::out!("{text}")?;
        return Ok(ExitCode::SUCCESS);
    };
    crate::op::write_new(path, text.as_bytes(), force)?;
    let diff = SetDiff::between(&in_force.config, &new_config);
    eprintln!(
        "wrote {}: signer set version {}, replacing {}: {} key(s) ({} added, {} removed, {} changed), digest sha256:{}",
        path.display(),
        new.version,
        in_force.describe(),
        new.keys.len(),
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len(),
        digest(text.as_bytes())
    );
    if !left_out.is_empty() {
        eprintln!(
            "note: {} hold(s) no role in {} and so authorise(s) nothing: left out of the set: {}",
            if left_out.len() == 1 {
                "one key"
            } else {
                "some keys"
            },
            from.display(),
            left_out.join(", ")
        );
    }
    let stale: Vec<String> = (1..=MAX_SIGS)
        .map(|n| castellan_sig::sign::signature_path(path, n))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !stale.is_empty() {
        eprintln!(
            "warning: signatures made over the previous content are still beside it and will not verify: {}",
            stale.join(", ")
        );
    }
    eprintln!(
        "it takes effect once signed by {} key(s) of the set in force and {} of the new set, each with role {}:",
        in_force.config.threshold(rotate_keys()).max(1),
        new.threshold(rotate_keys()),
        roles_words(rotate_roles())
    );
    eprintln!(
        "  castellan signers sign {} --key ~/.ssh/id_ed25519",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn roles_words(roles: &[Role]) -> String {
    roles
        .iter()
        .map(Role::as_str)
        .collect::<Vec<_>>()
        .join(" or ")
}

// ---- signers sign -------------------------------------------------------------------------

fn read_set(path: &Path) -> anyhow::Result<(Vec<u8>, SignerSet)> {
    let bytes = read_regular(path, MAX_SIGNER_SET_BYTES as u64)
        .with_context(|| format!("cannot read signer set {}", path.display()))?;
    let set = SignerSet::parse(&bytes).map_err(|e| e.with_path(path))?;
    Ok((bytes, set))
}

fn sign_cmd(file: &Path, key: &Path, agent: bool) -> anyhow::Result<ExitCode> {
    let (bytes, set) = read_set(file).context("refusing to sign")?;
    // The key is checked before anything is printed or written.
    let opts = crate::keys::sign_options(key, agent).context("refusing to sign")?;
    eprintln!(
        "signing {}: signer set version {}, {} key(s), digest sha256:{}",
        file.display(),
        set.version,
        set.keys.len(),
        digest(&bytes)
    );
    let sig = crate::keys::sign(&opts, SIGNERS_NAMESPACE, file)?;
    // The signature covers what ssh-keygen read; make sure that is what was checked.
    let signed_now =
        std::fs::read(file).with_context(|| format!("cannot re-read {}", file.display()))?;
    if signed_now != bytes {
        let _ = std::fs::remove_file(&sig);
        bail!(
            "{} changed while it was being signed; signature removed",
            file.display()
        );
    }
    eprintln!(
        "wrote the signature to {}; see where the set stands with: castellan signers show {} --current CURRENT",
        sig.display(),
        file.display()
    );
    outln!("{}", sig.display())?;
    Ok(ExitCode::SUCCESS)
}

// ---- signers show -------------------------------------------------------------------------

/// The set in force as `show` compares with it.
#[derive(Debug, Clone)]
pub struct Compared {
    /// How to name it (`version 1 (signers.toml, a signers.toml)`).
    pub label: String,
    /// Its version.
    pub version: u64,
    /// How the signatures fared against its keys.
    pub report: GroupReport,
    /// What changes from it.
    pub diff: SetDiff,
    /// Whether it would accept the new set now: `Ok(())`, or the refusal's reason word
    /// and message.
    pub verdict: Result<(), (String, String)>,
}

/// Everything `signers show` prints.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The document's file.
    pub path: PathBuf,
    /// The document.
    pub set: SignerSet,
    /// SHA-256 of its bytes.
    pub digest: String,
    /// The signatures that could be read, decoded (not verified), in order.
    pub sigs: Vec<SigInfo>,
    /// Signature files that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
    /// How the signatures fared against the new set's keys.
    pub new_report: GroupReport,
    /// The comparison with the set in force, when one was given.
    pub current: Option<Compared>,
}

fn key_note(
    namespaces: &Option<Vec<String>>,
    after: Option<Timestamp>,
    before: Option<Timestamp>,
) -> String {
    let mut notes = Vec::new();
    if let Some(ns) = namespaces {
        notes.push(format!("namespaces {}", ns.join(",")));
    }
    if let Some(t) = after {
        notes.push(format!("valid from {t}"));
    }
    if let Some(t) = before {
        notes.push(format!("valid before {t}"));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join(", "))
    }
}

fn view_line(v: &KeyView) -> String {
    let roles: Vec<&str> = v.roles.iter().map(Role::as_str).collect();
    format!(
        "{}  {}  {} {}{}",
        v.principals.join(","),
        if roles.is_empty() {
            "no role".to_owned()
        } else {
            roles.join(",")
        },
        v.key_type,
        v.fingerprint,
        key_note(&v.namespaces, v.valid_after, v.valid_before)
    )
}

/// One group's verdict on one signature, in words.
pub fn check_words(c: &GroupCheck) -> String {
    match c {
        GroupCheck::Counted {
            principals, roles, ..
        } => format!(
            "counts ({}: {})",
            principals.join(","),
            roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
        ),
        GroupCheck::Repeated { .. } => "the same key again: counts once".to_owned(),
        GroupCheck::WrongRole {
            principals, roles, ..
        } => format!(
            "counts for nothing ({}: {}; a rotation needs {})",
            principals.join(","),
            if roles.is_empty() {
                "no role".to_owned()
            } else {
                roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
            },
            roles_words(rotate_roles())
        ),
        GroupCheck::Rejected(r) => format!("refused: {r}"),
    }
}

fn tally_words(r: &GroupReport) -> String {
    format!(
        "{} needs {} distinct key(s), {} counted: {}",
        rotate_keys(),
        r.needed,
        r.counted(),
        if r.met() { "met" } else { "not met" }
    )
}

/// The human-readable `signers show` text.
pub fn show_text(s: &Shown) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "signer set:   {}", s.path.display());
    match &s.current {
        Some(c) => {
            let _ = writeln!(o, "version:      {} (replacing {})", s.set.version, c.label);
        }
        None => {
            let _ = writeln!(
                o,
                "version:      {} (not compared: give --current FILE)",
                s.set.version
            );
        }
    }
    let _ = writeln!(o, "digest:       sha256:{}", s.digest);
    let _ = writeln!(o, "keys:         {}", s.set.keys.len());
    let width = s
        .set
        .keys
        .iter()
        .map(|k| k.principal.chars().count())
        .max()
        .unwrap_or(0);
    for k in &s.set.keys {
        let _ = writeln!(
            o,
            "  {:<width$}  {:<11}  {} {}{}",
            k.principal,
            k.role.as_str(),
            k.public_key.algorithm(),
            k.fingerprint,
            key_note(&k.namespaces, k.valid_after, k.valid_before)
        );
    }
    let mut names: Vec<String> = s
        .set
        .thresholds
        .iter()
        .map(|(op, n)| format!("{op}={n}"))
        .collect();
    if !s.set.thresholds.contains_key(rotate_keys()) {
        names.push(format!("{}=1 (default)", rotate_keys()));
    }
    // The operation table's other defaults above 1 (a decommission's two keys).
    for op in castellan_core::Operation::all() {
        let n = op.spec().default_threshold;
        if n > 1 && !s.set.thresholds.contains_key(op.as_str()) {
            names.push(format!("{op}={n} (default)"));
        }
    }
    let _ = writeln!(
        o,
        "thresholds:   {} (any other operation: 1)",
        names.join(" ")
    );
    if let Some(c) = &s.current {
        let d = &c.diff;
        if d.is_empty() {
            let _ = writeln!(o, "changes:      none against version {}", c.version);
        } else {
            let _ = writeln!(o, "changes against version {}:", c.version);
            for v in &d.added {
                let _ = writeln!(o, "  added    {}", view_line(v));
            }
            for v in &d.removed {
                let _ = writeln!(
                    o,
                    "  removed  {}  (refused once version {} is in force)",
                    view_line(v),
                    s.set.version
                );
            }
            for (a, b) in &d.changed {
                let _ = writeln!(o, "  changed  {}", view_line(a));
                let _ = writeln!(o, "       to  {}", view_line(b));
            }
            for (name, a, b) in &d.thresholds {
                let _ = writeln!(o, "  threshold {name}: {a} -> {b}");
            }
        }
    }
    let found = s.sigs.len() + s.unreadable.len();
    if found == 0 {
        let _ = writeln!(
            o,
            "signatures:   none (sign with `castellan signers sign {} --key KEY`)",
            s.path.display()
        );
    } else {
        let _ = writeln!(o, "signatures:   {found} found");
        for (i, sig) in s.sigs.iter().enumerate() {
            let what = match &sig.decoded {
                Ok(DecodedSig {
                    key_type,
                    fingerprint,
                    namespace,
                }) => {
                    let ns = if namespace == SIGNERS_NAMESPACE {
                        String::new()
                    } else {
                        format!(" (namespace {namespace:?}: not a signer-set signature)")
                    };
                    format!("{key_type} {fingerprint}{ns}")
                }
                Err(e) => format!("undecodable: {e}"),
            };
            // Numbered as the verdict numbers them.
            let _ = writeln!(o, "  {}. {}  {what}", i + 1, sig.path.display());
            if let Some(c) = &s.current
                && let Some(check) = c.report.checks.get(i)
            {
                let _ = writeln!(o, "      set in force: {}", check_words(check));
            }
            if let Some(check) = s.new_report.checks.get(i) {
                let _ = writeln!(o, "      new set:      {}", check_words(check));
            }
        }
        for (path, why) in &s.unreadable {
            let _ = writeln!(o, "  {}  unreadable: {why}", path.display());
        }
    }
    if let Some(c) = &s.current {
        let _ = writeln!(
            o,
            "set in force: version {}: {}",
            c.version,
            tally_words(&c.report)
        );
    }
    let _ = writeln!(
        o,
        "new set:      version {}: {}",
        s.set.version,
        tally_words(&s.new_report)
    );
    match &s.current {
        Some(Compared {
            verdict: Ok(()),
            version,
            ..
        }) => {
            let _ = writeln!(
                o,
                "verdict:      accepted: version {} would replace version {version}",
                s.set.version
            );
        }
        Some(Compared {
            verdict: Err((reason, detail)),
            ..
        }) => {
            let _ = writeln!(o, "verdict:      refused: {reason}: {detail}");
        }
        None => {
            let _ = writeln!(
                o,
                "verdict:      not judged (give --current FILE: the set in force)"
            );
        }
    }
    o
}

fn view_json(v: &KeyView) -> Value {
    json!({
        "fingerprint": v.fingerprint,
        "key_type": v.key_type,
        "principals": v.principals,
        "roles": v.roles.iter().map(Role::as_str).collect::<Vec<_>>(),
        "namespaces": v.namespaces,
        "valid_after": v.valid_after.map(|t| t.to_string()),
        "valid_before": v.valid_before.map(|t| t.to_string()),
    })
}

fn check_json(c: &GroupCheck) -> Value {
    match c {
        GroupCheck::Counted {
            fingerprint,
            principals,
            roles,
        } => json!({
            "status": "counted",
            "fingerprint": fingerprint,
            "principals": principals,
            "roles": roles.iter().map(Role::as_str).collect::<Vec<_>>(),
        }),
        GroupCheck::Repeated { fingerprint } => json!({
            "status": "repeated",
            "fingerprint": fingerprint,
        }),
        GroupCheck::WrongRole {
            fingerprint,
            principals,
            roles,
        } => json!({
            "status": "wrong_role",
            "fingerprint": fingerprint,
            "principals": principals,
            "roles": roles.iter().map(Role::as_str).collect::<Vec<_>>(),
        }),
        GroupCheck::Rejected(r) => json!({
            "status": "rejected",
            "reason": r.reason.as_str(),
            "detail": r.detail,
        }),
    }
}

fn tally_json(r: &GroupReport) -> Value {
    json!({
        "version": r.version,
        "needed": r.needed,
        "counted": r.counted(),
        "met": r.met(),
        "signers": r.signers(),
    })
}

/// The `signers show --json` document.
pub fn show_json(s: &Shown) -> Value {
    let keys: Vec<Value> = s
        .set
        .keys
        .iter()
        .map(|k| {
            json!({
                "principal": k.principal,
                "role": k.role.as_str(),
                "key_type": k.public_key.algorithm().to_string(),
                "fingerprint": k.fingerprint,
                "namespaces": k.namespaces,
                "valid_after": k.valid_after.map(|t| t.to_string()),
                "valid_before": k.valid_before.map(|t| t.to_string()),
            })
        })
        .collect();
    let mut sigs: Vec<Value> = s
        .sigs
        .iter()
        .enumerate()
        .map(|(i, sig)| {
            let mut v = match &sig.decoded {
                Ok(d) => json!({
                    "file": sig.path.display().to_string(),
                    "key_type": d.key_type,
                    "fingerprint": d.fingerprint,
                    "namespace": d.namespace,
                }),
                Err(e) => json!({
                    "file": sig.path.display().to_string(),
                    "error": e,
                }),
            };
            v["in_force"] = s
                .current
                .as_ref()
                .and_then(|c| c.report.checks.get(i))
                .map_or(Value::Null, check_json);
            v["new"] = s.new_report.checks.get(i).map_or(Value::Null, check_json);
            v
        })
        .collect();
    sigs.extend(s.unreadable.iter().map(|(p, why)| {
        json!({
            "file": p.display().to_string(),
            "error": why,
            "in_force": Value::Null,
            "new": Value::Null,
        })
    }));
    let current = s.current.as_ref().map(|c| {
        let d = &c.diff;
        json!({
            "set": c.label,
            "tally": tally_json(&c.report),
            "changes": {
                "added": d.added.iter().map(view_json).collect::<Vec<_>>(),
                "removed": d.removed.iter().map(view_json).collect::<Vec<_>>(),
                "changed": d.changed.iter().map(|(a, b)| json!({"before": view_json(a), "after": view_json(b)})).collect::<Vec<_>>(),
                "thresholds": d.thresholds.iter().map(|(n, a, b)| json!({"operation": n, "before": a, "after": b})).collect::<Vec<_>>(),
            },
            "verdict": match &c.verdict {
                Ok(()) => json!({"accepted": true}),
                Err((reason, detail)) => json!({"accepted": false, "reason": reason, "detail": detail}),
            },
        })
    });
    json!({
        "file": s.path.display().to_string(),
        "version": s.set.version,
        "digest": format!("sha256:{}", s.digest),
        "keys": keys,
        "thresholds": s.set.thresholds,
        "rotate_keys": s.set.threshold(rotate_keys()),
        "new": tally_json(&s.new_report),
        "current": current,
        "signatures": sigs,
    })
}

/// Signature files read (path, bytes), and those that could not be (path, why).
type ReadSigs = (Vec<(PathBuf, Vec<u8>)>, Vec<(PathBuf, String)>);

/// Reads the signatures beside `file` (`FILE.sig`, `FILE.2.sig`, ... as `sign` names them)
/// and the extra ones named: those read, and those that could not be.
fn read_sigs(file: &Path, extra: &[PathBuf]) -> anyhow::Result<ReadSigs> {
    let mut read = Vec::new();
    let mut bad = Vec::new();
    for n in 1..=MAX_SIGS {
        let p = castellan_sig::sign::signature_path(file, n);
        match read_regular(&p, MAX_SIG_BYTES) {
            Ok(b) => read.push((p, b)),
            Err(FileProblem::NotFound) if n > 1 => break,
            Err(FileProblem::NotFound) => {}
            Err(e) => bad.push((p, e.to_string())),
        }
    }
    for p in extra {
        match read_regular(p, MAX_SIG_BYTES) {
            Ok(b) => read.push((p.clone(), b)),
            Err(FileProblem::NotFound) => bail!("signature {}: no such file", p.display()),
            Err(e) => bad.push((p.clone(), e.to_string())),
        }
    }
    Ok((read, bad))
}

fn show_cmd(
    file: &Path,
    current: Option<&Path>,
    extra: &[PathBuf],
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let (bytes, set) = read_set(file)?;
    let config = set.to_config()?;
    let in_force = current.map(InForce::load).transpose()?;
    let (sigs, unreadable) = read_sigs(file, extra)?;
    let sig_bytes: Vec<Vec<u8>> = sigs.iter().map(|(_, b)| b.clone()).collect();
    let now = Timestamp::now();
    let new_report = GroupReport::check(
        SignerGroup::New,
        &config,
        set.version,
        &bytes,
        &sig_bytes,
        now,
    );
    let current = in_force.map(|c| Compared {
        label: c.describe(),
        version: c.version,
        report: GroupReport::check(
            SignerGroup::InForce,
            &c.config,
            c.version,
            &bytes,
            &sig_bytes,
            now,
        ),
        diff: SetDiff::between(&c.config, &config),
        verdict: verify_rotation(&c.config, c.version, &bytes, &sig_bytes, now)
            .map(|_| ())
            .map_err(|e| (e.reason().as_str().to_owned(), e.to_string())),
    });
    let shown = Shown {
        path: file.to_owned(),
        digest: digest(&bytes),
        sigs: describe_signatures(&sigs),
        unreadable,
        new_report,
        current,
        set,
    };
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&show_json(&shown))?)?;
    } else {
        crate::out!("{}", show_text(&shown))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use castellan_core::RejectReason;
    use castellan_sig::Rejected;
    use std::collections::BTreeSet;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICAeXPKcJnMTRS9Tg4emm1wS/O+r9jnb/DJ//VlOEkMg";
    const K3: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFOHOMcq022wPoU2tKWVgq6QN5AfQyGXOW1jdKQ+tuoJy3Qg/D0cd895D80Tuk2gdZPhfw4BL/em1qiyDW5bmCg=";

    fn base() -> SignerSet {
        SignerSet {
            version: 1,
            keys: vec![
                SetKey::new("alice@example.com", Role::Operational, K1).unwrap(),
                SetKey::new("bob@example.com", Role::Operational, K2).unwrap(),
            ],
            thresholds: BTreeMap::new(),
        }
        .validate()
        .unwrap()
    }

    fn no_files(p: &Path) -> anyhow::Result<String> {
        bail!("no file {}", p.display())
    }

    #[test]
    fn add_key_forms() {
        let a = parse_add_key(&format!("carol@example.com recovery {K1} carol laptop")).unwrap();
        assert_eq!(a.principal, "carol@example.com");
        assert_eq!(a.role, Role::Recovery);
        assert_eq!(a.key, KeySource::Line(format!("{K1} carol laptop")));
        let a = parse_add_key("  dave  operational  ~/keys/dave.pub ").unwrap();
        assert_eq!(a.key, KeySource::File(PathBuf::from("~/keys/dave.pub")));
        for (bad, want) in [
            ("", "is not 'PRINCIPAL ROLE KEY'"),
            ("alice", "is not 'PRINCIPAL ROLE KEY'"),
            ("alice operational", "is not 'PRINCIPAL ROLE KEY'"),
            ("alice admin key.pub", "unknown role \"admin\""),
        ] {
            let e = parse_add_key(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn threshold_forms() {
        let t = parse_thresholds(&["rotate_keys=2".into(), "destroy = 3".into()]).unwrap();
        assert_eq!(t.get("rotate_keys"), Some(&2));
        assert_eq!(t.get("destroy"), Some(&3));
        for (bad, want) in [
            ("destroy", "is not OP=N"),
            ("destroy=0", "a whole number from 1"),
            ("destroy=two", "a whole number from 1"),
            ("destroy=-1", "a whole number from 1"),
        ] {
            let e = parse_thresholds(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        let e = parse_thresholds(&["destroy=1".into(), "destroy=2".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--threshold destroy is given twice"), "{e}");
    }

    #[test]
    fn edits_make_the_next_version() {
        let edits = Edits {
            add: vec![parse_add_key("carol recovery carol.pub").unwrap()],
            remove: vec!["bob@example.com".into()],
            thresholds: BTreeMap::from([("destroy".into(), 1)]),
        };
        let read = |p: &Path| -> anyhow::Result<String> {
            assert_eq!(p, Path::new("carol.pub"));
            Ok(K2.to_owned())
        };
        let new = apply_edits(&base(), &edits, &read).unwrap();
        assert_eq!(new.version, 2);
        assert_eq!(
            new.keys
                .iter()
                .map(|k| (k.principal.as_str(), k.role))
                .collect::<Vec<_>>(),
            vec![
                ("alice@example.com", Role::Operational),
                ("carol", Role::Recovery)
            ]
        );
        assert_eq!(new.threshold("destroy"), 1);
        // The rendering is what is written: it reads back as the same set.
        let text = new.render().unwrap();
        assert_eq!(SignerSet::parse(text.as_bytes()).unwrap(), new);

        // By fingerprint.
        let fp = base().keys[1].fingerprint.clone();
        let edits = Edits {
            remove: vec![fp],
            ..Edits::default()
        };
        assert_eq!(
            apply_edits(&base(), &edits, &no_files).unwrap().keys.len(),
            1
        );
    }

    #[test]
    fn edits_that_would_be_refused() {
        let cases: Vec<(Edits, &str)> = vec![
            (
                Edits {
                    remove: vec!["mallory".into()],
                    ..Edits::default()
                },
                "--remove mallory: no such key in version 1 (it holds alice@example.com (SHA256:",
            ),
            (
                Edits {
                    remove: vec!["alice@example.com".into(), "bob@example.com".into()],
                    ..Edits::default()
                },
                "the new set would be refused: invalid signer set:\n  no [[key]]",
            ),
            (
                Edits {
                    add: vec![parse_add_key(&format!("eve operational {K1}")).unwrap()],
                    ..Edits::default()
                },
                "the same public key as key #1 (\"alice@example.com\")",
            ),
            (
                Edits {
                    thresholds: BTreeMap::from([("rotate_keys".into(), 3)]),
                    ..Edits::default()
                },
                "thresholds.rotate_keys = 3: only 2 distinct key(s)",
            ),
            (
                Edits {
                    add: vec![parse_add_key("eve operational eve.pub").unwrap()],
                    ..Edits::default()
                },
                "no file eve.pub",
            ),
            (
                Edits {
                    add: vec![parse_add_key("eve operational ssh-ed25519 AAAA").unwrap()],
                    ..Edits::default()
                },
                "--add-key eve operational",
            ),
        ];
        for (edits, want) in cases {
            let e = apply_edits(&base(), &edits, &no_files).unwrap_err();
            let text = crate::error_text(&e);
            assert!(text.contains(want), "{edits:?}\ngot {text}\nwant {want}");
        }
        let mut last = base();
        last.version = u64::MAX;
        let e = apply_edits(&last, &Edits::default(), &no_files).unwrap_err();
        assert!(e.to_string().contains("is the last there can be"), "{e}");
    }

    fn sample_shown(with_current: bool) -> Shown {
        let old = base();
        let mut new = base();
        new.version = 2;
        new.keys.remove(1);
        new.keys
            .push(SetKey::new("carol", Role::Recovery, K3).unwrap());
        new.thresholds.insert("review".into(), 2);
        let new = new.validate().unwrap();
        let fp1 = new.keys[0].fingerprint.clone();
        let fp2 = new.keys[1].fingerprint.clone();
        let counted = |fp: &str, who: &str, role: Role| GroupCheck::Counted {
            fingerprint: fp.to_owned(),
            principals: vec![who.to_owned()],
            roles: BTreeSet::from([role]),
        };
        let sigs = vec![
            SigInfo {
                path: PathBuf::from("next.toml.sig"),
                decoded: Ok(DecodedSig {
                    key_type: "ssh-ed25519".into(),
                    fingerprint: fp1.clone(),
                    namespace: SIGNERS_NAMESPACE.into(),
                }),
            },
            SigInfo {
                path: PathBuf::from("next.toml.2.sig"),
                decoded: Ok(DecodedSig {
                    key_type: "ecdsa-sha2-nistp256".into(),
                    fingerprint: fp2.clone(),
                    namespace: SIGNERS_NAMESPACE.into(),
                }),
            },
        ];
        let new_report = GroupReport {
            group: SignerGroup::New,
            version: 2,
            needed: 1,
            able: 2,
            checks: vec![
                counted(&fp1, "alice@example.com", Role::Operational),
                counted(&fp2, "carol", Role::Recovery),
            ],
        };
        let old_report = GroupReport {
            group: SignerGroup::InForce,
            version: 1,
            needed: 2,
            able: 2,
            checks: vec![
                counted(&fp1, "alice@example.com", Role::Operational),
                GroupCheck::Rejected(Rejected::new(
                    RejectReason::UnknownSigner,
                    format!("no allowed_signers entry for key {fp2}"),
                )),
            ],
        };
        let current = with_current.then(|| Compared {
            label: "version 1 (signers.toml, a signers.toml)".into(),
            version: 1,
            diff: SetDiff::between(&old.to_config().unwrap(), &new.to_config().unwrap()),
            verdict: Err(("threshold_not_met".into(), old_report.shortfall())),
            report: old_report,
        });
        Shown {
            path: PathBuf::from("next.toml"),
            digest: "ab".repeat(32),
            set: new,
            sigs,
            unreadable: vec![(
                PathBuf::from("next.toml.3.sig"),
                "larger than 65536 bytes".into(),
            )],
            new_report,
            current,
        }
    }

    #[test]
    fn show_says_what_changes_and_who_signed() {
        let s = sample_shown(true);
        let text = show_text(&s);
        let fp2 = s.set.keys[1].fingerprint.clone();
        for want in [
            "signer set:   next.toml\n",
            "version:      2 (replacing version 1 (signers.toml, a signers.toml))\n",
            &format!("digest:       sha256:{}\n", "ab".repeat(32)),
            "keys:         2\n",
            "  alice@example.com  operational  ssh-ed25519 SHA256:",
            "  carol              recovery     ecdsa-sha2-nistp256 SHA256:",
            "thresholds:   review=2 rotate_keys=1 (default) decommission=2 (default) (any other operation: 1)\n",
            "changes against version 1:\n",
            &format!("  added    carol  recovery  ecdsa-sha2-nistp256 {fp2}\n"),
            "  threshold review: 1 -> 2\n",
            "  removed  bob@example.com  operational  ssh-ed25519 SHA256:",
            "(refused once version 2 is in force)\n",
            "signatures:   3 found\n",
            "  1. next.toml.sig  ssh-ed25519 SHA256:",
            "  2. next.toml.2.sig  ecdsa-sha2-nistp256 SHA256:",
            "      set in force: counts (alice@example.com: operational)\n",
            "      new set:      counts (alice@example.com: operational)\n",
            &format!(
                "      set in force: refused: unknown_signer: no allowed_signers entry for key {fp2}\n"
            ),
            "      new set:      counts (carol: recovery)\n",
            "  next.toml.3.sig  unreadable: larger than 65536 bytes\n",
            "set in force: version 1: rotate_keys needs 2 distinct key(s), 1 counted: not met\n",
            "new set:      version 2: rotate_keys needs 1 distinct key(s), 2 counted: met\n",
            "verdict:      refused: threshold_not_met: too few signatures by the set in force (version 1): rotate_keys needs 2 distinct key(s) with role operational or recovery, got 1 of 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }

        let text = show_text(&sample_shown(false));
        assert!(
            text.contains("version:      2 (not compared: give --current FILE)\n"),
            "{text}"
        );
        assert!(!text.contains("      set in force:"), "{text}");
        assert!(
            text.contains("verdict:      not judged (give --current FILE: the set in force)"),
            "{text}"
        );
    }

    #[test]
    fn show_json_has_the_same_facts() {
        let s = sample_shown(true);
        let j = show_json(&s);
        assert_eq!(j["version"], 2);
        assert_eq!(j["digest"], format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(j["keys"][1]["principal"], "carol");
        assert_eq!(j["keys"][1]["role"], "recovery");
        assert_eq!(j["thresholds"]["review"], 2);
        assert_eq!(j["rotate_keys"], 1);
        assert_eq!(j["new"]["met"], true);
        assert_eq!(j["current"]["tally"]["met"], false);
        assert_eq!(j["current"]["tally"]["counted"], 1);
        assert_eq!(
            j["current"]["changes"]["removed"][0]["principals"][0],
            "bob@example.com"
        );
        assert_eq!(
            j["current"]["changes"]["thresholds"][0]["operation"],
            "review"
        );
        assert_eq!(j["current"]["changes"]["thresholds"][0]["after"], 2);
        assert_eq!(j["current"]["verdict"]["accepted"], false);
        assert_eq!(j["current"]["verdict"]["reason"], "threshold_not_met");
        assert_eq!(j["signatures"][0]["in_force"]["status"], "counted");
        assert_eq!(j["signatures"][1]["in_force"]["status"], "rejected");
        assert_eq!(j["signatures"][1]["in_force"]["reason"], "unknown_signer");
        assert_eq!(j["signatures"][1]["new"]["status"], "counted");
        assert_eq!(j["signatures"][2]["error"], "larger than 65536 bytes");
        let j = show_json(&sample_shown(false));
        assert!(j["current"].is_null());
        assert!(j["signatures"][0]["in_force"].is_null());
    }

    #[test]
    fn show_names_a_key_whose_role_changes() {
        let mut s = sample_shown(true);
        let mut new = base();
        new.version = 2;
        new.keys[1].role = Role::Recovery;
        let c = s.current.as_mut().unwrap();
        c.diff = SetDiff::between(&base().to_config().unwrap(), &new.to_config().unwrap());
        let text = show_text(&s);
        assert!(
            text.contains("  changed  bob@example.com  operational  ssh-ed25519 SHA256:"),
            "{text}"
        );
        assert!(
            text.contains("       to  bob@example.com  recovery  ssh-ed25519 SHA256:"),
            "{text}"
        );
    }

    #[test]
    fn check_words_name_the_role() {
        let c = GroupCheck::WrongRole {
            fingerprint: "SHA256:x".into(),
            principals: vec!["carol".into()],
            roles: BTreeSet::from([Role::Reviewer]),
        };
        assert_eq!(
            check_words(&c),
            "counts for nothing (carol: reviewer; a rotation needs operational or recovery)"
        );
        assert_eq!(
            check_words(&GroupCheck::Repeated {
                fingerprint: "SHA256:x".into()
            }),
            "the same key again: counts once"
        );
    }
}
