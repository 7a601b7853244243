//! The hub's wire types (JSON under `/v1`), shared by the server, the agent and the CLI.
//! Every request body refuses unknown fields: a typo is an error, not a silent no-op.

use serde::{Deserialize, Serialize};

/// The API's version prefix.
pub const API: &str = "/v1";

/// Longest long-poll the hub holds open, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Most ops handed to an agent in one poll.
pub const MAX_OPS_PER_POLL: u32 = 32;

/// `POST /v1/enrol`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The host enrolling (its node name).
    pub host: String,
    /// The one-time enrolment token.
    pub token: String,
}

/// The answer to an enrolment: the host's credential, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    /// The host.
    pub host: String,
    /// Its credential (`cst_host_...`), for every later call.
    pub credential: String,
}

impl std::fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRequest")
            .field("host", &self.host)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for EnrolResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolResponse")
            .field("host", &self.host)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// `PUT /v1/hosts/{host}/desired`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutDesired {
    /// The `desired.toml` text.
    pub document: String,
    /// The revision the writer read and based this one on (0: the host has none yet).
    /// A write based on anything but the latest is refused with 409.
    pub based_on: u64,
}

/// The answer to a desired-state write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutDesiredResponse {
    /// The host.
    pub host: String,
    /// The revision now in force.
    pub revision: u64,
    /// False when the document equals the latest revision's: nothing was written.
    pub changed: bool,
}

/// A desired-state revision as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DesiredRevision {
    /// The revision number.
    pub revision: u64,
    /// The `desired.toml` text.
    pub document: String,
    /// Who wrote it.
    pub author: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// A signed op handed to an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpDelivery {
    /// The hub's id for it; the agent acknowledges up to an id.
    pub id: u64,
    /// The op file's text, as signed.
    pub op: String,
    /// Its armored signatures.
    pub sigs: Vec<String>,
    /// Who relayed it (for the agent's log; trusted for nothing).
    pub submitted_by: String,
}

/// The answer to `GET /v1/agent/poll` when something is new.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PollResponse {
    /// A revision newer than the one the agent has, if any.
    pub desired: Option<DesiredRevision>,
    /// Ops newer than the agent's cursor, oldest first.
    pub ops: Vec<OpDelivery>,
}

/// `POST /v1/agent/ops/ack`: every op up to `upto` is in the agent's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpAck {
    /// The highest op id taken.
    pub upto: u64,
}

/// `POST /v1/hosts/{host}/ops`: a signed op to relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitOp {
    /// The op file's text, as signed.
    pub op: String,
    /// Its armored signatures (at least one).
    pub sigs: Vec<String>,
}

/// The answer to an op upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubmitOpResponse {
    /// The hub's id for it.
    pub id: u64,
    /// The host it will be delivered to.
    pub host: String,
}

/// A destructive action waiting for signatures, as an agent reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PendingReport {
    /// The payload's file name in the agent's `pending/`.
    pub name: String,
    /// The unsigned op text an operator signs.
    pub payload: String,
    /// What the action takes with it beyond what the op's parameters name (a guest's
    /// disks with their sizes, its HA entry, its backup and replication jobs), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub takes: Vec<String>,
}

/// One field of a declared guest beside what the node has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GuestField {
    /// `exists`, `run`, `cores`, `memory`, `description`, `tags`, `disk rootfs`, ...
    pub field: String,
    /// What the desired state declares.
    pub desired: String,
    /// What the node has.
    pub actual: String,
    /// Whether the agent's plan leaves it as it is.
    pub matches: bool,
}

/// A declared guest as the agent last saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GuestReport {
    /// `lxc/101`.
    pub target: String,
    /// Field by field, declared beside observed.
    pub fields: Vec<GuestField>,
    /// Its last reconcile failed with this; the agent retries it with back-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Queued, in flight or backing off.
    #[serde(default)]
    pub busy: bool,
}

/// `POST /v1/agent/report`: where the host stands after a pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// The agent's version.
    pub agent_version: String,
    /// The desired revision the agent is working from (`None`: a local file, or none).
    pub applied_revision: Option<u64>,
    /// Whether the host matches its desired state.
    pub converged: bool,
    /// What is left to do, in words.
    pub plan: Vec<String>,
    /// Destructive actions waiting for signatures.
    pub pending: Vec<PendingReport>,
    /// What failed.
    pub errors: Vec<String>,
    /// Each declared guest, field by field, as last reconciled: those that differ or
    /// failed first, then the rest as far as [`GUESTS_REPORT_BUDGET`] allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestReport>,
    /// Guests that matched and were left out of `guests` to keep the report small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub guests_left_out: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Roughly how many bytes of a report the guests' side-by-side may take (the whole
/// report may take 4 MiB).
pub const GUESTS_REPORT_BUDGET: usize = 2 * 1024 * 1024;

impl GuestReport {
    /// Roughly its size in a report, in bytes.
    pub fn weight(&self) -> usize {
        64 + self.target.len()
            + self.error.as_ref().map_or(0, String::len)
            + self
                .fields
                .iter()
                .map(|f| 48 + f.field.len() + f.desired.len() + f.actual.len())
                .sum::<usize>()
    }

