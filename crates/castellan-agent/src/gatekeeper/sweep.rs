//! The inbox sweep: ops that can never authorise anything here settled (refused, or done as replays), each audited.

use super::*;

/// The refusal of an op whose signature files all exist but none could be read
/// (oversize, not a regular file); `None` when some signature was read.
pub(super) fn unreadable_only(o: &OfferedOp) -> Option<Decision> {
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

impl Gatekeeper {
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
        let offered = match self.scan_inbox(true).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(event = "inbox_unreadable", error = %e);
                return;
            }
        };
        for o in offered.iter() {
            let op = match &o.op {
                Ok(op) => op.clone(),
                Err(_) if self.offer_rotation(o).await => continue,
                Err(e) => {
                    self.reject(o, None, RejectReason::BadFormat, &e.to_string())
                        .await;
                    continue;
                }
            };
            let now = self.now();
            let nonce = op.nonce.clone();
            let digest = op.digest();
            let target = op.target.clone();
            let looked = self
                .store(move |s| {
                    let eff = s.effective_now(now)?;
                    let consumed = s.nonce_consumed(&nonce)?;
                    let intents = s.intents_for(&target)?;
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
                self.settle(o, Settled::Done, "already executed: a replay of a used op")
                    .await;
                continue;
            }
            if o.unsigned() {
                // Not signed yet: it waits, unless it can never become valid.
                if effective >= op.not_after && !o.fresh {
                    self.reject(
                        o,
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
                self.reject(o, Some(&op), RejectReason::BadFormat, &detail)
                    .await;
                continue;
            };
            // Judge it against the action it describes: this reports signature problems
            // first, then the host, the window and the nonce, exactly as the gate would.
            let as_described = DestructiveAction {
                op: operation,
                host: self.host.clone(),
                target: op.target.clone(),
                params: op.params.clone(),
                state_digest: op.precondition.clone().unwrap_or_default(),
            };
            let decision = unreadable_only(o).unwrap_or_else(|| {
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
                self.reject(o, Some(&op), reason, &detail).await;
            }
        }
    }

    /// Audits a refusal and, when it is final, moves the op to `rejected/`.
    pub(super) async fn reject(
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
            fields = AuditFields::action(op.target.clone(), op.op.clone(), op.digest())
                .nonce(op.nonce.clone());
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

    /// Moves an op out of the inbox, audited.
    pub(super) async fn settle(&self, o: &OfferedOp, how: Settled, detail: &str) {
        let Some(inbox) = self.inbox.clone() else {
            return;
        };
        let mut fields = AuditFields::default();
        if let Ok(op) = &o.op {
            fields = AuditFields::action(op.target.clone(), op.op.clone(), op.digest())
                .nonce(op.nonce.clone());
        }
        // The files are moved off the runtime.
        let (offered, note) = (o.clone(), detail.to_owned());
        let moved = blocking("inbox settle", move || inbox.settle(&offered, how, &note))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
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
}
