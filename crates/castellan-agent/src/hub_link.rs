//! The agent's side of the hub: enrolment, desired state by long-poll (cached on disk
//! with its revision), signed ops into the inbox, reports after each pass.
//!
//! Nothing the hub sends is trusted beyond what a local file would be:
//! - a desired state is parsed and validated here with the same parser as a file, must
//!   name this node, and can only ever make the agent *propose* a destructive action;
//! - an op is written into the agent's own inbox under a name the agent chooses
//!   (`hub-<id>.op`), where it meets exactly the gate an inbox op meets: this host's
//!   signers, roles, binding, precondition, window and nonce;
//! - provenance comes from the journal, never from the hub.
//!
//! When the hub cannot be reached the agent keeps converging towards the last revision
//! it cached (benign drift is still repaired) and retries every second, so it catches
//! up within about a second of the hub coming back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use castellan_core::DesiredState;
use castellan_hub::proto::{AgentReport, PendingReport, PollResponse};
use castellan_hub::{ClientError, HubClient};
use castellan_pve::TlsMode;
use castellan_store::AuditEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::gatekeeper::{Gatekeeper, write_atomic};
use crate::inbox::{self, FileProblem, Inbox};

/// The agent's credential, in its data directory (mode 0600).
pub const CREDENTIAL_FILE: &str = "hub.credential";
/// The last desired revision received, as a `desired.toml`.
pub const CACHE_FILE: &str = "desired.hub.toml";
/// Which revision the cache holds and which ops have been taken.
pub const CURSOR_FILE: &str = "hub.cursor";

/// How often an unreachable hub is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a report may wait for more changes before it is sent.
const REPORT_DEBOUNCE: Duration = Duration::from_millis(100);
/// A report is sent at least this often, so the hub sees the agent alive.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// `[hub]`, resolved.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// The hub's URL.
    pub url: url::Url,
    /// How its certificate is trusted (a pinned fingerprint, as a rule).
    pub tls: TlsMode,
    /// The one-time enrolment token's file (needed until the agent has a credential).
    pub enrol_token_file: Option<PathBuf>,
    /// How long each long-poll waits for news.
    pub wait: Duration,
}

/// Why the agent could not connect to its hub at start-up.
#[derive(Debug, thiserror::Error)]
pub enum HubLinkError {
    /// Not enrolled, and no token to enrol with.
    #[error(
        "not enrolled with the hub: no {CREDENTIAL_FILE} in the data directory and no [hub] enrol_token_file \
         (make one with `castellan hub enrol-token --host NODE`)"
    )]
    NoCredential,
    /// A local file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Enrolment failed.
    #[error("enrolment with the hub failed: {0}")]
    Enrol(ClientError),
    /// The client could not be built.
    #[error(transparent)]
    Client(ClientError),
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The revision in the cache (0: none).
    revision: u64,
    /// The highest op id written to the inbox.
    ops: u64,
}

/// A connection to the hub, with this agent's credential.
#[derive(Debug)]
pub struct HubLink {
    client: HubClient,
    node: String,
    data_dir: PathBuf,
    wait: Duration,
    cursor: Cursor,
}

