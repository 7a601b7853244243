//! The acceptance report for 10,000 surfaces, and owner-response intake throughput.
//!
//! - `acceptance/report_10k`: write the report (streamed, as the CLI writes it) for
//!   10,000 request drafts, without a ledger;
//! - `acceptance/report_10k_ledger`: the same with 10,000 intake records (one per surface,
//!   every lane represented) in the ledger view;
//! - `input/read_requests_10k`: read the owner request report for 10,000 surfaces (as
//!   `ledger requests` writes it, 40 MiB) from memory, every draft to a consumer that
//!   keeps nothing: the parsing half of `ledger acceptance`;
//! - `intake/*`: `intake::analyze` over realistic responses (a clean 2 KiB one, one with a
//!   secret in a nested field, one with a pasted compose file), reported as responses/s
//!   (1 / time per response) and MB/s (criterion's byte throughput).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use castellan_ledger::acceptance::{LedgerView, ReportInputs, write_report};
use castellan_ledger::intake::analyze;
use castellan_ledger::model::{
    ConfigKind, INVENTORY_STATUS, InventoryReport, InventorySummary, Surface,
};
use castellan_ledger::requests;
use castellan_ledger::schema::{INVENTORY_SCHEMA, RESPONSE_SCHEMA};
use castellan_ledger::secrets::FingerprintKey;
use castellan_ledger::store::StoredIntake;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const KINDS: [ConfigKind; 5] = [
    ConfigKind::DockerCompose,
    ConfigKind::SystemdService,
    ConfigKind::SystemdTimer,
    ConfigKind::AnsibleRole,
    ConfigKind::RepairBotConfig,
];

fn inventory(n: usize) -> InventoryReport {
    let surfaces: Vec<Surface> = (0..n)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let path = format!("hosts/h{:04}/svc{i}/{kind}.yml", i % 500);
            Surface {
                surface_id: format!("{kind}:{path}"),
                label: format!("{kind} svc{i}"),
                expected_host_scope: format!("h{:04}", i % 500),
                config_kind: kind,
                service_scope: format!("svc{i}"),
                control_tier: kind.control_tier(),
                repo_source_path: path,
                repo_sha256: format!("{i:064x}"),
                source_line_count: 20 + (i % 300) as u64,
                write_capable_surface: i % 3 == 0,
                requires_live_evidence: true,
            }
        })
        .collect();
    InventoryReport {
        schema_version: INVENTORY_SCHEMA.into(),
        generated_at: "2026-11-22T18:00:00+08:00".into(),
        git_commit: "bench".into(),
        status: INVENTORY_STATUS.into(),
        summary: InventorySummary {
            scanned_file_count: n as u64,
            surface_count: n as u64,
            config_kind_counts: Default::default(),
            write_capable_surface_count: 0,
            live_evidence_required_count: n as u64,
        },
        surfaces,
    }
}

