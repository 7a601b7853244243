//! The hash-chained audit log: typed past-tense events, their canonical encoding, appends,
//! reads, export and verification. The encoding is specified in the crate docs.

use std::fmt;
use std::io::{BufRead, Write};

use castellan_core::{RejectReason, Target, Vmid};
use jiff::Timestamp;
use rusqlite::Transaction;
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::SqlContext;
use crate::journal::IntentId;
use crate::{Store, StoreError, advance_clock, time};

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened: one past-tense event per gate decision, journal step or agent milestone.
/// Serialized with its snake_case name under the key `"event"`, beside the event's own
/// fields and the common [`AuditFields`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// The agent started (before recovery).
    AgentStarted,
    /// This state began (see [`crate::Epoch`]): no op valid from before `since` is
    /// accepted.
    StateCreated {
        /// The state's id.
        state_id: String,
        /// When it began (RFC 3339).
        since: String,
        /// The state it replaced, when an operator accepted the loss of that one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaced: Option<String>,
    },
    /// An operator started the agent over a data directory that had lost its state
    /// (`--accept-state-loss`): what showed the earlier use.
    StateLossAccepted {
        /// The evidence of earlier use.
        evidence: String,
    },
    /// A provenance record did not hold up when read: it counts for nothing.
    ProvenanceRefused {
        /// What is wrong with it.
        detail: String,
    },
    /// A benign action was allowed without a signature.
    ActionAllowed,
    /// A destructive action is waiting for an operator signature.
    SignaturePending,
    /// A signed op passed every check of the gate (signers in `signer_fingerprints`).
    SignatureAccepted,
    /// A signed op was refused.
    OpRejected {
        /// Why.
        reason: RejectReason,
        /// Human detail (no secrets, no op bodies).
        detail: String,
    },
    /// A signed op's files left the inbox: to `done/` (it executed, or had executed
    /// before and this is a replay) or to `rejected/` (refused for good).
    OpSettled {
        /// The op file's name in the inbox.
        file: String,
        /// `done` or `rejected`.
        to: String,
        /// Why, for people.
        detail: String,
    },
    /// The signer config in force changed (or was first read): `keys` trusted keys.
    SignersLoaded {
        /// How many allowed-signers entries it holds.
        keys: u64,
        /// The set's version (1: the agent's signers.toml; higher: put in force by a
        /// rotation). Absent in records written before rotation existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
    },
    /// A rotation was accepted and its signer set is in force from now on (the keys that
    /// signed it, of both sets, in `signer_fingerprints`).
    SignersRotated {
        /// The new set's version.
        version: u64,
        /// The version it replaced.
        replaces: u64,
        /// SHA-256 of the signed document.
        digest: String,
        /// What changed (keys added and removed, thresholds).
        detail: String,
    },
    /// The signer config became unusable: every destructive op stays pending until it is
    /// fixed; the earlier set is not used.
    SignersRefused {
        /// Why (names the file and line; never a secret).
        detail: String,
    },
    /// An intent was journaled (and its nonce consumed) before dispatch.
    IntentRecorded,
    /// The request was accepted by the node; `upid` is its task, if it made one.
    TaskDispatched {
        /// The task's UPID.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upid: Option<String>,
    },
    /// The action completed successfully.
    ActionSucceeded,
    /// The action failed.
    ActionFailed {
        /// What failed.
        error: String,
    },
    /// The action was rolled back (or abandoned) without completing.
    ActionRolledBack {
        /// Why.
        reason: String,
    },
    /// The agent recorded a guest it created as its own (provenance citing the creating
    /// `intent`): removing it again needs no signature only while that record holds.
    ProvenanceRecorded,
    /// A creation failed and left its target behind: what it made is being removed,
    /// benign because the intent that made it is the one undoing it (`intent`).
    UndoStarted {
        /// The creation's failure.
        reason: String,
    },
    /// The safety backup of a signed op's target was taken, waited for and found on its
    /// storage, before the op was sent: what the op removes is in `volume`.
    BackupTaken {
        /// The backup's volume id.
        volume: String,
        /// Its size in bytes, as the storage lists it.
        size: u64,
    },
    /// A storage wipe removed one of its approved volumes (the intent in `intent`).
    VolumeRemoved {
        /// The volume id.
        volume: String,
        /// Its size in bytes, as approved and seen right before.
        size: u64,
        /// It was already gone when the op looked again (removed by an attempt of the same
        /// op cut short before it was recorded, or by someone else).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        found_gone: bool,
    },
    /// A decommission destroyed one of its approved guests (named in `target`; the intent
    /// in `intent`).
    GuestDestroyed {
        /// The safety backup taken of it first, if one was (`None`: waived).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup: Option<String>,
        /// It was already gone when the op looked again (destroyed by an attempt of the
        /// same op cut short before it was recorded, or by someone else).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        found_gone: bool,
    },
    /// A signed op was carried out without a safety backup: its signed parameters waive
    /// it (`backup=0`), or its target's backend keeps none (`detail` says which).
    BackupWaived {
        /// Why no backup was taken.
        detail: String,
    },
    /// Recovery at start-up took up an in-flight intent (named in `intent`).
    RecoveryResumed,
    /// Recovery could not tell what became of an in-flight intent and holds it for an
    /// operator: nothing more is attempted on its guest until one settles it.
    IntentHeld {
        /// What was ambiguous.
        reason: String,
    },
    /// An operator settled a held intent by hand.
    IntentResolved {
        /// The outcome recorded (`succeeded`, `failed`, `rolled_back`).
        outcome: String,
        /// The operator's reason.
        reason: String,
    },
    /// A new desired state came in and is now in force (`source`: `hub revision 7`).
    DesiredStateReceived {
        /// Where it came from.
        source: String,
    },
    /// A desired state was refused (invalid, or for another node); the previous one
    /// stays in force.
    DesiredStateRefused {
        /// Where it came from.
        source: String,
        /// Every problem found.
        detail: String,
    },
    /// Recovery at start-up finished.
    RecoveryCompleted {
        /// How many in-flight intents it handled.
        intents: u64,
    },
}

