//! Async Proxmox VE API client: token auth, TLS pinning, tasks, typed errors, retries.
//!
//! [`PveClient`] speaks the subset of the PVE HTTP API (`/api2/json`) that castellan's agent
//! needs: guest listing, status, config read and digest-guarded update, pending changes,
//! power actions, deletion, backups, storage content and volume removal, and task polling.
//!
//! What it guarantees:
//!
//! - Every request is described by a [`RequestSpec`] built in [`request`] and sent by one
//!   function; [`request::request_catalog`] enumerates them all so tests can check them
//!   against the PVE API schema.
//! - Lock conflicts (`CT is locked (backup)`, `can't lock file ... got timeout`) are
//!   retried with capped exponential backoff and jitter ([`RetryPolicy`]). Transport failures
//!   are retried only for GETs: a POST that timed out may have been carried out.
//! - A config changed behind our back is [`Error::DigestMismatch`], a vanished guest
//!   [`Error::NotFound`]; neither is retried.
//! - The token secret appears only in the `Authorization` header: never in `Debug`,
//!   `Display`, logs or errors.
//!
//! [`PveBackend`] is the agent's [`castellan_backend::Backend`] over this client: it
//! reads a guest's configuration ([`pveconf`]), encodes each operation as the node's
//! request, maps the node's task types and errors. It knows nothing about desired state,
//! plans or signatures.

mod backend;
mod client;
mod error;
mod lenient;
pub mod pveconf;
pub mod request;
mod retry;
mod tls;
mod token;
mod types;
mod upid;

pub use backend::PveBackend;
pub use castellan_core::model::GuestKind;
pub use client::{ClientConfig, PveClient};
pub use error::Error;
pub use request::{
    DeleteOptions, Method, PowerAction, RequestSpec, ShutdownOptions, request_catalog,
};
pub use retry::RetryPolicy;
pub use tls::{Fingerprint, TlsMode, client_config as tls_client_config};
pub use token::ApiToken;
pub use types::{
    BackupVolume, ConfigUpdate, GuestConfig, GuestStatus, GuestSummary, PendingItem,
    StorageContentEntry, TaskOk, TaskStatus, TaskSummary, Version, WaitOptions,
};
pub use upid::Upid;
