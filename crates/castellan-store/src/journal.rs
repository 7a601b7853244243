//! The journal of mutations: intent before dispatch, task id after dispatch, a terminal
//! record after. The rules are in the crate docs.

use std::collections::BTreeMap;
use std::fmt;

use castellan_core::{GuestKind, Target};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditEvent, AuditRecord, append_in, from_i64, to_i64};
use crate::error::SqlContext;
use crate::{Store, StoreError, advance_clock, time};

/// A journal intent's id: increasing in the order intents were recorded, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntentId(pub u64);

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an intent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentState {
    /// Recorded (nonce consumed); the request may or may not have been sent.
    Intent,
    /// The node accepted the request (its task id, if any, is recorded).
    Dispatched,
    /// Terminal: completed.
    Succeeded,
    /// Terminal: failed.
    Failed,
    /// Terminal: rolled back or abandoned.
    RolledBack,
}

impl IntentState {
    /// The state's snake_case word, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            IntentState::Intent => "intent",
            IntentState::Dispatched => "dispatched",
            IntentState::Succeeded => "succeeded",
            IntentState::Failed => "failed",
            IntentState::RolledBack => "rolled_back",
        }
    }

    /// Whether the intent has its terminal record.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            IntentState::Succeeded | IntentState::Failed | IntentState::RolledBack
        )
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "intent" => IntentState::Intent,
            "dispatched" => IntentState::Dispatched,
            "succeeded" => IntentState::Succeeded,
            "failed" => IntentState::Failed,
            "rolled_back" => IntentState::RolledBack,
            other => return Err(StoreError::Corrupt(format!("intent state {other:?}"))),
        })
    }
}

impl fmt::Display for IntentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It completed.
    Succeeded,
    /// It failed.
    Failed {
        /// What failed.
        error: String,
    },
    /// It was rolled back or abandoned (for example by recovery).
    RolledBack {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The terminal state this outcome puts an intent in.
    pub fn state(&self) -> IntentState {
        match self {
            Outcome::Succeeded => IntentState::Succeeded,
            Outcome::Failed { .. } => IntentState::Failed,
            Outcome::RolledBack { .. } => IntentState::RolledBack,
        }
    }

    /// The audit event recording this outcome.
    pub fn event(&self) -> AuditEvent {
        match self {
            Outcome::Succeeded => AuditEvent::ActionSucceeded,
            Outcome::Failed { error } => AuditEvent::ActionFailed {
                error: error.clone(),
            },
            Outcome::RolledBack { reason } => AuditEvent::ActionRolledBack {
                reason: reason.clone(),
            },
        }
    }

    fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Succeeded => None,
            Outcome::Failed { error } => Some(error),
            Outcome::RolledBack { reason } => Some(reason),
        }
    }
}

/// An action about to be executed, for [`Store::begin_intent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// A digest identifying the exact action (op, target, canonical params, precondition).
    pub action_id: String,
    /// The operation: `destroy`, `set_config`, `start`, ...
    pub op: String,
    /// What it acts on.
    pub target: Target,
    /// The action's parameters.
    pub params: BTreeMap<String, String>,
    /// The signed op's nonce; required when `destructive`.
    pub nonce: Option<String>,
    /// The signed op's `not_after`: the nonce may be pruned after it. `None`: never pruned.
    pub nonce_not_after: Option<Timestamp>,
    /// Whether the action is destructive (its action id is then single-use).
    pub destructive: bool,
    /// Anything that helps recovery find the task if the agent dies before
    /// [`Store::mark_dispatched`] (for example the task type and guest in a UPID).
    pub upid_hint: Option<String>,
}