impl AuditEvent {
    /// The event's snake_case name, as stored under `"event"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::AgentStarted => "agent_started",
            AuditEvent::StateCreated { .. } => "state_created",
            AuditEvent::StateLossAccepted { .. } => "state_loss_accepted",
            AuditEvent::ProvenanceRefused { .. } => "provenance_refused",
            AuditEvent::ActionAllowed => "action_allowed",
            AuditEvent::SignaturePending => "signature_pending",
            AuditEvent::SignatureAccepted => "signature_accepted",
            AuditEvent::OpRejected { .. } => "op_rejected",
            AuditEvent::OpSettled { .. } => "op_settled",
            AuditEvent::SignersLoaded { .. } => "signers_loaded",
            AuditEvent::SignersRefused { .. } => "signers_refused",
            AuditEvent::SignersRotated { .. } => "signers_rotated",
            AuditEvent::IntentRecorded => "intent_recorded",
            AuditEvent::TaskDispatched { .. } => "task_dispatched",
            AuditEvent::ActionSucceeded => "action_succeeded",
            AuditEvent::ActionFailed { .. } => "action_failed",
            AuditEvent::ActionRolledBack { .. } => "action_rolled_back",
            AuditEvent::ProvenanceRecorded => "provenance_recorded",
            AuditEvent::UndoStarted { .. } => "undo_started",
            AuditEvent::BackupTaken { .. } => "backup_taken",
            AuditEvent::BackupWaived { .. } => "backup_waived",
            AuditEvent::VolumeRemoved { .. } => "volume_removed",
            AuditEvent::GuestDestroyed { .. } => "guest_destroyed",
            AuditEvent::RecoveryResumed => "recovery_resumed",
            AuditEvent::IntentHeld { .. } => "intent_held",
            AuditEvent::IntentResolved { .. } => "intent_resolved",
            AuditEvent::RecoveryCompleted { .. } => "recovery_completed",
            AuditEvent::DesiredStateReceived { .. } => "desired_state_received",
            AuditEvent::DesiredStateRefused { .. } => "desired_state_refused",
        }
    }

    /// This event with the common fields: `AuditEvent::ActionAllowed.with(fields)`.
    pub fn with(self, fields: AuditFields) -> AuditEntry {
        AuditEntry {
            event: self,
            fields,
        }
    }
}

