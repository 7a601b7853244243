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

use castellan_core::Operation;
use castellan_core::RejectReason;
use castellan_core::classify::{JournalProvenance, classify};
use castellan_core::gate::{
    Approval, Decision, DestructiveAction, Evidence, Policy, SignatureCheck, decide,
};
use castellan_core::model::{ActualRun, ShutdownPolicy, Vmid};
use castellan_core::op::{NAMESPACE, SignedOp};
use castellan_core::operation::Recovery;
use castellan_core::plan::Action;
use castellan_sig::SignerConfig;
use castellan_store::{
    AuditEntry, AuditEvent, AuditFields, IntentId, NewIntent, Outcome, ProvenanceCheck,
    ProvenanceKind, Store, StoreError, TaskMark,
};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest as _, Sha256};

use crate::backend::{Backend, BackendError, FailureClass, TaskHandle, TaskState};
use crate::inbox::{Inbox, OfferedOp, SETTLE_GRACE, Settled};

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
    /// Pending payloads already announced, by vmid: the action they were for.
    announced: Mutex<HashMap<Vmid, DestructiveAction>>,
    /// How long an op's files must have been still before it can be refused for good.
    settle_grace: std::time::Duration,
    /// Refusals that are not final, already audited: (op file, reason).
    noted: Mutex<HashSet<(String, RejectReason)>>,
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

