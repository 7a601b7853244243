//! `plan` over a large node: 100,000 guests, a tenth of them drifted in every managed
//! field. Reported as time per plan; divide by 100,000 for ns/guest.

use std::hint::black_box;

use castellan_core::model::*;
use castellan_core::{Normalizers, plan};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn node(n: u32) -> (DesiredState, ActualState) {
    let mut desired = DesiredState {
        node: "pve-01".into(),
        ..Default::default()
    };
    let mut actual = ActualState::default();
    for i in 0..n {
        let vmid = 100 + i;
        let kind = if i % 3 == 0 {
            GuestKind::Qemu
        } else {
            GuestKind::Lxc
        };
        let drifted = i % 10 == 0;
        desired.guests.insert(
            vmid,
            DesiredGuest {
                run: DesiredRun::Running,
                cores: Some(2),
                memory_bytes: Some(2 << 30),
                description: Some(format!("guest {vmid}\nmanaged by castellan")),
                tags: Some(vec!["prod".into(), "web".into()]),
                ..DesiredGuest::new(vmid, kind)
            },
        );
        let mut g = ActualGuest::new(
            vmid,
            kind,
            if drifted {
                ActualRun::Stopped
            } else {
                ActualRun::Running
            },
        );
        g.spec = Some(ActualSpec {
            cores: Some(if drifted { 1 } else { 2 }),
            memory_mib: if drifted { 512 } else { 2048 },
            description: Some(format!("guest {vmid}\nmanaged by castellan\n")),
            tags: Some(if drifted { "web" } else { "prod;web" }.into()),
            digest: format!("{vmid:040x}"),
            disks: Default::default(),
        });
        actual.guests.insert(vmid, g);
    }
    (desired, actual)
}

fn bench(c: &mut Criterion) {
    let (desired, actual) = node(100_000);
    let norm = Normalizers::default();
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(20);
    group.bench_function("100k_guests_10pct_drift", |b| {
        b.iter(|| plan(black_box(&desired), black_box(&actual), &norm))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
