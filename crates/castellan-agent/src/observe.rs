//! Observing a whole node: list every guest, then read the configuration of each guest
//! that is also desired (the others only need their listing to be reported); where a
//! declared guest with a source is missing, also which vmids the cluster's other nodes
//! have (those are never provisioned here).

use std::sync::Arc;

use castellan_core::model::{ActualState, DesiredState};
use futures_util::stream::{self, StreamExt};

use crate::backend::{Backend, BackendError, GuestBackend};

/// Fills in, for each guest of `actual` that `desired` declares a `restore_over` for,
/// the archive the journal in `store` shows last restored over it, so the planner
/// proposes each declared restore once.
pub fn fill_restored(
    store: &castellan_store::Store,
    desired: &DesiredState,
    actual: &mut ActualState,
) -> Result<(), castellan_store::StoreError> {
    for (vmid, g) in actual.guests.iter_mut() {
        if desired
            .guests
            .get(vmid)
            .is_some_and(|d| d.restore_over.is_some() && d.kind == g.kind)
        {
            g.restored = store.last_restored(&castellan_core::Target::guest(g.kind, *vmid))?;
        }
    }
    Ok(())
}

/// Reads the volumes of every storage `desired` declares a wipe for into `actual`. A
/// storage that cannot be read is left out (the plan then says so and proposes nothing
/// for it).
pub async fn observe_storages<B: Backend>(
    backend: &B,
    desired: &DesiredState,
    actual: &mut ActualState,
) {
    for storage in desired.wipes.keys() {
        read_storage(backend, storage, actual).await;
    }
}

/// Reads the volumes of `storage` into `actual.storages`; one that cannot be read is left
/// out (logged).
async fn read_storage<B: Backend>(backend: &B, storage: &str, actual: &mut ActualState) {
    let Ok(target) = castellan_core::Target::storage(storage) else {
        return;
    };
    match backend.storage_volumes(&target).await {
        Ok(Some(volumes)) => {
            actual.storages.insert(storage.to_owned(), volumes);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(event = "storage_unreadable", storage, error = %e),
    }
}

/// Lists the node: every guest with its power state, lock and template flag, no
/// configuration.
pub async fn list_node<B: GuestBackend>(backend: &B) -> Result<ActualState, BackendError> {
    let mut actual = ActualState::default();
    for g in backend.list().await? {
        actual.guests.insert(g.vmid, g);
    }
    Ok(actual)
}

/// Observes the node with at most `parallel` requests in flight. A desired guest whose
/// configuration cannot be read stays in the result with an unknown spec (so nothing is
/// written to it) — one unreadable guest does not hide the rest.
pub async fn observe_node<B: GuestBackend>(
    backend: &Arc<B>,
    desired: &DesiredState,
    parallel: usize,
) -> Result<ActualState, BackendError> {
    let listed = backend.list().await?;
    let mut actual = ActualState::default();
    let mut wanted = Vec::new();
    // A decommission names every guest with its digest: all are read.
    let every = desired.decommission.is_some();
    for g in listed {
        if every
            || desired
                .guests
                .get(&g.vmid)
                .is_some_and(|d| d.kind == g.kind)
        {
            wanted.push((g.kind, g.vmid));
        }
        actual.guests.insert(g.vmid, g);
    }
    let observed: Vec<_> = stream::iter(wanted)
        .map(|(kind, vmid)| {
            let backend = Arc::clone(backend);
            async move { (vmid, backend.observe(kind, vmid).await) }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    for (vmid, result) in observed {
        match result {
            Ok(Some(g)) => {
                actual.guests.insert(vmid, g);
            }
            Ok(None) => {
                actual.guests.remove(&vmid);
            }
            Err(e) => {
                tracing::warn!(vmid, error = %e, "could not read guest; its configuration is treated as unknown");
            }
        }
    }
    if desired
        .guests
        .iter()
        .any(|(vmid, d)| d.source.is_some() && !actual.guests.contains_key(vmid))
    {
        actual.elsewhere = backend.elsewhere().await?;
    }
    observe_storages(&**backend, desired, &mut actual).await;
    observe_local_storages(&**backend, desired, &mut actual).await;
    Ok(actual)
}

/// For a node being decommissioned, reads which storages are the node's own and the
/// volumes of each into `actual` (`local_storages` stays `None` when they cannot be
/// listed; a storage whose volumes cannot be read is left out of `storages`: the plan
/// then says so and names none of its volumes).
pub async fn observe_local_storages<B: Backend>(
    backend: &B,
    desired: &DesiredState,
    actual: &mut ActualState,
) {
    if desired.decommission.is_none() {
        return;
    }
    let ids = match backend.local_storages().await {
        Ok(Some(ids)) => ids,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(event = "storages_unreadable", error = %e);
            return;
        }
    };
    for storage in &ids {
        read_storage(backend, storage, actual).await;
    }
    actual.local_storages = Some(ids.into_iter().collect());
}
