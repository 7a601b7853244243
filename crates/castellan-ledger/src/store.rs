//! The ledger directory: an append-only SQLite database and the fingerprint key.
//!
//! ```text
//! DIR/ledger.db          intake and reviewer records (append-only: triggers refuse UPDATE/DELETE)
//! DIR/fingerprint.key    32 random bytes, hex, mode 0600: keys the response ids and secret
//!                        fingerprints, so ledger.db alone reveals nothing guessable
//! DIR/owner-requests.json  the owner request report intake reads by default (written by the operator)
//! DIR/signers.toml       the reviewer signer configuration (castellan-sig format)
//! ```
//!
//! Idempotency: an intake record is keyed by its response id (keyed hash of the response
//! bytes), a reviewer record by the SHA-256 of its payload; appending either twice keeps
//! the first and reports it. Every write is one transaction with `synchronous = FULL`.
//!
//! Superseding (schema 2): `ledger rescan` appends a `supersede` record for an intake
//! record that the current rules quarantine. It wins over that intake record everywhere
//! ([`Ledger::intakes`] returns it in the intake's place). In the same transaction, and
//! only then, the superseded intake row is scrubbed: its stored record loses the response
//! ([`IntakeRecord::scrubbed`]) and is marked `scrubbed`. That is the one change the
//! append-only triggers let through: once per row, keeping its id, candidate, lane and
//! time, and only when a `supersede` record for it exists. With `secure_delete` on and the
//! WAL checkpointed and truncated afterwards, the scrubbed bytes are left in neither
//! `ledger.db` nor its WAL.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::intake::IntakeRecord;
use crate::review::{ReviewPayload, StoredReview};
use crate::secrets::FingerprintKey;

/// The database file name.
pub const DB_FILE: &str = "ledger.db";
/// The key file name.
pub const KEY_FILE: &str = "fingerprint.key";
/// The default owner request report in the ledger directory.
pub const REQUESTS_FILE: &str = "owner-requests.json";
/// The default signer configuration in the ledger directory.
pub const SIGNERS_FILE: &str = "signers.toml";

const APPLICATION_ID: i64 = 0x4353_4C47; // "CSLG"
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE intake (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    response_id TEXT NOT NULL UNIQUE,
    candidate_id TEXT NOT NULL,
    lane TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX intake_candidate ON intake(candidate_id, seq);
CREATE TABLE review (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    candidate_id TEXT NOT NULL,
    response_id TEXT NOT NULL,
    signer TEXT NOT NULL,
    decision TEXT NOT NULL,
    payload BLOB NOT NULL,
    signature BLOB NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX review_candidate ON review(candidate_id, seq);
CREATE TRIGGER intake_no_update BEFORE UPDATE ON intake
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
CREATE TRIGGER intake_no_delete BEFORE DELETE ON intake
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
CREATE TRIGGER review_no_update BEFORE UPDATE ON review
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
CREATE TRIGGER review_no_delete BEFORE DELETE ON review
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
";

/// Schema 1 → 2: superseding records, and the scrub of a superseded intake row.
const MIGRATION_2: &str = "
ALTER TABLE intake ADD COLUMN scrubbed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE supersede (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    intake_seq INTEGER NOT NULL UNIQUE REFERENCES intake(seq),
    candidate_id TEXT NOT NULL,
    lane TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TRIGGER supersede_no_update BEFORE UPDATE ON supersede
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
CREATE TRIGGER supersede_no_delete BEFORE DELETE ON supersede
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
DROP TRIGGER intake_no_update;
CREATE TRIGGER intake_no_update BEFORE UPDATE ON intake
    WHEN NOT (OLD.scrubbed = 0 AND NEW.scrubbed = 1
        AND NEW.seq = OLD.seq AND NEW.response_id = OLD.response_id
        AND NEW.candidate_id = OLD.candidate_id AND NEW.lane = OLD.lane
        AND NEW.recorded_at = OLD.recorded_at
        AND EXISTS (SELECT 1 FROM supersede WHERE intake_seq = OLD.seq))
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
";

/// Why the ledger could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The directory does not exist (read-only opens never create it).
    #[error("{}: ledger directory does not exist", .0.display())]
    Missing(PathBuf),
    /// File-system trouble.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file is unusable.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The database is not a castellan ledger, or from a newer castellan.
    #[error("{}: {reason}", path.display())]
    Foreign {
        /// The database.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// SQLite failed.
    #[error("ledger database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored record does not parse (the database was edited by hand).
    #[error("ledger record {table}#{seq} is corrupt: {reason}")]
    Corrupt {
        /// `intake` or `review`.
        table: &'static str,
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

/// Whether an append wrote a new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new record, with its sequence number.
    New(i64),
    /// The same record was already there (its sequence number and time).
    Existing(i64, String),
}

/// An intake record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIntake {
    /// Append order.
    pub seq: i64,
    /// When it was appended (RFC 3339 UTC).
    pub recorded_at: String,
    /// The record in force: the superseding record when there is one.
    pub record: IntakeRecord,
    /// The record that superseded the one appended, if any.
    pub superseded: Option<Supersession>,
}

/// A superseding record's own details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersession {
    /// Its sequence number (in the `supersede` table).
    pub seq: i64,
    /// When it was appended.
    pub recorded_at: String,
    /// Why (`rescan`).
    pub reason: String,
    /// The lane of the record it superseded.
    pub original_lane: String,
}

/// A reviewer record as stored (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReviewRow {
    /// Append order.
    pub seq: i64,
    /// When it was appended.
    pub recorded_at: String,
    /// The candidate.
    pub candidate_id: String,
    /// Payload and signature.
    pub review: StoredReview,
}

/// An open ledger directory.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    conn: Connection,
    key: FingerprintKey,
    /// The database's schema version (a read-only open leaves an older one as it is).
    version: i64,
}

