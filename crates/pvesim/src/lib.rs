//! pvesim: a stateful Proxmox VE API simulator for tests and the demo.
//!
//! It answers like a real PVE node: paths under `/api2/json/`, the `{"data": ...}` envelope,
//! PVE's status codes, error shapes and texts, config files rendered and digested as PVE writes
//! them, tasks with real-format UPIDs, and the guest quirks clients trip over (LXC `vmid` as a
//! string, descriptions that gain a newline, tag normalisation, QEMU pending changes). Every
//! request is validated against the PVE API schema ([`pve_schema`]: the embedded subset, or a
//! full apidata file). Faults can be injected per guest, method and path.
//!
//! Booleans are accepted as `1/0`, `true/false`, `yes/no`, `on/off` (case-insensitive) and
//! stored as `1`/`0`.
//!
//! The node has storages (seeded with `[[storage]]`, default `local` and `local-lvm`) holding
//! volumes: the seeded guests' disks, `[[backup]]` archives, `[[volume]]` templates and
//! ISOs. On top of config, power and destroy it serves the guest lifecycle as PVE 9 does:
//! storage content (list, info, `imgdel`), create and restore (`vzcreate`, `vzrestore`,
//! `qmcreate`, `qmrestore` under `lock: create`), clone (`vzclone`, `qmclone`), template,
//! `vzdump` (under `lock: backup`, leaving a vzdump-named archive), resize (`resize` tasks,
//! `size=` as `format_size` writes it) and destroy with HA, `purge` and
//! `destroy-unreferenced-disks`. Space is the sum of volume sizes; what does not fit fails
//! as the storage type fails. See `README.md` for the sources each behaviour follows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pvesim::SimError> {
//! let seed = pvesim::Seed::from_toml_str(r#"
//! [[guest]]
//! vmid = 101
//! kind = "lxc"
//! status = "running"
//! [guest.config]
//! hostname = "web"
//! cores = 2
//! memory = 1024
//! "#)?;
//! let cfg = pvesim::SimConfig::new("pve-01", "root@pam!castellan=SECRET", seed);
//! let sim = pvesim::start(cfg, "127.0.0.1:0".parse().expect("addr")).await?;
//! println!("{}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod config;
mod pveconf;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_schema::Schema;
use sha2::{Digest, Sha256};

pub use config::{
    Fault, FaultRule, GuestKind, GuestStatus, Seed, SeedBackup, SeedError, SeedGuest, SeedStorage,
    SeedVolume, SimConfig, faults_from_toml_str,
};
pub use pveconf::{decode_text, encode_text, unique_tags};
pub use state::{GuestView, RequestRecord, StorageView, VZDUMP_DURATION_FACTOR, VolumeView};

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The schema file could not be read or parsed.
    #[error("schema file {path}: {message}")]
    Schema {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A token is not of the form `USER@REALM!TOKENID=SECRET` (the secret is not shown).
    #[error("token #{index} must look like USER@REALM!TOKENID=SECRET")]
    Token {
        /// Position in the token list (0-based).
        index: usize,
    },
    /// No token configured.
    #[error("at least one API token is required")]
    NoToken,
    /// Certificate generation or TLS setup failed.
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// The seed is invalid.
    #[error(transparent)]
    Seed(#[from] SeedError),
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    tls: Option<TlsInfo>,
    shared: Arc<api::Shared>,
    server: axum_server::Handle<SocketAddr>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[derive(Debug, Clone)]
struct TlsInfo {
    fingerprint: String,
    pem: String,
}

/// Parses `USER@REALM!TOKENID=SECRET` into (token id, secret).
fn parse_token(t: &str) -> Option<(String, String)> {
    let (id, secret) = t.trim().split_once('=')?;
    let (user, name) = id.split_once('!')?;
    if !user.contains('@') || name.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id.to_string(), secret.to_string()))
}

