//! The embedded store: one SQLite database (`hub.db`) in WAL mode.
//!
//! Calls run on tokio's blocking pool. Writes go through one connection (SQLite allows
//! one writer at a time anyway); reads use a small pool of their own connections, which
//! WAL lets run beside the writer. Migrations are embedded, numbered, each applied in
//! one transaction with its version bump; a database from a newer castellan is refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use super::{
    HostRecord, HubStore, LedgerReport, RelayedOp, Revision, RevisionMeta, SEEN_GRANULARITY_MS,
    StoreError, StoredAuditProblem, ms, num, opt_ts, ts,
};
use crate::token::TokenHash;

/// The database file's name inside the hub's data directory.
pub const DB_FILE: &str = "hub.db";

/// Each migration, in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: hosts, tokens, revisions, reports, relayed ops.
    "CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        credential BLOB UNIQUE,
        enrolled_at INTEGER,
        revoked_at INTEGER,
        last_seen INTEGER,
        report TEXT,
        report_at INTEGER
    );
    CREATE TABLE enrol_tokens (
        hash BLOB PRIMARY KEY,
        host TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE revisions (
        host TEXT NOT NULL,
        revision INTEGER NOT NULL,
        document TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (host, revision)
    );
    CREATE TABLE ops (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        op BLOB NOT NULL,
        sigs TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        submitted_at INTEGER NOT NULL,
        delivered_at INTEGER
    );
    CREATE INDEX ops_by_host ON ops (host, id);",
    // 2: the database's identity, so an agent notices it is talking to another one.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('hub_id', lower(hex(randomblob(16))));",
    // 3: each host's verified audit chain, and what was wrong with its uploads.
    "CREATE TABLE audit_records (
        host TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (host, seq)
    );
    CREATE TABLE audit_problems (
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq INTEGER NOT NULL,
        detail TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (host, kind, seq)
    );",
    // 4: chains set aside by `castellan hub audit-reset`, kept.
    "CREATE TABLE audit_archive (
        host TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        archived_at INTEGER NOT NULL
    );
    CREATE INDEX audit_archive_by_host ON audit_archive (host, archived_at, seq);",
    // 5: the host-service ledger's acceptance reports, as operators push them.
    "CREATE TABLE ledger_reports (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        document TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );",
];

/// Readers kept beside the writer.
const READERS: usize = 4;

/// The SQLite store. Cloning shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if need be) `hub.db` in `dir`, which must exist, and brings its
    /// schema up to date.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        let mut writer = open_conn(&path)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{}: cannot switch to WAL (journal mode {mode})",
                path.display()
            )));
        }
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        migrate(&mut writer, &path)?;
        let readers = (0..READERS)
            .map(|_| open_conn(&path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Backend("writer connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // Any free reader; otherwise wait on one chosen at random.
            for r in &inner.readers {
                if let Ok(conn) = r.try_lock() {
                    return f(&conn);
                }
            }
            let pick = rand::random_range(0..inner.readers.len());
            let conn = inner.readers[pick]
                .lock()
                .map_err(|_| StoreError::Backend("reader connection poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Backend(format!(
            "{} has schema version {version}, this castellan knows up to {known}: refusing to downgrade",
            path.display()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(event = "hub_schema_migrated", version = i + 1, path = %path.display());
    }
    Ok(())
}

fn read_revision(
    r: &rusqlite::Row<'_>,
    host: &str,
) -> rusqlite::Result<(i64, String, String, i64)> {
    let _ = host;
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_revision(host: &str, row: (i64, String, String, i64)) -> Result<Revision, StoreError> {
    Ok(Revision {
        host: host.to_owned(),
        revision: num(row.0)?,
        document: row.1,
        author: row.2,
        created_at: ts(row.3)?,
    })
}

fn to_op(
    row: (i64, String, Vec<u8>, String, String, i64, Option<i64>),
) -> Result<RelayedOp, StoreError> {
    let sigs: Vec<String> = serde_json::from_str(&row.3)
        .map_err(|e| StoreError::Backend(format!("stored signatures of op {}: {e}", row.0)))?;
    Ok(RelayedOp {
        id: num(row.0)?,
        host: row.1,
        op: row.2,
        sigs: sigs.into_iter().map(String::into_bytes).collect(),
        submitted_by: row.4,
        submitted_at: ts(row.5)?,
        delivered_at: opt_ts(row.6)?,
    })
}

impl SqliteStore {
    async fn host_records(&self, only: Option<String>) -> Result<Vec<HostRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT h.host, h.enrolled_at, h.revoked_at, h.last_seen, h.report, h.report_at,
                            (SELECT MAX(revision) FROM revisions r WHERE r.host = h.host),
                            (SELECT MAX(seq) FROM audit_records a WHERE a.host = h.host),
                            (SELECT COUNT(*) FROM audit_problems p WHERE p.host = h.host)
                     FROM hosts h WHERE ?1 IS NULL OR h.host = ?1 ORDER BY h.host",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![only], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, i64>(8)?,
                    ))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (host, enrolled, revoked, seen, report, report_at, rev, audit_seq, problems) =
                    row.map_err(db)?;
                let report = match (report, report_at) {
                    (Some(r), Some(at)) => Some((ts(at)?, r)),
                    _ => None,
                };
                out.push(HostRecord {
                    host,
                    enrolled_at: opt_ts(enrolled)?,
                    revoked_at: opt_ts(revoked)?,
                    last_seen: opt_ts(seen)?,
                    desired_revision: rev.map(num).transpose()?,
                    report,
                    audit_seq: audit_seq.map(num).transpose()?,
                    audit_problems: usize::try_from(problems).unwrap_or(0),
                });
            }
            Ok(out)
        })
        .await
    }
}

