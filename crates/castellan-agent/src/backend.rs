//! The agent's view of a node: observe guests, execute benign actions. [`Backend`] is the
//! seam between the reconcile engine and Proxmox VE; [`PveBackend`] implements it over
//! the API client.

use std::collections::BTreeMap;
use std::future::Future;

use castellan_core::Operation;
use castellan_core::model::{ActualGuest, ActualRun, GuestKind, Vmid};
use castellan_core::plan::Action;
use castellan_core::pveconf::spec_from_config;
use castellan_pve::{ConfigUpdate, PveClient, Upid, WaitOptions};
use thiserror::Error;

/// How the engine should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The configuration changed since it was read: re-observe and re-plan at once.
    Conflict,
    /// The guest no longer exists.
    Gone,
    /// Worth retrying after a back-off (locks, failed tasks, refusals).
    Retry,
    /// Whether the request took effect is not known: the answer was lost in transport,
    /// or a task's end could not be learnt in time. Never an outcome: a destructive
    /// request in this state stays in flight until the node's own records settle it.
    Unknown,
}

/// A failed observation or action.
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct BackendError {
    /// How to react.
    pub class: FailureClass,
    /// What happened (never contains a secret).
    pub message: String,
}

impl BackendError {
    /// A retryable failure.
    pub fn retry(message: impl Into<String>) -> Self {
        BackendError {
            class: FailureClass::Retry,
            message: message.into(),
        }
    }
}

impl From<castellan_pve::Error> for BackendError {
    fn from(e: castellan_pve::Error) -> Self {
        use castellan_pve::Error as E;
        let class = match &e {
            E::DigestMismatch => FailureClass::Conflict,
            E::NotFound { .. } => FailureClass::Gone,
            E::Transport(_) | E::TaskTimeout { .. } => FailureClass::Unknown,
            _ => FailureClass::Retry,
        };
        BackendError {
            class,
            message: e.to_string(),
        }
    }
}

/// What the engine needs from a node.
pub trait Backend: Send + Sync + 'static {
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

    /// Sends one benign action. Returns the task to wait for, or `None` when the API
    /// applied it synchronously.
    fn dispatch(
        &self,
        action: &Action,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;

    /// Sends the destroy of a guest (which must be stopped) with the signed op's
    /// parameters. Returns its task.
    fn dispatch_destroy(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        params: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// Waits for a task to finish. Returns the number of warnings it reported; a failed
    /// task is an error.
    fn wait_task(&self, task: &str) -> impl Future<Output = Result<u32, BackendError>> + Send;

    /// Looks at a task once, without waiting (crash recovery's `TaskStatusOnce`).
    fn task_status_once(
        &self,
        task: &str,
    ) -> impl Future<Output = Result<TaskState, BackendError>> + Send;

    /// The ids of the node's tasks of operation `op` for guest `vmid`, as the node lists
    /// them. Taken just before a destructive request and again by recovery, the
    /// difference is the request's own task, found without comparing anyone's clock.
    /// Backends that cannot list tasks answer `None`.
    fn tasks_of(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        op: Operation,
    ) -> impl Future<Output = Result<Option<Vec<String>>, BackendError>> + Send {
        let _ = (kind, vmid, op);
        async { Ok(None) }
    }

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

/// A task's state at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Still running.
    Running,
    /// Finished successfully, with this many warnings.
    Succeeded {
        /// Warnings reported.
        warnings: u32,
    },
    /// Finished with an error.
    Failed {
        /// Its exit status.
        exitstatus: String,
    },
    /// The node does not know the task (it never started, or its log was rotated).
    Unknown,
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

impl Backend for PveBackend {
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
            Err(castellan_pve::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let config = match self.client.guest_config(&self.node, kind, vmid).await {
            Ok(c) => c,
            Err(castellan_pve::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut g = ActualGuest::new(vmid, kind, ActualRun::from_pve(&status.status));
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

    async fn dispatch(&self, action: &Action) -> Result<Option<String>, BackendError> {
        let kind = action.guest;
        let (node, vmid) = (self.node.as_str(), action.vmid);
        let upid = match action.kind {
            Operation::SetConfig => {
                let digest = action.digest.clone().ok_or_else(|| {
                    BackendError::retry("refusing a configuration write without a digest")
                })?;
                let mut update = ConfigUpdate::new(digest);
                for (k, v) in &action.params {
                    if k == "delete" {
                        update.delete.extend(v.split(',').map(str::to_owned));
                    } else {
                        update.set.insert(k.clone(), v.clone());
                    }
                }
                match self.client.update_config(node, kind, vmid, &update).await? {
                    Some(upid) => upid,
                    None => return Ok(None),
                }
            }
            Operation::Start => self.client.start(node, kind, vmid).await?,
            Operation::Stop => self.client.stop(node, kind, vmid).await?,
            Operation::Shutdown => {
                let timeout = match action.params.get("timeout") {
                    Some(t) => Some(t.parse::<u32>().map_err(|_| {
                        BackendError::retry(format!("shutdown timeout {t:?} is not a number"))
                    })?),
                    None => None,
                };
                let opts = castellan_pve::ShutdownOptions {
                    timeout,
                    force_stop: action.params.get("forceStop").is_some_and(|v| v == "1"),
                };
                self.client.shutdown_with(node, kind, vmid, opts).await?
            }
            Operation::Reboot => self.client.reboot(node, kind, vmid).await?,
            other => {
                return Err(BackendError::retry(format!(
                    "{other} is not a benign action this backend carries out"
                )));
            }
        };
        Ok(Some(upid.to_string()))
    }

    async fn dispatch_destroy(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        params: &BTreeMap<String, String>,
    ) -> Result<String, BackendError> {
        let mut purge = false;
        for (k, v) in params {
            match (k.as_str(), v.as_str()) {
                ("purge", "1") => purge = true,
                ("purge", "0") => {}
                _ => {
                    return Err(BackendError {
                        class: FailureClass::Retry,
                        message: format!("destroy does not take parameter {k}={v}"),
                    });
                }
            }
        }
        let upid = self
            .client
            .delete_guest(&self.node, kind, vmid, purge)
            .await?;
        Ok(upid.to_string())
    }

    async fn tasks_of(
        &self,
        kind: GuestKind,
        vmid: Vmid,
        op: Operation,
    ) -> Result<Option<Vec<String>>, BackendError> {
        let typefilter = match (op, kind) {
            (Operation::Destroy, GuestKind::Lxc) => "vzdestroy",
            (Operation::Destroy, GuestKind::Qemu) => "qmdestroy",
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
            tasks.into_iter().map(|t| t.upid.to_string()).collect(),
        ))
    }

    async fn wait_task(&self, task: &str) -> Result<u32, BackendError> {
        let upid = parse_upid(task)?;
        let ok = self.client.wait_task(&self.node, &upid, self.wait).await?;
        Ok(ok.warnings)
    }

    async fn task_status_once(&self, task: &str) -> Result<TaskState, BackendError> {
        let upid = parse_upid(task)?;
        let status = match self.client.task_status(&self.node, &upid).await {
            Ok(s) => s,
            Err(castellan_pve::Error::NotFound { .. }) => return Ok(TaskState::Unknown),
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

fn parse_upid(task: &str) -> Result<Upid, BackendError> {
    task.parse()
        .map_err(|e| BackendError::retry(format!("task id {task:?} is not a UPID: {e}")))
}
