//! The hub's storage: one trait ([`HubStore`]), one backend per database.
//!
//! The hub is stateless over its store: every request reads what it needs from here, so
//! several hub processes can share one database. Tokens are stored as SHA-256 hashes
//! only; documents, ops and reports are stored as received (after validation).
//!
//! Every method is one transaction: a reader never sees half of a write, and a hub killed
//! mid-write leaves the database as it was before the write or after it.

use std::future::Future;

use jiff::Timestamp;
use serde::Serialize;

use crate::token::TokenHash;

pub mod postgres;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Times are stored as milliseconds since the epoch.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A stored time, checked.
pub(crate) fn ts(v: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(v)
        .map_err(|e| StoreError::Backend(format!("stored time {v} out of range: {e}")))
}

/// An optional stored time, checked.
pub(crate) fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    v.map(ts).transpose()
}

/// A stored count, sequence or revision number, checked.
pub(crate) fn num(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("stored number {v} is negative")))
}

/// A number for a database that counts in `i64` (saturating: nothing real gets there).
pub(crate) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// How often `last_seen` is written for a host that keeps calling: often enough for a
/// fleet view, rarely enough that idle long-polls do not turn into a write stream.
pub(crate) const SEEN_GRANULARITY_MS: i64 = 5_000;

/// Most distinct audit problems kept per host: past this, further sightings of known
/// problems are still counted but new ones are not stored (the host is already flagged;
/// an agent cannot grow the hub's database by inventing problems).
pub const MAX_PROBLEMS_PER_HOST: i64 = 100;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A desired-state write based on a revision that is no longer the latest.
    #[error(
        "revision conflict: the latest revision of {host} is {current}, the write was based on {based_on}"
    )]
    Conflict {
        /// The host.
        host: String,
        /// The latest revision now.
        current: u64,
        /// The revision the writer had read.
        based_on: u64,
    },
    /// An enrolment token that is unknown, used, expired or for another host (one
    /// answer for all four, so a guesser learns nothing).
    #[error("enrolment refused: the token is unknown, already used, expired or for another host")]
    EnrolRefused,
    /// Something named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Something to be created exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The database failed or holds something this version cannot read.
    #[error("hub database: {0}")]
    Backend(String),
}

/// Something another hub process changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something for this host (a revision, an op).
    Host(String),
    /// Anything: notifications may have been missed.
    All,
}

/// A desired-state revision as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// The host it is for.
    pub host: String,
    /// 1, 2, 3, ... per host.
    pub revision: u64,
    /// The `desired.toml` text, validated when written.
    pub document: String,
    /// The operator who wrote it.
    pub author: String,
    /// When.
    pub created_at: Timestamp,
}

/// An acceptance report of the host-service ledger, as pushed to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerReport {
    /// 1, 2, 3, ...
    pub number: u64,
    /// The report (JSON).
    pub document: String,
    /// The operator who pushed it.
    pub author: String,
    /// When.
    pub created_at: Timestamp,
}

/// A revision without its document, for history listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionMeta {
    /// The revision number.
    pub revision: u64,
    /// The operator who wrote it.
    pub author: String,
    /// When.
    pub created_at: Timestamp,
    /// SHA-256 of the document, hex.
    pub sha256: String,
}

/// A host as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    /// The host's node name.
    pub host: String,
    /// When its credential was issued (`None`: never enrolled).
    pub enrolled_at: Option<Timestamp>,
    /// When its credential was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When it last called the hub.
    pub last_seen: Option<Timestamp>,
    /// Its latest desired revision.
    pub desired_revision: Option<u64>,
    /// Its latest report (JSON as received and validated), and when it came.
    pub report: Option<(Timestamp, String)>,
    /// The last audit record verified.
    pub audit_seq: Option<u64>,
    /// How many audit problems are recorded.
    pub audit_problems: usize,
}

/// An audit problem as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAuditProblem {
    /// `gap`, `fork`, `rewind` or `invalid`.
    pub kind: String,
    /// The record concerned.
    pub seq: u64,
    /// In words.
    pub detail: String,
    /// First seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
    /// How many times.
    pub count: u64,
}

/// A signed op relayed to a host. The hub stores and forwards it; only the host verifies
/// and decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayedOp {
    /// Per-hub sequence number, increasing.
    pub id: u64,
    /// The host it is for.
    pub host: String,
    /// The op file's bytes, as signed.
    pub op: Vec<u8>,
    /// Its signatures (armored SSHSIG), in order.
    pub sigs: Vec<Vec<u8>>,
    /// The operator who uploaded it.
    pub submitted_by: String,
    /// When.
    pub submitted_at: Timestamp,
    /// When the host took it (`None`: not yet).
    pub delivered_at: Option<Timestamp>,
}

