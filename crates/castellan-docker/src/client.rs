//! The Engine API calls castellan makes, over bollard, with the ownership rule checked
//! before every call that changes anything.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use thiserror::Error;

use crate::{OWNER_LABEL, SPEC_LABEL};
use castellan_core::container::{ContainerSpec, Restart, SpecError, valid_name};

/// Seconds an Engine API request may take: longer than the longest clean stop castellan
/// asks for (a destroy's 60 s), so a stop that uses its whole grace period is never
/// mistaken for a lost answer.
const REQUEST_TIMEOUT_SECS: u64 = 180;

/// Why a Docker call failed or was refused.
#[derive(Debug, Error)]
pub enum DockerError {
    /// The engine could not be reached or answered with an error.
    #[error("docker engine: {0}")]
    Engine(#[from] bollard::errors::Error),
    /// The target exists but castellan did not create it (for this host): never touched.
    #[error(
        "{what} {name} was not created by castellan for {owner}: castellan never changes or removes it"
    )]
    NotOurs {
        /// `container` or `volume`.
        what: &'static str,
        /// Its name.
        name: String,
        /// This host's owner label value.
        owner: String,
    },
    /// Not the container or volume that was observed (or approved): another one has
    /// its name now.
    #[error("{what} {name} is not the one observed: another one has taken its name")]
    Changed {
        /// `container` or `volume`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// No such container or volume.
    #[error("{what} {name} does not exist")]
    NotFound {
        /// `container` or `volume`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The declaration is refused.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// A volume a container mounts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolumeRef {
    /// The volume's name (a random hex name for an anonymous volume).
    pub name: String,
    /// Where it is mounted.
    pub destination: String,
    /// Whether no name was declared for it (Docker made it for the image's `VOLUME`, or
    /// for `-v /path`).
    pub anonymous: bool,
}

/// A container as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    /// Its id.
    pub id: String,
    /// Its name (without Docker's leading `/`).
    pub name: String,
    /// Whether castellan created it for this host.
    pub ours: bool,
    /// The declaration hash it was created from (castellan's containers only).
    pub spec_hash: Option<String>,
    /// Whether it runs (running, restarting or paused).
    pub running: bool,
    /// The state word Docker reports (`created`, `running`, `exited`, ...).
    pub state: String,
    /// The volumes it mounts: while there is one, removing it is destructive.
    pub volumes: Vec<VolumeRef>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl ObservedContainer {
    /// Whether it holds data beyond what its declaration makes again: any volume.
    pub fn holds_data(&self) -> bool {
        !self.volumes.is_empty()
    }

    /// Whether it mounts an anonymous volume: what re-creating it would lose (named
    /// volumes are mounted again by name).
    pub fn holds_anonymous(&self) -> bool {
        self.volumes.iter().any(|v| v.anonymous)
    }
}

/// A volume as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVolume {
    /// Its name.
    pub name: String,
    /// Whether castellan created it for this host.
    pub ours: bool,
    /// When the engine created it (a volume removed and made again under the same name
    /// is another volume).
    pub created_at: String,
}