fn response(d: &castellan_ledger::model::RequestDraft, variant: usize) -> Value {
    let mut v = json!({
        "schema_version": RESPONSE_SCHEMA,
        "request_id": d.request_id,
        "surface_id": d.surface_id,
        "repo_sha256": d.repo_sha256,
        "owner_role_or_team": "platform-observability",
        "decision": "keep",
        "decision_reason": "The stack is current and matches the repository; drift was reviewed during the last sprint and nothing changed since then.",
        "affected_scope": format!("{} on {} only", d.surface_id, d.expected_host_scope),
        "redacted_evidence_refs": [
            "OPS-2291",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            {"ref": "https://git.example.com/ops/infra/-/merge_requests/812", "kind": "merge_request", "note": "the change that introduced the current layout"}
        ],
        "live_config_hash_ref": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "maintenance_window": "Tuesdays 01:00-03:00 Europe/Berlin, announced 24 hours ahead in the operations channel",
        "restart_window": "inside the maintenance window only, after reviewer sign-off",
        "rollback_owner": "platform-observability on-call (runbook OPS-RB-17)",
        "post_check_plan": "Check the health endpoints of every service, routes through the proxy, queue depth and error logs for fifteen minutes; stop and roll back if any health check fails twice in a row.",
        "disable_switch": "compose profile disabled via the OPS-2292 freeze rule",
        "followup_owner": "observability lead",
        "config_source_of_truth_ref": "repo=git:ops/infra@3f2a1bc backup=s3://ops-backups/monitoring",
        "service_dependency_map_ref": "https://wiki.example.com/ops/deps/monitoring",
        "port_binding_inventory_ref": "OPS-2293",
        "cold_start_sequence_ref": "https://wiki.example.com/ops/cold-start#monitoring",
        "daemon_runner_contention_ref": "OPS-2294",
        "notes": "Reviewed with the platform team; no open questions remain for this surface at this time."
    });
    match variant % 4 {
        1 => {
            v["notes"] = json!({"debug": {"env": ["LANG=C", "deploy token ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU"]}})
        }
        2 => {
            v["post_check_plan"] = json!(
                "services:\n  prometheus:\n    image: prom/prometheus:v2.53.0\n    ports:\n      - \"9090:9090\"\n    restart: unless-stopped\n"
            )
        }
        3 => v["rollback_owner"] = json!(null),
        _ => {}
    }
    v
}

fn bench_acceptance(c: &mut Criterion) {
    let inv = inventory(10_000);
    let reqs = requests::build(&inv, "2026-11-22T18:00:00+08:00");
    let key = FingerprintKey::from_bytes([7; 32]);
    let intakes: Vec<StoredIntake> = reqs
        .request_drafts
        .iter()
        .enumerate()
        .map(|(i, d)| StoredIntake {
            seq: i as i64 + 1,
            recorded_at: "2026-11-22T10:00:00Z".into(),
            record: analyze(
                &serde_json::to_vec(&response(d, i)).unwrap(),
                &reqs,
                &key,
                2,
            )
            .unwrap(),
            superseded: None,
        })
        .collect();
    let view = LedgerView::new(intakes, Vec::new(), Vec::new());
    let mut g = c.benchmark_group("acceptance");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    for (name, view) in [("report_10k", None), ("report_10k_ledger", Some(&view))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (out, summary) = write_report(
                    &ReportInputs {
                        inventory: &inv,
                        requests: &reqs,
                        view,
                        signers: None,
                        generated_at: "2026-11-22T18:00:00+08:00",
                        git_commit: "bench",
                    },
                    std::io::sink(),
                )
                .unwrap();
                black_box((out, summary))
            })
        });
    }
    g.finish();
}

fn bench_input(c: &mut Criterion) {
    let inv = inventory(10_000);
    let reqs = requests::build(&inv, "2026-11-22T18:00:00+08:00");
    let bytes = requests::write_report(&reqs, Vec::new()).unwrap();
    let mut g = c.benchmark_group("input");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("read_requests_10k", |b| {
        b.iter(|| {
            let mut n = 0usize;
            castellan_ledger::input::read_requests(black_box(bytes.as_slice()), &mut |d| {
                n += d.required_owner_fields.len();
                Ok(())
            })
            .unwrap();
            black_box(n)
        })
    });
    g.finish();
}

fn bench_intake(c: &mut Criterion) {
    let inv = inventory(100);
    let reqs = requests::build(&inv, "2026-11-22T18:00:00+08:00");
    let key = FingerprintKey::from_bytes([7; 32]);
    let mut g = c.benchmark_group("intake");
    for (name, variant) in [("clean", 0), ("nested_secret", 1), ("raw_compose", 2)] {
        let bytes = serde_json::to_vec_pretty(&response(&reqs.request_drafts[7], variant)).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        // responses/s is 1 / the time per iteration; MB/s is criterion's throughput.
        g.bench_function(name, |b| {
            b.iter(|| analyze(black_box(&bytes), &reqs, &key, 2).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_acceptance, bench_input, bench_intake);
criterion_main!(benches);
