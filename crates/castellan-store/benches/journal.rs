//! Journal and audit-chain throughput with durability on (WAL, `synchronous = FULL`: one
//! fsync per commit), in a temporary directory under the system temp dir.
//!
//!     cargo bench -p castellan-store --bench journal
//!
//! Measures, as the median over rounds:
//! - `full_cycle`: `begin_intent` → `mark_dispatched` → `mark_terminal` per action (three
//!   durable transactions, three audit records);
//! - `begin_intent`: the intent alone (nonce consumed, intent and audit record written);
//! - `append_audit`: one audit record;
//! - `verify_chain` and `verify_jsonl` over 100,000 records.
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs a few iterations of
//! each as a smoke test.

use std::collections::BTreeMap;
use std::time::Instant;

use castellan_core::GuestKind;
use castellan_store::*;
use jiff::Timestamp;

struct Plan {
    rounds: usize,
    per_round: u64,
    chain_records: u64,
    verify_rounds: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            rounds: 7,
            per_round: 200,
            chain_records: 100_000,
            verify_rounds: 5,
        }
    } else {
        Plan {
            rounds: 1,
            per_round: 3,
            chain_records: 500,
            verify_rounds: 1,
        }
    };
    let tmp = std::env::temp_dir();
    println!(
        "castellan-store journal bench ({} mode), databases under {}",
        if full { "bench" } else { "smoke" },
        tmp.display()
    );
    journal(&plan);
    chain(&plan);
}

fn t(n: u64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + n as i64).expect("in range")
}

fn intent(n: u64) -> NewIntent {
    let destructive = n.is_multiple_of(2);
    NewIntent {
        action_id: format!("{:064x}", n),
        op: if destructive { "destroy" } else { "set_config" }.into(),
        target: castellan_core::Target::guest(GuestKind::Qemu, 100 + (n % 1000) as u32),
        params: BTreeMap::from([
            ("cores".into(), "4".into()),
            ("memory".into(), "4096".into()),
        ]),
        nonce: destructive.then(|| format!("nonce-{n:032x}")),
        nonce_not_after: destructive.then(|| t(n + 3600)),
        destructive,
        upid_hint: None,
    }
}

/// Runs `op` `per_round` times per round and prints the median, min and max rate.
fn measure(name: &str, unit: &str, plan: &Plan, mut op: impl FnMut(u64)) {
    let mut rates = Vec::new();
    let mut n = 0;
    for _ in 0..plan.rounds {
        let start = Instant::now();
        for _ in 0..plan.per_round {
            n += 1;
            op(n);
        }
        rates.push(plan.per_round as f64 / start.elapsed().as_secs_f64());
    }
    report(name, unit, &mut rates);
}

fn report(name: &str, unit: &str, rates: &mut [f64]) {
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{name:<24} median {median:>12.0} {unit}/s  ({:>9.3} ms each; min {:.0}, max {:.0}; {} rounds)",
        1000.0 / median,
        rates[0],
        rates[rates.len() - 1],
        rates.len()
    );
}

fn journal(plan: &Plan) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    measure("full_cycle", "actions", plan, |n| {
        let (id, _) = store
            .begin_intent(intent(n), AuditEvent::IntentRecorded, t(n))
            .expect("begin");
        store
            .mark_dispatched(
                id,
                Some("UPID:pve:1"),
                AuditEvent::TaskDispatched { upid: None },
                t(n),
            )
            .expect("dispatch");
        store
            .mark_terminal(id, Outcome::Succeeded, AuditEvent::ActionSucceeded, t(n))
            .expect("terminal");
    });
    measure("begin_intent", "intents", plan, |n| {
        store
            .begin_intent(intent(1_000_000 + n), AuditEvent::IntentRecorded, t(n))
            .expect("begin");
    });
    measure("append_audit", "records", plan, |n| {
        store
            .append_audit(
                AuditEvent::ActionAllowed.with(AuditFields::action(
                    castellan_core::Target::guest(castellan_core::GuestKind::Lxc, 100),
                    "start",
                    format!("{n:064x}"),
                )),
                t(n),
            )
            .expect("append");
    });
    verify_chain(&store).expect("chain verifies");
}

/// Builds a chain of `plan.chain_records` records directly (one transaction, hashes
/// computed as the store does) and measures verification.
fn chain(plan: &Plan) {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::open(dir.path()).expect("open"));
    let mut conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("raw open");
    let tx = conn.transaction().expect("tx");
    let mut prev = GENESIS_HASH.to_owned();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO audit (seq, time, prev_hash, hash, event) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for seq in 1..=plan.chain_records {
            let entry = AuditEvent::SignatureAccepted.with(
                AuditFields::action(
                    castellan_core::Target::guest(
                        castellan_core::GuestKind::Lxc,
                        100 + (seq % 1000) as u32,
                    ),
                    "destroy",
                    format!("{seq:064x}"),
                )
                .signer("SHA256:uJ0jwSEbuHD4Hb1xhX9Om1iWTPRkrEaEBoI5bfK9ZCk")
                .nonce(format!("{seq:032x}"))
                .intent(IntentId(seq)),
            );
            let event = canonical_json(&serde_json::to_value(&entry).expect("json"));
            let time = t(seq).to_string();
            let hash = record_hash(&prev, seq, &time, &event);
            stmt.execute((seq as i64, &time, &prev, &hash, &event))
                .expect("insert");
            prev = hash;
        }
    }
    tx.commit().expect("commit");
    drop(conn);

    let store = Store::open_readonly(dir.path()).expect("open readonly");
    let mut rates = Vec::new();
    for _ in 0..plan.verify_rounds {
        let start = Instant::now();
        let report = verify_chain(&store).expect("chain verifies");
        rates.push(report.records as f64 / start.elapsed().as_secs_f64());
        assert_eq!(report.head_hash, prev);
    }
    report(
        &format!("verify_chain {}", plan.chain_records),
        "records",
        &mut rates,
    );

    let mut export = Vec::new();
    store.export_jsonl(&mut export).expect("export");
    let mut rates = Vec::new();
    for _ in 0..plan.verify_rounds {
        let start = Instant::now();
        let report = verify_jsonl(export.as_slice()).expect("export verifies");
        rates.push(report.records as f64 / start.elapsed().as_secs_f64());
    }
    report(
        &format!("verify_jsonl {}", plan.chain_records),
        "records",
        &mut rates,
    );
}
