//! The castellan agent's durable local state, in one SQLite database
//! (`<data_dir>/castellan.db`): the clock high-water mark, consumed nonces, the mutation
//! journal, guest provenance and the hash-chained audit log.
//!
//! The store never reads a clock: every function that needs the time takes `now` from the
//! agent. Each write runs in one `IMMEDIATE` transaction, so the state change and its audit
//! record are committed together or not at all. [`Store`] is `Send` (not `Sync`): the agent
//! keeps it behind a `Mutex` and calls it from `spawn_blocking`, since every commit waits
//! for an fsync.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use castellan_core::{GuestKind, Target};
//! use castellan_store::{AuditEvent, AuditFields, NewIntent, Outcome, Store, verify_chain};
//! # let dir = tempfile::tempdir()?;
//! # let data_dir = dir.path();
//! let mut store = Store::open(data_dir)?;
//! let now = store.effective_now(jiff::Timestamp::from_second(1_700_000_000)?)?;
//! store.append_audit(AuditEvent::AgentStarted, now)?;
//! let intent = NewIntent {
//!     action_id: "sha256:...".into(),
//!     op: "start".into(),
//!     target: Target::guest(GuestKind::Qemu, 101),
//!     params: Default::default(),
//!     nonce: None,
//!     nonce_not_after: None,
//!     destructive: false,
//!     upid_hint: None,
//! };
//! let (id, _record) = store.begin_intent(intent, AuditEvent::IntentRecorded, now)?;
//! // ... send the request to the node ...
//! store.mark_dispatched(id, Some("UPID:pve:..."), AuditEvent::TaskDispatched { upid: None }, now)?;
//! // ... wait for the task ...
//! let outcome = Outcome::Succeeded;
//! store.mark_terminal(id, outcome.clone(), outcome.event(), now)?;
//! store.append_audit(AuditEvent::ActionAllowed.with(AuditFields::action("container/web".parse()?, "stop", "sha256:...")), now)?;
//! assert_eq!(verify_chain(&store)?.records, 5);
//! # Ok(())
//! # }
//! ```
//!
//! # Schema (version 3)
//!
//! | table | rows | key points |
//! |---|---|---|
//! | `clock` | one: `high_water` | the greatest `now` ever passed in |
//! | `intents` | one per attempt at an action | state `intent` → `dispatched` → `succeeded` / `failed` / `rolled_back`; never deleted |
//! | `nonces` | one per consumed nonce | `not_after_us` (µs, rounded up) for pruning; references its intent |
//! | `provenance` | one per agent-created / scratch guest | references the intent that created it |
//! | `audit` | one per event, `seq` 1, 2, 3 ... | `time`, `prev_hash`, `hash`, `event` (canonical JSON) |
//! | `epoch` | one: where this state began | `state_id` (also in `<data_dir>/state.id`), `created_at`, `replaced` ([`Epoch`]) |
//!
//! Version 2 added `intents.task_mark` (the node's tasks of the request's kind for the
//! guest just before a destructive request was sent, [`Store::mark_prepared`]: recovery
//! tells the request's own task by the node's list, never by a clock), `intents.held`
//! (why recovery holds an intent for an operator, [`Store::hold_intent`]) and the `epoch`
//! table ([`Store::begin_epoch`]). Provenance is checked when read
//! ([`Store::verified_provenance`]): a row counts only if it cites this store's own
//! successful creation of exactly that guest.
//!
//! Version 3 names each intent's target as `kind/id` (`intents.target`: `lxc/101`,
//! `container/web`) instead of a vmid and a guest kind, so one journal serves every
//! backend; earlier rows become `lxc/N` or `qemu/N`. The table is rebuilt to drop the old
//! columns' checks, with foreign keys paused for the migration and checked before it
//! commits. Audit records name a `target` too; older records keep their `vmid` as hashed.
//!
//! Times are stored as RFC 3339 UTC text (exact to the nanosecond). Triggers refuse `UPDATE`
//! and `DELETE` on `audit` and `DELETE` on `intents`, and partial unique indexes back the
//! idempotency rules below. Those guard against bugs, not attackers: anyone who can write
//! the file can drop a trigger, which is why the audit log is hash-chained. The database
//! carries `application_id` `0x4353544C` (`CSTL`) and its schema version in `user_version`;
//! migrations are embedded, each applied in one transaction with its version bump, and a
//! database newer than the code is refused ([`StoreError::TooNew`]).
//!
//! # Clock
//!
//! [`Store::effective_now`] returns `max(now, high_water)` and durably raises the
//! high-water mark: a clock that cannot go backwards, across restarts. Every write also
//! raises it, and stamps its rows and audit record with the effective time, so audit times
//! never decrease. The gate must judge validity windows by `effective_now`.
//!
//! # Nonces and the journal
//!
//! [`Store::begin_intent`] consumes an op's nonce, records the intent and appends its
//! [`AuditEvent::IntentRecorded`] in one transaction, before anything is sent to the node.
//! It writes nothing and fails with
//! - [`StoreError::Replayed`] if the nonce was consumed before (also across restarts);
//! - [`StoreError::Expired`] if the op's `not_after` is before the effective time (so a
//!   pruned nonce can never be consumed again: see [`Store::prune_nonces`]);
//! - [`StoreError::DuplicateAction`] by the idempotency rules: an action id has at most one
//!   live intent (`intent`, `dispatched` or `succeeded`: the same action id never executes
//!   twice, and never again once it succeeded); after a `failed` or `rolled_back` attempt a
//!   *benign* action may be retried under the same id (it is idempotent and the agent
//!   re-plans against a fresh observation), but a *destructive* action id is single-use:
//!   once any intent exists for it, whatever its outcome, it is refused, and a new
//!   destructive attempt needs a new signed op, hence a new action id. Action ids should
//!   include the precondition digest the action was planned against, so that an action
//!   legitimately repeated later (a guest stopped again out of band) gets a new id.
//!
//! A destructive intent must carry the nonce of its signed op ([`StoreError::InvalidIntent`]).
//! [`Store::mark_dispatched`] records the task id (UPID) after the request was accepted;
//! [`Store::mark_terminal`] records the [`Outcome`]. Allowed steps: `intent → dispatched`,
//! `intent → terminal`, `dispatched → terminal`; anything else is
//! [`StoreError::BadTransition`]. [`Store::in_flight`] lists the intents without a terminal
//! record, for recovery at start-up.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous = FULL`: each commit appends its pages
//! to the write-ahead log and fsyncs it before `COMMIT` returns, so a committed transaction
//! survives a process crash (SIGKILL, panic, OOM kill) and a power loss or kernel crash,
//! and an uncommitted one leaves no trace. `foreign_keys = ON`; a `busy_timeout` of 5 s
//! waits out a concurrent reader's checkpoint. This rests on assumptions:
//! - the disk honours fsync (no volatile write cache that lies; no `nobarrier` mounts);
//! - the database is on a local filesystem (WAL needs shared memory and POSIX locks that
//!   network filesystems do not provide reliably);
//! - one agent process per data directory (the agent holds an exclusive `flock` on the
//!   directory itself, which no file removal can break), and the
//!   `-wal` and `-shm` files beside the database are never deleted by hand.
//!
//! What recovery finds if the agent is killed at each point of one action:
//!
//! | killed | store holds | recovery must |
//! |---|---|---|
//! | before `begin_intent` commits | nothing: nonce free, no intent, no audit record | nothing; the action was never sent, the op may be resubmitted |
//! | after `begin_intent`, before or during the request | intent in state `intent`, nonce consumed | treat it as *maybe sent*: observe the guest (and look for a task matching `upid_hint`); never re-send a destructive one blindly |
//! | after `mark_dispatched` | state `dispatched` with the UPID | poll the task to its end, then `mark_terminal` |
//! | after `mark_terminal` | terminal state and outcome | nothing |
//!
//! In every case the journal step and its audit record are both there or both absent
//! (`tests/crash.rs` SIGKILLs a writer at random points and checks exactly this).
//! Provenance is written after the creating intent; a crash in between leaves a guest
//! without provenance, which classifies as unknown, hence destructive: the safe side.
//!
//! Cost: every write is one fsynced commit, about 3 ms on the project machine, so a full
//! action (intent, dispatch, terminal) costs about 10 ms, negligible beside a Proxmox task
//! (`cargo bench -p castellan-store --bench journal`).
//!
//! # Audit log and its hash chain
//!
//! Each record has `seq` (1, 2, 3 ... without gaps), `time` (effective time, RFC 3339
//! text), `prev_hash` (the previous record's `hash`; 64 `0`s for the first) and `hash`:
//!
//! ```text
//! hash = lowercase_hex(sha256(prev_hash ‖ "\n" ‖ C({"event": E, "seq": seq, "time": time})))
//! ```
//!
//! `C` is the canonical JSON encoding ([`canonical_json`]): object keys sorted by their
//! UTF-8 bytes at every level, no whitespace, integers in decimal, strings escaped as
//! serde_json does (`\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00xx`,
//! everything else literal UTF-8). `E` is the event object, the [`AuditEvent`] (its tag
//! under the key `"event"`) merged with its [`AuditFields`] (absent options and empty lists
//! omitted). So the hashed text is `{"event":E,"seq":N,"time":"..."}`. The `event` column
//! stores `C(E)` and verification hashes those bytes verbatim, so a record stays verifiable
//! whatever later versions of the Rust types look like; and because `C` is a function of
//! the JSON value alone, a remote verifier (the hub) can parse an exported line and
//! recompute the hash ([`verify_jsonl`]).
//!
//! [`verify_chain`] recomputes every hash and checks `seq` continuity and `prev_hash` links.
//! It detects an edited record (event, time, seq or hash), a record deleted anywhere but at
//! the end, a reordered pair and an inserted record, each at the first record that no
//! longer fits. It cannot, from the chain alone, detect the *tail* being cut off, nor a
//! chain rewritten wholesale from some point by someone who recomputes the hashes (the
//! chain is not keyed). What defeats both is a head `(seq, hash)` held elsewhere: the hub
//! pins the head it last received, and [`verify_chain_pinned`] checks the local chain
//! still contains exactly that record.
//!
//! Secrets never go into the audit log: records carry key fingerprints and digests, not
//! signatures or op bodies. Free-text fields (`detail`, `error`, `reason`) are the
//! caller's responsibility.

