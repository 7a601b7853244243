//! The store's behaviour: journal transitions and idempotency, nonces across restarts, the
//! clock high-water mark, provenance, and audit-chain tamper detection on the raw database.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use castellan_core::{GuestKind, RejectReason, Target};
use castellan_store::*;
use jiff::Timestamp;
use proptest::prelude::*;
use rusqlite::Connection;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn benign(action: &str, vmid: u32) -> NewIntent {
    NewIntent {
        action_id: action.into(),
        op: "set_config".into(),
        target: Target::guest(GuestKind::Lxc, vmid),
        params: BTreeMap::from([("cores".into(), "2".into())]),
        nonce: None,
        nonce_not_after: None,
        destructive: false,
        upid_hint: None,
    }
}

fn destructive(action: &str, vmid: u32, nonce: &str, not_after: Timestamp) -> NewIntent {
    NewIntent {
        action_id: action.into(),
        op: "destroy".into(),
        target: Target::guest(GuestKind::Qemu, vmid),
        params: BTreeMap::from([("purge".into(), "1".into())]),
        nonce: Some(nonce.into()),
        nonce_not_after: Some(not_after),
        destructive: true,
        upid_hint: Some("qmdestroy:101".into()),
    }
}

fn begin(store: &mut Store, intent: NewIntent, now: Timestamp) -> Result<IntentId, StoreError> {
    store
        .begin_intent(intent, AuditEvent::IntentRecorded, now)
        .map(|(id, _)| id)
}

fn dispatch(
    store: &mut Store,
    id: IntentId,
    upid: &str,
    now: Timestamp,
) -> Result<AuditRecord, StoreError> {
    store.mark_dispatched(
        id,
        Some(upid),
        AuditEvent::TaskDispatched { upid: None },
        now,
    )
}

fn finish(
    store: &mut Store,
    id: IntentId,
    outcome: Outcome,
    now: Timestamp,
) -> Result<AuditRecord, StoreError> {
    let ev = outcome.event();
    store.mark_terminal(id, outcome, ev, now)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A raw connection to the store's database with the append-only triggers dropped, as an
/// attacker with write access would do.
fn raw(dir: &Path) -> Connection {
    let c = Connection::open(dir.join(DB_FILE_NAME)).unwrap();
    c.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
    )
    .unwrap();
    c
}

fn audit_rows(store: &Store) -> Vec<AuditRecord> {
    store.audit_records(1, usize::MAX).unwrap()
}

#[test]
fn open_sets_up_wal_full_sync_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(!store.is_read_only());
    let c = Connection::open(store.path()).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // Reopening an up-to-date database changes nothing.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn open_needs_an_existing_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Store::open(&missing).unwrap_err();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(c);
    let err = Store::open(dir.path()).unwrap_err();
    match &err {
        StoreError::TooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, i64::from(SCHEMA_VERSION + 1));
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected TooNew, got {other}"),
    }
    assert!(err.to_string().contains("downgrade"), "{err}");
    assert!(matches!(
        Store::open_readonly(dir.path()).unwrap_err(),
        StoreError::TooNew { .. }
    ));
    // The refused open left the version alone.
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION + 1);
}

#[test]
fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    c.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 1;")
        .unwrap();
    drop(c);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotCastellan { .. }), "{err}");
}

#[test]
fn readonly_open_creates_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_readonly(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(files(dir.path()).is_empty());

    let mut store = Store::open(dir.path()).unwrap();
    store.append_audit(AuditEvent::AgentStarted, ts(0)).unwrap();
    drop(store);
    let before = files(dir.path());
    let bytes = std::fs::read(dir.path().join(DB_FILE_NAME)).unwrap();

    let mut ro = Store::open_readonly(dir.path()).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(verify_chain(&ro).unwrap().records, 1);
    assert_eq!(ro.audit_records(1, 10).unwrap().len(), 1);
    assert!(matches!(
        ro.append_audit(AuditEvent::AgentStarted, ts(1))
            .unwrap_err(),
        StoreError::ReadOnly(_)
    ));
    assert!(matches!(
        ro.effective_now(ts(1)).unwrap_err(),
        StoreError::ReadOnly(_)
    ));
    assert!(matches!(
        begin(&mut ro, benign("a", 100), ts(1)).unwrap_err(),
        StoreError::ReadOnly(_)
    ));
    drop(ro);
    assert_eq!(files(dir.path()), before);
    assert_eq!(std::fs::read(dir.path().join(DB_FILE_NAME)).unwrap(), bytes);
}

#[test]
fn readonly_open_handles_odd_paths() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("odd dir ?#%20é");
    std::fs::create_dir(&dir).unwrap();
    let mut store = Store::open(&dir).unwrap();
    store.append_audit(AuditEvent::AgentStarted, ts(0)).unwrap();
    // While open (WAL present) and after a clean close (immutable).
    assert_eq!(
        verify_chain(&Store::open_readonly(&dir).unwrap())
            .unwrap()
            .records,
        1
    );
    drop(store);
    assert_eq!(
        verify_chain(&Store::open_readonly(&dir).unwrap())
            .unwrap()
            .records,
        1
    );
    assert_eq!(files(&dir), vec![DB_FILE_NAME.to_owned()]);
}