/// A journaled attempt at an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Its id.
    pub id: IntentId,
    /// The action id.
    pub action_id: String,
    /// The operation.
    pub op: String,
    /// What it acts on.
    pub target: Target,
    /// The action's parameters.
    pub params: BTreeMap<String, String>,
    /// The signed op's nonce, if any.
    pub nonce: Option<String>,
    /// The signed op's `not_after`, if any.
    pub nonce_not_after: Option<Timestamp>,
    /// Whether the action is destructive.
    pub destructive: bool,
    /// The recovery hint given at the start.
    pub upid_hint: Option<String>,
    /// Where it is.
    pub state: IntentState,
    /// The task id recorded at dispatch, if any.
    pub upid: Option<String>,
    /// How it ended (`Some` exactly when `state` is terminal).
    pub outcome: Option<Outcome>,
    /// When the intent was recorded (effective time).
    pub created_at: Timestamp,
    /// When it was dispatched.
    pub dispatched_at: Option<Timestamp>,
    /// When it reached its terminal state.
    pub finished_at: Option<Timestamp>,
    /// The node's tasks of this kind for the guest just before the request was sent
    /// (`Some` once [`Store::mark_prepared`] ran); [`TaskMark::Legacy`] for an intent left
    /// in flight by a version that kept none.
    pub task_mark: Option<TaskMark>,
    /// Why recovery holds it for an operator, if it does.
    pub held: Option<String>,
    /// The safety backup taken before it was sent (a volume id), once taken.
    pub backup: Option<String>,
}

/// What the node's task list held for a guest just before a destructive request was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskMark {
    /// These tasks (UPIDs) existed already: any other is the request's own.
    Seen(Vec<String>),
    /// Recorded by a version that kept no mark: the evidence is ambiguous.
    Legacy,
}

const INTENT_COLS: &str = "id, action_id, op, target, params, nonce, nonce_not_after, \
     destructive, upid_hint, state, upid, detail, created_at, dispatched_at, finished_at, \
     task_mark, held, backup";

/// An intent row as stored, before its text columns are parsed.
struct IntentRow {
    id: i64,
    action_id: String,
    op: String,
    target: String,
    params: String,
    nonce: Option<String>,
    nonce_not_after: Option<String>,
    destructive: bool,
    upid_hint: Option<String>,
    state: String,
    upid: Option<String>,
    detail: Option<String>,
    created_at: String,
    dispatched_at: Option<String>,
    finished_at: Option<String>,
    task_mark: Option<String>,
    held: Option<String>,
    backup: Option<String>,
}

impl IntentRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(IntentRow {
            id: r.get(0)?,
            action_id: r.get(1)?,
            op: r.get(2)?,
            target: r.get(3)?,
            params: r.get(4)?,
            nonce: r.get(5)?,
            nonce_not_after: r.get(6)?,
            destructive: r.get(7)?,
            upid_hint: r.get(8)?,
            state: r.get(9)?,
            upid: r.get(10)?,
            detail: r.get(11)?,
            created_at: r.get(12)?,
            dispatched_at: r.get(13)?,
            finished_at: r.get(14)?,
            task_mark: r.get(15)?,
            held: r.get(16)?,
            backup: r.get(17)?,
        })
    }

    fn into_intent(self) -> Result<Intent, StoreError> {
        let id = IntentId(from_i64(self.id, "intent id")?);
        let state = IntentState::parse(&self.state)?;
        let detail = || self.detail.clone().unwrap_or_default();
        let outcome = match state {
            IntentState::Intent | IntentState::Dispatched => None,
            IntentState::Succeeded => Some(Outcome::Succeeded),
            IntentState::Failed => Some(Outcome::Failed { error: detail() }),
            IntentState::RolledBack => Some(Outcome::RolledBack { reason: detail() }),
        };
        Ok(Intent {
            id,
            action_id: self.action_id,
            op: self.op,
            target: self.target.parse().map_err(|e| {
                StoreError::Corrupt(format!("intent {id} target {:?}: {e}", self.target))
            })?,
            params: serde_json::from_str(&self.params).map_err(|e| {
                StoreError::Corrupt(format!("intent {id} params are not a json object: {e}"))
            })?,
            nonce: self.nonce,
            nonce_not_after: time::from_opt_text(self.nonce_not_after, "intent nonce_not_after")?,
            destructive: self.destructive,
            upid_hint: self.upid_hint,
            state,
            upid: self.upid,
            outcome,
            created_at: time::from_text(&self.created_at, "intent created_at")?,
            dispatched_at: time::from_opt_text(self.dispatched_at, "intent dispatched_at")?,
            finished_at: time::from_opt_text(self.finished_at, "intent finished_at")?,
            task_mark: match self.task_mark.as_deref() {
                None => None,
                Some("legacy") => Some(TaskMark::Legacy),
                Some(json) => Some(TaskMark::Seen(serde_json::from_str(json).map_err(|e| {
                    StoreError::Corrupt(format!("intent {id} task_mark is not a json list: {e}"))
                })?)),
            },
            held: self.held,
            backup: self.backup,
        })
    }
}

