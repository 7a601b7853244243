//! castellan's per-host agent: reads its configuration and desired state, observes the
//! node, plans with `castellan-core`, and executes benign actions through a per-guest
//! serial queue.
//!
//! I/O lives here and in `castellan-pve`; every decision is made by the pure planner
//! (`castellan_core::plan`) and the pure scheduler ([`scheduler`]).

pub mod backend;
pub mod config;
pub mod containers;
pub mod desired_source;
pub mod engine;
pub mod fuzzing;
pub mod gatekeeper;
pub mod hub_link;
pub mod inbox;
pub mod metrics;
pub mod observe;
pub mod scheduler;
pub mod status;

pub use backend::{Backend, BackendError};
pub use castellan_pve::PveBackend;
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
    /// The Docker Engine could not be reached.
    #[error("docker engine: {0}")]
    Docker(String),
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
    /// The hub could not be connected to.
    #[error(transparent)]
    Hub(#[from] hub_link::HubLinkError),
    /// The metrics listener could not be set up.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The data directory shows earlier use but its state is missing or replaced.
    #[error(
        "data directory {path} shows earlier use ({}), but the state that recorded it is gone \
         or replaced: refusing to start, since a fresh state could accept used ops again. \
         If the state is truly lost, start once with --accept-state-loss (audited; every op \
         valid from before then will be refused)",
        evidence.join("; ")
    )]
    StateLost {
        /// The data directory.
        path: std::path::PathBuf,
        /// What shows the earlier use.
        evidence: Vec<String>,
    },
}

/// The file in the data directory that names the state its database holds.
pub const STATE_ID_FILE: &str = "state.id";

/// Reads `state.id`: `Ok(None)` when absent, `Err` with the problem when it is not a
/// readable state id.
fn read_state_id(data_dir: &std::path::Path) -> Result<Option<String>, String> {
    let path = data_dir.join(STATE_ID_FILE);
    match inbox::read_regular(&path, 256) {
        Ok(bytes) => {
            let id = String::from_utf8(bytes)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            match id {
                Some(id) => Ok(Some(id)),
                None => Err(format!("{STATE_ID_FILE} is not a state id")),
            }
        }
        Err(inbox::FileProblem::NotFound) => Ok(None),
        Err(e) => Err(format!("{STATE_ID_FILE}: {e}")),
    }
}

/// What in the data directory (and inbox) shows that an agent ran here before.
fn earlier_use(config: &AgentConfig, state_id: &Result<Option<String>, String>) -> Vec<String> {
    let mut out = Vec::new();
    match state_id {
        Ok(Some(id)) => out.push(format!("{STATE_ID_FILE} names state {id}")),
        Ok(None) => {}
        Err(e) => out.push(e.clone()),
    }
    for (dir, what) in [
        (config.inbox.join("done"), "executed ops in inbox/done"),
        (
            config.inbox.join("rejected"),
            "refused ops in inbox/rejected",
        ),
        (config.data_dir.join("pending"), "payloads in pending/"),
    ] {
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            out.push(what.to_owned());
        }
    }
    out
}

