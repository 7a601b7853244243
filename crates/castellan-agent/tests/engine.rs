//! The reconcile engine against an in-memory backend that stores writes as Proxmox VE
//! does, with scripted failures: convergence, isolation of a failing guest, conflict
//! handling, one action in flight per guest, and the latest desired state winning.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use castellan_agent::backend::{BackendError, FailureClass};
use castellan_agent::{Engine, Gatekeeper, Inbox, Mode, Tuning};
use castellan_core::Operation;
use castellan_core::model::*;
use castellan_core::{DesiredState, Normalizers};
use castellan_store::Store;
use common::Fake;
use tokio::sync::watch;

fn guest(vmid: Vmid, run: ActualRun, cores: u32) -> ActualGuest {
    let mut g = ActualGuest::new(vmid, GuestKind::Lxc, run);
    g.spec = Some(ActualSpec {
        cores: Some(cores),
        memory_mib: 512,
        description: None,
        tags: None,
        digest: format!("d{vmid}"),
        disks: Default::default(),
    });
    g
}

fn want(vmids: &[Vmid], cores: u32) -> DesiredState {
    DesiredState {
        node: "pve-01".into(),
        containers: Default::default(),
        wipes: Default::default(),
        decommission: None,
        guests: vmids
            .iter()
            .map(|&v| {
                (
                    v,
                    DesiredGuest {
                        run: DesiredRun::Running,
                        cores: Some(cores),
                        ..DesiredGuest::new(v, GuestKind::Lxc)
                    },
                )
            })
            .collect(),
    }
}

fn tuning() -> Tuning {
    Tuning {
        max_parallel: 4,
        backoff_base_ms: 10,
        backoff_max_secs: 1,
        once_attempts: 3,
        ..Tuning::default()
    }
}

/// A gatekeeper journaling into a fresh data directory (kept alive by the returned guard).
fn keeper() -> (Arc<Gatekeeper>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store opens");
    let inbox = Inbox::open(&dir.path().join("inbox")).expect("inbox");
    (
        Arc::new(Gatekeeper::new(
            "pve-01",
            None,
            store,
            Some(inbox),
            dir.path(),
        )),
        dir,
    )
}

fn engine(
    fake: &Fake,
    rx: watch::Receiver<Arc<DesiredState>>,
) -> (Engine<Fake>, tempfile::TempDir) {
    let (k, dir) = keeper();
    (
        Engine::new(
            Arc::new(fake.clone()),
            k,
            rx,
            Normalizers::default(),
            tuning(),
        ),
        dir,
    )
}

async fn run_once(fake: &Fake, desired: DesiredState) -> castellan_agent::RunReport {
    let (_tx, rx) = watch::channel(Arc::new(desired));
    let (engine, _dir) = engine(fake, rx);
    engine.run(Mode::Once, std::future::pending()).await
}

