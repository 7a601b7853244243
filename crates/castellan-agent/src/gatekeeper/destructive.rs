//! Destructive execution: a destroy judged against the inbox's signed ops, announced for signing when there is none, and carried out once, re-checking its target after every preparatory step.

use super::*;

/// How long a guest about to be destroyed is given to shut down before the node stops it.
pub const DESTROY_SHUTDOWN_SECS: u32 = 60;

/// What a fresh look at a destroy's target found.
#[derive(Debug)]
pub(super) enum Look {
    /// Exactly as approved: go on.
    Proceed(castellan_backend::Observed),
    /// Changed since approval.
    Stale(String),
    /// Locked by a task (backup, migration, ...): not now.
    Busy(String),
    /// No longer there (as that kind).
    Gone,
}

/// Why a destroy did not complete.
#[derive(Debug)]
pub(super) enum DestroyError {
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

pub(super) fn journal_provenance(kind: &ProvenanceKind) -> JournalProvenance {
    match kind {
        ProvenanceKind::CreatedByAgent { intent } => JournalProvenance::CreatedByAgent {
            transaction: intent.0,
        },
        ProvenanceKind::Scratch { intent } => JournalProvenance::AgentScratch {
            transaction: intent.0,
        },
    }
}

impl Gatekeeper {
    /// Decides and, if approved, executes one destructive action the planner proposed.
    /// While an earlier attempt on the same guest is in flight (its outcome not known
    /// yet, or held for an operator) nothing new is decided and no payload is offered:
    /// that attempt is settled first, by the same rules as crash recovery.
    pub async fn destructive<B: Backend>(
        &self,
        backend: &B,
        action: &DestructiveAction,
    ) -> DestructiveOutcome {
        let target = action.target.clone();
        match self.settle_in_flight(backend, &target).await {
            Ok(None) => {}
            Ok(Some(busy)) => return DestructiveOutcome::Failed(busy),
            Err(e) => return DestructiveOutcome::Failed(e.to_string()),
        }
        // Provenance is recorded for guests the agent created; other targets have none.
        let guest = target.as_guest();
        let provenance = match self
            .store(move |s| match guest {
                Some((kind, vmid)) => s.verified_provenance(vmid, kind),
                None => Ok(ProvenanceCheck::None),
            })
            .await
        {
            Ok(ProvenanceCheck::None) => None,
            Ok(ProvenanceCheck::Verified(p)) => Some(journal_provenance(&p.kind)),
            Ok(ProvenanceCheck::Refused { why, .. }) => {
                // A record that does not hold up counts for nothing: the destroy needs a
                // signature like any other. Audited once per record.
                let first = self.noted.lock().map_or(true, |mut n| {
                    n.insert((
                        format!("provenance:{target}:{why}"),
                        RejectReason::BadFormat,
                    ))
                });
                if first {
                    tracing::warn!(event = "provenance_refused", %target, detail = %why);
                    let entry = AuditEvent::ProvenanceRefused {
                        detail: format!("provenance of {target}: {why}"),
                    }
                    .with(AuditFields::default().target(target.clone()).op(action.op));
                    if let Err(e) = self.audit(entry).await {
                        return DestructiveOutcome::Failed(e.to_string());
                    }
                }
                None
            }
            Err(e) => return DestructiveOutcome::Failed(e.to_string()),
        };
        let class = classify(action.op, &[], provenance, None);
        if class.class == castellan_core::classify::Class::Benign {
            // Scratch recorded by this agent's own journal: no signature needed.
            return match self.run_destroy_benign(backend, action).await {
                Ok(id) => DestructiveOutcome::Executed {
                    signers: vec![],
                    backup: self.backup_of(id).await,
                },
                Err(e) => DestructiveOutcome::Failed(e.to_string()),
            };
        }
        let signers = match self.current_signers().await {
            Ok(s) => s,
            // No usable signer set: nothing can be accepted; the action stays pending.
            Err(_) => {
                return match self.announce_pending(action).await {
                    Ok(payload) => DestructiveOutcome::Pending { payload },
                    Err(e) => DestructiveOutcome::Failed(e.to_string()),
                };
            }
        };
        let offered = match self.scan_inbox(false).await {
            Ok(v) => v,
            Err(e) => return DestructiveOutcome::Failed(e.to_string()),
        };
        for o in offered.iter() {
            let Ok(op) = &o.op else { continue };
            if !op.target.same_slot(&target) || op.host != self.host || o.unsigned() {
                // Not for this action, or not signed yet: nothing to judge.
                continue;
            }
            let decision = match self
                .evaluate(signers.as_deref(), action, provenance, o, op)
                .await
            {
                Ok(d) => d,
                Err(e) => return DestructiveOutcome::Failed(e.to_string()),
            };
            match decision {
                Decision::Accepted(approval) => {
                    return self.execute_approved(backend, &approval, o).await;
                }
                Decision::Rejected { reason, detail } => {
                    self.reject(o, Some(op), reason, &detail).await;
                }
                Decision::Allowed | Decision::PendingSignature => {}
            }
        }
        match self.announce_pending(action).await {
            Ok(payload) => DestructiveOutcome::Pending { payload },
            Err(e) => DestructiveOutcome::Failed(e.to_string()),
        }
    }

