//! The pure core of castellan: the desired and actual state of a node's guests, the
//! normalisation that makes a faithful Proxmox VE round-trip compare equal, and the
//! planner that turns the difference into benign actions; the signed-operation format,
//! the classifier and the reversibility gate that keep destructive actions behind an
//! operator's signature.
//!
//! Nothing in this crate does I/O or reads a clock: every function takes its inputs as
//! parameters and returns what to do, so the planner can be tested exhaustively and
//! driven by the agent (see `ARCHITECTURE.md`).

pub mod classify;
pub mod compare;
pub mod container;
pub mod decommission;
pub mod desired;
pub mod gate;
pub mod model;
pub mod normalize;
pub mod op;
pub mod operation;
pub mod plan;
pub mod printable;
pub mod recovery;
pub mod role;
pub mod target;
pub mod units;
pub mod wipe;

pub use desired::{DesiredError, parse_desired};
pub use model::{
    ActualGuest, ActualRun, ActualSpec, ActualState, DesiredGuest, DesiredRun, DesiredState,
    GuestKind, GuestSource, RestartPolicy, Vmid,
};
pub use normalize::Normalizers;
pub use operation::{OpSpec, Operation};
pub use plan::{Action, Candidate, CandidateKind, Notice, NoticeKind, Plan, plan};
pub use printable::Printable;
pub use role::{RejectReason, Role};
pub use target::{Target, TargetKind};