/// The relayed ops a `SELECT id, host, op, sigs, submitted_by, submitted_at,
/// delivered_at FROM ops ...` statement yields.
fn select_ops(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<RelayedOp>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(to_op(row.map_err(db)?)?);
    }
    Ok(out)
}

impl HubStore for SqliteStore {
    async fn audit_head(&self, host: &str) -> Result<Option<(u64, String)>, StoreError> {
        let host = host.to_owned();
        self.read(move |c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT seq, hash FROM audit_records WHERE host = ?1 ORDER BY seq DESC LIMIT 1",
                    params![host],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            row.map(|(seq, hash)| Ok((num(seq)?, hash))).transpose()
        })
        .await
    }

    async fn append_audit(
        &self,
        host: &str,
        held_seq: u64,
        records: Vec<crate::audit::VerifiedRecord>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let host = host.to_owned();
        self.write(move |c| {
            let tx = c.transaction().map_err(db)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT MAX(seq) FROM audit_records WHERE host = ?1",
                    params![host],
                    |r| r.get(0),
                )
                .map_err(db)?;
            let current = current.map(num).transpose()?.unwrap_or(0);
            if current != held_seq {
                return Err(StoreError::Conflict {
                    host,
                    current,
                    based_on: held_seq,
                });
            }
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO audit_records (host, seq, hash, line, received_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(db)?;
                for r in &records {
                    let seq = i64::try_from(r.seq).map_err(|_| {
                        StoreError::Backend(format!("audit seq {} too large", r.seq))
                    })?;
                    stmt.execute(params![host, seq, r.hash, r.line, ms(now)])
                        .map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn audit_lines(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let host = host.to_owned();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT line FROM audit_records WHERE host = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![host, after, limit], |r| r.get::<_, String>(0))
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
        .await
    }

    async fn flag_audit(
        &self,
        host: &str,
        kind: &str,
        seq: u64,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (host, kind, detail) = (host.to_owned(), kind.to_owned(), detail.to_owned());
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute(
                "INSERT INTO audit_problems (host, kind, seq, detail, first_seen, last_seen, count)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?5, 1
                 WHERE (SELECT COUNT(*) FROM audit_problems WHERE host = ?1) < ?6
                    OR EXISTS (SELECT 1 FROM audit_problems WHERE host = ?1 AND kind = ?2 AND seq = ?3)
                 ON CONFLICT (host, kind, seq) DO UPDATE
                 SET last_seen = excluded.last_seen, count = count + 1",
                params![host, kind, seq, detail, ms(now), super::MAX_PROBLEMS_PER_HOST],
            )
            .map_err(db)
            .map(drop)
        })
        .await
    }

    async fn reset_audit(&self, host: &str, now: Timestamp) -> Result<u64, StoreError> {
        let host = host.to_owned();
        self.write(move |c| {
            let tx = c.transaction().map_err(db)?;
            let n = tx
                .execute(
                    "INSERT INTO audit_archive (host, seq, hash, line, received_at, archived_at)
                     SELECT host, seq, hash, line, received_at, ?2 FROM audit_records WHERE host = ?1",
                    params![host, ms(now)],
                )
                .map_err(db)?;
            tx.execute("DELETE FROM audit_records WHERE host = ?1", params![host])
                .map_err(db)?;
            tx.execute("DELETE FROM audit_problems WHERE host = ?1", params![host])
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n as u64)
        })
        .await
    }

    async fn audit_problems(&self, host: &str) -> Result<Vec<StoredAuditProblem>, StoreError> {
        let host = host.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT kind, seq, detail, first_seen, last_seen, count FROM audit_problems
                     WHERE host = ?1 ORDER BY first_seen, seq",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![host], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, seq, detail, first, last, count) = row.map_err(db)?;
                out.push(StoredAuditProblem {
                    kind,
                    seq: num(seq)?,
                    detail,
                    first_seen: ts(first)?,
                    last_seen: ts(last)?,
                    count: num(count)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn hub_id(&self) -> Result<String, StoreError> {
        self.read(|c| {
            c.query_row("SELECT value FROM meta WHERE key = 'hub_id'", [], |r| {
                r.get(0)
            })
            .map_err(db)
        })
        .await
    }

    async fn create_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let host = host.to_owned();
        self.write(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                "INSERT INTO enrol_tokens (hash, host, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![&hash.0[..], host, ms(now), ms(expires_at)],
            )
            .map_err(db)?;
            tx.execute(
                "INSERT INTO hosts (host) VALUES (?1) ON CONFLICT (host) DO NOTHING",
                params![host],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn redeem_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        credential: TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let host = host.to_owned();
        self.write(move |c| {
            let tx = c.transaction().map_err(db)?;
            let used = tx
                .execute(
                    "UPDATE enrol_tokens SET used_at = ?1
                     WHERE hash = ?2 AND host = ?3 AND used_at IS NULL AND expires_at > ?1",
                    params![ms(now), &hash.0[..], host],
                )
                .map_err(db)?;
            if used != 1 {
                return Err(StoreError::EnrolRefused);
            }
            tx.execute(
                "INSERT INTO hosts (host, credential, enrolled_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (host) DO UPDATE
                 SET credential = excluded.credential, enrolled_at = excluded.enrolled_at,
                     revoked_at = NULL",
                params![host, &credential.0[..], ms(now)],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn host_for_credential(
        &self,
        hash: TokenHash,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let found = self
            .read(move |c| {
                c.query_row(
                    "SELECT host, last_seen FROM hosts WHERE credential = ?1 AND revoked_at IS NULL",
                    params![&hash.0[..]],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)),
                )
                .optional()
                .map_err(db)
            })
            .await?;
        let Some((host, seen)) = found else {
            return Ok(None);
        };
        if seen.is_none_or(|s| ms(now) - s >= SEEN_GRANULARITY_MS) {
            let h = host.clone();
            self.write(move |c| {
                c.execute(
                    "UPDATE hosts SET last_seen = ?1 WHERE host = ?2",
                    params![ms(now), h],
                )
                .map(drop)
                .map_err(db)
            })
            .await?;
        }
        Ok(Some(host))
    }

    async fn revoke_host(&self, host: &str, now: Timestamp) -> Result<(), StoreError> {
        let host = host.to_owned();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE hosts SET revoked_at = ?1, credential = NULL WHERE host = ?2",
                    params![ms(now), host],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("host {host}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_operator_token(
        &self,
        name: &str,
        hash: TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            let exists: bool = c
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM operators WHERE name = ?1 AND revoked_at IS NULL)",
                    params![name],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if exists {
                return Err(StoreError::Exists(format!("operator {name}")));
            }
            c.execute(
                "INSERT INTO operators (name, hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE
                 SET hash = excluded.hash, created_at = excluded.created_at, revoked_at = NULL",
                params![name, &hash.0[..], ms(now)],
            )
            .map(drop)
            .map_err(db)
        })
        .await
    }

    async fn operator_for_token(&self, hash: TokenHash) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT name FROM operators WHERE hash = ?1 AND revoked_at IS NULL",
                params![&hash.0[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn put_ledger_report(
        &self,
        document: &str,
        author: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (document, author) = (document.to_owned(), author.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO ledger_reports (document, author, created_at) VALUES (?1, ?2, ?3)",
                params![document, author, ms(now)],
            )
            .map_err(db)?;
            num(c.last_insert_rowid())
        })
        .await
    }

    async fn latest_ledger_report(&self) -> Result<Option<LedgerReport>, StoreError> {
        self.read(|c| {
            let row = c
                .query_row(
                    "SELECT number, document, author, created_at FROM ledger_reports
                     ORDER BY number DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(db)?;
            row.map(|(n, document, author, at): (i64, String, String, i64)| {
                Ok(LedgerReport {
                    number: num(n)?,
                    document,
                    author,
                    created_at: ts(at)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revoke_operator(&self, name: &str, now: Timestamp) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE operators SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
                    params![ms(now), name],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("operator {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn put_revision(
        &self,
        host: &str,
        document: &str,
        author: &str,
        based_on: u64,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (host, document, author) = (host.to_owned(), document.to_owned(), author.to_owned());
        self.write(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
            let current: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE host = ?1",
                    params![host],
                    |r| r.get(0),
                )
                .map_err(db)?;
            let current = num(current)?;
            if current != based_on {
                return Err(StoreError::Conflict {
                    host,
                    current,
                    based_on,
                });
            }
            let next = current + 1;
            let sha = hex::encode(Sha256::digest(document.as_bytes()));
            tx.execute(
                "INSERT INTO revisions (host, revision, document, sha256, author, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![host, next as i64, document, sha, author, ms(now)],
            )
            .map_err(db)?;
            tx.execute(
                "INSERT INTO hosts (host) VALUES (?1) ON CONFLICT (host) DO NOTHING",
                params![host],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(next)
        })
        .await
    }

    async fn latest_revision(&self, host: &str) -> Result<Option<Revision>, StoreError> {
        let host = host.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT revision, document, author, created_at FROM revisions
                     WHERE host = ?1 ORDER BY revision DESC LIMIT 1",
                    params![host],
                    |r| read_revision(r, &host),
                )
                .optional()
                .map_err(db)?;
            row.map(|row| to_revision(&host, row)).transpose()
        })
        .await
    }

    async fn revision_after(&self, host: &str, after: u64) -> Result<Option<Revision>, StoreError> {
        let host = host.to_owned();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT revision, document, author, created_at FROM revisions
                     WHERE host = ?1 AND revision > ?2 ORDER BY revision DESC LIMIT 1",
                    params![host, after],
                    |r| read_revision(r, &host),
                )
                .optional()
                .map_err(db)?;
            row.map(|row| to_revision(&host, row)).transpose()
        })
        .await
    }

    async fn revision(&self, host: &str, revision: u64) -> Result<Option<Revision>, StoreError> {
        let host = host.to_owned();
        let Ok(n) = i64::try_from(revision) else {
            return Ok(None);
        };
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT revision, document, author, created_at FROM revisions
                     WHERE host = ?1 AND revision = ?2",
                    params![host, n],
                    |r| read_revision(r, &host),
                )
                .optional()
                .map_err(db)?;
            row.map(|row| to_revision(&host, row)).transpose()
        })
        .await
    }

    async fn history(&self, host: &str, limit: u32) -> Result<Vec<RevisionMeta>, StoreError> {
        let host = host.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT revision, author, created_at, sha256 FROM revisions
                     WHERE host = ?1 ORDER BY revision DESC LIMIT ?2",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![host, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (rev, author, at, sha256) = row.map_err(db)?;
                out.push(RevisionMeta {
                    revision: num(rev)?,
                    author,
                    created_at: ts(at)?,
                    sha256,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_report(&self, host: &str, report: &str, now: Timestamp) -> Result<(), StoreError> {
        let (host, report) = (host.to_owned(), report.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE hosts SET report = ?1, report_at = ?2, last_seen = ?2 WHERE host = ?3",
                params![report, ms(now), host],
            )
            .map(drop)
            .map_err(db)
        })
        .await
    }

    async fn host(&self, host: &str) -> Result<Option<HostRecord>, StoreError> {
        let host = host.to_owned();
        Ok(self.host_records(Some(host)).await?.into_iter().next())
    }

    async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.host_records(None).await
    }

    async fn submit_op(
        &self,
        host: &str,
        op: &[u8],
        sigs: &[Vec<u8>],
        submitted_by: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let sig_texts = sigs
            .iter()
            .map(|s| String::from_utf8(s.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| StoreError::Backend("a signature is not text".into()))?;
        let sigs =
            serde_json::to_string(&sig_texts).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (host, op, by) = (host.to_owned(), op.to_vec(), submitted_by.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO ops (host, op, sigs, submitted_by, submitted_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![host, op, sigs, by, ms(now)],
            )
            .map_err(db)?;
            num(c.last_insert_rowid())
        })
        .await
    }

    async fn ops_after(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RelayedOp>, StoreError> {
        let host = host.to_owned();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, host, op, sigs, submitted_by, submitted_at, delivered_at FROM ops
                     WHERE host = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(db)?;
            select_ops(&mut stmt, params![host, after, limit])
        })
        .await
    }

    async fn ops_newest(
        &self,
        host: &str,
        text: Option<&[u8]>,
        limit: u32,
    ) -> Result<Vec<RelayedOp>, StoreError> {
        let host = host.to_owned();
        let text = text.map(<[u8]>::to_vec);
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, host, op, sigs, submitted_by, submitted_at, delivered_at FROM ops
                     WHERE host = ?1 AND (?2 IS NULL OR op = ?2) ORDER BY id DESC LIMIT ?3",
                )
                .map_err(db)?;
            select_ops(&mut stmt, params![host, text, limit])
        })
        .await
    }

    async fn mark_delivered(
        &self,
        host: &str,
        upto: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let host = host.to_owned();
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute(
                "UPDATE ops SET delivered_at = ?1 WHERE host = ?2 AND id <= ?3 AND delivered_at IS NULL",
                params![ms(now), host, upto],
            )
            .map(drop)
            .map_err(db)
        })
        .await
    }
}
