//! Where the agent stands right now, as the guest engine and the container side last saw
//! it: what the agent reports to its hub after each pass. Updates notify watchers, so a
//! report follows a change at once.

use std::collections::BTreeMap;

use castellan_core::gate::DestructiveAction;
use castellan_core::model::Vmid;
use tokio::sync::watch;

/// The container side's last pass, in brief.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Whether the containers are as declared.
    pub converged: bool,
    /// What the pass left to do, in words.
    pub steps: Vec<String>,
    /// The payload files of destructive operations waiting for a signed op.
    pub pending: Vec<std::path::PathBuf>,
    /// What failed (target, why).
    pub failed: Vec<(String, String)>,
}

/// A destructive action waiting for a signed op, with what it takes with it beyond what
/// its parameters name (the plan's `affects`: disks with sizes, HA entry, jobs), for the
/// people who sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    /// The action.
    pub action: DestructiveAction,
    /// What it takes with it, in words.
    pub takes: Vec<String>,
}

/// A snapshot of the agent's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the guest engine has listed the node at least once since start.
    pub guests_synced: bool,
    /// Guests queued, in flight or backing off.
    pub guests_busy: Vec<Vmid>,
    /// Guests whose last reconcile failed, with the error.
    pub guest_errors: BTreeMap<Vmid, String>,
    /// Destructive actions on guests waiting for a signed op, as last planned.
    pub guest_pending: BTreeMap<Vmid, PendingAction>,
    /// Each declared guest beside what the node has, field by field, as last reconciled.
    pub guest_fields: BTreeMap<
        Vmid,
        (
            castellan_core::model::GuestKind,
            Vec<castellan_core::compare::FieldComparison>,
        ),
    >,
    /// Destructive actions on the node or its storages (a wipe, a decommission) waiting
    /// for a signed op, by target, as last planned.
    pub node_pending: BTreeMap<String, PendingAction>,
    /// Why the node as a whole cannot be worked on now (listing it failed).
    pub node_error: Option<String>,
    /// The container side's last pass (`None`: no `[docker]`, or no pass yet).
    pub containers: Option<ContainerSummary>,
    /// The last desired state from the hub that was refused, and why (cleared when a
    /// later one is taken).
    pub desired_refused: Option<String>,
}

/// The board both sides of the agent write to and the reporter reads.
#[derive(Debug)]
pub struct StatusBoard {
    tx: watch::Sender<Snapshot>,
    metrics: std::sync::Arc<crate::metrics::AgentMetrics>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard {
            tx: watch::channel(Snapshot::default()).0,
            metrics: Default::default(),
        }
    }
}

impl StatusBoard {
    /// The agent's metrics.
    pub fn metrics(&self) -> &std::sync::Arc<crate::metrics::AgentMetrics> {
        &self.metrics
    }

    /// Changes the snapshot; watchers are woken only when something changed.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        self.tx.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    /// The current snapshot.
    pub fn get(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    /// A receiver woken on every change.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }
}