#[test]
fn readonly_open_reads_while_the_agent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.append_audit(AuditEvent::AgentStarted, ts(0)).unwrap();
    let ro = Store::open_readonly(dir.path()).unwrap();
    store.append_audit(AuditEvent::AgentStarted, ts(1)).unwrap();
    assert_eq!(verify_chain(&ro).unwrap().records, 2);
}

#[test]
fn effective_now_never_goes_back_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.high_water().unwrap(), None);
    assert_eq!(store.effective_now(ts(100)).unwrap(), ts(100));
    assert_eq!(store.effective_now(ts(50)).unwrap(), ts(100));
    assert_eq!(store.effective_now(ts(101)).unwrap(), ts(101));
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.high_water().unwrap(), Some(ts(101)));
    assert_eq!(store.effective_now(ts(0)).unwrap(), ts(101));
    // Sub-second precision survives.
    let fine = ts(200)
        .checked_add(jiff::SignedDuration::from_nanos(123_456_789))
        .unwrap();
    assert_eq!(store.effective_now(fine).unwrap(), fine);
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.effective_now(ts(200)).unwrap(), fine);
}

#[test]
fn writes_raise_the_clock_and_stamp_effective_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let r1 = store
        .append_audit(AuditEvent::AgentStarted, ts(10))
        .unwrap();
    let r2 = store.append_audit(AuditEvent::AgentStarted, ts(5)).unwrap();
    assert_eq!((r1.time, r2.time), (ts(10), ts(10)));
    let id = begin(&mut store, benign("a", 100), ts(20)).unwrap();
    assert_eq!(store.high_water().unwrap(), Some(ts(20)));
    finish(&mut store, id, Outcome::Succeeded, ts(1)).unwrap();
    let i = store.intent(id).unwrap().unwrap();
    assert_eq!((i.created_at, i.finished_at), (ts(20), Some(ts(20))));
}

#[test]
fn intent_dispatched_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let (id, rec) = store
        .begin_intent(
            destructive("d1", 101, "n1", ts(3600)),
            AuditEvent::IntentRecorded.with(AuditFields::default().signer("SHA256:op1")),
            ts(0),
        )
        .unwrap();
    assert_eq!(rec.seq, 1);
    assert_eq!(rec.prev_hash, GENESIS_HASH);
    assert_eq!(rec.event, AuditEvent::IntentRecorded);
    assert_eq!(
        rec.fields,
        AuditFields {
            target: Some(Target::guest(GuestKind::Qemu, 101)),
            vmid: None,
            op: Some("destroy".into()),
            action_digest: Some("d1".into()),
            signer_fingerprints: vec!["SHA256:op1".into()],
            nonce: Some("n1".into()),
            intent: Some(id),
        }
    );
    assert!(store.nonce_consumed("n1").unwrap());
    let i = store.intent(id).unwrap().unwrap();
    assert_eq!(i.state, IntentState::Intent);
    assert_eq!(i.upid_hint.as_deref(), Some("qmdestroy:101"));
    assert_eq!(i.params.get("purge").map(String::as_str), Some("1"));
    assert_eq!(i.outcome, None);

    let rec = dispatch(&mut store, id, "UPID:pve:0001", ts(1)).unwrap();
    assert_eq!(
        rec.event,
        AuditEvent::TaskDispatched {
            upid: Some("UPID:pve:0001".into())
        }
    );
    assert_eq!(rec.fields.intent, Some(id));
    let i = store.intent(id).unwrap().unwrap();
    assert_eq!(i.state, IntentState::Dispatched);
    assert_eq!(i.upid.as_deref(), Some("UPID:pve:0001"));
    assert_eq!(i.dispatched_at, Some(ts(1)));

    let rec = finish(&mut store, id, Outcome::Succeeded, ts(2)).unwrap();
    assert_eq!(rec.event, AuditEvent::ActionSucceeded);
    assert_eq!(rec.seq, 3);
    let i = store.intent(id).unwrap().unwrap();
    assert_eq!(i.state, IntentState::Succeeded);
    assert_eq!(i.outcome, Some(Outcome::Succeeded));
    assert_eq!(i.finished_at, Some(ts(2)));
    assert!(store.in_flight().unwrap().is_empty());
    assert_eq!(verify_chain(&store).unwrap().records, 3);
}

