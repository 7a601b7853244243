//! [`Backend`] over the Proxmox VE API: what the agent's operations mean on a node —
//! the requests they become, how their parameters are encoded, the task types the node
//! lists them under, and how the API's errors map to a [`FailureClass`].
//!
//! It serves guests (`lxc/ID`, `qemu/ID`) and the node's storages (`storage/ID`): a
//! storage's disk volumes, with what still references each, and the removal of one.

use std::collections::BTreeMap;

use castellan_backend::{
    Backend, BackendError, FailureClass, GuestBackend, Observed, StorageVolume, TaskHandle,
    TaskState, look_at_guest,
};
use castellan_core::model::{ActualGuest, ActualRun, GuestKind, GuestSource, Vmid};
use castellan_core::plan::Action;
use castellan_core::{Operation, Target, TargetKind};
use serde_json::Value;

use crate::pveconf::{spec_from_config, volume_in, volume_key, volume_owner};
use crate::{
    ConfigUpdate, DeleteOptions, Error, PveClient, StorageContentEntry, Upid, WaitOptions,
};

/// How many guests' configurations a storage's reference check reads at once.
const CONFIG_READS_AT_ONCE: usize = 8;

/// How the engine should treat a client error, wherever it comes from.
fn failure_class(e: &Error) -> FailureClass {
    match e {
        Error::DigestMismatch => FailureClass::Conflict,
        Error::NotFound { .. } => FailureClass::Gone,
        Error::Transport(_) | Error::TaskTimeout { .. } => FailureClass::Unknown,
        _ => FailureClass::Retry,
    }
}

impl From<Error> for BackendError {
    fn from(e: Error) -> Self {
        BackendError::new(failure_class(&e), e.to_string())
    }
}

/// [`Backend`] over the Proxmox VE API.
#[derive(Debug, Clone)]
pub struct PveBackend {
    client: PveClient,
    node: String,
    wait: WaitOptions,
}

impl PveBackend {
    /// A backend for `node` reached through `client`.
    pub fn new(client: PveClient, node: impl Into<String>) -> Self {
        PveBackend {
            client,
            node: node.into(),
            wait: WaitOptions::default(),
        }
    }

    /// The API client.
    pub fn client(&self) -> &PveClient {
        &self.client
    }
}

impl GuestBackend for PveBackend {
    async fn elsewhere(&self) -> Result<BTreeMap<Vmid, String>, BackendError> {
        Ok(self
            .client
            .cluster_guests()
            .await?
            .into_iter()
            .filter(|(_, node)| *node != self.node)
            .collect())
    }

    async fn list(&self) -> Result<Vec<ActualGuest>, BackendError> {
        let (lxc, qemu) = tokio::join!(
            self.client.list_guests(&self.node, GuestKind::Lxc),
            self.client.list_guests(&self.node, GuestKind::Qemu),
        );
        let mut out = Vec::new();
        for (kind, listed) in [(GuestKind::Lxc, lxc?), (GuestKind::Qemu, qemu?)] {
            for s in listed {
                let mut g = ActualGuest::new(s.vmid, kind, ActualRun::from_pve(&s.status));
                g.lock = s.lock.filter(|l| !l.is_empty());
                g.template = s.template;
                out.push(g);
            }
        }
        out.sort_by_key(|g| g.vmid);
        Ok(out)
    }

