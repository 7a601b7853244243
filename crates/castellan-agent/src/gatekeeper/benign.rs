//! Benign execution: the decision audited, the intent journaled, the action dispatched and waited for, the outcome recorded.

use super::*;

/// Audits a benign gate decision and journals its intent.
pub(super) fn allow_and_begin(
    s: &mut Store,
    intent: NewIntent,
    fields: AuditFields,
    now: Timestamp,
) -> Result<IntentId, StoreError> {
    s.append_audit(AuditEvent::ActionAllowed.with(fields.clone()), now)?;
    s.begin_intent(intent, AuditEvent::IntentRecorded.with(fields), now)
        .map(|(id, _)| id)
}

/// A benign action's journal id: the action as planned plus a random part, because the
/// same benign action may legitimately run again later (a guest stopped out of band is
/// started again with the same configuration digest), and benign idempotency comes from
/// re-planning, not from the id.
pub(super) fn benign_action_id(action: &Action) -> String {
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
pub(super) fn journal_params(action: &Action) -> BTreeMap<String, String> {
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

impl Gatekeeper {
    /// Executes one benign action through the journal: decision audited, intent recorded,
    /// dispatched, waited for, outcome recorded. Returns the task's warnings.
    pub async fn benign<B: GuestBackend>(
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
        let target = action.target();
        let fields = AuditFields::action(target.clone(), op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: op.into(),
            target,
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
            .map_err(|e| BackendError::retry(e.to_string()))?;
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
            .map_err(|e| BackendError::retry(e.to_string()))?;
            backend.wait_task(&task).await
        }
        .await;
        self.benign_ended(id, &action.target(), result.as_ref().map(|_| ()))
            .await;
        result
    }

    /// Records how a benign intent ended (relaxed durability, like its start).
    async fn benign_ended(&self, id: IntentId, target: &Target, result: Result<(), &BackendError>) {
        let outcome = match result {
            Ok(()) => Outcome::Succeeded,
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
            tracing::error!(event = "journal_failed", %target, error = %e);
        }
    }

    /// Carries out one benign step of a backend that applies its operations itself
    /// (Docker) through the journal: the step is classified again here against what was
    /// observed of its target (`holds_data`), not taken on the planner's word; the
    /// decision is audited and the intent journaled before `run` is started, and its
    /// outcome recorded after.
    pub async fn benign_step<F>(
        &self,
        target: Target,
        op: Operation,
        holds_data: Option<bool>,
        reason: &str,
        run: F,
    ) -> Result<(), BackendError>
    where
        F: std::future::Future<Output = Result<(), BackendError>>,
    {
        let class = castellan_core::classify::classify_target(op, &[], holds_data, None, None);
        if class.class != castellan_core::classify::Class::Benign {
            return Err(BackendError::retry(format!(
                "refusing {op} on {target}: {}",
                class.why
            )));
        }
        let action_id = {
            let mut h = Sha256::new();
            h.update(target.to_string());
            h.update([0]);
            h.update(op.as_str());
            h.update([0]);
            h.update(reason);
            h.update(rand::random::<[u8; 16]>());
            hex::encode(h.finalize())
        };
        let fields = AuditFields::action(target.clone(), op, action_id.clone());
        let intent = NewIntent {
            action_id,
            op: op.into(),
            target: target.clone(),
            params: BTreeMap::new(),
            nonce: None,
            nonce_not_after: None,
            destructive: false,
            upid_hint: None,
        };
        let now = self.now();
        let id = self
            .store(move |s| s.relaxed(|s| allow_and_begin(s, intent, fields, now))?)
            .await
            .map_err(|e| BackendError::retry(e.to_string()))?;
        let result = run.await;
        self.benign_ended(id, &target, result.as_ref().copied())
            .await;
        result
    }
}
