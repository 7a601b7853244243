//! Desired and actual state of one node's guests.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Proxmox VE guest id (`pve-vmid`: 100 ..= 999_999_999).
pub type Vmid = u32;

/// The smallest and largest vmid Proxmox VE accepts.
pub const VMID_RANGE: std::ops::RangeInclusive<Vmid> = 100..=999_999_999;

/// The two kinds of Proxmox VE guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// An LXC container (`/nodes/{node}/lxc`).
    Lxc,
    /// A QEMU/KVM virtual machine (`/nodes/{node}/qemu`).
    Qemu,
}

impl GuestKind {
    /// The path segment and `type` value Proxmox VE uses for this kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            GuestKind::Lxc => "lxc",
            GuestKind::Qemu => "qemu",
        }
    }

    /// How Proxmox VE names a guest of this kind in its messages ("CT 101", "VM 101").
    pub fn noun(&self) -> &'static str {
        match self {
            GuestKind::Lxc => "CT",
            GuestKind::Qemu => "VM",
        }
    }
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The run state an operator asks for. `Unspecified` leaves power state unmanaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredRun {
    /// The guest should be running.
    Running,
    /// The guest should be stopped.
    Stopped,
    /// Power state is not managed.
    #[default]
    Unspecified,
}

/// What the agent may do when a running guest has configuration changes that only take
/// effect after a restart (QEMU `[PENDING]` changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Report that a restart is needed and leave the guest running (the default).
    #[default]
    Manual,
    /// Reboot the guest so the pending changes take effect.
    Reboot,
}

/// One guest as the operator declared it. `None` fields are unmanaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredGuest {
    /// The guest id.
    pub vmid: Vmid,
    /// Container or virtual machine.
    pub kind: GuestKind,
    /// Desired power state.
    pub run: DesiredRun,
    /// CPU cores (`cores`).
    pub cores: Option<u32>,
    /// Memory in bytes; compared and written as whole MiB.
    pub memory_bytes: Option<u64>,
    /// Free-text description (`description`).
    pub description: Option<String>,
    /// Tags; compared as Proxmox VE stores them.
    pub tags: Option<Vec<String>>,
    /// What to do about changes pending a restart.
    pub restart: RestartPolicy,
    /// Whether the guest should exist. `Absent` plans a destroy, which is destructive and
    /// waits for an operator's signature.
    pub ensure: Ensure,
    /// For an absent guest: also remove it from backup jobs, replication and HA
    /// (Proxmox VE's `purge`). Part of what the operator signs.
    pub purge: bool,
    /// How the guest is brought down when it should be stopped.
    pub shutdown: ShutdownPolicy,
    /// Where a guest that does not exist yet comes from. `None`: a missing guest is only
    /// reported (a provisioning candidate), never created.
    pub source: Option<GuestSource>,
    /// Desired disk sizes in bytes by configuration key (`rootfs`, `mp0`, `scsi0`, ...).
    /// Disks only ever grow: a smaller size than the node's is refused, never applied.
    pub disks: BTreeMap<String, u64>,
    /// A backup to restore over the existing guest, once (destructive: it waits for a
    /// signed op). Restored once per archive: the agent's journal records each restore.
    pub restore_over: Option<RestoreOver>,
    /// Whether a signed destroy or restore-overwrite takes a safety backup first (the
    /// default). `false` puts the waiver (`backup=0`) in what the operator signs.
    pub safety_backup: bool,
}

/// A backup to restore over an existing guest, replacing everything it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOver {
    /// The backup's volume id.
    pub archive: String,
    /// The storage its disks are restored to (the node's default if `None`).
    pub storage: Option<String>,
}

/// Where a provisioned guest comes from: a backup restored to its new vmid, or a clone
/// of a template. Creating a guest loses nothing, so it is benign; the agent records it
/// in its journal as its own creation (provenance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum GuestSource {
    /// Restore the backup volume `archive` (`local:backup/vzdump-lxc-900-....tar.zst`).
    Restore {
        /// The backup's volume id.
        archive: String,
        /// The storage the guest's disks are restored to (the node's default if `None`).
        storage: Option<String>,
    },
    /// Clone the template `template` (a guest of the same kind on this node).
    Clone {
        /// The template's vmid.
        template: Vmid,
        /// The storage a full clone's disks go to (the template's if `None`).
        storage: Option<String>,
        /// A full copy (`true`) or a linked clone (`false`); `None` leaves it to
        /// Proxmox VE (linked from a template).
        full: Option<bool>,
    },
}

