//! Crash recovery: every intent without a terminal record settled before anything new runs.

use super::*;

impl Gatekeeper {
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
    pub(super) async fn hold(
        &self,
        intent: &castellan_store::Intent,
        why: String,
    ) -> Result<(), String> {
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
    pub(super) async fn recover_one<B: Backend>(
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
