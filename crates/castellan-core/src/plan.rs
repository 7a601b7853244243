//! `plan(desired, actual, normalizers)`: the minimal set of benign actions that converges
//! a node's actual state towards its desired state.
//!
//! Rules (from the slice-4 agent this was specified from, and the issue):
//! - A guest desired but absent from the node is provisioned (a benign `provision` from
//!   its declared `source`: a backup restored, a template cloned) unless the cluster has
//!   that vmid on another node (reported, never created again); without a `source` it is
//!   a `provisioning` candidate, reported only. A guest present but not desired is a
//!   `destroy` candidate, reported and never acted on.
//! - Declared disk sizes only grow a disk (`resize`, one disk per action, conditional on
//!   the digest): sizes are compared as numbers of bytes (1024G == 1T), an equal size
//!   sends nothing (a node refuses a resize to the same size), and a smaller one is
//!   refused with a notice, never sent.
//! - Fields left out of the desired state are unmanaged and produce nothing.
//! - Where the actual configuration could not be read, nothing is written (power state is
//!   still reconciled): a config is never written blind.
//! - Comparisons are normalised (see [`crate::normalize`]) so a faithful round-trip is
//!   never drift; memory is compared in the same whole MiB that is written.
//! - One `set_config` per guest carries every field, conditional on the digest it was
//!   planned against; configuration comes before power state; output is in vmid order.
//! - A running guest with changes pending a restart is rebooted only where its restart
//!   policy allows, otherwise reported.
//! - A guest declared `ensure = "absent"` that exists becomes a [`DestructiveAction`]
//!   (`destroy`), bound to the configuration digest it was planned against. The planner
//!   only proposes it: the gate decides, and without a signed op it is never executed.
//!   One that is already gone is converged. Unless the declaration waives it
//!   (`safety_backup = false`, signed as `backup=0`), the agent takes a backup first.
//! - A guest declaring `restore_over` becomes a `restore_overwrite` [`DestructiveAction`]
//!   (the archive and storage are signed parameters), until the agent's journal shows that
//!   archive restored over it; while it waits, nothing else about the guest is changed
//!   (every change would move the digest the operator is asked to sign).
//! - A declared `[[wipe]]` becomes one `wipe_storage` [`DestructiveAction`] per storage,
//!   naming (with its size) every declared volume that is there and unreferenced, bound to
//!   a digest of exactly those; a declared volume something still references is reported,
//!   never wiped, and one already gone is done.
//! - A node declared `decommission = true` gets no other plan: one `decommission`
//!   [`DestructiveAction`] on `node/NAME` naming every guest whose configuration was read
//!   (with its digest; at most [`crate::decommission::MAX_DECOMMISSION_GUESTS`], in vmid
//!   order) and, once every guest is named, the unreferenced disk volumes of the node's own
//!   storages (with their sizes), bound to a digest of exactly those. A node with more
//!   guests is decommissioned by several ops, one after the other. A node with no guest
//!   and no such volume left is decommissioned: converged.
//! - Templates, locked guests, guests whose kind differs from the declared one and guests
//!   in a power state the planner does not understand are reported, not touched.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::gate::DestructiveAction;
use crate::model::{
    ActualGuest, ActualRun, ActualSpec, ActualState, Decommission, DesiredGuest, DesiredRun,
    DesiredState, Ensure, GuestKind, GuestSource, RestartPolicy, ShutdownPolicy, Vmid,
};
use crate::normalize::{Normalizers, memory_mib};
use crate::operation::{Operation, WAIVE_BACKUP};
use crate::units::{format_size, pve_size};

/// One benign mutation of one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The guest.
    pub vmid: Vmid,
    /// Its kind, which selects the API path.
    #[serde(rename = "guest_type")]
    pub guest: GuestKind,
    /// What to do.
    pub kind: Operation,
    /// For `set_config`: the configuration values to set, by key, as the node stores them.
    pub params: BTreeMap<String, String>,
    /// For `set_config`: the configuration keys to remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delete: Vec<String>,
    /// For `shutdown`: how long to wait, and whether a hard stop may follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<ShutdownPolicy>,
    /// For `set_config` and `resize`: the configuration digest the change was planned
    /// against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// For `provision`: where the guest comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<GuestSource>,
    /// Why, for people.
    pub reason: String,
}