    async fn observe(
        &self,
        kind: GuestKind,
        vmid: Vmid,
    ) -> Result<Option<ActualGuest>, BackendError> {
        let status = match self.client.guest_status(&self.node, kind, vmid).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let config = match self.client.guest_config(&self.node, kind, vmid).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut g = ActualGuest::new(vmid, kind, ActualRun::from_pve(&status.status));
        g.ha_managed = status.ha_managed();
        g.template = status.template || config.get_bool("template").unwrap_or(false);
        g.lock = status
            .lock
            .or_else(|| config.get_str("lock"))
            .filter(|l| !l.is_empty());
        g.spec = match spec_from_config(kind, &config.values, &config.digest) {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::warn!(vmid, error = %e, "configuration not understood; it will not be written");
                None
            }
        };
        if kind == GuestKind::Qemu && g.run == ActualRun::Running {
            let pending = self.client.pending(&self.node, kind, vmid).await?;
            g.pending_restart = pending
                .into_iter()
                .filter(|p| p.pending.is_some() || p.delete)
                .map(|p| p.key)
                .collect();
        }
        Ok(Some(g))
    }

    async fn dispatch(&self, action: &Action) -> Result<Option<TaskHandle>, BackendError> {
        let kind = action.guest;
        let (node, vmid) = (self.node.as_str(), action.vmid);
        let upid = match action.kind {
            Operation::SetConfig => {
                let digest = action.digest.clone().ok_or_else(|| {
                    BackendError::retry("refusing a configuration write without a digest")
                })?;
                let mut update = ConfigUpdate::new(digest);
                update.set.clone_from(&action.params);
                update.delete.clone_from(&action.delete);
                match self.client.update_config(node, kind, vmid, &update).await? {
                    Some(upid) => upid,
                    None => return Ok(None),
                }
            }
            Operation::Start => self.client.start(node, kind, vmid).await?,
            Operation::Stop => self.client.stop(node, kind, vmid).await?,
            Operation::Shutdown => {
                let opts = action
                    .shutdown
                    .map(|p| crate::ShutdownOptions {
                        timeout: Some(p.timeout_secs),
                        force_stop: p.force_stop,
                    })
                    .unwrap_or_default();
                self.client.shutdown_with(node, kind, vmid, opts).await?
            }
            Operation::Reboot => self.client.reboot(node, kind, vmid).await?,
            Operation::Resize => {
                let (Some(disk), Some(size), Some(digest)) = (
                    action.params.get("disk"),
                    action.params.get("size"),
                    action.digest.as_deref(),
                ) else {
                    return Err(BackendError::retry(
                        "refusing a resize without a disk, a size and a digest",
                    ));
                };
                match self
                    .client
                    .resize_disk(node, kind, vmid, disk, size, digest)
                    .await?
                {
                    Some(upid) => upid,
                    None => return Ok(None),
                }
            }
            Operation::Provision => return self.provision(action).await.map(Some),
            other => {
                return Err(BackendError::retry(format!(
                    "{other} is not a benign action this backend carries out"
                )));
            }
        };
        Ok(Some(TaskHandle::new(upid.to_string())))
    }
}

impl PveBackend {
    /// Creates the guest an action declares from its source, once the cluster has
    /// confirmed (the request before) that no guest anywhere has its vmid. Every refusal
    /// names the guest and the source; none is read as the guest being gone.
    async fn provision(&self, action: &Action) -> Result<TaskHandle, BackendError> {
        let (kind, vmid, node) = (action.guest, action.vmid, self.node.as_str());
        let Some(source) = &action.source else {
            return Err(BackendError::retry(format!(
                "refusing to provision {} {vmid}: no source declared",
                kind.as_str()
            )));
        };
        let what = |e: Error| {
            let class = match e {
                Error::Transport(_) | Error::TaskTimeout { .. } => FailureClass::Unknown,
                _ => FailureClass::Retry,
            };
            BackendError::new(
                class,
                format!(
                    "cannot provision {} {vmid} from {}: {}",
                    kind.as_str(),
                    source.describe(),
                    node_words(&e)
                ),
            )
        };
        self.client.vmid_free(vmid).await.map_err(what)?;
        let upid = match source {
            GuestSource::Restore { archive, storage } => {
                self.client
                    .restore_guest(
                        node,
                        kind,
                        vmid,
                        archive,
                        storage.as_deref(),
                        crate::request::Restore::New,
                    )
                    .await
            }
            GuestSource::Clone {
                template,
                storage,
                full,
            } => {
                self.client
                    .clone_guest(node, kind, *template, vmid, storage.as_deref(), *full)
                    .await
            }
        }
        .map_err(what)?;
        Ok(TaskHandle::new(upid.to_string()))
    }
}

