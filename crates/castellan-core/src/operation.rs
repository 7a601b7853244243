//! The operation table: every operation castellan performs or is built to perform, and,
//! for each, one row saying what it can do to data, which signer roles may authorise it,
//! which parameters an operator signs and what values they may take, what must happen
//! before it (stop, backup) and how crash recovery settles an interrupted one.
//!
//! Everything that needs to know about an operation asks this table: the classifier
//! ([`crate::classify`]), the gate's role check ([`crate::gate`]), the signed-op format's
//! known operations ([`crate::op`]), the CLI's `op new` and `op show`, and the agent's
//! recovery. An operation's name appears nowhere else; adding an operation is one
//! [`Operation`] variant, one [`OpSpec`] row, and the backend method that carries it out.
//!
//! An operation is backend-neutral: `destroy` removes a Proxmox VE guest or a Docker
//! container alike; what it means on a given backend is that backend's business.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::target::TargetKind;

/// One operation castellan performs or is built to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Apply configuration changes in one write.
    SetConfig,
    /// Power on (start a container or guest).
    Start,
    /// Hard power-off. The planner never proposes it for a guest that should be stopped:
    /// that is a [`Operation::Shutdown`].
    Stop,
    /// Clean shutdown, waited for; a hard stop after the timeout only where allowed.
    Shutdown,
    /// Reboot so pending changes take effect.
    Reboot,
    /// Create a declared target that does not exist (restore, clone or create).
    Provision,
    /// Grow a disk.
    Resize,
    /// Replace a target by a fresh one made from its declaration (a container whose
    /// image, command or settings drifted).
    Recreate,
    /// Remove a target with everything it holds.
    Destroy,
    /// Restore a backup over an existing target.
    RestoreOverwrite,
    /// Remove named unreferenced volumes from a storage.
    WipeStorage,
    /// Remove one volume.
    RemoveVolume,
    /// Remove every target of a host, then its storage.
    Decommission,
    /// Replace the set of keys that may sign.
    RotateKeys,
}

/// What an operation can do to data. The classifier turns this into benign or
/// destructive (see [`crate::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLoss {
    /// Cannot lose data, whatever its parameters.
    Never,
    /// Loses data when a parameter names a configuration key that may hold data (a disk,
    /// a mount point); the keys listed in [`crate::classify::BENIGN_CONFIG_KEYS`] hold none.
    ByKeys,
    /// Loses whatever the target holds. Benign only where the agent's own journal shows
    /// the target holds nothing anyone else put there, or the backend observed that it
    /// holds no data (a container that owns no volume).
    TargetData,
    /// Always loses data.
    Always,
}

/// What must be true, or be done, before an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prerequisite {
    /// The target is stopped (cleanly, as its declaration allows) and re-read unchanged.
    Stopped,
    /// A fresh backup of the target exists, unless the signed parameters waive it.
    Backup,
}

/// How crash recovery settles an operation that was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Benign and idempotent: its own task's record settles it where one is known;
    /// otherwise it is dropped and the planner re-plans from a fresh observation.
    Replan,
    /// Its own task's record settles it. Without one, it is completed once only when the
    /// node's task list proves it was never sent, the target is exactly as approved and
    /// the approval is still valid; it is done when the target is gone; it is rolled back
    /// (not retried) when the target changed or the approval expired; and it is held for
    /// an operator whenever the evidence cannot tell.
    CompleteOnce,
    /// What was made half-way is removed again (in the same journaled transaction).
    RollBack,
    /// Removes a signed list of items one by one, each checked against the approval right
    /// before it goes, so it is idempotent: an interrupted one is finished from where it
    /// stopped while its approval is valid (what is gone is done; what changed stops it),
    /// and rolled back, with what is left named, once the approval expired.
    Resume,
    /// Always held for an operator.
    AskOperator,
}

