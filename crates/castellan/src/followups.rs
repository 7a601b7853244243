//! What a plan will lead to beyond its own actions. The planner plans against the node as it
//! is; some actions change the node so that another one becomes due. The one that matters
//! to a reader is QEMU's: a running VM cannot take new cores (or, without memory hotplug,
//! new memory) live, so Proxmox VE keeps them *pending*, and the next plan reboots the VM
//! where its restart policy says `reboot`, or reports it otherwise. A guest being provisioned
//! is planned against once it exists: its declared disks grow where the copy's are smaller,
//! its declared configuration is written where the copy differs, and it is started if it
//! should run. `castellan plan` (and the demo) show these so that what is applied is what
//! was shown.

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
    /// What the step converges on a guest once its provisioning made it (`None` for a
    /// pending-change follow-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_provision: Option<String>,
}

impl FollowUp {
    /// Why, for people.
    pub fn reason(&self) -> String {
        if let Some(what) = &self.after_provision {
            return format!("then, once it exists: {what}");
        }
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
        .filter(|a| a.kind == Operation::Provision)
    {
        let Some(d) = desired.guests.get(&a.vmid) else {
            continue;
        };
        let mut step = |action: Operation, what: String| {
            out.push(FollowUp {
                vmid: a.vmid,
                guest: a.guest,
                action: Some(action),
                pending: Vec::new(),
                after_provision: Some(what),
            });
        };
        if d.cores.is_some()
            || d.memory_bytes.is_some()
            || d.description.is_some()
            || d.tags.is_some()
        {
            step(
                Operation::SetConfig,
                "its declared configuration, where the copy differs".to_owned(),
            );
        }
        for (disk, bytes) in &d.disks {
            step(
                Operation::Resize,
                format!(
                    "disk {disk} grown to {} if the copy's is smaller",
                    castellan_core::units::format_size(*bytes)
                ),
            );
        }
        if d.run == castellan_core::model::DesiredRun::Running {
            step(Operation::Start, "started (run = \"running\")".to_owned());
        }
    }
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
            after_provision: None,
        });
    }
    out
}