/// A node's refusal, in words: the parameter errors of a 400 spelt out, anything else as
/// the node said it.
fn node_words(e: &Error) -> String {
    match e {
        Error::Api {
            status: 400,
            errors,
            ..
        } if !errors.is_empty() => errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.trim()))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Api { message, .. } | Error::NotFound { message } => message.trim().to_owned(),
        other => other.to_string(),
    }
}

impl PveBackend {
    /// `restore_overwrite`: the signed archive (and storage) restored over the guest with
    /// `force=1`. The node itself refuses a running or protected guest.
    async fn restore_over(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        params: &BTreeMap<String, String>,
    ) -> Result<TaskHandle, BackendError> {
        let mut archive = None;
        let mut storage = None;
        for (k, v) in params {
            match k.as_str() {
                "archive" => archive = Some(v.as_str()),
                "storage" => storage = Some(v.as_str()),
                "backup" => {}
                _ => {
                    return Err(BackendError::retry(format!(
                        "restore_overwrite does not take parameter {k}={v}"
                    )));
                }
            }
        }
        let archive = archive
            .ok_or_else(|| BackendError::retry("restore_overwrite needs the archive to restore"))?;
        let upid = self
            .client
            .restore_guest(
                &self.node,
                kind,
                vmid,
                archive,
                storage,
                crate::request::Restore::Over,
            )
            .await
            .map_err(|e| {
                // A missing archive is not a guest that is gone: only a lost answer leaves
                // the request's fate unknown.
                let class = match e {
                    Error::Transport(_) | Error::TaskTimeout { .. } => FailureClass::Unknown,
                    _ => FailureClass::Retry,
                };
                BackendError::new(class, node_words(&e))
            })?;
        Ok(TaskHandle::new(upid.to_string()))
    }
}

/// The guest a target names, or a refusal.
fn guest_of(target: &Target) -> Result<(GuestKind, Vmid), BackendError> {
    target
        .as_guest()
        .ok_or_else(|| BackendError::retry(format!("{target} is not a Proxmox VE guest")))
}

/// The storage id a target names, or a refusal.
fn storage_of(target: &Target) -> Result<&str, BackendError> {
    if target.kind() == TargetKind::Storage {
        Ok(target.id())
    } else {
        Err(BackendError::retry(format!(
            "{target} is not a Proxmox VE storage"
        )))
    }
}

/// Whether the node's error says it has no storage `storage`: pve-storage's
/// `storage_config` (`storage 'x' does not exist`) or `storage_check_node` (`storage 'x'
/// is not available on node 'y'`). Only these: other texts with "does not exist" in them
/// (`unable to activate storage 'x' - directory '/mnt/pve/x' does not exist or is
/// unreachable`) are about a storage that is there.
fn storage_absent(storage: &str, e: &Error) -> bool {
    match e {
        Error::NotFound { message } | Error::Api { message, .. } => {
            message.contains(&format!("storage '{storage}' does not exist"))
                || message.contains(&format!("storage '{storage}' is not available on node"))
        }
        _ => false,
    }
}

/// A guest kind as Proxmox VE names it in words: `CT` or `VM`.
fn noun(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "CT",
        GuestKind::Qemu => "VM",
    }
}

impl PveBackend {
    /// Everything storage `storage` lists on this node. A storage the node does not have
    /// (see [`storage_absent`]) is [`FailureClass::Gone`]; one that is disabled, offline
    /// or unreachable is not (its volumes are still there): that is a retry.
    async fn storage_listing(
        &self,
        storage: &str,
    ) -> Result<Vec<StorageContentEntry>, BackendError> {
        self.client
            .storage_content(&self.node, storage)
            .await
            .map_err(|e| {
                if storage_absent(storage, &e) {
                    BackendError::new(
                        FailureClass::Gone,
                        format!(
                            "node {} has no storage {storage}: {}",
                            self.node,
                            node_words(&e)
                        ),
                    )
                } else {
                    // Whatever else "does not exist", the storage does.
                    let class = match failure_class(&e) {
                        FailureClass::Gone => FailureClass::Retry,
                        other => other,
                    };
                    BackendError::new(class, format!("cannot list storage {storage}: {e}"))
                }
            })
    }

