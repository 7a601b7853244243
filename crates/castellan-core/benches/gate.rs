//! Gate decision latency: classify + decide for one destructive action, with the
//! signature checks already done (they are measured in castellan-sig's `verify` bench).
//! Cases: the accepting path (every check runs) and a 2-of-3 threshold.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use castellan_core::Operation;
use castellan_core::classify::classify;
use castellan_core::gate::{DestructiveAction, Evidence, Policy, SignatureCheck, decide};
use castellan_core::model::GuestKind;
use castellan_core::{RejectReason, Role};
use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;

fn bench(c: &mut Criterion) {
    let action = DestructiveAction {
        op: Operation::Destroy,
        host: "pve-01".into(),
        target: castellan_core::Target::guest(GuestKind::Lxc, 101),
        params: BTreeMap::from([("purge".to_owned(), "1".to_owned())]),
        state_digest: "9f3c0a55d2e1b0c48f6a27e1d7c05b3a9e8f1d20".into(),
    };
    let t0 = Timestamp::from_second(1_795_000_000).expect("valid time");
    let op = action.payload(
        "6b1f0e54a9c2d83f71e0a4b59c6d2e13".into(),
        t0,
        t0 + jiff::SignedDuration::from_hours(1),
    );
    let signer = |fp: &str| SignatureCheck::Verified {
        fingerprint: fp.into(),
        principals: vec!["alice@example.com".into()],
        roles: BTreeSet::from([Role::Operational]),
    };
    let one = [signer("SHA256:a")];
    let three = [
        signer("SHA256:a"),
        SignatureCheck::Rejected {
            reason: RejectReason::UnknownSigner,
            detail: "x".into(),
        },
        signer("SHA256:b"),
    ];
    let now = t0 + jiff::SignedDuration::from_mins(5);
    let mut g = c.benchmark_group("gate");
    for (name, sigs, threshold) in [
        ("accept_1_of_1", &one[..], 1),
        ("accept_2_of_3", &three[..], 2),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let class = classify(action.op, &[], None, None);
                let d = decide(
                    black_box(&action),
                    class,
                    Some(Evidence {
                        op: black_box(&op),
                        signatures: sigs,
                        nonce_consumed: false,
                    }),
                    Policy {
                        host: "pve-01",
                        effective_now: now,
                        threshold,
                        state_since: None,
                    },
                );
                black_box(d)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
