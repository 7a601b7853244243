//! The price of revocation without a restart: the agent re-reads `signers.toml` and the
//! allowed_signers file it names at every destructive decision. This measures one
//! `SignerConfig::load` (two bounded file reads, parse, every key decoded and
//! fingerprinted, roles and thresholds validated) for a small and a large signer set.

use std::fmt::Write as _;
use std::hint::black_box;

use castellan_sig::SignerConfig;
use castellan_sig::fuzzing::FIXTURE_ALLOWED_SIGNERS;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    // The fixture's ed25519 key line, under as many principals as the case needs.
    let key = FIXTURE_ALLOWED_SIGNERS
        .lines()
        .find(|l| l.starts_with("fuzz@example.com"))
        .and_then(|l| l.split_once("ssh-ed25519 "))
        .map(|(_, k)| format!("ssh-ed25519 {k}"))
        .expect("the fixture has an ed25519 key");
    let mut g = c.benchmark_group("signer_reload");
    for n in [3usize, 100] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut allowed = String::new();
        let mut roles = String::from("[roles]\n");
        for i in 0..n {
            let _ = writeln!(allowed, "op{i}@example.com {key}");
            let _ = writeln!(roles, "\"op{i}@example.com\" = \"operational\"");
        }
        std::fs::write(dir.path().join("allowed_signers"), allowed).expect("write");
        let toml = dir.path().join("signers.toml");
        std::fs::write(
            &toml,
            format!("allowed_signers = \"allowed_signers\"\n{roles}[thresholds]\ndestroy = 1\n"),
        )
        .expect("write");
        g.bench_function(format!("{n} keys"), |b| {
            b.iter(|| black_box(SignerConfig::load(&toml).expect("loads")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
