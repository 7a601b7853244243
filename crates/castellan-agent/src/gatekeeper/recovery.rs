//! Crash recovery: every intent without a terminal record settled before anything new runs.

use castellan_core::recovery::{Facts, Mark, Settlement, Step, TargetLook, WaitFailure, next};

use super::*;

/// How long recovery waits before looking again at a locked target.
const LOCKED_LOOK_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

impl Gatekeeper {
    /// Settles every intent without a terminal record, before anything new runs: asks the
    /// node once about each task, then resumes, completes or rolls back; an intent whose
    /// fate cannot be told from the evidence is held for an operator (audited, shown by
    /// `castellan plan`). Returns how many intents it handled.
    /// Audits the agent's start first; only the intents whose targets `backend` serves
    /// are settled (a host with guests and containers recovers each with its own
    /// backend: see [`Gatekeeper::recover_served`]).
    pub async fn recover<B: Backend>(&self, backend: &B) -> Result<u64, GateError> {
        self.audit(AuditEvent::AgentStarted.into()).await?;
        self.recover_served(backend).await
    }

    /// [`Gatekeeper::recover`] without the start record: settles the in-flight intents
    /// whose targets `backend` serves.
    pub async fn recover_served<B: Backend>(&self, backend: &B) -> Result<u64, GateError> {
        let in_flight: Vec<_> = self
            .store(|s| s.in_flight())
            .await?
            .into_iter()
            .filter(|i| backend.serves(&i.target))
            .collect();
        let n = in_flight.len() as u64;
        for intent in in_flight {
            if let Some(why) = &intent.held {
                tracing::error!(event = "intent_held", intent = intent.id.0, target = %intent.target, op = %intent.op, reason = %why,
                    "held for an operator: nothing more is attempted on this guest until one settles it");
                continue;
            }
            let fields = AuditFields::action(
                intent.target.clone(),
                intent.op.clone(),
                intent.action_id.clone(),
            )
            .intent(intent.id);
            self.audit(AuditEvent::RecoveryResumed.with(fields)).await?;
            tracing::warn!(event = "recovery_resumed", intent = intent.id.0, target = %intent.target, op = %intent.op, state = %intent.state.as_str());
            let outcome = self.recover_one(backend, &intent).await?;
            if let Some(outcome) = outcome {
                tracing::warn!(event = "recovery_settled", intent = intent.id.0, target = %intent.target, outcome = ?outcome);
                self.terminal(intent.id, outcome).await?;
            }
        }
        self.audit(AuditEvent::RecoveryCompleted { intents: n }.into())
            .await?;
        Ok(n)
    }