/// The fields every record may carry. Build with the chaining setters:
/// `AuditFields::action(target, "destroy", digest).signer(fp).nonce(n)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFields {
    /// What the record concerns (`lxc/101`, `container/web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The guest concerned, in records written before targets (schema 2 and earlier);
    /// never written now, kept so old records read back as they were hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<Vmid>,
    /// The operation (`destroy`, `set_config`, `start`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The digest identifying the exact action (the journal's action id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_digest: Option<String>,
    /// Fingerprints (`SHA256:...`) of the keys that signed, never the signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signer_fingerprints: Vec<String>,
    /// The signed op's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The journal intent concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentId>,
}

impl AuditFields {
    /// Fields naming an action: its target, operation and digest.
    pub fn action(target: Target, op: impl Into<String>, action_digest: impl Into<String>) -> Self {
        AuditFields {
            target: Some(target),
            op: Some(op.into()),
            action_digest: Some(action_digest.into()),
            ..Default::default()
        }
    }

    /// Sets `target`.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// What the record concerns, as text: its target, or for an old record its vmid.
    pub fn subject(&self) -> Option<String> {
        self.target
            .as_ref()
            .map(Target::to_string)
            .or_else(|| self.vmid.map(|v| v.to_string()))
    }

    /// Sets `op`.
    pub fn op(mut self, op: impl Into<String>) -> Self {
        self.op = Some(op.into());
        self
    }

    /// Sets `action_digest`.
    pub fn action_digest(mut self, digest: impl Into<String>) -> Self {
        self.action_digest = Some(digest.into());
        self
    }

    /// Adds a signer fingerprint.
    pub fn signer(mut self, fingerprint: impl Into<String>) -> Self {
        self.signer_fingerprints.push(fingerprint.into());
        self
    }

    /// Sets `nonce`.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Sets `intent`.
    pub fn intent(mut self, intent: IntentId) -> Self {
        self.intent = Some(intent);
        self
    }
}

/// An event with its common fields: what the store appends. Every [`AuditEvent`] converts
/// into one with empty fields, so `store.append_audit(AuditEvent::AgentStarted, now)`
/// works; `event.with(fields)` adds fields. Serialized flat: the event's tag and fields and
/// the common fields in one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The common fields.
    #[serde(flatten)]
    pub fields: AuditFields,
}

impl From<AuditEvent> for AuditEntry {
    fn from(event: AuditEvent) -> Self {
        AuditEntry {
            event,
            fields: AuditFields::default(),
        }
    }
}

/// One stored audit record. Its serde form is the export line:
/// `{"event":{...},"hash":"...","prev_hash":"...","seq":1,"time":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RecordWire", from = "RecordWire")]
pub struct AuditRecord {
    /// Position in the log: 1, 2, 3 ... without gaps.
    pub seq: u64,
    /// The effective time of the append.
    pub time: Timestamp,
    /// The previous record's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This record's hash (lowercase hex SHA-256, see the crate docs).
    pub hash: String,
    /// What happened.
    pub event: AuditEvent,
    /// The common fields.
    pub fields: AuditFields,
}

#[derive(Serialize, Deserialize)]
struct RecordWire {
    event: AuditEntry,
    hash: String,
    prev_hash: String,
    seq: u64,
    time: Timestamp,
}

