//! The agent's side of the hub: enrolment, desired state by long-poll (cached on disk
//! with its revision), signed ops into the inbox, reports after each pass.
//!
//! Nothing the hub sends is trusted beyond what a local file would be:
//! - a desired state is parsed and validated here with the same parser as a file, must
//!   name this node, and can only ever make the agent *propose* a destructive action;
//! - an op is written into the agent's own inbox under a name the agent chooses
//!   (`hub-<database>-<id>.op`), where it meets exactly the gate an inbox op meets: this host's
//!   signers, roles, binding, precondition, window and nonce;
//! - provenance comes from the journal, never from the hub.
//!
//! When the hub cannot be reached the agent keeps converging towards the last revision
//! it cached (benign drift is still repaired) and retries every second, so it catches
//! up within about a second of the hub coming back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use castellan_core::{DesiredState, Printable};
use castellan_hub::proto::{AgentReport, PendingReport, PollResponse};
use castellan_hub::token::TokenKind;
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
/// The least time between two answers with news that the agent follows.
const MIN_GAP: Duration = Duration::from_millis(100);
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The identity of the hub database these numbers come from.
    #[serde(default)]
    hub: Option<String>,
    /// The newest revision seen, taken or refused (0: none): what the next poll asks
    /// past.
    revision: u64,
    /// The revision in the cache (0: none).
    #[serde(default)]
    applied: u64,
    /// The highest op id placed in the inbox.
    ops: u64,
}

/// Most relayed ops left undecided in the inbox: past this the agent takes no more from
/// the hub until some are settled, so a hub cannot fill the host's disk.
pub const MAX_UNDECIDED_RELAYED: usize = 64;

/// How long the agent waits before asking again when it cannot take what the hub
/// offers (its inbox is full or cannot be written).
const BLOCKED_RETRY: Duration = Duration::from_secs(5);

