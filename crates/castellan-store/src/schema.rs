//! The embedded schema migrations.
//!
//! Migration `i` (1-based) takes the database from `user_version = i - 1` to `i`; each runs
//! in its own transaction together with its `user_version` bump, so a crash leaves the
//! database at a whole version. Migrations are append-only: never edit a published one.
//! Later migrations must keep the `audit` table readable by older readers
//! ([`Store::open_readonly`](crate::Store::open_readonly) accepts any version it knows).

/// `PRAGMA application_id` of a castellan store: ASCII `CSTL`.
pub(crate) const APPLICATION_ID: i32 = 0x4353_544C;

/// The migrations, in order.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The newest schema version.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

const V1: &str = r#"
PRAGMA application_id = 1129534540;

-- The clock high-water mark: one row, the greatest time the store was ever given.
CREATE TABLE clock (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    high_water TEXT NOT NULL
) STRICT;

-- The journal: one row per attempt at an action. Never deleted.
CREATE TABLE intents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id       TEXT NOT NULL,
    op              TEXT NOT NULL,
    vmid            INTEGER NOT NULL,
    guest           TEXT NOT NULL CHECK (guest IN ('lxc', 'qemu')),
    params          TEXT NOT NULL,                 -- JSON object of strings
    nonce           TEXT,
    nonce_not_after TEXT,
    destructive     INTEGER NOT NULL CHECK (destructive IN (0, 1)),
    upid_hint       TEXT,
    state           TEXT NOT NULL
                    CHECK (state IN ('intent', 'dispatched', 'succeeded', 'failed', 'rolled_back')),
    upid            TEXT,
    detail          TEXT,                          -- error (failed) or reason (rolled_back)
    created_at      TEXT NOT NULL,
    dispatched_at   TEXT,
    finished_at     TEXT
) STRICT;
CREATE INDEX intents_by_action ON intents (action_id);
CREATE INDEX intents_by_vmid ON intents (vmid, id);
CREATE INDEX intents_in_flight ON intents (id) WHERE state IN ('intent', 'dispatched');
-- Backstops for the idempotency rules that begin_intent checks first (with a better error):
-- at most one live (not failed, not rolled back) intent per action id ...
CREATE UNIQUE INDEX intents_live_action ON intents (action_id)
    WHERE state NOT IN ('failed', 'rolled_back');
-- ... and a destructive action id is used once, whatever became of it.
CREATE UNIQUE INDEX intents_destructive_action ON intents (action_id) WHERE destructive = 1;
CREATE TRIGGER intents_never_deleted BEFORE DELETE ON intents
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;

-- Consumed nonces of signed ops. not_after_us is the op's not_after in microseconds since
-- the epoch rounded up (NULL: never pruned).
CREATE TABLE nonces (
    nonce        TEXT PRIMARY KEY,
    not_after_us INTEGER,
    intent_id    INTEGER NOT NULL REFERENCES intents (id),
    consumed_at  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX nonces_by_expiry ON nonces (not_after_us) WHERE not_after_us IS NOT NULL;

-- Guests the agent itself created (or tagged as scratch) in a journaled transaction.
CREATE TABLE provenance (
    vmid        INTEGER PRIMARY KEY,
    guest       TEXT NOT NULL CHECK (guest IN ('lxc', 'qemu')),
    kind        TEXT NOT NULL CHECK (kind IN ('created_by_agent', 'scratch')),
    intent_id   INTEGER NOT NULL REFERENCES intents (id),
    recorded_at TEXT NOT NULL
) STRICT;

-- The hash-chained audit log (see the crate docs for the hash encoding).
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
    time      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    event     TEXT NOT NULL                        -- canonical JSON, hashed verbatim
) STRICT;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
"#;

const V2: &str = r#"
-- What the node's task list held for the guest just before a destroy was sent (a JSON
-- list of UPIDs): recovery tells the destroy's own task from earlier ones by the node's
-- own list, never by comparing clocks. NULL: the request was never sent. Intents left in
-- flight by version 1 carry 'legacy': their evidence is ambiguous.
ALTER TABLE intents ADD COLUMN task_mark TEXT;
UPDATE intents SET task_mark = 'legacy'
    WHERE state IN ('intent', 'dispatched') AND destructive = 1;
-- Why recovery could not settle an in-flight intent on its own: it waits for an operator.
ALTER TABLE intents ADD COLUMN held TEXT;

