//! `agent.toml`, read in two stages: [`RawConfig`] (syntax, unknown fields refused) and
//! [`AgentConfig`] (paths resolved against the file's directory, the token read from its
//! file, TLS settled). Resolution takes the base directory as a parameter and never looks
//! at the process environment, so tests are hermetic.
//!
//! ```toml
//! node = "pve-01"
//! data_dir = "/var/lib/castellan"
//!
//! [pve]
//! url = "https://pve-01.example:8006"
//! token_file = "/etc/castellan/pve-token"   # or token = "root@pam!castellan=..."
//! fingerprint = "AB:CD:..."                  # or ca_file = "...", or insecure = true
//!
//! [docker]               # manage Docker containers too (or instead: [pve] may be left out)
//! socket = "/var/run/docker.sock"           # the default
//!
//! [desired]
//! file = "desired.toml"
//!
//! # ... or, instead of [desired], follow a hub:
//! # [hub]
//! # url = "https://hub.example:8443"
//! # fingerprint = "AB:CD:..."                # what `castellan hub` prints (or ca_file)
//! # enrol_token_file = "/etc/castellan/enrol-token"   # until enrolled
//! # poll_secs = 25                           # long-poll length
//!
//! [agent]                  # optional tuning
//! max_parallel = 8         # guests reconciled at once
//! resync_secs = 60         # full re-observation of the node
//! backoff_base_ms = 1000   # first retry delay of a failing guest; doubles per failure
//! backoff_max_secs = 300
//!
//! [signers]                # who may sign destructive ops; left out = nobody (all pending)
//! config = "signers.toml"
//!
//! [ops]
//! inbox = "inbox"          # drop-in directory for signed ops; default <data_dir>/inbox
//!
//! [backup]                 # the safety backup before a signed destroy or restore-overwrite
//! storage = "local"        # where vzdump writes it (the default: every node's `local`)
//!
//! [normalize]              # match datacenter.cfg `tag-style`, if changed from the default
//! tags_case_sensitive = false
//! tag_order = "alphabetical"   # or "config"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use castellan_core::Normalizers;
use castellan_pve::{ApiToken, ClientConfig, Fingerprint, RetryPolicy, TlsMode};
use serde::Deserialize;
use thiserror::Error;

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field or a value of the wrong type.
    #[error("invalid {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Well-formed but unusable.
    #[error("invalid {path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field concerned.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `agent.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The Proxmox VE node this agent manages.
    pub node: String,
    /// Where the agent keeps its state.
    pub data_dir: PathBuf,
    /// How to reach the node's API (a host with Docker only has none).
    #[serde(default)]
    pub pve: Option<RawPve>,
    /// The host's Docker Engine, if castellan manages containers on it.
    #[serde(default)]
    pub docker: Option<RawDocker>,
    /// Where desired state comes from: a local file...
    #[serde(default)]
    pub desired: Option<RawDesired>,
    /// ... or the hub.
    #[serde(default)]
    pub hub: Option<RawHub>,
    /// Tuning.
    #[serde(default)]
    pub agent: Tuning,
    /// Comparison rules matching the cluster's datacenter.cfg.
    #[serde(default)]
    pub normalize: Normalizers,
    /// Who may sign destructive operations.
    #[serde(default)]
    pub signers: Option<RawSigners>,
    /// Where signed operations arrive.
    #[serde(default)]
    pub ops: RawOps,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
    /// The safety backup.
    #[serde(default)]
    pub backup: RawBackup,
}

/// `[backup]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    /// The storage safety backups go to; `local` if left out.
    pub storage: Option<String>,
}

/// The storage safety backups go to when `[backup]` names none: every Proxmox VE node
/// has a `local` directory storage that holds backups unless an administrator changed it.
pub const DEFAULT_BACKUP_STORAGE: &str = "local";

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where `GET /metrics` is served (plain HTTP), e.g. `127.0.0.1:9464`.
    pub listen: String,
}

/// `[signers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigners {
    /// The signer config (`signers.toml`: allowed_signers file, roles, thresholds).
    pub config: PathBuf,
}

/// `[ops]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOps {
    /// The drop-in directory for signed ops; `<data_dir>/inbox` if left out.
    pub inbox: Option<PathBuf>,
}

/// `[docker]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    /// The engine's Unix socket; Docker's default when left out.
    pub socket: Option<PathBuf>,
}

/// The resolved `[docker]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The engine's Unix socket; Docker's default when `None`.
    pub socket: Option<PathBuf>,
}

/// `[pve]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPve {
    /// API base URL, e.g. `https://pve-01:8006`.
    pub url: String,
    /// The API token, `USER@REALM!TOKENID=SECRET`.
    pub token: Option<String>,
    /// A file holding the API token.
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the node's certificate.
    pub fingerprint: Option<String>,
    /// A CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (logged as a warning at start-up).
    #[serde(default)]
    pub insecure: bool,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for RawPve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPve")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("fingerprint", &self.fingerprint)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .finish()
    }
}

fn default_timeout() -> u64 {
    30
}