pub(crate) fn parse_guest(s: &str) -> Result<GuestKind, StoreError> {
    match s {
        "lxc" => Ok(GuestKind::Lxc),
        "qemu" => Ok(GuestKind::Qemu),
        other => Err(StoreError::Corrupt(format!("guest kind {other:?}"))),
    }
}

/// Fills the audit fields a journal step knows: `intent` always; `target`, `op`,
/// `action_digest` and `nonce` when the caller left them empty.
fn fill_fields(entry: &mut AuditEntry, intent: &Intent) {
    let f = &mut entry.fields;
    f.intent = Some(intent.id);
    if f.target.is_none() && f.vmid.is_none() {
        f.target = Some(intent.target.clone());
    }
    f.op.get_or_insert_with(|| intent.op.clone());
    f.action_digest
        .get_or_insert_with(|| intent.action_id.clone());
    if f.nonce.is_none() {
        f.nonce.clone_from(&intent.nonce);
    }
}

/// Records `intent` terminal (`to`, with `detail`) inside `tx`, and appends `entry` for
/// it.
fn finish_in(
    tx: &Transaction<'_>,
    intent: &Intent,
    to: IntentState,
    detail: Option<&str>,
    mut entry: AuditEntry,
    eff: Timestamp,
) -> Result<AuditRecord, StoreError> {
    tx.prepare_cached("UPDATE intents SET state = ?2, detail = ?3, finished_at = ?4 WHERE id = ?1")
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                to_i64(intent.id.0),
                to.as_str(),
                detail,
                time::to_text(eff)
            ])
        })
        .ctx("marking an intent terminal")?;
    fill_fields(&mut entry, intent);
    append_in(tx, entry, eff)
}

fn load(tx: &Transaction<'_>, id: IntentId) -> Result<Intent, StoreError> {
    let row = tx
        .prepare_cached(&format!("SELECT {INTENT_COLS} FROM intents WHERE id = ?1"))
        .and_then(|mut s| s.query_row([to_i64(id.0)], IntentRow::read).optional())
        .ctx("reading an intent")?;
    row.ok_or(StoreError::UnknownIntent(id))?.into_intent()
}