#[test]
fn every_terminal_outcome_from_intent_and_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let outcomes = [
        Outcome::Succeeded,
        Outcome::Failed {
            error: "pve said no".into(),
        },
        Outcome::RolledBack {
            reason: "recovery: never sent".into(),
        },
    ];
    let mut n = 0;
    for dispatched in [false, true] {
        for outcome in &outcomes {
            n += 1;
            let id = begin(&mut store, benign(&format!("a{n}"), 100 + n), ts(0)).unwrap();
            if dispatched {
                dispatch(&mut store, id, "UPID:x", ts(0)).unwrap();
            }
            let rec = finish(&mut store, id, outcome.clone(), ts(0)).unwrap();
            assert_eq!(rec.event, outcome.event());
            let i = store.intent(id).unwrap().unwrap();
            assert_eq!(i.state, outcome.state());
            assert_eq!(i.outcome.as_ref(), Some(outcome));
            assert!(i.state.is_terminal());
            // Nothing may follow a terminal record.
            for o in &outcomes {
                let err = finish(&mut store, id, o.clone(), ts(0)).unwrap_err();
                assert!(
                    matches!(err, StoreError::BadTransition { id: e, from, .. } if e == id && from == outcome.state()),
                    "{err}"
                );
            }
            let err = dispatch(&mut store, id, "UPID:y", ts(0)).unwrap_err();
            assert!(matches!(err, StoreError::BadTransition { .. }), "{err}");
        }
    }
    assert_eq!(verify_chain(&store).unwrap().records, 6 * 2 + 3);
}

#[test]
fn double_dispatch_and_unknown_intent_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let id = begin(&mut store, benign("a", 100), ts(0)).unwrap();
    dispatch(&mut store, id, "UPID:1", ts(0)).unwrap();
    let head = store.audit_head().unwrap();
    let err = dispatch(&mut store, id, "UPID:2", ts(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("intent {id} cannot go from dispatched to dispatched")
    );
    assert_eq!(store.audit_head().unwrap(), head);
    assert_eq!(
        store.intent(id).unwrap().unwrap().upid.as_deref(),
        Some("UPID:1")
    );
    let ghost = IntentId(999);
    assert!(matches!(
        dispatch(&mut store, ghost, "UPID:3", ts(0)).unwrap_err(),
        StoreError::UnknownIntent(i) if i == ghost
    ));
    assert!(matches!(
        finish(&mut store, ghost, Outcome::Succeeded, ts(0)).unwrap_err(),
        StoreError::UnknownIntent(_)
    ));
    assert_eq!(store.intent(ghost).unwrap(), None);
}

#[test]
fn journal_steps_need_their_own_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let err = store
        .begin_intent(benign("a", 100), AuditEvent::ActionAllowed, ts(0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::EventMismatch {
                expected: "intent_recorded",
                got: "action_allowed"
            }
        ),
        "{err}"
    );
    let id = begin(&mut store, benign("a", 100), ts(0)).unwrap();
    assert!(matches!(
        store
            .mark_dispatched(id, None, AuditEvent::ActionSucceeded, ts(0))
            .unwrap_err(),
        StoreError::EventMismatch { .. }
    ));
    assert!(matches!(
        store
            .mark_terminal(
                id,
                Outcome::Succeeded,
                AuditEvent::ActionFailed { error: "x".into() },
                ts(0)
            )
            .unwrap_err(),
        StoreError::EventMismatch { .. }
    ));
    // The outcome's text wins over the event's, so the two always agree.
    let rec = store
        .mark_terminal(
            id,
            Outcome::Failed {
                error: "real".into(),
            },
            AuditEvent::ActionFailed {
                error: "other".into(),
            },
            ts(0),
        )
        .unwrap();
    assert_eq!(
        rec.event,
        AuditEvent::ActionFailed {
            error: "real".into()
        }
    );
    assert_eq!(store.audit_head().unwrap().unwrap().0, 2);
}

#[test]
fn replay_is_refused_across_reopen_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let id = begin(
        &mut store,
        destructive("d1", 101, "nonce-1", ts(3600)),
        ts(0),
    )
    .unwrap();
    drop(store);

    let mut store = Store::open(dir.path()).unwrap();
    assert!(store.nonce_consumed("nonce-1").unwrap());
    assert!(!store.nonce_consumed("nonce-2").unwrap());
    let head = store.audit_head().unwrap();
    // Same nonce, even under another action id.
    let err = begin(
        &mut store,
        destructive("d2", 101, "nonce-1", ts(3600)),
        ts(10),
    )
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Replayed { nonce } if nonce == "nonce-1"),
        "{err}"
    );
    assert_eq!(err.to_string(), "nonce \"nonce-1\" was already consumed");
    assert_eq!(store.audit_head().unwrap(), head);
    assert_eq!(store.recent_intents(10).unwrap().len(), 1);
    // Not even the clock moved.
    assert_eq!(store.high_water().unwrap(), Some(ts(0)));
    assert_eq!(
        store.intent(id).unwrap().unwrap().state,
        IntentState::Intent
    );
}

#[test]
fn expired_op_is_refused_by_effective_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.effective_now(ts(1000)).unwrap();
    // The wall clock stepped back to 0, but the op expired at 500 < high-water 1000.
    let err = begin(&mut store, destructive("d1", 101, "n", ts(500)), ts(0)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Expired { not_after, now, .. } if *not_after == ts(500) && *now == ts(1000)),
        "{err}"
    );
    assert!(!store.nonce_consumed("n").unwrap());
    assert_eq!(store.audit_head().unwrap(), None);
    // Exactly at not_after is still valid.
    begin(&mut store, destructive("d1", 101, "n", ts(1000)), ts(0)).unwrap();
}