fn io(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Ledger {
    /// Opens the ledger in `dir`, creating the directory, database and key on first use.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let key = load_or_create_key(&dir.join(KEY_FILE), !dir.join(DB_FILE).exists())?;
        let (conn, version) = open_db(&dir.join(DB_FILE), true)?;
        Ok(Self {
            dir: dir.to_owned(),
            conn,
            key,
            version,
        })
    }

    /// Opens an existing ledger for reading; creates nothing.
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(LedgerError::Missing(dir.to_owned()));
        }
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(LedgerError::Io {
                path: db,
                reason: "no ledger database (nothing was recorded yet)".into(),
            });
        }
        let key = load_or_create_key(&dir.join(KEY_FILE), false)?;
        let (conn, version) = open_db(&db, false)?;
        Ok(Self {
            dir: dir.to_owned(),
            conn,
            key,
            version,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fingerprint key.
    pub fn key(&self) -> &FingerprintKey {
        &self.key
    }

    /// Appends an intake record unless one with the same response id exists.
    pub fn append_intake(
        &mut self,
        record: &IntakeRecord,
        recorded_at: &str,
    ) -> Result<Appended, LedgerError> {
        let json = serde_json::to_string(record).map_err(|e| LedgerError::Corrupt {
            table: "intake",
            seq: 0,
            reason: e.to_string(),
        })?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, recorded_at FROM intake WHERE response_id = ?1",
                [&record.response_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((seq, at)) = existing {
            return Ok(Appended::Existing(seq, at));
        }
        tx.execute(
            "INSERT INTO intake (response_id, candidate_id, lane, recorded_at, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![record.response_id, record.candidate_id, record.lane, recorded_at, json],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Appended::New(seq))
    }

    /// Every intake record, in append order; a superseded one is replaced by the record
    /// that superseded it.
    pub fn intakes(&self) -> Result<Vec<StoredIntake>, LedgerError> {
        let sql = if self.version >= 2 {
            "SELECT i.seq, i.recorded_at, i.record, i.lane, s.seq, s.recorded_at, s.reason, s.record
             FROM intake i LEFT JOIN supersede s ON s.intake_seq = i.seq ORDER BY i.seq"
        } else {
            "SELECT seq, recorded_at, record, lane, NULL, NULL, NULL, NULL FROM intake ORDER BY seq"
        };
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
                (r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        let parse = |table: &'static str, seq: i64, json: &str| {
            serde_json::from_str::<IntakeRecord>(json).map_err(|e| LedgerError::Corrupt {
                table,
                seq,
                reason: e.to_string(),
            })
        };
        let mut out = Vec::new();
        for row in rows {
            let ((seq, recorded_at), (json, lane), s_seq, s_at, s_reason, s_json) = row?;
            let (record, superseded) = match (s_seq, s_at, s_reason, s_json) {
                (Some(s_seq), Some(at), Some(reason), Some(json)) => (
                    parse("supersede", s_seq, &json)?,
                    Some(Supersession {
                        seq: s_seq,
                        recorded_at: at,
                        reason,
                        original_lane: lane,
                    }),
                ),
                _ => (parse("intake", seq, &json)?, None),
            };
            out.push(StoredIntake {
                seq,
                recorded_at,
                record,
                superseded,
            });
        }
        Ok(out)
    }

    /// Appends `superseding` in place of intake record `intake_seq` and scrubs that row
    /// (see the module documentation), unless it is superseded already. Then checkpoints
    /// and truncates the WAL, so the scrubbed bytes are gone from the files too.
    pub fn supersede(
        &mut self,
        intake_seq: i64,
        superseding: &IntakeRecord,
        reason: &str,
        recorded_at: &str,
    ) -> Result<Appended, LedgerError> {
        let corrupt = |e: serde_json::Error| LedgerError::Corrupt {
            table: "supersede",
            seq: 0,
            reason: e.to_string(),
        };
        let json = serde_json::to_string(superseding).map_err(corrupt)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, recorded_at FROM supersede WHERE intake_seq = ?1",
                [intake_seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((seq, at)) = existing {
            return Ok(Appended::Existing(seq, at));
        }
        let original: String = tx.query_row(
            "SELECT record FROM intake WHERE seq = ?1",
            [intake_seq],
            |r| r.get(0),
        )?;
        let scrubbed = serde_json::from_str::<IntakeRecord>(&original)
            .map_err(|e| LedgerError::Corrupt {
                table: "intake",
                seq: intake_seq,
                reason: e.to_string(),
            })?
            .scrubbed();
        let scrubbed = serde_json::to_string(&scrubbed).map_err(corrupt)?;
        tx.execute(
            "INSERT INTO supersede (intake_seq, candidate_id, lane, reason, recorded_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                intake_seq,
                superseding.candidate_id,
                superseding.lane,
                reason,
                recorded_at,
                json
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.execute(
            "UPDATE intake SET record = ?1, scrubbed = 1 WHERE seq = ?2",
            params![scrubbed, intake_seq],
        )?;
        tx.commit()?;
        // Checkpoint into ledger.db and truncate the WAL: no frame with the old row stays.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(Appended::New(seq))
    }

    /// Appends a verified reviewer record unless the same payload is there already.
    pub fn append_review(
        &mut self,
        payload: &ReviewPayload,
        signer: &str,
        signature: &[u8],
        recorded_at: &str,
    ) -> Result<Appended, LedgerError> {
        let record_id = payload.record_id();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, recorded_at FROM review WHERE record_id = ?1",
                [&record_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((seq, at)) = existing {
            return Ok(Appended::Existing(seq, at));
        }
        tx.execute(
            "INSERT INTO review (record_id, candidate_id, response_id, signer, decision, payload, signature, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                record_id,
                payload.candidate,
                payload.response,
                signer,
                payload.decision.as_str(),
                payload.render().into_bytes(),
                signature,
                recorded_at
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Appended::New(seq))
    }

    /// Every reviewer record, in append order.
    pub fn reviews(&self) -> Result<Vec<StoredReviewRow>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, recorded_at, candidate_id, payload, signature FROM review ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredReviewRow {
                seq: r.get(0)?,
                recorded_at: r.get(1)?,
                candidate_id: r.get(2)?,
                review: StoredReview {
                    payload: r.get(3)?,
                    signature: r.get(4)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn open_db(path: &Path, create: bool) -> Result<(Connection, i64), LedgerError> {
    let flags = if create {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| io(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let foreign = |reason: String| LedgerError::Foreign {
        path: path.to_owned(),
        reason,
    };
    if app == 0 && version == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables != 0 {
            return Err(foreign(
                "an SQLite database that is not a castellan ledger".into(),
            ));
        }
        if !create {
            return Err(foreign("an empty database, not a castellan ledger".into()));
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(MIGRATION_2)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
    } else if app != APPLICATION_ID {
        return Err(foreign("not a castellan ledger database".into()));
    } else if version > SCHEMA_VERSION {
        return Err(foreign(format!(
            "ledger schema {version} is newer than this castellan ({SCHEMA_VERSION})"
        )));
    }
    let mut version = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
    if create {
        if version == 1 {
            // Each migration in one transaction with its version bump.
            let tx = conn.transaction()?;
            tx.execute_batch(MIGRATION_2)?;
            tx.pragma_update(None, "user_version", 2)?;
            tx.commit()?;
            version = 2;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted and overwritten content is zeroed, not left in free space: a scrubbed
        // record leaves nothing behind.
        conn.pragma_update(None, "secure_delete", "ON")?;
    }
    Ok((conn, version))
}

fn load_or_create_key(path: &Path, may_create: bool) -> Result<FingerprintKey, LedgerError> {
    let bad = |reason: &str| LedgerError::Key {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| bad("not hex"))?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("must hold 32 bytes (64 hex digits)"))?;
            Ok(FingerprintKey::from_bytes(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let key = FingerprintKey::generate();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|e| io(path, e))?;
            f.write_all(format!("{}\n", hex::encode(key.as_bytes())).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io(path, e))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(
            "missing: the ledger's response ids and fingerprints cannot be matched without it",
        )),
        Err(e) => Err(io(path, e)),
    }
}
