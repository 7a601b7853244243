//! Provenance: guests the agent itself created in a journaled transaction, or tagged as its
//! scratch. The classifier trusts only this table for "ours"; it is written by the agent
//! alone and never from anything the hub sends.

use castellan_core::{GuestKind, Vmid};
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
        let cited: Option<(i64, String)> = tx
            .prepare_cached("SELECT vmid, guest FROM intents WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([to_i64(intent.0)], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .ctx("reading the intent cited by provenance")?;
        let mismatch = |detail: String| StoreError::ProvenanceMismatch {
            vmid,
            intent,
            detail,
        };
        let Some((intent_vmid, intent_guest)) = cited else {
            return Err(mismatch("no such intent".into()));
        };
        if intent_vmid != i64::from(vmid) {
            return Err(mismatch(format!("the intent is for guest {intent_vmid}")));
        }
        if parse_guest(&intent_guest)? != guest {
            return Err(mismatch(format!(
                "the intent is for a {intent_guest} guest"
            )));
        }
        let eff = advance_clock(&tx, now)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO provenance (vmid, guest, kind, intent_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                i64::from(vmid),
                guest.as_str(),
                kind.as_str(),
                to_i64(intent.0),
                time::to_text(eff),
            ])
        })
        .ctx("recording provenance")?;
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