#[test]
fn duplicate_actions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();

    // A live intent blocks its action id, in every non-terminal state and after success.
    let a = begin(&mut store, benign("a", 100), ts(0)).unwrap();
    let dup = |store: &mut Store, intent| begin(store, intent, ts(0)).unwrap_err();
    let err = dup(&mut store, benign("a", 100));
    assert!(
        matches!(&err, StoreError::DuplicateAction { action_id, existing, state: IntentState::Intent } if action_id == "a" && *existing == a),
        "{err}"
    );
    dispatch(&mut store, a, "UPID:a", ts(0)).unwrap();
    assert!(matches!(
        dup(&mut store, benign("a", 100)),
        StoreError::DuplicateAction {
            state: IntentState::Dispatched,
            ..
        }
    ));
    finish(&mut store, a, Outcome::Succeeded, ts(0)).unwrap();
    assert!(matches!(
        dup(&mut store, benign("a", 100)),
        StoreError::DuplicateAction {
            state: IntentState::Succeeded,
            ..
        }
    ));

    // A failed or rolled-back benign action may be retried under its id ...
    let b = begin(&mut store, benign("b", 100), ts(0)).unwrap();
    finish(
        &mut store,
        b,
        Outcome::Failed {
            error: "lock".into(),
        },
        ts(0),
    )
    .unwrap();
    let b2 = begin(&mut store, benign("b", 100), ts(0)).unwrap();
    assert!(b2 > b);
    finish(
        &mut store,
        b2,
        Outcome::RolledBack { reason: "x".into() },
        ts(0),
    )
    .unwrap();
    let b3 = begin(&mut store, benign("b", 100), ts(0)).unwrap();
    // ... but only while no other attempt is live.
    assert!(
        matches!(dup(&mut store, benign("b", 100)), StoreError::DuplicateAction { existing, .. } if existing == b3)
    );

    // A destructive action id is single-use, whatever became of it.
    for (i, outcome) in [
        Outcome::Failed { error: "e".into() },
        Outcome::RolledBack { reason: "r".into() },
        Outcome::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let action = format!("d{i}");
        let d = begin(
            &mut store,
            destructive(&action, 101, &format!("n{i}"), ts(3600)),
            ts(0),
        )
        .unwrap();
        finish(&mut store, d, outcome, ts(0)).unwrap();
        let err = dup(
            &mut store,
            destructive(&action, 101, &format!("m{i}"), ts(3600)),
        );
        assert!(
            matches!(&err, StoreError::DuplicateAction { existing, .. } if *existing == d),
            "{err}"
        );
        assert!(!store.nonce_consumed(&format!("m{i}")).unwrap());
        // Nor may a benign action reuse a destructive one's id.
        assert!(matches!(
            dup(&mut store, benign(&action, 101)),
            StoreError::DuplicateAction { .. }
        ));
    }
    // And a failed benign attempt does not open its id to a destructive one.
    let c = begin(&mut store, benign("c", 100), ts(0)).unwrap();
    finish(&mut store, c, Outcome::Failed { error: "e".into() }, ts(0)).unwrap();
    assert!(matches!(
        dup(&mut store, destructive("c", 100, "nc", ts(3600))),
        StoreError::DuplicateAction { .. }
    ));
    verify_chain(&store).unwrap();
}

#[test]
fn invalid_intents_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut d = destructive("d", 101, "n", ts(10));
    d.nonce = None;
    d.nonce_not_after = None;
    let err = begin(&mut store, d, ts(0)).unwrap_err();
    assert!(matches!(err, StoreError::InvalidIntent(_)), "{err}");
    assert!(err.to_string().contains("destructive"), "{err}");
    let mut b = benign("", 100);
    assert!(matches!(
        begin(&mut store, b.clone(), ts(0)).unwrap_err(),
        StoreError::InvalidIntent(_)
    ));
    b.action_id = "x".into();
    b.nonce_not_after = Some(ts(5));
    assert!(matches!(
        begin(&mut store, b, ts(0)).unwrap_err(),
        StoreError::InvalidIntent(_)
    ));
    assert_eq!(store.audit_head().unwrap(), None);
}

#[test]
fn in_flight_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = begin(&mut store, benign("a", 100), ts(0)).unwrap();
    let b = begin(&mut store, destructive("b", 101, "nb", ts(3600)), ts(1)).unwrap();
    dispatch(&mut store, b, "UPID:pve:b", ts(2)).unwrap();
    let c = begin(&mut store, benign("c", 102), ts(3)).unwrap();
    finish(&mut store, c, Outcome::Succeeded, ts(4)).unwrap();
    let d = begin(&mut store, benign("d", 100), ts(5)).unwrap();
    // "Crash": the store goes away without terminal records for a, b, d.
    drop(store);

    let mut store = Store::open(dir.path()).unwrap();
    let in_flight = store.in_flight().unwrap();
    let ids: Vec<IntentId> = in_flight.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![a, b, d]);
    assert_eq!(in_flight[1].state, IntentState::Dispatched);
    assert_eq!(in_flight[1].upid.as_deref(), Some("UPID:pve:b"));
    assert_eq!(in_flight[0].upid, None);
    assert!(store.nonce_consumed("nb").unwrap());
    // Recovery resolves them, then nothing is in flight.
    for i in &in_flight {
        store
            .append_audit(
                AuditEvent::RecoveryResumed.with(AuditFields::default().intent(i.id)),
                ts(6),
            )
            .unwrap();
        let outcome = if i.destructive {
            Outcome::Succeeded
        } else {
            Outcome::RolledBack {
                reason: "recovery: not sent".into(),
            }
        };
        finish(&mut store, i.id, outcome, ts(6)).unwrap();
    }
    store
        .append_audit(AuditEvent::RecoveryCompleted { intents: 3 }, ts(6))
        .unwrap();
    assert!(store.in_flight().unwrap().is_empty());

    assert_eq!(
        store
            .intents_for(&Target::guest(GuestKind::Lxc, 100))
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        vec![a, d]
    );
    assert_eq!(
        store
            .recent_intents(2)
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        vec![d, c]
    );
    verify_chain(&store).unwrap();
}