impl GuestSource {
    /// The source in words, for plans and the journal.
    pub fn describe(&self) -> String {
        match self {
            GuestSource::Restore { archive, storage } => match storage {
                Some(s) => format!("restore of {archive} to storage {s}"),
                None => format!("restore of {archive}"),
            },
            GuestSource::Clone {
                template,
                storage,
                full,
            } => {
                let how = match full {
                    Some(true) => "full clone",
                    Some(false) => "linked clone",
                    None => "clone",
                };
                match storage {
                    Some(s) => format!("{how} of template {template} to storage {s}"),
                    None => format!("{how} of template {template}"),
                }
            }
        }
    }

    /// The source as journal parameters (what `castellan journal` shows of a provision).
    pub fn journal_params(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        match self {
            GuestSource::Restore { archive, storage } => {
                p.insert("restore".to_owned(), archive.clone());
                if let Some(s) = storage {
                    p.insert("storage".to_owned(), s.clone());
                }
            }
            GuestSource::Clone {
                template,
                storage,
                full,
            } => {
                p.insert("clone".to_owned(), template.to_string());
                if let Some(s) = storage {
                    p.insert("storage".to_owned(), s.clone());
                }
                if let Some(f) = full {
                    p.insert("full".to_owned(), u8::from(*f).to_string());
                }
            }
        }
        p
    }
}

/// How a running guest that should be stopped is brought down: a clean shutdown (ACPI
/// for a VM, the init system for a container), waited for up to `timeout_secs`; a hard
/// stop after that only when `force_stop` allows it, since pulling the plug can corrupt
/// the guest's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownPolicy {
    /// Seconds to wait for the guest to shut down.
    pub timeout_secs: u32,
    /// Whether the node may hard-stop the guest once the timeout has passed.
    pub force_stop: bool,
}

/// The default wait for a clean shutdown, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u32 = 180;

impl Default for ShutdownPolicy {
    fn default() -> Self {
        ShutdownPolicy {
            timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            force_stop: false,
        }
    }
}

/// Whether a declared guest should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensure {
    /// The guest should exist (the default).
    #[default]
    Present,
    /// The guest should not exist: a signed destroy.
    Absent,
}

impl DesiredGuest {
    /// A guest with every field unmanaged.
    pub fn new(vmid: Vmid, kind: GuestKind) -> Self {
        DesiredGuest {
            vmid,
            kind,
            run: DesiredRun::Unspecified,
            cores: None,
            memory_bytes: None,
            description: None,
            tags: None,
            restart: RestartPolicy::Manual,
            ensure: Ensure::Present,
            purge: false,
            shutdown: ShutdownPolicy::default(),
            source: None,
            disks: BTreeMap::new(),
            restore_over: None,
            safety_backup: true,
        }
    }
}

/// The desired state of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DesiredState {
    /// The Proxmox VE node name this state is for.
    pub node: String,
    /// Declared guests by vmid.
    pub guests: BTreeMap<Vmid, DesiredGuest>,
    /// Declared Docker containers and volumes.
    pub containers: DesiredContainers,
    /// Storage wipes (`[[wipe]]`): by storage id, the volumes to remove from it.
    /// Destructive: each waits for a signed op, and only unreferenced volumes are ever
    /// removed.
    pub wipes: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// The node is to be decommissioned (`decommission = true`): every guest destroyed,
    /// then every unreferenced volume of its own storages removed, by signed
    /// `decommission` ops. A node being decommissioned declares nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decommission: Option<Decommission>,
}

/// How a node is decommissioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decommission {
    /// Whether each guest is backed up before it is destroyed (the default); `false` is
    /// signed as `backup=0`.
    pub safety_backup: bool,
}

/// The Docker part of a host's desired state (`[[container]]` and `[[volume]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DesiredContainers {
    /// Containers that should exist, by name.
    pub declared: BTreeMap<String, crate::container::ContainerSpec>,
    /// Containers that should not (`ensure = "absent"`): removing one that holds a
    /// volume waits for a signed op.
    pub absent: std::collections::BTreeSet<String>,
    /// Volumes that should not exist: removing one always waits for a signed op.
    pub absent_volumes: std::collections::BTreeSet<String>,
}

