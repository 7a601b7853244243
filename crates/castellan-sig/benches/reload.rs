//! The price of revocation without a restart: the agent re-reads `signers.toml` and the
//! allowed_signers file it names at every destructive decision. This measures one
//! `SignerConfig::load` (two bounded file reads, parse, every key decoded and
//! fingerprinted, roles and thresholds validated) for a small and a large signer set; and,
//! once a rotation put a signer-set document in force, what reading that document costs
//! (`SignerSet::parse` and `to_config`: done once per version, then kept).

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

    let mut g = c.benchmark_group("signer_set_in_force");
    for n in [3u8, 100] {
        let mut doc = String::from("version = 2\n\n[thresholds]\ndestroy = 2\n");
        for i in 0..n {
            let key =
                ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[i; 32]));
            let line = key.public_key().to_openssh().expect("encodes");
            let _ = write!(
                doc,
                "\n[[key]]\nprincipal = \"op{i}@example.com\"\nrole = \"operational\"\npublic_key = \"{line}\"\n"
            );
        }
        let bytes = doc.into_bytes();
        g.bench_function(format!("{n} keys"), |b| {
            b.iter(|| {
                black_box(
                    castellan_sig::SignerSet::parse(&bytes)
                        .and_then(|s| s.to_config())
                        .expect("a valid set"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