impl Action {
    /// A clean shutdown of guest `vmid` before a signed operation that loses whatever a
    /// hard stop would: the node may stop it once `timeout_secs` have passed.
    pub fn bring_down(guest: GuestKind, vmid: Vmid, timeout_secs: u32) -> Action {
        Action {
            vmid,
            guest,
            kind: Operation::Shutdown,
            params: BTreeMap::new(),
            delete: Vec::new(),
            shutdown: Some(ShutdownPolicy {
                timeout_secs,
                force_stop: true,
            }),
            digest: None,
            source: None,
            reason: "brought down before a signed operation".into(),
        }
    }

    /// The guest it acts on, as a target.
    pub fn target(&self) -> crate::target::Target {
        crate::target::Target::guest(self.guest, self.vmid)
    }

    /// Every configuration key the action sets or removes (what the classifier judges).
    pub fn config_keys(&self) -> impl Iterator<Item = &str> {
        self.params
            .keys()
            .map(String::as_str)
            .chain(self.delete.iter().map(String::as_str))
    }
}

/// What kind of change a candidate would need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// Desired but absent: would need provisioning.
    Provisioning,
    /// Present but not desired: would need destroying, which is destructive.
    Destroy,
}

/// A change the planner reports but never plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The guest.
    pub vmid: Vmid,
    /// What it would need.
    pub kind: CandidateKind,
    /// The guest's kind (declared for provisioning, observed for destroy).
    #[serde(rename = "guest_type")]
    pub guest: GuestKind,
}

/// Why a guest is reported rather than (fully) acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoticeKind {
    /// Changes are pending a restart and the restart policy is `manual`.
    NeedsRestart {
        /// The pending configuration keys.
        keys: Vec<String>,
    },
    /// Managed configuration fields could not be compared because the configuration could
    /// not be read; nothing was written.
    SpecUnknown,
    /// The guest exists with a different kind than declared.
    KindMismatch {
        /// Declared kind.
        desired: GuestKind,
        /// Observed kind.
        actual: GuestKind,
    },
    /// The guest holds a configuration lock.
    Locked {
        /// The lock (`backup`, `migrate`, ...).
        lock: String,
    },
    /// The guest is a template, which is never changed.
    Template,
    /// The power state is one the planner does not change from.
    UnknownRunState {
        /// The state as reported.
        state: String,
    },
    /// The declared vmid is a guest on another node of the cluster: never provisioned
    /// here.
    ElsewhereInCluster {
        /// The node that has it.
        node: String,
    },
    /// A declared disk size is smaller than the disk: disks only grow.
    ShrinkRefused {
        /// The disk's configuration key.
        disk: String,
        /// Its size on the node, in bytes.
        actual: u64,
        /// The declared size, in bytes.
        desired: u64,
    },
    /// A declared disk does not exist on the guest (disks are added by configuration,
    /// not by growing).
    DiskMissing {
        /// The disk's configuration key.
        disk: String,
    },
}

/// A guest the planner could not (fully) reconcile, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The guest.
    pub vmid: Vmid,
    /// Why.
    #[serde(flatten)]
    pub kind: NoticeKind,
}