impl DesiredContainers {
    /// Whether nothing about containers is declared.
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty() && self.absent.is_empty() && self.absent_volumes.is_empty()
    }
}

/// A guest's observed power state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActualRun {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Anything else Proxmox VE reported (for example `paused` or `unknown`). The planner
    /// never changes the power state of a guest in a state it does not understand.
    Other(String),
}

impl ActualRun {
    /// Maps the `status` string of the list and status endpoints.
    pub fn from_pve(status: &str) -> Self {
        match status {
            "running" => ActualRun::Running,
            "stopped" => ActualRun::Stopped,
            other => ActualRun::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ActualRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActualRun::Running => f.write_str("running"),
            ActualRun::Stopped => f.write_str("stopped"),
            ActualRun::Other(s) => f.write_str(s),
        }
    }
}

/// The part of a guest's configuration the planner compares, as read from Proxmox VE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualSpec {
    /// `cores`; `None` where the key is absent and the kind has no fixed default (an LXC
    /// container without `cores` may use every host core).
    pub cores: Option<u32>,
    /// `memory` in MiB, with the kind's default applied when the key is absent.
    pub memory_mib: u64,
    /// `description`, exactly as read back (an LXC container's has a trailing newline).
    pub description: Option<String>,
    /// `tags`, exactly as read back.
    pub tags: Option<String>,
    /// The SHA-1 `digest` of the configuration file this was read from. Every write the
    /// planner emits is conditional on it.
    pub digest: String,
    /// Disk sizes in bytes by configuration key, as the node records them (`size=`);
    /// CD-ROM drives and disks without a size are left out.
    pub disks: BTreeMap<String, u64>,
}

/// One guest as observed on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualGuest {
    /// The guest id.
    pub vmid: Vmid,
    /// Container or virtual machine.
    pub kind: GuestKind,
    /// Observed power state.
    pub run: ActualRun,
    /// The configuration, or `None` where it could not be read. The planner never writes a
    /// configuration it could not read first.
    pub spec: Option<ActualSpec>,
    /// Configuration keys with changes pending a restart (QEMU `[PENDING]`).
    pub pending_restart: Vec<String>,
    /// The configuration lock, if any (`backup`, `migrate`, ...).
    pub lock: Option<String>,
    /// Whether the guest is a template (templates are never started or changed).
    pub template: bool,
    /// The backup last restored over it by a signed `restore_overwrite`, from the agent's
    /// journal (not the node's: a node keeps no such record): a declared `restore_over`
    /// of that archive is done.
    pub restored: Option<String>,
    /// Whether the node's HA manager manages it (a destroy without `purge` is refused).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ha_managed: bool,
}

impl ActualGuest {
    /// An observed guest with no readable configuration.
    pub fn new(vmid: Vmid, kind: GuestKind, run: ActualRun) -> Self {
        ActualGuest {
            vmid,
            kind,
            run,
            spec: None,
            pending_restart: Vec::new(),
            lock: None,
            template: false,
            restored: None,
            ha_managed: false,
        }
    }
}

/// One disk volume of a storage, as a storage wipe sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageVolume {
    /// Its size in bytes, as the storage lists it.
    pub size: u64,
    /// What still uses it, in words (`CT 105's mp0`, `VM 105, which another node has`),
    /// or `None` when nothing does: only an unreferenced volume may be wiped.
    pub referenced_by: Option<String>,
}

/// Everything observed on one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ActualState {
    /// Observed guests by vmid.
    pub guests: BTreeMap<Vmid, ActualGuest>,
    /// Guests on other nodes of the cluster, by vmid, with the node that has each. A vmid
    /// there is never provisioned here and never counted as missing.
    pub elsewhere: BTreeMap<Vmid, String>,
    /// The disk volumes of each storage a wipe is declared for, by volume id (storages
    /// not listed could not be read, or have no wipe declared).
    pub storages: BTreeMap<String, BTreeMap<String, StorageVolume>>,
    /// For a node being decommissioned: the ids of its own storages (not shared with other
    /// nodes) that hold disks, whose volumes are then in `storages`; `None` when they were
    /// not (or could not be) read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_storages: Option<std::collections::BTreeSet<String>>,
}