impl From<AuditRecord> for RecordWire {
    fn from(r: AuditRecord) -> Self {
        RecordWire {
            event: AuditEntry {
                event: r.event,
                fields: r.fields,
            },
            hash: r.hash,
            prev_hash: r.prev_hash,
            seq: r.seq,
            time: r.time,
        }
    }
}

impl From<RecordWire> for AuditRecord {
    fn from(w: RecordWire) -> Self {
        AuditRecord {
            seq: w.seq,
            time: w.time,
            prev_hash: w.prev_hash,
            hash: w.hash,
            event: w.event.event,
            fields: w.event.fields,
        }
    }
}

/// The canonical JSON encoding `C` (see the crate docs): keys sorted by UTF-8 bytes at
/// every level, no whitespace, serde_json's string escaping. Numbers are written as
/// serde_json writes them (the audit log holds integers only).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped exactly as serde_json escapes.
fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = c as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A record's hash: lowercase hex of
/// `sha256(prev_hash ‖ "\n" ‖ {"event":<event_json>,"seq":<seq>,"time":<time as JSON string>})`,
/// with `event_json` (the canonical event object) and `time` (RFC 3339 text) as stored.
pub fn record_hash(prev_hash: &str, seq: u64, time: &str, event_json: &str) -> String {
    hash_parts(prev_hash.as_bytes(), seq, time, event_json.as_bytes())
}

fn hash_parts(prev_hash: &[u8], seq: u64, time: &str, event_json: &[u8]) -> String {
    let mut tail = String::with_capacity(time.len() + 40);
    tail.push_str(",\"seq\":");
    tail.push_str(&seq.to_string());
    tail.push_str(",\"time\":");
    write_json_str(time, &mut tail);
    tail.push('}');
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(b"\n{\"event\":");
    h.update(event_json);
    h.update(tail.as_bytes());
    hex::encode(h.finalize())
}