    /// Whether anything about it needs a look (a field that differs, an error).
    pub fn needs_a_look(&self) -> bool {
        self.error.is_some() || self.fields.iter().any(|f| !f.matches)
    }
}

/// How a host stands, as `GET /v1/hosts` reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Working from the latest revision and matching it.
    Converged,
    /// Behind the latest revision, or with work left.
    Drifting,
    /// Destructive actions wait for signatures.
    Pending,
    /// The last report lists errors.
    Error,
    /// Never reported.
    Unknown,
}

impl HostState {
    /// The state's snake_case word, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Converged => "converged",
            HostState::Drifting => "drifting",
            HostState::Pending => "pending",
            HostState::Error => "error",
            HostState::Unknown => "unknown",
        }
    }
}

/// One host in `GET /v1/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostStatus {
    /// The host.
    pub host: String,
    /// Whether it holds a live credential.
    pub enrolled: bool,
    /// When it last called the hub (RFC 3339).
    pub last_seen: Option<String>,
    /// The latest desired revision.
    pub desired_revision: Option<u64>,
    /// The revision its last report says it works from.
    pub applied_revision: Option<u64>,
    /// Summary.
    pub state: HostState,
    /// Actions left.
    pub plan: usize,
    /// Ops waiting for signatures.
    pub pending: usize,
    /// Errors in the last report.
    pub errors: usize,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// The last audit record the hub verified for it.
    pub audit_seq: Option<u64>,
    /// Problems found in its audit uploads (gaps, forks, rewinds).
    pub audit_problems: usize,
}

/// Every 4xx/5xx body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    /// A stable word: `unauthorized`, `invalid`, `conflict`, `not_found`, ...
    pub error: String,
    /// What is wrong, for people.
    pub message: String,
    /// Each problem, where there are several (an invalid desired state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The answer to `PUT /v1/ledger`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutLedgerResponse {
    /// The report's number at the hub (1, 2, ...).
    pub number: u64,
    /// How many acceptance candidates it holds.
    pub candidates: u64,
}

/// A relayed op as `GET /v1/hosts/{host}/ops` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayedOpStatus {
    /// The hub's id for it.
    pub id: u64,
    /// The op file's text.
    pub op: String,
    /// How many signatures came with it.
    pub signatures: usize,
    /// Who relayed it.
    pub submitted_by: String,
    /// When (RFC 3339).
    pub submitted_at: String,
    /// When the host took it (RFC 3339), if it has.
    pub delivered_at: Option<String>,
}

/// Most audit records in one upload or one page.
pub const MAX_AUDIT_BATCH: u32 = 500;

/// A position in a host's audit chain: a record's seq and hash (seq 0 with the genesis
/// hash: no records).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// The record's seq.
    pub seq: u64,
    /// Its hash (lowercase hex SHA-256).
    pub hash: String,
}

/// `POST /v1/agent/audit`: the next records of the agent's chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditUpload {
    /// The agent's chain head now (the batch may stop short of it).
    pub head: AuditHead,
    /// Records in their export form (`castellan audit export`), in order, starting
    /// right after the head the hub holds.
    pub records: Vec<serde_json::Value>,
}

/// What can be wrong with a host's chain as uploaded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuditProblemKind {
    /// Records are missing: the upload starts past the next record the hub expects.
    Gap,
    /// The chain does not extend the head the hub verified (a record links elsewhere,
    /// or the head moved sideways: same seq, another hash).
    Fork,
    /// The host's head moved backwards: its chain is shorter than what the hub verified.
    Rewind,
    /// A record does not verify (its hash does not match its contents, or it is not a
    /// record).
    Invalid,
}

impl AuditProblemKind {
    /// The kind's snake_case word, as the API writes and the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditProblemKind::Gap => "gap",
            AuditProblemKind::Fork => "fork",
            AuditProblemKind::Rewind => "rewind",
            AuditProblemKind::Invalid => "invalid",
        }
    }

    /// The kind a word names.
    pub fn parse(word: &str) -> Option<AuditProblemKind> {
        [Self::Gap, Self::Fork, Self::Rewind, Self::Invalid]
            .into_iter()
            .find(|k| k.as_str() == word)
    }
}

/// A problem the hub found in a host's audit chain (kept; repeated sightings counted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditProblem {
    /// What.
    pub kind: AuditProblemKind,
    /// Where: the record concerned.
    pub seq: u64,
    /// In words.
    pub detail: String,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
    /// How many uploads showed it.
    pub count: u64,
}

/// `GET /v1/hosts/{host}/audit`: a page of the chain the hub holds for a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    /// The last record the hub verified.
    pub verified: AuditHead,
    /// Records after the page's `after`, in their export form.
    pub records: Vec<serde_json::Value>,
    /// Every problem found in the host's uploads.
    pub problems: Vec<AuditProblem>,
}