/// The hub's storage. Implementations are cheap to clone (a handle to a pool or a
/// connection) and every method is one transaction.
pub trait HubStore: Clone + Send + Sync + 'static {
    /// Changes made by other hub processes sharing the database (`None`: this store is
    /// not shared). The hub wakes the long-polls of each host named.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// The database's identity: random, made when the database was, shared by every hub
    /// process using it (32 hex digits).
    fn hub_id(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Records a one-time enrolment token for `host`, valid until `expires_at`.
    fn create_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Redeems an enrolment token for `host` (once, before it expires) and sets the
    /// host's credential to `credential`, replacing (and so revoking) any earlier one.
    fn redeem_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        credential: TokenHash,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The host a (non-revoked) credential belongs to, noting that it was seen `now`.
    fn host_for_credential(
        &self,
        hash: TokenHash,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Revokes a host's credential: its next request is refused.
    fn revoke_host(
        &self,
        host: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an operator token named `name` (refused if the name is taken).
    fn create_operator_token(
        &self,
        name: &str,
        hash: TokenHash,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The operator a (non-revoked) token belongs to.
    fn operator_for_token(
        &self,
        hash: TokenHash,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Keeps `document` (an acceptance report of the host-service ledger, checked by the
    /// caller) as the latest, pushed by `author`; returns its number (1, 2, ...). Earlier
    /// ones are kept.
    fn put_ledger_report(
        &self,
        document: &str,
        author: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The latest ledger report, if any was pushed.
    fn latest_ledger_report(
        &self,
    ) -> impl Future<Output = Result<Option<LedgerReport>, StoreError>> + Send;

    /// Revokes an operator's token.
    fn revoke_operator(
        &self,
        name: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends a desired-state revision for `host` if its latest revision is still
    /// `based_on` (0: none yet); returns the new revision's number.
    fn put_revision(
        &self,
        host: &str,
        document: &str,
        author: &str,
        based_on: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The latest revision for `host`.
    fn latest_revision(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;

    /// The latest revision for `host` if it is newer than `after`: what a long-poll
    /// asks, so an agent that is up to date costs no document read.
    fn revision_after(
        &self,
        host: &str,
        after: u64,
    ) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;

    /// One revision for `host`.
    fn revision(
        &self,
        host: &str,
        revision: u64,
    ) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;

    /// The newest `limit` revisions for `host`, newest first.
    fn history(
        &self,
        host: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RevisionMeta>, StoreError>> + Send;

    /// Replaces the host's latest report.
    fn put_report(
        &self,
        host: &str,
        report: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every host the hub knows (enrolled, or given a revision or token), by name.
    fn hosts(&self) -> impl Future<Output = Result<Vec<HostRecord>, StoreError>> + Send;

    /// One host.
    fn host(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Option<HostRecord>, StoreError>> + Send;

    /// Stores a signed op for `host`; returns its id.
    fn submit_op(
        &self,
        host: &str,
        op: &[u8],
        sigs: &[Vec<u8>],
        submitted_by: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The ops for `host` with an id above `after`, oldest first (at most `limit`).
    fn ops_after(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RelayedOp>, StoreError>> + Send;

    /// The newest ops for `host`, newest first (at most `limit`); with `text`, only those
    /// whose op file is exactly that text (copies of one op relayed with signatures).
    fn ops_newest(
        &self,
        host: &str,
        text: Option<&[u8]>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RelayedOp>, StoreError>> + Send;

    /// The last audit record verified for `host`: `(seq, hash)`.
    fn audit_head(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send;

    /// Appends verified audit records for `host` if its head is still `held_seq` (0:
    /// none); [`StoreError::Conflict`] if another upload moved it meanwhile.
    fn append_audit(
        &self,
        host: &str,
        held_seq: u64,
        records: Vec<crate::audit::VerifiedRecord>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` of `host`'s audit records after `after`, as export lines.
    fn audit_lines(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Records a problem with `host`'s uploads (the same kind at the same record is
    /// counted, not repeated).
    fn flag_audit(
        &self,
        host: &str,
        kind: &str,
        seq: u64,
        detail: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts `host`'s audit chain afresh (a host reinstalled, or restarted with
    /// `--accept-state-loss`): its verified records move to an archive, kept, and its
    /// problems are cleared; its next upload starts at record 1. Returns how many records
    /// were archived. An administrator's act on the hub's database, never an API call.
    fn reset_audit(
        &self,
        host: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every problem recorded for `host`, oldest first.
    fn audit_problems(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<StoredAuditProblem>, StoreError>> + Send;

    /// Notes that `host` has taken every op up to `upto`.
    fn mark_delivered(
        &self,
        host: &str,
        upto: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