/// Inside a write transaction: appends `entry` at `time` after the current head.
pub(crate) fn append_in(
    tx: &Transaction<'_>,
    entry: AuditEntry,
    time: Timestamp,
) -> Result<AuditRecord, StoreError> {
    let head = read_head(tx)?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let value = serde_json::to_value(&entry).map_err(|source| StoreError::Encode {
        what: "audit event",
        source,
    })?;
    let event_json = canonical_json(&value);
    let time_text = time::to_text(time);
    let hash = record_hash(&prev_hash, seq, &time_text, &event_json);
    tx.prepare_cached(
        "INSERT INTO audit (seq, time, prev_hash, hash, event) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute((to_i64(seq), &time_text, &prev_hash, &hash, &event_json)))
    .ctx("appending an audit record")?;
    Ok(AuditRecord {
        seq,
        time,
        prev_hash,
        hash,
        event: entry.event,
        fields: entry.fields,
    })
}

fn read_head(conn: &rusqlite::Connection) -> Result<Option<(u64, String)>, StoreError> {
    use rusqlite::OptionalExtension;
    let head: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .ctx("reading the audit head")?;
    head.map(|(seq, hash)| Ok((from_i64(seq, "audit seq")?, hash)))
        .transpose()
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_i64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is negative")))
}

impl Store {
    /// Appends one audit record in its own transaction (committed, fsynced) and returns
    /// it. The record is stamped with the effective time `max(now, high-water mark)`.
    pub fn append_audit(
        &mut self,
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let tx = self.write_tx("append to the audit log")?;
        let eff = advance_clock(&tx, now)?;
        let record = append_in(&tx, event.into(), eff)?;
        tx.commit().ctx("committing an audit record")?;
        Ok(record)
    }

    /// Up to `limit` records from `from_seq` on, in order.
    pub fn audit_records(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, time, prev_hash, hash, event FROM audit
                 WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .ctx("reading audit records")?;
        let rows = stmt
            .query_map(
                (to_i64(from_seq), i64::try_from(limit).unwrap_or(i64::MAX)),
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .ctx("reading audit records")?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, prev_hash, hash, event) = row.ctx("reading audit records")?;
            let entry: AuditEntry = serde_json::from_str(&event).map_err(|e| {
                StoreError::Corrupt(format!("audit record {seq} has an unreadable event: {e}"))
            })?;
            out.push(AuditRecord {
                seq: from_i64(seq, "audit seq")?,
                time: time::from_text(&time, "audit record time")?,
                prev_hash,
                hash,
                event: entry.event,
                fields: entry.fields,
            });
        }
        Ok(out)
    }

    /// The last record's `(seq, hash)`: what a remote copy pins. `None` if the log is empty.
    pub fn audit_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        read_head(&self.conn)
    }

    /// Writes every record as one canonical JSON line
    /// (`{"event":{...},"hash":"...","prev_hash":"...","seq":N,"time":"..."}`, keys sorted,
    /// the event text exactly as stored and hashed), for shipping to the hub. Returns the
    /// number of records written.
    pub fn export_jsonl(&self, writer: impl Write) -> Result<u64, StoreError> {
        self.export_jsonl_from(1, writer)
    }

    /// Like [`Store::export_jsonl`], from record `from_seq` on.
    pub fn export_jsonl_from(&self, from_seq: u64, writer: impl Write) -> Result<u64, StoreError> {
        self.export_range(from_seq, u64::MAX, writer)
    }

    /// Up to `limit` export lines from record `from_seq` on (each without its newline):
    /// what an agent uploads to its hub.
    pub fn export_lines(&self, from_seq: u64, limit: u64) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        self.export_range(from_seq, limit, &mut out)?;
        let text = String::from_utf8(out).map_err(|_| {
            StoreError::Corrupt("the audit log holds text that is not utf-8".into())
        })?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    fn export_range(
        &self,
        from_seq: u64,
        limit: u64,
        writer: impl Write,
    ) -> Result<u64, StoreError> {
        let mut w = std::io::BufWriter::new(writer);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, time, prev_hash, hash, event FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .ctx("exporting the audit log")?;
        let mut rows = stmt
            .query([to_i64(from_seq), to_i64(limit)])
            .ctx("exporting the audit log")?;
        let mut n = 0u64;
        let mut line = String::new();
        while let Some(row) = rows.next().ctx("exporting the audit log")? {
            let seq: i64 = row.get(0).ctx("exporting the audit log")?;
            let time: String = row.get(1).ctx("exporting the audit log")?;
            let prev_hash: String = row.get(2).ctx("exporting the audit log")?;
            let hash: String = row.get(3).ctx("exporting the audit log")?;
            let event: String = row.get(4).ctx("exporting the audit log")?;
            // Never ship a line that is not JSON, whatever is in the file.
            serde_json::from_str::<serde::de::IgnoredAny>(&event)
                .map_err(|e| StoreError::Corrupt(format!("audit record {seq} is not json: {e}")))?;
            line.clear();
            line.push_str("{\"event\":");
            line.push_str(&event);
            line.push_str(",\"hash\":");
            write_json_str(&hash, &mut line);
            line.push_str(",\"prev_hash\":");
            write_json_str(&prev_hash, &mut line);
            line.push_str(",\"seq\":");
            line.push_str(&seq.to_string());
            line.push_str(",\"time\":");
            write_json_str(&time, &mut line);
            line.push_str("}\n");
            w.write_all(line.as_bytes()).map_err(StoreError::Export)?;
            n += 1;
        }
        w.flush().map_err(StoreError::Export)?;
        Ok(n)
    }
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// How many records (equal to the head's `seq`).
    pub records: u64,
    /// The head's hash: what the next record will link to and what a remote copy pins
    /// ([`GENESIS_HASH`] for an empty log).
    pub head_hash: String,
}

