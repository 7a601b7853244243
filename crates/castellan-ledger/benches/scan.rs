//! Secret-scanner throughput over a 1 MiB corpus of realistic owner responses (JSON with
//! English prose and evidence references: digests, commits, ticket ids, merge-request
//! URLs, timestamps, unit names), reported in bytes per second. A second case scans the
//! same corpus with a secret every ~64 KiB, so the capture and decode paths run too.

use std::hint::black_box;

use castellan_ledger::secrets::Scanner;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SENTENCES: &[&str] = &[
    "We restart the service in the Sunday maintenance window and page the on-call owner if the post-check fails.",
    "The rollback owner is the platform team; rollback is a revert of the merge request and a redeploy.",
    "Ports 443 and 8443 are exposed behind the load balancer; nothing else listens on the public interface.",
    "The disable switch is the feature flag in the ops repository, reviewed like any other change.",
    "Dependencies: PostgreSQL 15 on db01, Redis on cache01, and the object store for nightly backups.",
    "Post-check: the health endpoint returns 200 and the error rate stays below the alert threshold for 15 minutes.",
    "Secrets are referenced from Vault and never written to the host configuration or the repository.",
];

const REFERENCES: &[&str] = &[
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "https://git.example.com/ops/infra/-/merge_requests/123",
    "OPS-1234",
    "2024-06-01T02:00:00+08:00",
    "castellan-agent.service",
    "nginx@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
    "OnCalendar=Sun *-*-* 02:00:00",
];

fn corpus(size: usize, with_secrets: bool) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut out = String::from("[\n");
    let mut id = 0;
    let mut next_secret = 64 * 1024;
    while out.len() < size {
        id += 1;
        let prose: Vec<&str> = (0..3).map(|_| SENTENCES[next(SENTENCES.len())]).collect();
        let refs: Vec<String> = (0..3)
            .map(|_| format!("\"{}\"", REFERENCES[next(REFERENCES.len())]))
            .collect();
        out.push_str(&format!(
            "  {{\"surface_id\": \"compose:/srv/app{id}/docker-compose.yml\", \"field\": \"rollback_plan\", \
             \"owner\": \"team-platform\", \"answer\": \"{}\", \"evidence\": [{}], \"status\": \"candidate\"}},\n",
            prose.join(" "),
            refs.join(", "),
        ));
        if with_secrets && out.len() >= next_secret {
            out.push_str(
                "  {\"answer\": \"token: ghp_Zq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQi and password: hunter2x\"},\n",
            );
            next_secret += 64 * 1024;
        }
    }
    out.push_str("  {}\n]\n");
    out
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::builtin();
    let clean = corpus(1 << 20, false);
    let dirty = corpus(1 << 20, true);
    let mut group = c.benchmark_group("secret_scan");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("owner_responses_1mib", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            scanner.scan(black_box(&clean), "bench", &mut out);
            out
        })
    });
    group.throughput(Throughput::Bytes(dirty.len() as u64));
    group.bench_function("owner_responses_1mib_with_secrets", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            scanner.scan(black_box(&dirty), "bench", &mut out);
            out
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
