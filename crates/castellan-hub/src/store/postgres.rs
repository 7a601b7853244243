//! The PostgreSQL store, for a fleet served by several hub processes.
//!
//! Connections come from a pool; every method is one transaction. Writes that concern a
//! host (a revision, an op) send `NOTIFY castellan_hub, '<host>'` inside their
//! transaction, so the notification goes out exactly when the write is visible; one
//! dedicated connection per hub process `LISTEN`s and feeds [`Change`]s to the hub, which
//! wakes that host's long-polls. When the listening connection drops, it reconnects and
//! announces [`Change::All`] (a notification may have been missed meanwhile).
//!
//! Migrations are embedded and numbered; they run under an advisory lock, so hubs
//! starting together apply each exactly once, and a database from a newer castellan is
//! refused. Desired-state revisions and audit appends lock the host's row, so two hubs
//! writing for one host serialise and the loser gets [`StoreError::Conflict`].

use std::time::Duration;

use deadpool_postgres::{Pool, Runtime};
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    Change, HostRecord, HubStore, LedgerReport, RelayedOp, Revision, RevisionMeta,
    SEEN_GRANULARITY_MS, StoreError, StoredAuditProblem, big, ms, num, opt_ts, ts,
};
use crate::token::TokenHash;

/// The channel writes notify on.
pub const CHANNEL: &str = "castellan_hub";

/// Each migration, in order; `castellan_hub_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store's migrations 1-3 hold.
    "CREATE TABLE hosts (
        host TEXT PRIMARY KEY,
        credential BYTEA UNIQUE,
        enrolled_at BIGINT,
        revoked_at BIGINT,
        last_seen BIGINT,
        report TEXT,
        report_at BIGINT
    );
    CREATE TABLE enrol_tokens (
        hash BYTEA PRIMARY KEY,
        host TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT
    );
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        hash BYTEA NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE revisions (
        host TEXT NOT NULL,
        revision BIGINT NOT NULL,
        document TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (host, revision)
    );
    CREATE TABLE ops (
        id BIGSERIAL PRIMARY KEY,
        host TEXT NOT NULL,
        op BYTEA NOT NULL,
        sigs TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        submitted_at BIGINT NOT NULL,
        delivered_at BIGINT
    );
    CREATE INDEX ops_by_host ON ops (host, id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('hub_id', md5(random()::text || clock_timestamp()::text));
    CREATE TABLE audit_records (
        host TEXT NOT NULL,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (host, seq)
    );
    CREATE TABLE audit_problems (
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq BIGINT NOT NULL,
        detail TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (host, kind, seq)
    );",
    // 2: chains set aside by `castellan hub audit-reset`, kept.
    "CREATE TABLE audit_archive (
        host TEXT NOT NULL,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        line TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        archived_at BIGINT NOT NULL
    );
    CREATE INDEX audit_archive_by_host ON audit_archive (host, archived_at, seq);",
    // 3: the host-service ledger's acceptance reports, as operators push them.
    "CREATE TABLE ledger_reports (
        number BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        document TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );",
];

/// The advisory lock migrations run under (any fixed number; "castellan" in ASCII-ish).
const MIGRATION_LOCK: i64 = 0x6361_7374_656c;

/// Most pooled connections per hub process.
const POOL_SIZE: usize = 16;

