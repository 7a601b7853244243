//! The gate's I/O edge: everything between the pure decision
//! ([`castellan_core::gate::decide`]) and the node.
//!
//! - Every mutation goes through the journal: the gate decision is audited, the intent
//!   journaled (consuming the op's nonce for a destructive action) before anything is
//!   sent, the task id recorded once the node accepted it, and the outcome after.
//! - A destructive action executes only with an [`Approval`] from the gate, built from a
//!   signed op found in the inbox and verified against this host's signer config.
//!   Without one it stays pending: its payload is written to `<data_dir>/pending/` for an
//!   operator to sign, and audited once.
//! - At start-up, before anything new runs, [`Gatekeeper::recover`] settles every intent
//!   the journal holds without a terminal record.
//!
//! The store is synchronous (every commit waits for an fsync), so it is used from
//! `spawn_blocking`, behind a mutex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use castellan_core::RejectReason;
use castellan_core::classify::{JournalProvenance, classify};
use castellan_core::gate::{
    Approval, Decision, DestructiveAction, Evidence, Policy, SignatureCheck, decide,
};
use castellan_core::op::{NAMESPACE, SignedOp};
use castellan_core::operation::{Prerequisite, Recovery, WAIVE_BACKUP};
use castellan_core::plan::Action;
use castellan_core::{Operation, Target};
use castellan_sig::SignerConfig;
use castellan_store::{
    AuditEntry, AuditEvent, AuditFields, IntentId, NewIntent, Outcome, ProvenanceCheck,
    ProvenanceKind, Store, StoreError, TaskMark,
};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest as _, Sha256};

use crate::backend::{Backend, BackendError, FailureClass, GuestBackend, TaskHandle};
use crate::inbox::{Inbox, OfferedOp, SETTLE_GRACE, Settled};

mod benign;
mod decommission;
mod destructive;
mod provision;
mod recovery;
mod rotation;
mod sweep;
mod wipe;

use benign::*;
pub use destructive::DESTROY_SHUTDOWN_SECS;
use destructive::*;
use sweep::*;

/// Where the time comes from (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The environment variable that makes the agent pause at a named point of a destroy so
/// a test can SIGKILL it there (see `crates/castellan/tests/crash.rs`). It only ever
/// delays the agent; it changes no decision.
pub const CRASHPOINT_ENV: &str = "CASTELLAN_CRASHPOINT";

/// How long a pending payload written for operators stays valid.
pub const PENDING_TTL: SignedDuration = SignedDuration::from_hours(1);

/// Verifies each signature over `op_bytes` against `signers` at time `at`, for the gate.
/// Without a signer config every signature is `unknown_signer`.
pub fn check_signatures(
    signers: Option<&SignerConfig>,
    op_bytes: &[u8],
    sigs: &[Vec<u8>],
    at: Timestamp,
) -> Vec<SignatureCheck> {
    sigs.iter()
        .map(|sig| match signers {
            None => SignatureCheck::Rejected {
                reason: RejectReason::UnknownSigner,
                detail: "this host trusts no signers ([signers] config is not set)".into(),
            },
            Some(cfg) => match cfg.verify(NAMESPACE, op_bytes, sig, at) {
                Ok(v) => SignatureCheck::Verified {
                    roles: cfg.roles_of(&v),
                    fingerprint: v.fingerprint,
                    principals: v.principals,
                },
                Err(r) => SignatureCheck::Rejected {
                    reason: r.reason,
                    detail: r.detail,
                },
            },
        })
        .collect()
}

/// A signed op offered for an action: the parsed op, the exact bytes that were signed and
/// the signatures.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// The parsed op.
    pub op: &'a SignedOp,
    /// Its canonical bytes.
    pub bytes: &'a [u8],
    /// The armored signatures.
    pub sigs: &'a [Vec<u8>],
}

/// What the agent's own state says about an offered op, for the gate.
#[derive(Debug, Clone, Copy)]
pub struct StateFacts {
    /// Whether its nonce was consumed already.
    pub nonce_consumed: bool,
    /// The clock that cannot go backwards.
    pub effective_now: Timestamp,
    /// When this state began (no op valid from earlier is accepted); `None` for
    /// `castellan op verify`, which has no state.
    pub state_since: Option<Timestamp>,
}

