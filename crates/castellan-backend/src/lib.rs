//! The seam between castellan's agent and what it manages.
//!
//! [`Backend`] is what the gatekeeper needs from anything castellan manages: look at a
//! [`Target`] (`lxc/101`, `container/web`), carry out one operation from the operation
//! table ([`castellan_core::Operation`]) on it, and follow the task that carries it out.
//! [`GuestBackend`] adds what the guest engine needs from a node of guests (list,
//! observe, benign actions). It names no
//! API, no parameter encoding and no task format: a backend crate (Proxmox VE in
//! `castellan-pve`, Docker in `castellan-docker`, a test's fake) implements it and maps its own errors to a
//! [`FailureClass`], and its tasks travel through the agent (and its journal) as opaque
//! [`TaskHandle`]s that only the backend that made them reads.
//!
//! This crate depends on `castellan-core` alone, so a backend never needs another
//! backend's code.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use castellan_core::model::{ActualGuest, ActualRun, GuestKind, Vmid};
use castellan_core::plan::Action;
pub use castellan_core::recovery::TaskState;
use castellan_core::{Operation, Target};
use thiserror::Error;

/// How the engine should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The target changed since it was read: re-observe and re-plan at once.
    Conflict,
    /// The target no longer exists.
    Gone,
    /// Worth retrying after a back-off (locks, failed tasks, refusals).
    Retry,
    /// Whether the request took effect is not known: the answer was lost in transport,
    /// or a task's end could not be learnt in time. Never an outcome: a destructive
    /// request in this state stays in flight until the backend's own records settle it.
    Unknown,
}

/// A failed observation or operation.
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct BackendError {
    /// How to react.
    pub class: FailureClass,
    /// What happened (never contains a secret).
    pub message: String,
}

impl BackendError {
    /// A failure of class `class`.
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        BackendError {
            class,
            message: message.into(),
        }
    }

    /// A retryable failure.
    pub fn retry(message: impl Into<String>) -> Self {
        BackendError::new(FailureClass::Retry, message)
    }

    /// An operation this backend does not carry out (a retryable refusal: nothing was
    /// sent).
    pub fn unsupported(op: Operation) -> Self {
        BackendError::retry(format!("{op} is not an operation this backend carries out"))
    }
}

/// A backend's task, opaque to everyone else: the agent keeps it, journals it and hands
/// it back, and only the backend that made it reads what is inside.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskHandle(String);

impl TaskHandle {
    /// A handle for the backend's task id `id` (also how a journaled one is restored).
    pub fn new(id: impl Into<String>) -> Self {
        TaskHandle(id.into())
    }

    /// The id as the backend wrote it (for the journal and the audit log).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a fresh look at one target shows: what a signed op is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The digest an op's precondition is compared with (a guest's configuration
    /// digest; a container's declaration, image and volumes), or `None` when it could
    /// not be read — then the target cannot be shown unchanged and nothing goes on.
    pub state_digest: Option<String>,
    /// Whether it is stopped (an operation whose table row says it must stop first is
    /// sent only then).
    pub stopped: bool,
    /// A lock some other task holds on it (`backup`, `migrate`, ...): not now.
    pub lock: Option<String>,
}

pub use castellan_core::model::StorageVolume;