/// Where and why a chain failed to verify: `seq` is the first record that does not fit
/// (for a missing record, the seq that is missing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct ChainBroken {
    /// The first record that does not fit.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The running state of a verification.
#[derive(Debug)]
struct Chain {
    next_seq: u64,
    prev_hash: String,
    pinned: Option<(u64, String)>,
}

impl Chain {
    fn new(pinned: Option<(u64, String)>) -> Self {
        Chain {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            pinned,
        }
    }

    fn broken(&self, seq: u64, reason: impl Into<String>) -> ChainBroken {
        ChainBroken {
            seq,
            reason: reason.into(),
        }
    }

    fn push(
        &mut self,
        seq: i64,
        time: &[u8],
        prev_hash: &[u8],
        hash: &[u8],
        event: &[u8],
    ) -> Result<(), ChainBroken> {
        let expected = self.next_seq;
        let seq = match u64::try_from(seq) {
            Ok(s) if s == expected => s,
            Ok(s) if s > expected => {
                return Err(self.broken(
                    expected,
                    format!("record {expected} is missing (the next record has seq {s})"),
                ));
            }
            _ => {
                return Err(self.broken(
                    expected,
                    format!("found seq {seq} where record {expected} should be"),
                ));
            }
        };
        if prev_hash != self.prev_hash.as_bytes() {
            let what = if seq == 1 {
                "is not the genesis hash".to_owned()
            } else {
                format!("does not match the hash of record {}", seq - 1)
            };
            return Err(self.broken(seq, format!("prev_hash {what}")));
        }
        let Ok(time) = std::str::from_utf8(time) else {
            return Err(self.broken(seq, "time is not utf-8 text"));
        };
        let computed = hash_parts(prev_hash, seq, time, event);
        if computed.as_bytes() != hash {
            return Err(self.broken(seq, "hash does not match the record's contents"));
        }
        if let Some((pin_seq, pin_hash)) = &self.pinned
            && *pin_seq == seq
            && pin_hash.as_bytes() != hash
        {
            return Err(self.broken(
                seq,
                "hash differs from the pinned head (history was rewritten)",
            ));
        }
        self.prev_hash = computed;
        self.next_seq = seq + 1;
        Ok(())
    }

    fn finish(self) -> Result<ChainReport, ChainBroken> {
        let records = self.next_seq - 1;
        if let Some((pin_seq, _)) = &self.pinned
            && *pin_seq > records
        {
            return Err(self.broken(
                records + 1,
                format!(
                    "the log ends at record {records} but record {pin_seq} was pinned (truncated)"
                ),
            ));
        }
        Ok(ChainReport {
            records,
            head_hash: self.prev_hash,
        })
    }
}

/// Recomputes every record's hash and checks `seq` continuity (from 1, no gaps) and the
/// `prev_hash` links. Read errors are reported as a break at the record being read.
/// Cutting off the tail is not detectable from the chain alone: see [`verify_chain_pinned`].
pub fn verify_chain(store: &Store) -> Result<ChainReport, ChainBroken> {
    verify_store(store, None)
}

/// [`verify_chain`], and also checks that record `pinned_seq` exists with hash
/// `pinned_hash` (a head pinned earlier by a remote copy): detects truncation and a
/// history rewritten up to or past the pin.
pub fn verify_chain_pinned(
    store: &Store,
    pinned_seq: u64,
    pinned_hash: &str,
) -> Result<ChainReport, ChainBroken> {
    verify_store(store, Some((pinned_seq, pinned_hash.to_owned())))
}