impl StateFacts {
    /// Facts for a check made outside any agent state (`castellan op verify`).
    pub fn stateless(now: Timestamp) -> Self {
        StateFacts {
            nonce_consumed: false,
            effective_now: now,
            state_since: None,
        }
    }
}

/// The gate's verdict on one offered op for `action`: signatures checked, then the pure
/// decision. The `facts` come from the store (or, for `castellan op verify`, from the
/// caller).
pub fn judge(
    signers: Option<&SignerConfig>,
    host: &str,
    action: &DestructiveAction,
    provenance: Option<JournalProvenance>,
    offer: Offer<'_>,
    facts: StateFacts,
) -> Decision {
    let StateFacts {
        nonce_consumed,
        effective_now,
        state_since,
    } = facts;
    let Offer { op, bytes, sigs } = offer;
    let checks = check_signatures(signers, bytes, sigs, effective_now);
    let class = classify(action.op, &[], provenance, None);
    let threshold = signers.map_or(1, |s| s.threshold(action.op.as_str()));
    decide(
        action,
        class,
        Some(Evidence {
            op,
            signatures: &checks,
            nonce_consumed,
        }),
        Policy {
            host,
            effective_now,
            threshold,
            state_since,
        },
    )
}

/// What became of a destructive action this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestructiveOutcome {
    /// Executed with an approval.
    Executed {
        /// The signers' fingerprints.
        signers: Vec<String>,
        /// The safety backup taken before it (a volume id), if one was.
        backup: Option<String>,
    },
    /// Waiting for a signed op; the payload to sign is at `payload`.
    Pending {
        /// The payload file.
        payload: PathBuf,
    },
    /// Could not be settled now (store or node trouble); retried later.
    Failed(String),
}

/// The gate's I/O edge for one node. Cheap to share (`Arc`).
pub struct Gatekeeper {
    host: String,
    signers: Mutex<SignerState>,
    store: Arc<Mutex<Store>>,
    inbox: Option<Inbox>,
    pending_dir: PathBuf,
    clock: Clock,
    crashpoint: Option<String>,
    /// Pending payloads already announced, by target: the action they were for.
    announced: Mutex<HashMap<Target, DestructiveAction>>,
    /// How long an op's files must have been still before it can be refused for good.
    settle_grace: std::time::Duration,
    /// Refusals that are not final, already audited: (op file, reason).
    noted: Mutex<HashSet<(String, RejectReason)>>,
    /// The last inbox scan and the inbox's stamp when it was made.
    scanned: Mutex<Option<(u64, Arc<Vec<OfferedOp>>)>>,
    /// How many times the inbox's files were read.
    scans: std::sync::atomic::AtomicU64,
    /// Where the agent stands, for its reports.
    status: crate::status::StatusBoard,
    /// The storage safety backups go to.
    backup_storage: String,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("host", &self.host)
            .field("signers", &self.signers.lock().map(|s| s.describe()).ok())
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// Why the gatekeeper could not do something now. Nothing here is an outcome: the action
/// it was for stays pending or in flight and is tried again.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The journal refused or failed.
    #[error("journal: {0}")]
    Journal(#[from] StoreError),
    /// A lock was poisoned by an earlier panic.
    #[error("{0} lock poisoned by an earlier panic")]
    Poisoned(&'static str),
    /// Work run off the async runtime did not finish.
    #[error("{what} task failed: {detail}")]
    Blocking {
        /// What it was doing.
        what: &'static str,
        /// Why it did not finish.
        detail: String,
    },
    /// The inbox could not be read.
    #[error("inbox {}: {source}", dir.display())]
    Inbox {
        /// The inbox directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A payload for operators could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Payload {
        /// The payload file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// An action cannot be offered for signing (it could never verify).
    #[error("cannot offer {op} of {target} for signing: {detail}")]
    Unofferable {
        /// The operation.
        op: Operation,
        /// What it acts on.
        target: Target,
        /// What is wrong.
        detail: String,
    },
    /// The signer config is unusable: nothing destructive can be accepted.
    #[error("signer config: {0}")]
    Signers(String),
    /// The node could not be asked.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// A look at a destroy's target failed.
    #[error("cannot look at {target} before its {op}: {source}")]
    Look {
        /// What the op acts on.
        target: Target,
        /// The operation.
        op: Operation,
        /// What failed.
        source: BackendError,
    },
    /// Recovery met an intent it cannot settle.
    #[error("{0}")]
    Recovery(String),
}

/// Runs blocking work (file and store I/O) off the async runtime.
async fn blocking<R: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, GateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GateError::Blocking {
            what,
            detail: e.to_string(),
        })
}

impl Gatekeeper {
    /// A gatekeeper for `host`, journaling into `store`, reading signed ops from `inbox`
    /// and writing pending payloads under `data_dir/pending`.
    pub fn new(
        host: impl Into<String>,
        signers: Option<SignerConfig>,
        store: Store,
        inbox: Option<Inbox>,
        data_dir: &Path,
    ) -> Self {
        Gatekeeper {
            host: host.into(),
            signers: Mutex::new(SignerState {
                file: None,
                last: Some(Ok(signers.map(Arc::new))),
                version: castellan_sig::rotation::BOOTSTRAP_VERSION,
                rotated: None,
            }),
            store: Arc::new(Mutex::new(store)),
            inbox,
            pending_dir: data_dir.join("pending"),
            clock: Arc::new(Timestamp::now),
            crashpoint: std::env::var(CRASHPOINT_ENV).ok().filter(|s| !s.is_empty()),
            announced: Mutex::new(HashMap::new()),
            settle_grace: SETTLE_GRACE,
            noted: Mutex::new(HashSet::new()),
            scanned: Mutex::new(None),
            scans: std::sync::atomic::AtomicU64::new(0),
            status: crate::status::StatusBoard::default(),
            backup_storage: crate::config::DEFAULT_BACKUP_STORAGE.to_owned(),
        }
    }