    /// Every guest on this node, by vmid, with its kind.
    async fn guests_here(&self) -> Result<BTreeMap<Vmid, GuestKind>, BackendError> {
        let (lxc, qemu) = tokio::join!(
            self.client.list_guests(&self.node, GuestKind::Lxc),
            self.client.list_guests(&self.node, GuestKind::Qemu),
        );
        let mut out = BTreeMap::new();
        for (kind, listed) in [(GuestKind::Lxc, lxc?), (GuestKind::Qemu, qemu?)] {
            for g in listed {
                out.insert(g.vmid, kind);
            }
        }
        Ok(out)
    }

    /// What every guest on this node names, by volume id, in words (`CT 105's mp0`): each
    /// volume key of its configuration, current and pending (`GET .../pending` lists
    /// both, so a disk whose removal from a running VM is still pending counts, and so does
    /// one whose addition is). Any configuration that cannot be read fails the whole
    /// reading, a guest that vanished meanwhile included: nothing can be called
    /// unreferenced without every configuration.
    async fn volume_references(
        &self,
        guests: &BTreeMap<Vmid, GuestKind>,
    ) -> Result<BTreeMap<String, Vec<String>>, BackendError> {
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut todo = guests.iter().map(|(vmid, kind)| (*vmid, *kind));
        let mut reading = tokio::task::JoinSet::new();
        loop {
            while reading.len() < CONFIG_READS_AT_ONCE {
                let Some((vmid, kind)) = todo.next() else {
                    break;
                };
                let (client, node) = (self.client.clone(), self.node.clone());
                reading.spawn(async move {
                    let read = client.pending(&node, kind, vmid).await;
                    (vmid, kind, read)
                });
            }
            let Some(joined) = reading.join_next().await else {
                break;
            };
            let (vmid, kind, read) = joined.map_err(|e| {
                BackendError::retry(format!("reading a guest's configuration failed: {e}"))
            })?;
            let items = read.map_err(|e| match e {
                Error::NotFound { .. } => BackendError::retry(format!(
                    "{} {vmid} vanished while the node's volume references were read; look again",
                    noun(kind)
                )),
                other => {
                    let mut err = BackendError::from(other);
                    err.message = format!(
                        "cannot read the configuration of {} {vmid}: {}",
                        noun(kind),
                        err.message
                    );
                    err
                }
            })?;
            for item in items {
                if !volume_key(&item.key) {
                    continue;
                }
                let current = item
                    .value
                    .as_ref()
                    .and_then(Value::as_str)
                    .and_then(volume_in);
                let pending = item
                    .pending
                    .as_ref()
                    .and_then(Value::as_str)
                    .and_then(volume_in);
                let who = format!("{} {vmid}'s {}", noun(kind), item.key);
                if let Some(volid) = current {
                    refs.entry(volid.to_owned()).or_default().push(who.clone());
                }
                if let Some(volid) = pending.filter(|p| Some(*p) != current) {
                    refs.entry(volid.to_owned())
                        .or_default()
                        .push(format!("{who} (pending)"));
                }
            }
        }
        Ok(refs)
    }
}