fn store_err(e: StoreError) -> String {
    format!("journal: {e}")
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
            }),
            store: Arc::new(Mutex::new(store)),
            inbox,
            pending_dir: data_dir.join("pending"),
            clock: Arc::new(Timestamp::now),
            crashpoint: std::env::var(CRASHPOINT_ENV).ok().filter(|s| !s.is_empty()),
            announced: Mutex::new(HashMap::new()),
            settle_grace: SETTLE_GRACE,
            noted: Mutex::new(HashSet::new()),
        }
    }

    /// Reads the signer config from `path` at every decision instead of holding the set
    /// it was built with, so a key removed from `allowed_signers` or `signers.toml` stops
    /// authorising at once. A file that becomes invalid keeps every destructive op
    /// pending, logged and audited; it never falls back to an earlier set.
    pub fn with_signer_file(mut self, path: PathBuf) -> Self {
        self.signers = Mutex::new(SignerState {
            file: Some(path),
            last: None,
        });
        self
    }

    /// The signer set in force now: re-read from its file (if it has one), the change
    /// audited when it differs from what the last decision used. `Err` when the file is
    /// unusable: no destructive op may be accepted then.
    async fn current_signers(&self) -> Result<Option<Arc<SignerConfig>>, String> {
        let (now, changed) = {
            let mut st = self
                .signers
                .lock()
                .map_err(|_| "signer state poisoned by an earlier panic".to_owned())?;
            let Some(path) = st.file.clone() else {
                return st.last.clone().unwrap_or(Ok(None));
            };
            let loaded = SignerConfig::load(&path)
                .map(|c| Some(Arc::new(c)))
                .map_err(|e| e.to_string());
            let changed = st.last.as_ref() != Some(&loaded);
            st.last = Some(loaded.clone());
            (loaded, changed)
        };
        if changed {
            let entry = match &now {
                Ok(cfg) => {
                    let keys = cfg.as_ref().map_or(0, |c| c.allowed.entries.len()) as u64;
                    tracing::info!(event = "signers_loaded", keys);
                    AuditEvent::SignersLoaded { keys }
                }
                Err(e) => {
                    tracing::error!(event = "signers_refused", error = %e,
                        "the signer config is unusable: every destructive op stays pending until it is fixed");
                    AuditEvent::SignersRefused { detail: e.clone() }
                }
            };
            self.audit(entry.into()).await?;
        }
        now
    }

    /// Replaces the settle grace (tests): how long an op's files must have been still
    /// before it can be refused for good.
    pub fn with_settle_grace(mut self, grace: std::time::Duration) -> Self {
        self.settle_grace = grace;
        self
    }

    /// Every op file in the inbox (none without an inbox).
    fn scan_inbox(&self) -> Result<Vec<OfferedOp>, String> {
        match &self.inbox {
            Some(inbox) => inbox
                .scan(std::time::SystemTime::now(), self.settle_grace)
                .map_err(|e| format!("inbox {}: {e}", inbox.dir().display())),
            None => Ok(Vec::new()),
        }
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

    /// Where pending payloads are written.
    pub fn pending_dir(&self) -> &Path {
        &self.pending_dir
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Runs `f` on the store off the async runtime.
    async fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, String> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .map_err(|_| "journal lock poisoned by an earlier panic".to_owned())?;
            Ok(f(&mut guard))
        })
        .await
        .map_err(|e| format!("journal task failed: {e}"))?
    }

    /// [`with_store`](Self::with_store) for a store call that can fail: both failures as
    /// one message.
    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, String> {
        self.with_store(f).await?.map_err(store_err)
    }

    /// Appends one audit record.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), String> {
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

    // ---- benign ------------------------------------------------------------------------

    /// Executes one benign action through the journal: decision audited, intent recorded,
    /// dispatched, waited for, outcome recorded. Returns the task's warnings.
    pub async fn benign<B: Backend>(
        &self,
        backend: &B,
        action: &Action,
    ) -> Result<u32, BackendError> {
        let op = action.kind;
        let keys: Vec<&str> = action.config_keys().collect();
        let class = classify(op, &keys, None, None);
        if class.class != castellan_core::classify::Class::Benign {
            // The planner only makes benign actions; refuse anything else outright.
            return Err(BackendError::retry(format!(
                "refusing {op} on {}: {}",
                action.vmid, class.why
            )));
        }
        let action_id = benign_action_id(action);
        let fields = AuditFields::action(action.vmid, op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: op.into(),
            vmid: action.vmid,
            guest: action.guest,
            params: journal_params(action),
            nonce: None,
            nonce_not_after: None,
            destructive: false,
            upid_hint: action.digest.clone(),
        };
        let now = self.now();
        // Benign records are written with relaxed durability: they survive a crash of the
        // agent, and losing the last of them to a power cut is harmless because benign
        // actions are re-planned from a fresh observation (see castellan-store).
        let id = self
            .store(move |s| s.relaxed(|s| allow_and_begin(s, intent, fields, now))?)
            .await
            .map_err(BackendError::retry)?;
        let result = async {
            let Some(task) = backend.dispatch(action).await? else {
                return Ok(0); // applied synchronously: no task to record
            };
            let now = self.now();
            let t = task.as_str().to_owned();
            self.store(move |s| {
                s.relaxed(|s| {
                    s.mark_dispatched(id, Some(&t), AuditEvent::TaskDispatched { upid: None }, now)
                })?
            })
            .await
            .map_err(BackendError::retry)?;
            backend.wait_task(&task).await
        }
        .await;
        let outcome = match &result {
            Ok(_) => Outcome::Succeeded,
            Err(e) => Outcome::Failed {
                error: e.message.clone(),
            },
        };
        let now = self.now();
        let ev = outcome.event();
        if let Err(e) = self
            .store(move |s| s.relaxed(|s| s.mark_terminal(id, outcome, ev, now))?)
            .await
        {
            tracing::error!(event = "journal_failed", vmid = action.vmid, error = %e);
        }
        result
    }

    // ---- destructive -----------------------------------------------------------------

    /// Decides and, if approved, executes one destructive action the planner proposed.
    /// While an earlier attempt on the same guest is in flight (its outcome not known
    /// yet, or held for an operator) nothing new is decided and no payload is offered:
    /// that attempt is settled first, by the same rules as crash recovery.
    pub async fn destructive<B: Backend>(
        &self,
        backend: &B,
        action: &DestructiveAction,
    ) -> DestructiveOutcome {
        let vmid = action.vmid;
        match self.settle_in_flight(backend, vmid).await {
            Ok(None) => {}
            Ok(Some(busy)) => return DestructiveOutcome::Failed(busy),
            Err(e) => return DestructiveOutcome::Failed(e),
        }
        let kind = action.guest;
        let provenance = match self.store(move |s| s.verified_provenance(vmid, kind)).await {
            Ok(ProvenanceCheck::None) => None,
            Ok(ProvenanceCheck::Verified(p)) => Some(journal_provenance(&p.kind)),
            Ok(ProvenanceCheck::Refused { why, .. }) => {
                // A record that does not hold up counts for nothing: the destroy needs a
                // signature like any other. Audited once per record.
                let first = self.noted.lock().map_or(true, |mut n| {
                    n.insert((format!("provenance:{vmid}:{why}"), RejectReason::BadFormat))
                });
                if first {
                    tracing::warn!(event = "provenance_refused", vmid, detail = %why);
                    let entry = AuditEvent::ProvenanceRefused {
                        detail: format!("provenance of {kind} {vmid}: {why}"),
                    }
                    .with(AuditFields::default().vmid(vmid).op(action.op));
                    if let Err(e) = self.audit(entry).await {
                        return DestructiveOutcome::Failed(e);
                    }
                }
                None
            }
            Err(e) => return DestructiveOutcome::Failed(e),
        };
        let class = classify(action.op, &[], provenance, None);
        if class.class == castellan_core::classify::Class::Benign {
            // Scratch recorded by this agent's own journal: no signature needed.
            return match self.run_destroy_benign(backend, action).await {
                Ok(()) => DestructiveOutcome::Executed { signers: vec![] },
                Err(e) => DestructiveOutcome::Failed(e.to_string()),
            };
        }
        let signers = match self.current_signers().await {
            Ok(s) => s,
            // No usable signer set: nothing can be accepted; the action stays pending.
            Err(_) => {
                return match self.announce_pending(action).await {
                    Ok(payload) => DestructiveOutcome::Pending { payload },
                    Err(e) => DestructiveOutcome::Failed(e),
                };
            }
        };
        let offered = match self.scan_inbox() {
            Ok(v) => v,
            Err(e) => return DestructiveOutcome::Failed(e),
        };
        for o in offered {
            let Ok(op) = &o.op else { continue };
            if op.guest != vmid || op.host != self.host || o.unsigned() {
                // Not for this action, or not signed yet: nothing to judge.
                continue;
            }
            let decision = match self
                .evaluate(signers.as_deref(), action, provenance, &o, op)
                .await
            {
                Ok(d) => d,
                Err(e) => return DestructiveOutcome::Failed(e),
            };
            match decision {
                Decision::Accepted(approval) => {
                    return self.execute_approved(backend, &approval, &o).await;
                }
                Decision::Rejected { reason, detail } => {
                    self.reject(&o, Some(op), reason, &detail).await;
                }
                Decision::Allowed | Decision::PendingSignature => {}
            }
        }
        match self.announce_pending(action).await {
            Ok(payload) => DestructiveOutcome::Pending { payload },
            Err(e) => DestructiveOutcome::Failed(e),
        }
    }

    /// Settles the in-flight intents of guest `vmid` (a destroy whose outcome was not
    /// known when it was last looked at). `Ok(None)` when none is left in flight;
    /// `Ok(Some(why))` when one still is (running, unknown, or held for an operator).
    async fn settle_in_flight<B: Backend>(
        &self,
        backend: &B,
        vmid: Vmid,
    ) -> Result<Option<String>, String> {
        let pending: Vec<castellan_store::Intent> = self
            .store(move |s| s.in_flight())
            .await?
            .into_iter()
            .filter(|i| {
                // An operation this castellan does not know is treated as the worst.
                let settles_once = Operation::from_name(&i.op)
                    .is_none_or(|o| o.spec().recovery != Recovery::Replan);
                i.vmid == vmid && (i.destructive || settles_once)
            })
            .collect();
        for intent in pending {
            if let Some(why) = &intent.held {
                return Ok(Some(format!(
                    "{} {} (intent {}) is held for an operator: {why}; see `castellan plan`",
                    intent.op, intent.vmid, intent.id
                )));
            }
            match self.recover_one(backend, &intent).await {
                Ok(Some(outcome)) => self.terminal(intent.id, outcome).await?,
                Ok(None) => {}
                Err(e) => {
                    return Ok(Some(format!(
                        "{} {} (intent {}) is still in flight: {e}",
                        intent.op, intent.vmid, intent.id
                    )));
                }
            }
            let still = self.store(move |s| s.intent(intent.id)).await?;
            if still.is_some_and(|i| !i.state.is_terminal()) {
                return Ok(Some(format!(
                    "{} {} (intent {}) is still in flight",
                    intent.op, intent.vmid, intent.id
                )));
            }
        }
        Ok(None)
    }

    async fn evaluate(
        &self,
        signers: Option<&SignerConfig>,
        action: &DestructiveAction,
        provenance: Option<JournalProvenance>,
        o: &OfferedOp,
        op: &SignedOp,
    ) -> Result<Decision, String> {
        if let Some(d) = unreadable_only(o) {
            return Ok(d);
        }
        let now = self.now();
        let nonce = op.nonce.clone();
        let facts = self
            .store(move |s| {
                Ok(StateFacts {
                    effective_now: s.effective_now(now)?,
                    nonce_consumed: s.nonce_consumed(&nonce)?,
                    state_since: s.epoch()?.map(|e| e.created_at),
                })
            })
            .await?;
        Ok(judge(
            signers,
            &self.host,
            action,
            provenance,
            Offer {
                op,
                bytes: &o.bytes,
                sigs: &o.sig_bytes(),
            },
            facts,
        ))
    }

    /// Audits a refusal and, when it is final, moves the op to `rejected/`.
    async fn reject(
        &self,
        o: &OfferedOp,
        op: Option<&SignedOp>,
        reason: RejectReason,
        detail: &str,
    ) {
        // More signatures may still arrive, a not-yet-valid op may become valid, and files
        // that changed a moment ago may still be being written: those stay in the inbox,
        // audited once.
        let final_ = !o.fresh
            && !matches!(
                reason,
                RejectReason::NotYetValid | RejectReason::ThresholdNotMet
            );
        if !final_ {
            let key = (o.name(), reason);
            let first = self.noted.lock().map_or(true, |mut n| n.insert(key));
            if !first {
                return;
            }
        }
        let mut fields = AuditFields::default();
        if let Some(op) = op {
            fields =
                AuditFields::action(op.guest, op.op.clone(), op.digest()).nonce(op.nonce.clone());
        }
        tracing::warn!(event = "op_rejected", op_file = %o.name(), reason = %reason, detail, final_);
        let entry = AuditEvent::OpRejected {
            reason,
            detail: detail.to_owned(),
        }
        .with(fields);
        if let Err(e) = self.audit(entry).await {
            tracing::error!(event = "journal_failed", error = %e);
            return;
        }
        if final_ {
            self.settle(o, Settled::Rejected(reason), detail).await;
        }
    }

    /// Writes (or keeps) the payload to sign for `action`, auditing it once.
    async fn announce_pending(&self, action: &DestructiveAction) -> Result<PathBuf, String> {
        let path = self
            .pending_dir
            .join(format!("{}-{}-{}.op", action.host, action.vmid, action.op));
        let now = self.now();
        // Keep a still-fresh payload for the same action, so an operator signing it is not
        // racing a rewrite.
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(existing) = SignedOp::parse(&bytes)
            && existing.op == action.op.as_str()
            && existing.host == action.host
            && existing.guest == action.vmid
            && existing.params == action.params
            && existing.precondition.as_deref() == Some(action.state_digest.as_str())
            && existing.not_after > now + SignedDuration::from_mins(10)
        {
            let mut announced = self.announced.lock().map_err(|_| "poisoned")?;
            if announced.get(&action.vmid) != Some(action) {
                announced.insert(action.vmid, action.clone());
                tracing::warn!(event = "signature_pending", vmid = action.vmid, op = %action.op, payload = %path.display(),
                    "destructive action waits for a signed op: castellan op sign {}", path.display());
            }
            return Ok(path);
        }
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let not_before = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let payload = action.payload(nonce.clone(), not_before, not_before + PENDING_TTL);
        // Refuse to offer operators something that could never verify (a node reporting
        // a digest outside the op format's alphabet, say).
        payload.validate().map_err(|e| {
            format!(
                "cannot offer {} of {} for signing: {e}",
                action.op, action.vmid
            )
        })?;
        let text = payload.render();
        std::fs::create_dir_all(&self.pending_dir)
            .and_then(|()| write_atomic(&path, text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let fields = AuditFields::action(action.vmid, action.op, payload.digest()).nonce(nonce);
        self.audit(AuditEvent::SignaturePending.with(fields))
            .await?;
        if let Ok(mut announced) = self.announced.lock() {
            announced.insert(action.vmid, action.clone());
        }
        tracing::warn!(event = "signature_pending", vmid = action.vmid, op = %action.op, payload = %path.display(),
            "destructive action waits for a signed op: castellan op sign {}", path.display());
        Ok(path)
    }

    /// A fresh look at the target of a destroy: whether it is still exactly what was
    /// approved (same kind, same configuration digest, no lock). Observation errors that
    /// may pass are retried a few times.
    async fn look<B: Backend>(&self, backend: &B, a: &DestructiveAction) -> Result<Look, String> {
        let mut tries = 0u32;
        let seen = loop {
            match backend.observe(a.guest, a.vmid).await {
                Ok(g) => break g,
                Err(e) if e.class != FailureClass::Gone && tries < 2 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(tries)))
                        .await;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot look at {} {} before its {}: {e}",
                        a.guest.noun(),
                        a.vmid,
                        a.op
                    ));
                }
            }
        };
        let Some(g) = seen else {
            return Ok(Look::Gone);
        };
        match g.spec.as_ref().map(|s| s.digest.as_str()) {
            Some(d) if d == a.state_digest => {}
            Some(d) => {
                return Ok(Look::Stale(format!(
                    "{} {}'s configuration digest is now {d}; the op was approved against {}",
                    a.guest.noun(),
                    a.vmid,
                    a.state_digest
                )));
            }
            None => {
                return Ok(Look::Stale(format!(
                    "{} {}'s configuration could not be read, so it cannot be shown unchanged",
                    a.guest.noun(),
                    a.vmid
                )));
            }
        }
        if let Some(lock) = &g.lock {
            return Ok(Look::Busy(format!(
                "{} {} is locked ({lock})",
                a.guest.noun(),
                a.vmid
            )));
        }
        Ok(Look::Proceed(g))
    }

    async fn execute_approved<B: Backend>(
        &self,
        backend: &B,
        approval: &Approval,
        o: &OfferedOp,
    ) -> DestructiveOutcome {
        let a = approval.action().clone();
        // The gate compared the op with what the planner saw; look again now, before the
        // nonce is spent, so a guest that changed since is refused and the op kept only
        // as long as it can still match.
        match self.look(backend, &a).await {
            Ok(Look::Proceed(_)) => {}
            Ok(Look::Stale(detail)) => {
                self.reject(
                    o,
                    o.op.as_ref().ok(),
                    RejectReason::StalePrecondition,
                    &detail,
                )
                .await;
                return self.pending_again(&a).await;
            }
            Ok(Look::Busy(why)) => return DestructiveOutcome::Failed(why),
            Ok(Look::Gone) => {
                return DestructiveOutcome::Failed(format!(
                    "{} {} is gone; nothing to destroy",
                    a.guest.noun(),
                    a.vmid
                ));
            }
            Err(e) => return DestructiveOutcome::Failed(e),
        }
        let mut fields =
            AuditFields::action(a.vmid, a.op, approval.op_digest()).nonce(approval.nonce());
        for s in approval.signers() {
            fields = fields.signer(s.clone());
        }
        tracing::info!(event = "signature_accepted", vmid = a.vmid, op = %a.op, signers = ?approval.signers());
        if let Err(e) = self
            .audit(AuditEvent::SignatureAccepted.with(fields.clone()))
            .await
        {
            return DestructiveOutcome::Failed(e);
        }
        self.crashpoint("accepted");
        let intent = NewIntent {
            action_id: approval.op_digest().to_owned(),
            op: a.op.into(),
            vmid: a.vmid,
            guest: a.guest,
            params: a.params.clone(),
            nonce: Some(approval.nonce().to_owned()),
            nonce_not_after: Some(approval.not_after()),
            destructive: true,
            upid_hint: Some(a.state_digest.clone()),
        };
        let now = self.now();
        let begun = match self
            .with_store(move |s| {
                s.begin_intent(intent, AuditEvent::IntentRecorded.with(fields), now)
            })
            .await
        {
            Ok(b) => b,
            Err(e) => return DestructiveOutcome::Failed(e),
        };
        let id = match begun {
            Ok((id, _)) => id,
            Err(StoreError::Replayed { .. }) => {
                let op = o.op.as_ref().ok();
                self.reject(o, op, RejectReason::Replayed, "nonce already consumed")
                    .await;
                return self.pending_again(&a).await;
            }
            Err(StoreError::Expired { .. }) => {
                let op = o.op.as_ref().ok();
                let why = "op expired before it could be journaled";
                self.reject(o, op, RejectReason::Expired, why).await;
                return self.pending_again(&a).await;
            }
            Err(StoreError::DuplicateAction { .. }) => {
                self.settle(o, Settled::Done, "already executed").await;
                return DestructiveOutcome::Executed {
                    signers: approval.signers().to_vec(),
                };
            }
            Err(e) => return DestructiveOutcome::Failed(store_err(e)),
        };
        self.crashpoint("intent");
        let result = self.run_destroy(backend, id, &a).await;
        self.crashpoint("terminal");
        match result {
            Ok(()) => {
                self.settle(o, Settled::Done, "executed").await;
                DestructiveOutcome::Executed {
                    signers: approval.signers().to_vec(),
                }
            }
            Err(DestroyError::Stale(detail)) => {
                // The op is spent (its nonce was consumed) and can never match again.
                self.settle(
                    o,
                    Settled::Rejected(RejectReason::StalePrecondition),
                    &detail,
                )
                .await;
                self.pending_again(&a).await
            }
            Err(DestroyError::InFlight(e)) => DestructiveOutcome::Failed(e),
            Err(DestroyError::Failed(e)) => {
                self.settle(o, Settled::Done, &format!("used; the destroy failed: {e}"))
                    .await;
                DestructiveOutcome::Failed(e)
            }
        }
    }

    /// The action waits for a fresh approval: a new payload is offered on the next round
    /// (the guest is observed again, so the payload is bound to its current state).
    async fn pending_again(&self, a: &DestructiveAction) -> DestructiveOutcome {
        if let Ok(mut announced) = self.announced.lock() {
            announced.remove(&a.vmid);
        }
        DestructiveOutcome::Failed(format!(
            "{} of {} {} needs a fresh approval",
            a.op,
            a.guest.noun(),
            a.vmid
        ))
    }

    /// Moves an op out of the inbox, audited.
    async fn settle(&self, o: &OfferedOp, how: Settled, detail: &str) {
        let Some(inbox) = &self.inbox else { return };
        let mut fields = AuditFields::default();
        if let Ok(op) = &o.op {
            fields =
                AuditFields::action(op.guest, op.op.clone(), op.digest()).nonce(op.nonce.clone());
        }
        let moved = inbox.settle(o, how, detail);
        let entry = AuditEvent::OpSettled {
            file: o.name(),
            to: how.subdir().to_owned(),
            detail: match &moved {
                Ok(()) => detail.to_owned(),
                Err(e) => format!("{detail}; the files could not be moved: {e}"),
            },
        }
        .with(fields);
        if let Err(e) = self.audit(entry).await {
            tracing::error!(event = "journal_failed", error = %e);
        }
        match moved {
            Ok(()) => {
                tracing::info!(event = "op_settled", op_file = %o.name(), to = how.subdir(), detail);
            }
            Err(e) => {
                tracing::error!(event = "inbox_settle_failed", op_file = %o.name(), error = %e);
            }
        }
    }

    /// Executes the destroy of a journaled intent: shuts the guest down if it runs
    /// (hard stop allowed: it is about to be destroyed), records which of the node's
    /// destroy tasks for it already exist, looks at it a last time and sends the DELETE
    /// only if it is still exactly what was approved, then records the task and its end.
    ///
    /// The last look is the last request before the DELETE: the window in which a change
    /// to the guest goes unnoticed is one round trip (the node offers no conditional
    /// destroy; see docs/signed-ops.md).
    async fn run_destroy<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let Some(g) = self.settled_look(backend, id, a, false).await? else {
            return Ok(());
        };
        if g.run != ActualRun::Stopped {
            let down = Action {
                vmid: a.vmid,
                guest: a.guest,
                kind: Operation::Shutdown,
                params: BTreeMap::new(),
                delete: Vec::new(),
                // The guest is about to be destroyed: a hard stop after the timeout
                // loses nothing the destroy would not.
                shutdown: Some(ShutdownPolicy {
                    timeout_secs: DESTROY_SHUTDOWN_SECS,
                    force_stop: true,
                }),
                digest: None,
                reason: format!("shutting down before {}", a.op),
            };
            if let Err(e) = backend.execute(&down).await {
                return self
                    .not_sent(id, a, format!("could not shut it down first: {e}"))
                    .await;
            }
            self.crashpoint("stopped");
        }
        // Which destroy tasks exist already: any other one found later is this one's.
        let seen = match backend.tasks_of(a.guest, a.vmid, a.op).await {
            Ok(seen) => seen
                .unwrap_or_default()
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>(),
            Err(e) => {
                return self
                    .not_sent(id, a, format!("cannot read the node's task list: {e}"))
                    .await;
            }
        };
        let now = self.now();
        self.store(move |s| s.mark_prepared(id, &seen, now))
            .await
            .map_err(DestroyError::InFlight)?;
        // The last look, as close to the DELETE as the API allows.
        if self.settled_look(backend, id, a, true).await?.is_none() {
            return Ok(());
        }
        self.send_delete(backend, id, a).await
    }

    /// A look at the target of a journaled destroy that settles the intent when it cannot
    /// go on: `Ok(Some(guest))` to go on; `Ok(None)` when the guest is gone (the intent is
    /// settled); otherwise the intent is rolled back (nothing was sent) and the reason
    /// returned. With `stopped`, a guest that runs again does not go on either.
    async fn settled_look<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        stopped: bool,
    ) -> Result<Option<castellan_core::model::ActualGuest>, DestroyError> {
        match self.look(backend, a).await {
            Ok(Look::Proceed(g)) if stopped && g.run != ActualRun::Stopped => self
                .not_sent(id, a, "it is running again".to_owned())
                .await
                .map(|()| None),
            Ok(Look::Proceed(g)) => Ok(Some(g)),
            Ok(Look::Stale(d)) => {
                self.refuse_stale(id, a, &d).await?;
                Err(DestroyError::Stale(d))
            }
            Ok(Look::Gone) => self.gone_before_delete(id, a).await.map(|()| None),
            Ok(Look::Busy(why)) => self.not_sent(id, a, why).await.map(|()| None),
            Err(e) => self.not_sent(id, a, e).await.map(|()| None),
        }
    }

    /// Sends the DELETE of a journaled, prepared intent, records its task and waits for
    /// the task's end.
    async fn send_delete<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let task = match backend
            .dispatch_signed(a.op, a.guest, a.vmid, &a.params)
            .await
        {
            Ok(t) => t,
            // The request may have reached the node: leave the intent in flight; the
            // node's task list tells later whether it did.
            Err(e) if e.class == FailureClass::Unknown => {
                return Err(DestroyError::InFlight(format!(
                    "{} {}: the destroy request's fate is unknown ({e}); it is settled from the node's task list",
                    a.op, a.vmid
                )));
            }
            Err(e) if e.class == FailureClass::Gone => {
                return self.gone_before_delete(id, a).await;
            }
            Err(e) => {
                let error = format!("the node refused the destroy: {e}");
                self.terminal(
                    id,
                    Outcome::Failed {
                        error: error.clone(),
                    },
                )
                .await
                .map_err(DestroyError::InFlight)?;
                return Err(DestroyError::Failed(format!(
                    "{} {}: {error}",
                    a.op, a.vmid
                )));
            }
        };
        self.crashpoint("posted");
        let now = self.now();
        let t = task.as_str().to_owned();
        self.store(move |s| {
            s.mark_dispatched(id, Some(&t), AuditEvent::TaskDispatched { upid: None }, now)
        })
        .await
        .map_err(DestroyError::InFlight)?;
        self.crashpoint("dispatched");
        self.finish_task(backend, id, a, &task).await
    }

    /// The guest changed after approval: refused as `stale_precondition` (audited) and
    /// the intent rolled back; nothing was destroyed.
    async fn refuse_stale(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        detail: &str,
    ) -> Result<(), DestroyError> {
        tracing::warn!(
            event = "op_rejected",
            vmid = a.vmid,
            reason = "stale_precondition",
            detail
        );
        let intent = self
            .store(move |s| s.intent(id))
            .await
            .map_err(DestroyError::InFlight)?;
        let mut fields = AuditFields::default().vmid(a.vmid).op(a.op).intent(id);
        if let Some(i) = intent {
            fields = fields.action_digest(i.action_id);
            if let Some(n) = i.nonce {
                fields = fields.nonce(n);
            }
        }
        self.audit(
            AuditEvent::OpRejected {
                reason: RejectReason::StalePrecondition,
                detail: detail.to_owned(),
            }
            .with(fields),
        )
        .await
        .map_err(DestroyError::InFlight)?;
        self.terminal(
            id,
            Outcome::RolledBack {
                reason: format!("stale_precondition: {detail}; nothing was sent"),
            },
        )
        .await
        .map_err(DestroyError::InFlight)
    }

    /// Nothing destructive was sent and nothing will be: the intent is rolled back.
    async fn not_sent(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        why: String,
    ) -> Result<(), DestroyError> {
        self.terminal(
            id,
            Outcome::RolledBack {
                reason: format!("{why}; the destroy was not sent"),
            },
        )
        .await
        .map_err(DestroyError::InFlight)?;
        Err(DestroyError::Failed(format!("{} {}: {why}", a.op, a.vmid)))
    }

    /// The guest disappeared before the DELETE: nothing was destroyed by this intent.
    async fn gone_before_delete(
        &self,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let reason = format!(
            "{} {} was gone before the destroy was sent; nothing destroyed",
            a.guest.noun(),
            a.vmid
        );
        self.terminal(id, Outcome::RolledBack { reason })
            .await
            .map_err(DestroyError::InFlight)
    }

    async fn finish_task<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        task: &TaskHandle,
    ) -> Result<(), DestroyError> {
        match backend.wait_task(task).await {
            Ok(_) => {
                self.terminal(id, Outcome::Succeeded)
                    .await
                    .map_err(DestroyError::InFlight)?;
                let vmid = a.vmid;
                let _ = self.with_store(move |s| s.forget_provenance(vmid)).await;
                tracing::info!(event = "action_applied", vmid = a.vmid, action = %a.op, task = %task);
                Ok(())
            }
            // Not an outcome: the task's end is still to be learnt. The intent stays in
            // flight (no new payload for the guest) and is settled by the node's answer.
            Err(e) if e.class == FailureClass::Unknown => Err(DestroyError::InFlight(format!(
                "{} {}: task {task} has not ended yet as far as is known ({e})",
                a.op, a.vmid
            ))),
            Err(e) => {
                self.terminal(
                    id,
                    Outcome::Failed {
                        error: e.message.clone(),
                    },
                )
                .await
                .map_err(DestroyError::InFlight)?;
                Err(DestroyError::Failed(format!("{} {}: {e}", a.op, a.vmid)))
            }
        }
    }

    async fn terminal(&self, id: IntentId, outcome: Outcome) -> Result<(), String> {
        let now = self.now();
        let ev = outcome.event();
        self.store(move |s| s.mark_terminal(id, outcome, ev, now).map(|_| ()))
            .await
    }

    async fn run_destroy_benign<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let action_id = {
            let mut h = Sha256::new();
            h.update(format!(
                "{}:{}:{}:{}:{}",
                a.op, a.host, a.guest, a.vmid, a.state_digest
            ));
            hex::encode(h.finalize())
        };
        let fields = AuditFields::action(a.vmid, a.op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: a.op.into(),
            vmid: a.vmid,
            guest: a.guest,
            params: a.params.clone(),
            nonce: None,
            nonce_not_after: None,
            destructive: false,
            upid_hint: Some(a.state_digest.clone()),
        };
        let now = self.now();
        // Data-bearing even when benign by provenance: journaled at full durability.
        let id = self
            .store(move |s| allow_and_begin(s, intent, fields, now))
            .await
            .map_err(DestroyError::Failed)?;
        self.run_destroy(backend, id, a).await
    }

    // ---- recovery --------------------------------------------------------------------

    /// Settles every intent without a terminal record, before anything new runs: asks the
    /// node once about each task, then resumes, completes or rolls back; an intent whose
    /// fate cannot be told from the evidence is held for an operator (audited, shown by
    /// `castellan plan`). Returns how many intents it handled.
    pub async fn recover<B: Backend>(&self, backend: &B) -> Result<u64, String> {
        self.audit(AuditEvent::AgentStarted.into()).await?;
        let in_flight = self.store(|s| s.in_flight()).await?;
        let n = in_flight.len() as u64;
        for intent in in_flight {
            if let Some(why) = &intent.held {
                tracing::error!(event = "intent_held", intent = intent.id.0, vmid = intent.vmid, op = %intent.op, reason = %why,
                    "held for an operator: nothing more is attempted on this guest until one settles it");
                continue;
            }
            let fields =
                AuditFields::action(intent.vmid, intent.op.clone(), intent.action_id.clone())
                    .intent(intent.id);
            self.audit(AuditEvent::RecoveryResumed.with(fields)).await?;
            tracing::warn!(event = "recovery_resumed", intent = intent.id.0, vmid = intent.vmid, op = %intent.op, state = %intent.state.as_str());
            let outcome = self.recover_one(backend, &intent).await?;
            if let Some(outcome) = outcome {
                tracing::warn!(event = "recovery_settled", intent = intent.id.0, vmid = intent.vmid, outcome = ?outcome);
                self.terminal(intent.id, outcome).await?;
            }
        }
        self.audit(AuditEvent::RecoveryCompleted { intents: n }.into())
            .await?;
        Ok(n)
    }

    /// Holds `intent` for an operator, audited.
    async fn hold(&self, intent: &castellan_store::Intent, why: String) -> Result<(), String> {
        tracing::error!(event = "intent_held", intent = intent.id.0, vmid = intent.vmid, op = %intent.op, reason = %why,
            "cannot tell whether the destroy was sent: held for an operator (castellan plan shows it)");
        let now = self.now();
        let id = intent.id;
        self.store(move |s| {
            s.hold_intent(
                id,
                &why,
                AuditEvent::IntentHeld {
                    reason: String::new(),
                },
                now,
            )
            .map(|_| ())
        })
        .await
    }

    /// Settles one in-flight intent. Returns the outcome to record, or `None` when the
    /// intent was resumed and recorded its own outcome, or was held for an operator.
    /// `Err` when the node could not be asked: the intent stays in flight.
    async fn recover_one<B: Backend>(
        &self,
        backend: &B,
        intent: &castellan_store::Intent,
    ) -> Result<Option<Outcome>, String> {
        let Some(op) = Operation::from_name(&intent.op) else {
            self.hold(
                intent,
                format!(
                    "its operation {:?} is not one this castellan knows, so how to settle it cannot be told",
                    intent.op
                ),
            )
            .await?;
            return Ok(None);
        };
        // How this operation is settled is its row of the operation table.
        let destructive = match op.spec().recovery {
            Recovery::Replan => intent.destructive,
            Recovery::CompleteOnce => true,
            rule @ (Recovery::RollBack | Recovery::AskOperator) => {
                self.hold(
                    intent,
                    format!("{op} is settled by {rule:?}, which this version does not carry out: held for an operator"),
                )
                .await?;
                return Ok(None);
            }
        };
        // The task: recorded at dispatch, or, if the agent died between the request and
        // recording its answer, found in the node's task list as a task that was not
        // there when the request was prepared. No clock is compared: the node's own list
        // before and after is the evidence.
        let mut task = intent.upid.clone();
        if task.is_none() && destructive {
            match &intent.task_mark {
                // Never prepared, so never sent: the DELETE only goes out after the mark.
                None => {}
                Some(TaskMark::Legacy) => {
                    self.hold(
                        intent,
                        "journaled by an earlier version without a task mark: whether its destroy was sent cannot be told".into(),
                    )
                    .await?;
                    return Ok(None);
                }
                Some(TaskMark::Seen(before)) => {
                    let now_listed = backend
                        .tasks_of(intent.guest, intent.vmid, op)
                        .await
                        .map_err(|e| e.message)?;
                    let Some(now_listed) = now_listed else {
                        self.hold(intent, "the node's task list cannot be read, so whether the destroy was sent cannot be told".into()).await?;
                        return Ok(None);
                    };
                    let new: Vec<&str> = now_listed
                        .iter()
                        .map(TaskHandle::as_str)
                        .filter(|t| !before.iter().any(|b| b == t))
                        .collect();
                    match new.as_slice() {
                        [] => {}
                        [one] => {
                            tracing::warn!(event = "recovery_found_task", intent = intent.id.0, task = %one);
                            // Journal the task found, as the dispatch would have.
                            let (id, t, now) = (intent.id, (*one).to_owned(), self.now());
                            self.store(move |s| {
                                s.mark_dispatched(
                                    id,
                                    Some(&t),
                                    AuditEvent::TaskDispatched { upid: None },
                                    now,
                                )
                            })
                            .await?;
                            task = Some((*one).to_owned());
                        }
                        many => {
                            let list: Vec<&str> = many.to_vec();
                            self.hold(
                                intent,
                                format!(
                                    "{} destroy tasks for {} appeared since it was prepared ({}); which is its own cannot be told",
                                    many.len(),
                                    intent.vmid,
                                    list.join(", ")
                                ),
                            )
                            .await?;
                            return Ok(None);
                        }
                    }
                }
            }
        }
        if let Some(task) = task.as_deref().map(TaskHandle::new) {
            let task = &task;
            match backend
                .task_status_once(task)
                .await
                .map_err(|e| e.message)?
            {
                TaskState::Running => {
                    return match backend.wait_task(task).await {
                        Ok(_) => Ok(Some(Outcome::Succeeded)),
                        Err(e) if e.class == FailureClass::Unknown => Err(e.message),
                        Err(e) => Ok(Some(Outcome::Failed { error: e.message })),
                    };
                }
                TaskState::Succeeded { .. } => return Ok(Some(Outcome::Succeeded)),
                TaskState::Failed { exitstatus } => {
                    return Ok(Some(Outcome::Failed { error: exitstatus }));
                }
                TaskState::Unknown => {} // fall back to looking at the guest
            }
        }
        if !destructive {
            // Benign and idempotent: the planner re-plans against a fresh observation.
            return Ok(Some(Outcome::RolledBack {
                reason: "interrupted before its task was known; re-planned".into(),
            }));
        }
        // A destroy with no task of its own on the node.
        let mut seen = backend
            .observe(intent.guest, intent.vmid)
            .await
            .map_err(|e| e.message)?;
        // A destroy in progress holds the guest's lock: give it time to finish.
        for _ in 0..50 {
            match &seen {
                Some(g) if g.lock.is_some() => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    seen = backend
                        .observe(intent.guest, intent.vmid)
                        .await
                        .map_err(|e| e.message)?;
                }
                _ => break,
            }
        }
        let Some(g) = seen else {
            return Ok(Some(Outcome::Succeeded));
        };
        if task.is_some() {
            // Its task is known but the node no longer knows it, and the guest is still
            // there: whether the destroy ran and failed or never ran cannot be told.
            self.hold(
                intent,
                "its task is no longer known to the node and the guest still exists".into(),
            )
            .await?;
            return Ok(None);
        }
        let digest = g.spec.as_ref().map(|s| s.digest.clone());
        let unchanged = digest.is_some() && digest == intent.upid_hint;
        // The approval's window is judged by the clock that cannot go backwards.
        let now = self.now();
        let effective = self.store(move |s| s.effective_now(now)).await?;
        let valid = intent.nonce_not_after.is_none_or(|t| effective < t);
        if unchanged && valid && g.lock.is_none() {
            // Never sent: no task of its own on the node, the guest exactly as approved,
            // and the approval still valid, so finish what was approved, once.
            let a = DestructiveAction {
                op,
                host: self.host.clone(),
                vmid: intent.vmid,
                guest: intent.guest,
                params: intent.params.clone(),
                state_digest: g.spec.map(|s| s.digest).unwrap_or_default(),
            };
            if intent.task_mark.is_none() {
                // run_destroy records the terminal outcome itself (or leaves the intent
                // in flight when the node's answer is unknown).
                return match self.run_destroy(backend, intent.id, &a).await {
                    Err(DestroyError::InFlight(e)) => Err(e),
                    _ => Ok(None),
                };
            }
            // Prepared before, found unsent: prepared again by a fresh run is not
            // possible (the mark is written once), so send it from here.
            return match self.resend_prepared(backend, intent.id, &a).await {
                Err(DestroyError::InFlight(e)) => Err(e),
                _ => Ok(None),
            };
        }
        Ok(Some(Outcome::RolledBack {
            reason: if !unchanged {
                "the guest changed since approval; not retried".into()
            } else if !valid {
                "the approval expired before the destroy was sent".into()
            } else {
                "the guest is locked; not retried".into()
            },
        }))
    }

    /// Sends the DELETE of an intent that was prepared (task mark recorded) but whose
    /// request never reached the node, after a last look.
    async fn resend_prepared<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        if self.settled_look(backend, id, a, true).await?.is_none() {
            return Ok(());
        }
        self.send_delete(backend, id, a).await
    }

    // ---- inbox housekeeping ----------------------------------------------------------

    /// Settles inbox ops that can never authorise anything here: malformed, for another
    /// host, already used, already executed or expired. Ops that may still match a
    /// pending action stay.
    pub async fn sweep(&self) {
        // Spent nonces are kept until their op expired (by the never-backwards clock), so
        // pruning can never make a still-valid op replayable.
        let now = self.now();
        match self.with_store(move |s| s.prune_nonces(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(event = "nonces_pruned", count = n),
            Ok(Err(e)) => tracing::warn!(event = "nonce_prune_failed", error = %e),
            Err(e) => tracing::warn!(event = "nonce_prune_failed", error = %e),
        }
        if self.inbox.is_none() {
            return;
        }
        // Without a usable signer set nothing can be judged: leave every op where it is.
        let Ok(signers) = self.current_signers().await else {
            return;
        };
        let offered = match self.scan_inbox() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(event = "inbox_unreadable", error = %e);
                return;
            }
        };
        for o in offered {
            let op = match &o.op {
                Ok(op) => op.clone(),
                Err(e) => {
                    self.reject(&o, None, RejectReason::BadFormat, &e.to_string())
                        .await;
                    continue;
                }
            };
            let now = self.now();
            let nonce = op.nonce.clone();
            let digest = op.digest();
            let vmid = op.guest;
            let looked = self
                .store(move |s| {
                    let eff = s.effective_now(now)?;
                    let consumed = s.nonce_consumed(&nonce)?;
                    let intents = s.intents_for(vmid)?;
                    let mine = intents.iter().filter(|i| i.action_id == digest);
                    let executing = mine.clone().any(|i| !i.state.is_terminal());
                    let executed = mine.clone().any(|i| i.state.is_terminal());
                    let since = s.epoch()?.map(|e| e.created_at);
                    Ok((eff, consumed, since, executing, executed))
                })
                .await;
            let (effective, consumed, state_since, executing, executed) = match looked {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(event = "journal_failed", error = %e);
                    return;
                }
            };
            if executing {
                // Its intent is in flight: the executor settles it when it is done.
                continue;
            }
            if executed {
                self.settle(&o, Settled::Done, "already executed: a replay of a used op")
                    .await;
                continue;
            }
            if o.unsigned() {
                // Not signed yet: it waits, unless it can never become valid.
                if effective >= op.not_after && !o.fresh {
                    self.reject(
                        &o,
                        Some(&op),
                        RejectReason::Expired,
                        &format!("op expired at {} before it was signed", op.not_after),
                    )
                    .await;
                }
                continue;
            }
            let Some(operation) = Operation::from_name(&op.op) else {
                let detail = format!(
                    "unknown operation {:?}: no castellan of this version acts on it",
                    op.op
                );
                self.reject(&o, Some(&op), RejectReason::BadFormat, &detail)
                    .await;
                continue;
            };
            // Judge it against the action it describes: this reports signature problems
            // first, then the host, the window and the nonce, exactly as the gate would.
            let as_described = DestructiveAction {
                op: operation,
                host: self.host.clone(),
                vmid: op.guest,
                guest: op.kind,
                params: op.params.clone(),
                state_digest: op.precondition.clone().unwrap_or_default(),
            };
            let decision = unreadable_only(&o).unwrap_or_else(|| {
                judge(
                    signers.as_deref(),
                    &self.host,
                    &as_described,
                    None,
                    Offer {
                        op: &op,
                        bytes: &o.bytes,
                        sigs: &o.sig_bytes(),
                    },
                    StateFacts {
                        nonce_consumed: consumed,
                        effective_now: effective,
                        state_since,
                    },
                )
            });
            if let Decision::Rejected { reason, detail } = decision {
                self.reject(&o, Some(&op), reason, &detail).await;
            }
        }
    }
}