-- Where this state began: a random id (also written to the data directory's state.id)
-- and the effective time it was created. No op valid from before then is ever accepted,
-- so a lost database cannot revive a used op.
CREATE TABLE epoch (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    state_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    replaced    TEXT                               -- the state id this one replaced, if any
) STRICT;
"#;

const V3: &str = r#"
-- Intents name their target as `kind/id` (`lxc/101`, `container/web`) instead of a vmid
-- and a guest kind, so one journal serves every backend. SQLite cannot drop a column's
-- CHECK, so the table is rebuilt (foreign keys are off while a migration runs and
-- checked before it commits); ids, and with them nonces and provenance, are kept.
CREATE TABLE intents_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id       TEXT NOT NULL,
    op              TEXT NOT NULL,
    target          TEXT NOT NULL CHECK (target GLOB '[a-z]*/?*'),
    params          TEXT NOT NULL,                 -- JSON object of strings
    nonce           TEXT,
    nonce_not_after TEXT,
    destructive     INTEGER NOT NULL CHECK (destructive IN (0, 1)),
    upid_hint       TEXT,
    state           TEXT NOT NULL
                    CHECK (state IN ('intent', 'dispatched', 'succeeded', 'failed', 'rolled_back')),
    upid            TEXT,
    detail          TEXT,                          -- error (failed) or reason (rolled_back)
    created_at      TEXT NOT NULL,
    dispatched_at   TEXT,
    finished_at     TEXT,
    task_mark       TEXT,
    held            TEXT
) STRICT;
INSERT INTO intents_v3 (id, action_id, op, target, params, nonce, nonce_not_after,
        destructive, upid_hint, state, upid, detail, created_at, dispatched_at, finished_at,
        task_mark, held)
    SELECT id, action_id, op, guest || '/' || vmid, params, nonce, nonce_not_after,
        destructive, upid_hint, state, upid, detail, created_at, dispatched_at, finished_at,
        task_mark, held
    FROM intents ORDER BY id;
DROP TABLE intents;
ALTER TABLE intents_v3 RENAME TO intents;
CREATE INDEX intents_by_action ON intents (action_id);
CREATE INDEX intents_by_target ON intents (target, id);
CREATE INDEX intents_in_flight ON intents (id) WHERE state IN ('intent', 'dispatched');
CREATE UNIQUE INDEX intents_live_action ON intents (action_id)
    WHERE state NOT IN ('failed', 'rolled_back');
CREATE UNIQUE INDEX intents_destructive_action ON intents (action_id) WHERE destructive = 1;
CREATE TRIGGER intents_never_deleted BEFORE DELETE ON intents
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
"#;

