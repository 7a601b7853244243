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
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_id_literal_matches() {
        assert!(V1.contains(&format!("application_id = {APPLICATION_ID};")));
    }
}
