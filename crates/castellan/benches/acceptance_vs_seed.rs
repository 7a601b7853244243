//! `castellan ledger acceptance` against the seed's own Python generator, on the same
//! generated inputs, in one run.
//!
//! The seed's generator is extracted at bench time from the seed document into a temporary
//! directory (`castellan-ledger/tests/common/seed_py.rs` finds it in `CASTELLAN_SEED_DIR`;
//! none of its code is kept in the repository). Without the seed or python3 the comparison
//! is skipped with a note. For each size the bench writes an inventory and an owner request report of N
//! surfaces (castellan's own `ledger requests` output: a superset of the seed's shape),
//! then reports the median wall time of each tool, their ratio, and castellan's peak
//! resident set (`ru_maxrss` of its process, via `getrusage(RUSAGE_CHILDREN)` in a
//! python3 wrapper that runs nothing else).
//!
//! `cargo bench -p castellan --bench acceptance_vs_seed` measures 10,000 surfaces against
//! the seed and 100,000 for castellan alone; under `cargo test` it runs a 200-surface
//! smoke version that still checks both tools agree.

#[path = "../../castellan-ledger/tests/common/seed_py.rs"]
mod seed_py;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use castellan_ledger::model::{
    ConfigKind, INVENTORY_STATUS, InventoryReport, InventorySummary, Surface,
};
use castellan_ledger::requests;
use castellan_ledger::schema::INVENTORY_SCHEMA;
use serde_json::Value;

const TS: &str = "2026-11-22T18:00:00+08:00";
const KINDS: [ConfigKind; 5] = [
    ConfigKind::DockerCompose,
    ConfigKind::SystemdService,
    ConfigKind::SystemdTimer,
    ConfigKind::AnsibleRole,
    ConfigKind::RepairBotConfig,
];

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir()?;
    let seed = match seed_py::write_script(dir.path()) {
        Ok(script) => Some(script),
        Err(why) => {
            println!("note: the comparison with the seed is skipped: {why}");
            None
        }
    };
    let (sizes, castellan_runs, seed_runs): (&[usize], usize, usize) = if bench {
        (&[10_000, 100_000], 15, 5)
    } else {
        (&[200], 1, 1)
    };
    for &n in sizes {
        let (inventory, requests) = write_inputs(dir.path(), n)?;
        let mb = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1048576.0);
        println!(
            "{n} surfaces: inventory {:.1} MiB, owner requests {:.1} MiB",
            mb(&inventory),
            mb(&requests)
        );
        let ours_out = dir.path().join("castellan.json");
        let ours = castellan_cmd(dir.path(), &inventory, &requests, &ours_out);
        let ours_median = median_wall(ours, castellan_runs)?;
        let rss = peak_rss_kib(castellan_cmd(dir.path(), &inventory, &requests, &ours_out));
        let rss_text = rss.map_or_else(
            || "unavailable (needs python3)".to_owned(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0),
        );
        println!(
            "  castellan ledger acceptance: median {} of {castellan_runs}, peak RSS {rss_text}, output {:.1} MiB",
            secs(ours_median),
            mb(&ours_out)
        );
        // The seed is compared at 10,000 surfaces (and in the smoke run); at 100,000 it
        // would take minutes and add nothing to castellan's flatness figure.
        let Some(script) = seed.as_ref().filter(|_| n <= 10_000) else {
            continue;
        };
        let seed_out = dir.path().join("seed.json");
        let cmd = seed_cmd(script, dir.path(), &inventory, &requests, &seed_out);
        let seed_median = median_wall(cmd, seed_runs)?;
        println!(
            "  seed generator (python3):    median {} of {seed_runs}",
            secs(seed_median)
        );
        println!(
            "  ratio: castellan is {:.1}x faster",
            seed_median.as_secs_f64() / ours_median.as_secs_f64()
        );
        same_report(&ours_out, &seed_out)?;
        println!("  both reports agree (every identifier, value and counter)");
    }
    Ok(())
}