/// What the gatekeeper needs from any backend to carry out a signed operation on one
/// [`Target`] exactly once, and to settle it after a crash.
pub trait Backend: Send + Sync + 'static {
    /// Whether `target` is one this backend manages (crash recovery settles each
    /// journaled intent with the backend that serves its target).
    fn serves(&self, target: &Target) -> bool;

    /// Whether this backend converges its benign work by re-planning from a fresh
    /// observation, so a benign step cut short by a crash needs nothing undone (crash
    /// recovery then settles it as re-planned instead of by its row's rule).
    fn replans_benign(&self) -> bool {
        false
    }

    /// A fresh look at `target`; `None` if it does not exist (as that kind).
    fn look(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Option<Observed>, BackendError>> + Send;

    /// Brings `target` to a stop before an operation whose table row says it must be
    /// stopped first: cleanly, then (after `timeout_secs`) hard, since what follows
    /// loses whatever a hard stop would.
    fn bring_down(
        &self,
        target: &Target,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Sends a signed operation `op` on `target`, with the op's signed parameters (the
    /// gate has already checked them against the operation table), once everything its
    /// table row says must happen first has happened. Returns its task.
    ///
    /// `approved` is the state digest the op was approved against. A backend that can
    /// make the operation conditional checks it as close to the act as it can and
    /// refuses with [`FailureClass::Conflict`] (nothing done) when the target is no
    /// longer that; one that cannot relies on the gatekeeper's look just before.
    fn dispatch_signed(
        &self,
        op: Operation,
        target: &Target,
        params: &BTreeMap<String, String>,
        approved: &str,
    ) -> impl Future<Output = Result<TaskHandle, BackendError>> + Send;

    /// Waits for a task to finish. Returns the number of warnings it reported; a failed
    /// task is an error.
    fn wait_task(
        &self,
        task: &TaskHandle,
    ) -> impl Future<Output = Result<u32, BackendError>> + Send;

    /// Looks at a task once, without waiting (crash recovery).
    fn task_status_once(
        &self,
        task: &TaskHandle,
    ) -> impl Future<Output = Result<TaskState, BackendError>> + Send;

    /// The backups of `target` on `storage` (volume id and size), to tell which one a
    /// safety backup made; `None` when this backend keeps no backups of such a target
    /// (its signed ops then go on without one, audited so).
    fn backups(
        &self,
        target: &Target,
        storage: &str,
    ) -> impl Future<Output = Result<Option<Vec<(String, u64)>>, BackendError>> + Send {
        let _ = (target, storage);
        async { Ok(None) }
    }

    /// Starts one backup of `target` to `storage` (the safety backup before a signed
    /// destroy or restore-overwrite). Only called where [`Backend::backups`] answers
    /// `Some`.
    fn start_backup(
        &self,
        target: &Target,
        storage: &str,
    ) -> impl Future<Output = Result<TaskHandle, BackendError>> + Send {
        let _ = storage;
        let what = format!("a backup of {target}");
        async move {
            Err(BackendError::new(
                FailureClass::Retry,
                format!("this backend cannot take {what}"),
            ))
        }
    }

    /// Every volume on storage `storage` (the `storage/ID` target a wipe acts on), by
    /// volume id, with what references each; `None` when this backend has no such
    /// storage kind (only a node of guests has). A storage the node does not have is an
    /// error of class [`FailureClass::Gone`].
    fn storage_volumes(
        &self,
        storage: &Target,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, StorageVolume>>, BackendError>> + Send
    {
        let _ = storage;
        async { Ok(None) }
    }

    /// Removes volume `volid` from `storage`. Returns its task, or `None` where the
    /// backend removed it synchronously. A volume that is not there is an error of class
    /// [`FailureClass::Gone`]. Only called for a volume the gatekeeper has just seen
    /// unreferenced, as approved.
    fn remove_storage_volume(
        &self,
        storage: &Target,
        volid: &str,
    ) -> impl Future<Output = Result<Option<TaskHandle>, BackendError>> + Send {
        let what = format!("remove {volid} from {storage}");
        async move {
            Err(BackendError::new(
                FailureClass::Retry,
                format!("this backend cannot {what}"),
            ))
        }
    }

    /// The node's own storages (not shared with other nodes) that may hold guests' disks,
    /// by id: what a decommission removes volumes from; `None` where this backend has no
    /// storages.
    fn local_storages(
        &self,
    ) -> impl Future<Output = Result<Option<Vec<String>>, BackendError>> + Send {
        async { Ok(None) }
    }

    /// The backend's tasks of operation `op` for `target`, as it lists them; `params` are
    /// the operation's journaled parameters (a clone's tasks are listed under the
    /// template it copies). Taken just before a request that must settle exactly once
    /// and again by recovery, the difference is the request's own task, found without
    /// comparing anyone's clock. Backends that cannot list tasks answer `None`.
    fn tasks_of(
        &self,
        target: &Target,
        op: Operation,
        params: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Option<Vec<TaskHandle>>, BackendError>> + Send {
        let _ = (target, op, params);
        async { Ok(None) }
    }
}

/// A node of guests (Proxmox VE): what the agent's guest engine needs on top of
/// [`Backend`] to observe the node and converge it with benign [`Action`]s.
pub trait GuestBackend: Backend {
    /// Every guest on the node, with power state, lock and template flag but no
    /// configuration.
    fn list(&self) -> impl Future<Output = Result<Vec<ActualGuest>, BackendError>> + Send;

    /// One guest in full (configuration and pending changes); `None` if it does not exist
    /// as that kind.
    fn observe(
        &self,
        kind: GuestKind,
        vmid: Vmid,
    ) -> impl Future<Output = Result<Option<ActualGuest>, BackendError>> + Send;

    /// The guests that other nodes of the same cluster have, by vmid, with the node that
    /// has each: never provisioned here (a vmid is unique in a cluster). A node on its
    /// own answers none.
    fn elsewhere(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<Vmid, String>, BackendError>> + Send {
        async { Ok(BTreeMap::new()) }
    }

    /// Sends one benign action. Returns the task to wait for, or `None` when the backend
    /// applied it synchronously. A `provision` is sent only once the backend has checked,
    /// as close to the request as it can, that no guest anywhere has its vmid.
    fn dispatch(
        &self,
        action: &Action,
    ) -> impl Future<Output = Result<Option<TaskHandle>, BackendError>> + Send;

    /// Sends one benign action and waits for it. Returns the task's warnings.
    fn execute(&self, action: &Action) -> impl Future<Output = Result<u32, BackendError>> + Send {
        async move {
            match self.dispatch(action).await? {
                Some(task) => self.wait_task(&task).await,
                None => Ok(0),
            }
        }
    }
}

/// A guest backend's [`Backend::look`]: the guest `target` names, observed in full.
/// Targets that are not guests are not this backend's.
pub async fn look_at_guest<B: GuestBackend>(
    backend: &B,
    target: &Target,
) -> Result<Option<Observed>, BackendError> {
    let Some((kind, vmid)) = target.as_guest() else {
        return Err(BackendError::retry(format!(
            "{target} is not a guest this backend manages"
        )));
    };
    Ok(backend.observe(kind, vmid).await?.map(|g| Observed {
        state_digest: g.spec.as_ref().map(|s| s.digest.clone()),
        stopped: g.run == ActualRun::Stopped,
        lock: g.lock,
    }))
}