/// The Engine API client for one host's agent.
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    owner: String,
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerClient {
    /// Connects to the engine at the Unix socket `socket` (Docker's default socket when
    /// `None`), negotiating the API version down to the engine's, for host `owner`.
    pub async fn connect(socket: Option<&Path>, owner: &str) -> Result<Self, DockerError> {
        let docker = match socket {
            Some(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )?,
            None => Docker::connect_with_unix(
                "/var/run/docker.sock",
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )?,
        };
        let docker = docker.negotiate_version().await?;
        Ok(DockerClient {
            docker,
            owner: owner.to_owned(),
        })
    }

    /// This host's owner label value.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn ours(&self, labels: Option<&HashMap<String, String>>) -> bool {
        labels
            .and_then(|l| l.get(OWNER_LABEL))
            .is_some_and(|v| *v == self.owner)
    }

    /// Every container on the host (castellan's and others', running or not).
    pub async fn list(&self) -> Result<Vec<ObservedContainer>, DockerError> {
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await?;
        let mut out = Vec::with_capacity(listed.len());
        for c in listed {
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            let state = c.state.unwrap_or(ContainerSummaryStateEnum::EMPTY);
            let volumes = c
                .mounts
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.typ.as_deref() == Some("volume"))
                .map(|m| {
                    let name = m.name.unwrap_or_default();
                    VolumeRef {
                        // Docker names an anonymous volume by 64 hex digits.
                        anonymous: name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                        name,
                        destination: m.destination.unwrap_or_default(),
                    }
                })
                .collect();
            out.push(ObservedContainer {
                id: c.id.unwrap_or_default(),
                ours: self.ours(c.labels.as_ref()),
                spec_hash: c.labels.as_ref().and_then(|l| l.get(SPEC_LABEL)).cloned(),
                running: matches!(
                    state,
                    ContainerSummaryStateEnum::RUNNING
                        | ContainerSummaryStateEnum::RESTARTING
                        | ContainerSummaryStateEnum::PAUSED
                ),
                state: state.to_string(),
                volumes,
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One container by name; `None` when there is none.
    pub async fn observe(&self, name: &str) -> Result<Option<ObservedContainer>, DockerError> {
        Ok(self.list().await?.into_iter().find(|c| c.name == name))
    }

    /// Checks that container `name` exists and is castellan's for this host, and returns
    /// its id: every later call on it names the id, so a container put in its place
    /// meanwhile (under the same name) is never the one acted on.
    async fn own_container(&self, name: &str) -> Result<String, DockerError> {
        if !valid_name(name) {
            return Err(SpecError::Name(name.to_owned()).into());
        }
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let labels = c.config.and_then(|cfg| cfg.labels);
                match c.id {
                    Some(id) if self.ours(labels.as_ref()) => Ok(id),
                    _ => Err(DockerError::NotOurs {
                        what: "container",
                        name: name.to_owned(),
                        owner: self.owner.clone(),
                    }),
                }
            }
            Err(e) if is_not_found(&e) => Err(DockerError::NotFound {
                what: "container",
                name: name.to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the declared container (not started), labelled as castellan's with its
    /// declaration's hash; its named volumes are created first, labelled too, where they
    /// do not exist yet. A declared volume that exists but is not castellan's is refused
    /// (nothing is created): mounting it would hand someone else's data to the container.
    /// Returns its id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        spec.validate()?;
        for volume in spec.volumes.keys() {
            match self.docker.inspect_volume(volume).await {
                Ok(v) if v.labels.get(OWNER_LABEL) == Some(&self.owner) => {}
                Ok(_) => {
                    return Err(DockerError::NotOurs {
                        what: "volume",
                        name: volume.clone(),
                        owner: self.owner.clone(),
                    });
                }
                Err(e) if is_not_found(&e) => {
                    self.docker
                        .create_volume(VolumeCreateRequest {
                            name: Some(volume.clone()),
                            labels: Some(HashMap::from([(
                                OWNER_LABEL.to_owned(),
                                self.owner.clone(),
                            )])),
                            ..Default::default()
                        })
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(OWNER_LABEL.to_owned(), self.owner.clone());
        labels.insert(SPEC_LABEL.to_owned(), spec.spec_hash());
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &spec.ports {
            port_bindings
                .entry(format!("{}/{}", p.container_port, p.protocol))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(p.host_port.to_string()),
                });
        }
        let restart = match spec.restart {
            Restart::No => RestartPolicyNameEnum::NO,
            Restart::Always => RestartPolicyNameEnum::ALWAYS,
            Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
            Restart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: (!port_bindings.is_empty())
                .then(|| port_bindings.keys().cloned().collect()),
            host_config: Some(HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(restart),
                    maximum_retry_count: None,
                }),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                binds: (!spec.volumes.is_empty()).then(|| {
                    spec.volumes
                        .iter()
                        .map(|(name, path)| format!("{name}:{path}"))
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await?;
        Ok(created.id)
    }

    /// Starts castellan's container `name`.
    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.own_container(name).await?;
        self.docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
        Ok(())
    }

    /// Stops castellan's container `name` cleanly: SIGTERM, then SIGKILL after
    /// `timeout_secs`.
    pub async fn stop(&self, name: &str, timeout_secs: u32) -> Result<(), DockerError> {
        let id = self.own_container(name).await?;
        self.stop_id(&id, timeout_secs).await
    }

    async fn stop_id(&self, id: &str, timeout_secs: u32) -> Result<(), DockerError> {
        let stopped = self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(i32::try_from(timeout_secs).unwrap_or(i32::MAX)),
                    ..Default::default()
                }),
            )
            .await;
        match stopped {
            // 304: it was not running.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Removes castellan's container `name`, stopped cleanly first (SIGTERM, SIGKILL after
    /// `stop_timeout_secs`), keeping its volumes: a volume goes only by
    /// [`DockerClient::remove_volume`], a signed operation of its own. The caller decides,
    /// by [`ObservedContainer::holds_data`] and the gate, whether it may.
    pub async fn remove(&self, name: &str, stop_timeout_secs: u32) -> Result<(), DockerError> {
        let id = self.own_container(name).await?;
        self.remove_id(&id, stop_timeout_secs).await
    }

    /// Stops (cleanly first) and removes the container `id`, keeping its volumes.
    async fn remove_id(&self, id: &str, stop_timeout_secs: u32) -> Result<(), DockerError> {
        self.stop_id(id, stop_timeout_secs).await?;
        self.docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: false,
                    v: false,
                    link: false,
                }),
            )
            .await?;
        Ok(())
    }

    /// Removes castellan's container `name` like [`DockerClient::remove`], but only if it
    /// is still the container with id `expected` (the one observed and, for a signed
    /// operation, approved): one put in its place under the same name is refused
    /// ([`DockerError::Changed`]) and nothing is stopped or removed. The id is checked
    /// before the stop and every call after names it.
    pub async fn remove_exact(
        &self,
        name: &str,
        expected: &str,
        stop_timeout_secs: u32,
    ) -> Result<(), DockerError> {
        let id = self.own_container(name).await?;
        if id != expected {
            return Err(DockerError::Changed {
                what: "container",
                name: name.to_owned(),
            });
        }
        self.remove_id(&id, stop_timeout_secs).await
    }

    /// Whether image `image` is on this host (castellan never pulls).
    pub async fn has_image(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every volume on the host, castellan's and others'.
    pub async fn volumes(&self) -> Result<Vec<ObservedVolume>, DockerError> {
        let listed = self.docker.list_volumes(None::<ListVolumesOptions>).await?;
        let mut out: Vec<ObservedVolume> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ObservedVolume {
                ours: v.labels.get(OWNER_LABEL).is_some_and(|o| *o == self.owner),
                name: v.name,
                created_at: v.created_at.unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes castellan's volume `name` (refused while a container uses it, by the
    /// engine).
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        if !valid_name(name) {
            return Err(SpecError::Name(name.to_owned()).into());
        }
        let volume = match self.docker.inspect_volume(name).await {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => {
                return Err(DockerError::NotFound {
                    what: "volume",
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if volume.labels.get(OWNER_LABEL) != Some(&self.owner) {
            return Err(DockerError::NotOurs {
                what: "volume",
                name: name.to_owned(),
                owner: self.owner.clone(),
            });
        }
        self.docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await?;
        Ok(())
    }
}
