//! castellan's Docker Engine backend: the Engine API client castellan uses to observe
//! and carry out operations on containers and volumes, with the ownership rule built in;
//! the container planner; and the [`DockerBackend`] the agent's gate drives.
//!
//! - **Ownership.** Everything castellan creates carries the label
//!   [`OWNER_LABEL`]` = <owner>` (the agent's host name) and the hash of the declaration
//!   it was made from ([`SPEC_LABEL`]). A container or volume without this host's owner
//!   label is observed and reported, and every call that changes or removes it is
//!   refused here, before anything is sent ([`DockerError::NotOurs`]).
//! - **What holds data.** An observed container lists the volumes it mounts, named and
//!   anonymous: removing such a container, or a volume, is destructive (a signed op);
//!   re-creating a container with no volume loses nothing its declaration does not make
//!   again.
//! - **Drift.** A container is compared with its declaration by the declaration's hash,
//!   kept in its labels at creation (Docker cannot change a container's configuration in
//!   place, so drift means re-creation), and by its run state.
//!
//! [`plan`] is the pure container planner: declared containers against observed ones, as
//! operations of the operation table, each classified by its row and by what was observed
//! of its target. [`DockerBackend`] is the `castellan_backend::Backend` the agent's
//! gatekeeper carries signed operations out through (`destroy` of a container,
//! `remove_volume`), with the state digest an op on a container or volume is bound to.

mod backend;
mod client;
pub mod plan;

pub use backend::{DockerBackend, STOP_TIMEOUT_SECS, container_digest, volume_digest};
pub use castellan_core::container::{ContainerSpec, PortMapping, Restart, SpecError};
pub use client::{DockerClient, DockerError, ObservedContainer, ObservedVolume, VolumeRef};
pub use plan::{ContainerPlan, Notice, Step, plan, plan_desired};

/// The label that marks what castellan created, and for which host.
pub const OWNER_LABEL: &str = "io.castellan.owner";
/// The label holding the hash of the declaration a container was created from.
pub const SPEC_LABEL: &str = "io.castellan.spec";