    /// The archive last restored over `target` by a signed `restore_overwrite`.
    pub async fn last_restored(&self, target: &Target) -> Result<Option<String>, GateError> {
        let target = target.clone();
        self.store(move |s| s.last_restored(&target)).await
    }

    /// Fills in, for each guest of `actual` that `desired` declares a `restore_over` for,
    /// the archive last restored over it (from the journal), so the planner proposes each
    /// declared restore once.
    pub async fn fill_restored(
        &self,
        desired: &castellan_core::model::DesiredState,
        actual: &mut castellan_core::model::ActualState,
    ) -> Result<(), GateError> {
        let (d, mut a) = (desired.clone(), std::mem::take(actual));
        *actual = self
            .store(move |s| crate::observe::fill_restored(s, &d, &mut a).map(|()| a))
            .await?;
        Ok(())
    }

    /// Takes safety backups to `storage` instead of the default `local`.
    pub fn with_backup_storage(mut self, storage: impl Into<String>) -> Self {
        self.backup_storage = storage.into();
        self
    }

    /// Reads the signer config from `path` at every decision instead of holding the set
    /// it was built with, so a key removed from `allowed_signers` or `signers.toml` stops
    /// authorising at once. A file that becomes invalid keeps every destructive op
    /// pending, logged and audited; it never falls back to an earlier set.
    pub fn with_signer_file(mut self, path: PathBuf) -> Self {
        self.signers = Mutex::new(SignerState {
            file: Some(path),
            last: None,
            version: castellan_sig::rotation::BOOTSTRAP_VERSION,
            rotated: None,
        });
        self
    }

    /// The signer set in force now. The newest set a rotation put in force, from the
    /// journal, once there is one (the signer file is no longer read then); before that,
    /// version 1, re-read from its file (if it has one). A change is audited when it
    /// differs from what the last decision used. `Err` when the set is unusable: no
    /// destructive op may be accepted then.
    async fn current_signers(&self) -> Result<Option<Arc<SignerConfig>>, GateError> {
        self.signers_in_force().await.map(|(_, c)| c)
    }