/// `[desired]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDesired {
    /// The desired-state file, watched for changes.
    pub file: PathBuf,
    /// How often the file is checked for changes, in milliseconds.
    #[serde(default = "default_watch_ms")]
    pub watch_ms: u64,
}

fn default_watch_ms() -> u64 {
    1000
}

/// `[hub]`: desired state and signed ops from a castellan hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    /// The hub's URL, `https://hub:8443`.
    pub url: String,
    /// The SHA-256 fingerprint of the hub's certificate (what `castellan hub` prints).
    pub fingerprint: Option<String>,
    /// Or a CA certificate (PEM) that issued it.
    pub ca_file: Option<PathBuf>,
    /// The one-time enrolment token (`castellan hub enrol-token`), needed until the
    /// agent has enrolled; its credential is then kept in the data directory.
    pub enrol_token_file: Option<PathBuf>,
    /// How long each long-poll waits for news, in seconds.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
}

fn default_poll_secs() -> u64 {
    25
}

/// `[agent]`: how hard and how often the agent works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tuning {
    /// Guests reconciled at once.
    pub max_parallel: usize,
    /// Seconds between full re-observations of the node.
    pub resync_secs: u64,
    /// First retry delay of a failing guest, in milliseconds; doubles per failure.
    pub backoff_base_ms: u64,
    /// Longest retry delay, in seconds.
    pub backoff_max_secs: u64,
    /// With `--once`: attempts per guest before giving up.
    pub once_attempts: u32,
    /// Actions one reconcile of a guest may take before yielding to the others.
    pub max_steps: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_parallel: 8,
            resync_secs: 60,
            backoff_base_ms: 1000,
            backoff_max_secs: 300,
            once_attempts: 5,
            max_steps: 8,
        }
    }
}

/// A resolved, ready-to-use agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node managed.
    pub node: String,
    /// State directory (absolute or relative to the working directory of the caller).
    pub data_dir: PathBuf,
    /// How to reach the Proxmox VE API (`None`: no `[pve]`, containers only).
    pub client: Option<ClientConfig>,
    /// The Docker Engine (`None`: no `[docker]`).
    pub docker: Option<DockerSettings>,
    /// Whether TLS verification is off (warned about at start-up).
    pub insecure: bool,
    /// The desired-state file (with a hub: the cache of its last revision).
    pub desired_file: PathBuf,
    /// The hub, when desired state and ops come from one.
    pub hub: Option<crate::hub_link::HubSettings>,
    /// How often to check it.
    pub watch_interval: Duration,
    /// Tuning.
    pub tuning: Tuning,
    /// Comparison rules.
    pub normalize: Normalizers,
    /// The signer config file, if destructive ops may be signed at all.
    pub signers_file: Option<PathBuf>,
    /// The signed-op drop-in directory.
    pub inbox: PathBuf,
    /// Start even though the data directory shows earlier use and its state is gone
    /// (`castellan agent --accept-state-loss`; never read from the file).
    pub accept_state_loss: bool,
    /// Where Prometheus metrics are served (`None`: not served).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The storage safety backups go to.
    pub backup_storage: String,
}

impl AgentConfig {
    /// Reads and resolves a configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_str_in(&text, path, base)
    }

    /// Parses and resolves configuration text; relative paths are taken from `base`.
    /// `path` only names the file in errors.
    pub fn from_str_in(text: &str, path: &Path, base: &Path) -> Result<AgentConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        raw.resolve(path, base)
    }
}

impl RawConfig {
    /// Second stage: validates values and resolves paths and the token.
    pub fn resolve(self, path: &Path, base: &Path) -> Result<AgentConfig, ConfigError> {
        let invalid = |field: &'static str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        if self.node.is_empty() {
            return Err(invalid("node", "must not be empty".into()));
        }
        if self.pve.is_none() && self.docker.is_none() {
            return Err(invalid(
                "pve",
                "nothing to manage: give [pve] (a Proxmox VE node), [docker] (the host's Docker Engine), or both".into(),
            ));
        }
        let insecure = self.pve.as_ref().is_some_and(|p| p.insecure);
        let client = match &self.pve {
            Some(pve) => Some(resolve_pve(pve, &invalid, &abs)?),
            None => None,
        };
        let docker = self.docker.map(|d| DockerSettings {
            socket: d.socket.as_deref().map(&abs),
        });
        let t = self.agent;
        if t.max_parallel == 0 {
            return Err(invalid("agent.max_parallel", "must be at least 1".into()));
        }
        if t.resync_secs == 0 {
            return Err(invalid("agent.resync_secs", "must be at least 1".into()));
        }
        if t.max_steps == 0 || t.once_attempts == 0 {
            return Err(invalid(
                "agent",
                "max_steps and once_attempts must be at least 1".into(),
            ));
        }
        let data_dir = abs(&self.data_dir);
        let (desired_file, watch_ms, hub) = match (&self.desired, &self.hub) {
            (Some(d), None) => (abs(&d.file), d.watch_ms, None),
            (None, Some(h)) => (
                data_dir.join(crate::hub_link::CACHE_FILE),
                default_watch_ms(),
                Some(resolve_hub(h, &invalid, &abs)?),
            ),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "hub",
                    "give [desired] (a local file) or [hub], not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "desired",
                    "no desired state: give [desired] file = \"...\" or a [hub]".into(),
                ));
            }
        };
        let inbox = self
            .ops
            .inbox
            .as_deref()
            .map_or_else(|| data_dir.join("inbox"), abs);
        let metrics_listen = match &self.metrics {
            Some(m) => Some(m.listen.parse().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!(
                        "{:?} is not an address and port such as \"127.0.0.1:9464\"",
                        m.listen
                    ),
                )
            })?),
            None => None,
        };
        let backup_storage = match self.backup.storage {
            Some(s) if castellan_core::desired::valid_storage_id(&s) => s,
            Some(s) => {
                return Err(invalid(
                    "backup.storage",
                    format!("{s:?} is not a Proxmox VE storage id"),
                ));
            }
            None => DEFAULT_BACKUP_STORAGE.to_owned(),
        };
        Ok(AgentConfig {
            backup_storage,
            metrics_listen,
            node: self.node,
            signers_file: self.signers.as_ref().map(|s| abs(&s.config)),
            inbox,
            data_dir,
            client,
            docker,
            insecure,
            desired_file,
            hub,
            watch_interval: Duration::from_millis(watch_ms.max(50)),
            tuning: t,
            normalize: self.normalize,
            accept_state_loss: false,
        })
    }
}

