//! [`Backend`] over the Docker Engine: the signed operations on a container or a volume
//! (`destroy`, `remove_volume`) the gatekeeper carries out, the state digest an op is
//! bound to, and the benign steps of the container planner.
//!
//! Engine calls are synchronous: when one returns, it is done. A [`TaskHandle`] is made
//! only after the call returned, so a handle the journal holds is a finished operation,
//! and recovery asking about it learns that it succeeded. The engine keeps no task list
//! ([`Backend::tasks_of`] answers `None`): a signed operation whose call may or may not
//! have reached the engine is settled by looking at its target.

use std::collections::BTreeMap;

use castellan_backend::{Backend, BackendError, FailureClass, Observed, TaskHandle, TaskState};
use castellan_core::{Operation, Target, TargetKind};
use sha2::{Digest as _, Sha256};

use crate::client::{DockerClient, DockerError, ObservedContainer, ObservedVolume};
use crate::plan::Step;

/// Seconds a container is given to stop cleanly (SIGTERM) before SIGKILL: Docker's own
/// default.
pub const STOP_TIMEOUT_SECS: u32 = 10;

impl From<DockerError> for BackendError {
    fn from(e: DockerError) -> Self {
        let class = match &e {
            DockerError::NotFound { .. } => FailureClass::Gone,
            DockerError::NotOurs { .. } | DockerError::Spec(_) => FailureClass::Retry,
            DockerError::Changed { .. } => FailureClass::Conflict,
            DockerError::Engine(engine) => match engine {
                bollard::errors::Error::DockerResponseServerError { status_code, .. } => {
                    match status_code {
                        404 => FailureClass::Gone,
                        409 => FailureClass::Conflict,
                        // The engine answered: nothing was done.
                        _ => FailureClass::Retry,
                    }
                }
                // The answer was lost: whether the call took effect is not known.
                _ => FailureClass::Unknown,
            },
        };
        BackendError::new(class, e.to_string())
    }
}

/// The digest a signed op on a container is bound to: its id (a container made again
/// under the same name is another container), its declaration hash, and the volumes it
/// mounts. SHA-256, lower-case hex.
pub fn container_digest(c: &ObservedContainer) -> String {
    let mut h = Sha256::new();
    let mut field = |tag: &str, value: &str| {
        h.update(tag.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value.as_bytes());
    };
    field("id", &c.id);
    field("spec", c.spec_hash.as_deref().unwrap_or(""));
    let mut volumes = c.volumes.clone();
    volumes.sort();
    for v in &volumes {
        field("volume", &v.name);
        field("at", &v.destination);
    }
    hex::encode(h.finalize())
}

/// The digest a signed op on a volume is bound to: its name and when it was created.
pub fn volume_digest(v: &ObservedVolume) -> String {
    let mut h = Sha256::new();
    for (tag, value) in [("name", &v.name), ("created", &v.created_at)] {
        h.update(tag.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value.as_bytes());
    }
    hex::encode(h.finalize())
}

/// [`Backend`] over one host's Docker Engine.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    client: DockerClient,
}

impl DockerBackend {
    /// A backend over `client`.
    pub fn new(client: DockerClient) -> Self {
        DockerBackend { client }
    }

    /// The Engine API client.
    pub fn client(&self) -> &DockerClient {
        &self.client
    }

    /// Every container and every volume on the host.
    pub async fn observe_all(
        &self,
    ) -> Result<(Vec<ObservedContainer>, Vec<ObservedVolume>), BackendError> {
        let (containers, volumes) = tokio::join!(self.client.list(), self.client.volumes());
        Ok((containers?, volumes?))
    }

    /// Carries out one benign step of the container planner. The caller (the
    /// gatekeeper) has classified it against what was observed.
    pub async fn apply(&self, step: &Step) -> Result<(), BackendError> {
        let name = step.target.as_str();
        let spec = || {
            step.spec.as_ref().ok_or_else(|| {
                BackendError::retry(format!("{} of {name} without a declaration", step.op))
            })
        };
        match step.op {
            Operation::Provision => {
                let spec = spec()?;
                if !self.client.has_image(&spec.image).await? {
                    return Err(BackendError::retry(format!(
                        "image {} is not on this host (castellan never pulls)",
                        spec.image
                    )));
                }
                self.client.create(spec).await?;
            }
            Operation::Start => self.client.start(name).await?,
            Operation::Shutdown | Operation::Stop => {
                self.client.stop(name, STOP_TIMEOUT_SECS).await?;
            }
            Operation::Recreate => {
                let spec = spec()?;
                // Nothing is removed that cannot be made again: castellan never pulls.
                if !self.client.has_image(&spec.image).await? {
                    return Err(BackendError::retry(format!(
                        "image {} is not on this host (castellan never pulls): {name} is kept as it is",
                        spec.image
                    )));
                }
                self.remove_observed(step).await?;
                self.client.create(spec).await?;
            }
            Operation::Destroy => self.remove_observed(step).await?,
            other => return Err(BackendError::unsupported(other)),
        }
        Ok(())
    }
}