/// The PostgreSQL store. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    changes: broadcast::Sender<Change>,
    /// Dropped with the last clone: the listener then stops.
    _alive: std::sync::Arc<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    // The driver's message names the failure (and the server's SQLSTATE text), never
    // the connection string.
    StoreError::Backend(match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    })
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("no database connection: {e}"))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host/db`), brings its schema
    /// up to date and starts listening for other hubs' changes.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("--database-url: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(pool_err)?;
            migrate(&mut client).await?;
        }
        let (changes, _) = broadcast::channel(4096);
        let (alive, alive_rx) = tokio::sync::watch::channel(());
        tokio::spawn(listen(config, changes.clone(), alive_rx));
        Ok(PgStore {
            pool,
            changes,
            _alive: std::sync::Arc::new(alive),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await.map_err(db)?;
        c.query_opt(&stmt, params).await.map_err(db)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await.map_err(db)?;
        c.query(&stmt, params).await.map_err(db)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await.map_err(db)?;
        c.execute(&stmt, params).await.map_err(db)
    }

    async fn host_records(&self, only: Option<&str>) -> Result<Vec<HostRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT h.host, h.enrolled_at, h.revoked_at, h.last_seen, h.report, h.report_at,
                        (SELECT MAX(revision) FROM revisions r WHERE r.host = h.host),
                        (SELECT MAX(seq) FROM audit_records a WHERE a.host = h.host),
                        (SELECT COUNT(*) FROM audit_problems p WHERE p.host = h.host)
                 FROM hosts h WHERE $1::TEXT IS NULL OR h.host = $1 ORDER BY h.host",
                &[&only],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let report = match (r.get::<_, Option<String>>(4), r.get::<_, Option<i64>>(5)) {
                    (Some(text), Some(at)) => Some((ts(at)?, text)),
                    _ => None,
                };
                Ok(HostRecord {
                    host: r.get(0),
                    enrolled_at: opt_ts(r.get(1))?,
                    revoked_at: opt_ts(r.get(2))?,
                    last_seen: opt_ts(r.get(3))?,
                    report,
                    desired_revision: r.get::<_, Option<i64>>(6).map(num).transpose()?,
                    audit_seq: r.get::<_, Option<i64>>(7).map(num).transpose()?,
                    audit_problems: usize::try_from(r.get::<_, i64>(8)).unwrap_or(0),
                })
            })
            .collect()
    }
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS castellan_hub_schema (version INTEGER NOT NULL);
         INSERT INTO castellan_hub_schema (version)
         SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM castellan_hub_schema);",
    )
    .await
    .map_err(db)?;
    let version: i32 = tx
        .query_one("SELECT version FROM castellan_hub_schema", &[])
        .await
        .map_err(db)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, this castellan knows up to {known}: refusing to downgrade"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(db)?;
        let v = (i + 1) as i32;
        tx.execute("UPDATE castellan_hub_schema SET version = $1", &[&v])
            .await
            .map_err(db)?;
        tracing::info!(
            event = "hub_schema_migrated",
            version = v,
            backend = "postgres"
        );
    }
    tx.commit().await.map_err(db)
}

/// Follows `NOTIFY castellan_hub` on a connection of its own while the store lives;
/// reconnects (announcing [`Change::All`]) when it drops.
async fn listen(
    config: tokio_postgres::Config,
    changes: broadcast::Sender<Change>,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    use futures_util::StreamExt as _;
    let mut first = true;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listening = async { client.batch_execute(&format!("LISTEN {CHANNEL}")).await };
                // The LISTEN must be driven by the connection; run both.
                let mut listening = std::pin::pin!(listening);
                let mut subscribed = false;
                loop {
                    tokio::select! {
                        _ = alive.changed() => return,
                        r = &mut listening, if !subscribed => {
                            if let Err(e) = r {
                                tracing::warn!(event = "hub_listen_failed", error = %e);
                                break;
                            }
                            subscribed = true;
                            if !first {
                                let _ = changes.send(Change::All);
                            }
                            first = false;
                        }
                        m = messages.next() => match m {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                let _ = changes.send(Change::Host(n.payload().to_owned()));
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(event = "hub_listen_lost", error = %e);
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(event = "hub_listen_failed", error = %e),
        }
        first = false;
        tokio::select! {
            _ = alive.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Notifies the other hubs that something for `host` changed (inside a transaction:
/// sent on commit).
async fn notify(tx: &deadpool_postgres::Transaction<'_>, host: &str) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &host])
        .await
        .map_err(db)
        .map(drop)
}

/// Locks `host`'s row (creating it), so writes for one host serialise across hubs.
async fn lock_host(tx: &deadpool_postgres::Transaction<'_>, host: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO hosts (host) VALUES ($1) ON CONFLICT (host) DO NOTHING",
        &[&host],
    )
    .await
    .map_err(db)?;
    tx.execute("SELECT 1 FROM hosts WHERE host = $1 FOR UPDATE", &[&host])
        .await
        .map_err(db)
        .map(drop)
}

fn to_revision(host: &str, r: &tokio_postgres::Row) -> Result<Revision, StoreError> {
    Ok(Revision {
        host: host.to_owned(),
        revision: num(r.get(0))?,
        document: r.get(1),
        author: r.get(2),
        created_at: ts(r.get(3))?,
    })
}

/// A relayed op from a row of `SELECT id, host, op, sigs, submitted_by, submitted_at,
/// delivered_at FROM ops`.
fn to_op(r: &tokio_postgres::Row) -> Result<RelayedOp, StoreError> {
    let id: i64 = r.get(0);
    let sigs: Vec<String> = serde_json::from_str(r.get::<_, &str>(3))
        .map_err(|e| StoreError::Backend(format!("stored signatures of op {id}: {e}")))?;
    Ok(RelayedOp {
        id: num(id)?,
        host: r.get(1),
        op: r.get(2),
        sigs: sigs.into_iter().map(String::into_bytes).collect(),
        submitted_by: r.get(4),
        submitted_at: ts(r.get(5))?,
        delivered_at: opt_ts(r.get(6))?,
    })
}

