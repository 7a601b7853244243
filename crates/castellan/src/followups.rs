//! What a plan will lead to beyond its own actions. The planner plans against the node as it
//! is; some actions change the node so that another one becomes due. The one that matters
//! to a reader is QEMU's: a running VM cannot take new cores (or, without memory hotplug,
//! new memory) live, so Proxmox VE keeps them *pending*, and the next plan reboots the VM
//! where its restart policy says `reboot`, or reports it otherwise. `castellan plan` (and the
//! demo) show these so that what is applied is what was shown.

use castellan_core::Operation;
use castellan_core::model::{ActualRun, ActualState, DesiredState, GuestKind, RestartPolicy, Vmid};
use castellan_core::plan::Plan;
use serde::Serialize;

/// The configuration keys a running VM takes only at its next restart (as castellan
/// manages them: without CPU or memory hotplug, Proxmox VE's default).
const RESTART_KEYS: &[&str] = &["cores", "memory"];

/// An expected consequence of a planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    /// The guest.
    pub vmid: Vmid,
    /// Its kind.
    #[serde(rename = "guest_type")]
    pub guest: GuestKind,
    /// The action expected next (`reboot`), or `None` when the guest will only be reported
    /// as needing a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Operation>,
    /// The keys expected to go pending.
    pub pending: Vec<String>,
}

impl FollowUp {
    /// Why, for people.
    pub fn reason(&self) -> String {
        let keys = self.pending.join(", ");
        match self.action {
            Some(_) => format!("then: apply pending {keys} (a running VM takes them at restart)"),
            None => format!(
                "{}: will need a restart to apply pending {keys} (restart policy is manual)",
                self.vmid
            ),
        }
    }
}

/// The follow-ups `plan` will lead to on this node.
pub fn expected(desired: &DesiredState, actual: &ActualState, plan: &Plan) -> Vec<FollowUp> {
    let mut out = Vec::new();
    for a in plan
        .actions
        .iter()
        .filter(|a| a.kind == Operation::SetConfig && a.guest == GuestKind::Qemu)
    {
        let running = actual
            .guests
            .get(&a.vmid)
            .is_some_and(|g| g.run == ActualRun::Running);
        // A VM the plan powers off or reboots anyway takes its changes then.
        let powered = plan.actions.iter().any(|b| {
            b.vmid == a.vmid
                && matches!(
                    b.kind,
                    Operation::Shutdown | Operation::Stop | Operation::Reboot
                )
        });
        let pending: Vec<String> = RESTART_KEYS
            .iter()
            .filter(|k| a.params.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        if !running || powered || pending.is_empty() {
            continue;
        }
        let policy = desired
            .guests
            .get(&a.vmid)
            .map(|d| d.restart)
            .unwrap_or_default();
        out.push(FollowUp {
            vmid: a.vmid,
            guest: a.guest,
            action: (policy == RestartPolicy::Reboot).then_some(Operation::Reboot),
            pending,
        });
    }
    out
}