fn verify_store(store: &Store, pinned: Option<(u64, String)>) -> Result<ChainReport, ChainBroken> {
    let mut chain = Chain::new(pinned);
    let read_err = |chain: &Chain, e: rusqlite::Error| {
        chain.broken(chain.next_seq, format!("cannot read the audit log: {e}"))
    };
    let mut stmt = match store
        .conn
        .prepare("SELECT seq, time, prev_hash, hash, event FROM audit ORDER BY seq")
    {
        Ok(s) => s,
        Err(e) => return Err(read_err(&chain, e)),
    };
    let mut rows = match stmt.query([]) {
        Ok(r) => r,
        Err(e) => return Err(read_err(&chain, e)),
    };
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return Err(read_err(&chain, e)),
        };
        let cols = (|| {
            Ok::<_, rusqlite::Error>((
                row.get::<_, i64>(0)?,
                text(row.get_ref(1)?),
                text(row.get_ref(2)?),
                text(row.get_ref(3)?),
                text(row.get_ref(4)?),
            ))
        })();
        let (seq, time, prev, hash, event) = match cols {
            Ok(c) => c,
            Err(e) => return Err(read_err(&chain, e)),
        };
        chain.push(seq, time, prev, hash, event)?;
    }
    chain.finish()
}

/// The bytes of a text (or blob) column; other types hash as nothing, so they never verify.
fn text(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        _ => b"",
    }
}

/// Verifies an export ([`Store::export_jsonl`]) as the hub does: parses each line,
/// re-encodes its event canonically and checks the chain as [`verify_chain`] does. An
/// export made with [`Store::export_jsonl_from`] (not starting at 1) does not verify here.
pub fn verify_jsonl(reader: impl BufRead) -> Result<ChainReport, ChainBroken> {
    let mut chain = ChainCursor::new();
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|e| {
            chain
                .0
                .broken(chain.0.next_seq, format!("cannot read line {lineno}: {e}"))
        })?;
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            chain
                .0
                .broken(chain.0.next_seq, format!("line {lineno}: not json: {e}"))
        })?;
        chain.push_value(&value).map_err(|mut b| {
            if b.reason.starts_with("missing or mistyped") {
                b.reason = format!("line {lineno}: {}", b.reason);
            }
            b
        })?;
    }
    chain.0.finish()
}

/// A chain verified a record at a time, from the start or from a head verified earlier:
/// what a remote copy (the hub) uses to check each upload extends what it holds.
#[derive(Debug)]
pub struct ChainCursor(Chain);

impl Default for ChainCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainCursor {
    /// A chain expecting record 1.
    pub fn new() -> ChainCursor {
        ChainCursor(Chain::new(None))
    }

    /// A chain whose record `seq` was verified with hash `hash`: it expects record
    /// `seq + 1` linking to `hash`.
    pub fn resume(seq: u64, hash: &str) -> ChainCursor {
        let mut chain = Chain::new(None);
        chain.next_seq = seq + 1;
        chain.prev_hash = hash.to_owned();
        ChainCursor(chain)
    }

    /// The next record's seq.
    pub fn next_seq(&self) -> u64 {
        self.0.next_seq
    }

    /// The hash of the last record verified (the head).
    pub fn head_hash(&self) -> &str {
        &self.0.prev_hash
    }

