//! Provisioning: a declared guest that does not exist is created (a backup restored, a
//! template cloned) in one journaled transaction that earns the agent its provenance, and
//! a creation that fails half-way is undone in that same transaction, without a signature.
//!
//! The steps, each journaled before the next (a crash anywhere is settled by
//! `castellan_core::recovery`'s undo rules when the agent starts again):
//! 1. the decision audited and the intent recorded (full durability: the provenance this
//!    creation earns cites it);
//! 2. the node's tasks of that kind listed and kept (the task mark), so that the request's
//!    own task can be found later without comparing clocks;
//! 3. the request sent (the backend checks first that no guest of the cluster has the
//!    vmid) and its task recorded;
//! 4. its end waited for: success records the intent succeeded and the guest as this
//!    agent's own (provenance) in one transaction; failure lets the undo rules look at the
//!    guest, and what the failed task left behind is removed.

use super::*;

impl Gatekeeper {
    /// Creates the guest `action` declares (a `provision` with its source), through the
    /// journal. Returns the task's warnings; an error names what went wrong, and nothing
    /// the failed creation made is left behind unless the undo rules hold it for an
    /// operator (the guest was left locked, or the evidence cannot tell).
    pub async fn provision<B: GuestBackend>(
        &self,
        backend: &B,
        action: &Action,
    ) -> Result<u32, BackendError> {
        let op = Operation::Provision;
        let class = classify(action.kind, &[], None, None);
        let Some(source) = action.source.as_ref().filter(|_| action.kind == op) else {
            return Err(BackendError::retry(format!(
                "refusing {} of {}: not a provisioning with a source",
                action.kind, action.vmid
            )));
        };
        if class.class != castellan_core::classify::Class::Benign {
            return Err(BackendError::retry(format!(
                "refusing {op} of {}: {}",
                action.vmid, class.why
            )));
        }
        let target = action.target();
        let params = source.journal_params();
        let action_id = benign_action_id(action);
        let fields = AuditFields::action(target.clone(), op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: op.into(),
            target: target.clone(),
            params: params.clone(),
            nonce: None,
            nonce_not_after: None,
            destructive: false,
            upid_hint: None,
        };
        let now = self.now();
        let id = self
            .store(move |s| allow_and_begin(s, intent, fields, now))
            .await
            .map_err(gate_failed)?;
        self.crashpoint("provision:intent");
        let seen = match task_mark(backend, &target, op, &params).await {
            Ok(seen) => seen,
            Err(e) => {
                let error = format!("cannot read the node's task list: {e}");
                self.not_made(id, &error).await;
                return Err(BackendError::retry(error));
            }
        };
        let now = self.now();
        self.store(move |s| s.mark_prepared(id, &seen, now))
            .await
            .map_err(gate_failed)?;
        self.crashpoint("provision:prepared");
        let task = match backend.dispatch(action).await {
            Ok(Some(task)) => task,
            Ok(None) => {
                // A creation always runs as a task; an answer without one is settled by
                // the node's task list like a lost answer.
                return Err(self
                    .settle_provision(backend, id, &target, "the node answered without a task")
                    .await);
            }
            Err(e) if e.class == FailureClass::Unknown => {
                return Err(self
                    .settle_provision(backend, id, &target, &e.message)
                    .await);
            }
            Err(e) => {
                // Refused before anything was made (the vmid taken, the source or the
                // storage missing): nothing to undo.
                self.not_made(id, &e.message).await;
                return Err(e);
            }
        };
        self.crashpoint("provision:posted");
        let now = self.now();
        let t = task.as_str().to_owned();
        self.store(move |s| {
            s.mark_dispatched(id, Some(&t), AuditEvent::TaskDispatched { upid: None }, now)
        })
        .await
        .map_err(gate_failed)?;
        self.crashpoint("provision:dispatched");
        match backend.wait_task(&task).await {
            Ok(warnings) => {
                let now = self.now();
                self.store(move |s| s.mark_provisioned(id, now))
                    .await
                    .map_err(gate_failed)?;
                self.crashpoint("provision:succeeded");
                tracing::info!(event = "provisioned", %target, source = %source.describe(), task = %task);
                Ok(warnings)
            }
            Err(e) => Err(self
                .settle_provision(backend, id, &target, &e.message)
                .await),
        }
    }