#[test]
fn prune_drops_only_expired_nonces_and_cannot_reopen_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let half = jiff::SignedDuration::from_nanos(500);
    begin(&mut store, destructive("d1", 101, "old", ts(100)), ts(0)).unwrap();
    begin(&mut store, destructive("d2", 101, "edge", ts(200)), ts(0)).unwrap();
    // Sub-microsecond: expires half a microsecond after 200s.
    begin(
        &mut store,
        destructive("d3", 101, "fine", ts(200).checked_add(half).unwrap()),
        ts(0),
    )
    .unwrap();
    begin(&mut store, destructive("d4", 101, "new", ts(300)), ts(0)).unwrap();
    let mut forever = benign("b", 100);
    forever.nonce = Some("forever".into());
    begin(&mut store, forever, ts(0)).unwrap();

    assert_eq!(store.prune_nonces(ts(50)).unwrap(), 0);
    // not_after == now is not strictly before now: kept.
    assert_eq!(store.prune_nonces(ts(100)).unwrap(), 0);
    assert_eq!(store.prune_nonces(ts(200)).unwrap(), 1);
    assert!(!store.nonce_consumed("old").unwrap());
    assert!(store.nonce_consumed("edge").unwrap());
    assert!(store.nonce_consumed("fine").unwrap());
    // Expiry is compared in whole microseconds, rounded so that a nonce is only ever kept
    // longer: 1001 ns after 200 s, "edge" (200 s) goes, but "fine" (200 s + 500 ns), though
    // expired, stays until the next microsecond boundary.
    let just_past = ts(200)
        .checked_add(jiff::SignedDuration::from_nanos(1_001))
        .unwrap();
    assert_eq!(store.prune_nonces(just_past).unwrap(), 1);
    assert!(!store.nonce_consumed("edge").unwrap());
    assert!(store.nonce_consumed("fine").unwrap());
    // Pruning raised the high-water mark, so the pruned ops are expired for good, even
    // if the wall clock steps back: the pruned nonce is not replayable.
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.effective_now(ts(0)).unwrap(), just_past);
    let err = begin(
        &mut store,
        destructive("d1-again", 101, "old", ts(100)),
        ts(0),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Expired { .. }), "{err}");
    // Everything unexpired is still consumed.
    assert_eq!(store.prune_nonces(ts(10_000)).unwrap(), 2);
    assert!(store.nonce_consumed("forever").unwrap());
}

#[test]
fn provenance_is_recorded_checked_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut create = benign("create-105", 105);
    create.op = "provision".into();
    let id = begin(&mut store, create, ts(0)).unwrap();
    finish(&mut store, id, Outcome::Succeeded, ts(1)).unwrap();
    assert_eq!(store.provenance(105).unwrap(), None);
    store
        .record_provenance(
            105,
            GuestKind::Lxc,
            ProvenanceKind::CreatedByAgent { intent: id },
            ts(2),
        )
        .unwrap();
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    let p = store.provenance(105).unwrap().unwrap();
    assert_eq!(p.kind, ProvenanceKind::CreatedByAgent { intent: id });
    assert_eq!(
        (p.vmid, p.guest, p.recorded_at),
        (105, GuestKind::Lxc, ts(2))
    );

    // It must cite an intent for the same guest.
    let err = store
        .record_provenance(
            106,
            GuestKind::Lxc,
            ProvenanceKind::Scratch { intent: id },
            ts(3),
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ProvenanceMismatch { vmid: 106, .. }),
        "{err}"
    );
    assert!(matches!(
        store
            .record_provenance(
                105,
                GuestKind::Qemu,
                ProvenanceKind::Scratch { intent: id },
                ts(3)
            )
            .unwrap_err(),
        StoreError::ProvenanceMismatch { .. }
    ));
    assert!(matches!(
        store
            .record_provenance(
                105,
                GuestKind::Lxc,
                ProvenanceKind::Scratch {
                    intent: IntentId(77)
                },
                ts(3)
            )
            .unwrap_err(),
        StoreError::ProvenanceMismatch { .. }
    ));
    store
        .record_provenance(
            105,
            GuestKind::Lxc,
            ProvenanceKind::Scratch { intent: id },
            ts(3),
        )
        .unwrap();
    assert_eq!(
        store.provenance(105).unwrap().unwrap().kind,
        ProvenanceKind::Scratch { intent: id }
    );
    assert!(store.forget_provenance(105).unwrap());
    assert!(!store.forget_provenance(105).unwrap());
    assert_eq!(store.provenance(105).unwrap(), None);
}