    /// Checks one record in its export form (a JSON object as [`Store::export_jsonl`]
    /// writes it): the next seq, linking to the head, its hash recomputed from its
    /// canonical contents. Returns the record's seq and hash.
    pub fn push_value(&mut self, value: &serde_json::Value) -> Result<(u64, String), ChainBroken> {
        let str_field = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
        let (
            Some(seq),
            Some(time),
            Some(prev),
            Some(hash),
            Some(event @ serde_json::Value::Object(_)),
        ) = (
            value.get("seq").and_then(serde_json::Value::as_i64),
            str_field("time"),
            str_field("prev_hash"),
            str_field("hash"),
            value.get("event"),
        )
        else {
            return Err(self.0.broken(
                self.0.next_seq,
                "missing or mistyped seq, time, prev_hash, hash or event",
            ));
        };
        let event_json = canonical_json(event);
        self.0.push(
            seq,
            time.as_bytes(),
            prev.as_bytes(),
            hash.as_bytes(),
            event_json.as_bytes(),
        )?;
        Ok((self.0.next_seq - 1, self.0.prev_hash.clone()))
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_events() -> Vec<AuditEvent> {
        vec![
            AuditEvent::AgentStarted,
            AuditEvent::ActionAllowed,
            AuditEvent::SignaturePending,
            AuditEvent::SignatureAccepted,
            AuditEvent::OpRejected {
                reason: RejectReason::Expired,
                detail: "not_after 2025-01-01T00:00:00Z".into(),
            },
            AuditEvent::IntentRecorded,
            AuditEvent::TaskDispatched {
                upid: Some("UPID:pve:1".into()),
            },
            AuditEvent::TaskDispatched { upid: None },
            AuditEvent::ActionSucceeded,
            AuditEvent::ActionFailed {
                error: "boom".into(),
            },
            AuditEvent::ActionRolledBack {
                reason: "gone".into(),
            },
            AuditEvent::RecoveryResumed,
            AuditEvent::RecoveryCompleted { intents: 3 },
        ]
    }

    #[test]
    fn kind_is_the_serde_tag_and_entries_round_trip() {
        let fields = AuditFields::action("lxc/100".parse().expect("target"), "destroy", "d1")
            .signer("SHA256:abc")
            .nonce("n1")
            .intent(IntentId(7));
        for ev in all_events() {
            for f in [AuditFields::default(), fields.clone()] {
                let entry = ev.clone().with(f);
                let v = serde_json::to_value(&entry).expect("encodes");
                assert_eq!(v["event"], ev.kind());
                let text = canonical_json(&v);
                let back: AuditEntry = serde_json::from_str(&text).expect("decodes");
                assert_eq!(back, entry);
                // Canonical form is a fixed point of parse + re-encode.
                let reparsed: serde_json::Value = serde_json::from_str(&text).expect("json");
                assert_eq!(canonical_json(&reparsed), text);
            }
        }
    }

    #[test]
    fn canonical_sorts_keys_and_omits_empty_fields() {
        let entry = AuditEvent::OpRejected {
            reason: RejectReason::Replayed,
            detail: "x".into(),
        }
        .with(AuditFields::default().target("container/web".parse().expect("target")));
        let text = canonical_json(&serde_json::to_value(&entry).expect("encodes"));
        assert_eq!(
            text,
            r#"{"detail":"x","event":"op_rejected","reason":"replayed","target":"container/web"}"#
        );
    }

    #[test]
    fn records_written_before_targets_read_back_as_they_were_hashed() {
        let old = r#"{"detail":"x","event":"op_rejected","reason":"replayed","vmid":101}"#;
        let entry: AuditEntry = serde_json::from_str(old).expect("decodes");
        assert_eq!(entry.fields.vmid, Some(101));
        assert_eq!(entry.fields.target, None);
        assert_eq!(entry.fields.subject().as_deref(), Some("101"));
        let again = canonical_json(&serde_json::to_value(&entry).expect("encodes"));
        assert_eq!(again, old);
    }

    #[test]
    fn record_hash_is_the_documented_sha256() {
        let event = r#"{"event":"agent_started"}"#;
        let msg = format!(
            "{GENESIS_HASH}\n{{\"event\":{event},\"seq\":1,\"time\":\"2025-01-01T00:00:00Z\"}}"
        );
        let expect = hex::encode(Sha256::digest(msg.as_bytes()));
        assert_eq!(
            record_hash(GENESIS_HASH, 1, "2025-01-01T00:00:00Z", event),
            expect
        );
    }

    proptest::proptest! {
        #[test]
        fn string_escaping_matches_serde_json(s in ".*", c in proptest::char::range('\0', '\u{80}')) {
            let s = format!("{s}{c}");
            let mut ours = String::new();
            write_json_str(&s, &mut ours);
            proptest::prop_assert_eq!(ours, serde_json::to_string(&s).expect("encodes"));
        }
    }
}