#[tokio::test]
async fn converges_and_reports() {
    let fake = Fake::with(vec![
        guest(101, ActualRun::Stopped, 1),
        guest(102, ActualRun::Running, 1),
        guest(150, ActualRun::Running, 1),
    ]);
    let report = run_once(&fake, want(&[101, 102, 104], 2)).await;
    assert!(report.converged(), "{:?}", report.reasons());
    let n = fake.lock();
    let of = |vmid| {
        n.executed
            .iter()
            .filter(|e| e.0 == vmid)
            .map(|e| e.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(101),
        vec![Operation::SetConfig, Operation::Start],
        "config before run state"
    );
    assert_eq!(of(102), vec![Operation::SetConfig]);
    assert_eq!(n.executed.len(), 3);
    assert_eq!(
        n.guests[&150].run,
        ActualRun::Running,
        "destroy candidate untouched"
    );
    let p = report.final_plan.expect("final plan");
    assert_eq!(p.candidates.len(), 2, "{:?}", p.candidates);
    assert_eq!(report.applied.len(), 3);
}

#[tokio::test]
async fn a_failing_guest_does_not_stop_the_others() {
    let fake = Fake::with(
        (101..111)
            .map(|v| guest(v, ActualRun::Stopped, 1))
            .collect(),
    );
    fake.lock().broken.push(103);
    let report = run_once(&fake, want(&(101..111).collect::<Vec<_>>(), 2)).await;
    assert!(!report.converged());
    assert_eq!(report.failed.keys().copied().collect::<Vec<_>>(), vec![103]);
    assert!(
        report.failed[&103].contains("storage offline"),
        "{:?}",
        report.failed
    );
    let reasons = report.reasons().join("\n");
    assert!(reasons.contains("103: gave up"), "{reasons}");
    let n = fake.lock();
    for v in (101..111).filter(|v| *v != 103) {
        assert_eq!(n.guests[&v].run, ActualRun::Running, "{v} converged");
        assert_eq!(n.guests[&v].spec.as_ref().and_then(|s| s.cores), Some(2));
    }
    assert_eq!(n.guests[&103].run, ActualRun::Stopped);
}

#[tokio::test]
async fn transient_failures_are_retried_and_conflicts_replanned() {
    let fake = Fake::with(vec![
        guest(101, ActualRun::Running, 1),
        guest(102, ActualRun::Running, 1),
    ]);
    {
        let mut n = fake.lock();
        n.failures.insert(
            101,
            VecDeque::from([
                BackendError::retry("CT 101 is locked (backup)"),
                BackendError::retry("lock timeout"),
            ]),
        );
        n.failures.insert(
            102,
            (0..5)
                .map(|_| BackendError {
                    class: FailureClass::Conflict,
                    message: "digest".into(),
                })
                .collect(),
        );
    }
    let report = run_once(&fake, want(&[101, 102], 3)).await;
    assert!(report.converged(), "{:?}", report.reasons());
    let n = fake.lock();
    assert_eq!(n.guests[&101].spec.as_ref().and_then(|s| s.cores), Some(3));
    assert_eq!(
        n.guests[&102].spec.as_ref().and_then(|s| s.cores),
        Some(3),
        "conflicts do not count as failures"
    );
}

#[tokio::test]
async fn one_action_in_flight_per_guest() {
    let mut fake = Fake::with(
        (101..121)
            .map(|v| guest(v, ActualRun::Stopped, 1))
            .collect(),
    );
    fake.latency = Duration::from_millis(5);
    let report = run_once(&fake, want(&(101..121).collect::<Vec<_>>(), 2)).await;
    assert!(report.converged(), "{:?}", report.reasons());
    assert_eq!(fake.lock().max_in_flight_per_guest, 1);
    assert_eq!(fake.lock().executed.len(), 40);
}

#[tokio::test]
async fn the_latest_desired_state_wins() {
    let mut fake = Fake::with(vec![guest(101, ActualRun::Running, 1)]);
    fake.latency = Duration::from_millis(50);
    let (tx, rx) = watch::channel(Arc::new(want(&[101], 2)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (engine, _dir) = engine(&fake, rx);
    let task = tokio::spawn(engine.run(Mode::Continuous, async move {
        let _ = stop_rx.await;
    }));
    // Change the desired state while the first write is in flight.
    tokio::time::sleep(Duration::from_millis(20)).await;
    tx.send(Arc::new(want(&[101], 6))).expect("engine listens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cores = fake.lock().guests[&101].spec.as_ref().and_then(|s| s.cores);
        if cores == Some(6) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not converge to the newest state: {cores:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("engine stops")
        .expect("engine ran");
    assert_eq!(fake.lock().max_in_flight_per_guest, 1);
}

/// The engine's timers run on tokio time: with the clock paused, a guest that fails
/// three times with back-offs of a minute and more converges at once, and the clock it
/// ran on moved by at least the sum of the back-offs (1 + 2 + 4 minutes), not the wall
/// clock. The back-off grows across the periodic resyncs (every 60 s here): only a new
/// desired state or signed op cancels it.
#[tokio::test(start_paused = true)]
async fn back_offs_grow_across_resyncs_on_tokio_time() {
    let fake = Fake::with(vec![guest(101, ActualRun::Running, 1)]);
    fake.lock().failures.insert(
        101,
        (0..3)
            .map(|_| BackendError::retry("CT 101 is locked (backup)"))
            .collect(),
    );
    let (_tx, rx) = watch::channel(Arc::new(want(&[101], 2)));
    let (k, _dir) = keeper();
    let slow = Tuning {
        backoff_base_ms: 60_000,
        backoff_max_secs: 3600,
        once_attempts: 5,
        ..tuning()
    };
    let engine = Engine::new(Arc::new(fake.clone()), k, rx, Normalizers::default(), slow);
    let wall = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let report = engine.run(Mode::Once, std::future::pending()).await;
    assert!(report.converged(), "{:?}", report.reasons());
    assert_eq!(
        fake.lock().guests[&101].spec.as_ref().and_then(|s| s.cores),
        Some(2)
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(7 * 60),
        "the back-offs were not waited on tokio's clock: {waited:?}"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(60),
        "the test slept for real: {:?}",
        wall.elapsed()
    );
}

/// Adding an operation is local: `resize` is a row of the operation table (benign: it
/// cannot lose data) and one arm of the fake backend's `dispatch`. Nothing else knows it,
/// yet the gatekeeper classifies it by its row, journals it, audits it by its table name
/// and the backend carries it out; an operation whose row can lose data is refused on
/// the benign path whatever a backend would do with it.
#[tokio::test]
async fn a_new_operation_is_one_row_and_one_arm() {
    use castellan_core::plan::Action;
    use castellan_store::AuditEvent;
    let fake = Fake::with(vec![guest(101, ActualRun::Running, 1)]);
    let (k, dir) = keeper();
    let action = |kind| Action {
        vmid: 101,
        guest: GuestKind::Lxc,
        kind,
        params: Default::default(),
        delete: Vec::new(),
        shutdown: None,
        digest: None,
        source: None,
        reason: "test".into(),
    };
    k.benign(&fake, &action(Operation::Resize))
        .await
        .expect("a benign row is carried out");
    assert_eq!(fake.lock().executed, vec![(101, Operation::Resize)]);
    let refused = k.benign(&fake, &action(Operation::RemoveVolume)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.message.contains("may destroy data")),
        "{refused:?}"
    );
    assert_eq!(fake.lock().executed.len(), 1, "nothing else was sent");
    drop(k);
    let store = Store::open(dir.path()).expect("store reopens");
    let audit = store.audit_records(1, 10_000).expect("audit");
    assert!(
        audit
            .iter()
            .any(|r| r.event == AuditEvent::ActionAllowed
                && r.fields.op.as_deref() == Some("resize")),
        "the decision is audited under the table's name"
    );
    let journal = store
        .intents_for(&castellan_core::Target::guest(
            castellan_core::GuestKind::Lxc,
            101,
        ))
        .expect("journal");
    assert!(
        journal
            .iter()
            .any(|i| i.op == "resize" && i.state.is_terminal()),
        "{journal:?}"
    );
}