    /// Settles the in-flight intents of `target` (a destroy whose outcome was not
    /// known when it was last looked at). `Ok(None)` when none is left in flight;
    /// `Ok(Some(why))` when one still is (running, unknown, or held for an operator).
    pub(super) async fn settle_in_flight<B: Backend>(
        &self,
        backend: &B,
        target: &Target,
    ) -> Result<Option<String>, GateError> {
        let pending: Vec<castellan_store::Intent> = self
            .store(move |s| s.in_flight())
            .await?
            .into_iter()
            .filter(|i| {
                // An operation this castellan does not know is treated as the worst.
                let settles_once = Operation::from_name(&i.op)
                    .is_none_or(|o| o.spec().recovery != Recovery::Replan);
                i.target.same_slot(target) && (i.destructive || settles_once)
            })
            .collect();
        for intent in pending {
            if let Some(why) = &intent.held {
                return Ok(Some(format!(
                    "{} {} (intent {}) is held for an operator: {why}; see `castellan plan`",
                    intent.op, intent.target, intent.id
                )));
            }
            match self.recover_one(backend, &intent).await {
                Ok(Some(outcome)) => self.terminal(intent.id, outcome).await?,
                Ok(None) => {}
                Err(e) => {
                    return Ok(Some(format!(
                        "{} {} (intent {}) is still in flight: {e}",
                        intent.op, intent.target, intent.id
                    )));
                }
            }
            let still = self.store(move |s| s.intent(intent.id)).await?;
            if still.is_some_and(|i| !i.state.is_terminal()) {
                return Ok(Some(format!(
                    "{} {} (intent {}) is still in flight",
                    intent.op, intent.target, intent.id
                )));
            }
        }
        Ok(None)
    }

