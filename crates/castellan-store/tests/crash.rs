//! Crash consistency, in the spirit of redb's crash tests: a child process (this test
//! binary re-executed with `CASTELLAN_STORE_CRASH_DIR` set) loops over journal steps and
//! audit appends and is SIGKILLed at a random moment; the parent then reopens the database
//! and checks it is consistent: the chain verifies, every journal step has its audit record
//! and every audit record's intent exists, every intent's nonce is consumed, and nothing the
//! child reported as committed was lost.
//!
//! SIGKILL tests process-crash atomicity (the OS page cache survives it); durability across
//! power loss rests on `synchronous = FULL` and an fsync-honest disk (see the crate docs).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use castellan_core::GuestKind;
use castellan_store::*;
use jiff::Timestamp;

const DIR_ENV: &str = "CASTELLAN_STORE_CRASH_DIR";

/// A small xorshift generator: no dependency, seed printed for reproduction.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The child: runs only when re-executed by `crash_consistency` (otherwise it passes
/// at once). Writes "committed <seq>" to stdout after every commit.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var("CASTELLAN_STORE_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let mut store = Store::open(Path::new(&dir)).unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut report = |rec: &AuditRecord| {
        writeln!(out, "committed {}", rec.seq).unwrap();
        out.flush().unwrap();
    };
    let base = store
        .recent_intents(1)
        .unwrap()
        .first()
        .map_or(0, |i| i.id.0);
    let at = |n: u64| Timestamp::from_second(1_700_000_000 + n as i64).unwrap();
    // Finish what a previous incarnation left in flight, as recovery would.
    for i in store.in_flight().unwrap() {
        let rec = store
            .mark_terminal(
                i.id,
                Outcome::RolledBack {
                    reason: "recovered".into(),
                },
                AuditEvent::ActionRolledBack {
                    reason: String::new(),
                },
                at(base),
            )
            .unwrap();
        report(&rec);
    }
    for n in base + 1.. {
        let now = at(n);
        let destructive = rng.below(3) == 0;
        let intent = NewIntent {
            action_id: format!("action-{seed}-{n}"),
            op: if destructive { "destroy" } else { "start" }.into(),
            target: castellan_core::Target::guest(GuestKind::Qemu, 100 + (n % 50) as u32),
            params: BTreeMap::from([("n".into(), n.to_string())]),
            nonce: destructive.then(|| format!("nonce-{seed}-{n}")),
            nonce_not_after: destructive.then(|| {
                now.checked_add(jiff::SignedDuration::from_hours(1))
                    .unwrap()
            }),
            destructive,
            upid_hint: None,
        };
        let (id, rec) = store
            .begin_intent(intent, AuditEvent::IntentRecorded, now)
            .unwrap();
        report(&rec);
        if rng.below(4) != 0 {
            let rec = store
                .mark_dispatched(
                    id,
                    Some(&format!("UPID:{n}")),
                    AuditEvent::TaskDispatched { upid: None },
                    now,
                )
                .unwrap();
            report(&rec);
        }
        if rng.below(5) != 0 {
            let outcome = if rng.below(4) == 0 {
                Outcome::Failed {
                    error: format!("failure {n}"),
                }
            } else {
                Outcome::Succeeded
            };
            let ev = outcome.event();
            report(&store.mark_terminal(id, outcome, ev, now).unwrap());
        }
        if rng.below(8) == 0 {
            report(&store.append_audit(AuditEvent::ActionAllowed, now).unwrap());
        }
        if rng.below(50) == 0 {
            store.prune_nonces(now).unwrap();
        }
    }
}

/// Checks everything the journal promises about a database a crash may have cut short.
fn check_consistent(dir: &Path, committed: u64) {
    let store = Store::open(dir).unwrap();
    let report = verify_chain(&store).unwrap_or_else(|e| panic!("chain: {e}"));
    assert!(
        report.records >= committed,
        "lost committed records: head {} < acknowledged {committed}",
        report.records
    );
    let records = store.audit_records(1, usize::MAX).unwrap();
    let mut by_intent: HashMap<IntentId, Vec<&'static str>> = HashMap::new();
    for r in &records {
        if let Some(id) = r.fields.intent {
            by_intent.entry(id).or_default().push(r.event.kind());
        }
    }
    let intents = store.recent_intents(usize::MAX).unwrap();
    for i in &intents {
        let kinds = by_intent.remove(&i.id).unwrap_or_default();
        assert_eq!(
            kinds.first(),
            Some(&"intent_recorded"),
            "intent {}: {kinds:?}",
            i.id
        );
        let dispatched = kinds.contains(&"task_dispatched");
        assert_eq!(
            dispatched,
            i.dispatched_at.is_some(),
            "intent {}: {kinds:?}",
            i.id
        );
        if i.state == IntentState::Dispatched {
            assert!(i.upid.is_some());
        }
        let terminal = kinds.iter().filter(|k| k.starts_with("action_")).count();
        assert_eq!(
            terminal,
            usize::from(i.state.is_terminal()),
            "intent {}: {kinds:?}",
            i.id
        );
        if let Some(outcome) = &i.outcome {
            assert_eq!(kinds.last(), Some(&outcome.event().kind()));
        }
        if let Some(nonce) = &i.nonce {
            assert!(
                store.nonce_consumed(nonce).unwrap(),
                "nonce of intent {} not consumed",
                i.id
            );
        }
    }
    assert!(
        by_intent.is_empty(),
        "audit records for unknown intents: {by_intent:?}"
    );
}

#[test]
fn crash_consistency() {
    if std::env::var_os(DIR_ENV).is_some() {
        return; // we are a child
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash_consistency seed {seed}");
    let mut rng = Rng(seed | 1);
    let exe = std::env::current_exe().unwrap();
    let mut committed = 0u64;
    let started = Instant::now();
    let mut kills = 0;
    while kills < 25 && started.elapsed() < Duration::from_secs(60) {
        let child_seed = rng.next();
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .env("CASTELLAN_STORE_CRASH_SEED", child_seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read acknowledgements on a thread; kill after a random number of them plus a
        // random delay, so the kill lands anywhere within a transaction.
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let seq = line
                    .strip_prefix("committed ")
                    .and_then(|s| s.trim().parse().ok());
                if let Some(seq) = seq
                    && tx.send(seq).is_err()
                {
                    break;
                }
            }
        });
        let wanted = 1 + rng.below(40);
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen < wanted && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(seq) => {
                    committed = committed.max(seq);
                    seen += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("crash child exited early: {status}");
                    }
                }
                Err(_) => break,
            }
        }
        assert!(seen > 0, "crash child made no progress");
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements already in the pipe were committed before the kill.
        while let Ok(seq) = rx.try_recv() {
            committed = committed.max(seq);
        }
        kills += 1;
        check_consistent(dir.path(), committed);
    }
    assert!(kills >= 5, "only {kills} crash rounds ran");
    eprintln!("crash_consistency: {kills} kills, {committed} records acknowledged");
}