/// What references volume `entry`, in words, or `None`: a configuration naming it (or a
/// linked clone of it), else its owner guest (by the storage's `vmid` and by its name)
/// existing on this node or elsewhere in the cluster.
fn referenced_by(
    entry: &StorageContentEntry,
    refs: &BTreeMap<String, Vec<String>>,
    here: &BTreeMap<Vmid, GuestKind>,
    cluster: &[(Vmid, String)],
    node: &str,
) -> Option<String> {
    let mut named: Vec<String> = refs.get(&entry.volid).cloned().unwrap_or_default();
    // A linked clone's volume id starts with its base volume's and a '/'
    // (`local-zfs:base-900-disk-0/vm-105-disk-0`); '0' is the character after '/'.
    let clones = refs.range(format!("{}/", entry.volid)..format!("{}0", entry.volid));
    for (_, users) in clones {
        named.extend(users.iter().map(|u| format!("{u} (a linked clone of it)")));
    }
    if !named.is_empty() {
        return Some(named.join("; "));
    }
    let mut owners: Vec<Vmid> = entry
        .vmid
        .into_iter()
        .chain(volume_owner(&entry.volid))
        .collect();
    owners.dedup();
    for owner in owners {
        if let Some(kind) = here.get(&owner) {
            return Some(format!("{} {owner} on this node", noun(*kind)));
        }
        if let Some((_, at)) = cluster.iter().find(|(vmid, _)| *vmid == owner) {
            return Some(if at == node {
                format!("VM/CT {owner} on this node")
            } else {
                format!("VM {owner}, which node {at} has")
            });
        }
    }
    None
}

impl Backend for PveBackend {
    fn serves(&self, target: &Target) -> bool {
        match target.kind() {
            TargetKind::Lxc | TargetKind::Qemu | TargetKind::Storage => true,
            TargetKind::Node => target.id() == self.node,
            TargetKind::Container | TargetKind::Volume => false,
        }
    }

    async fn look(&self, target: &Target) -> Result<Option<Observed>, BackendError> {
        match target.kind() {
            TargetKind::Storage => Err(BackendError::retry(format!(
                "{target} is a storage, not a guest: its volumes and what references them are read with storage_volumes"
            ))),
            TargetKind::Node => Err(BackendError::retry(format!(
                "{target} is a node, not a guest: a decommission looks at each guest it names"
            ))),
            _ => look_at_guest(self, target).await,
        }
    }

    /// The storages `/cluster/resources` lists for this node with `shared` 0 and content
    /// `images` or `rootdir`.
    async fn local_storages(&self) -> Result<Option<Vec<String>>, BackendError> {
        Ok(Some(self.client.local_disk_storages(&self.node).await?))
    }

    /// The disk volumes of storage `target` (content `images` and `rootdir`), by volume id,
    /// with what references each. Backups, ISOs, container templates, snippets and
    /// imports are never listed: a wipe never touches them. A volume is referenced when
    /// any guest configuration on this node names it, current or pending, `unusedN`
    /// included (Proxmox VE counts a detached disk as its guest's), or names a linked
    /// clone of it; else when its owner (`vm-105-disk-0` is 105's) is a guest on this node,
    /// even one whose configuration does not name it, or elsewhere in the cluster.
    ///
    /// Proxmox VE lists a disk whose owner is no container as `images`, so on a storage
    /// configured for `rootdir` only a container's disk whose container is gone is not
    /// listed at all (and so never wiped). A size the storage does not give is 0.
    async fn storage_volumes(
        &self,
        target: &Target,
    ) -> Result<Option<BTreeMap<String, StorageVolume>>, BackendError> {
        let storage = storage_of(target)?;
        let disks: Vec<StorageContentEntry> = self
            .storage_listing(storage)
            .await?
            .into_iter()
            .filter(StorageContentEntry::is_disk)
            .collect();
        if disks.is_empty() {
            return Ok(Some(BTreeMap::new()));
        }
        let here = self.guests_here().await?;
        let refs = self.volume_references(&here).await?;
        // Read last, so a guest that moved away while the configurations were read is
        // found where it went.
        let cluster = self.client.cluster_guests().await?;
        Ok(Some(
            disks
                .into_iter()
                .map(|entry| {
                    let volume = StorageVolume {
                        size: entry.size.unwrap_or(0),
                        referenced_by: referenced_by(&entry, &refs, &here, &cluster, &self.node),
                    };
                    (entry.volid, volume)
                })
                .collect(),
        ))
    }