/// An inventory and its owner request report for `n` surfaces, as castellan writes them.
fn write_inputs(dir: &Path, n: usize) -> BenchResult<(PathBuf, PathBuf)> {
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
                requires_live_evidence: i % 7 != 0,
            }
        })
        .collect();
    let inventory = InventoryReport {
        schema_version: INVENTORY_SCHEMA.into(),
        generated_at: TS.into(),
        git_commit: "bench".into(),
        status: INVENTORY_STATUS.into(),
        summary: InventorySummary {
            scanned_file_count: n as u64,
            surface_count: n as u64,
            config_kind_counts: Default::default(),
            write_capable_surface_count: surfaces.iter().filter(|s| s.write_capable_surface).count()
                as u64,
            live_evidence_required_count: surfaces
                .iter()
                .filter(|s| s.requires_live_evidence)
                .count() as u64,
        },
        surfaces,
    };
    let inv_path = dir.join(format!("inventory-{n}.json"));
    std::fs::write(&inv_path, castellan_ledger::to_pretty_json(&inventory))?;
    let report = requests::build(&inventory, TS);
    let req_path = dir.join(format!("owner-requests-{n}.json"));
    requests::write_report(
        &report,
        std::io::BufWriter::new(std::fs::File::create(&req_path)?),
    )?;
    Ok((inv_path, req_path))
}

fn castellan_cmd(root: &Path, inventory: &Path, requests: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.args(["ledger", "acceptance", "--root"])
        .arg(root)
        .arg("--inventory-report")
        .arg(inventory)
        .arg("--owner-request-report")
        .arg(requests)
        .args(["--generated-at", TS, "-o"])
        .arg(out);
    cmd
}

fn seed_cmd(script: &Path, root: &Path, inventory: &Path, requests: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--root")
        .arg(root)
        .arg("--inventory-report")
        .arg(inventory)
        .arg("--owner-request-report")
        .arg(requests)
        .args(["--generated-at", TS, "--output"])
        .arg(out);
    cmd
}

/// Median wall time of `runs` runs of `cmd`, each of which must succeed.
fn median_wall(mut cmd: Command, runs: usize) -> BenchResult<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let out = cmd.output()?;
        times.push(start.elapsed());
        if !out.status.success() {
            return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Peak RSS of `cmd`'s process in KiB: `ru_maxrss` of `getrusage(RUSAGE_CHILDREN)` in a
/// python3 process whose only child it is.
fn peak_rss_kib(cmd: Command) -> Option<u64> {
    let program = cmd.get_program().to_owned();
    let out = Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        ])
        .arg(program)
        .args(cmd.get_args())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace();
    (parts.next()? == "0").then_some(())?;
    parts.next()?.parse().ok()
}

/// The two reports agree on everything but castellan's own wording of the check
/// instructions, lane meanings and next steps (their identifiers are compared).
fn same_report(ours: &Path, seed: &Path) -> BenchResult<()> {
    let ours: Value = serde_json::from_slice(&std::fs::read(ours)?)?;
    let seed: Value = serde_json::from_slice(&std::fs::read(seed)?)?;
    let (Some(o), Some(s)) = (ours.as_object(), seed.as_object()) else {
        return Err("a report is not a JSON object".into());
    };
    if o.keys().ne(s.keys()) {
        return Err("the reports' top-level keys differ".into());
    }
    let ids = |v: &Value, id: &str| -> Vec<Value> {
        v.as_array()
            .map(|a| a.iter().map(|x| x[id].clone()).collect())
            .unwrap_or_default()
    };
    for (key, value) in s {
        let same = match key.as_str() {
            "reviewer_checks" => ids(&o[key], "check_id") == ids(value, "check_id"),
            "outcome_lanes" => ids(&o[key], "lane_id") == ids(value, "lane_id"),
            "next_steps" => true,
            _ => &o[key] == value,
        };
        if !same {
            return Err(format!("the reports differ in {key}").into());
        }
    }
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