impl Store {
    /// Journals an action before it is dispatched, in one transaction: checks the nonce
    /// (not consumed, op not expired by the effective time) and the action id (see the
    /// idempotency rules in the crate docs), then records the intent in state `intent`,
    /// consumes the nonce and appends `event`, which must be
    /// [`AuditEvent::IntentRecorded`] (its `intent`, and `target`, `op`, `action_digest`,
    /// `nonce` if empty, are filled from the intent). On any error nothing is written.
    pub fn begin_intent(
        &mut self,
        intent: NewIntent,
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<(IntentId, AuditRecord), StoreError> {
        let mut entry = event.into();
        expect_kind(&entry, "intent_recorded")?;
        validate(&intent)?;
        let params =
            serde_json::to_string(&intent.params).map_err(|source| StoreError::Encode {
                what: "intent params",
                source,
            })?;
        let tx = self.write_tx("record an intent")?;
        let eff = time::max(crate::read_clock(&tx)?, now);
        if let Some(nonce) = &intent.nonce {
            let consumed = tx
                .prepare_cached("SELECT 1 FROM nonces WHERE nonce = ?1")
                .and_then(|mut s| s.exists([nonce]))
                .ctx("looking up a nonce")?;
            if consumed {
                return Err(StoreError::Replayed {
                    nonce: nonce.clone(),
                });
            }
            if let Some(not_after) = intent.nonce_not_after
                && not_after < eff
            {
                return Err(StoreError::Expired {
                    nonce: nonce.clone(),
                    not_after,
                    now: eff,
                });
            }
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, state, destructive FROM intents WHERE action_id = ?1 ORDER BY id",
                )
                .ctx("looking up the action id")?;
            let rows = stmt
                .query_map([&intent.action_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                })
                .ctx("looking up the action id")?;
            for row in rows {
                let (id, state, destructive) = row.ctx("looking up the action id")?;
                let state = IntentState::parse(&state)?;
                let retryable = matches!(state, IntentState::Failed | IntentState::RolledBack)
                    && !destructive
                    && !intent.destructive;
                if !retryable {
                    return Err(StoreError::DuplicateAction {
                        action_id: intent.action_id.clone(),
                        existing: IntentId(from_i64(id, "intent id")?),
                        state,
                    });
                }
            }
        }
        advance_clock(&tx, now)?;
        let created = time::to_text(eff);
        tx.prepare_cached(
            "INSERT INTO intents (action_id, op, target, params, nonce, nonce_not_after,
                 destructive, upid_hint, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'intent', ?9)",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                intent.action_id,
                intent.op,
                intent.target.to_string(),
                params,
                intent.nonce,
                intent.nonce_not_after.map(time::to_text),
                intent.destructive,
                intent.upid_hint,
                created,
            ])
        })
        .ctx("recording an intent")?;
        let id = IntentId(from_i64(tx.last_insert_rowid(), "intent id")?);
        if let Some(nonce) = &intent.nonce {
            tx.prepare_cached(
                "INSERT INTO nonces (nonce, not_after_us, intent_id, consumed_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    nonce,
                    intent.nonce_not_after.map(time::ceil_micros),
                    to_i64(id.0),
                    created,
                ])
            })
            .ctx("consuming a nonce")?;
        }
        let stored = load(&tx, id)?;
        fill_fields(&mut entry, &stored);
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx("committing an intent")?;
        Ok((id, record))
    }

    /// Records that the node accepted the request, with its task id (UPID) if it made one,
    /// together with `event`, which must be [`AuditEvent::TaskDispatched`] (its `upid` is
    /// set to `upid`). Only from state `intent`.
    pub fn mark_dispatched(
        &mut self,
        id: IntentId,
        upid: Option<&str>,
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let mut entry = event.into();
        expect_kind(&entry, "task_dispatched")?;
        entry.event = AuditEvent::TaskDispatched {
            upid: upid.map(str::to_owned),
        };
        let tx = self.write_tx("mark an intent dispatched")?;
        let intent = load(&tx, id)?;
        if intent.state != IntentState::Intent {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: IntentState::Dispatched,
            });
        }
        let eff = advance_clock(&tx, now)?;
        tx.prepare_cached(
            "UPDATE intents SET state = 'dispatched', upid = ?2, dispatched_at = ?3 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(rusqlite::params![to_i64(id.0), upid, time::to_text(eff)]))
        .ctx("marking an intent dispatched")?;
        fill_fields(&mut entry, &intent);
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx("committing a dispatch")?;
        Ok(record)
    }

    /// Records how the action ended, together with `event`, which must be the matching
    /// [`AuditEvent::ActionSucceeded`], [`AuditEvent::ActionFailed`] or
    /// [`AuditEvent::ActionRolledBack`] (its text is set from `outcome`; see
    /// [`Outcome::event`]). From state `intent` or `dispatched`.
    pub fn mark_terminal(
        &mut self,
        id: IntentId,
        outcome: Outcome,
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let mut entry = event.into();
        let expected = outcome.event();
        expect_kind(&entry, expected.kind())?;
        entry.event = expected;
        let to = outcome.state();
        let tx = self.write_tx("mark an intent terminal")?;
        let intent = load(&tx, id)?;
        if intent.state.is_terminal() {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to,
            });
        }
        let eff = advance_clock(&tx, now)?;
        let record = finish_in(&tx, &intent, to, outcome.detail(), entry, eff)?;
        tx.commit().ctx("committing a terminal record")?;
        Ok(record)
    }

    /// Records a provisioning intent as succeeded and the guest it created as this
    /// agent's own (provenance citing it), with their audit records, in one transaction:
    /// a crash leaves both or neither. Only for a non-destructive `provision` of a guest.
    pub fn mark_provisioned(&mut self, id: IntentId, now: Timestamp) -> Result<(), StoreError> {
        let tx = self.write_tx("mark a provisioning succeeded")?;
        let intent = load(&tx, id)?;
        if intent.state.is_terminal() {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: IntentState::Succeeded,
            });
        }
        let Some((guest, vmid)) = intent.target.as_guest() else {
            return Err(StoreError::InvalidIntent(format!(
                "intent {id} creates {}, which is not a guest",
                intent.target
            )));
        };
        if intent.op != castellan_core::Operation::Provision.as_str() || intent.destructive {
            return Err(StoreError::InvalidIntent(format!(
                "intent {id} is a {}, not a provisioning",
                intent.op
            )));
        }
        let eff = advance_clock(&tx, now)?;
        let done = AuditEntry::from(AuditEvent::ActionSucceeded);
        finish_in(&tx, &intent, IntentState::Succeeded, None, done, eff)?;
        crate::provenance::insert_provenance(
            &tx,
            vmid,
            guest,
            crate::ProvenanceKind::CreatedByAgent { intent: id },
            eff,
        )?;
        let mut recorded = AuditEntry::from(AuditEvent::ProvenanceRecorded);
        fill_fields(&mut recorded, &intent);
        append_in(&tx, recorded, eff)?;
        tx.commit().ctx("committing a provisioning")?;
        Ok(())
    }

    /// Records, before a destructive request is sent, which of the node's tasks of its
    /// kind for the guest already existed (`seen`): recovery then knows any other is the
    /// request's own. Only from state `intent`, once. No audit record: it is evidence, not
    /// a step anyone acts on.
    pub fn mark_prepared(
        &mut self,
        id: IntentId,
        seen: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(seen).map_err(|source| StoreError::Encode {
            what: "task mark",
            source,
        })?;
        let tx = self.write_tx("mark an intent prepared")?;
        let intent = load(&tx, id)?;
        if intent.state != IntentState::Intent || intent.task_mark.is_some() {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: IntentState::Intent,
            });
        }
        advance_clock(&tx, now)?;
        tx.prepare_cached("UPDATE intents SET task_mark = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(rusqlite::params![to_i64(id.0), json]))
            .ctx("recording a task mark")?;
        tx.commit().ctx("committing a task mark")?;
        Ok(())
    }

    /// Records the safety backup taken for an intent before its request is sent (`volume`,
    /// `size` bytes), with its audit record [`AuditEvent::BackupTaken`], in one
    /// transaction. Only from state `intent`, before the request is prepared, once.
    pub fn record_backup(
        &mut self,
        id: IntentId,
        volume: &str,
        size: u64,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let tx = self.write_tx("record a safety backup")?;
        let intent = load(&tx, id)?;
        if intent.state != IntentState::Intent
            || intent.task_mark.is_some()
            || intent.backup.is_some()
        {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: IntentState::Intent,
            });
        }
        let eff = advance_clock(&tx, now)?;
        tx.prepare_cached("UPDATE intents SET backup = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(rusqlite::params![to_i64(id.0), volume]))
            .ctx("recording a safety backup")?;
        let mut entry = AuditEntry::from(AuditEvent::BackupTaken {
            volume: volume.to_owned(),
            size,
        });
        fill_fields(&mut entry, &intent);
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx("committing a safety backup")?;
        Ok(record)
    }

    /// Records the safety backup taken of `item`, one of the guests an in-flight intent
    /// removes one by one (a decommission), with its audit record
    /// [`AuditEvent::BackupTaken`] naming that guest, in one transaction. Once per guest.
    pub fn record_item_backup(
        &mut self,
        id: IntentId,
        item: &Target,
        volume: &str,
        size: u64,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let mut entry = AuditEntry::from(AuditEvent::BackupTaken {
            volume: volume.to_owned(),
            size,
        });
        entry.fields.target = Some(item.clone());
        self.item_step(id, "record a safety backup", entry, now, |tx, eff| {
            tx.prepare_cached(
                "INSERT INTO intent_backups (intent_id, target, volume, size, taken_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    to_i64(id.0),
                    item.to_string(),
                    volume,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    time::to_text(eff),
                ])
            })
            .ctx("recording a safety backup")
        })
    }

    /// Records that in-flight intent `id` removed `item` (a guest target, a volume id),
    /// with `entry` ([`AuditEvent::GuestDestroyed`], [`AuditEvent::VolumeRemoved`]) in one
    /// transaction. Once per item: an item recorded already is an error and writes nothing.
    pub fn record_item_removed(
        &mut self,
        id: IntentId,
        item: &str,
        entry: AuditEntry,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        self.item_step(id, "record a removal", entry, now, |tx, eff| {
            tx.prepare_cached(
                "INSERT INTO intent_removed (intent_id, item, removed_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(rusqlite::params![to_i64(id.0), item, time::to_text(eff)]))
            .ctx("recording a removal")
        })
    }

    /// One step of an in-flight intent that removes items one by one: `write` (given the
    /// effective time) and `entry`, filled with the intent's fields, in one transaction.
    fn item_step(
        &mut self,
        id: IntentId,
        what: &'static str,
        mut entry: AuditEntry,
        now: Timestamp,
        write: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<usize, StoreError>,
    ) -> Result<AuditRecord, StoreError> {
        let tx = self.write_tx(what)?;
        let intent = load(&tx, id)?;
        if intent.state.is_terminal() {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: intent.state,
            });
        }
        let eff = advance_clock(&tx, now)?;
        write(&tx, eff)?;
        fill_fields(&mut entry, &intent);
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx(what)?;
        Ok(record)
    }

    /// What intent `id` has recorded removed so far, in the order it removed them.
    pub fn items_removed(&self, id: IntentId) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT item FROM intent_removed WHERE intent_id = ?1 ORDER BY removed_at, rowid",
            )
            .ctx("reading removals")?;
        let rows = stmt
            .query_map([to_i64(id.0)], |r| r.get::<_, String>(0))
            .ctx("reading removals")?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.ctx("reading removals")?);
        }
        Ok(out)
    }

    /// The safety backups recorded for the guests intent `id` removes, by guest.
    pub fn item_backups(&self, id: IntentId) -> Result<BTreeMap<Target, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT target, volume FROM intent_backups WHERE intent_id = ?1")
            .ctx("reading safety backups")?;
        let rows = stmt
            .query_map([to_i64(id.0)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .ctx("reading safety backups")?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (target, volume) = row.ctx("reading safety backups")?;
            let target: Target = target
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("safety backup of {target:?}: {e}")))?;
            out.insert(target, volume);
        }
        Ok(out)
    }

    /// Holds an in-flight intent for an operator: recovery could not tell what became of
    /// it. Audited with `event` ([`AuditEvent::IntentHeld`]). The intent stays in flight
    /// (no new attempt on its guest) until an operator settles it with
    /// [`Store::mark_terminal`].
    pub fn hold_intent(
        &mut self,
        id: IntentId,
        reason: &str,
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let mut entry = event.into();
        expect_kind(&entry, "intent_held")?;
        entry.event = AuditEvent::IntentHeld {
            reason: reason.to_owned(),
        };
        let tx = self.write_tx("hold an intent")?;
        let intent = load(&tx, id)?;
        if intent.state.is_terminal() {
            return Err(StoreError::BadTransition {
                id,
                from: intent.state,
                to: intent.state,
            });
        }
        let eff = advance_clock(&tx, now)?;
        tx.prepare_cached("UPDATE intents SET held = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(rusqlite::params![to_i64(id.0), reason]))
            .ctx("holding an intent")?;
        fill_fields(&mut entry, &intent);
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx("committing a hold")?;
        Ok(record)
    }

    /// Every intent without a terminal record (state `intent` or `dispatched`), oldest
    /// first: what recovery must resume or roll back before anything new runs.
    pub fn in_flight(&self) -> Result<Vec<Intent>, StoreError> {
        self.query_intents(
            &format!(
                "SELECT {INTENT_COLS} FROM intents WHERE state IN ('intent', 'dispatched') ORDER BY id"
            ),
            [],
        )
    }

    /// One intent by id.
    pub fn intent(&self, id: IntentId) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .query_intents(
                &format!("SELECT {INTENT_COLS} FROM intents WHERE id = ?1"),
                [to_i64(id.0)],
            )?
            .pop())
    }

    /// Every intent for a target, oldest first.
    pub fn intents_for(&self, target: &Target) -> Result<Vec<Intent>, StoreError> {
        self.query_intents(
            &format!("SELECT {INTENT_COLS} FROM intents WHERE target = ?1 ORDER BY id"),
            [target.to_string()],
        )
    }

    /// The archive the last successful `restore_overwrite` of `target` restored over it,
    /// if one did: a declared restore of that archive is done.
    pub fn last_restored(&self, target: &Target) -> Result<Option<String>, StoreError> {
        let found = self.query_intents(
            &format!(
                "SELECT {INTENT_COLS} FROM intents WHERE target = ?1 \
                 AND op = 'restore_overwrite' AND state = 'succeeded' ORDER BY id DESC LIMIT 1"
            ),
            [target.to_string()],
        )?;
        Ok(found
            .into_iter()
            .next()
            .and_then(|i| i.params.get("archive").cloned()))
    }

    /// The `limit` most recent intents, newest first.
    pub fn recent_intents(&self, limit: usize) -> Result<Vec<Intent>, StoreError> {
        self.query_intents(
            &format!("SELECT {INTENT_COLS} FROM intents ORDER BY id DESC LIMIT ?1"),
            [i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    fn query_intents<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<Intent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).ctx("reading intents")?;
        let rows = stmt
            .query_map(params, IntentRow::read)
            .ctx("reading intents")?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.ctx("reading intents")?.into_intent()?);
        }
        Ok(out)
    }
}

pub(crate) fn expect_kind(entry: &AuditEntry, expected: &'static str) -> Result<(), StoreError> {
    if entry.event.kind() == expected {
        Ok(())
    } else {
        Err(StoreError::EventMismatch {
            expected,
            got: entry.event.kind(),
        })
    }
}

fn validate(intent: &NewIntent) -> Result<(), StoreError> {
    let bad = |m: &str| Err(StoreError::InvalidIntent(m.to_owned()));
    if intent.action_id.is_empty() {
        return bad("action_id is empty");
    }
    if intent.op.is_empty() {
        return bad("op is empty");
    }
    match &intent.nonce {
        Some(n) if n.is_empty() => return bad("nonce is empty"),
        None if intent.destructive => {
            return bad("a destructive intent needs the nonce of its signed op");
        }
        None if intent.nonce_not_after.is_some() => {
            return bad("nonce_not_after without a nonce");
        }
        _ => {}
    }
    Ok(())
}