mod audit;
mod epoch;
mod error;
mod journal;
mod provenance;
mod schema;
mod signer_sets;
mod time;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

pub use audit::{
    AuditEntry, AuditEvent, AuditFields, AuditRecord, ChainBroken, ChainCursor, ChainReport,
    GENESIS_HASH, canonical_json, record_hash, verify_chain, verify_chain_pinned, verify_jsonl,
};
pub use epoch::Epoch;
use error::SqlContext;
pub use error::StoreError;
pub use journal::{Intent, IntentId, IntentState, NewIntent, Outcome, TaskMark};
pub use provenance::{Provenance, ProvenanceCheck, ProvenanceKind};
pub use signer_sets::StoredSignerSet;

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "castellan.db";

/// The newest schema version this code knows (the database's `user_version`).
pub const SCHEMA_VERSION: u32 = schema::LATEST;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's local state database. See the crate docs.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
}

impl Store {
    /// Opens `data_dir/castellan.db`, creating it if missing, and brings its schema up to
    /// date. The directory must exist. Refuses a database newer than this code
    /// ([`StoreError::TooNew`]) or one that is not castellan's.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        match std::fs::metadata(data_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::DataDir {
                    path: data_dir.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    ),
                });
            }
            Err(source) => {
                return Err(StoreError::DataDir {
                    path: data_dir.to_owned(),
                    source,
                });
            }
        }
        let path = data_dir.join(DB_FILE_NAME);
        let created = !path.exists();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Refuse a foreign or newer database before changing anything in it.
        check_header(&conn, &path, false)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path,
                source: rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode is {mode}, wal could not be enabled"
                )),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        let mut store = Store {
            conn,
            path,
            read_only: false,
        };
        store.migrate()?;
        if created {
            // SQLite fsyncs the directory when it creates the WAL, but not for the main
            // file; make the new file's directory entry durable too.
            std::fs::File::open(data_dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::DataDir {
                    path: data_dir.to_owned(),
                    source,
                })?;
        }
        Ok(store)
    }

    /// Opens an existing database read-only, for `castellan audit verify` and reports. Never
    /// creates or modifies a file: fails with [`StoreError::NotFound`] if there is no
    /// database, [`StoreError::Uninitialized`] if it has no schema; any write method fails
    /// with [`StoreError::ReadOnly`].
    pub fn open_readonly(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        if !path.is_file() {
            return Err(StoreError::NotFound { path });
        }
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        // A read-only connection to a WAL database creates the `-wal` and `-shm` files if
        // they are missing (and cannot remove them again), which would leave files behind
        // (owned by whoever ran `castellan audit verify`). They are missing exactly when no
        // connection has the database open, and then the main file is complete: read it
        // as immutable (no locks, no side files). If the agent starts meanwhile, its writes
        // go to a new WAL and reach the main file only at a checkpoint, so a concurrent
        // verification can at worst report an error, never damage anything.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let uri = if wal.exists() {
            sqlite_uri(&path, "mode=ro")
        } else {
            sqlite_uri(&path, "mode=ro&immutable=1")
        };
        let conn = Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(open_err)?;
        check_header(&conn, &path, true)?;
        Ok(Store {
            conn,
            path,
            read_only: true,
        })
    }

    /// Runs `f` with relaxed durability (`synchronous = NORMAL`), for records whose loss
    /// in a power cut is harmless: the benign actions' journal and audit records. In WAL
    /// mode such commits still survive a process crash (SIGKILL) and stay atomic and in
    /// order; only an OS crash or power loss may drop the most recent of them, never a
    /// record before a later `FULL` commit (that commit's fsync covers the whole log up to
    /// it). Destructive intents never run under this. Durability is back to `FULL` when
    /// `f` returns.
    pub fn relaxed<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> Result<R, StoreError> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .ctx("relaxing durability")?;
        let out = f(self);
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .ctx("restoring durability")?;
        Ok(out)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store was opened with [`Store::open_readonly`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The database's schema version (`user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
    }

    /// The effective time: `max(now, high-water mark)`. If `now` is later than the stored
    /// mark, the mark is raised to `now` and committed (fsynced) before this returns, so the
    /// effective time never decreases, across restarts and clock steps backwards.
    pub fn effective_now(&mut self, now: Timestamp) -> Result<Timestamp, StoreError> {
        let tx = self.write_tx("raise the clock high-water mark")?;
        let eff = advance_clock(&tx, now)?;
        tx.commit().ctx("committing the clock high-water mark")?;
        Ok(eff)
    }

    /// The stored clock high-water mark, if any time was ever recorded.
    pub fn high_water(&self) -> Result<Option<Timestamp>, StoreError> {
        read_clock(&self.conn)
    }

    /// Whether `nonce` was consumed by [`Store::begin_intent`] (and not yet pruned after
    /// its op expired).
    pub fn nonce_consumed(&self, nonce: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM nonces WHERE nonce = ?1")
            .and_then(|mut s| s.exists([nonce]))
            .ctx("looking up a nonce")
    }

    /// Deletes the nonces whose op's `not_after` is strictly before the effective time
    /// (`max(now, high-water mark)`, which this also raises), and returns how many.
    /// Nonces recorded without a `not_after` are kept forever.
    ///
    /// Why this never makes a still-valid op replayable: a deleted nonce's op expired
    /// before the effective time `t` of the prune, and `t` is durably the high-water mark
    /// in the same transaction. From then on every effective time is `>= t`, so the gate
    /// (which judges validity by [`Store::effective_now`]) refuses that op as expired, and
    /// [`Store::begin_intent`] itself refuses to consume a nonce whose `not_after` is
    /// before the effective time ([`StoreError::Expired`]), even if the wall clock later
    /// steps back. Expiry is compared in microseconds rounded conservatively (`not_after`
    /// up, the prune time down), so rounding can only keep a nonce longer.
    pub fn prune_nonces(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let tx = self.write_tx("prune nonces")?;
        let eff = advance_clock(&tx, now)?;
        let n = tx
            .prepare_cached("DELETE FROM nonces WHERE not_after_us < ?1")
            .and_then(|mut s| s.execute([time::floor_micros(eff)]))
            .ctx("pruning expired nonces")?;
        tx.commit().ctx("committing the nonce prune")?;
        Ok(n)
    }

    /// Starts an `IMMEDIATE` write transaction (takes the write lock at once, so the reads
    /// inside it see what the writes will be checked against).
    fn write_tx(&mut self, what: &'static str) -> Result<Transaction<'_>, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly(what));
        }
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a write transaction")
    }

    /// Applies the embedded migrations the database has not seen, each in its own
    /// transaction with its `user_version` bump.
    fn migrate(&mut self) -> Result<(), StoreError> {
        // A migration may rebuild a table that others reference (SQLite's way to change
        // a constraint): foreign keys are off while migrations run (the pragma is a no-op
        // inside a transaction) and checked before each one commits.
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        if current >= i64::from(schema::LATEST) {
            return Ok(());
        }
        self.conn
            .pragma_update(None, "foreign_keys", false)
            .ctx("pausing foreign keys for a migration")?;
        let result = self.migrate_steps();
        self.conn
            .pragma_update(None, "foreign_keys", true)
            .ctx("restoring foreign keys after a migration")?;
        result
    }

    fn migrate_steps(&mut self) -> Result<(), StoreError> {
        for (i, sql) in schema::MIGRATIONS.iter().enumerate() {
            let version = i as u32 + 1;
            let mig = |source| StoreError::Migration { version, source };
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(mig)?;
            let current: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(mig)?;
            if current >= i64::from(version) {
                continue;
            }
            tx.execute_batch(sql).map_err(mig)?;
            let dangling: i64 = tx
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(mig)?;
            if dangling != 0 {
                return Err(StoreError::Corrupt(format!(
                    "migration to version {version} would leave {dangling} dangling references"
                )));
            }
            tx.pragma_update(None, "user_version", version)
                .map_err(mig)?;
            tx.commit().map_err(mig)?;
        }
        Ok(())
    }
}