/// The values a signed parameter may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamValues {
    /// Exactly one of these words.
    OneOf(&'static [&'static str]),
    /// A Proxmox VE volume id (`storage:path`; see [`crate::desired::valid_volume_id`]).
    Volume,
    /// A Proxmox VE storage id (see [`crate::desired::valid_storage_id`]).
    Storage,
    /// A storage wipe's volumes with their sizes (see [`crate::wipe`]).
    WipeVolumes,
    /// A decommission's guests with their digests (see [`crate::decommission`]).
    DecommissionGuests,
}

impl ParamValues {
    /// Whether `value` is one of them.
    pub fn allows(self, value: &str) -> bool {
        match self {
            ParamValues::OneOf(words) => words.contains(&value),
            ParamValues::Volume => crate::desired::valid_volume_id(value),
            ParamValues::Storage => crate::desired::valid_storage_id(value),
            ParamValues::WipeVolumes => crate::wipe::decode(value).is_ok(),
            ParamValues::DecommissionGuests => crate::decommission::decode_guests(value).is_ok(),
        }
    }

    /// Them, in words: `0|1`, `a volume id (storage:path)`.
    pub fn describe(self) -> String {
        match self {
            ParamValues::OneOf(words) => words.join("|"),
            ParamValues::Volume => "VOLUME (a volume id, storage:path)".to_owned(),
            ParamValues::Storage => "STORAGE (a storage id)".to_owned(),
            ParamValues::WipeVolumes => {
                "VOLUME=BYTES,... (volume ids in byte order, each with its size)".to_owned()
            }
            ParamValues::DecommissionGuests => {
                "KIND/VMID=DIGEST,... (guests in vmid order, each with its configuration digest)"
                    .to_owned()
            }
        }
    }
}

/// One signed parameter and the values it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamRule {
    /// The parameter's name.
    pub key: &'static str,
    /// The values it may take (an absent parameter means the default).
    pub values: ParamValues,
    /// Whether a signed op must carry it.
    pub required: bool,
    /// What it adds to the operation's effect, in words.
    pub effect: &'static str,
}

/// The parameter that waives the safety backup ([`Prerequisite::Backup`]).
pub const WAIVE_BACKUP: ParamRule = ParamRule {
    key: "backup",
    values: ParamValues::OneOf(&["0"]),
    required: false,
    effect: "no safety backup is taken first",
};

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpSpec {
    /// The operation.
    pub op: Operation,
    /// Its name in plans, op files, the journal and the audit log.
    pub name: &'static str,
    /// The kinds of target it acts on. Empty for an operation whose target (a storage,
    /// a node, the signer set) has no kind yet: it comes with the backend that carries
    /// the operation out.
    pub targets: &'static [TargetKind],
    /// What it can do to data.
    pub data_loss: DataLoss,
    /// Whether the agent's journal can make it benign: undoing a target the agent
    /// created in the same journaled transaction, or one it recorded as scratch.
    pub provenance_undoes: bool,
    /// The signer roles that may authorise it (empty: never signed, always benign).
    pub roles: &'static [Role],
    /// The parameters an operator signs, each with its allowed values. Any other
    /// parameter is refused.
    pub params: &'static [ParamRule],
    /// Whether a signed op must name the target's state digest it was approved against.
    pub needs_precondition: bool,
    /// What must happen first.
    pub first: &'static [Prerequisite],
    /// How crash recovery settles it.
    pub recovery: Recovery,
    /// Whether its success leaves the target gone, so recovery may read a target that is
    /// gone as done (a destroy); for any other operation a vanished target is unexplained.
    pub removes_target: bool,
    /// Whether this version of castellan carries it out when signed.
    pub executable: bool,
    /// Distinct signer keys it needs where the signer configuration sets no threshold for
    /// it (`[thresholds]` in signers.toml overrides it either way).
    pub default_threshold: u32,
    /// What it does, in words, completed with the target (`{target}`).
    pub effect: &'static str,
}

const OPERATIONAL: &[Role] = &[Role::Operational];
/// Proxmox VE guests.
const GUESTS: &[TargetKind] = &[TargetKind::Lxc, TargetKind::Qemu];
/// What runs: guests and containers.
const RUNNABLE: &[TargetKind] = &[TargetKind::Lxc, TargetKind::Qemu, TargetKind::Container];

