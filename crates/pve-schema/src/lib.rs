//! Proxmox VE API parameter schema (apidata format) and validator with PVE's own error texts.
//!
//! The model follows `api-viewer/apidata.js` of pve-docs: a map of paths to HTTP methods, each
//! with a `parameters` object schema. [`Schema::validate`] checks a request's parameters (all
//! strings, as they arrive form- or query-encoded on a real node) the way
//! `PVE::JSONSchema::validate` does, and reports errors with the same texts.
//!
//! [`embedded()`] is a hand-maintained subset covering exactly what `pvesim` serves, so the
//! simulator works without the full schema file; a test keeps it in step with the real API.
//!
//! This crate does no I/O: it parses strings and validates maps.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod embedded;
mod formats;
mod model;
mod pattern;
mod validate;

pub use embedded::embedded;
pub use formats::parse_size;
pub use model::{Format, Method, ObjectSchema, PropSchema, Schema};
pub use validate::{
    ParamErrors, Resolved, indexed_base, parse_boolean, split_list, validate_resolved,
};

/// Errors loading a schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The text is not JSON in the apidata shape (`{"paths": {path: {METHOD: {...}}}}`).
    #[error("invalid schema json: {0}")]
    Json(#[from] serde_json::Error),
    /// A path template is malformed.
    #[error("invalid path template '{0}'")]
    Path(String),
}
