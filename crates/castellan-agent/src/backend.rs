//! The agent's view of what it manages is the [`castellan_backend::Backend`] seam; this
//! module re-exports it so the engine, the gatekeeper and their tests name one place.

pub use castellan_backend::{
    Backend, BackendError, FailureClass, GuestBackend, Observed, TaskHandle, TaskState,
    look_at_guest,
};