impl DockerBackend {
    /// Removes the container a step was planned against: by the id observed when it
    /// was classified, so one put in its place since (which may hold data) is refused.
    async fn remove_observed(&self, step: &Step) -> Result<(), BackendError> {
        let Some(id) = step.observed_id.as_deref() else {
            return Err(BackendError::retry(format!(
                "{} of {} without the container it was planned against",
                step.op, step.target
            )));
        };
        Ok(self
            .client
            .remove_exact(&step.target, id, STOP_TIMEOUT_SECS)
            .await?)
    }
}

fn not_mine(target: &Target) -> BackendError {
    BackendError::retry(format!("{target} is not a Docker container or volume"))
}

impl Backend for DockerBackend {
    fn serves(&self, target: &Target) -> bool {
        matches!(target.kind(), TargetKind::Container | TargetKind::Volume)
    }

    fn replans_benign(&self) -> bool {
        // Everything castellan makes carries its labels: a container half-made is
        // found, compared with its declaration and finished by the planner.
        true
    }

    async fn look(&self, target: &Target) -> Result<Option<Observed>, BackendError> {
        match target.kind() {
            TargetKind::Container => {
                let Some(c) = self.client.observe(target.id()).await? else {
                    return Ok(None);
                };
                if !c.ours {
                    return Err(DockerError::NotOurs {
                        what: "container",
                        name: c.name,
                        owner: self.client.owner().to_owned(),
                    }
                    .into());
                }
                Ok(Some(Observed {
                    state_digest: Some(container_digest(&c)),
                    stopped: !c.running,
                    lock: None,
                }))
            }
            TargetKind::Volume => {
                let volumes = self.client.volumes().await?;
                let Some(v) = volumes.into_iter().find(|v| v.name == target.id()) else {
                    return Ok(None);
                };
                if !v.ours {
                    return Err(DockerError::NotOurs {
                        what: "volume",
                        name: v.name,
                        owner: self.client.owner().to_owned(),
                    }
                    .into());
                }
                Ok(Some(Observed {
                    state_digest: Some(volume_digest(&v)),
                    stopped: true,
                    lock: None,
                }))
            }
            TargetKind::Lxc | TargetKind::Qemu | TargetKind::Storage | TargetKind::Node => {
                Err(not_mine(target))
            }
        }
    }

    async fn bring_down(&self, target: &Target, timeout_secs: u32) -> Result<(), BackendError> {
        match target.kind() {
            TargetKind::Container => Ok(self.client.stop(target.id(), timeout_secs).await?),
            // A volume does not run.
            TargetKind::Volume => Ok(()),
            TargetKind::Lxc | TargetKind::Qemu | TargetKind::Storage | TargetKind::Node => {
                Err(not_mine(target))
            }
        }
    }

    async fn dispatch_signed(
        &self,
        op: Operation,
        target: &Target,
        params: &BTreeMap<String, String>,
        approved: &str,
    ) -> Result<TaskHandle, BackendError> {
        // No signed parameter applies to Docker targets (`purge` is Proxmox VE's).
        if let Some((k, v)) = params.iter().next() {
            return Err(BackendError::retry(format!(
                "{op} of {target} does not take parameter {k}={v}"
            )));
        }
        let changed = || {
            BackendError::new(
                FailureClass::Conflict,
                format!("{target} changed since the op was approved; nothing was removed"),
            )
        };
        // Conditional on what was approved: the container removed is the one whose id
        // the approved digest covers, by id, never whatever holds its name by then.
        match (op, target.kind()) {
            (Operation::Destroy, TargetKind::Container) => {
                let c = self.client.observe(target.id()).await?.ok_or_else(|| {
                    BackendError::new(FailureClass::Gone, format!("{target} does not exist"))
                })?;
                if container_digest(&c) != approved {
                    return Err(changed());
                }
                match self
                    .client
                    .remove_exact(target.id(), &c.id, STOP_TIMEOUT_SECS)
                    .await
                {
                    Err(DockerError::Changed { .. }) => return Err(changed()),
                    other => other?,
                }
            }
            (Operation::RemoveVolume, TargetKind::Volume) => {
                let volumes = self.client.volumes().await?;
                let v = volumes
                    .iter()
                    .find(|v| v.name == target.id())
                    .ok_or_else(|| {
                        BackendError::new(FailureClass::Gone, format!("{target} does not exist"))
                    })?;
                if volume_digest(v) != approved {
                    return Err(changed());
                }
                self.client.remove_volume(target.id()).await?;
            }
            _ => return Err(BackendError::unsupported(op)),
        }
        // Made only once the call returned: a journaled handle is a finished call.
        Ok(TaskHandle::new(format!("docker:{op}:{target}")))
    }

    async fn wait_task(&self, _task: &TaskHandle) -> Result<u32, BackendError> {
        Ok(0)
    }

    async fn task_status_once(&self, task: &TaskHandle) -> Result<TaskState, BackendError> {
        if task.as_str().starts_with("docker:") {
            Ok(TaskState::Succeeded { warnings: 0 })
        } else {
            Ok(TaskState::Unknown)
        }
    }
}
