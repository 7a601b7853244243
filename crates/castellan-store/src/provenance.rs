//! Provenance: guests the agent itself created in a journaled transaction, or tagged as its
//! scratch. The classifier trusts only this table for "ours"; it is written by the agent
//! alone and never from anything the hub sends.

use castellan_core::Operation;
use castellan_core::{GuestKind, Target, Vmid};
use jiff::Timestamp;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::audit::{from_i64, to_i64};
use crate::error::SqlContext;
use crate::journal::{IntentId, parse_guest};
use crate::{Store, StoreError, advance_clock, time};

/// Why the agent considers a guest its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProvenanceKind {
    /// The agent created the guest, in this journaled intent.
    CreatedByAgent {
        /// The creating intent.
        intent: IntentId,
    },
    /// A scratch guest the agent made (and tagged) for its own work, in this intent.
    Scratch {
        /// The creating intent.
        intent: IntentId,
    },
}

impl ProvenanceKind {
    /// The intent that created the guest.
    pub fn intent(&self) -> IntentId {
        match self {
            ProvenanceKind::CreatedByAgent { intent } | ProvenanceKind::Scratch { intent } => {
                *intent
            }
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            ProvenanceKind::CreatedByAgent { .. } => "created_by_agent",
            ProvenanceKind::Scratch { .. } => "scratch",
        }
    }
}

/// What [`Store::verified_provenance`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvenanceCheck {
    /// No record: the guest is not the agent's.
    None,
    /// A record that cites the agent's own successful creation of exactly this guest.
    Verified(Provenance),
    /// A record that does not hold up: it counts for nothing.
    Refused {
        /// The record.
        provenance: Provenance,
        /// What is wrong with it.
        why: String,
    },
}

/// A guest's provenance record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The guest.
    pub vmid: Vmid,
    /// Its kind.
    pub guest: GuestKind,
    /// Why it is the agent's.
    pub kind: ProvenanceKind,
    /// When it was recorded (effective time).
    pub recorded_at: Timestamp,
}

impl Store {
    /// Records that the agent created `vmid` (or made it as scratch) in the journaled
    /// intent named by `kind`, which must exist and be for the same guest and kind
    /// ([`StoreError::ProvenanceMismatch`]). Replaces an earlier record for the vmid (a
    /// vmid reused after [`Store::forget_provenance`], or recorded twice by recovery).
    pub fn record_provenance(
        &mut self,
        vmid: Vmid,
        guest: GuestKind,
        kind: ProvenanceKind,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let intent = kind.intent();
        let tx = self.write_tx("record provenance")?;
        let cited: Option<String> = tx
            .prepare_cached("SELECT target FROM intents WHERE id = ?1")
            .and_then(|mut s| s.query_row([to_i64(intent.0)], |r| r.get(0)).optional())
            .ctx("reading the intent cited by provenance")?;
        let mismatch = |detail: String| StoreError::ProvenanceMismatch {
            vmid,
            intent,
            detail,
        };
        let Some(cited) = cited else {
            return Err(mismatch("no such intent".into()));
        };
        if cited != Target::guest(guest, vmid).to_string() {
            return Err(mismatch(format!("the intent is for {cited}")));
        }
        let eff = advance_clock(&tx, now)?;
        insert_provenance(&tx, vmid, guest, kind, eff)?;
        tx.commit().ctx("committing provenance")?;
        Ok(())
    }

    /// The guest's provenance, if the agent recorded one.
    pub fn provenance(&self, vmid: Vmid) -> Result<Option<Provenance>, StoreError> {
        let row: Option<(String, String, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT guest, kind, intent_id, recorded_at FROM provenance WHERE vmid = ?1",
            )
            .and_then(|mut s| {
                s.query_row([i64::from(vmid)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .ctx("reading provenance")?;
        let Some((guest, kind, intent, recorded_at)) = row else {
            return Ok(None);
        };
        let intent = IntentId(from_i64(intent, "provenance intent")?);
        let kind = match kind.as_str() {
            "created_by_agent" => ProvenanceKind::CreatedByAgent { intent },
            "scratch" => ProvenanceKind::Scratch { intent },
            other => return Err(StoreError::Corrupt(format!("provenance kind {other:?}"))),
        };
        Ok(Some(Provenance {
            vmid,
            guest: parse_guest(&guest)?,
            kind,
            recorded_at: time::from_text(&recorded_at, "provenance recorded_at")?,
        }))
    }

    /// The guest's provenance, checked when read: it counts only if it cites a journaled,
    /// terminal, successful, non-destructive intent of this store that created exactly
    /// this guest (same vmid, same kind as the row and as `kind`) with an operation that
    /// creates (`create`, `restore` or `clone` for [`ProvenanceKind::CreatedByAgent`],
    /// `create_scratch` for [`ProvenanceKind::Scratch`]), recorded in the current state
    /// epoch. One row written by hand, or copied from elsewhere, proves nothing.
    pub fn verified_provenance(
        &self,
        vmid: Vmid,
        kind: GuestKind,
    ) -> Result<ProvenanceCheck, StoreError> {
        let Some(p) = self.provenance(vmid)? else {
            return Ok(ProvenanceCheck::None);
        };
        let refused = |why: String| {
            Ok(ProvenanceCheck::Refused {
                provenance: p.clone(),
                why,
            })
        };
        if p.guest != kind {
            return refused(format!("it is recorded for a {} guest", p.guest));
        }
        let id = p.kind.intent();
        let Some(intent) = self.intent(id)? else {
            return refused(format!(
                "it cites intent {id}, which the journal does not hold"
            ));
        };
        if intent.target != Target::guest(kind, vmid) {
            return refused(format!(
                "the intent it cites ({id}) is for {}",
                intent.target
            ));
        }
        // Either kind cites the provisioning that made the guest (restore, clone or
        // create alike); whether it is scratch is the record's own word.
        if intent.op != Operation::Provision.as_str() || intent.destructive {
            return refused(format!(
                "the intent it cites ({id}) is a {}, not a creation",
                intent.op
            ));
        }
        if intent.state != crate::IntentState::Succeeded {
            return refused(format!(
                "the creation it cites ({id}) did not succeed ({})",
                intent.state
            ));
        }
        if let Some(epoch) = self.epoch()?
            && intent.created_at < epoch.created_at
        {
            return refused(format!(
                "the creation it cites ({id}) predates this state ({})",
                epoch.state_id
            ));
        }
        Ok(ProvenanceCheck::Verified(p))
    }

    /// Forgets a guest's provenance (once the guest is gone); returns whether there was
    /// one.
    pub fn forget_provenance(&mut self, vmid: Vmid) -> Result<bool, StoreError> {
        let tx = self.write_tx("forget provenance")?;
        let n = tx
            .prepare_cached("DELETE FROM provenance WHERE vmid = ?1")
            .and_then(|mut s| s.execute([i64::from(vmid)]))
            .ctx("forgetting provenance")?;
        tx.commit().ctx("committing forgotten provenance")?;
        Ok(n > 0)
    }
}

/// Writes a provenance row inside `tx` (its intent already checked by the caller).
pub(crate) fn insert_provenance(
    tx: &rusqlite::Transaction<'_>,
    vmid: Vmid,
    guest: GuestKind,
    kind: ProvenanceKind,
    eff: Timestamp,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO provenance (vmid, guest, kind, intent_id, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            i64::from(vmid),
            guest.as_str(),
            kind.as_str(),
            to_i64(kind.intent().0),
            time::to_text(eff),
        ])
    })
    .ctx("recording provenance")?;
    Ok(())
}