    pub(super) async fn evaluate(
        &self,
        signers: Option<&SignerConfig>,
        action: &DestructiveAction,
        provenance: Option<JournalProvenance>,
        o: &OfferedOp,
        op: &SignedOp,
    ) -> Result<Decision, GateError> {
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

    /// Writes (or keeps) the payload to sign for `action`, auditing it once.
    pub(super) async fn announce_pending(
        &self,
        action: &DestructiveAction,
    ) -> Result<PathBuf, GateError> {
        let path = self.payload_path(action);
        let now = self.now();
        // Keep a still-fresh payload for the same action, so an operator signing it is not
        // racing a rewrite.
        let read = path.clone();
        let current = blocking("pending payload", move || std::fs::read(read)).await?;
        if let Ok(bytes) = current
            && let Ok(existing) = SignedOp::parse(&bytes)
            && existing.op == action.op.as_str()
            && existing.host == action.host
            && existing.target == action.target
            && existing.params == action.params
            && existing.precondition.as_deref() == Some(action.state_digest.as_str())
            && existing.not_after > now + SignedDuration::from_mins(10)
        {
            let mut announced = self
                .announced
                .lock()
                .map_err(|_| GateError::Poisoned("announced payloads"))?;
            if announced.get(&action.target) != Some(action) {
                announced.insert(action.target.clone(), action.clone());
                tracing::warn!(event = "signature_pending", target = %action.target, op = %action.op, payload = %path.display(),
                    "destructive action waits for a signed op: castellan op sign {}", path.display());
            }
            return Ok(path);
        }
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let not_before = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let payload = action.payload(nonce.clone(), not_before, not_before + PENDING_TTL);
        // Refuse to offer operators something that could never verify (a node reporting
        // a digest outside the op format's alphabet, say).
        payload.validate().map_err(|e| GateError::Unofferable {
            op: action.op,
            target: action.target.clone(),
            detail: e.to_string(),
        })?;
        let text = payload.render();
        let (dir, file) = (self.pending_dir.clone(), path.clone());
        blocking("pending payload", move || {
            std::fs::create_dir_all(&dir).and_then(|()| write_atomic(&file, text.as_bytes()))
        })
        .await?
        .map_err(|source| GateError::Payload {
            path: path.clone(),
            source,
        })?;
        let fields =
            AuditFields::action(action.target.clone(), action.op, payload.digest()).nonce(nonce);
        self.audit(AuditEvent::SignaturePending.with(fields))
            .await?;
        if let Ok(mut announced) = self.announced.lock() {
            announced.insert(action.target.clone(), action.clone());
        }
        tracing::warn!(event = "signature_pending", target = %action.target, op = %action.op, payload = %path.display(),
            "destructive action waits for a signed op: castellan op sign {}", path.display());
        Ok(path)
    }

    /// A fresh look at the target of a destroy: whether it is still exactly what was
    /// approved (same kind, same state digest, no lock). Observation errors that may pass
    /// are retried a few times.
    pub(super) async fn look<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
    ) -> Result<Look, GateError> {
        match a.target.kind() {
            castellan_core::TargetKind::Storage => return self.look_wipe(backend, a).await,
            castellan_core::TargetKind::Node => return self.look_decommission(backend, a).await,
            _ => {}
        }
        let mut tries = 0u32;
        let seen = loop {
            match backend.look(&a.target).await {
                Ok(g) => break g,
                Err(e) if e.class != FailureClass::Gone && tries < 2 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(tries)))
                        .await;
                }
                Err(source) => {
                    return Err(GateError::Look {
                        target: a.target.clone(),
                        op: a.op,
                        source,
                    });
                }
            }
        };
        let Some(g) = seen else {
            return Ok(Look::Gone);
        };
        let who = a.target.describe();
        match g.state_digest.as_deref() {
            Some(d) if d == a.state_digest => {}
            Some(d) => {
                return Ok(Look::Stale(format!(
                    "{who}'s state digest is now {d}; the op was approved against {}",
                    a.state_digest
                )));
            }
            None => {
                return Ok(Look::Stale(format!(
                    "{who}'s state could not be read, so it cannot be shown unchanged"
                )));
            }
        }
        if let Some(lock) = &g.lock {
            return Ok(Look::Busy(format!("{who} is locked ({lock})")));
        }
        Ok(Look::Proceed(g))
    }

    pub(super) async fn execute_approved<B: Backend>(
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
                    "{} is gone; nothing to destroy",
                    a.target.describe()
                ));
            }
            Err(e) => return DestructiveOutcome::Failed(e.to_string()),
        }
        let mut fields = AuditFields::action(a.target.clone(), a.op, approval.op_digest())
            .nonce(approval.nonce());
        for s in approval.signers() {
            fields = fields.signer(s.clone());
        }
        tracing::info!(event = "signature_accepted", target = %a.target, op = %a.op, signers = ?approval.signers());
        if let Err(e) = self
            .audit(AuditEvent::SignatureAccepted.with(fields.clone()))
            .await
        {
            return DestructiveOutcome::Failed(e.to_string());
        }
        self.crashpoint("accepted");
        let intent = NewIntent {
            action_id: approval.op_digest().to_owned(),
            op: a.op.into(),
            target: a.target.clone(),
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
            Err(e) => return DestructiveOutcome::Failed(e.to_string()),
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
                    backup: None,
                };
            }
            Err(e) => return DestructiveOutcome::Failed(GateError::from(e).to_string()),
        };
        self.crashpoint("intent");
        let result = self.run_signed(backend, id, &a).await;
        self.crashpoint("terminal");
        match result {
            Ok(()) => {
                self.settle(o, Settled::Done, "executed").await;
                DestructiveOutcome::Executed {
                    signers: approval.signers().to_vec(),
                    backup: self.backup_of(id).await,
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
            Err(DestroyError::InFlight(e)) => DestructiveOutcome::Failed(e.to_string()),
            Err(DestroyError::Failed(e)) => {
                self.settle(o, Settled::Done, &format!("used; the destroy failed: {e}"))
                    .await;
                DestructiveOutcome::Failed(e.to_string())
            }
        }
    }

    /// The action waits for a fresh approval: a new payload is offered on the next round
    /// (the guest is observed again, so the payload is bound to its current state).
    pub(super) async fn pending_again(&self, a: &DestructiveAction) -> DestructiveOutcome {
        if let Ok(mut announced) = self.announced.lock() {
            announced.remove(&a.target);
        }
        DestructiveOutcome::Failed(format!(
            "{} of {} needs a fresh approval",
            a.op,
            a.target.describe()
        ))
    }

    /// Executes a journaled signed op (a wipe and a decommission have their own loops,
    /// [`Gatekeeper::run_wipe`] and [`Gatekeeper::run_decommission`]).
    /// For a destroy or a restore: shuts the guest down if it runs (hard stop allowed: what
    /// it holds is about to go), takes the safety backup, records which of the node's tasks
    /// of the op for it already exist, looks at it a last time and sends the request only
    /// if it is still exactly what was approved, then records the task and its end.
    ///
    /// The last look is the last request before the DELETE: the window in which a change
    /// to the guest goes unnoticed is one round trip (the node offers no conditional
    /// destroy; see docs/signed-ops.md).
    pub(super) async fn run_signed<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        match a.op {
            Operation::WipeStorage => return self.run_wipe(backend, id, a).await,
            Operation::Decommission => return self.run_decommission(backend, id, a).await,
            _ => {}
        }
        let Some(g) = self.settled_look(backend, id, a, false).await? else {
            return Ok(());
        };
        if a.op.spec().first.contains(&Prerequisite::Stopped) && !g.stopped {
            if let Err(e) = backend.bring_down(&a.target, DESTROY_SHUTDOWN_SECS).await {
                return self
                    .not_sent(id, a, format!("could not bring it down first: {e}"))
                    .await;
            }
            self.crashpoint("stopped");
        }
        self.safety_backup(backend, id, a).await?;
        // Which destroy tasks exist already: any other one found later is this one's.
        let seen = match task_mark(backend, &a.target, a.op, &a.params).await {
            Ok(seen) => seen,
            Err(e) => {
                return self
                    .not_sent(id, a, format!("cannot read the node's task list: {e}"))
                    .await;
            }
        };
        let now = self.now();
        self.store(move |s| s.mark_prepared(id, &seen, now))
            .await
            .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        // The last look, as close to the DELETE as the API allows.
        if self.settled_look(backend, id, a, true).await?.is_none() {
            return Ok(());
        }
        self.send_delete(backend, id, a).await
    }

    /// Takes the safety backup a signed op's table row asks for ([`Prerequisite::Backup`])
    /// before anything destructive is sent: one vzdump of the (stopped) target to the
    /// configured storage, waited for, then found on the storage as a new backup of the
    /// target, and recorded with the intent (audited `backup_taken`, with the volume). A
    /// backup already recorded for this intent (an attempt resumed after a crash) is not
    /// taken again. Waived only by the signed parameters (`backup=0`, audited
    /// `backup_waived`), or where the target's backend keeps no backups. A backup that
    /// fails, or that cannot be found afterwards, stops the op: nothing is sent and the
    /// intent is rolled back.
    pub(super) async fn safety_backup<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        if !a.op.spec().first.contains(&Prerequisite::Backup) {
            return Ok(());
        }
        let in_flight = |e: GateError| DestroyError::InFlight(e.to_string());
        let intent = self.store(move |s| s.intent(id)).await.map_err(in_flight)?;
        if intent.as_ref().is_some_and(|i| i.backup.is_some()) {
            return Ok(());
        }
        let waived = a.params.get(WAIVE_BACKUP.key).map(String::as_str) == Some("0");
        let storage = self.backup_storage.clone();
        let before = if waived {
            None
        } else {
            match backend.backups(&a.target, &storage).await {
                Ok(b) => b,
                Err(e) => {
                    return self
                        .not_sent(
                            id,
                            a,
                            format!("cannot list the backups on storage {storage} before the safety backup: {e}"),
                        )
                        .await;
                }
            }
        };
        let Some(before) = before else {
            return self
                .audit_no_backup(id, a.op, &a.target, waived)
                .await
                .map_err(in_flight);
        };
        let (volume, size) = match self.take_backup(backend, &a.target, a.op, before).await {
            Ok(made) => made,
            Err(why) => return self.not_sent(id, a, why).await,
        };
        let now = self.now();
        let v = volume.clone();
        self.store(move |s| s.record_backup(id, &v, size, now).map(|_| ()))
            .await
            .map_err(in_flight)?;
        tracing::info!(event = "backup_taken", target = %a.target, op = %a.op, volume, size);
        self.crashpoint("backed_up");
        Ok(())
    }

    /// Audits (`backup_waived`) that intent `id` goes on without a safety backup of
    /// `target`: `waived` when its signed parameters say so, else because its backend keeps
    /// none.
    pub(super) async fn audit_no_backup(
        &self,
        id: IntentId,
        op: Operation,
        target: &Target,
        waived: bool,
    ) -> Result<(), GateError> {
        let detail = if waived {
            format!("the signed op waives it ({}=0)", WAIVE_BACKUP.key)
        } else {
            format!("the backend of {target} keeps no backups")
        };
        tracing::warn!(event = "backup_waived", %target, %op, detail);
        let entry = AuditEvent::BackupWaived { detail }.with(
            AuditFields::default()
                .target(target.clone())
                .op(op)
                .intent(id),
        );
        self.audit(entry).await
    }

    /// Takes one backup of `target` to the configured storage, waits for it and finds it
    /// there: the volume that was not among `before` (the target's backups listed just
    /// before), with its size. `Err` says why there is none; nothing is recorded here.
    pub(super) async fn take_backup<B: Backend>(
        &self,
        backend: &B,
        target: &Target,
        op: Operation,
        before: Vec<(String, u64)>,
    ) -> Result<(String, u64), String> {
        let storage = self.backup_storage.as_str();
        tracing::info!(event = "backup_started", %target, %op, storage);
        let task = backend.start_backup(target, storage).await.map_err(|e| {
            format!("the safety backup of {target} to storage {storage} could not be started: {e}")
        })?;
        backend.wait_task(&task).await.map_err(|e| {
            format!("the safety backup of {target} to storage {storage} failed ({task}): {e}")
        })?;
        let after = match backend.backups(target, storage).await {
            Ok(Some(v)) => v,
            Ok(None) => Vec::new(),
            Err(e) => {
                return Err(format!(
                    "cannot find the safety backup of {target} on storage {storage}: {e}"
                ));
            }
        };
        // The guest was locked by this backup while it ran, so no other backup of it can
        // have appeared meanwhile; the newest of the new ones is this one's.
        after
            .into_iter()
            .filter(|(v, size)| *size > 0 && !before.iter().any(|(b, _)| b == v))
            .max_by(|x, y| x.0.cmp(&y.0))
            .ok_or_else(|| {
                format!(
                    "the safety backup task {task} ended, but no new backup of {target} is on storage {storage}"
                )
            })
    }

    /// A look at the target of a journaled destroy that settles the intent when it cannot
    /// go on: `Ok(Some(guest))` to go on; `Ok(None)` when the guest is gone (the intent is
    /// settled); otherwise the intent is rolled back (nothing was sent) and the reason
    /// returned. With `stopped`, a guest that runs again does not go on either.
    pub(super) async fn settled_look<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        stopped: bool,
    ) -> Result<Option<castellan_backend::Observed>, DestroyError> {
        match self.look(backend, a).await {
            Ok(Look::Proceed(g)) if stopped && !g.stopped => self
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
            Err(e) => self.not_sent(id, a, e.to_string()).await.map(|()| None),
        }
    }

    /// Sends the DELETE of a journaled, prepared intent, records its task and waits for
    /// the task's end.
    pub(super) async fn send_delete<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let task = match backend
            .dispatch_signed(a.op, &a.target, &a.params, &a.state_digest)
            .await
        {
            Ok(t) => t,
            // The request may have reached the node: leave the intent in flight; the
            // node's task list tells later whether it did.
            Err(e) if e.class == FailureClass::Unknown => {
                return Err(DestroyError::InFlight(format!(
                    "{} {}: the request's fate is unknown ({e}); it is settled from the backend's task list",
                    a.op, a.target
                )));
            }
            Err(e) if e.class == FailureClass::Gone => {
                return self.gone_before_delete(id, a).await;
            }
            // Refused by the backend's own check against the approved state: nothing was
            // done, exactly as when the last look finds it changed.
            Err(e) if e.class == FailureClass::Conflict => {
                self.refuse_stale(id, a, &e.message).await?;
                return Err(DestroyError::Stale(e.message));
            }
            Err(e) => {
                let error = format!("the node refused the {}: {e}", a.op);
                self.terminal(
                    id,
                    Outcome::Failed {
                        error: error.clone(),
                    },
                )
                .await
                .map_err(|e| DestroyError::InFlight(e.to_string()))?;
                return Err(DestroyError::Failed(format!(
                    "{} {}: {error}",
                    a.op, a.target
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
        .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        self.crashpoint("dispatched");
        self.finish_task(backend, id, a, &task).await
    }

    /// The guest changed after approval: refused as `stale_precondition` (audited) and
    /// the intent rolled back; nothing was destroyed.
    pub(super) async fn refuse_stale(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        detail: &str,
    ) -> Result<(), DestroyError> {
        tracing::warn!(
            event = "op_rejected",
            target = %a.target,
            reason = "stale_precondition",
            detail
        );
        let intent = self
            .store(move |s| s.intent(id))
            .await
            .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        let mut fields = AuditFields::default()
            .target(a.target.clone())
            .op(a.op)
            .intent(id);
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
        .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        self.terminal(
            id,
            Outcome::RolledBack {
                reason: format!("stale_precondition: {detail}; nothing was sent"),
            },
        )
        .await
        .map_err(|e| DestroyError::InFlight(e.to_string()))
    }

    /// Nothing destructive was sent and nothing will be: the intent is rolled back.
    pub(super) async fn not_sent(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        why: String,
    ) -> Result<(), DestroyError> {
        self.terminal(
            id,
            Outcome::RolledBack {
                reason: format!("{why}; the {} was not sent", a.op),
            },
        )
        .await
        .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        Err(DestroyError::Failed(format!(
            "{} {}: {why}",
            a.op, a.target
        )))
    }

    /// The guest disappeared before the DELETE: nothing was destroyed by this intent.
    pub(super) async fn gone_before_delete(
        &self,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let reason = format!(
            "{} was gone before the {} was sent; nothing destroyed",
            a.target.describe(),
            a.op
        );
        self.terminal(id, Outcome::RolledBack { reason })
            .await
            .map_err(|e| DestroyError::InFlight(e.to_string()))
    }

    pub(super) async fn finish_task<B: Backend>(
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
                    .map_err(|e| DestroyError::InFlight(e.to_string()))?;
                if let Some((_, vmid)) = a.target.as_guest() {
                    let _ = self.with_store(move |s| s.forget_provenance(vmid)).await;
                }
                tracing::info!(event = "action_applied", target = %a.target, action = %a.op, task = %task);
                Ok(())
            }
            // Not an outcome: the task's end is still to be learnt. The intent stays in
            // flight (no new payload for the guest) and is settled by the node's answer.
            Err(e) if e.class == FailureClass::Unknown => Err(DestroyError::InFlight(format!(
                "{} {}: task {task} has not ended yet as far as is known ({e})",
                a.op, a.target
            ))),
            Err(e) => {
                self.terminal(
                    id,
                    Outcome::Failed {
                        error: e.message.clone(),
                    },
                )
                .await
                .map_err(|e| DestroyError::InFlight(e.to_string()))?;
                Err(DestroyError::Failed(format!("{} {}: {e}", a.op, a.target)))
            }
        }
    }

    pub(super) async fn terminal(&self, id: IntentId, outcome: Outcome) -> Result<(), GateError> {
        let now = self.now();
        let ev = outcome.event();
        self.store(move |s| s.mark_terminal(id, outcome, ev, now).map(|_| ()))
            .await
    }

    /// The safety backup intent `id` took, if any (for reports; a journal that cannot be
    /// read now reports none).
    async fn backup_of(&self, id: IntentId) -> Option<String> {
        self.store(move |s| s.intent(id))
            .await
            .ok()
            .flatten()
            .and_then(|i| i.backup)
    }

    pub(super) async fn run_destroy_benign<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
    ) -> Result<IntentId, DestroyError> {
        let action_id = {
            let mut h = Sha256::new();
            // For a guest, the same bytes as before targets were named (`lxc:101`).
            let subject = match a.target.as_guest() {
                Some((kind, vmid)) => format!("{kind}:{vmid}"),
                None => a.target.to_string(),
            };
            h.update(format!(
                "{}:{}:{}:{}",
                a.op, a.host, subject, a.state_digest
            ));
            hex::encode(h.finalize())
        };
        let fields = AuditFields::action(a.target.clone(), a.op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: a.op.into(),
            target: a.target.clone(),
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
            .map_err(|e| DestroyError::Failed(e.to_string()))?;
        self.run_signed(backend, id, a).await.map(|()| id)
    }
}