/// The table. Its order is [`Operation`]'s.
pub const TABLE: &[OpSpec] = &[
    OpSpec {
        op: Operation::SetConfig,
        name: "set_config",
        targets: RUNNABLE,
        data_loss: DataLoss::ByKeys,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "changes the configuration of {target}",
    },
    OpSpec {
        op: Operation::Start,
        name: "start",
        targets: RUNNABLE,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "starts {target}",
    },
    OpSpec {
        op: Operation::Stop,
        name: "stop",
        targets: RUNNABLE,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "powers off {target}",
    },
    OpSpec {
        op: Operation::Shutdown,
        name: "shutdown",
        targets: RUNNABLE,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "shuts {target} down cleanly",
    },
    OpSpec {
        op: Operation::Reboot,
        name: "reboot",
        targets: RUNNABLE,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "reboots {target}",
    },
    OpSpec {
        op: Operation::Provision,
        name: "provision",
        targets: RUNNABLE,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::RollBack,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "creates {target}",
    },
    OpSpec {
        op: Operation::Resize,
        name: "resize",
        targets: GUESTS,
        data_loss: DataLoss::Never,
        provenance_undoes: false,
        roles: &[],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::Replan,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "grows a disk of {target}",
    },
    OpSpec {
        op: Operation::Recreate,
        name: "recreate",
        targets: &[TargetKind::Container],
        data_loss: DataLoss::TargetData,
        provenance_undoes: false,
        roles: OPERATIONAL,
        params: &[],
        needs_precondition: true,
        first: &[Prerequisite::Stopped],
        recovery: Recovery::CompleteOnce,
        removes_target: false,
        executable: false,
        default_threshold: 1,
        effect: "replaces {target} by a fresh one made from its declaration",
    },
    OpSpec {
        op: Operation::Destroy,
        name: "destroy",
        targets: RUNNABLE,
        data_loss: DataLoss::TargetData,
        provenance_undoes: true,
        roles: OPERATIONAL,
        params: &[
            ParamRule {
                key: "purge",
                values: ParamValues::OneOf(&["1"]),
                required: false,
                effect: "also removes it from backup jobs, replication and HA",
            },
            ParamRule {
                key: "destroy-unreferenced-disks",
                values: ParamValues::OneOf(&["0", "1"]),
                required: false,
                effect: "1: also removes every disk of its vmid on any storage that its configuration does not reference; 0: leaves them",
            },
            WAIVE_BACKUP,
        ],
        needs_precondition: true,
        first: &[Prerequisite::Stopped, Prerequisite::Backup],
        recovery: Recovery::CompleteOnce,
        removes_target: true,
        executable: true,
        default_threshold: 1,
        effect: "deletes {target} with its configuration and disks; this cannot be undone",
    },
    OpSpec {
        op: Operation::RestoreOverwrite,
        name: "restore_overwrite",
        targets: GUESTS,
        data_loss: DataLoss::Always,
        provenance_undoes: false,
        roles: OPERATIONAL,
        params: &[
            ParamRule {
                key: "archive",
                values: ParamValues::Volume,
                required: true,
                effect: "the backup restored",
            },
            ParamRule {
                key: "storage",
                values: ParamValues::Storage,
                required: false,
                effect: "the storage its disks are restored to",
            },
            WAIVE_BACKUP,
        ],
        needs_precondition: true,
        first: &[Prerequisite::Stopped, Prerequisite::Backup],
        recovery: Recovery::CompleteOnce,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "restores a backup over {target}, replacing everything it holds",
    },
    OpSpec {
        op: Operation::WipeStorage,
        name: "wipe_storage",
        targets: &[TargetKind::Storage],
        data_loss: DataLoss::Always,
        provenance_undoes: false,
        roles: OPERATIONAL,
        params: &[ParamRule {
            key: crate::wipe::VOLUMES_PARAM,
            values: ParamValues::WipeVolumes,
            required: true,
            effect: "the volumes removed, each with the size it was approved at",
        }],
        needs_precondition: true,
        first: &[],
        recovery: Recovery::Resume,
        removes_target: false,
        executable: true,
        default_threshold: 1,
        effect: "removes the named unreferenced volumes from {target}; this cannot be undone",
    },
    OpSpec {
        op: Operation::RemoveVolume,
        name: "remove_volume",
        targets: &[TargetKind::Volume],
        data_loss: DataLoss::Always,
        provenance_undoes: false,
        roles: OPERATIONAL,
        params: &[],
        needs_precondition: true,
        first: &[],
        recovery: Recovery::CompleteOnce,
        removes_target: true,
        executable: true,
        default_threshold: 1,
        effect: "removes volume {target} and everything on it",
    },
    OpSpec {
        op: Operation::Decommission,
        name: "decommission",
        targets: &[TargetKind::Node],
        data_loss: DataLoss::Always,
        provenance_undoes: false,
        roles: OPERATIONAL,
        params: &[
            ParamRule {
                key: crate::decommission::GUESTS_PARAM,
                values: ParamValues::DecommissionGuests,
                required: false,
                effect: "the guests destroyed (each brought down, backed up, then destroyed with its configured disks, purge=1), each with the configuration digest it was approved at",
            },
            ParamRule {
                key: crate::decommission::VOLUMES_PARAM,
                values: ParamValues::WipeVolumes,
                required: false,
                effect: "the unreferenced volumes of the node's own storages removed afterwards, each with the size it was approved at",
            },
            WAIVE_BACKUP,
        ],
        needs_precondition: true,
        first: &[Prerequisite::Stopped, Prerequisite::Backup],
        recovery: Recovery::Resume,
        removes_target: false,
        executable: true,
        default_threshold: 2,
        effect: "removes the named guests of {target}, then the named volumes of its own storages; this cannot be undone",
    },
    OpSpec {
        op: Operation::RotateKeys,
        name: "rotate_keys",
        targets: &[],
        // It loses no data itself, but it decides who may destroy: always signed.
        data_loss: DataLoss::Always,
        provenance_undoes: false,
        // Key rotation is the recovery key's only power; operational keys may plan it.
        roles: &[Role::Operational, Role::Recovery],
        params: &[],
        needs_precondition: false,
        first: &[],
        recovery: Recovery::AskOperator,
        removes_target: false,
        executable: false,
        default_threshold: 1,
        effect: "replaces the keys that may sign for {target}",
    },
];