impl Notice {
    /// Whether the condition stops the guest from converging (as opposed to being
    /// advisory, like a restart left to the operator).
    pub fn blocks_convergence(&self) -> bool {
        !matches!(self.kind, NoticeKind::NeedsRestart { .. })
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vmid = self.vmid;
        match &self.kind {
            NoticeKind::NeedsRestart { keys } => write!(
                f,
                "{vmid}: needs a restart to apply pending {} (restart policy is manual)",
                keys.join(", ")
            ),
            NoticeKind::SpecUnknown => {
                write!(f, "{vmid}: configuration unreadable, not written")
            }
            NoticeKind::KindMismatch { desired, actual } => write!(
                f,
                "{vmid}: declared as {desired} but the node has a {actual} with that id; not touched"
            ),
            NoticeKind::Locked { lock } => write!(f, "{vmid}: locked ({lock}); waiting"),
            NoticeKind::Template => write!(f, "{vmid}: is a template; not touched"),
            NoticeKind::UnknownRunState { state } => {
                write!(
                    f,
                    "{vmid}: power state {state:?} not understood; not changed"
                )
            }
            NoticeKind::ElsewhereInCluster { node } => write!(
                f,
                "{vmid}: is a guest on node {node} of the cluster; not provisioned here"
            ),
            NoticeKind::ShrinkRefused {
                disk,
                actual,
                desired,
            } => write!(
                f,
                "{vmid}: disk {disk} is {} and cannot shrink to the declared {}; disks only grow",
                format_size(*actual),
                format_size(*desired)
            ),
            NoticeKind::DiskMissing { disk } => write!(
                f,
                "{vmid}: has no disk {disk} to grow; add it by configuration first"
            ),
        }
    }
}

/// The planner's output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    /// Benign actions, in vmid order, configuration before power state.
    pub actions: Vec<Action>,
    /// Provisioning and destroy candidates, in vmid order; never executed by the planner.
    pub candidates: Vec<Candidate>,
    /// Guests reported rather than reconciled.
    pub notices: Vec<Notice>,
    /// Destructive actions the desired state asks for, in vmid order (then storage
    /// wipes, by storage). Each needs a signed op before it executes.
    pub destructive: Vec<DestructiveAction>,
    /// Declared storage wipes that cannot (fully) go ahead, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_notices: Vec<StorageNotice>,
    /// For each destructive action's target (`lxc/101`, `node/pve-01`), what it takes with
    /// it beyond what its parameters name, in words, for people before they sign: each
    /// guest's disks with their sizes, its HA entry, its backup and replication jobs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub affects: BTreeMap<String, Vec<String>>,
}

/// What a signed op that destroys (`purge`: `Some`, with its flag) or replaces (`None`)
/// guest `a` takes with it, in words: each disk with its size, its HA entry, its jobs.
fn what_it_holds(a: &ActualGuest, purge: Option<bool>) -> Vec<String> {
    let who = crate::target::Target::guest(a.kind, a.vmid).describe();
    let mut out = Vec::new();
    if let Some(spec) = &a.spec {
        for (key, size) in &spec.disks {
            out.push(format!("{who}: disk {key} ({})", format_size(*size)));
        }
    }
    match purge {
        Some(true) => {
            out.push(format!(
                "{who}: removed from every backup job and replication job that names it{}",
                if a.ha_managed { ", and from HA" } else { "" }
            ));
        }
        Some(false) if a.ha_managed => out.push(format!(
            "{who}: HA-managed; the node refuses to destroy it without purge (purge = true)"
        )),
        Some(false) => out.push(format!(
            "{who}: backup and replication jobs that name it keep naming it (no purge)"
        )),
        None if a.ha_managed => out.push(format!("{who}: HA-managed; it stays in HA")),
        None => {}
    }
    out
}

/// A declared storage wipe the planner cannot (fully) propose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum StorageNotice {
    /// The storage's volumes could not be read: nothing is proposed for it.
    Unobserved {
        /// The storage.
        storage: String,
    },
    /// The node's own storages could not be listed: a decommission names no volume yet.
    LocalStoragesUnobserved,
    /// A declared volume something still uses: never wiped.
    Referenced {
        /// The storage.
        storage: String,
        /// The volume.
        volume: String,
        /// What uses it.
        by: String,
    },
}

impl std::fmt::Display for StorageNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageNotice::Unobserved { storage } => write!(
                f,
                "storage {storage}: its volumes could not be read; the declared wipe waits"
            ),
            StorageNotice::LocalStoragesUnobserved => write!(
                f,
                "the node's own storages could not be listed; the decommission of their volumes waits"
            ),
            StorageNotice::Referenced {
                storage,
                volume,
                by,
            } => write!(
                f,
                "storage {storage}: {volume} is used by {by}; it is never wiped while it is"
            ),
        }
    }
}