    /// Removes disk volume `volid` of storage `target`: `DELETE .../content/{volid}`,
    /// whose `imgdel` task is returned (`None` where the node answered without one).
    ///
    /// A volume id of another storage is refused before anything is sent. The node does
    /// not refuse a volume that is not there (its task warns or fails, by storage type),
    /// so the storage is listed first: a volume it does not list is
    /// [`FailureClass::Gone`], and one that is not a disk (a backup, an ISO, a template)
    /// is refused. The node does not check references either; the gatekeeper has just
    /// seen this volume unreferenced. A refusal by the node is a retry, in its words; an
    /// answer lost or unreadable leaves the removal [`FailureClass::Unknown`].
    async fn remove_storage_volume(
        &self,
        target: &Target,
        volid: &str,
    ) -> Result<Option<TaskHandle>, BackendError> {
        let storage = storage_of(target)?;
        let on_storage = volid
            .split_once(':')
            .is_some_and(|(sid, name)| sid == storage && !name.is_empty());
        if !on_storage {
            return Err(BackendError::retry(format!(
                "refusing to remove {volid:?} from {target}: it is not a volume of storage {storage}"
            )));
        }
        let listed = self.storage_listing(storage).await?;
        match listed.iter().find(|e| e.volid == volid) {
            None => {
                return Err(BackendError::new(
                    FailureClass::Gone,
                    format!(
                        "storage {storage} on node {} has no volume {volid}",
                        self.node
                    ),
                ));
            }
            Some(entry) if !entry.is_disk() => {
                return Err(BackendError::retry(format!(
                    "refusing to remove {volid}: it is {}, not a guest's disk, and a wipe removes disks only",
                    entry.content.as_deref().map_or_else(
                        || "of no content type the storage names".to_owned(),
                        |c| format!("{c} content")
                    )
                )));
            }
            Some(_) => {}
        }
        match self.client.delete_volume(&self.node, storage, volid).await {
            Ok(upid) => Ok(upid.map(|u| TaskHandle::new(u.to_string()))),
            Err(e) => {
                let class = match e {
                    _ if storage_absent(storage, &e) => FailureClass::Gone,
                    // Sent, and perhaps carried out: only the node's task list can tell.
                    Error::Transport(_) | Error::TaskTimeout { .. } | Error::Decode { .. } => {
                        FailureClass::Unknown
                    }
                    _ => FailureClass::Retry,
                };
                Err(BackendError::new(
                    class,
                    format!(
                        "cannot remove {volid} from storage {storage}: {}",
                        node_words(&e)
                    ),
                ))
            }
        }
    }

    async fn bring_down(&self, target: &Target, timeout_secs: u32) -> Result<(), BackendError> {
        let (kind, vmid) = guest_of(target)?;
        let down = Action::bring_down(kind, vmid, timeout_secs);
        self.execute(&down).await.map(|_| ())
    }

    async fn dispatch_signed(
        &self,
        op: Operation,
        target: &Target,
        params: &BTreeMap<String, String>,
        // The node offers no conditional destroy: the gatekeeper's last look, one round
        // trip before, is the check (docs/signed-ops.md).
        _approved: &str,
    ) -> Result<TaskHandle, BackendError> {
        let (kind, vmid) = guest_of(target)?;
        if op == Operation::RestoreOverwrite {
            return self.restore_over(kind, vmid, params).await;
        }
        if op != Operation::Destroy {
            return Err(BackendError::unsupported(op));
        }
        // The signed parameters were checked against the operation table by the gate;
        // each is encoded here once, as the node's request takes it.
        let mut opts = DeleteOptions::default();
        for (k, v) in params {
            match (k.as_str(), v.as_str()) {
                ("purge", "1") => opts.purge = true,
                ("destroy-unreferenced-disks", "0") => opts.unreferenced_disks = Some(false),
                ("destroy-unreferenced-disks", "1") => opts.unreferenced_disks = Some(true),
                // The safety backup's waiver is the gatekeeper's business, not the node's.
                ("backup", "0") => {}
                _ => {
                    return Err(BackendError::retry(format!(
                        "{op} does not take parameter {k}={v}"
                    )));
                }
            }
        }
        let upid = self
            .client
            .delete_guest(&self.node, kind, vmid, opts)
            .await?;
        Ok(TaskHandle::new(upid.to_string()))
    }