    /// Holds `intent` for an operator, audited.
    pub(super) async fn hold(
        &self,
        intent: &castellan_store::Intent,
        why: String,
    ) -> Result<(), GateError> {
        tracing::error!(event = "intent_held", intent = intent.id.0, target = %intent.target, op = %intent.op, reason = %why,
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

    /// Settles one in-flight intent by the rules of [`castellan_core::recovery`]: this
    /// drives them, doing the one thing each step asks (list, adopt, ask, wait, look).
    /// Returns the outcome to record, or `None` when the intent was completed and recorded
    /// its own outcome, or was held for an operator. `Err` when the node could not be
    /// asked: the intent stays in flight.
    pub(super) async fn recover_one<B: Backend>(
        &self,
        backend: &B,
        intent: &castellan_store::Intent,
    ) -> Result<Option<Outcome>, GateError> {
        let mut f = Facts {
            destructive: intent.destructive,
            task: intent.upid.clone(),
            mark: match &intent.task_mark {
                None => Mark::NotPrepared,
                Some(TaskMark::Legacy) => Mark::Legacy,
                Some(TaskMark::Seen(before)) => Mark::Seen(before.clone()),
            },
            approved_digest: intent.upid_hint.clone(),
            backend_replans: backend.replans_benign(),
            ..Facts::journaled(&intent.op, intent.target.to_string())
        };
        // Judged now, and again after every look at the target.
        f.approval_valid = self.approval_valid(intent).await?;
        let mut last_seen = None;
        let settlement = loop {
            match next(&f) {
                Step::ListTasks => {
                    let op = f.op.ok_or_else(|| {
                        GateError::Recovery("an unknown operation has no tasks".into())
                    })?;
                    let listed = backend
                        .tasks_of(&intent.target, op, &intent.params)
                        .await
                        .map_err(GateError::Backend)?;
                    f.listed = Some(
                        listed.map(|l| l.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>()),
                    );
                }
                Step::Adopt(task) => {
                    tracing::warn!(event = "recovery_found_task", intent = intent.id.0, task = %task);
                    // Journal the task found, as the dispatch would have.
                    let (id, t, now) = (intent.id, task.clone(), self.now());
                    self.store(move |s| {
                        s.mark_dispatched(
                            id,
                            Some(&t),
                            AuditEvent::TaskDispatched { upid: None },
                            now,
                        )
                    })
                    .await?;
                    f.task = Some(task);
                }
                Step::AskTask(task) => {
                    let state = backend
                        .task_status_once(&TaskHandle::new(task))
                        .await
                        .map_err(GateError::Backend)?;
                    f.status = Some(state);
                }
                Step::WaitTask(task) => {
                    f.waited = Some(match backend.wait_task(&TaskHandle::new(task)).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(WaitFailure {
                            unknown: e.class == FailureClass::Unknown,
                            message: e.message,
                        }),
                    });
                }
                Step::LookAtTarget { pause } => {
                    if pause {
                        // A destroy in progress holds the guest's lock: give it time.
                        tokio::time::sleep(LOCKED_LOOK_PAUSE).await;
                    }
                    let seen = backend
                        .look(&intent.target)
                        .await
                        .map_err(GateError::Backend)?;
                    f.looks += 1;
                    // The approval's window is judged at the decision, after every look.
                    f.approval_valid = self.approval_valid(intent).await?;
                    f.target = Some(TargetLook {
                        exists: seen.is_some(),
                        digest: seen.as_ref().and_then(|g| g.state_digest.clone()),
                        locked: seen.as_ref().is_some_and(|g| g.lock.is_some()),
                    });
                    last_seen = seen;
                }
                Step::Settle(s) => break s,
            }
        };
        match settlement {
            Settlement::Succeeded if f.op == Some(Operation::Provision) => {
                // A creation that succeeded earns its provenance with its terminal record.
                let (id, now) = (intent.id, self.now());
                self.store(move |s| s.mark_provisioned(id, now)).await?;
                Ok(None)
            }
            Settlement::Undo(why) => self.undo_creation(backend, intent, why).await,
            Settlement::Succeeded => Ok(Some(Outcome::Succeeded)),
            Settlement::Failed(error) => Ok(Some(Outcome::Failed { error })),
            Settlement::RolledBack(reason)
                if f.op.is_some_and(|o| o.spec().recovery == Recovery::Resume) =>
            {
                // An op removing items one by one that had removed some is not rolled
                // back: it failed part-way, and says what went.
                let id = intent.id;
                let removed = self.store(move |s| s.items_removed(id)).await?;
                Ok(Some(if removed.is_empty() {
                    Outcome::RolledBack { reason }
                } else {
                    Outcome::Failed {
                        error: format!(
                            "{reason}; removed before it stopped: {}",
                            removed.join(", ")
                        ),
                    }
                }))
            }
            Settlement::RolledBack(reason) => Ok(Some(Outcome::RolledBack { reason })),
            Settlement::InFlight(why) => Err(GateError::Recovery(why)),
            Settlement::Hold(why) => {
                self.hold(intent, why).await?;
                Ok(None)
            }
            Settlement::Complete { prepared } => {
                // Never sent: no task of its own on the node, the guest exactly as
                // approved, and the approval still valid, so finish what was approved, once.
                let op = f.op.ok_or_else(|| {
                    GateError::Recovery("an unknown operation is never completed".into())
                })?;
                let a = DestructiveAction {
                    op,
                    host: self.host.clone(),
                    target: intent.target.clone(),
                    params: intent.params.clone(),
                    state_digest: last_seen.and_then(|g| g.state_digest).unwrap_or_default(),
                };
                let done = if prepared {
                    // Prepared before, found unsent: the mark is written once, so it is
                    // sent from here after a last look.
                    self.resend_prepared(backend, intent.id, &a).await
                } else {
                    // run_signed records the terminal outcome itself (or leaves the
                    // intent in flight when the node's answer is unknown).
                    self.run_signed(backend, intent.id, &a).await
                };
                match done {
                    Err(DestroyError::InFlight(e)) => Err(GateError::Recovery(e)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Whether `intent`'s approval is still valid now, by the clock that cannot go
    /// backwards (an intent without one, a benign one, always is).
    async fn approval_valid(&self, intent: &castellan_store::Intent) -> Result<bool, GateError> {
        let now = self.now();
        let effective = self.store(move |s| s.effective_now(now)).await?;
        Ok(intent.nonce_not_after.is_none_or(|t| effective < t))
    }

    /// Sends the DELETE of an intent that was prepared (task mark recorded) but whose
    /// request never reached the node, after a last look.
    pub(super) async fn resend_prepared<B: Backend>(
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
}