/// Starts a simulator listening on `listen` (port 0 picks a free port).
pub async fn start(cfg: SimConfig, listen: SocketAddr) -> Result<SimHandle, SimError> {
    let schema = match &cfg.schema_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| SimError::Schema {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            Schema::from_json_str(&text).map_err(|e| SimError::Schema {
                path: path.display().to_string(),
                message: e.to_string(),
            })?
        }
        None => pve_schema::embedded(),
    };
    if cfg.tokens.is_empty() {
        return Err(SimError::NoToken);
    }
    let mut tokens = HashMap::new();
    for (index, t) in cfg.tokens.iter().enumerate() {
        let (id, secret) = parse_token(t).ok_or(SimError::Token { index })?;
        tokens.insert(id, secret);
    }
    let schema = Arc::new(schema);
    let mut seed = cfg.seed.clone();
    seed.faults.extend(cfg.faults.iter().cloned());
    let state = state::State::new(cfg.node.clone(), schema.clone(), cfg.task_duration, &seed);
    let shared = Arc::new(api::Shared {
        node: cfg.node.clone(),
        tokens,
        schema,
        state: Mutex::new(state),
    });

    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(api::handle)
        .with_state(shared.clone());
    let server = axum_server::Handle::new();
    let (tls, join) = if cfg.tls {
        let (config, info) = tls_config(&cfg.node, addr)?;
        let srv = axum_server::tls_rustls::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
        )?
        .handle(server.clone());
        (Some(info), tokio::spawn(srv.serve(app.into_make_service())))
    } else {
        let srv = axum_server::from_tcp(listener)?.handle(server.clone());
        (None, tokio::spawn(srv.serve(app.into_make_service())))
    };
    Ok(SimHandle {
        addr,
        tls,
        shared,
        server,
        join,
    })
}

fn tls_config(node: &str, addr: SocketAddr) -> Result<(rustls::ServerConfig, TlsInfo), SimError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ip = addr.ip().to_string();
    if !names.contains(&ip) && !addr.ip().is_unspecified() {
        names.push(ip);
    }
    if !names.iter().any(|n| n == node) {
        names.push(node.to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| SimError::Tls(e.to_string()))?;
    let der = ck.cert.der().clone();
    let fingerprint = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .map_err(|e| SimError::Tls(e.to_string()))?;
    Ok((config, TlsInfo { fingerprint, pem }))
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` or `http://...` (without `/api2/json`).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// SHA-256 fingerprint of the certificate (DER), `AB:CD:...` uppercase; `None` without TLS.
    pub fn fingerprint(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.fingerprint.clone())
    }

    /// The self-signed certificate, PEM; `None` without TLS.
    pub fn ca_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.pem.clone())
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.shared.lock().faults = rules;
    }

    /// The current fault rules (with their remaining `times`).
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.lock().faults.clone()
    }

    /// A guest's current state, or `None` if it does not exist.
    pub fn guest(&self, vmid: u32) -> Option<GuestView> {
        self.shared.lock().guest_view(vmid)
    }

    /// All VMIDs, sorted.
    pub fn guest_ids(&self) -> Vec<u32> {
        self.shared.lock().guest_ids()
    }

    /// All storages with their volumes, sorted by ID.
    pub fn storages(&self) -> Vec<StorageView> {
        self.shared.lock().storage_views()
    }

    /// One storage with its volumes, or `None` if it does not exist.
    pub fn storage(&self, id: &str) -> Option<StorageView> {
        self.shared.lock().storage_view(id)
    }

    /// The volumes of a storage (empty if it does not exist).
    pub fn volumes(&self, storage: &str) -> Vec<VolumeView> {
        self.storage(storage).map(|s| s.volumes).unwrap_or_default()
    }

    /// A volume by volume ID (`local-lvm:vm-100-disk-0`), wherever it is.
    pub fn volume(&self, volid: &str) -> Option<VolumeView> {
        let (sid, _) = volid.split_once(':')?;
        self.volumes(sid).into_iter().find(|v| v.volid == volid)
    }

    /// Whether the guest is HA-managed.
    pub fn ha_managed(&self, vmid: u32) -> bool {
        self.shared.lock().ha_managed(vmid)
    }

    /// Every API request served so far (the last 100,000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().clear_requests();
    }

    /// Stops accepting connections, lets in-flight requests finish (up to 1s) and waits.
    pub async fn shutdown(self) {
        self.server.graceful_shutdown(Some(Duration::from_secs(1)));
        if let Ok(Err(e)) = self.join.await {
            tracing::warn!(error = %e, "server ended with an error");
        }
    }
}
