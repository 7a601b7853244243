//! castellan's per-host agent: reads its configuration and desired state, observes the
//! node, plans with `castellan-core`, and executes benign actions through a per-guest
//! serial queue.
//!
//! I/O lives here and in `castellan-pve`; every decision is made by the pure planner
//! (`castellan_core::plan`) and the pure scheduler ([`scheduler`]).

pub mod backend;
pub mod config;
pub mod desired_source;
pub mod engine;
pub mod gatekeeper;
pub mod inbox;
pub mod observe;
pub mod scheduler;

pub use backend::{Backend, BackendError, PveBackend};
pub use config::{AgentConfig, ConfigError, Tuning};
pub use desired_source::{DesiredFileError, load_desired, watch_desired};
pub use engine::{Applied, Engine, Mode, RunReport};
pub use gatekeeper::Gatekeeper;
pub use inbox::Inbox;
pub use observe::{list_node, observe_node};

use std::fs::File;
use std::future::Future;
use std::sync::Arc;

use castellan_pve::PveClient;
use thiserror::Error;
use tokio::sync::watch;

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The data directory could not be created or locked.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The API client could not be built (bad TLS material, for example).
    #[error("proxmox client: {0}")]
    Client(#[from] castellan_pve::Error),
    /// The desired state is unusable; nothing was done.
    #[error(transparent)]
    Desired(#[from] DesiredFileError),
    /// The signer config is unusable; nothing was done.
    #[error(transparent)]
    Signers(#[from] castellan_sig::SignerConfigError),
    /// The journal could not be opened; nothing was done.
    #[error(transparent)]
    Store(#[from] castellan_store::StoreError),
    /// The signed-op inbox could not be created.
    #[error("inbox {path}: {source}")]
    Inbox {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the agent's journal, signer config and inbox: everything the gate needs.
pub fn gatekeeper(config: &AgentConfig) -> Result<Gatekeeper, StartError> {
    let signers = match &config.signers_file {
        Some(path) => Some(castellan_sig::SignerConfig::load(path)?),
        None => {
            tracing::info!(
                event = "no_signers",
                "no [signers] config: every destructive action stays pending"
            );
            None
        }
    };
    let store = castellan_store::Store::open(&config.data_dir)?;
    let inbox = Inbox::open(&config.inbox).map_err(|source| StartError::Inbox {
        path: config.inbox.clone(),
        source,
    })?;
    let keeper = Gatekeeper::new(
        config.node.clone(),
        signers,
        store,
        Some(inbox),
        &config.data_dir,
    );
    // Re-read at every decision: revocation takes effect without a restart.
    Ok(match &config.signers_file {
        Some(path) => keeper.with_signer_file(path.clone()),
        None => keeper,
    })
}

/// Holds the data directory's lock for as long as it lives, so two agents never manage
/// one node from the same state.
#[derive(Debug)]
pub struct DataDirLock {
    _dir: File,
}

/// Creates the data directory and takes its lock: an exclusive `flock` on the directory
/// itself, so no file inside it can be removed to break the exclusion; only removing
/// the directory (and with it the state) would.
pub fn lock_data_dir(dir: &std::path::Path) -> Result<DataDirLock, StartError> {
    let err = |message: String| StartError::DataDir {
        path: dir.to_owned(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
    let file = File::open(dir).map_err(|e| err(format!("cannot open for locking: {e}")))?;
    match file.metadata() {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(err("not a directory".into())),
        Err(e) => return Err(err(format!("cannot inspect: {e}"))),
    }
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _dir: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(err("another agent holds its lock".into())),
        Err(std::fs::TryLockError::Error(e)) => Err(err(format!("cannot lock: {e}"))),
    }
}

/// Runs the agent described by `config` until `shutdown` resolves (or, with
/// [`Mode::Once`], until it is done). The desired state must be valid at start-up; later
/// invalid versions are refused and logged while the last valid one stays in force.
pub async fn run(
    config: &AgentConfig,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, StartError> {
    let _lock = lock_data_dir(&config.data_dir)?;
    if config.insecure {
        tracing::warn!(event = "tls_verification_disabled", url = %config.client.base_url,
            "pve.insecure = true: the node's certificate is not verified");
    }
    let desired = load_desired(&config.desired_file, &config.node)?;
    let keeper = Arc::new(gatekeeper(config)?);
    let client = PveClient::new(config.client.clone())?;
    let backend = Arc::new(PveBackend::new(client, config.node.clone()));
    let (tx, rx) = watch::channel(Arc::new(desired));
    let watcher = tokio::spawn(watch_desired(
        config.desired_file.clone(),
        config.node.clone(),
        config.watch_interval,
        tx,
    ));
    tracing::info!(event = "agent_started", node = %config.node, mode = ?mode);
    let engine = Engine::new(backend, keeper, rx, config.normalize, config.tuning);
    let report = engine.run(mode, shutdown).await;
    watcher.abort();
    Ok(report)
}
