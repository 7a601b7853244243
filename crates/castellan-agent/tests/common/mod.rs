//! The agent's tests' one fake backend: an in-memory node that stores writes as Proxmox VE
//! does, with scripted failures, latency, a change made behind the agent's back while a
//! guest shuts down, and a record of what it executed and destroyed.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castellan_agent::backend::{
    Backend, BackendError, FailureClass, GuestBackend, Observed, TaskHandle, TaskState,
    look_at_guest,
};
use castellan_core::model::{ActualGuest, ActualRun, GuestKind, Vmid};
use castellan_core::plan::Action;
use castellan_core::{Operation, Target};

/// What the fake node holds and has seen.
#[derive(Default)]
pub struct Node {
    pub guests: BTreeMap<Vmid, ActualGuest>,
    /// Failures to return from the next actions on a guest.
    pub failures: BTreeMap<Vmid, VecDeque<BackendError>>,
    /// Guests whose actions always fail.
    pub broken: Vec<Vmid>,
    /// Every benign action carried out, in order.
    pub executed: Vec<(Vmid, Operation)>,
    pub in_flight: BTreeMap<Vmid, u32>,
    pub max_in_flight_per_guest: u32,
    /// Guests destroyed, in order.
    pub destroyed: Vec<Vmid>,
    /// A change someone makes while a guest shuts down (a volume attached, a config
    /// edited): its new digest.
    pub digest_after_stop: Option<String>,
}

/// The in-memory node. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct Fake {
    pub node: Arc<Mutex<Node>>,
    /// How long each benign action takes.
    pub latency: Duration,
}

impl Fake {
    /// A node holding `guests`.
    pub fn with(guests: Vec<ActualGuest>) -> Self {
        let fake = Fake::default();
        fake.lock().guests = guests.into_iter().map(|g| (g.vmid, g)).collect();
        fake
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Node> {
        self.node.lock().expect("fake node lock")
    }
    pub fn put(&self, g: ActualGuest) {
        self.lock().guests.insert(g.vmid, g);
    }
    pub fn destroyed(&self) -> Vec<Vmid> {
        self.lock().destroyed.clone()
    }
    pub fn has(&self, vmid: Vmid) -> bool {
        self.lock().guests.contains_key(&vmid)
    }
}

fn gone() -> BackendError {
    BackendError::new(FailureClass::Gone, "no such guest")
}

impl GuestBackend for Fake {
    async fn list(&self) -> Result<Vec<ActualGuest>, BackendError> {
        Ok(self
            .lock()
            .guests
            .values()
            .map(|g| ActualGuest {
                spec: None,
                ..g.clone()
            })
            .collect())
    }

    async fn observe(
        &self,
        kind: GuestKind,
        vmid: Vmid,
    ) -> Result<Option<ActualGuest>, BackendError> {
        Ok(self
            .lock()
            .guests
            .get(&vmid)
            .filter(|g| g.kind == kind)
            .cloned())
    }

    async fn dispatch(&self, action: &Action) -> Result<Option<TaskHandle>, BackendError> {
        {
            let mut n = self.lock();
            let c = n.in_flight.entry(action.vmid).or_default();
            *c += 1;
            let c = *c;
            n.max_in_flight_per_guest = n.max_in_flight_per_guest.max(c);
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut n = self.lock();
        *n.in_flight.entry(action.vmid).or_default() -= 1;
        if n.broken.contains(&action.vmid) {
            return Err(BackendError::retry("task failed: storage offline"));
        }
        if let Some(e) = n
            .failures
            .get_mut(&action.vmid)
            .and_then(VecDeque::pop_front)
        {
            return Err(e);
        }
        let after = if matches!(action.kind, Operation::Stop | Operation::Shutdown) {
            n.digest_after_stop.take()
        } else {
            None
        };
        n.executed.push((action.vmid, action.kind));
        let g = n.guests.get_mut(&action.vmid).ok_or_else(gone)?;
        match action.kind {
            Operation::SetConfig => {
                let spec = g.spec.as_mut().expect("spec was read");
                if action.digest.as_deref() != Some(spec.digest.as_str()) {
                    return Err(BackendError::new(FailureClass::Conflict, "digest"));
                }
                for (k, v) in &action.params {
                    match k.as_str() {
                        "cores" => spec.cores = v.parse().ok(),
                        "memory" => spec.memory_mib = v.parse().unwrap_or(0),
                        "description" => spec.description = Some(format!("{v}\n")),
                        "tags" => spec.tags = Some(v.clone()),
                        _ => {}
                    }
                }
                spec.digest.push('+');
            }
            Operation::Start => g.run = ActualRun::Running,
            Operation::Stop | Operation::Shutdown => {
                g.run = ActualRun::Stopped;
                if let (Some(d), Some(spec)) = (after, g.spec.as_mut()) {
                    spec.digest = d;
                }
            }
            Operation::Reboot => g.pending_restart.clear(),
            // The one arm a new benign operation needs here (`tests/engine.rs`,
            // `a_new_operation_is_one_row_and_one_arm`): the row says it is benign, the
            // gate, journal and audit need nothing else.
            Operation::Resize => {}
            other => return Err(BackendError::unsupported(other)),
        }
        Ok(None)
    }
}

impl Backend for Fake {
    fn serves(&self, target: &Target) -> bool {
        target.as_guest().is_some()
    }

    async fn look(&self, target: &Target) -> Result<Option<Observed>, BackendError> {
        look_at_guest(self, target).await
    }

    async fn bring_down(&self, target: &Target, timeout_secs: u32) -> Result<(), BackendError> {
        let (kind, vmid) = target.as_guest().ok_or_else(gone)?;
        let down = Action::bring_down(kind, vmid, timeout_secs);
        self.execute(&down).await.map(|_| ())
    }

    async fn dispatch_signed(
        &self,
        op: Operation,
        target: &Target,
        _params: &BTreeMap<String, String>,
        _approved: &str,
    ) -> Result<TaskHandle, BackendError> {
        let (kind, vmid) = target.as_guest().ok_or_else(gone)?;
        if op != Operation::Destroy {
            return Err(BackendError::unsupported(op));
        }
        let mut n = self.lock();
        match n.guests.get(&vmid) {
            Some(g) if g.kind == kind => {
                n.guests.remove(&vmid);
                n.destroyed.push(vmid);
                Ok(TaskHandle::new(format!("fake-destroy-{vmid}")))
            }
            _ => Err(gone()),
        }
    }

    async fn wait_task(&self, _task: &TaskHandle) -> Result<u32, BackendError> {
        Ok(0)
    }

    async fn task_status_once(&self, _task: &TaskHandle) -> Result<TaskState, BackendError> {
        Ok(TaskState::Succeeded { warnings: 0 })
    }
}