/// How long a guest about to be destroyed is given to shut down before the node stops it.
pub const DESTROY_SHUTDOWN_SECS: u32 = 60;

/// What a fresh look at a destroy's target found.
#[derive(Debug)]
enum Look {
    /// Exactly as approved: go on.
    Proceed(castellan_core::model::ActualGuest),
    /// Changed since approval.
    Stale(String),
    /// Locked by a task (backup, migration, ...): not now.
    Busy(String),
    /// No longer there (as that kind).
    Gone,
}

/// Why a destroy did not complete.
#[derive(Debug)]
enum DestroyError {
    /// The guest changed after approval; refused and rolled back, nothing destroyed.
    Stale(String),
    /// Settled without destroying (refused by the node, or not sent).
    Failed(String),
    /// Its outcome is not known yet: the intent stays in flight.
    InFlight(String),
}

impl std::fmt::Display for DestroyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestroyError::Stale(s) => write!(f, "stale_precondition: {s}"),
            DestroyError::Failed(s) | DestroyError::InFlight(s) => f.write_str(s),
        }
    }
}

/// The signer set a gatekeeper decides with, and where it comes from.
struct SignerState {
    /// `signers.toml`, re-read at every decision; `None` for a fixed set.
    file: Option<PathBuf>,
    /// What the last decision used (or the fixed set).
    last: Option<Result<Option<Arc<SignerConfig>>, String>>,
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

/// The refusal of an op whose signature files all exist but none could be read
/// (oversize, not a regular file); `None` when some signature was read.
fn unreadable_only(o: &OfferedOp) -> Option<Decision> {
    if !o.sigs.is_empty() || o.bad_sigs.is_empty() {
        return None;
    }
    let list: Vec<String> = o
        .bad_sigs
        .iter()
        .map(|b| {
            let name = b.path.file_name().map(|n| n.to_string_lossy().into_owned());
            format!("{}: {}", name.unwrap_or_default(), b.problem)
        })
        .collect();
    Some(Decision::Rejected {
        reason: RejectReason::BadFormat,
        detail: format!("no readable signature ({})", list.join("; ")),
    })
}

/// Audits a benign gate decision and journals its intent.
fn allow_and_begin(
    s: &mut Store,
    intent: NewIntent,
    fields: AuditFields,
    now: Timestamp,
) -> Result<IntentId, StoreError> {
    s.append_audit(AuditEvent::ActionAllowed.with(fields.clone()), now)?;
    s.begin_intent(intent, AuditEvent::IntentRecorded.with(fields), now)
        .map(|(id, _)| id)
}

fn journal_provenance(kind: &ProvenanceKind) -> JournalProvenance {
    match kind {
        ProvenanceKind::CreatedByAgent { intent } => JournalProvenance::CreatedByAgent {
            transaction: intent.0,
        },
        ProvenanceKind::Scratch { intent } => JournalProvenance::AgentScratch {
            transaction: intent.0,
        },
    }
}

/// A benign action's journal id: the action as planned plus a random part, because the
/// same benign action may legitimately run again later (a guest stopped out of band is
/// started again with the same configuration digest), and benign idempotency comes from
/// re-planning, not from the id.
fn benign_action_id(action: &Action) -> String {
    let mut h = Sha256::new();
    h.update(action.vmid.to_be_bytes());
    h.update(action.kind.as_str());
    for (k, v) in &journal_params(action) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update(action.digest.as_deref().unwrap_or(""));
    h.update(rand::random::<[u8; 16]>());
    hex::encode(h.finalize())
}

/// What the journal records of a benign action's parameters, for people reading it
/// (`castellan journal`): the values set, the keys removed (`delete`), and a shutdown's
/// timeout and whether a hard stop may follow.
fn journal_params(action: &Action) -> BTreeMap<String, String> {
    let mut p = action.params.clone();
    if !action.delete.is_empty() {
        p.insert("delete".to_owned(), action.delete.join(","));
    }
    if let Some(s) = action.shutdown {
        p.insert("timeout".to_owned(), s.timeout_secs.to_string());
        p.insert("force_stop".to_owned(), s.force_stop.to_string());
    }
    p
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
