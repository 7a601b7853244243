//! The state's epoch: where this database's state began. The gate refuses every op whose
//! validity began before it, so a lost or replaced database (and with it the record of
//! consumed nonces) can never revive an op that was used before.

use jiff::Timestamp;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, append_in};
use crate::error::SqlContext;
use crate::{Store, StoreError, advance_clock, time};

/// Where this state began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// A random id, also kept in the data directory (`state.id`) so a database swapped
    /// for another, or lost, is noticed.
    pub state_id: String,
    /// When the state began (effective time). No op valid from before then is accepted.
    pub created_at: Timestamp,
    /// The state id this state replaced after an operator accepted the loss of the
    /// earlier one.
    pub replaced: Option<String>,
}

impl Store {
    /// This state's epoch, once [`Store::begin_epoch`] has run.
    pub fn epoch(&self) -> Result<Option<Epoch>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .conn
            .prepare_cached("SELECT state_id, created_at, replaced FROM epoch WHERE id = 1")
            .and_then(|mut s| {
                s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .ctx("reading the state epoch")?;
        row.map(|(state_id, created_at, replaced)| {
            Ok(Epoch {
                state_id,
                created_at: time::from_text(&created_at, "epoch created_at")?,
                replaced,
            })
        })
        .transpose()
    }

    /// Records where this state began, if it has no epoch yet, and audits it
    /// ([`AuditEvent::StateCreated`]). A store that already holds records began with its
    /// first audit record; a new one begins now (effective time). Returns the epoch in
    /// force (the existing one, unchanged, if there is one).
    pub fn begin_epoch(
        &mut self,
        state_id: &str,
        replaced: Option<&str>,
        now: Timestamp,
    ) -> Result<Epoch, StoreError> {
        if let Some(e) = self.epoch()? {
            return Ok(e);
        }
        let tx = self.write_tx("begin the state epoch")?;
        let first: Option<String> = tx
            .prepare_cached("SELECT time FROM audit ORDER BY seq LIMIT 1")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .ctx("reading the first audit record")?;
        let eff = advance_clock(&tx, now)?;
        let began = match first {
            Some(t) => time::from_text(&t, "audit time")?,
            None => eff,
        };
        // Ops carry whole seconds: the state begins at the start of its second, so a
        // payload written in that same second is not taken for an older one.
        let created_at = Timestamp::from_second(began.as_second()).unwrap_or(began);
        tx.prepare_cached(
            "INSERT INTO epoch (id, state_id, created_at, replaced) VALUES (1, ?1, ?2, ?3)",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                state_id,
                time::to_text(created_at),
                replaced
            ])
        })
        .ctx("recording the state epoch")?;
        append_in(
            &tx,
            AuditEvent::StateCreated {
                state_id: state_id.to_owned(),
                since: time::to_text(created_at),
                replaced: replaced.map(str::to_owned),
            }
            .into(),
            eff,
        )?;
        tx.commit().ctx("committing the state epoch")?;
        Ok(Epoch {
            state_id: state_id.to_owned(),
            created_at,
            replaced: replaced.map(str::to_owned),
        })
    }
}