/// How long the agent waits before trying again when the hub refuses its credential.
const REFUSED_RETRY: Duration = Duration::from_secs(30);

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
                // What is written to disk and sent on every call must be a host
                // credential for this node, whatever the hub says.
                if enrolled.host != node
                    || castellan_hub::token::check(&enrolled.credential, TokenKind::Host).is_err()
                {
                    return Err(HubLinkError::Enrol(ClientError::Decode {
                        url: settings.url.to_string(),
                        message: "the hub answered the enrolment with something that is not a host credential for this node".into(),
                    }));
                }
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
        if self.cursor.applied > 0 {
            match crate::load_desired(&path, &self.node) {
                Ok(d) => return (d, Some(self.cursor.applied)),
                Err(e) => {
                    tracing::warn!(event = "hub_cache_unusable", error = %e, "starting from an empty desired state");
                    self.cursor.applied = 0;
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
        let polled = self
            .client
            .poll(self.cursor.revision, self.cursor.ops, wait)
            .await?;
        if let Some(id) = &polled.hub_id
            && self.cursor.hub.as_ref() != Some(id)
        {
            if self.cursor.hub.is_some() {
                // Another database: its numbers say nothing about ours. Start over
                // (the cached document stays in force until the new hub sends one; ops
                // it hands over again meet the nonce check like any replay).
                tracing::warn!(event = "hub_changed", hub = %id,
                    "the hub's database is not the one this agent followed; asking it for everything");
                self.cursor.revision = 0;
                self.cursor.ops = 0;
            }
            self.cursor.hub = Some(id.clone());
            self.save_cursor();
            if polled.news.is_some() && self.cursor.revision == 0 && self.cursor.ops == 0 {
                // The answer was computed against the old cursor: ask again.
                return Ok(true);
            }
        }
        let Some(PollResponse {
            desired: new,
            mut ops,
        }) = polled.news
        else {
            return Ok(false);
        };
        // Only what is newer than what the agent has, and a bounded number of ops per poll.
        let new = new.filter(|r| r.revision > self.cursor.revision);
        ops.retain(|o| o.id > self.cursor.ops);
        ops.sort_by_key(|o| o.id);
        ops.dedup_by_key(|o| o.id);
        ops.truncate(castellan_hub::proto::MAX_OPS_PER_POLL as usize);
        if new.is_none() && ops.is_empty() {
            // `run` paces an answer that comes early with nothing new.
            tracing::warn!(
                event = "hub_answer_stale",
                "the hub answered with nothing newer than what this agent has"
            );
            return Ok(false);
        }
        if let Some(rev) = new
            && !self.take_revision(rev, desired, revision, keeper).await
        {
            tokio::time::sleep(BLOCKED_RETRY).await;
            return Ok(false);
        }
        if !ops.is_empty() {
            let placed = self.take_ops(&ops, keeper);
            if placed > self.cursor.ops {
                self.cursor.ops = placed;
                self.save_cursor();
                if let Err(e) = self.client.ack_ops(placed).await {
                    tracing::warn!(event = "hub_ack_failed", error = %e);
                }
            }
            if ops.last().is_some_and(|o| o.id > placed) {
                // Some could not be placed: ask again later, not at once.
                tokio::time::sleep(BLOCKED_RETRY).await;
            }
        }
        Ok(true)
    }

    /// Takes a revision from the hub: validated, cached, put in force. `false` when it
    /// could not be cached (it is then asked for again).
    async fn take_revision(
        &mut self,
        rev: castellan_hub::proto::DesiredRevision,
        desired: &watch::Sender<Arc<DesiredState>>,
        revision: &watch::Sender<Option<u64>>,
        keeper: &Gatekeeper,
    ) -> bool {
        let source = format!("hub revision {}", rev.revision);
        match castellan_core::parse_desired(&rev.document) {
            Ok(d) if d.node == self.node => {
                let path = self.data_dir.join(CACHE_FILE);
                if let Err(e) = write_atomic(&path, rev.document.as_bytes()) {
                    tracing::error!(event = "hub_cache_unsaved", error = %e, path = %path.display(),
                        "not taking the revision until it can be cached");
                    return false;
                }
                self.cursor.revision = rev.revision;
                self.cursor.applied = rev.revision;
                self.save_cursor();
                tracing::info!(event = "desired_state_loaded", source = %source, guests = d.guests.len(),
                    containers = d.containers.declared.len(), author = %Printable(&rev.author));
                let _ = keeper
                    .audit(AuditEvent::DesiredStateReceived { source }.into())
                    .await;
                keeper.status().update(|s| s.desired_refused = None);
                desired.send_replace(Arc::new(d));
                revision.send_replace(Some(rev.revision));
                keeper
                    .status()
                    .metrics()
                    .desired_revision
                    .set(i64::try_from(rev.revision).unwrap_or(i64::MAX));
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
                keeper
                    .status()
                    .update(|s| s.desired_refused = Some(format!("{source} refused: {detail}")));
                let _ = keeper
                    .audit(AuditEvent::DesiredStateRefused { source, detail }.into())
                    .await;
                // Not asked for again; the next revision is. The cache keeps the last
                // revision taken.
                self.cursor.revision = rev.revision;
                self.save_cursor();
            }
        }
        true
    }

    /// Places relayed ops in the inbox, in order, stopping at the first that cannot be
    /// placed; returns the id up to which every op is in place (or the cursor as it was).
    fn take_ops(&self, ops: &[castellan_hub::proto::OpDelivery], keeper: &Gatekeeper) -> u64 {
        let mut placed = self.cursor.ops;
        let Some(inbox) = keeper.inbox() else {
            tracing::error!(
                event = "hub_op_undelivered",
                "no [ops] inbox to put relayed ops in"
            );
            return placed;
        };
        let mut undecided = match inbox.count_prefixed("hub-") {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(event = "hub_op_undelivered", error = %e);
                return placed;
            }
        };
        for op in ops {
            if undecided >= MAX_UNDECIDED_RELAYED {
                tracing::warn!(
                    event = "hub_ops_deferred",
                    undecided,
                    "too many relayed ops wait undecided in the inbox; taking more once some are settled"
                );
                break;
            }
            match deliver(inbox, self.cursor.hub.as_deref(), op) {
                Ok(()) => {
                    placed = op.id;
                    undecided += 1;
                }
                Err(e) => {
                    tracing::error!(event = "hub_op_undelivered", id = op.id, error = %e);
                    break;
                }
            }
        }
        placed
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
            let asked = tokio::time::Instant::now();
            let polled = tokio::select! {
                r = self.poll_once(wait, &desired, &revision, &keeper) => r,
                _ = stop.changed() => return,
            };
            let connected = &keeper.status().metrics().hub_connected;
            connected.set(i64::from(polled.is_ok()));
            match polled {
                Ok(news) => {
                    // A hub answering sooner than asked is not followed at full speed:
                    // nothing new and early waits a retry interval; news again and
                    // again is taken at most every MIN_GAP.
                    let least = if news { MIN_GAP } else { RETRY.min(wait) };
                    let elapsed = asked.elapsed();
                    if elapsed < least {
                        tokio::select! {
                            () = tokio::time::sleep(least - elapsed) => {}
                            _ = stop.changed() => return,
                        }
                    }
                    if !reachable {
                        tracing::info!(event = "hub_reachable", hub = %self.client.base());
                        reachable = true;
                    }
                }
                Err(e) => {
                    let refused = matches!(e.status().map(|s| s.as_u16()), Some(401 | 403));
                    let pause = if refused {
                        // Not an outage: the credential was revoked (or the hub is not ours).
                        tracing::error!(event = "hub_credential_refused", error = %e,
                            "the hub refuses this agent's credential; working from the cached desired state \
                             (to enrol again: remove hub.credential and give a new enrol_token_file)");
                        reachable = false;
                        REFUSED_RETRY
                    } else {
                        if reachable {
                            tracing::warn!(event = "hub_unreachable", error = %e,
                                "working from the cached desired state; retrying every second");
                            reachable = false;
                        }
                        RETRY
                    };
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
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
        wipes: Default::default(),
        decommission: None,
    }
}

/// Writes a relayed op into the inbox under a name the agent chooses. Files already in
/// place (a delivery interrupted, or whose acknowledgement was lost) count as placed;
/// the op itself is always placed last, so nothing is decided on a half-delivered op.
fn deliver(
    inbox: &Inbox,
    hub: Option<&str>,
    op: &castellan_hub::proto::OpDelivery,
) -> std::io::Result<()> {
    // Named for the hub database too: ids start again at 1 in another one.
    let hub = hub.map_or("0", |h| &h[..h.len().min(8)]);
    let name = format!("hub-{hub}-{}.op", op.id);
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
    let path = inbox.submit_resuming(&name, op.op.as_bytes(), &sigs)?;
    tracing::info!(event = "op_received", source = "hub", id = op.id,
        file = %path.display(), relayed_by = %Printable(&op.submitted_by), signatures = sigs.len());
    Ok(())
}

/// How often the agent looks for new audit records to upload.
const AUDIT_EVERY: Duration = Duration::from_secs(2);

/// Why an audit upload did not happen.
#[derive(Debug, thiserror::Error)]
enum AuditUploadError {
    #[error("{0}")]
    Hub(#[from] ClientError),
    #[error("reading the local audit log: {0}")]
    Local(String),
}

/// Uploads the agent's audit records to the hub as they are appended, in batches, each
/// continuing the head the hub verified. A refusal (the hub found a gap, a fork or a
/// rewind) is logged and retried slowly: the hub keeps the problem for operators to see.
pub async fn audit_loop(client: HubClient, data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut held: Option<castellan_hub::proto::AuditHead> = None;
    loop {
        let pause = match upload_audit_once(&client, &data_dir, &mut held).await {
            Ok(true) => Duration::ZERO,
            Ok(false) => AUDIT_EVERY,
            Err(e) => {
                held = None;
                match &e {
                    AuditUploadError::Hub(c) if c.status().map(|s| s.as_u16()) == Some(409) => {
                        tracing::error!(event = "audit_upload_refused", error = %e);
                        REFUSED_RETRY
                    }
                    _ => {
                        tracing::debug!(event = "audit_upload_failed", error = %e);
                        BLOCKED_RETRY
                    }
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends the next batch of audit records the hub does not hold; `true` when more wait.
async fn upload_audit_once(
    client: &HubClient,
    data_dir: &Path,
    held: &mut Option<castellan_hub::proto::AuditHead>,
) -> Result<bool, AuditUploadError> {
    use castellan_hub::proto::{AuditHead, AuditUpload, MAX_AUDIT_BATCH};
    let hub_head = match held.clone() {
        Some(h) => h,
        None => client.audit_head().await?,
    };
    let dir = data_dir.to_owned();
    let from = hub_head.seq + 1;
    let (local, lines) = tokio::task::spawn_blocking(move || {
        let store = castellan_store::Store::open_readonly(&dir).map_err(|e| e.to_string())?;
        let head = store.audit_head().map_err(|e| e.to_string())?;
        // The head and the records are two reads, and the agent may append between
        // them: the batch stops at the head it claims, never past it.
        let lines = match &head {
            Some((seq, _)) if *seq >= from => store
                .export_lines(from, u64::from(MAX_AUDIT_BATCH).min(seq - from + 1))
                .map_err(|e| e.to_string())?,
            _ => Vec::new(),
        };
        Ok::<_, String>((head, lines))
    })
    .await
    .map_err(|e| AuditUploadError::Local(e.to_string()))?
    .map_err(AuditUploadError::Local)?;
    let local = match local {
        Some((seq, hash)) => AuditHead { seq, hash },
        None => castellan_hub::audit::genesis(),
    };
    if local == hub_head {
        *held = Some(hub_head);
        return Ok(false);
    }
    let records = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<Vec<serde_json::Value>, _>>()
        .map_err(|e| AuditUploadError::Local(e.to_string()))?;
    let now = client
        .upload_audit(&AuditUpload {
            head: local.clone(),
            records,
        })
        .await?;
    // Only a hub that moved forward is asked again at once.
    let more = now.seq > hub_head.seq && now.seq < local.seq;
    *held = Some(now);
    Ok(more)
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
    // Each payload file, with what its action takes with it.
    let mut payloads: Vec<(PathBuf, Vec<String>)> = Vec::new();
    if let Some(e) = &s.node_error {
        errors.push(format!("node: {e}"));
    }
    if let Some(e) = &s.desired_refused {
        errors.push(e.clone());
    }
    for v in &s.guests_busy {
        if !s.guest_errors.contains_key(v) {
            plan.push(format!("guest {v}: being reconciled"));
        }
    }
    for (v, e) in &s.guest_errors {
        errors.push(format!("guest {v}: {e}"));
    }
    for p in s.guest_pending.values().chain(s.node_pending.values()) {
        payloads.push((keeper.payload_path(&p.action), p.takes.clone()));
    }
    if let Some(c) = &s.containers {
        plan.extend(c.steps.iter().cloned());
        errors.extend(c.failed.iter().map(|(t, e)| format!("{t}: {e}")));
        payloads.extend(c.pending.iter().map(|p| (p.clone(), Vec::new())));
    }
    let pending: Vec<PendingReport> = payloads
        .iter()
        .filter_map(|(p, takes)| {
            let bytes = inbox::read_own(p, castellan_core::op::MAX_OP_BYTES as u64).ok()?;
            Some(PendingReport {
                name: p.file_name()?.to_string_lossy().into_owned(),
                payload: String::from_utf8(bytes).ok()?,
                takes: takes.clone(),
            })
        })
        .collect();
    let guests_done = !manages_guests
        || (s.guests_synced
            && s.guests_busy.is_empty()
            && s.guest_pending.is_empty()
            && s.node_pending.is_empty());
    let containers_done = s
        .containers
        .as_ref()
        .is_none_or(|c| c.converged && c.pending.is_empty());
    let all: Vec<castellan_hub::proto::GuestReport> = s
        .guest_fields
        .iter()
        .map(|(vmid, (kind, fields))| castellan_hub::proto::GuestReport {
            target: castellan_core::Target::guest(*kind, *vmid).to_string(),
            fields: fields
                .iter()
                .map(|f| castellan_hub::proto::GuestField {
                    field: f.field.clone(),
                    desired: f.desired.clone(),
                    actual: f.actual.clone(),
                    matches: f.matches,
                })
                .collect(),
            error: s.guest_errors.get(vmid).cloned(),
            busy: s.guests_busy.contains(vmid),
        })
        .collect();
    // Those that need a look first; the rest while the budget lasts.
    let (mut guests, calm): (Vec<_>, Vec<_>) = all.into_iter().partition(|g| g.needs_a_look());
    let mut spent: usize = guests
        .iter()
        .map(castellan_hub::proto::GuestReport::weight)
        .sum();
    let mut guests_left_out = 0u64;
    for g in calm {
        spent += g.weight();
        if spent > castellan_hub::proto::GUESTS_REPORT_BUDGET {
            guests_left_out += 1;
        } else {
            guests.push(g);
        }
    }
    guests.sort_by(|a, b| a.target.cmp(&b.target));
    AgentReport {
        guests,
        guests_left_out,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        applied_revision: revision,
        converged: errors.is_empty() && guests_done && containers_done,
        plan,
        pending,
        errors,
    }
}
