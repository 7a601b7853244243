//! Decommissioning a node: the signed list of guests (each with the digest it was approved
//! at) destroyed one by one, each brought down, backed up (unless waived) and looked at
//! right before it goes; then the signed list of unreferenced volumes of the node's own
//! storages removed one by one, as a wipe removes them. Each item is checked against the
//! approval right before it goes, so the op is idempotent and recovery finishes an
//! interrupted one from where it stopped while its approval is valid (`Recovery::Resume`).

use std::collections::BTreeMap;

use castellan_core::decommission::{self, Approved, GUEST_DESTROY_PARAMS};

use super::wipe::Halt;
use super::*;

/// How many times a decommission looks again at a guest a task holds locked before it
/// stops there, and how long it waits between looks.
const LOCKED_LOOKS: u32 = 30;
const LOCKED_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

impl Gatekeeper {
    /// The look before a decommission is approved for execution: every approved guest
    /// that is there must have the digest it was approved at and hold no lock, every
    /// approved volume that is there must be unused, and what is there must digest to what
    /// was approved.
    pub(super) async fn look_decommission<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
    ) -> Result<Look, GateError> {
        let approved = match Approved::from_params(&a.params) {
            Ok(v) => v,
            Err(why) => return Ok(Look::Stale(why)),
        };
        let look_err = |source| GateError::Look {
            target: a.target.clone(),
            op: a.op,
            source,
        };
        let mut guests = BTreeMap::new();
        for (vmid, (kind, approved_digest)) in &approved.guests {
            let guest = Target::guest(*kind, *vmid);
            let Some(seen) = backend.look(&guest).await.map_err(look_err)? else {
                continue;
            };
            let Some(digest) = seen.state_digest else {
                return Ok(Look::Stale(format!(
                    "{}'s state could not be read, so it cannot be shown unchanged",
                    guest.describe()
                )));
            };
            if &digest != approved_digest {
                return Ok(Look::Stale(format!(
                    "{}'s state digest is now {digest}; the op was approved against {approved_digest}",
                    guest.describe()
                )));
            }
            if let Some(lock) = seen.lock {
                return Ok(Look::Busy(format!(
                    "{} is locked ({lock})",
                    guest.describe()
                )));
            }
            guests.insert(*vmid, (*kind, digest));
        }
        // Only the node's own storages: a shared one holds other nodes' data.
        match self.local_only(backend, &approved.volumes).await {
            Ok(()) => {}
            Err(Halt::Stopped(why)) => return Ok(Look::Stale(why)),
            Err(Halt::InFlight(why)) => return Err(look_err(BackendError::retry(why))),
        }
        let mut volumes = BTreeMap::new();
        let mut listed: BTreeMap<String, BTreeMap<String, castellan_backend::StorageVolume>> =
            BTreeMap::new();
        for volid in approved.volumes.keys() {
            let Some((sid, _)) = volid.split_once(':') else {
                return Ok(Look::Stale(format!("{volid} names no storage")));
            };
            if !listed.contains_key(sid) {
                let storage = Target::storage(sid)
                    .map_err(|e| look_err(BackendError::retry(format!("{volid}: {e}"))))?;
                let now = match backend.storage_volumes(&storage).await {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        return Err(look_err(BackendError::retry(
                            "this backend has no storages",
                        )));
                    }
                    Err(e) if e.class == FailureClass::Gone => BTreeMap::new(),
                    Err(e) => return Err(look_err(e)),
                };
                listed.insert(sid.to_owned(), now);
            }
            if let Some(v) = listed.get(sid).and_then(|l| l.get(volid)) {
                // Only unused volumes are ever named: one used now changed.
                if let Some(by) = &v.referenced_by {
                    return Ok(Look::Stale(format!("{volid} is now used by {by}")));
                }
                volumes.insert(volid.clone(), v.size);
            }
        }
        let digest = decommission::digest(a.target.id(), &guests, &volumes);
        if digest != a.state_digest {
            return Ok(Look::Stale(format!(
                "what the op names on {} is not as it was approved (some of it changed or is gone)",
                a.target.describe()
            )));
        }
        Ok(Look::Proceed(castellan_backend::Observed {
            state_digest: Some(digest),
            stopped: true,
            lock: None,
        }))
    }

    /// Carries out a journaled decommission: each approved guest the intent has not
    /// recorded removed yet, still there and still as approved, is brought down, backed
    /// up (once per guest, recorded with the intent; unless the op waives it) and
    /// destroyed with `purge=1` and `destroy-unreferenced-disks=0`, recorded removed and
    /// audited `guest_destroyed` (one found gone is recorded so, `found_gone`); then the
    /// approved volumes are removed as a wipe removes them. Stops at the first item that
    /// changed, that the node refused, or that a task kept locked past a bounded wait
    /// (recorded failed, naming what the intent removed; rolled back when nothing was).
    /// Leaves the intent in flight when the node's answer is unknown: recovery resumes
    /// it.
    pub(super) async fn run_decommission<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
    ) -> Result<(), DestroyError> {
        let approved = match Approved::from_params(&a.params) {
            Ok(v) => v,
            Err(why) => return self.not_sent(id, a, why).await,
        };
        // What an earlier attempt of this intent removed is done.
        let mut removed = match self.store(move |s| s.items_removed(id)).await {
            Ok(r) => r,
            Err(e) => return Err(DestroyError::InFlight(e.to_string())),
        };
        let mut halted = Ok(());
        for (guest, digest) in approved.guest_targets() {
            if removed.contains(&guest.to_string()) {
                continue;
            }
            halted = self
                .decommission_guest(backend, id, a, &guest, digest)
                .await;
            if halted.is_err() {
                break;
            }
            removed.push(guest.to_string());
        }
        if halted.is_ok() {
            halted = self.local_only(backend, &approved.volumes).await;
        }
        if halted.is_ok() {
            halted = self
                .remove_volumes(backend, id, a, &approved.volumes, &mut removed)
                .await;
        }
        self.items_settled(id, a, halted, &removed).await
    }

    /// One approved guest of a decommission, destroyed (or found gone) and recorded so.
    async fn decommission_guest<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        guest: &Target,
        digest: &str,
    ) -> Result<(), Halt> {
        let who = guest.describe();
        let Some(seen) = self.guest_as_approved(backend, a, guest, digest).await? else {
            return self.guest_gone(id, a, guest, true).await;
        };
        if !seen.stopped {
            backend
                .bring_down(guest, DESTROY_SHUTDOWN_SECS)
                .await
                .map_err(|e| Halt::Stopped(format!("could not bring {who} down: {e}")))?;
            self.crashpoint("stopped");
        }
        self.guest_backup(backend, id, a, guest).await?;
        // The last look, as close to the DELETE as the API allows.
        let Some(seen) = self.guest_as_approved(backend, a, guest, digest).await? else {
            return self.guest_gone(id, a, guest, true).await;
        };
        if !seen.stopped {
            return Err(Halt::Stopped(format!("{who} is running again")));
        }
        self.crashpoint("destroying");
        let params: BTreeMap<String, String> = GUEST_DESTROY_PARAMS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let in_flight = |e: &dyn std::fmt::Display| {
            Halt::InFlight(format!("{} {}: destroying {who}: {e}", a.op, a.target))
        };
        match backend
            .dispatch_signed(Operation::Destroy, guest, &params, digest)
            .await
        {
            Ok(task) => match backend.wait_task(&task).await {
                Ok(_) => {}
                Err(e) if e.class == FailureClass::Unknown => return Err(in_flight(&e)),
                Err(e) => {
                    return Err(Halt::Stopped(format!(
                        "the node could not destroy {who} ({task}): {e}"
                    )));
                }
            },
            Err(e) if e.class == FailureClass::Gone => {
                return self.guest_gone(id, a, guest, true).await;
            }
            Err(e) if e.class == FailureClass::Unknown => return Err(in_flight(&e)),
            Err(e) => {
                return Err(Halt::Stopped(format!(
                    "the node refused to destroy {who}: {e}"
                )));
            }
        }
        self.crashpoint("deleted");
        self.guest_gone(id, a, guest, false).await?;
        self.crashpoint("destroyed");
        Ok(())
    }

    /// Records with intent `id` that `guest` is gone (`found_gone`: it was gone when
    /// looked at), audited `guest_destroyed` with its safety backup, and forgets its
    /// provenance (a later guest with its vmid is someone else's).
    async fn guest_gone(
        &self,
        id: IntentId,
        a: &DestructiveAction,
        guest: &Target,
        found_gone: bool,
    ) -> Result<(), Halt> {
        let backup = self
            .store(move |s| s.item_backups(id))
            .await
            .map_err(|e| Halt::InFlight(e.to_string()))?
            .remove(guest);
        let entry = AuditEvent::GuestDestroyed {
            backup: backup.clone(),
            found_gone,
        }
        .with(AuditFields::default().target(guest.clone()).op(a.op));
        self.record_removed(id, &guest.to_string(), entry).await?;
        if let Some((_, vmid)) = guest.as_guest() {
            let _ = self.with_store(move |s| s.forget_provenance(vmid)).await;
        }
        tracing::info!(event = "guest_destroyed", target = %a.target, guest = %guest, backup = ?backup, found_gone);
        Ok(())
    }

    /// A look at one approved guest: `None` when it is gone (done), the observation when
    /// it is still exactly as approved and holds no lock; otherwise why not.
    async fn guest_as_approved<B: Backend>(
        &self,
        backend: &B,
        a: &DestructiveAction,
        guest: &Target,
        digest: &str,
    ) -> Result<Option<castellan_backend::Observed>, Halt> {
        let who = guest.describe();
        let mut looks = 0;
        let seen = loop {
            let seen = match backend.look(guest).await {
                Ok(Some(g)) => g,
                Ok(None) => return Ok(None),
                Err(e) if e.class == FailureClass::Gone => return Ok(None),
                Err(e) => {
                    return Err(Halt::InFlight(format!(
                        "{} {}: cannot look at {who}: {e}",
                        a.op, a.target
                    )));
                }
            };
            // A task holds it (a backup, or the destroy an earlier attempt sent): give it
            // time, then stop here rather than wait without end.
            match &seen.lock {
                Some(_) if looks < LOCKED_LOOKS => {
                    looks += 1;
                    tokio::time::sleep(LOCKED_PAUSE).await;
                }
                _ => break seen,
            }
        };
        match seen.state_digest.as_deref() {
            Some(d) if d == digest => {}
            Some(d) => {
                return Err(Halt::Stopped(format!(
                    "{who}'s state digest is now {d}; the op was approved against {digest}"
                )));
            }
            None => {
                return Err(Halt::Stopped(format!(
                    "{who}'s state could not be read, so it cannot be shown unchanged"
                )));
            }
        }
        if let Some(lock) = &seen.lock {
            return Err(Halt::Stopped(format!(
                "{who} stayed locked ({lock}); the next plan names what is left"
            )));
        }
        Ok(Some(seen))
    }

    /// The safety backup of one guest of a decommission: none when one is recorded for it
    /// already (an attempt resumed), else a new one recorded with the intent and audited;
    /// none either when the op waives it or the backend keeps none (audited
    /// `backup_waived`). A backup that fails stops the op.
    async fn guest_backup<B: Backend>(
        &self,
        backend: &B,
        id: IntentId,
        a: &DestructiveAction,
        guest: &Target,
    ) -> Result<(), Halt> {
        let in_flight = |e: &dyn std::fmt::Display| Halt::InFlight(e.to_string());
        let taken = self
            .store(move |s| s.item_backups(id))
            .await
            .map_err(|e| in_flight(&e))?;
        if taken.contains_key(guest) {
            return Ok(());
        }
        let waived = a.params.get(WAIVE_BACKUP.key).map(String::as_str) == Some("0");
        let storage = self.backup_storage.clone();
        let before = if waived {
            None
        } else {
            backend.backups(guest, &storage).await.map_err(|e| {
                Halt::Stopped(format!(
                    "cannot list the backups of {guest} on storage {storage} before its safety backup: {e}"
                ))
            })?
        };
        let Some(before) = before else {
            return self
                .audit_no_backup(id, a.op, guest, waived)
                .await
                .map_err(|e| in_flight(&e));
        };
        let (volume, size) = self
            .take_backup(backend, guest, a.op, before)
            .await
            .map_err(Halt::Stopped)?;
        let (now, g, v) = (self.now(), guest.clone(), volume.clone());
        self.store(move |s| s.record_item_backup(id, &g, &v, size, now).map(|_| ()))
            .await
            .map_err(|e| in_flight(&e))?;
        tracing::info!(event = "backup_taken", target = %guest, op = %a.op, volume, size);
        self.crashpoint("backed_up");
        Ok(())
    }

    /// Refuses to remove volumes of a storage that is not (any longer) the node's own: a
    /// storage shared since the approval holds other nodes' data.
    async fn local_only<B: Backend>(
        &self,
        backend: &B,
        volumes: &BTreeMap<String, u64>,
    ) -> Result<(), Halt> {
        if volumes.is_empty() {
            return Ok(());
        }
        let local = match backend.local_storages().await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Halt::Stopped("this backend has no storages".into())),
            Err(e) => {
                return Err(Halt::InFlight(format!(
                    "cannot list the node's own storages: {e}"
                )));
            }
        };
        for volid in volumes.keys() {
            let sid = volid.split_once(':').map_or("", |(s, _)| s);
            if !local.iter().any(|l| l == sid) {
                return Err(Halt::Stopped(format!(
                    "{volid} is on storage {sid}, which is not (any longer) this node's own"
                )));
            }
        }
        Ok(())
    }
}