#[test]
fn audit_appends_reads_exports_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.audit_head().unwrap(), None);
    assert_eq!(
        verify_chain(&store).unwrap(),
        ChainReport {
            records: 0,
            head_hash: GENESIS_HASH.into()
        }
    );
    store.append_audit(AuditEvent::AgentStarted, ts(0)).unwrap();
    store
        .append_audit(
            AuditEvent::OpRejected {
                reason: RejectReason::BadSignature,
                detail: "line \"1\"\n\u{1}é".into(),
            }
            .with(
                AuditFields::action(Target::guest(GuestKind::Lxc, 101), "destroy", "abc")
                    .signer("SHA256:k1")
                    .signer("SHA256:k2")
                    .nonce("n"),
            ),
            ts(1),
        )
        .unwrap();
    store
        .append_audit(
            AuditEvent::SignaturePending
                .with(AuditFields::default().target(Target::container("web").unwrap())),
            ts(2),
        )
        .unwrap();
    let id = begin(&mut store, benign("a", 100), ts(3)).unwrap();
    store
        .mark_dispatched(id, None, AuditEvent::TaskDispatched { upid: None }, ts(4))
        .unwrap();

    let recs = audit_rows(&store);
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    for w in recs.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    assert_eq!(
        recs[1].fields.signer_fingerprints,
        vec!["SHA256:k1", "SHA256:k2"]
    );
    assert_eq!(store.audit_records(4, 1).unwrap(), vec![recs[3].clone()]);
    assert_eq!(store.audit_head().unwrap(), Some((5, recs[4].hash.clone())));
    let report = verify_chain(&store).unwrap();
    assert_eq!(
        report,
        ChainReport {
            records: 5,
            head_hash: recs[4].hash.clone()
        }
    );
    verify_chain_pinned(&store, 3, &recs[2].hash).unwrap();

    let mut out = Vec::new();
    assert_eq!(store.export_jsonl(&mut out).unwrap(), 5);
    let text = String::from_utf8(out.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].starts_with(r#"{"event":{"event":"agent_started"},"hash":""#),
        "{}",
        lines[0]
    );
    for (line, rec) in lines.iter().zip(&recs) {
        let parsed: AuditRecord = serde_json::from_str(line).unwrap();
        assert_eq!(&parsed, rec);
        // Secrets and bulky values stay out: no signature blobs.
        assert!(!line.contains("SSHSIG"));
    }
    assert_eq!(verify_jsonl(out.as_slice()).unwrap(), report);
    // The hub's verification catches an edited line too.
    let edited = text.replacen("bad_signature", "bad_signaturf", 1);
    assert_eq!(verify_jsonl(edited.as_bytes()).unwrap_err().seq, 2);
    let mut tail = Vec::new();
    assert_eq!(store.export_jsonl_from(4, &mut tail).unwrap(), 2);
}