/// Opens the agent's state, refusing to start with a fresh or foreign database in a
/// data directory that shows earlier use, unless `config.accept_state_loss` (audited).
/// A new state gets an epoch (no op valid from before it is accepted) and its id is kept
/// in `state.id`.
pub fn open_state(
    config: &AgentConfig,
    now: jiff::Timestamp,
) -> Result<castellan_store::Store, StartError> {
    let dir = &config.data_dir;
    let state_id = read_state_id(dir);
    let had_db = std::fs::symlink_metadata(dir.join(castellan_store::DB_FILE_NAME)).is_ok();
    let mut evidence = if had_db {
        Vec::new()
    } else {
        earlier_use(config, &state_id)
    };
    let refuse = |evidence: Vec<String>| StartError::StateLost {
        path: dir.clone(),
        evidence,
    };
    if !evidence.is_empty() && !config.accept_state_loss {
        // Decided before the database is created, so a refusal leaves nothing behind.
        return Err(refuse(evidence));
    }
    let mut store = castellan_store::Store::open(dir)?;
    let epoch = store.epoch()?;
    if had_db {
        match (&epoch, &state_id) {
            (Some(e), Ok(Some(id))) if &e.state_id != id => evidence.push(format!(
                "castellan.db holds state {}, {STATE_ID_FILE} names state {id}",
                e.state_id
            )),
            (None, Ok(Some(id))) => evidence.push(format!(
                "castellan.db holds no state, {STATE_ID_FILE} names state {id}"
            )),
            (_, Err(e)) => evidence.push(e.clone()),
            _ => {}
        }
        if !evidence.is_empty() && !config.accept_state_loss {
            return Err(refuse(evidence));
        }
    }
    let epoch = match epoch {
        Some(e) => e,
        None => {
            let replaced = state_id.as_ref().ok().and_then(Clone::clone);
            let new_id = hex::encode(rand::random::<[u8; 16]>());
            store.begin_epoch(&new_id, replaced.as_deref(), now)?
        }
    };
    if !evidence.is_empty() {
        tracing::warn!(event = "state_loss_accepted", evidence = %evidence.join("; "),
            "starting over a lost state as the operator asked: every op valid from before now is refused");
        store.append_audit(
            castellan_store::AuditEvent::StateLossAccepted {
                evidence: evidence.join("; "),
            },
            now,
        )?;
    }
    if state_id.as_ref().ok().and_then(Option::as_deref) != Some(epoch.state_id.as_str()) {
        gatekeeper::write_atomic(
            &dir.join(STATE_ID_FILE),
            format!("{}\n", epoch.state_id).as_bytes(),
        )
        .map_err(|e| StartError::DataDir {
            path: dir.clone(),
            message: format!("cannot write {STATE_ID_FILE}: {e}"),
        })?;
    }
    Ok(store)
}