/// Resolves `[hub]`: the URL and how its certificate is trusted.
fn resolve_hub(
    hub: &RawHub,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    abs: &dyn Fn(&Path) -> PathBuf,
) -> Result<crate::hub_link::HubSettings, ConfigError> {
    let url: url::Url = hub
        .url
        .parse()
        .map_err(|e| invalid("hub.url", format!("{e}: {:?}", hub.url)))?;
    if url.scheme() != "https" {
        return Err(invalid("hub.url", "must be an https:// URL".into()));
    }
    let tls = match (&hub.fingerprint, &hub.ca_file) {
        (Some(fp), None) => TlsMode::Fingerprint(
            fp.parse::<Fingerprint>()
                .map_err(|e| invalid("hub.fingerprint", e.to_string()))?,
        ),
        (None, Some(ca)) => TlsMode::CaFile(abs(ca)),
        (None, None) => TlsMode::System,
        (Some(_), Some(_)) => {
            return Err(invalid(
                "hub",
                "choose one of fingerprint or ca_file".into(),
            ));
        }
    };
    if hub.poll_secs == 0 || hub.poll_secs > castellan_hub::proto::MAX_WAIT_MS / 1000 {
        return Err(invalid(
            "hub.poll_secs",
            format!(
                "must be between 1 and {}",
                castellan_hub::proto::MAX_WAIT_MS / 1000
            ),
        ));
    }
    Ok(crate::hub_link::HubSettings {
        url,
        tls,
        enrol_token_file: hub.enrol_token_file.as_deref().map(abs),
        wait: Duration::from_secs(hub.poll_secs),
    })
}

/// Resolves `[pve]`: the URL, the token (from its file if need be) and the TLS mode.
fn resolve_pve(
    pve: &RawPve,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    abs: &dyn Fn(&Path) -> PathBuf,
) -> Result<ClientConfig, ConfigError> {
    let url: url::Url = pve
        .url
        .parse()
        .map_err(|e| invalid("pve.url", format!("{e}: {:?}", pve.url)))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(
            "pve.url",
            "must be an https:// (or http://) URL".into(),
        ));
    }
    let token_text = match (&pve.token, &pve.token_file) {
        (Some(t), None) => t.clone(),
        (None, Some(file)) => {
            let file = abs(file);
            std::fs::read_to_string(&file)
                .map_err(|e| {
                    invalid(
                        "pve.token_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?
                .trim()
                .to_owned()
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "pve.token",
                "give token or token_file, not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "pve.token",
                "token or token_file is required".into(),
            ));
        }
    };
    // The parse error never echoes the secret (castellan-pve guarantees it).
    let token: ApiToken = token_text
        .parse()
        .map_err(|e: castellan_pve::Error| invalid("pve.token", e.to_string()))?;
    let tls = match (&pve.fingerprint, &pve.ca_file, pve.insecure) {
        (Some(fp), None, false) => TlsMode::Fingerprint(
            fp.parse::<Fingerprint>()
                .map_err(|e| invalid("pve.fingerprint", e.to_string()))?,
        ),
        (None, Some(ca), false) => TlsMode::CaFile(abs(ca)),
        (None, None, true) => TlsMode::Insecure,
        (None, None, false) => TlsMode::System,
        _ => {
            return Err(invalid(
                "pve",
                "choose one of fingerprint, ca_file or insecure = true".into(),
            ));
        }
    };
    let mut client = ClientConfig::new(url, token);
    client.tls = tls;
    client.timeout = Duration::from_secs(pve.timeout_secs.max(1));
    client.retry = RetryPolicy::default();
    Ok(client)
}