    /// [`Gatekeeper::current_signers`], with the set's version.
    async fn signers_in_force(&self) -> Result<(u64, Option<Arc<SignerConfig>>), GateError> {
        if let Some(set) = self.store(|s| s.signer_set_in_force()).await? {
            let cached = {
                let st = self
                    .signers
                    .lock()
                    .map_err(|_| GateError::Poisoned("signer state"))?;
                st.rotated
                    .as_ref()
                    .filter(|(v, _)| *v == set.version)
                    .map(|(_, c)| Arc::clone(c))
            };
            let loaded = match cached {
                Some(c) => Ok(Some(c)),
                None => castellan_sig::SignerSet::parse(&set.document)
                    .and_then(|s| s.to_config())
                    .map(|c| Some(Arc::new(c)))
                    .map_err(|e| {
                        format!(
                            "the signer set in force (version {}) cannot be read: {e}",
                            set.version
                        )
                    }),
            };
            if let Ok(Some(c)) = &loaded
                && let Ok(mut st) = self.signers.lock()
            {
                st.rotated = Some((set.version, Arc::clone(c)));
            }
            return self.note_signers(loaded, set.version).await;
        }
        let path = {
            let st = self
                .signers
                .lock()
                .map_err(|_| GateError::Poisoned("signer state"))?;
            match st.file.clone() {
                Some(path) => path,
                None => {
                    return st
                        .last
                        .clone()
                        .unwrap_or(Ok(None))
                        .map(|c| (st.version, c))
                        .map_err(GateError::Signers);
                }
            }
        };
        // The files are read off the runtime.
        let loaded = blocking("signer config", move || {
            SignerConfig::load(&path)
                .map(|c| Some(Arc::new(c)))
                .map_err(|e| e.to_string())
        })
        .await?;
        self.note_signers(loaded, castellan_sig::rotation::BOOTSTRAP_VERSION)
            .await
    }

    /// Records `loaded` (version `version`) as what decisions use from now on, audited
    /// when it differs from what the last decision used.
    async fn note_signers(
        &self,
        loaded: Result<Option<Arc<SignerConfig>>, String>,
        version: u64,
    ) -> Result<(u64, Option<Arc<SignerConfig>>), GateError> {
        let changed = {
            let mut st = self
                .signers
                .lock()
                .map_err(|_| GateError::Poisoned("signer state"))?;
            let changed = st.last.as_ref() != Some(&loaded) || st.version != version;
            st.last = Some(loaded.clone());
            st.version = version;
            changed
        };
        if changed {
            let entry = match &loaded {
                Ok(cfg) => {
                    let keys = cfg.as_ref().map_or(0, |c| c.allowed.entries.len()) as u64;
                    tracing::info!(event = "signers_loaded", keys, version);
                    AuditEvent::SignersLoaded {
                        keys,
                        version: Some(version),
                    }
                }
                Err(e) => {
                    tracing::error!(event = "signers_refused", error = %e,
                        "the signer config is unusable: every destructive op stays pending until it is fixed");
                    AuditEvent::SignersRefused { detail: e.clone() }
                }
            };
            self.audit(entry.into()).await?;
        }
        loaded.map(|c| (version, c)).map_err(GateError::Signers)
    }

    /// Replaces the settle grace (tests): how long an op's files must have been still
    /// before it can be refused for good.
    pub fn with_settle_grace(mut self, grace: std::time::Duration) -> Self {
        self.settle_grace = grace;
        self
    }