    /// Records a creation that made nothing as failed.
    async fn not_made(&self, id: IntentId, error: &str) {
        if let Err(e) = self
            .terminal(
                id,
                Outcome::Failed {
                    error: error.to_owned(),
                },
            )
            .await
        {
            tracing::error!(event = "journal_failed", intent = id.0, error = %e);
        }
    }

    /// Settles a creation whose end was not a success by the undo rules (the same ones
    /// crash recovery follows), and says what became of it.
    async fn settle_provision<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        target: &Target,
        failure: &str,
    ) -> BackendError {
        let failure = failure.trim_end().to_owned();
        let settled = async {
            let Some(intent) = self.store(move |s| s.intent(id)).await? else {
                return Err(GateError::Recovery(format!(
                    "intent {id} is not in the journal"
                )));
            };
            if let Some(outcome) = self.recover_one(backend, &intent).await? {
                self.terminal(id, outcome).await?;
            }
            self.store(move |s| s.intent(id)).await
        }
        .await;
        let intent = match settled {
            Ok(Some(i)) => i,
            Ok(None) => return BackendError::retry(format!("intent {id} is not in the journal")),
            Err(e) => {
                return BackendError::new(
                    FailureClass::Unknown,
                    format!(
                        "provisioning {target} ({failure}): {e}; settled when the node's records tell"
                    ),
                );
            }
        };
        match (&intent.outcome, &intent.held) {
            (Some(Outcome::Succeeded), _) => BackendError::new(
                FailureClass::Conflict,
                format!("provisioning {target} finished after all; re-reading"),
            ),
            (Some(Outcome::Failed { error }), _) => {
                BackendError::retry(format!("provisioning {target} failed: {error}"))
            }
            (Some(Outcome::RolledBack { reason }), _) => BackendError::retry(format!(
                "provisioning {target} failed and was rolled back: {reason}"
            )),
            (None, Some(why)) => BackendError::retry(format!(
                "provisioning {target} failed ({failure}) and is held for an operator: {why}"
            )),
            (None, None) => BackendError::new(
                FailureClass::Unknown,
                format!("provisioning {target} ({failure}) is still in flight"),
            ),
        }
    }

    /// Removes what a failed creation left behind: benign, since the intent that made the
    /// target is the transaction undoing it. Records the intent rolled back once the
    /// target is gone; holds it for an operator if the node refuses.
    pub(super) async fn undo_creation<B: Backend>(
        &self,
        backend: &B,
        intent: &castellan_store::Intent,
        why: String,
    ) -> Result<Option<Outcome>, GateError> {
        let within = intent.id.0;
        let class = classify(
            Operation::Destroy,
            &[],
            Some(JournalProvenance::CreatedByAgent {
                transaction: within,
            }),
            Some(within),
        );
        if class.class != castellan_core::classify::Class::Benign {
            return Err(GateError::Recovery(format!(
                "undoing {} would not be benign: {}",
                intent.target, class.why
            )));
        }
        let fields = AuditFields::action(
            intent.target.clone(),
            Operation::Destroy,
            intent.action_id.clone(),
        )
        .intent(intent.id);
        self.audit(
            AuditEvent::UndoStarted {
                reason: why.clone(),
            }
            .with(fields),
        )
        .await?;
        tracing::warn!(event = "undo_started", intent = within, target = %intent.target, reason = %why.trim_end(),
            "removing what a failed creation left behind");
        // Disks of the vmid that the half-made guest does not reference are not its own
        // to remove: only what its configuration names goes.
        let params = BTreeMap::from([("destroy-unreferenced-disks".to_owned(), "0".to_owned())]);
        let sent = backend
            .dispatch_signed(Operation::Destroy, &intent.target, &params, "")
            .await;
        let done = match sent {
            Ok(task) => backend.wait_task(&task).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => Ok(Some(Outcome::RolledBack {
                reason: format!("{}; what it made was removed", why.trim_end()),
            })),
            Err(e) if e.class == FailureClass::Gone => Ok(Some(Outcome::RolledBack {
                reason: format!("{}; nothing was left", why.trim_end()),
            })),
            Err(e) => {
                self.hold(
                    intent,
                    format!(
                        "its provision failed ({}) and removing what it left failed: {e}",
                        why.trim_end()
                    ),
                )
                .await?;
                Ok(None)
            }
        }
    }
}

/// A journal failure, as the backend error the engine reacts to (retry later).
fn gate_failed(e: GateError) -> BackendError {
    BackendError::retry(e.to_string())
}