    async fn tasks_of(
        &self,
        target: &Target,
        op: Operation,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Vec<TaskHandle>>, BackendError> {
        let (kind, mut vmid) = guest_of(target)?;
        // A clone's task is its template's (the node names a task by the guest it
        // started on); a restore's is the new guest's.
        if op == Operation::Provision
            && let Some(template) = params.get("clone")
        {
            vmid = template.parse().map_err(|_| {
                BackendError::retry(format!(
                    "journaled clone template {template:?} is not a vmid"
                ))
            })?;
        }
        let clone = params.contains_key("clone");
        let typefilter = match (op, kind) {
            (Operation::Provision, GuestKind::Lxc) if clone => "vzclone",
            (Operation::Provision, GuestKind::Qemu) if clone => "qmclone",
            (Operation::Provision, GuestKind::Lxc) => "vzrestore",
            (Operation::Provision, GuestKind::Qemu) => "qmrestore",
            (Operation::Destroy, GuestKind::Lxc) => "vzdestroy",
            (Operation::Destroy, GuestKind::Qemu) => "qmdestroy",
            (Operation::RestoreOverwrite, GuestKind::Lxc) => "vzrestore",
            (Operation::RestoreOverwrite, GuestKind::Qemu) => "qmrestore",
            (Operation::Start, GuestKind::Lxc) => "vzstart",
            (Operation::Start, GuestKind::Qemu) => "qmstart",
            (Operation::Stop, GuestKind::Lxc) => "vzstop",
            (Operation::Stop, GuestKind::Qemu) => "qmstop",
            _ => return Ok(None),
        };
        // Every task of the type the node still lists for the guest (its own start times
        // are never compared with the agent's clock).
        let tasks = self
            .client
            .list_tasks(&self.node, vmid, typefilter, 0)
            .await?;
        Ok(Some(
            tasks
                .into_iter()
                .map(|t| TaskHandle::new(t.upid.to_string()))
                .collect(),
        ))
    }

    async fn backups(
        &self,
        target: &Target,
        storage: &str,
    ) -> Result<Option<Vec<(String, u64)>>, BackendError> {
        let (_, vmid) = guest_of(target)?;
        let found = self.client.backups(&self.node, storage, vmid).await?;
        Ok(Some(found.into_iter().map(|b| (b.volid, b.size)).collect()))
    }

    async fn start_backup(
        &self,
        target: &Target,
        storage: &str,
    ) -> Result<TaskHandle, BackendError> {
        let (_, vmid) = guest_of(target)?;
        let upid = self.client.vzdump(&self.node, vmid, storage).await?;
        Ok(TaskHandle::new(upid.to_string()))
    }

    async fn wait_task(&self, task: &TaskHandle) -> Result<u32, BackendError> {
        let upid = parse_upid(task)?;
        let ok = self.client.wait_task(&self.node, &upid, self.wait).await?;
        Ok(ok.warnings)
    }

    async fn task_status_once(&self, task: &TaskHandle) -> Result<TaskState, BackendError> {
        let upid = parse_upid(task)?;
        let status = match self.client.task_status(&self.node, &upid).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => return Ok(TaskState::Unknown),
            Err(e) => return Err(e.into()),
        };
        Ok(match status.outcome() {
            None => TaskState::Running,
            Some(Ok(ok)) => TaskState::Succeeded {
                warnings: ok.warnings,
            },
            Some(Err(exitstatus)) => TaskState::Failed { exitstatus },
        })
    }
}

fn parse_upid(task: &TaskHandle) -> Result<Upid, BackendError> {
    task.as_str()
        .parse()
        .map_err(|e| BackendError::retry(format!("task id {:?} is not a UPID: {e}", task.as_str())))
}