const V4: &str = r#"
-- The safety backup a signed destroy or restore-overwrite took before it was sent (the
-- backup's volume id), so a resumed intent does not take a second one and recovery can
-- show which backup holds what the op removed.
ALTER TABLE intents ADD COLUMN backup TEXT;
"#;

const V5: &str = r#"
-- Signer sets put in force by key rotation (version 1 is the agent's signers.toml, which
-- is not kept here): the exact document bytes that were signed. Append-only, and each
-- version greater than every one before it, so an older set is never in force again.
CREATE TABLE signer_sets (
    version     INTEGER PRIMARY KEY CHECK (version >= 2),
    digest      TEXT NOT NULL,
    document    BLOB NOT NULL,
    accepted_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER signer_sets_only_newer BEFORE INSERT ON signer_sets
WHEN NEW.version <= (SELECT coalesce(max(version), 1) FROM signer_sets)
BEGIN
    SELECT RAISE(ABORT, 'a signer set must be newer than every one before it');
END;
CREATE TRIGGER signer_sets_never_deleted BEFORE DELETE ON signer_sets
BEGIN
    SELECT RAISE(ABORT, 'signer sets are append-only');
END;
CREATE TRIGGER signer_sets_never_changed BEFORE UPDATE ON signer_sets
BEGIN
    SELECT RAISE(ABORT, 'signer sets are append-only');
END;
"#;

const V6: &str = r#"
-- What an op that removes several items one by one (a storage wipe, a decommission) has
-- done so far, so a resumed op neither repeats a step nor forgets one: the safety backup
-- taken of each guest (so each is backed up once) and each item removed (a guest target or
-- a volume id), each row written with its audit record. Append-only.
CREATE TABLE intent_backups (
    intent_id INTEGER NOT NULL REFERENCES intents (id),
    target    TEXT NOT NULL,
    volume    TEXT NOT NULL,
    size      INTEGER NOT NULL CHECK (size >= 0),
    taken_at  TEXT NOT NULL,
    PRIMARY KEY (intent_id, target)
) STRICT;
CREATE TABLE intent_removed (
    intent_id  INTEGER NOT NULL REFERENCES intents (id),
    item       TEXT NOT NULL,
    removed_at TEXT NOT NULL,
    PRIMARY KEY (intent_id, item)
) STRICT;
CREATE TRIGGER intent_backups_never_deleted BEFORE DELETE ON intent_backups
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
CREATE TRIGGER intent_backups_never_changed BEFORE UPDATE ON intent_backups
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
CREATE TRIGGER intent_removed_never_deleted BEFORE DELETE ON intent_removed
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
CREATE TRIGGER intent_removed_never_changed BEFORE UPDATE ON intent_removed
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 journal (written before targets) migrates with its ids, nonces and
    /// provenance intact, and ids keep counting up from where they were.
    #[test]
    fn version_2_journals_gain_targets() -> Result<(), Box<dyn std::error::Error>> {
        use castellan_core::{GuestKind, Target};

        use crate::{NewIntent, ProvenanceCheck, Store};

        let dir = tempfile::tempdir()?;
        {
            let c = rusqlite::Connection::open(dir.path().join(crate::DB_FILE_NAME))?;
            c.execute_batch(V1)?;
            c.execute_batch(V2)?;
            c.execute_batch(
                "PRAGMA user_version = 2;
                 INSERT INTO intents (id, action_id, op, vmid, guest, params, destructive, state,
                     created_at, finished_at)
                 VALUES (7, 'a7', 'provision', 101, 'lxc', '{}', 0, 'succeeded',
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z');
                 INSERT INTO intents (id, action_id, op, vmid, guest, params, nonce, destructive,
                     state, created_at, task_mark)
                 VALUES (9, 'a9', 'destroy', 150, 'qemu', '{\"purge\":\"1\"}', 'n9', 1,
                     'intent', '2026-01-01T00:00:02Z', 'legacy');
                 INSERT INTO nonces (nonce, not_after_us, intent_id, consumed_at)
                 VALUES ('n9', NULL, 9, '2026-01-01T00:00:02Z');
                 INSERT INTO provenance (vmid, guest, kind, intent_id, recorded_at)
                 VALUES (101, 'lxc', 'created_by_agent', 7, '2026-01-01T00:00:01Z');",
            )?;
        }
        let mut store = Store::open(dir.path())?;
        assert_eq!(store.schema_version()?, LATEST);
        let ct = Target::guest(GuestKind::Lxc, 101);
        let vm = Target::guest(GuestKind::Qemu, 150);
        assert_eq!(
            store
                .intents_for(&ct)?
                .iter()
                .map(|i| i.id.0)
                .collect::<Vec<_>>(),
            [7]
        );
        let destroy = store.intents_for(&vm)?;
        assert_eq!(destroy.len(), 1);
        assert_eq!(
            destroy[0].params.get("purge").map(String::as_str),
            Some("1")
        );
        assert!(store.nonce_consumed("n9")?);
        assert!(matches!(
            store.verified_provenance(101, GuestKind::Lxc)?,
            ProvenanceCheck::Verified(_)
        ));
        // Still append-only, and new ids follow the old ones.
        let now = store.effective_now(jiff::Timestamp::from_second(1_800_000_000)?)?;
        let (id, _) = store.begin_intent(
            NewIntent {
                action_id: "b".into(),
                op: "start".into(),
                target: Target::container("web")?,
                params: Default::default(),
                nonce: None,
                nonce_not_after: None,
                destructive: false,
                upid_hint: None,
            },
            crate::AuditEvent::IntentRecorded,
            now,
        )?;
        assert!(id.0 > 9, "{id}");
        let c = rusqlite::Connection::open(dir.path().join(crate::DB_FILE_NAME))?;
        assert!(c.execute("DELETE FROM intents WHERE id = 7", []).is_err());
        Ok(())
    }

    #[test]
    fn application_id_literal_matches() {
        assert!(V1.contains(&format!("application_id = {APPLICATION_ID};")));
    }
}
