//! Signer sets put in force by key rotation. The table keeps the exact bytes each rotation
//! signed; only a version greater than every one before it is ever written (the schema
//! refuses anything else, as does [`Store::put_signer_set`]), and nothing is changed or
//! deleted, so an older set can never come back into force.

use jiff::Timestamp;
use rusqlite::OptionalExtension;

use crate::audit::{AuditEntry, AuditRecord, append_in, from_i64};
use crate::error::SqlContext;
use crate::journal::expect_kind;
use crate::{Store, StoreError, advance_clock, time};

/// A signer set a rotation put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignerSet {
    /// Its version (2 or more: version 1 is the agent's `signers.toml`).
    pub version: u64,
    /// SHA-256 of the document, lower-case hex.
    pub digest: String,
    /// The document's exact bytes, as signed.
    pub document: Vec<u8>,
    /// When it was put in force.
    pub accepted_at: Timestamp,
}

impl Store {
    /// The newest signer set a rotation put in force, if any.
    pub fn signer_set_in_force(&self) -> Result<Option<StoredSignerSet>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT version, digest, document, accepted_at FROM signer_sets \
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .optional()
            })
            .ctx("reading the signer set in force")?;
        let Some((version, digest, document, at)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredSignerSet {
            version: from_i64(version, "signer set version")?,
            digest,
            document,
            accepted_at: time::from_text(&at, "signer set accepted_at")?,
        }))
    }

    /// Puts the signer set `document` (version `version`, SHA-256 `digest`) in force and
    /// appends `event` ([`crate::AuditEvent::SignersRotated`]) in one transaction.
    /// Refused, with nothing written, unless `version` is greater than every set before it
    /// (version 1 being the agent's `signers.toml`).
    pub fn put_signer_set(
        &mut self,
        version: u64,
        digest: &str,
        document: &[u8],
        event: impl Into<AuditEntry>,
        now: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let entry = event.into();
        expect_kind(&entry, "signers_rotated")?;
        let v = i64::try_from(version).map_err(|_| StoreError::StaleSignerSet {
            version,
            in_force: 0,
        })?;
        let tx = self.write_tx("put a signer set in force")?;
        let in_force: i64 = tx
            .query_row(
                "SELECT coalesce(max(version), 1) FROM signer_sets",
                [],
                |r| r.get(0),
            )
            .ctx("reading the signer set in force")?;
        if v <= in_force {
            return Err(StoreError::StaleSignerSet {
                version,
                in_force: from_i64(in_force, "signer set version")?,
            });
        }
        let eff = advance_clock(&tx, now)?;
        tx.execute(
            "INSERT INTO signer_sets (version, digest, document, accepted_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![v, digest, document, time::to_text(eff)],
        )
        .ctx("recording a signer set")?;
        let record = append_in(&tx, entry, eff)?;
        tx.commit().ctx("committing a signer set")?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::AuditEvent;

    fn rotated(version: u64) -> AuditEvent {
        AuditEvent::SignersRotated {
            version,
            replaces: version - 1,
            digest: "ab".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn only_newer_sets_are_ever_put_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let now = Timestamp::now();
        assert_eq!(s.signer_set_in_force().unwrap(), None);
        // Version 1 is signers.toml: never stored, never replaced by another 1.
        assert!(matches!(
            s.put_signer_set(1, "d1", b"v1", rotated(1), now),
            Err(StoreError::StaleSignerSet {
                version: 1,
                in_force: 1
            })
        ));
        s.put_signer_set(3, "d3", b"v3", rotated(3), now).unwrap();
        for older in [2, 3] {
            assert!(matches!(
                s.put_signer_set(older, "dx", b"vx", rotated(older), now),
                Err(StoreError::StaleSignerSet { in_force: 3, .. })
            ));
        }
        let in_force = s.signer_set_in_force().unwrap().unwrap();
        assert_eq!(
            (in_force.version, in_force.document.as_slice()),
            (3, &b"v3"[..])
        );
        // The wrong event is refused; nothing is written.
        assert!(
            s.put_signer_set(4, "d4", b"v4", AuditEvent::AgentStarted, now)
                .is_err()
        );
        assert_eq!(s.signer_set_in_force().unwrap().unwrap().version, 3);
        // The table itself refuses an older row, a change and a deletion.
        for sql in [
            "INSERT INTO signer_sets VALUES (2, 'd', x'00', '2026-01-01T00:00:00Z')",
            "UPDATE signer_sets SET document = x'00'",
            "DELETE FROM signer_sets",
        ] {
            assert!(s.conn.execute(sql, []).is_err(), "{sql}");
        }
        let kinds: Vec<&str> = s
            .audit_records(1, 100)
            .unwrap()
            .iter()
            .map(|r| r.event.kind())
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == "signers_rotated").count(), 1);
    }
}