    /// Every op file in the inbox (none without an inbox), read off the runtime. `fresh`
    /// rescans; otherwise the last scan is reused while the inbox's stamp (names, sizes,
    /// times: nothing opened) is unchanged, so a round reads the inbox once, however many
    /// destructive actions it judges.
    pub(super) async fn scan_inbox(&self, fresh: bool) -> Result<Arc<Vec<OfferedOp>>, GateError> {
        let Some(inbox) = self.inbox.clone() else {
            return Ok(Arc::new(Vec::new()));
        };
        let cached = if fresh {
            None
        } else {
            self.scanned
                .lock()
                .map_err(|_| GateError::Poisoned("inbox scan"))?
                .clone()
        };
        let cached_ops = cached.as_ref().map(|(_, ops)| Arc::clone(ops));
        let grace = self.settle_grace;
        let (stamp, scan) = blocking("inbox scan", move || {
            let stamp = inbox.stamp();
            if let (Some((was, _)), Some(now)) = (&cached, stamp)
                && *was == now
            {
                return (stamp, Ok(None));
            }
            let scan = inbox
                .scan(std::time::SystemTime::now(), grace)
                .map(|ops| Some(Arc::new(ops)))
                .map_err(|source| GateError::Inbox {
                    dir: inbox.dir().to_owned(),
                    source,
                });
            (stamp, scan)
        })
        .await?;
        let ops = match scan? {
            Some(ops) => {
                self.scans
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ops
            }
            // Unchanged since the last reading: reuse it.
            None => match &cached_ops {
                Some(ops) => Arc::clone(ops),
                None => Arc::new(Vec::new()),
            },
        };
        // A stamp that could not be taken is never reused: the next call reads again.
        *self
            .scanned
            .lock()
            .map_err(|_| GateError::Poisoned("inbox scan"))? = stamp.map(|s| (s, Arc::clone(&ops)));
        Ok(ops)
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The inbox, if one is configured.
    pub fn inbox(&self) -> Option<&Inbox> {
        self.inbox.as_ref()
    }

    /// How many times the inbox's files have been read (a round reads them once).
    pub fn inbox_scans(&self) -> u64 {
        self.scans.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The inbox's stamp (a summary of names, sizes and times; nothing is opened), taken
    /// off the runtime; `None` without an inbox or when it cannot be taken.
    pub async fn inbox_stamp(&self) -> Option<u64> {
        let inbox = self.inbox.clone()?;
        blocking("inbox stamp", move || inbox.stamp())
            .await
            .ok()
            .flatten()
    }

    /// Where pending payloads are written.
    pub fn pending_dir(&self) -> &Path {
        &self.pending_dir
    }

    /// The file the payload to sign for `action` is written to.
    pub fn payload_path(&self, action: &DestructiveAction) -> PathBuf {
        self.pending_dir.join(format!(
            "{}-{}-{}.op",
            action.host,
            action.target.file_stem(),
            action.op
        ))
    }

    /// Where the agent stands: written by the guest engine and the container side, read
    /// by the reporter.
    pub fn status(&self) -> &crate::status::StatusBoard {
        &self.status
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Runs `f` on the store off the async runtime.
    async fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, GateError> {
        let store = Arc::clone(&self.store);
        blocking("journal", move || {
            let mut guard = store.lock().map_err(|_| GateError::Poisoned("journal"))?;
            Ok(f(&mut guard))
        })
        .await?
    }

    /// [`with_store`](Self::with_store) for a store call that can fail.
    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, GateError> {
        Ok(self.with_store(f).await??)
    }

    /// Appends an audit record (off the runtime).
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), GateError> {
        let now = self.now();
        self.store(move |s| s.append_audit(entry, now).map(|_| ()))
            .await
    }

    fn crashpoint(&self, name: &str) {
        if self.crashpoint.as_deref() == Some(name) {
            // Announce and wait to be killed: the test harness SIGKILLs the process here.
            eprintln!("castellan-crashpoint: {name}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
}

/// The backend's tasks of `op` on `target` as a task mark records them, taken just before
/// a request that must settle exactly once (none where the backend cannot list tasks):
/// any task found later that is not among them is the request's own.
async fn task_mark<B: Backend>(
    backend: &B,
    target: &Target,
    op: Operation,
    params: &BTreeMap<String, String>,
) -> Result<Vec<String>, BackendError> {
    Ok(backend
        .tasks_of(target, op, params)
        .await?
        .unwrap_or_default()
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect())
}

/// The signer set a gatekeeper decides with, and where it comes from.
struct SignerState {
    /// `signers.toml`, re-read at every decision; `None` for a fixed set.
    file: Option<PathBuf>,
    /// What the last decision used (or the fixed set), with its version.
    last: Option<Result<Option<Arc<SignerConfig>>, String>>,
    /// The version `last` has (1 until a rotation).
    version: u64,
    /// The set a rotation put in force, parsed once: (version, config).
    rotated: Option<(u64, Arc<SignerConfig>)>,
}

impl SignerState {
    fn describe(&self) -> String {
        match (&self.file, &self.last) {
            (Some(p), _) => format!("file {}", p.display()),
            (None, Some(Ok(Some(_)))) => "fixed".into(),
            _ => "none".into(),
        }
    }
}

/// Writes a file atomically: temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