impl Plan {
    /// True when there is nothing to do and nothing blocks convergence.
    pub fn converged(&self) -> bool {
        self.actions.is_empty()
            && self.destructive.is_empty()
            && !self.notices.iter().any(Notice::blocks_convergence)
            && self.storage_notices.is_empty()
    }
}

/// Computes the plan. Pure and deterministic.
///
/// Both sides are maps ordered by vmid, so one merge walk pairs them up in linear time
/// and emits everything already in vmid order.
pub fn plan(desired: &DesiredState, actual: &ActualState, norm: &Normalizers) -> Plan {
    let mut out = Plan::default();
    if let Some(dec) = &desired.decommission {
        plan_decommission(desired, dec, actual, &mut out);
        return out;
    }
    let mut d_iter = desired.guests.iter().peekable();
    let mut a_iter = actual.guests.iter().peekable();
    loop {
        let next = match (d_iter.peek(), a_iter.peek()) {
            (None, None) => break,
            (Some((dv, _)), Some((av, _))) => dv.cmp(av),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        match next {
            Ordering::Equal => {
                if let (Some((_, d)), Some((_, a))) = (d_iter.next(), a_iter.next()) {
                    plan_guest(&desired.node, d, a, norm, &mut out);
                }
            }
            Ordering::Less => {
                if let Some((vmid, d)) = d_iter.next() {
                    plan_missing(d, actual.elsewhere.get(vmid).map(String::as_str), &mut out);
                }
            }
            Ordering::Greater => {
                if let Some((&vmid, a)) = a_iter.next() {
                    out.candidates.push(Candidate {
                        vmid,
                        kind: CandidateKind::Destroy,
                        guest: a.kind,
                    });
                }
            }
        }
    }
    plan_wipes(desired, actual, &mut out);
    out
}

/// Plans the declared storage wipes of node `desired.node`; appends to `out`.
pub fn plan_wipes(desired: &DesiredState, actual: &ActualState, out: &mut Plan) {
    for (storage, named) in &desired.wipes {
        let Some(present) = actual.storages.get(storage) else {
            out.storage_notices.push(StorageNotice::Unobserved {
                storage: storage.clone(),
            });
            continue;
        };
        let mut wipe = BTreeMap::new();
        for volume in named {
            match present.get(volume) {
                None => {} // gone already: done
                Some(v) => match &v.referenced_by {
                    Some(by) => out.storage_notices.push(StorageNotice::Referenced {
                        storage: storage.clone(),
                        volume: volume.clone(),
                        by: by.clone(),
                    }),
                    None => {
                        wipe.insert(volume.clone(), v.size);
                    }
                },
            }
        }
        if wipe.is_empty() {
            continue;
        }
        let Ok(target) = crate::target::Target::storage(storage) else {
            continue; // the parser admits only valid storage ids
        };
        out.destructive.push(DestructiveAction {
            op: Operation::WipeStorage,
            host: desired.node.clone(),
            target,
            params: BTreeMap::from([(
                crate::wipe::VOLUMES_PARAM.to_owned(),
                crate::wipe::encode(&wipe),
            )]),
            state_digest: crate::wipe::digest(storage, &wipe),
        });
    }
}

/// Plans the decommissioning of node `desired.node` (see the module's rules); appends to
/// `out`.
pub fn plan_decommission(
    desired: &DesiredState,
    dec: &Decommission,
    actual: &ActualState,
    out: &mut Plan,
) {
    use crate::decommission::{self as d, MAX_DECOMMISSION_GUESTS};
    let mut guests = BTreeMap::new();
    let mut all_named = true;
    for (&vmid, g) in &actual.guests {
        let Some(spec) = &g.spec else {
            out.notices.push(Notice {
                vmid,
                kind: NoticeKind::SpecUnknown,
            });
            all_named = false;
            continue;
        };
        if guests.len() >= MAX_DECOMMISSION_GUESTS {
            all_named = false; // the next op names it
            continue;
        }
        let one = BTreeMap::from([(vmid, (g.kind, spec.digest.clone()))]);
        if d::decode_guests(&d::encode_guests(&one)).is_err() {
            // A digest the op format cannot carry: it cannot be shown unchanged.
            out.notices.push(Notice {
                vmid,
                kind: NoticeKind::SpecUnknown,
            });
            all_named = false;
            continue;
        }
        guests.insert(vmid, (g.kind, spec.digest.clone()));
    }
    // The storage goes with the last guests: only once every guest is named.
    let mut volumes = BTreeMap::new();
    if all_named {
        match &actual.local_storages {
            None => out
                .storage_notices
                .push(StorageNotice::LocalStoragesUnobserved),
            Some(ids) => {
                for storage in ids {
                    let Some(present) = actual.storages.get(storage) else {
                        out.storage_notices.push(StorageNotice::Unobserved {
                            storage: storage.clone(),
                        });
                        continue;
                    };
                    for (volume, v) in present {
                        match &v.referenced_by {
                            // Guests of this node go with this op; what something else
                            // uses is reported once they are gone.
                            Some(by) if guests.is_empty() => {
                                out.storage_notices.push(StorageNotice::Referenced {
                                    storage: storage.clone(),
                                    volume: volume.clone(),
                                    by: by.clone(),
                                });
                            }
                            Some(_) => {}
                            None => {
                                volumes.insert(volume.clone(), v.size);
                            }
                        }
                    }
                }
            }
        }
    }
    // At most one wipe's worth of volumes, within the op format's limit on one value; the
    // rest go with the next op.
    while volumes.len() > crate::wipe::MAX_WIPE_VOLUMES
        || crate::wipe::encode(&volumes).len() > crate::op::MAX_PARAM_VALUE_BYTES
    {
        volumes.pop_last();
    }
    if guests.is_empty() && volumes.is_empty() {
        return;
    }
    let Ok(target) = crate::target::Target::node(&desired.node) else {
        return; // the parser admits only valid node names
    };
    let mut params = BTreeMap::new();
    if !guests.is_empty() {
        params.insert(d::GUESTS_PARAM.to_owned(), d::encode_guests(&guests));
    }
    if !volumes.is_empty() {
        params.insert(d::VOLUMES_PARAM.to_owned(), crate::wipe::encode(&volumes));
    }
    if !dec.safety_backup && !guests.is_empty() {
        params.insert(WAIVE_BACKUP.key.to_owned(), "0".to_owned());
    }
    let held: Vec<String> = guests
        .keys()
        .filter_map(|vmid| actual.guests.get(vmid))
        .flat_map(|g| what_it_holds(g, Some(true)))
        .collect();
    if !held.is_empty() {
        out.affects.insert(target.to_string(), held);
    }
    out.destructive.push(DestructiveAction {
        op: Operation::Decommission,
        host: desired.node.clone(),
        target,
        params,
        state_digest: d::digest(&desired.node, &guests, &volumes),
    });
}

/// Plans one declared guest that the node does not have; `elsewhere` is the node of the
/// cluster that has its vmid, if one does. Appends to `out`.
pub fn plan_missing(d: &DesiredGuest, elsewhere: Option<&str>, out: &mut Plan) {
    let vmid = d.vmid;
    if d.ensure == Ensure::Absent {
        return; // gone already: converged
    }
    if let Some(node) = elsewhere {
        out.notices.push(Notice {
            vmid,
            kind: NoticeKind::ElsewhereInCluster {
                node: node.to_owned(),
            },
        });
        return;
    }
    match &d.source {
        Some(source) => out.actions.push(Action {
            vmid,
            guest: d.kind,
            kind: Operation::Provision,
            params: BTreeMap::new(),
            delete: Vec::new(),
            shutdown: None,
            digest: None,
            source: Some(source.clone()),
            reason: format!("missing: {}", source.describe()),
        }),
        None => out.candidates.push(Candidate {
            vmid,
            kind: CandidateKind::Provisioning,
            guest: d.kind,
        }),
    }
}

/// A signed operation `op` on guest `a`, bound to the digest of `spec` (what it was
/// planned against), with `params` and, where the declaration waives the safety backup,
/// the waiver.
fn signed_guest_op(
    op: Operation,
    host: &str,
    d: &DesiredGuest,
    a: &ActualGuest,
    mut params: BTreeMap<String, String>,
    spec: &ActualSpec,
) -> DestructiveAction {
    if !d.safety_backup {
        params.insert(WAIVE_BACKUP.key.to_owned(), "0".to_owned());
    }
    DestructiveAction {
        op,
        host: host.to_owned(),
        target: crate::target::Target::guest(a.kind, a.vmid),
        params,
        state_digest: spec.digest.clone(),
    }
}

/// Plans one guest of node `host` present on both sides; appends to `out`.
pub fn plan_guest(
    host: &str,
    d: &DesiredGuest,
    a: &ActualGuest,
    norm: &Normalizers,
    out: &mut Plan,
) {
    let vmid = d.vmid;
    let mut notice = |kind| out.notices.push(Notice { vmid, kind });
    if d.kind != a.kind {
        notice(NoticeKind::KindMismatch {
            desired: d.kind,
            actual: a.kind,
        });
        return;
    }
    if d.ensure == Ensure::Absent {
        if let Some(lock) = &a.lock {
            notice(NoticeKind::Locked { lock: lock.clone() });
            return;
        }
        // A destroy is bound to the digest it was planned against; without one there
        // is nothing to bind an approval to.
        let Some(spec) = &a.spec else {
            notice(NoticeKind::SpecUnknown);
            return;
        };
        let mut params = BTreeMap::new();
        if d.purge {
            params.insert("purge".to_owned(), "1".to_owned());
        }
        out.destructive.push(signed_guest_op(
            Operation::Destroy,
            host,
            d,
            a,
            params,
            spec,
        ));
        out.affects.insert(
            crate::target::Target::guest(a.kind, a.vmid).to_string(),
            what_it_holds(a, Some(d.purge)),
        );
        return;
    }
    if a.template {
        notice(NoticeKind::Template);
        return;
    }
    if let Some(lock) = &a.lock {
        notice(NoticeKind::Locked { lock: lock.clone() });
        return;
    }
    if let Some(r) = &d.restore_over
        && a.restored.as_deref() != Some(r.archive.as_str())
    {
        let Some(spec) = &a.spec else {
            notice(NoticeKind::SpecUnknown);
            return;
        };
        let mut params = BTreeMap::from([("archive".to_owned(), r.archive.clone())]);
        if let Some(s) = &r.storage {
            params.insert("storage".to_owned(), s.clone());
        }
        out.destructive.push(signed_guest_op(
            Operation::RestoreOverwrite,
            host,
            d,
            a,
            params,
            spec,
        ));
        out.affects.insert(
            crate::target::Target::guest(a.kind, a.vmid).to_string(),
            what_it_holds(a, None),
        );
        return;
    }

    let manages_spec = d.cores.is_some()
        || d.memory_bytes.is_some()
        || d.description.is_some()
        || d.tags.is_some()
        || !d.disks.is_empty();
    match &a.spec {
        Some(spec) if manages_spec => {
            let mut params = BTreeMap::new();
            let mut reasons = String::new();
            let mut delete: Vec<String> = Vec::new();
            if let Some(cores) = d.cores
                && Some(cores) != spec.cores
            {
                params.insert("cores".to_owned(), cores.to_string());
                let from = spec.cores.map_or("unset".to_owned(), |c| c.to_string());
                reason(&mut reasons, format_args!("cores {from}->{cores}"));
            }
            if let Some(bytes) = d.memory_bytes {
                let want = memory_mib(bytes);
                if want != spec.memory_mib {
                    params.insert("memory".to_owned(), want.to_string());
                    reason(
                        &mut reasons,
                        format_args!("memory {}MiB->{want}MiB", spec.memory_mib),
                    );
                }
            }
            if let Some(desc) = &d.description
                && !norm.description_equal(desc, spec.description.as_deref())
            {
                if desc.trim_end().is_empty() {
                    delete.push("description".to_owned());
                } else {
                    params.insert("description".to_owned(), desc.clone());
                }
                reason(&mut reasons, format_args!("description"));
            }
            if let Some(tags) = &d.tags
                && !norm.tags_equal(tags, spec.tags.as_deref())
            {
                let stored = norm.tags_stored(tags.iter().map(String::as_str));
                let from = spec.tags.as_deref().unwrap_or("");
                reason(&mut reasons, format_args!("tags {from:?}->{stored:?}"));
                if stored.is_empty() {
                    delete.push("tags".to_owned());
                } else {
                    params.insert("tags".to_owned(), stored);
                }
            }
            if !params.is_empty() || !delete.is_empty() {
                out.actions.push(Action {
                    vmid,
                    guest: d.kind,
                    kind: Operation::SetConfig,
                    params,
                    delete,
                    shutdown: None,
                    digest: Some(spec.digest.clone()),
                    source: None,
                    reason: format!("spec drift: {reasons}"),
                });
            }
            plan_disks(d, spec, out);
        }
        Some(_) => {}
        None if manages_spec => out.notices.push(Notice {
            vmid,
            kind: NoticeKind::SpecUnknown,
        }),
        None => {}
    }

    let power = |kind: Operation, reason: String| Action {
        vmid,
        guest: d.kind,
        kind,
        params: BTreeMap::new(),
        delete: Vec::new(),
        shutdown: None,
        digest: None,
        source: None,
        reason,
    };
    match (&d.run, &a.run) {
        (DesiredRun::Running, ActualRun::Stopped) => out
            .actions
            .push(power(Operation::Start, "run stopped->running".into())),
        (DesiredRun::Stopped, ActualRun::Running) => {
            let mut a = power(Operation::Shutdown, "run running->stopped".into());
            a.shutdown = Some(d.shutdown);
            out.actions.push(a);
        }
        (DesiredRun::Running | DesiredRun::Stopped, ActualRun::Other(state)) => {
            out.notices.push(Notice {
                vmid,
                kind: NoticeKind::UnknownRunState {
                    state: state.clone(),
                },
            })
        }
        _ => {}
    }

    if a.run == ActualRun::Running && !a.pending_restart.is_empty() && d.run != DesiredRun::Stopped
    {
        match d.restart {
            RestartPolicy::Reboot => out.actions.push(power(
                Operation::Reboot,
                format!("apply pending {}", a.pending_restart.join(", ")),
            )),
            RestartPolicy::Manual => out.notices.push(Notice {
                vmid,
                kind: NoticeKind::NeedsRestart {
                    keys: a.pending_restart.clone(),
                },
            }),
        }
    }
}

/// Grows each declared disk that is smaller on the node: one `resize` per disk, the size
/// written as the node writes it, conditional on the digest read. Equal sizes send
/// nothing; a smaller declared size and a disk the guest lacks are reported.
fn plan_disks(d: &DesiredGuest, spec: &ActualSpec, out: &mut Plan) {
    let vmid = d.vmid;
    for (disk, &desired) in &d.disks {
        let Some(&actual) = spec.disks.get(disk) else {
            out.notices.push(Notice {
                vmid,
                kind: NoticeKind::DiskMissing { disk: disk.clone() },
            });
            continue;
        };
        match desired.cmp(&actual) {
            Ordering::Equal => {}
            Ordering::Less => out.notices.push(Notice {
                vmid,
                kind: NoticeKind::ShrinkRefused {
                    disk: disk.clone(),
                    actual,
                    desired,
                },
            }),
            Ordering::Greater => out.actions.push(Action {
                vmid,
                guest: d.kind,
                kind: Operation::Resize,
                params: BTreeMap::from([
                    ("disk".to_owned(), disk.clone()),
                    ("size".to_owned(), pve_size(desired)),
                ]),
                delete: Vec::new(),
                shutdown: None,
                digest: Some(spec.digest.clone()),
                source: None,
                reason: format!(
                    "disk {disk} {}->{}",
                    format_size(actual),
                    format_size(desired)
                ),
            }),
        }
    }
}

fn reason(buf: &mut String, part: std::fmt::Arguments<'_>) {
    if !buf.is_empty() {
        buf.push_str(", ");
    }
    let _ = buf.write_fmt(part);
}