/// Opens the agent's journal (see [`open_state`]), signer config and inbox: everything
/// the gate needs.
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
    let store = open_state(config, jiff::Timestamp::now())?;
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
    )
    .with_backup_storage(config.backup_storage.clone());
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
/// [`Mode::Once`], until it is done): the guest engine over the Proxmox VE node when
/// there is a `[pve]` section, the container side over the Docker Engine when there is a
/// `[docker]` one, both under one gatekeeper, journal and audit log. The desired state
/// must be valid at start-up; later invalid versions are refused and logged while the
/// last valid one stays in force.
pub async fn run(
    config: &AgentConfig,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, StartError> {
    let _lock = lock_data_dir(&config.data_dir)?;
    if let Some(client) = &config.client
        && config.insecure
    {
        tracing::warn!(event = "tls_verification_disabled", url = %client.base_url,
            "pve.insecure = true: the node's certificate is not verified");
    }
    // A local file must be valid before anything is opened; a hub's state comes after
    // the gate is up (its refusals are audited).
    let file_desired = match &config.hub {
        None => Some(load_desired(&config.desired_file, &config.node)?),
        Some(_) => None,
    };
    let keeper = Arc::new(gatekeeper(config)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut side_tasks = Vec::new();
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Metrics(format!("cannot listen on {addr}: {e}")))?;
        tracing::info!(event = "metrics_listening", addr = %addr);
        if !addr.ip().is_loopback() {
            tracing::warn!(event = "metrics_exposed", addr = %addr,
                "metrics are served without authentication beyond loopback: restrict the address with a firewall or serve them behind a proxy");
        }
        let metrics = Arc::clone(keeper.status().metrics());
        side_tasks.push(tokio::spawn(metrics::follow_audit(
            config.data_dir.clone(),
            Arc::clone(&metrics),
            stop_rx.clone(),
        )));
        side_tasks.push(tokio::spawn(metrics::serve(
            listener,
            metrics,
            Arc::clone(&keeper),
            stop_rx.clone(),
        )));
    }
    let rx = match &config.hub {
        None => {
            let desired = match file_desired {
                Some(d) => d,
                None => load_desired(&config.desired_file, &config.node)?,
            };
            let (tx, rx) = watch::channel(Arc::new(desired));
            side_tasks.push(tokio::spawn(watch_desired(
                config.desired_file.clone(),
                config.node.clone(),
                config.watch_interval,
                tx,
            )));
            rx
        }
        Some(settings) => {
            let mut link =
                hub_link::HubLink::connect(&config.node, &config.data_dir, settings).await?;
            keeper.status().metrics().follow_hub();
            let (cached, revision) = link.cached();
            if let Some(r) = revision {
                keeper
                    .status()
                    .metrics()
                    .desired_revision
                    .set(i64::try_from(r).unwrap_or(i64::MAX));
            }
            let (tx, rx) = watch::channel(Arc::new(cached));
            let (rev_tx, rev_rx) = watch::channel(revision);
            // Catch up before the first pass, briefly: an unreachable hub does not stop
            // the agent from working from its cache.
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                link.poll_once(std::time::Duration::ZERO, &tx, &rev_tx, &keeper),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(event = "hub_unreachable", error = %e,
                    revision = ?revision, "starting from the cached desired state"),
                Err(_) => tracing::warn!(event = "hub_unreachable", error = "timed out",
                    revision = ?revision, "starting from the cached desired state"),
            }
            side_tasks.push(tokio::spawn(hub_link::report_loop(
                link.client(),
                Arc::clone(&keeper),
                rev_rx,
                config.client.is_some(),
                stop_rx.clone(),
            )));
            side_tasks.push(tokio::spawn(hub_link::audit_loop(
                link.client(),
                config.data_dir.clone(),
                stop_rx.clone(),
            )));
            side_tasks.push(tokio::spawn(link.run(
                tx,
                rev_tx,
                Arc::clone(&keeper),
                stop_rx.clone(),
            )));
            rx
        }
    };
    let pve = match &config.client {
        Some(client) => Some(Arc::new(PveBackend::new(
            PveClient::new(client.clone())?,
            config.node.clone(),
        ))),
        None => None,
    };
    let docker = match &config.docker {
        Some(d) => Some(castellan_docker::DockerBackend::new(
            castellan_docker::DockerClient::connect(d.socket.as_deref(), &config.node)
                .await
                .map_err(|e| StartError::Docker(e.to_string()))?,
        )),
        None => None,
    };
    tracing::info!(event = "agent_started", node = %config.node, mode = ?mode,
        pve = pve.is_some(), docker = docker.is_some(), hub = config.hub.is_some());
    let guests = {
        let (keeper, rx, mut stop) = (Arc::clone(&keeper), rx.clone(), stop_rx.clone());
        async move {
            match pve {
                Some(backend) => {
                    let engine = Engine::new(backend, keeper, rx, config.normalize, config.tuning);
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    Some(engine.run(mode, stopped).await)
                }
                None => None,
            }
        }
    };
    let stop_all = &stop_tx;
    let containers = async {
        match docker {
            Some(backend) => {
                let done = containers::run(
                    backend,
                    Arc::clone(&keeper),
                    rx.clone(),
                    mode,
                    std::time::Duration::from_secs(config.tuning.resync_secs),
                    config.client.is_none(),
                    stop_rx.clone(),
                )
                .await;
                if done.is_err() {
                    // The container side cannot go on (its crash recovery failed): the
                    // whole agent stops, reported, rather than half of it running on.
                    let _ = stop_all.send(true);
                }
                Some(done)
            }
            None => None,
        }
    };
    let work = async { tokio::join!(guests, containers) };
    let mut work = std::pin::pin!(work);
    let mut shutdown = std::pin::pin!(shutdown);
    let (guests, containers) = tokio::select! {
        done = &mut work => done,
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            work.await
        }
    };
    let _ = stop_tx.send(true);
    for t in side_tasks {
        t.abort();
    }
    let mut report = guests.unwrap_or_else(|| RunReport {
        // No guests managed: nothing of theirs is left to do.
        final_plan: (mode == Mode::Once).then(castellan_core::Plan::default),
        ..RunReport::default()
    });
    match containers {
        Some(Ok(pass)) => report.containers = Some(pass),
        Some(Err(e)) => report.node_failed.push(format!("docker: {e}")),
        None => {}
    }
    Ok(report)
}
