//! The classifier: is an operation benign (applied on the desired state's word) or
//! destructive (needs an operator's signature)?
//!
//! Classification is by **provenance and data-bearingness, never by verb**:
//! - An operation that cannot lose data — power state, the benign configuration keys — is
//!   benign whatever it is called.
//! - An operation that can lose data — destroying a guest, wiping or removing storage,
//!   restoring over a guest, decommissioning a host — is destructive, unless the agent's
//!   own journal shows the target holds nothing anyone else put there: a guest the agent
//!   created in the same journaled transaction that now undoes it, or a guest the agent
//!   itself recorded as scratch.
//! - An operation name the table does not hold never becomes an [`Operation`]: it is
//!   refused where it is read, and never executed.
//!
//! Provenance is accepted only as a [`JournalProvenance`], which the agent builds from its
//! own journal. Tags, flags or fields arriving from the desired state or the hub have no
//! way in: this module does not look at guest tags or desired-state fields at all.

use serde::Serialize;

use crate::operation::{DataLoss, Operation};

/// Benign or destructive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Applied automatically.
    Benign,
    /// Executed only with a verified operator signature.
    Destructive,
}

/// What the agent's journal says about where a guest came from. Only the agent's journal
/// may produce this; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalProvenance {
    /// The agent created the guest in journaled transaction `transaction`.
    CreatedByAgent {
        /// The journal intent that created it.
        transaction: u64,
    },
    /// The agent created the guest as scratch space and recorded it so.
    AgentScratch {
        /// The journal intent that created it.
        transaction: u64,
    },
}

/// A classification with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The class.
    pub class: Class,
    /// Why, for the audit log and for people.
    pub why: &'static str,
}

/// Configuration keys whose change cannot lose data.
pub const BENIGN_CONFIG_KEYS: &[&str] = &["cores", "memory", "description", "tags"];

/// Classifies operation `op`, touching configuration keys `keys` (those it sets or
/// removes; none for anything but `set_config`), on a target whose journal provenance is
/// `provenance`, as part of journal transaction `within` (if any). What the operation can
/// do to data comes from its row of the operation table ([`crate::operation`]).
pub fn classify(
    op: Operation,
    keys: &[&str],
    provenance: Option<JournalProvenance>,
    within: Option<u64>,
) -> Classification {
    classify_target(op, keys, None, provenance, within)
}

/// [`classify`], with what the backend observed of the target: `holds_data` is
/// `Some(false)` only when the backend saw that the operation loses nothing of it (a
/// container that mounts no volume, re-created from its declaration). Only an operation
/// whose row loses *the target's* data ([`DataLoss::TargetData`]) looks at it; `None`
/// (a Proxmox guest: its disks always hold data) changes nothing.
pub fn classify_target(
    op: Operation,
    keys: &[&str],
    holds_data: Option<bool>,
    provenance: Option<JournalProvenance>,
    within: Option<u64>,
) -> Classification {
    let benign = |why| Classification {
        class: Class::Benign,
        why,
    };
    let destructive = |why| Classification {
        class: Class::Destructive,
        why,
    };
    let spec = op.spec();
    match spec.data_loss {
        DataLoss::Never => benign("cannot lose data"),
        DataLoss::ByKeys => {
            let all_benign = keys.iter().all(|key| BENIGN_CONFIG_KEYS.contains(key));
            if all_benign {
                benign("configuration keys that hold no data")
            } else {
                destructive("configuration change touching keys that may hold data")
            }
        }
        DataLoss::TargetData if holds_data == Some(false) => {
            benign("the target holds no data: nothing of it is lost")
        }
        DataLoss::TargetData if spec.provenance_undoes => match provenance {
            Some(JournalProvenance::AgentScratch { .. }) => {
                benign("scratch target recorded by this agent's journal")
            }
            Some(JournalProvenance::CreatedByAgent { transaction })
                if within == Some(transaction) =>
            {
                benign("undoes a target created in the same journaled transaction")
            }
            _ => destructive("may destroy data"),
        },
        DataLoss::TargetData | DataLoss::Always => destructive("may destroy data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p<'a>(keys: &[&'a str]) -> Vec<&'a str> {
        keys.to_vec()
    }

    #[test]
    fn what_the_backend_saw_counts_only_for_the_targets_own_data() {
        use Class::*;
        for (op, holds, want) in [
            (Operation::Destroy, Some(false), Benign),
            (Operation::Destroy, Some(true), Destructive),
            (Operation::Destroy, None, Destructive),
            (Operation::Recreate, Some(false), Benign),
            (Operation::Recreate, Some(true), Destructive),
            (Operation::RemoveVolume, Some(false), Destructive),
            (Operation::WipeStorage, Some(false), Destructive),
            (Operation::RotateKeys, Some(false), Destructive),
        ] {
            assert_eq!(
                classify_target(op, &[], holds, None, None).class,
                want,
                "{op} holds={holds:?}"
            );
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn table() {
        use Class::*;
        let created = Some(JournalProvenance::CreatedByAgent { transaction: 7 });
        let scratch = Some(JournalProvenance::AgentScratch { transaction: 3 });
        let cases: &[(
            Operation,
            Vec<&str>,
            Option<JournalProvenance>,
            Option<u64>,
            Class,
        )] = &[
            (Operation::Start, p(&[]), None, None, Benign),
            (Operation::Stop, p(&[]), None, None, Benign),
            (Operation::Reboot, p(&[]), None, None, Benign),
            (
                Operation::SetConfig,
                p(&["cores", "memory"]),
                None,
                None,
                Benign,
            ),
            (
                Operation::SetConfig,
                p(&["description", "tags"]),
                None,
                None,
                Benign,
            ),
            (Operation::SetConfig, p(&["mp0"]), None, None, Destructive),
            (Operation::SetConfig, p(&["scsi0"]), None, None, Destructive),
            (Operation::Destroy, p(&[]), None, None, Destructive),
            (Operation::Destroy, p(&[]), created, Some(7), Benign),
            (Operation::Destroy, p(&[]), created, Some(8), Destructive),
            (Operation::Destroy, p(&[]), created, None, Destructive),
            (Operation::Destroy, p(&[]), scratch, None, Benign),
            (Operation::WipeStorage, p(&[]), scratch, None, Destructive),
            (Operation::RestoreOverwrite, p(&[]), None, None, Destructive),
            (Operation::Decommission, p(&[]), None, None, Destructive),
            (
                Operation::RemoveVolume,
                p(&[]),
                created,
                Some(7),
                Destructive,
            ),
            (Operation::Shutdown, p(&[]), None, None, Benign),
        ];
        for (op, keys, prov, within, want) in cases {
            assert_eq!(
                classify(*op, keys, *prov, *within).class,
                *want,
                "{op} {keys:?} {prov:?} {within:?}"
            );
        }
    }
}
