//! Storage wipes: the signed list of volumes (each with the size it was approved at)
//! removed one by one, each looked at right before it goes and audited when it is gone.
//! Idempotent by construction, so recovery finishes an interrupted wipe from where it
//! stopped while its approval is valid (`Recovery::Resume`).

use std::collections::BTreeMap;

use castellan_core::wipe;

use super::*;

/// Why removing approved items one by one stopped before the end.
pub(super) enum Halt {
    /// The node's answer is not known: the intent stays in flight, for recovery.
    InFlight(String),
    /// Something is not as approved, or the node refused: the op ends here.
    Stopped(String),
}

impl Gatekeeper {
    /// The look before a wipe is approved for execution: the approved volumes that are
    /// there and unused, with their sizes now, must digest to what was approved.
    pub(super) async fn look_wipe<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
    ) -> Result<Look, GateError> {
        let approved = match approved_volumes(a) {
            Ok(v) => v,
            Err(why) => return Ok(Look::Stale(why)),
        };
        let now = match backend.storage_volumes(&a.target).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(GateError::Look {
                    target: a.target.clone(),
                    op: a.op,
                    source: BackendError::retry("this backend has no storages"),
                });
            }
            Err(e) if e.class == FailureClass::Gone => return Ok(Look::Gone),
            Err(source) => {
                return Err(GateError::Look {
                    target: a.target.clone(),
                    op: a.op,
                    source,
                });
            }
        };
        let mut present = BTreeMap::new();
        for volid in approved.keys() {
            if let Some(v) = now.get(volid) {
                if let Some(by) = &v.referenced_by {
                    return Ok(Look::Stale(format!("{volid} is now used by {by}")));
                }
                present.insert(volid.clone(), v.size);
            }
        }
        let digest = wipe::digest(a.target.id(), &present);
        if digest != a.state_digest {
            return Ok(Look::Stale(format!(
                "the approved volumes of {} are not as they were approved (now {})",
                a.target.describe(),
                wipe::encode(&present)
            )));
        }
        Ok(Look::Proceed(castellan_backend::Observed {
            state_digest: Some(digest),
            stopped: true,
            lock: None,
        }))
    }

    /// Removes the approved volumes of a journaled wipe, each only while it is there,
    /// unused and of the size it was approved at; one that is gone is done. Stops at the
    /// first that changed (recorded failed, naming what was removed before). Leaves the
    /// intent in flight when the node's answer is unknown: recovery finishes it.
    pub(super) async fn run_wipe<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let approved = match approved_volumes(a) {
            Ok(v) => v,
            Err(why) => return self.not_sent(id, a, why).await,
        };
        let mut removed = match self.store(move |s| s.items_removed(id)).await {
            Ok(r) => r,
            Err(e) => return Err(DestroyError::InFlight(e.to_string())),
        };
        let halted = self
            .remove_volumes(backend, id, a, &approved, &mut removed)
            .await;
        self.items_settled(id, a, halted, &removed).await
    }

    /// Records how an op removing items one by one ended: succeeded when nothing halted
    /// it; left in flight when the node's answer is unknown; otherwise stopped (see
    /// [`Gatekeeper::items_stopped`]).
    pub(super) async fn items_settled(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        halted: Result<(), Halt>,
        removed: &[String],
    ) -> Result<(), DestroyError> {
        match halted {
            Ok(()) => {}
            Err(Halt::InFlight(e)) => return Err(DestroyError::InFlight(e)),
            Err(Halt::Stopped(why)) => return self.items_stopped(id, a, removed, why).await,
        }
        self.terminal(id, Outcome::Succeeded)
            .await
            .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        tracing::info!(event = "action_applied", target = %a.target, action = %a.op, removed = removed.len());
        Ok(())
    }

    /// Removes `volumes` (approved, each with its size) one by one for intent `id`, each
    /// only while its storage lists it unused and of the size it was approved at, each
    /// recorded with the intent and audited `volume_removed` once gone; one already gone
    /// is done (recorded `found_gone` unless an earlier attempt recorded it). `removed`
    /// holds what the intent has recorded removed so far and grows with each removal.
    /// Stops at the first that changed, or that the node refused.
    pub(super) async fn remove_volumes<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        volumes: &BTreeMap<String, u64>,
        removed: &mut Vec<String>,
    ) -> Result<(), Halt> {
        let in_flight = |e: &dyn std::fmt::Display| Halt::InFlight(e.to_string());
        for (volid, size) in volumes {
            if removed.contains(volid) {
                continue; // recorded by an earlier attempt of this intent
            }
            let storage = match volid.split_once(':').map(|(sid, _)| Target::storage(sid)) {
                Some(Ok(t)) => t,
                _ => return Err(Halt::Stopped(format!("{volid} names no storage"))),
            };
            // A fresh look right before each removal.
            let now = match backend.storage_volumes(&storage).await {
                Ok(Some(v)) => v,
                Ok(None) => return Err(Halt::Stopped("this backend has no storages".into())),
                Err(e) if e.class == FailureClass::Gone => {
                    return Err(Halt::Stopped(format!("{} is gone", storage.describe())));
                }
                Err(e) => return Err(in_flight(&format!("{} {}: {e}", a.op, a.target))),
            };
            let Some(v) = now.get(volid) else {
                // Gone already: what was approved is done.
                self.record_volume_removed(id, a, volid, *size, true, removed)
                    .await?;
                continue;
            };
            if let Some(by) = &v.referenced_by {
                return Err(Halt::Stopped(format!("{volid} is now used by {by}")));
            }
            if v.size != *size {
                return Err(Halt::Stopped(format!(
                    "{volid} is {} bytes now; the op was approved at {size}",
                    v.size
                )));
            }
            self.crashpoint("removing");
            match backend.remove_storage_volume(&storage, volid).await {
                Ok(Some(task)) => match backend.wait_task(&task).await {
                    Ok(_) => {}
                    Err(e) if e.class == FailureClass::Unknown => {
                        return Err(in_flight(&format!(
                            "{} {}: task {task}: {e}",
                            a.op, a.target
                        )));
                    }
                    Err(e) => {
                        return Err(Halt::Stopped(format!(
                            "the node could not remove {volid}: {e}"
                        )));
                    }
                },
                Ok(None) => {}
                Err(e) if e.class == FailureClass::Gone => {
                    self.record_volume_removed(id, a, volid, *size, true, removed)
                        .await?;
                    continue;
                }
                Err(e) if e.class == FailureClass::Unknown => {
                    return Err(in_flight(&format!("{} {}: {e}", a.op, a.target)));
                }
                Err(e) => {
                    return Err(Halt::Stopped(format!(
                        "the node refused to remove {volid}: {e}"
                    )));
                }
            }
            self.crashpoint("volume_deleted");
            self.record_volume_removed(id, a, volid, *size, false, removed)
                .await?;
            self.crashpoint("removed");
        }
        Ok(())
    }

    /// Records with intent `id` that `volid` is gone (`found_gone`: it was gone when
    /// looked at), audited `volume_removed`, and adds it to `removed`.
    async fn record_volume_removed(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        volid: &str,
        size: u64,
        found_gone: bool,
        removed: &mut Vec<String>,
    ) -> Result<(), Halt> {
        let entry = AuditEvent::VolumeRemoved {
            volume: volid.to_owned(),
            size,
            found_gone,
        }
        .with(AuditFields::default().target(a.target.clone()).op(a.op));
        self.record_removed(id, volid, entry).await?;
        tracing::info!(event = "volume_removed", target = %a.target, volume = %volid, size, found_gone);
        removed.push(volid.to_owned());
        Ok(())
    }

    /// Records with intent `id` that `item` is removed, with its audit record `entry`.
    pub(super) async fn record_removed(
        &self,
        id: IntentId,
        item: &str,
        entry: AuditEntry,
    ) -> Result<(), Halt> {
        let (now, item) = (self.now(), item.to_owned());
        self.store(move |s| s.record_item_removed(id, &item, entry, now).map(|_| ()))
            .await
            .map_err(|e| Halt::InFlight(e.to_string()))
    }

    /// An op removing items one by one (a wipe, a decommission) stopped before its end:
    /// rolled back when it removed nothing, failed (naming what it removed) otherwise.
    pub(super) async fn items_stopped(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        removed: &[String],
        why: String,
    ) -> Result<(), DestroyError> {
        let outcome = if removed.is_empty() {
            Outcome::RolledBack {
                reason: format!("{why}; nothing was removed"),
            }
        } else {
            Outcome::Failed {
                error: format!("{why}; removed before it stopped: {}", removed.join(", ")),
            }
        };
        self.terminal(id, outcome)
            .await
            .map_err(|e| DestroyError::InFlight(e.to_string()))?;
        Err(DestroyError::Failed(format!(
            "{} {}: {why}",
            a.op, a.target
        )))
    }
}

/// The volumes a wipe's signed parameters name, with the sizes they were approved at.
fn approved_volumes(a: &DestructiveAction) -> Result<BTreeMap<String, u64>, String> {
    let value = a
        .params
        .get(wipe::VOLUMES_PARAM)
        .ok_or_else(|| format!("{} names no volumes", a.op))?;
    let volumes = wipe::decode(value).map_err(|e| format!("its volumes: {e}"))?;
    let prefix = format!("{}:", a.target.id());
    if let Some(other) = volumes.keys().find(|v| !v.starts_with(&prefix)) {
        return Err(format!("{other} is not on {}", a.target.describe()));
    }
    Ok(volumes)
}