#[test]
fn store_works_behind_a_mutex_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(std::sync::Mutex::new(Store::open(dir.path()).unwrap()));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let mut s = store.lock().unwrap();
                    begin(&mut s, benign(&format!("t{t}-{i}"), 100 + t), ts(i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = store.lock().unwrap();
    assert_eq!(verify_chain(&s).unwrap().records, 40);
    assert_eq!(s.in_flight().unwrap().len(), 40);
}

// ---- tamper detection on the raw database ----

/// A store with `n` varied records.
fn chain_of(dir: &Path, n: u64) -> Store {
    let mut store = Store::open(dir).unwrap();
    for i in 0..n {
        let ev = match i % 4 {
            0 => AuditEvent::ActionAllowed.with(AuditFields::action(
                Target::guest(GuestKind::Lxc, 100 + i as u32),
                "start",
                format!("digest{i}"),
            )),
            1 => AuditEvent::OpRejected {
                reason: RejectReason::Expired,
                detail: format!("op {i}"),
            }
            .into(),
            2 => AuditEvent::SignatureAccepted
                .with(AuditFields::default().signer(format!("SHA256:{i}"))),
            _ => AuditEvent::ActionFailed {
                error: format!("error {i}"),
            }
            .into(),
        };
        store.append_audit(ev, ts(i as i64)).unwrap();
    }
    store
}

fn broken_at(store: &Store) -> u64 {
    verify_chain(store)
        .expect_err("tampering must be detected")
        .seq
}

#[test]
fn triggers_refuse_update_and_delete_of_audit_records() {
    let dir = tempfile::tempdir().unwrap();
    let _store = chain_of(dir.path(), 3);
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    let err = c
        .execute("UPDATE audit SET time = 'x' WHERE seq = 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(c.execute("DELETE FROM audit WHERE seq = 3", []).is_err());
    assert!(c.execute("DELETE FROM intents", []).is_ok()); // empty table: no row, no trigger
}

#[test]
fn edited_event_time_seq_or_hash_is_detected_at_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let c = raw(dir.path());
    let edits = [
        (
            "UPDATE audit SET event = replace(event, 'op 5', 'op 6') WHERE seq = 6",
            6,
        ),
        (
            "UPDATE audit SET time = '2020-01-01T00:00:00Z' WHERE seq = 3",
            3,
        ),
        (
            "UPDATE audit SET hash = 'ff' || substr(hash, 3) WHERE seq = 10",
            10,
        ),
        (
            "UPDATE audit SET prev_hash = 'ff' || substr(prev_hash, 3) WHERE seq = 1",
            1,
        ),
        ("UPDATE audit SET seq = 100 WHERE seq = 4", 4),
    ];
    for (sql, seq) in edits {
        let save = dir.path().join("save.db");
        let _ = std::fs::remove_file(&save);
        c.execute("VACUUM INTO ?1", [save.to_str().unwrap()])
            .unwrap();
        assert_eq!(c.execute(sql, []).unwrap(), 1, "{sql}");
        assert_eq!(broken_at(&store), seq, "{sql}");
        // Restore the untampered rows.
        c.execute("ATTACH ?1 AS save", [save.to_str().unwrap()])
            .unwrap();
        c.execute_batch(
            "DELETE FROM audit; INSERT INTO audit SELECT * FROM save.audit; DETACH save;",
        )
        .unwrap();
        assert_eq!(verify_chain(&store).unwrap().records, 10);
    }
}

#[test]
fn deleted_records_are_detected_except_the_tail_without_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let (head_seq, head_hash) = store.audit_head().unwrap().unwrap();
    let c = raw(dir.path());
    c.execute("DELETE FROM audit WHERE seq = 1", []).unwrap();
    let err = verify_chain(&store).unwrap_err();
    assert_eq!(err.seq, 1);
    assert!(err.reason.contains("missing"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let c = raw(dir.path());
    c.execute("DELETE FROM audit WHERE seq = 5", []).unwrap();
    assert_eq!(broken_at(&store), 5);

    // Cutting off the tail leaves a valid shorter chain ...
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let c = raw(dir.path());
    c.execute("DELETE FROM audit WHERE seq = 10", []).unwrap();
    assert_eq!(verify_chain(&store).unwrap().records, 9);
    // ... which only the pinned head reveals.
    let err = verify_chain_pinned(&store, head_seq, &head_hash).unwrap_err();
    assert_eq!(err.seq, 10);
    assert!(err.reason.contains("truncated"), "{err}");
}

#[test]
fn swapped_records_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let c = raw(dir.path());
    // Swap the contents of records 4 and 5, keeping their seqs.
    c.execute_batch(
        "UPDATE audit SET seq = -4 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 5;
         UPDATE audit SET seq = 5 WHERE seq = -4;",
    )
    .unwrap_err(); // seq >= 1 is a CHECK constraint: swap through a free seq instead
    c.execute_batch(
        "UPDATE audit SET seq = 1000 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = 5;
         UPDATE audit SET seq = 5 WHERE seq = 1000;",
    )
    .unwrap();
    assert_eq!(broken_at(&store), 4);
}

#[test]
fn inserted_records_are_detected() {
    // In the middle, with a correctly computed hash: the record after it no longer fits.
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let recs = audit_rows(&store);
    let c = raw(dir.path());
    c.execute_batch("UPDATE audit SET seq = seq + 1000 WHERE seq > 5; UPDATE audit SET seq = seq - 999 WHERE seq > 1000;")
        .unwrap();
    let event = r#"{"event":"action_succeeded"}"#;
    let time = "2023-11-14T22:13:25Z";
    let hash = record_hash(&recs[4].hash, 6, time, event);
    c.execute(
        "INSERT INTO audit (seq, time, prev_hash, hash, event) VALUES (6, ?1, ?2, ?3, ?4)",
        (time, &recs[4].hash, &hash, event),
    )
    .unwrap();
    assert_eq!(broken_at(&store), 7);

    // At the end with a made-up hash.
    let dir = tempfile::tempdir().unwrap();
    let store = chain_of(dir.path(), 10);
    let recs = audit_rows(&store);
    let c = raw(dir.path());
    c.execute(
        "INSERT INTO audit (seq, time, prev_hash, hash, event) VALUES (11, ?1, ?2, ?3, ?4)",
        (time, &recs[9].hash, "00".repeat(32), event),
    )
    .unwrap();
    assert_eq!(broken_at(&store), 11);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any one-character edit of any record's stored event JSON or time is detected, at
    /// that record.
    #[test]
    fn any_single_character_edit_is_detected(
        seq in 1u64..=12,
        in_time in any::<bool>(),
        pos in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        thread_local! {
            static FIXTURE: (tempfile::TempDir, Store, Connection) = {
                let dir = tempfile::tempdir().unwrap();
                let store = chain_of(dir.path(), 12);
                let c = raw(dir.path());
                (dir, store, c)
            };
        }
        FIXTURE.with(|(_, store, c)| {
            let col = if in_time { "time" } else { "event" };
            let original: String = c
                .query_row(&format!("SELECT {col} FROM audit WHERE seq = ?1"), [seq as i64], |r| r.get(0))
                .unwrap();
            let mut chars: Vec<char> = original.chars().collect();
            let i = pos.index(chars.len());
            prop_assume!(chars[i] != replacement);
            chars[i] = replacement;
            let edited: String = chars.into_iter().collect();
            c.execute(&format!("UPDATE audit SET {col} = ?1 WHERE seq = ?2"), (&edited, seq as i64)).unwrap();
            let result = verify_chain(store);
            c.execute(&format!("UPDATE audit SET {col} = ?1 WHERE seq = ?2"), (&original, seq as i64)).unwrap();
            let err = result.expect_err("edit must be detected");
            prop_assert_eq!(err.seq, seq);
            prop_assert!(verify_chain(store).is_ok());
            Ok(())
        })?;
    }
}

/// The safety backups of an op that removes several guests: one per guest, recorded with
/// an audit record naming that guest, read back by guest, never taken twice, never
/// changed or deleted, and not after the intent is settled.
#[test]
fn per_guest_safety_backups_are_recorded_once_each_and_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let node = Target::node("pve-01").unwrap();
    let id = begin(
        &mut store,
        NewIntent {
            action_id: "decom".into(),
            op: "decommission".into(),
            target: node.clone(),
            params: BTreeMap::new(),
            nonce: Some("n-decom".into()),
            nonce_not_after: Some(ts(3600)),
            destructive: true,
            upid_hint: None,
        },
        ts(0),
    )
    .unwrap();
    let ct = Target::guest(GuestKind::Lxc, 101);
    let vm = Target::guest(GuestKind::Qemu, 102);
    let rec = store
        .record_item_backup(id, &ct, "local:backup/vzdump-lxc-101-x.tar.zst", 100, ts(1))
        .unwrap();
    assert_eq!(
        rec.fields.target.as_ref(),
        Some(&ct),
        "the audit names the guest"
    );
    assert_eq!(rec.fields.intent, Some(id));
    assert!(matches!(
        rec.event,
        AuditEvent::BackupTaken { size: 100, .. }
    ));
    store
        .record_item_backup(
            id,
            &vm,
            "local:backup/vzdump-qemu-102-x.vma.zst",
            200,
            ts(2),
        )
        .unwrap();
    // A second backup of the same guest for the same intent is refused.
    assert!(
        store
            .record_item_backup(id, &ct, "local:backup/other", 1, ts(3))
            .is_err()
    );
    let taken = store.item_backups(id).unwrap();
    assert_eq!(taken.len(), 2);
    assert_eq!(taken[&ct], "local:backup/vzdump-lxc-101-x.tar.zst");
    // The journal's rows are append-only.
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    let err = c
        .execute("UPDATE intent_backups SET volume = 'x'", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(c.execute("DELETE FROM intent_backups", []).is_err());
    // Settled, the intent takes no more.
    finish(&mut store, id, Outcome::Succeeded, ts(4)).unwrap();
    assert!(
        store
            .record_item_backup(id, &Target::guest(GuestKind::Lxc, 103), "local:b", 1, ts(5))
            .is_err()
    );
    verify_chain(&store).unwrap();
}

/// What an op removing items one by one removed: recorded once each with its audit record,
/// read back in order, never rewritten, and not after the intent is settled.
#[test]
fn removals_are_recorded_once_each_with_their_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let id = begin(
        &mut store,
        NewIntent {
            action_id: "wipe".into(),
            op: "wipe_storage".into(),
            target: Target::storage("local-lvm").unwrap(),
            params: BTreeMap::new(),
            nonce: Some("n-wipe".into()),
            nonce_not_after: Some(ts(3600)),
            destructive: true,
            upid_hint: None,
        },
        ts(0),
    )
    .unwrap();
    let removed = |volume: &str, found_gone| {
        AuditEntry::from(AuditEvent::VolumeRemoved {
            volume: volume.into(),
            size: 1,
            found_gone,
        })
    };
    let rec = store
        .record_item_removed(id, "local-lvm:b", removed("local-lvm:b", false), ts(1))
        .unwrap();
    assert_eq!(rec.fields.intent, Some(id));
    assert_eq!(
        rec.fields
            .target
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("storage/local-lvm")
    );
    store
        .record_item_removed(id, "local-lvm:a", removed("local-lvm:a", true), ts(2))
        .unwrap();
    assert!(
        store
            .record_item_removed(id, "local-lvm:a", removed("local-lvm:a", false), ts(3))
            .is_err(),
        "once per item"
    );
    assert_eq!(
        store.items_removed(id).unwrap(),
        ["local-lvm:b", "local-lvm:a"]
    );
    let c = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    assert!(c.execute("DELETE FROM intent_removed", []).is_err());
    assert!(
        c.execute("UPDATE intent_removed SET item = 'x'", [])
            .is_err()
    );
    finish(&mut store, id, Outcome::Succeeded, ts(4)).unwrap();
    assert!(
        store
            .record_item_removed(id, "local-lvm:c", removed("local-lvm:c", false), ts(5))
            .is_err()
    );
    verify_chain(&store).unwrap();
}
