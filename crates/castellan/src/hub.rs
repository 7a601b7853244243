//! `castellan hub` (serve, enrolment tokens, operator tokens, revocation) and the
//! operator's commands that talk to a hub: `castellan apply`, `castellan status`,
//! `castellan op submit --hub`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, PgStore, SqliteStore, tls};
use castellan_pve::{Fingerprint, TlsMode};
use clap::{Args, Subcommand};
use jiff::Timestamp;

/// How the hub serves.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// A certificate chain (PEM) to serve instead of the self-signed one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A further name or address for the self-signed certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
}

/// Where the hub keeps its state.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The hub's data directory (its SQLite database unless --database-url is given, and
    /// its self-signed certificate).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/castellan-hub")]
    pub data_dir: PathBuf,
    /// A PostgreSQL database instead of SQLite, `postgres://user@host/db` (several hubs
    /// may share one). Prefer the environment variable: a password on the command line
    /// is visible to every local user.
    #[arg(
        long,
        value_name = "URL",
        env = "CASTELLAN_HUB_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

/// `castellan hub` subcommands (without one, the hub serves).
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Make a one-time token with which an agent enrols (printed once, on stdout).
    EnrolToken {
        /// The host it is for (its node name).
        #[arg(long)]
        host: String,
        /// How long it stays valid: `30m`, `24h`, `7d` at most.
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Operator API tokens.
    OperatorToken {
        /// What to do.
        #[command(subcommand)]
        command: OperatorTokenCommand,
    },
    /// Start a host's audit chain afresh once its problems are understood (a reinstalled
    /// host, an agent restarted with --accept-state-loss): the chain the hub verified is
    /// archived, not deleted, its problems cleared, and the next upload starts at record 1.
    AuditReset {
        /// The host.
        #[arg(long)]
        host: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a host's credential: its agent is refused until it enrols again.
    RevokeHost {
        /// The host.
        host: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `castellan hub operator-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// Make an API token for an operator (printed once, on stdout).
    Create {
        /// The operator's name (recorded as the author of what they write).
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an operator's token.
    Revoke {
        /// The operator's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// How an operator command reaches the hub. The token is never taken from the command
/// line (where `ps` would show it): from a file, or from `CASTELLAN_HUB_TOKEN`.
#[derive(Debug, Clone, Args)]
pub struct HubArgs {
    /// The hub's URL, `https://hub:8443`.
    #[arg(long = "hub", value_name = "URL", env = "CASTELLAN_HUB")]
    pub url: Option<String>,
    /// The SHA-256 fingerprint of the hub's certificate (what `castellan hub` prints).
    #[arg(
        long = "hub-fingerprint",
        value_name = "FP",
        env = "CASTELLAN_HUB_FINGERPRINT"
    )]
    pub fingerprint: Option<String>,
    /// A CA certificate (PEM) that issued the hub's certificate.
    #[arg(long = "hub-ca", value_name = "FILE", conflicts_with = "fingerprint")]
    pub ca: Option<PathBuf>,
    /// A file holding the operator token (default: the CASTELLAN_HUB_TOKEN variable).
    #[arg(long, value_name = "FILE", env = "CASTELLAN_HUB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl HubArgs {
    /// A client for the hub, with the operator's token.
    pub fn client(&self) -> anyhow::Result<HubClient> {
        let url = self
            .url
            .as_deref()
            .ok_or_else(|| anyhow!("no hub: give --hub URL or set CASTELLAN_HUB"))?;
        let url: url::Url = url
            .parse()
            .with_context(|| format!("--hub {url:?} is not a URL"))?;
        let tls = match (&self.fingerprint, &self.ca) {
            (Some(fp), _) => TlsMode::Fingerprint(
                fp.parse::<Fingerprint>()
                    .map_err(|e| anyhow!("--hub-fingerprint: {e}"))?,
            ),
            (None, Some(ca)) => TlsMode::CaFile(ca.clone()),
            (None, None) => TlsMode::System,
        };
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?
                .trim()
                .to_owned(),
            None => std::env::var("CASTELLAN_HUB_TOKEN").map_err(|_| {
                anyhow!("no operator token: give --token-file FILE or set CASTELLAN_HUB_TOKEN")
            })?,
        };
        Ok(HubClient::new(url, &tls)?.with_token(token))
    }
}

fn open_sqlite(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    create_private_dir(data_dir)?;
    SqliteStore::open(data_dir)
        .with_context(|| format!("hub data directory {}", data_dir.display()))
}