/// An SQLite `file:` URI for `path` with the query `query`: every byte outside a safe set
/// is percent-encoded (SQLite decodes `%XX`, and `?` and `#` would end the path).
fn sqlite_uri(path: &Path, query: &str) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    // `file://` and an empty authority: the path follows, even if it starts with `//`.
    let mut uri = String::from(if abs.is_absolute() {
        "file://"
    } else {
        "file:"
    });
    for &b in abs.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

/// Checks `application_id` and `user_version`: refuses a foreign database, one newer than
/// this code and, when `need_schema`, one never initialised.
fn check_header(conn: &Connection, path: &Path, need_schema: bool) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(open_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if app != schema::APPLICATION_ID && (app != 0 || version != 0) {
        return Err(StoreError::NotCastellan {
            path: path.to_owned(),
            found: app,
        });
    }
    if version > i64::from(schema::LATEST) {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: schema::LATEST,
        });
    }
    if need_schema && version < 1 {
        return Err(StoreError::Uninitialized {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn read_clock(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let hw: Option<String> = conn
        .prepare_cached("SELECT high_water FROM clock WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .ctx("reading the clock high-water mark")?;
    time::from_opt_text(hw, "clock high-water mark")
}

/// Inside a write transaction: returns `max(now, high-water)` and raises the mark if `now`
/// is later.
pub(crate) fn advance_clock(tx: &Transaction<'_>, now: Timestamp) -> Result<Timestamp, StoreError> {
    match read_clock(tx)? {
        Some(hw) if hw >= now => Ok(hw),
        _ => {
            tx.prepare_cached(
                "INSERT INTO clock (id, high_water) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET high_water = excluded.high_water",
            )
            .and_then(|mut s| s.execute([time::to_text(now)]))
            .ctx("raising the clock high-water mark")?;
            Ok(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn store_is_send_and_errors_are_send_sync() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_send::<Store>();
        assert_error::<StoreError>();
        assert_error::<ChainBroken>();
    }

    #[test]
    fn connection_is_durable_and_checked() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let get = |pragma: &str| -> rusqlite::Result<String> {
            store.conn.query_row(&format!("PRAGMA {pragma}"), [], |r| {
                Ok(match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    v => v.as_str().unwrap_or_default().to_owned(),
                })
            })
        };
        assert_eq!(get("journal_mode")?, "wal");
        assert_eq!(get("synchronous")?, "2"); // FULL
        assert_eq!(get("foreign_keys")?, "1");
        assert_eq!(get("busy_timeout")?, "5000");
        assert_eq!(get("application_id")?, schema::APPLICATION_ID.to_string());
        assert_eq!(get("user_version")?, SCHEMA_VERSION.to_string());
        Ok(())
    }
}