impl Operation {
    /// Every operation, in table order.
    pub fn all() -> impl Iterator<Item = Operation> {
        TABLE.iter().map(|s| s.op)
    }

    /// This operation's row.
    pub fn spec(self) -> &'static OpSpec {
        // The table is in variant order; `table_is_in_variant_order` tests it.
        &TABLE[self as usize]
    }

    /// Its name in plans, op files, the journal and the audit log.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The operation named `name`, if the table has one.
    pub fn from_name(name: &str) -> Option<Operation> {
        TABLE.iter().find(|s| s.name == name).map(|s| s.op)
    }

    /// Whether it can need a signature (some data-bearing case and some role that may
    /// sign it).
    pub fn signable(self) -> bool {
        !self.spec().roles.is_empty()
    }

    /// The operations a signed op may name and this version carries out, by name.
    pub fn executable_signed() -> impl Iterator<Item = Operation> {
        Operation::all().filter(|o| o.signable() && o.spec().executable)
    }

    /// The kinds of target it acts on, for messages: `lxc, qemu or container`.
    pub fn target_kinds(self) -> String {
        let names: Vec<&str> = self.spec().targets.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            None => "no kind of target yet".to_owned(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    /// [`Operation::executable_signed`]'s names joined for messages: `destroy`.
    pub fn executable_signed_names() -> String {
        Operation::executable_signed()
            .map(Operation::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks signed parameters against the row: every key known, every value allowed,
    /// every required one there.
    pub fn check_params(self, params: &BTreeMap<String, String>) -> Result<(), ParamError> {
        let spec = self.spec();
        if let Some(rule) = spec
            .params
            .iter()
            .find(|r| r.required && !params.contains_key(r.key))
        {
            return Err(ParamError::Missing {
                op: self,
                key: rule.key,
                values: rule.values.describe(),
            });
        }
        for (k, v) in params {
            let Some(rule) = spec.params.iter().find(|r| r.key == k) else {
                return Err(ParamError::Unknown {
                    op: self,
                    key: k.clone(),
                });
            };
            if !rule.values.allows(v) {
                return Err(ParamError::Value {
                    op: self,
                    key: rule.key,
                    value: v.clone(),
                    allowed: rule.values.describe(),
                    required: rule.required,
                });
            }
        }
        Ok(())
    }

    /// What a signed op of this operation with `params` removes, one item a line, before
    /// anyone signs: a wipe's volumes with their sizes; a decommission's guests (each
    /// with the digest it was approved at and whether it is backed up first), then its
    /// volumes. Empty for an operation whose parameters name nothing to remove.
    pub fn removals(self, params: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        let volumes = |out: &mut Vec<String>| {
            let listed = params
                .get(crate::wipe::VOLUMES_PARAM)
                .and_then(|v| crate::wipe::decode(v).ok())
                .unwrap_or_default();
            for (v, size) in listed {
                out.push(format!("{v} ({})", crate::units::format_size(size)));
            }
        };
        match self {
            Operation::WipeStorage => volumes(&mut out),
            Operation::Decommission => {
                let backup = if params.get(WAIVE_BACKUP.key).map(String::as_str) == Some("0") {
                    "no safety backup"
                } else {
                    "after a safety backup"
                };
                let guests = params
                    .get(crate::decommission::GUESTS_PARAM)
                    .and_then(|v| crate::decommission::decode_guests(v).ok())
                    .unwrap_or_default();
                for (vmid, (kind, digest)) in guests {
                    out.push(format!(
                        "{} with its configured disks, backup jobs and HA entry ({backup}; config digest {digest})",
                        crate::target::Target::guest(kind, vmid).describe()
                    ));
                }
                volumes(&mut out);
            }
            _ => {}
        }
        out
    }

    /// What it does to `target` with `params`, in words (for `op show` and the pending
    /// payload's note).
    pub fn describe(self, target: &str, params: &BTreeMap<String, String>) -> String {
        let spec = self.spec();
        let mut s = spec.effect.replace("{target}", target);
        for rule in spec.params {
            if params.contains_key(rule.key) {
                s.push_str(&format!(" ({}: {})", rule.key, rule.effect));
            }
        }
        s
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Operation> for String {
    fn from(op: Operation) -> String {
        op.as_str().to_owned()
    }
}

/// An operation name the table does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::from_name(s).ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

/// A signed parameter the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The operation takes no parameter of that name.
    #[error("{op} does not take parameter {key:?} ({})", takes(*op))]
    Unknown {
        /// The operation.
        op: Operation,
        /// The parameter.
        key: String,
    },
    /// A value the parameter does not take.
    #[error("{op} takes {key}={allowed}{} (got {key}={value})", if *required { String::new() } else { format!(" or no {key} parameter at all") })]
    Value {
        /// The operation.
        op: Operation,
        /// The parameter.
        key: &'static str,
        /// The value given.
        value: String,
        /// The values allowed, in words.
        allowed: String,
        /// Whether the parameter must be given.
        required: bool,
    },
    /// A parameter the operation needs is missing.
    #[error("{op} needs parameter {key}={values}")]
    Missing {
        /// The operation.
        op: Operation,
        /// The parameter.
        key: &'static str,
        /// The values it takes, in words.
        values: String,
    },
}

fn takes(op: Operation) -> String {
    let params = op.spec().params;
    if params.is_empty() {
        return "it takes none".to_owned();
    }
    let list: Vec<String> = params
        .iter()
        .map(|r| format!("{}={}", r.key, r.values.describe()))
        .collect();
    format!("it takes only {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_variant_order_and_names_are_unique() {
        for (i, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.op as usize, i, "{} is out of order", spec.name);
            assert_eq!(Operation::from_name(spec.name), Some(spec.op));
            assert!(crate::op::valid_op_name(spec.name), "{}", spec.name);
            // The serde name is the table's name.
            assert_eq!(
                serde_json::to_value(spec.op).ok(),
                Some(serde_json::Value::String(spec.name.to_owned()))
            );
        }
    }

    /// The rules that keep the table honest: what never loses data is never signed and
    /// settles by re-planning; what can lose data names who may sign it, and a reviewer
    /// key authorises nothing.
    #[test]
    fn rows_are_consistent() {
        for s in TABLE {
            match s.data_loss {
                DataLoss::Never | DataLoss::ByKeys => {
                    assert!(s.roles.is_empty(), "{} is benign but signable", s.name);
                    assert!(s.params.is_empty() && !s.needs_precondition, "{}", s.name);
                }
                DataLoss::TargetData | DataLoss::Always => {
                    assert!(
                        !s.roles.is_empty(),
                        "{} loses data but nobody may sign it",
                        s.name
                    );
                    assert_ne!(
                        s.recovery,
                        Recovery::Replan,
                        "{} cannot be re-planned",
                        s.name
                    );
                }
            }
            assert!(!s.roles.contains(&Role::Reviewer), "{}", s.name);
            assert!(s.default_threshold >= 1, "{}", s.name);
            assert!(!s.provenance_undoes || s.data_loss == DataLoss::TargetData);
        }
        // Removing a whole node needs two people by default.
        assert_eq!(Operation::Decommission.spec().default_threshold, 2);
        assert_eq!(
            Operation::executable_signed_names(),
            "destroy, restore_overwrite, wipe_storage, remove_volume, decommission"
        );
    }

    #[test]
    fn parameters_are_checked_against_the_row() {
        let p = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(Operation::Destroy.check_params(&BTreeMap::new()), Ok(()));
        assert_eq!(Operation::Destroy.check_params(&p("purge", "1")), Ok(()));
        let e = Operation::Destroy
            .check_params(&p("purge", "0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "destroy takes purge=1 or no purge parameter at all (got purge=0)"
        );
        let e = Operation::Destroy
            .check_params(&p("force", "1"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "destroy does not take parameter \"force\" (it takes only purge=1, destroy-unreferenced-disks=0|1, backup=0)"
        );
        assert_eq!(
            Operation::Destroy.check_params(&p("destroy-unreferenced-disks", "0")),
            Ok(())
        );
        assert!(
            Operation::Destroy
                .check_params(&p("destroy-unreferenced-disks", "yes"))
                .is_err()
        );
        let archive = "local:backup/vzdump-lxc-101-2026_12_01-00_00_00.tar.zst";
        assert_eq!(
            Operation::RestoreOverwrite.check_params(&p("archive", archive)),
            Ok(())
        );
        let e = Operation::RestoreOverwrite
            .check_params(&BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "restore_overwrite needs parameter archive=VOLUME (a volume id, storage:path)"
        );
        let e = Operation::RestoreOverwrite
            .check_params(&p("archive", "../etc/passwd"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "restore_overwrite takes archive=VOLUME (a volume id, storage:path) (got archive=../etc/passwd)"
        );
        let mut both = p("archive", archive);
        both.insert("storage".into(), "local-lvm".into());
        both.insert("backup".into(), "0".into());
        assert_eq!(Operation::RestoreOverwrite.check_params(&both), Ok(()));
        both.insert("storage".into(), "bad/storage".into());
        assert!(Operation::RestoreOverwrite.check_params(&both).is_err());
        let e = Operation::RotateKeys
            .check_params(&p("x", "1"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.to_string().ends_with("(it takes none)"), "{e}");
    }

    #[test]
    fn effects_name_the_target_and_each_parameter() {
        let purge = BTreeMap::from([("purge".to_owned(), "1".to_owned())]);
        assert_eq!(
            Operation::Destroy.describe("CT 101", &purge),
            "deletes CT 101 with its configuration and disks; this cannot be undone \
             (purge: also removes it from backup jobs, replication and HA)"
        );
        assert_eq!(
            Operation::Start.describe("VM 7", &BTreeMap::new()),
            "starts VM 7"
        );
    }
}
