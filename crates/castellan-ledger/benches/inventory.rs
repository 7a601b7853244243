//! Inventory of a 10,000-file synthetic ops repository: `scan_repo` (parallel walk,
//! classification and hashing) against the same scan on one thread and against a
//! `sha256sum`-style sequential read-and-hash of every file.
//!
//! The repository is generated once, deterministically, in a temp dir: ~10% compose files,
//! ~10% systemd units and timers, ~2% Ansible role files (50 roles of 4 files), 50
//! repair-bot configs, 20 playbooks, and ordinary source and docs files of 1–20 KiB for the
//! rest. The page cache is warm after the first iteration, so this measures CPU and system
//! calls, not the disk.
//!
//!     cargo bench -p castellan-ledger --bench inventory

use std::hint::black_box;
use std::path::{Path, PathBuf};

use castellan_ledger::inventory;
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const FILES: usize = 10_000;

/// A small deterministic generator (xorshift64*), so every run scans the same repository.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: [&str; 24] = [
    "host", "service", "deploy", "config", "the", "a", "window", "rollback", "fn", "let", "return",
    "struct", "impl", "self", "value", "error", "match", "node", "queue", "route", "compose",
    "backup", "port", "check",
];

/// Ordinary prose/code of about `size` bytes.
fn filler(rng: &mut Rng, size: usize, code: bool) -> String {
    let mut out = String::with_capacity(size + 80);
    while out.len() < size {
        if code {
            out.push_str("    let ");
        }
        for _ in 0..(6 + rng.below(8)) {
            out.push_str(WORDS[rng.below(WORDS.len())]);
            out.push(' ');
        }
        out.push_str(if code { ";\n" } else { ".\n" });
    }
    out
}

fn compose(rng: &mut Rng, i: usize) -> String {
    let mut out = String::from("services:\n");
    for s in 0..(2 + rng.below(6)) {
        out.push_str(&format!(
            "  svc{i}x{s}:\n    image: registry.example.internal/team/app{s}:1.{i}\n    restart: unless-stopped\n    ports:\n      - \"{}:80\"\n    environment:\n      LOG_LEVEL: info\n      REGION: eu\n    volumes:\n      - data{s}:/var/lib/app\n",
            8000 + s
        ));
        if rng.below(4) == 0 {
            out.push_str("      - ./conf:/etc/app\n");
        }
    }
    out.push_str("volumes:\n");
    for s in 0..8 {
        out.push_str(&format!("  data{s}: {{}}\n"));
    }
    out
}

fn unit(rng: &mut Rng, i: usize) -> (String, String) {
    if rng.below(3) == 0 {
        (
            format!("job{i}.timer"),
            format!(
                "[Unit]\nDescription=Job {i}\n\n[Timer]\nOnCalendar=*-*-* 0{}:00:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
                i % 10
            ),
        )
    } else {
        (
            format!("svc{i}.service"),
            format!(
                "[Unit]\nDescription=Service {i}\nAfter=network-online.target\n\n[Service]\nUser=svc{i}\nExecStart=/usr/local/bin/svc{i} --port {}\nRestart=on-failure\nProtectSystem=strict\n\n[Install]\nWantedBy=multi-user.target\n",
                9000 + i % 1000
            ),
        )
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create bench dir");
    }
    std::fs::write(path, text).expect("write bench file");
}

/// Generates the repository; returns the number of files written.
fn generate(root: &Path) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0;
    for i in 0..FILES / 10 {
        let text = compose(&mut rng, i);
        write(
            root,
            &format!("hosts/h{:02}/compose/stack{i}/docker-compose.yml", i % 40),
            &text,
        );
        written += 1;
    }
    for i in 0..FILES / 10 {
        let (name, text) = unit(&mut rng, i);
        write(root, &format!("systemd/g{}/{name}", i % 20), &text);
        written += 1;
    }
    for r in 0..50 {
        let dir = format!("ansible/roles/role{r}");
        write(
            root,
            &format!("{dir}/tasks/main.yml"),
            &format!(
                "- name: install\n  ansible.builtin.apt:\n    name: pkg{r}\n- name: run\n  ansible.builtin.service:\n    name: svc{r}\n    state: started\n"
            ),
        );
        write(
            root,
            &format!("{dir}/handlers/main.yml"),
            &format!(
                "- name: restart\n  ansible.builtin.service:\n    name: svc{r}\n    state: restarted\n"
            ),
        );
        write(
            root,
            &format!("{dir}/defaults/main.yml"),
            &format!("port: {}\n", 7000 + r),
        );
        let size = 1024 + rng.below(4096);
        let template = filler(&mut rng, size, false);
        write(root, &format!("{dir}/templates/app.conf.j2"), &template);
        written += 4;
    }
    for p in 0..20 {
        write(
            root,
            &format!("ansible/play{p}.yml"),
            &format!(
                "- hosts: group{p}\n  roles:\n    - role{p}\n    - role{}\n",
                p + 20
            ),
        );
        written += 1;
    }
    for b in 0..50 {
        write(
            root,
            &format!("repair-bot/bot{b}.yaml"),
            &format!(
                "repair_bot:\n  name: bot{b}\n  rules:\n    - check: {{http: http://127.0.0.1:{}/health}}\n      action: {{restart: svc{b}}}\n      service: svc{b}\n",
                8000 + b
            ),
        );
        written += 1;
    }
    let mut i = 0;
    while written < FILES {
        let size = 1024 + rng.below(19 * 1024);
        let (ext, code) = match rng.below(4) {
            0 => ("rs", true),
            1 => ("py", true),
            2 => ("md", false),
            _ => ("txt", false),
        };
        let text = filler(&mut rng, size, code);
        write(root, &format!("src/m{:03}/file{i}.{ext}", i % 300), &text);
        written += 1;
        i += 1;
    }
    written
}

/// `sha256sum`-style: read and hash every file, one at a time.
fn hash_all_sequentially(root: &Path) -> usize {
    let mut hashed = 0;
    for entry in ignore::WalkBuilder::new(root).build().flatten() {
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let bytes = std::fs::read(entry.path()).expect("read bench file");
            black_box(Sha256::digest(&bytes));
            hashed += 1;
        }
    }
    hashed
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root: PathBuf = dir.path().to_owned();
    let files = generate(&root);
    let scan = inventory::scan_repo(&root).expect("scan");
    assert_eq!(
        scan.scanned_file_count as usize, files,
        "every generated file is scanned"
    );
    eprintln!(
        "inventory bench: {files} files, {} surfaces",
        scan.surfaces.len()
    );

    let mut g = c.benchmark_group("inventory_10k_files");
    g.sample_size(10);
    g.bench_function("scan_repo_parallel", |b| {
        b.iter(|| inventory::scan_repo(black_box(&root)).expect("scan"))
    });
    g.bench_function("scan_repo_1_thread", |b| {
        b.iter(|| inventory::scan_repo_with_threads(black_box(&root), 1).expect("scan"))
    });
    g.bench_function("sequential_read_sha256_all_files", |b| {
        b.iter(|| hash_all_sequentially(black_box(&root)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