impl HubStore for PgStore {
    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn hub_id(&self) -> Result<String, StoreError> {
        self.query_opt("SELECT value FROM meta WHERE key = 'hub_id'", &[])
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Backend("the database has no hub id".into()))
    }

    async fn create_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(
            "INSERT INTO enrol_tokens (hash, host, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[&&hash.0[..], &host, &ms(now), &ms(expires_at)],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "INSERT INTO hosts (host) VALUES ($1) ON CONFLICT (host) DO NOTHING",
            &[&host],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn redeem_enrol_token(
        &self,
        host: &str,
        hash: TokenHash,
        credential: TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        let used = tx
            .execute(
                "UPDATE enrol_tokens SET used_at = $1
                 WHERE hash = $2 AND host = $3 AND used_at IS NULL AND expires_at > $1",
                &[&ms(now), &&hash.0[..], &host],
            )
            .await
            .map_err(db)?;
        if used != 1 {
            return Err(StoreError::EnrolRefused);
        }
        tx.execute(
            "INSERT INTO hosts (host, credential, enrolled_at) VALUES ($1, $2, $3)
             ON CONFLICT (host) DO UPDATE
             SET credential = excluded.credential, enrolled_at = excluded.enrolled_at,
                 revoked_at = NULL",
            &[&host, &&credential.0[..], &ms(now)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn host_for_credential(
        &self,
        hash: TokenHash,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let Some(row) = self
            .query_opt(
                "SELECT host, last_seen FROM hosts WHERE credential = $1 AND revoked_at IS NULL",
                &[&&hash.0[..]],
            )
            .await?
        else {
            return Ok(None);
        };
        let host: String = row.get(0);
        let seen: Option<i64> = row.get(1);
        if seen.is_none_or(|s| ms(now) - s >= SEEN_GRANULARITY_MS) {
            self.execute(
                "UPDATE hosts SET last_seen = $1 WHERE host = $2",
                &[&ms(now), &host],
            )
            .await?;
        }
        Ok(Some(host))
    }

    async fn revoke_host(&self, host: &str, now: Timestamp) -> Result<(), StoreError> {
        let n = self
            .execute(
                "UPDATE hosts SET revoked_at = $1, credential = NULL WHERE host = $2",
                &[&ms(now), &host],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("host {host}")));
        }
        Ok(())
    }

    async fn create_operator_token(
        &self,
        name: &str,
        hash: TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // One statement: a live token is never replaced, even by a concurrent creation.
        let n = self
            .execute(
                "INSERT INTO operators (name, hash, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                 SET hash = excluded.hash, created_at = excluded.created_at, revoked_at = NULL
                 WHERE operators.revoked_at IS NOT NULL",
                &[&name, &&hash.0[..], &ms(now)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Exists(format!("operator {name}")));
        }
        Ok(())
    }

    async fn operator_for_token(&self, hash: TokenHash) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT name FROM operators WHERE hash = $1 AND revoked_at IS NULL",
                &[&&hash.0[..]],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn put_ledger_report(
        &self,
        document: &str,
        author: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let row = self
            .query_opt(
                "INSERT INTO ledger_reports (document, author, created_at) VALUES ($1, $2, $3)
                 RETURNING number",
                &[&document, &author, &ms(now)],
            )
            .await?
            .ok_or_else(|| StoreError::Backend("an insert returned no row".into()))?;
        num(row.get(0))
    }

    async fn latest_ledger_report(&self) -> Result<Option<LedgerReport>, StoreError> {
        self.query_opt(
            "SELECT number, document, author, created_at FROM ledger_reports
             ORDER BY number DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| {
            Ok(LedgerReport {
                number: num(r.get(0))?,
                document: r.get(1),
                author: r.get(2),
                created_at: ts(r.get(3))?,
            })
        })
        .transpose()
    }

    async fn revoke_operator(&self, name: &str, now: Timestamp) -> Result<(), StoreError> {
        let n = self
            .execute(
                "UPDATE operators SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                &[&ms(now), &name],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("operator {name}")));
        }
        Ok(())
    }

    async fn put_revision(
        &self,
        host: &str,
        document: &str,
        author: &str,
        based_on: u64,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        lock_host(&tx, host).await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE host = $1",
                &[&host],
            )
            .await
            .map_err(db)?
            .get(0);
        let current = num(current)?;
        if current != based_on {
            return Err(StoreError::Conflict {
                host: host.to_owned(),
                current,
                based_on,
            });
        }
        let next = current + 1;
        let sha = hex::encode(Sha256::digest(document.as_bytes()));
        tx.execute(
            "INSERT INTO revisions (host, revision, document, sha256, author, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&host, &big(next), &document, &sha, &author, &ms(now)],
        )
        .await
        .map_err(db)?;
        notify(&tx, host).await?;
        tx.commit().await.map_err(db)?;
        Ok(next)
    }

    async fn latest_revision(&self, host: &str) -> Result<Option<Revision>, StoreError> {
        self.query_opt(
            "SELECT revision, document, author, created_at FROM revisions
             WHERE host = $1 ORDER BY revision DESC LIMIT 1",
            &[&host],
        )
        .await?
        .map(|r| to_revision(host, &r))
        .transpose()
    }

    async fn revision_after(&self, host: &str, after: u64) -> Result<Option<Revision>, StoreError> {
        self.query_opt(
            "SELECT revision, document, author, created_at FROM revisions
             WHERE host = $1 AND revision > $2 ORDER BY revision DESC LIMIT 1",
            &[&host, &big(after)],
        )
        .await?
        .map(|r| to_revision(host, &r))
        .transpose()
    }

    async fn revision(&self, host: &str, revision: u64) -> Result<Option<Revision>, StoreError> {
        let Ok(n) = i64::try_from(revision) else {
            return Ok(None);
        };
        self.query_opt(
            "SELECT revision, document, author, created_at FROM revisions
             WHERE host = $1 AND revision = $2",
            &[&host, &n],
        )
        .await?
        .map(|r| to_revision(host, &r))
        .transpose()
    }

    async fn history(&self, host: &str, limit: u32) -> Result<Vec<RevisionMeta>, StoreError> {
        self.query(
            "SELECT revision, author, created_at, sha256 FROM revisions
             WHERE host = $1 ORDER BY revision DESC LIMIT $2",
            &[&host, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(RevisionMeta {
                revision: num(r.get(0))?,
                author: r.get(1),
                created_at: ts(r.get(2))?,
                sha256: r.get(3),
            })
        })
        .collect()
    }

    async fn put_report(&self, host: &str, report: &str, now: Timestamp) -> Result<(), StoreError> {
        self.execute(
            "UPDATE hosts SET report = $1, report_at = $2, last_seen = $2 WHERE host = $3",
            &[&report, &ms(now), &host],
        )
        .await
        .map(drop)
    }

    async fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.host_records(None).await
    }

    async fn host(&self, host: &str) -> Result<Option<HostRecord>, StoreError> {
        Ok(self.host_records(Some(host)).await?.into_iter().next())
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        // Ids of one host's ops must become visible in order: an agent that has taken
        // op 11 never asks for 10 again, so 10 must not commit after 11.
        lock_host(&tx, host).await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO ops (host, op, sigs, submitted_by, submitted_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&host, &op, &sigs, &submitted_by, &ms(now)],
            )
            .await
            .map_err(db)?
            .get(0);
        notify(&tx, host).await?;
        tx.commit().await.map_err(db)?;
        num(id)
    }

    async fn ops_after(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RelayedOp>, StoreError> {
        self.query(
            "SELECT id, host, op, sigs, submitted_by, submitted_at, delivered_at FROM ops
             WHERE host = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&host, &big(after), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(to_op)
        .collect()
    }

    async fn ops_newest(
        &self,
        host: &str,
        text: Option<&[u8]>,
        limit: u32,
    ) -> Result<Vec<RelayedOp>, StoreError> {
        self.query(
            "SELECT id, host, op, sigs, submitted_by, submitted_at, delivered_at FROM ops
             WHERE host = $1 AND ($2::BYTEA IS NULL OR op = $2) ORDER BY id DESC LIMIT $3",
            &[&host, &text, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(to_op)
        .collect()
    }

    async fn mark_delivered(
        &self,
        host: &str,
        upto: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE ops SET delivered_at = $1 WHERE host = $2 AND id <= $3 AND delivered_at IS NULL",
            &[&ms(now), &host, &big(upto)],
        )
        .await
        .map(drop)
    }

    async fn audit_head(&self, host: &str) -> Result<Option<(u64, String)>, StoreError> {
        self.query_opt(
            "SELECT seq, hash FROM audit_records WHERE host = $1 ORDER BY seq DESC LIMIT 1",
            &[&host],
        )
        .await?
        .map(|r| Ok((num(r.get(0))?, r.get(1))))
        .transpose()
    }

    async fn append_audit(
        &self,
        host: &str,
        held_seq: u64,
        records: Vec<crate::audit::VerifiedRecord>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        lock_host(&tx, host).await?;
        let current: Option<i64> = tx
            .query_one(
                "SELECT MAX(seq) FROM audit_records WHERE host = $1",
                &[&host],
            )
            .await
            .map_err(db)?
            .get(0);
        let current = current.map(num).transpose()?.unwrap_or(0);
        if current != held_seq {
            return Err(StoreError::Conflict {
                host: host.to_owned(),
                current,
                based_on: held_seq,
            });
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO audit_records (host, seq, hash, line, received_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await
            .map_err(db)?;
        for r in &records {
            tx.execute(&stmt, &[&host, &big(r.seq), &r.hash, &r.line, &ms(now)])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn audit_lines(
        &self,
        host: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query(
                "SELECT line FROM audit_records WHERE host = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&host, &big(after), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn flag_audit(
        &self,
        host: &str,
        kind: &str,
        seq: u64,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_problems (host, kind, seq, detail, first_seen, last_seen, count)
             SELECT $1, $2, $3, $4, $5, $5, 1
             WHERE (SELECT COUNT(*) FROM audit_problems WHERE host = $1) < $6
                OR EXISTS (SELECT 1 FROM audit_problems WHERE host = $1 AND kind = $2 AND seq = $3)
             ON CONFLICT (host, kind, seq) DO UPDATE
             SET last_seen = excluded.last_seen, count = audit_problems.count + 1",
            &[
                &host,
                &kind,
                &big(seq),
                &detail,
                &ms(now),
                &super::MAX_PROBLEMS_PER_HOST,
            ],
        )
        .await
        .map(drop)
    }

    async fn reset_audit(&self, host: &str, now: Timestamp) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        lock_host(&tx, host).await?;
        let n = tx
            .execute(
                "INSERT INTO audit_archive (host, seq, hash, line, received_at, archived_at)
                 SELECT host, seq, hash, line, received_at, $2 FROM audit_records WHERE host = $1",
                &[&host, &ms(now)],
            )
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM audit_records WHERE host = $1", &[&host])
            .await
            .map_err(db)?;
        tx.execute("DELETE FROM audit_problems WHERE host = $1", &[&host])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    async fn audit_problems(&self, host: &str) -> Result<Vec<StoredAuditProblem>, StoreError> {
        self.query(
            "SELECT kind, seq, detail, first_seen, last_seen, count FROM audit_problems
             WHERE host = $1 ORDER BY first_seen, seq",
            &[&host],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(StoredAuditProblem {
                kind: r.get(0),
                seq: num(r.get(1))?,
                detail: r.get(2),
                first_seen: ts(r.get(3))?,
                last_seen: ts(r.get(4))?,
                count: num(r.get(5))?,
            })
        })
        .collect()
    }
}
