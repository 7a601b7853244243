//! The store's typed errors.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::journal::{IntentId, IntentState};

/// Everything that can go wrong in the store. Messages are lower-case and name what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory is missing or not a directory. The store never creates it: a
    /// mistyped path must not silently start an empty nonce store.
    #[error("store data directory {path} is not usable: {source}")]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// Why it is not usable.
        #[source]
        source: std::io::Error,
    },
    /// [`Store::open_readonly`](crate::Store::open_readonly) found no database.
    #[error("store database {path} does not exist")]
    NotFound {
        /// The database file.
        path: PathBuf,
    },
    /// SQLite could not open or set up the database file.
    #[error("cannot open store database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is an SQLite database of some other application.
    #[error("{path} is not a castellan store database (sqlite application id {found:#010x})")]
    NotCastellan {
        /// The database file.
        path: PathBuf,
        /// The application id found in its header.
        found: i32,
    },
    /// The database was written by a newer castellan. Downgrading is refused: the older
    /// code cannot know what the newer schema means.
    #[error(
        "store database {path} has schema version {found}, newer than version {supported} \
         that this castellan knows; refusing to open it (downgrade is not supported)"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest schema version this code knows.
        supported: u32,
    },
    /// A read-only open found a database that was never initialised.
    #[error("store database {path} has no schema (it was never opened by the agent)")]
    Uninitialized {
        /// The database file.
        path: PathBuf,
    },
    /// An embedded migration failed; its transaction was rolled back.
    #[error("cannot migrate store database to schema version {version}: {source}")]
    Migration {
        /// The version the migration would have reached.
        version: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An SQLite statement failed.
    #[error("store database failed while {what}: {source}")]
    Sqlite {
        /// What the store was doing.
        what: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value could not be read back (it was not written by this store, or was
    /// edited behind its back).
    #[error("store database holds an unreadable value: {0}")]
    Corrupt(String),
    /// A write was attempted on a store opened with
    /// [`Store::open_readonly`](crate::Store::open_readonly).
    #[error("store was opened read-only; cannot {0}")]
    ReadOnly(&'static str),
    /// The op's nonce was already consumed: the op is a replay. Nothing was written.
    #[error("nonce {nonce:?} was already consumed")]
    Replayed {
        /// The nonce.
        nonce: String,
    },
    /// The op's validity window ended before the effective (never-decreasing) time.
    /// Nothing was written.
    #[error("nonce {nonce:?} belongs to an op that expired at {not_after} (effective time {now})")]
    Expired {
        /// The nonce.
        nonce: String,
        /// The op's `not_after`.
        not_after: Timestamp,
        /// The effective time of the refusal.
        now: Timestamp,
    },
    /// An intent for the same action id exists and forbids another. Nothing was written.
    #[error(
        "action {action_id} already has intent {existing} ({state}); an action id is never \
         executed twice"
    )]
    DuplicateAction {
        /// The action id.
        action_id: String,
        /// The intent that blocks it.
        existing: IntentId,
        /// That intent's state.
        state: IntentState,
    },
    /// A signer set that is not newer than the set in force.
    #[error("signer set version {version} is not newer than the set in force, version {in_force}")]
    StaleSignerSet {
        /// The version offered.
        version: u64,
        /// The version in force.
        in_force: u64,
    },
    /// A [`NewIntent`](crate::NewIntent) that breaks the journal's rules.
    #[error("invalid intent: {0}")]
    InvalidIntent(String),
    /// No intent has this id.
    #[error("no intent with id {0}")]
    UnknownIntent(IntentId),
    /// The journal step is not allowed from the intent's current state.
    #[error("intent {id} cannot go from {from} to {to}")]
    BadTransition {
        /// The intent.
        id: IntentId,
        /// Its current state.
        from: IntentState,
        /// The state asked for.
        to: IntentState,
    },
    /// The audit event handed to a journal step does not describe that step.
    #[error("audit event {got} does not record this journal step (expected {expected})")]
    EventMismatch {
        /// The event kind the step records.
        expected: &'static str,
        /// The event kind given.
        got: &'static str,
    },
    /// Provenance must name an intent for the same guest.
    #[error("provenance for guest {vmid} cannot cite intent {intent}: {detail}")]
    ProvenanceMismatch {
        /// The guest.
        vmid: castellan_core::Vmid,
        /// The intent cited.
        intent: IntentId,
        /// What does not match.
        detail: String,
    },
    /// A value could not be encoded as JSON.
    #[error("cannot encode {what} as json: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the audit export failed.
    #[error("cannot write the audit export: {0}")]
    Export(#[source] std::io::Error),
}

/// Attaches what the store was doing to an SQLite error.
pub(crate) trait SqlContext<T> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { what, source })
    }
}