async fn open_pg(url: &str) -> anyhow::Result<PgStore> {
    // The URL is never printed: it may hold a password.
    PgStore::connect(url)
        .await
        .context("the hub's PostgreSQL database")
}

/// Creates the data directory readable by its owner only (it holds the hub's key).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
}

/// Runs `castellan hub` with a subcommand.
pub async fn run(command: HubCommand) -> anyhow::Result<ExitCode> {
    let store =
        match &command {
            HubCommand::EnrolToken { store, .. }
            | HubCommand::RevokeHost { store, .. }
            | HubCommand::AuditReset { store, .. } => store,
            HubCommand::OperatorToken {
                command:
                    OperatorTokenCommand::Create { store, .. }
                    | OperatorTokenCommand::Revoke { store, .. },
            } => store,
        }
        .clone();
    match &store.database_url {
        Some(url) => admin(&open_pg(url).await?, command).await,
        None => admin(&open_sqlite(&store.data_dir)?, command).await,
    }
}

async fn admin<S: HubStore>(store: &S, command: HubCommand) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    match command {
        HubCommand::EnrolToken { host, ttl, .. } => {
            if !castellan_core::op::valid_host(&host) {
                bail!("{host:?} is not a valid host name");
            }
            let ttl = crate::op::parse_ttl(&ttl)?;
            let token = Token::generate(TokenKind::Enrol);
            store
                .create_enrol_token(&host, token.hash(), now, now + ttl)
                .await?;
            eprintln!(
                "enrolment token for {host}, valid for {} (once): put it in the agent's [hub] enrol_token_file",
                crate::op::human_duration(ttl)
            );
            outln!("{}", token.reveal())?;
        }
        HubCommand::OperatorToken { command } => match command {
            OperatorTokenCommand::Create { name, .. } => {
                if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
                    bail!("{name:?} is not a usable operator name (1 to 64 printable characters)");
                }
                let token = Token::generate(TokenKind::Operator);
                store
                    .create_operator_token(&name, token.hash(), now)
                    .await?;
                eprintln!(
                    "operator token for {name} (shown once; keep it in a file only you can read):"
                );
                outln!("{}", token.reveal())?;
            }
            OperatorTokenCommand::Revoke { name, .. } => {
                store.revoke_operator(&name, now).await?;
                outln!("revoked the token of {name}")?;
            }
        },
        HubCommand::AuditReset { host, .. } => {
            if store.host(&host).await?.is_none() {
                bail!("the hub knows no host {host:?}");
            }
            let n = store.reset_audit(&host, now).await?;
            tracing::warn!(event = "audit_chain_reset", host = %host, archived = n);
            outln!(
                "archived {n} verified record{} of {host}'s audit chain and cleared its problems; \
                 its next upload starts a new chain",
                if n == 1 { "" } else { "s" }
            )?;
        }
        HubCommand::RevokeHost { host, .. } => {
            store.revoke_host(&host, now).await?;
            outln!("revoked the credential of {host}: its agent is refused until it enrols again")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves the hub until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    match &args.store.database_url {
        Some(url) => {
            create_private_dir(&args.store.data_dir)?;
            serve_with(open_pg(url).await?, &args).await
        }
        None => serve_with(open_sqlite(&args.store.data_dir)?, &args).await,
    }
}

async fn serve_with<S: HubStore>(store: S, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => tls::from_files(cert, key)?,
        _ => {
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !args.listen.ip().is_unspecified() {
                names.push(args.listen.ip().to_string());
            }
            if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
                let h = h.trim();
                if !h.is_empty() {
                    names.push(h.to_owned());
                }
            }
            names.extend(args.sans.iter().cloned());
            names.sort();
            names.dedup();
            tls::self_signed(&args.store.data_dir, &names)?
        }
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let hub = Hub::new(store);
    let running = castellan_hub::serve(Arc::clone(&hub), listener, &tls)?;
    let banner = format!(
        "castellan hub listening on {url}\n\
         certificate fingerprint (each agent's [hub] fingerprint): {}\n\
         web UI: {url}/ui/ (log in with an operator token: castellan hub operator-token create NAME)\n",
        tls::fingerprint_text(&tls.fingerprint),
        url = running.url(),
    );
    // A hub whose stdout went away (a supervisor that read the first lines and left)
    // goes on serving: the lines are also in the log.
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), banner.as_bytes()) {
        tracing::warn!(event = "stdout_unwritable", error = %e);
    }
    tracing::info!(event = "hub_started", addr = %running.addr(), fingerprint = %tls::fingerprint_text(&tls.fingerprint), data_dir = %args.store.data_dir.display(),
        database = if args.store.database_url.is_some() { "postgres" } else { "sqlite" });
    crate::shutdown_signal().await;
    tracing::info!(event = "hub_stopping");
    running.shutdown(std::time::Duration::from_secs(5)).await?;
    Ok(ExitCode::SUCCESS)
}