fn file_err(path: &Path, message: impl ToString) -> HubLinkError {
    HubLinkError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Reads a small file of the agent's own, refusing a link or a special file.
fn read_own(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, HubLinkError> {
    match inbox::read_own(path, limit) {
        Ok(b) => Ok(Some(b)),
        Err(FileProblem::NotFound) => Ok(None),
        Err(e) => Err(file_err(path, e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HubLinkError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| file_err(path, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| file_err(path, e))?;
    tmp.write_all(bytes).map_err(|e| file_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| file_err(path, e))?;
    tmp.persist(path).map_err(|e| file_err(path, e.error))?;
    Ok(())
}

impl HubLink {
    /// Connects as `node`: with the credential in `data_dir`, or by enrolling with the
    /// token file first (the credential is then kept, mode 0600).
    pub async fn connect(
        node: &str,
        data_dir: &Path,
        settings: &HubSettings,
    ) -> Result<HubLink, HubLinkError> {
        let client =
            HubClient::new(settings.url.clone(), &settings.tls).map_err(HubLinkError::Client)?;
        let cred_path = data_dir.join(CREDENTIAL_FILE);
        let credential = match read_own(&cred_path, 4096)? {
            Some(bytes) => String::from_utf8(bytes)
                .map_err(|_| file_err(&cred_path, "not text"))?
                .trim()
                .to_owned(),
            None => {
                let token_path = settings
                    .enrol_token_file
                    .as_ref()
                    .ok_or(HubLinkError::NoCredential)?;
                let token =
                    inbox::read_regular(token_path, 4096).map_err(|e| file_err(token_path, e))?;
                let token =
                    String::from_utf8(token).map_err(|_| file_err(token_path, "not text"))?;
                let enrolled = client
                    .enrol(node, token.trim())
                    .await
                    .map_err(HubLinkError::Enrol)?;
                write_private(&cred_path, format!("{}\n", enrolled.credential).as_bytes())?;
                tracing::info!(event = "hub_enrolled", hub = %settings.url, node);
                enrolled.credential
            }
        };
        let cursor_path = data_dir.join(CURSOR_FILE);
        let cursor = match read_own(&cursor_path, 4096)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| file_err(&cursor_path, e))?,
            None => Cursor::default(),
        };
        Ok(HubLink {
            client: client.with_token(credential),
            node: node.to_owned(),
            data_dir: data_dir.to_owned(),
            wait: settings.wait,
            cursor,
        })
    }

    /// The cached desired state and its revision: what the agent works from until the
    /// hub says otherwise. Without a cache (or with one that no longer validates), an
    /// empty desired state for this node: nothing is managed, nothing is touched.
    pub fn cached(&mut self) -> (DesiredState, Option<u64>) {
        let path = self.data_dir.join(CACHE_FILE);
        if self.cursor.revision > 0 {
            match crate::load_desired(&path, &self.node) {
                Ok(d) => return (d, Some(self.cursor.revision)),
                Err(e) => {
                    tracing::warn!(event = "hub_cache_unusable", error = %e, "starting from an empty desired state");
                    self.cursor.revision = 0;
                }
            }
        }
        (empty(&self.node), None)
    }

    fn save_cursor(&self) {
        let path = self.data_dir.join(CURSOR_FILE);
        let bytes = serde_json::to_vec(&self.cursor).unwrap_or_default();
        if let Err(e) = write_atomic(&path, &bytes) {
            tracing::error!(event = "hub_cursor_unsaved", error = %e, path = %path.display());
        }
    }

    /// One long-poll; applies what came. `Err` when the hub could not be asked.
    pub async fn poll_once(
        &mut self,
        wait: Duration,
        desired: &watch::Sender<Arc<DesiredState>>,
        revision: &watch::Sender<Option<u64>>,
        keeper: &Gatekeeper,
    ) -> Result<bool, ClientError> {
        let got = self
            .client
            .poll(self.cursor.revision, self.cursor.ops, wait)
            .await?;
        let Some(PollResponse { desired: new, ops }) = got else {
            return Ok(false);
        };
        if let Some(rev) = new {
            let source = format!("hub revision {}", rev.revision);
            match castellan_core::parse_desired(&rev.document) {
                Ok(d) if d.node == self.node => {
                    let path = self.data_dir.join(CACHE_FILE);
                    if let Err(e) = write_atomic(&path, rev.document.as_bytes()) {
                        tracing::error!(event = "hub_cache_unsaved", error = %e, path = %path.display());
                    }
                    self.cursor.revision = rev.revision;
                    self.save_cursor();
                    tracing::info!(event = "desired_state_loaded", source = %source, guests = d.guests.len(),
                        containers = d.containers.declared.len(), author = %rev.author);
                    let _ = keeper
                        .audit(AuditEvent::DesiredStateReceived { source }.into())
                        .await;
                    desired.send_replace(Arc::new(d));
                    revision.send_replace(Some(rev.revision));
                }
                refused => {
                    let detail = match refused {
                        Ok(d) => format!(
                            "it is for node {:?}, this agent manages {:?}",
                            d.node, self.node
                        ),
                        Err(e) => e.to_string(),
                    };
                    tracing::error!(event = "desired_state_refused", source = %source, error = %detail,
                        "keeping the previous desired state");
                    let _ = keeper
                        .audit(AuditEvent::DesiredStateRefused { source, detail }.into())
                        .await;
                    // Not asked for again; the next revision is.
                    self.cursor.revision = rev.revision;
                    self.save_cursor();
                }
            }
        }
        if let Some(last) = ops.last().map(|o| o.id) {
            match keeper.inbox() {
                Some(inbox) => {
                    for op in &ops {
                        deliver(inbox, op);
                    }
                }
                None => tracing::error!(event = "hub_op_dropped", "no inbox to put relayed ops in"),
            }
            self.cursor.ops = self.cursor.ops.max(last);
            self.save_cursor();
            if let Err(e) = self.client.ack_ops(self.cursor.ops).await {
                tracing::warn!(event = "hub_ack_failed", error = %e);
            }
        }
        Ok(true)
    }

    /// Follows the hub until `stop` turns true: long-polls, applies, retries every
    /// second while the hub is unreachable.
    pub async fn run(
        mut self,
        desired: watch::Sender<Arc<DesiredState>>,
        revision: watch::Sender<Option<u64>>,
        keeper: Arc<Gatekeeper>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut reachable = true;
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = self.wait;
            let polled = tokio::select! {
                r = self.poll_once(wait, &desired, &revision, &keeper) => r,
                _ = stop.changed() => return,
            };
            match polled {
                Ok(_) => {
                    if !reachable {
                        tracing::info!(event = "hub_reachable", hub = %self.client.base());
                        reachable = true;
                    }
                }
                Err(e) => {
                    if reachable {
                        tracing::warn!(event = "hub_unreachable", error = %e,
                            "working from the cached desired state; retrying every second");
                        reachable = false;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    /// A client with this agent's credential (for the reporter).
    pub fn client(&self) -> HubClient {
        self.client.clone()
    }
}

/// An empty desired state for `node`: nothing declared, so nothing managed.
pub fn empty(node: &str) -> DesiredState {
    DesiredState {
        node: node.to_owned(),
        guests: Default::default(),
        containers: Default::default(),
    }
}

/// Writes a relayed op into the inbox under a name the agent chooses.
fn deliver(inbox: &Inbox, op: &castellan_hub::proto::OpDelivery) {
    let name = format!("hub-{}.op", op.id);
    let sigs: Vec<(String, Vec<u8>)> = op
        .sigs
        .iter()
        .take(crate::inbox::MAX_SIGS as usize)
        .zip(1u32..)
        .map(|(s, n)| {
            let sig_name = if n == 1 {
                format!("{name}.sig")
            } else {
                format!("{name}.{n}.sig")
            };
            (sig_name, s.as_bytes().to_vec())
        })
        .collect();
    match inbox.submit(&name, op.op.as_bytes(), &sigs) {
        Ok(path) => tracing::info!(event = "op_received", source = "hub", id = op.id,
            file = %path.display(), relayed_by = %op.submitted_by, signatures = sigs.len()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => tracing::error!(event = "hub_op_undelivered", id = op.id, error = %e),
    }
}

/// Sends a report whenever the agent's status or revision changes (after a short
/// pause to gather a burst of changes) and at least every [`HEARTBEAT`].
pub async fn report_loop(
    client: HubClient,
    keeper: Arc<Gatekeeper>,
    mut revision: watch::Receiver<Option<u64>>,
    manages_guests: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut status = keeper.status().subscribe();
    loop {
        let report = build_report(&keeper, *revision.borrow_and_update(), manages_guests);
        status.borrow_and_update();
        if let Err(e) = client.report(&report).await {
            tracing::debug!(event = "report_failed", error = %e);
        }
        tokio::select! {
            _ = status.changed() => {}
            _ = revision.changed() => {}
            () = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.changed() => return,
        }
        tokio::time::sleep(REPORT_DEBOUNCE).await;
    }
}

/// The report for the agent's current state.
pub fn build_report(
    keeper: &Gatekeeper,
    revision: Option<u64>,
    manages_guests: bool,
) -> AgentReport {
    let s = keeper.status().get();
    let mut plan = Vec::new();
    let mut errors = Vec::new();
    let mut payloads: Vec<PathBuf> = Vec::new();
    if let Some(e) = &s.node_error {
        errors.push(format!("node: {e}"));
    }
    for v in &s.guests_busy {
        if !s.guest_errors.contains_key(v) {
            plan.push(format!("guest {v}: being reconciled"));
        }
    }
    for (v, e) in &s.guest_errors {
        errors.push(format!("guest {v}: {e}"));
    }
    for a in s.guest_pending.values() {
        payloads.push(keeper.payload_path(a));
    }
    if let Some(c) = &s.containers {
        plan.extend(c.steps.iter().cloned());
        errors.extend(c.failed.iter().map(|(t, e)| format!("{t}: {e}")));
        payloads.extend(c.pending.iter().cloned());
    }
    let pending: Vec<PendingReport> = payloads
        .iter()
        .filter_map(|p| {
            let bytes = inbox::read_own(p, castellan_core::op::MAX_OP_BYTES as u64).ok()?;
            Some(PendingReport {
                name: p.file_name()?.to_string_lossy().into_owned(),
                payload: String::from_utf8(bytes).ok()?,
            })
        })
        .collect();
    let guests_done = !manages_guests
        || (s.guests_synced && s.guests_busy.is_empty() && s.guest_pending.is_empty());
    let containers_done = s
        .containers
        .as_ref()
        .is_none_or(|c| c.converged && c.pending.is_empty());
    AgentReport {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        applied_revision: revision,
        converged: errors.is_empty() && guests_done && containers_done,
        plan,
        pending,
        errors,
    }
}