/// The desired-state files `castellan apply -f` reads: the file, or each `*.toml` in the
/// folder (not recursing), by name.
fn desired_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "toml") && entry.file_type()?.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("{} holds no *.toml desired-state file", path.display());
    }
    Ok(files)
}

/// `castellan apply -f PATH --hub URL`: validates every document first (nothing is sent
/// if one is invalid, and a host named twice is refused), then writes each as its host's
/// next revision.
pub async fn apply(path: &Path, based_on: Option<u64>, hub: &HubArgs) -> anyhow::Result<ExitCode> {
    let files = desired_files(path)?;
    if based_on.is_some() && files.len() != 1 {
        bail!(
            "--based-on names one revision of one host, and {} holds {} documents",
            path.display(),
            files.len()
        );
    }
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match castellan_agent::desired_source::read_desired(file) {
            Ok((text, desired)) => docs.push((file.clone(), desired.node, text)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (file, node, _) in &docs {
        if let Some(first) = seen.insert(node.clone(), file.clone()) {
            problems.push(format!(
                "{} and {} both declare node {node}",
                first.display(),
                file.display()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("nothing applied:\n{}", problems.join("\n"));
    }
    let client = hub.client()?;
    let mut failed = false;
    for (file, node, text) in &docs {
        let based_on = match based_on {
            Some(n) => n,
            None => client.desired(node).await?.map_or(0, |r| r.revision),
        };
        match client.put_desired(node, text, based_on).await {
            Ok(r) if r.changed => outln!("{node}: revision {} ({})", r.revision, file.display())?,
            Ok(r) => outln!("{node}: unchanged at revision {}", r.revision)?,
            Err(e) => {
                failed = true;
                eprintln!("{node}: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `castellan status --hub URL`: every host and where it stands.
pub async fn status(hub: &HubArgs, json: bool) -> anyhow::Result<ExitCode> {
    let hosts = hub.client()?.hosts().await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&hosts)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<20} {:<10} {:>8} {:>8} {:>5} {:>8} {:>7} {:>10}  {:<25} VERSION",
        "HOST",
        "STATE",
        "DESIRED",
        "APPLIED",
        "PLAN",
        "PENDING",
        "ERRORS",
        "AUDIT",
        "LAST SEEN"
    )?;
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for h in &hosts {
        let state = h.state.as_str().to_owned();
        let audit = match (h.audit_seq, h.audit_problems) {
            (seq, 0) => opt(seq),
            (seq, n) => format!("{}!{n}", opt(seq)),
        };
        outln!(
            "{:<20} {:<10} {:>8} {:>8} {:>5} {:>8} {:>7} {:>10}  {:<25} {}",
            h.host,
            if h.enrolled {
                state
            } else {
                format!("{state}*")
            },
            opt(h.desired_revision),
            opt(h.applied_revision),
            h.plan,
            h.pending,
            h.errors,
            audit,
            h.last_seen.as_deref().unwrap_or("never"),
            h.agent_version.as_deref().unwrap_or("-")
        )?;
    }
    if hosts.iter().any(|h| !h.enrolled) {
        outln!("* not enrolled (no live credential)")?;
    }
    if hosts.iter().any(|h| h.audit_problems > 0) {
        outln!(
            "AUDIT: the last record the hub verified; SEQ!N: N problems in the host's uploads \
             (see `castellan audit verify --hub URL --host HOST`)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `castellan op submit FILE --hub URL`: relays the op and its signatures to the host it
/// names. The hub stores and forwards; the host verifies.
pub async fn submit_op(
    op: &castellan_agent::inbox::OfferedOp,
    sigs: Vec<String>,
    hub: &HubArgs,
) -> anyhow::Result<ExitCode> {
    let parsed = op
        .op
        .as_ref()
        .map_err(|e| anyhow!("refusing to submit {}: {e}", op.path.display()))?;
    let text = std::str::from_utf8(&op.bytes)
        .map_err(|_| anyhow!("{} is not UTF-8", op.path.display()))?;
    let done = hub
        .client()?
        .submit_op(&parsed.host, text, sigs)
        .await
        .with_context(|| format!("cannot relay {}", op.path.display()))?;
    outln!(
        "relayed {} to {} through the hub (op {}); the host verifies it itself",
        op.path.display(),
        done.host,
        done.id
    )?;
    Ok(ExitCode::SUCCESS)
}
