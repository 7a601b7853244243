//! `castellan ledger`, end to end through the real binary: inventory of the fixture ops
//! repository, request drafts, intake of owner responses into a ledger directory, reviewer
//! decisions signed by the real `ssh-keygen`, and the acceptance report derived from them.
//!
//! Without ssh-keygen the signing steps are skipped with a note, except under `CI=true`,
//! where they fail.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use castellan_testkit::need_ssh_keygen;

use serde_json::{Value, json};

const TS: &str = "2026-11-22T18:00:00+08:00";
const SURFACE: &str = "systemd_service:systemd/node-exporter.service";

fn castellan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_castellan"))
}

fn fixture_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../castellan-ledger/tests/fixtures/ops-repo")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn intake_count(ledger: &Path) -> i64 {
    let conn = rusqlite::Connection::open(ledger.join("ledger.db")).unwrap();
    conn.query_row("SELECT count(*) FROM intake", [], |r| r.get(0))
        .unwrap()
}

fn review_count(ledger: &Path) -> i64 {
    let conn = rusqlite::Connection::open(ledger.join("ledger.db")).unwrap();
    conn.query_row("SELECT count(*) FROM review", [], |r| r.get(0))
        .unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    inventory: PathBuf,
    ledger: PathBuf,
    requests: Value,
}

/// Inventory and request drafts of the fixture repo; the drafts go into the ledger dir.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    let out = ok(castellan()
        .args(["ledger", "inventory", "--repo"])
        .arg(fixture_repo())
        .args(["--generated-at", TS, "--output"])
        .arg(&inventory));
    assert!(text(&out.stderr).contains("HOST_SERVICE_CONFIG_INVENTORY_OK surfaces="));
    let ledger = dir.path().join("ledger");
    let requests_path = ledger.join("owner-requests.json");
    let out = ok(castellan()
        .args(["ledger", "requests", "--inventory"])
        .arg(&inventory)
        .args(["--generated-at", TS, "-o"])
        .arg(&requests_path));
    assert!(text(&out.stderr).contains("HOST_SERVICE_OWNER_REQUEST_DRAFT_OK requests="));
    let requests: Value = serde_json::from_slice(&std::fs::read(&requests_path).unwrap()).unwrap();
    Setup {
        dir,
        inventory,
        ledger,
        requests,
    }
}

fn draft<'a>(s: &'a Setup, surface: &str) -> &'a Value {
    s.requests["request_drafts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["surface_id"] == surface)
        .unwrap_or_else(|| panic!("no draft for {surface}"))
}

fn response(s: &Setup, surface: &str) -> Value {
    let d = draft(s, surface);
    json!({
        "schema_version": "host_service_owner_response_v1",
        "request_id": d["request_id"],
        "surface_id": d["surface_id"],
        "repo_sha256": d["repo_sha256"],
        "owner_role_or_team": "platform-observability",
        "decision": "keep",
        "decision_reason": "Matches the repo; exporter is read-only and sandboxed.",
        "affected_scope": format!("{surface} on every monitored host"),
        "redacted_evidence_refs": ["OPS-2291", "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        "live_config_hash_ref": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "maintenance_window": "Tuesdays 01:00-03:00 UTC",
        "restart_window": "inside the maintenance window only",
        "rollback_owner": "observability on-call, runbook OPS-RB-17",
        "post_check_plan": "scrape health of :9100/metrics, Prometheus target health, logs; stop and roll back on failure",
        "disable_switch": "unit masked by the Ansible freeze role, rule OPS-2292",
        "followup_owner": "observability lead",
        "config_source_of_truth_ref": "repo=git:ops/infra@3f2a1bc",
        "service_dependency_map_ref": "https://wiki.example.com/ops/deps/node-exporter",
        "port_binding_inventory_ref": "OPS-2293",
        "cold_start_sequence_ref": "https://wiki.example.com/ops/cold-start",
        "daemon_runner_contention_ref": "OPS-2294"
    })
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn intake(s: &Setup, file: &Path) -> Output {
    run(castellan()
        .args(["ledger", "intake"])
        .arg(file)
        .arg("--ledger")
        .arg(&s.ledger))
}

fn acceptance(s: &Setup, with_ledger: bool) -> (Value, String) {
    let mut cmd = castellan();
    cmd.args(["ledger", "acceptance", "--root"])
        .arg(s.dir.path())
        .arg("--inventory-report")
        .arg(&s.inventory)
        .arg("--owner-request-report")
        .arg(s.ledger.join("owner-requests.json"))
        .args(["--generated-at", TS]);
    if with_ledger {
        cmd.arg("--ledger").arg(&s.ledger);
    }
    let out = ok(&mut cmd);
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        text(&out.stderr),
    )
}

#[test]
fn acceptance_without_a_ledger_is_the_seed_report_with_every_counter_zero() {
    let s = setup();
    let (report, stderr) = acceptance(&s, false);
    let n = s.requests["request_drafts"].as_array().unwrap().len();
    assert!(n >= 8, "the fixture has at least 8 surfaces, got {n}");
    assert_eq!(report["summary"]["acceptance_candidate_count"], n);
    assert_eq!(report["generated_at"], TS);
    assert_eq!(
        report["git_commit"], "unknown",
        "the temp root is not a git repository"
    );
    let line = stderr.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "HOST_SERVICE_OWNER_RESPONSE_ACCEPTANCE_OK candidates={n} write_capable="
        )),
        "{line}"
    );
    assert!(
        line.ends_with(" checks=21 lanes=8 accepted=0 runtime_gate=0"),
        "{line}"
    );
    for c in report["acceptance_candidates"].as_array().unwrap() {
        assert_eq!(c["status"], "waiting_owner_response");
    }
}

#[test]
fn intake_records_once_and_refuses_malformed_responses_without_change() {
    let s = setup();
    let file = s.dir.path().join("response.json");
    write_json(&file, &response(&s, SURFACE));
    let out = intake(&s, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("lane: ready_for_host_service_review"),
        "{stdout}"
    );
    assert!(stdout.contains("pass  owner_identity_present"), "{stdout}");
    assert_eq!(intake_count(&s.ledger), 1);

    // The same file again: nothing new.
    let out = intake(&s, &file);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("already recorded"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(intake_count(&s.ledger), 1);

    // Malformed: exit 1, named problem, nothing recorded.
    let bad = s.dir.path().join("bad.json");
    let mut v = response(&s, SURFACE);
    v["owner"] = json!("x");
    write_json(&bad, &v);
    let out = intake(&s, &bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown field \"owner\""),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&bad, "{\"schema_version\": ").unwrap();
    let out = intake(&s, &bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not valid JSON"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(intake_count(&s.ledger), 1);

    // A missing requests report is a usage error (2).
    let out = run(castellan()
        .args(["ledger", "intake"])
        .arg(&file)
        .arg("--ledger")
        .arg(s.dir.path().join("elsewhere")));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no owner request report"));
}

#[test]
fn a_secret_never_reaches_the_output_or_the_ledger() {
    let s = setup();
    let secret = "glpat-Zx81Qw73Er65Ty49Ui20";
    let mut v = response(&s, SURFACE);
    v["notes"] = json!({"ci": {"variables": [format!("GITLAB_TOKEN={secret}")]}});
    let file = s.dir.path().join("leak.json");
    write_json(&file, &v);
    let out = intake(&s, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("lane: quarantine_secret_or_raw_payload"),
        "{stdout}"
    );
    assert!(stdout.contains("hmac-sha256:"), "{stdout}");
    assert!(!stdout.contains(secret) && !text(&out.stderr).contains(secret));
    assert!(text(&out.stderr).contains("Delete the file and rotate"));
    for e in std::fs::read_dir(&s.ledger).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let b = std::fs::read(&p).unwrap();
            assert!(
                !b.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{}",
                p.display()
            );
        }
    }
    let (report, _) = acceptance(&s, true);
    assert!(!report.to_string().contains(secret));
    assert_eq!(report["summary"]["owner_response_quarantined_count"], 1);
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    castellan_testkit::keygen(dir, name, "ed25519", None).private
}

fn review(s: &Setup, candidate: &str, decision: &str, reason: &str, key: &Path) -> Output {
    run(castellan()
        .args([
            "ledger",
            "review",
            candidate,
            "--decision",
            decision,
            "--reason",
            reason,
            "--sign-key",
        ])
        .arg(key)
        .arg("--ledger")
        .arg(&s.ledger))
}

#[test]
fn signed_reviews_move_the_counters_and_nothing_else() {
    need_ssh_keygen!();
    let s = setup();
    let keys = s.dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let alice = keygen(&keys, "alice");
    let bob = keygen(&keys, "bob");
    let ops = keygen(&keys, "ops");
    let mut allowed = String::new();
    for (name, key) in [
        ("alice@example.com", &alice),
        ("bob@example.com", &bob),
        ("ops@example.com", &ops),
    ] {
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        allowed.push_str(&format!("{name} namespaces=\"castellan-review\" {public}"));
    }
    std::fs::write(s.ledger.join("allowed_signers"), allowed).unwrap();
    std::fs::write(
        s.ledger.join("signers.toml"),
        "allowed_signers = \"allowed_signers\"\n[roles]\n\"alice@example.com\" = \"reviewer\"\n\"bob@example.com\" = \"reviewer\"\n\"ops@example.com\" = \"operational\"\n",
    )
    .unwrap();

    let candidate = format!("host_service_owner_response_acceptance:{SURFACE}");
    // Nothing to review yet.
    let out = review(&s, &candidate, "accepted", "looks right", &alice);
    assert_ne!(out.status.code(), Some(0));

    let file = s.dir.path().join("response.json");
    write_json(&file, &response(&s, SURFACE));
    assert!(intake(&s, &file).status.success());

    // An operational key is not a reviewer.
    let out = review(&s, &candidate, "accepted", "ok by me", &ops);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("reviewer role"),
        "{}",
        text(&out.stderr)
    );
    // A reason that carries a secret is not signed.
    let out = review(
        &s,
        &candidate,
        "accepted",
        "used token ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU to check",
        &alice,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("looks like it contains a secret"));
    assert!(!text(&out.stderr).contains("ghp_R8x2"));
    assert_eq!(review_count(&s.ledger), 0);

    let out = review(
        &s,
        &candidate,
        "accepted",
        "windows and rollback verified against OPS-2291",
        &alice,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("status: waiting_runtime_gate (reviewer outcome: accepted)"),
        "{stdout}"
    );
    assert!(stdout.contains("runtime gate: closed"));
    assert_eq!(review_count(&s.ledger), 1);
    // Re-running the same review: nothing new.
    let out = review(
        &s,
        &candidate,
        "accepted",
        "windows and rollback verified against OPS-2291",
        &alice,
    );
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("already recorded"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(review_count(&s.ledger), 1);

    // A quarantined response cannot be accepted.
    let other = "docker_compose:stacks/readonly/compose.yml";
    let mut leak = response(&s, other);
    leak["notes"] = json!("password: Wint3r-is-C0ming-2026");
    let leak_file = s.dir.path().join("leak.json");
    write_json(&leak_file, &leak);
    assert!(intake(&s, &leak_file).status.success());
    let out = review(&s, other, "accepted", "fine", &alice);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot accept"),
        "{}",
        text(&out.stderr)
    );

    let (report, stderr) = acceptance(&s, true);
    let line = stderr.lines().last().unwrap();
    assert!(line.ends_with("accepted=1 runtime_gate=0"), "{line}");
    let c = report["acceptance_candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["surface_id"] == SURFACE)
        .unwrap();
    assert_eq!(c["status"], "waiting_runtime_gate");
    assert_eq!(c["owner_response_accepted"], true);
    assert_eq!(c["owner_role_or_team"], "platform-observability");
    assert_eq!(c["runtime_gate"], false);
    assert_eq!(c["systemctl_action_authorized"], false);
    assert_eq!(report["summary"]["owner_response_received_count"], 2);

    let out = ok(castellan()
        .args(["ledger", "show", SURFACE, "--ledger"])
        .arg(&s.ledger));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("lane=ready_for_host_service_review"),
        "{shown}"
    );
    assert!(shown.contains("accepted by SHA256:"), "{shown}");

    // Tampering with a stored reviewer record makes it stop counting.
    let conn = rusqlite::Connection::open(s.ledger.join("ledger.db")).unwrap();
    conn.execute_batch("DROP TRIGGER review_no_update; UPDATE review SET payload = CAST(replace(CAST(payload AS TEXT), 'accepted', 'rejected') AS BLOB);")
        .unwrap();
    drop(conn);
    let (report, stderr) = acceptance(&s, true);
    assert!(stderr.contains("does not count"), "{stderr}");
    assert_eq!(report["summary"]["owner_response_accepted_count"], 0);
    assert_eq!(report["summary"]["owner_response_rejected_count"], 0);
}

/// A vendor token format the built-in rules do not know.
const ACME_TOKEN: &str = "acme_live_9f86d081884c7d659a2feaa0c55ad015";

/// An operator rule directory (Nosey Parker's format) with a rule for [`ACME_TOKEN`]'s
/// format, and a response carrying the token in its notes.
fn acme_rules_and_response(s: &Setup) -> (PathBuf, PathBuf) {
    let rules = s.dir.path().join("rules");
    std::fs::create_dir_all(rules.join("vendors")).unwrap();
    std::fs::write(
        rules.join("vendors/acme.yml"),
        "rules:\n- name: ACME billing key\n  id: acme.billing.1\n  pattern: '(?x) \\b (acme_live_[0-9a-f]{32}) (?# the key, as Nosey Parker writes comments ) \\b'\n  examples:\n  - acme_live_0123456789abcdef0123456789abcdef\n  negative_examples:\n  - acme_live_\n",
    )
    .unwrap();
    let mut v = response(s, SURFACE);
    v["notes"] = json!(format!("billing runs with {ACME_TOKEN}"));
    let file = s.dir.path().join("acme.json");
    write_json(&file, &v);
    (rules, file)
}

/// Whether any file in `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let b = std::fs::read(p).unwrap();
            b.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

#[test]
fn rescan_quarantines_what_newer_rules_find_and_scrubs_the_stored_copy() {
    let s = setup();
    let (rules, file) = acme_rules_and_response(&s);
    // Clean under the built-in rules: stored with its values, the token among them.
    let out = intake(&s, &file);
    assert!(text(&out.stdout).contains("lane: ready_for_host_service_review"));
    assert!(!any_file_holds(&s.ledger, ACME_TOKEN).is_empty());

    let rescan = || {
        ok(castellan()
            .args(["ledger", "rescan", "--ledger"])
            .arg(&s.ledger)
            .arg("--rules")
            .arg(&rules))
    };
    let out = rescan();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("quarantined intake #1"), "{stdout}");
    assert!(
        stdout.contains("ACME billing key (acme.billing.1)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 newly quarantined"), "{stdout}");
    assert!(!stdout.contains(ACME_TOKEN) && !text(&out.stderr).contains(ACME_TOKEN));
    // Not a byte of the token is left in ledger.db or its WAL.
    assert_eq!(any_file_holds(&s.ledger, ACME_TOKEN), Vec::<PathBuf>::new());

    // The superseding record wins in acceptance and show.
    let (report, _) = acceptance(&s, true);
    assert_eq!(report["summary"]["owner_response_quarantined_count"], 1);
    assert_eq!(report["summary"]["owner_response_received_count"], 1);
    let c = report["acceptance_candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["surface_id"] == SURFACE)
        .unwrap();
    assert_eq!(c["status"], "quarantine_secret_or_raw_payload");
    assert!(!report.to_string().contains(ACME_TOKEN));
    let out = ok(castellan()
        .args(["ledger", "show", SURFACE, "--ledger"])
        .arg(&s.ledger));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("lane=quarantine_secret_or_raw_payload")
            && shown.contains("superseded by #1 (rescan")
            && shown.contains("was lane=ready_for_host_service_review"),
        "{shown}"
    );

    // Idempotent: nothing more to do, nothing appended.
    let out = rescan();
    assert!(
        text(&out.stdout).contains("rescanned 0 stored response(s)"),
        "{}",
        text(&out.stdout)
    );
    let conn = rusqlite::Connection::open(s.ledger.join("ledger.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM supersede", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(intake_count(&s.ledger), 1);
    // The scrub was the one change allowed: the row itself stays append-only.
    let err = conn
        .execute("UPDATE intake SET record = 'x' WHERE seq = 1", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn operator_rules_extend_the_scanner_and_bad_rules_are_refused() {
    let s = setup();
    let (rules, file) = acme_rules_and_response(&s);
    let token = ACME_TOKEN;

    // The built-in set does not know this vendor's format.
    let out = intake(&s, &file);
    assert!(
        text(&out.stdout).contains("lane: ready_for_host_service_review"),
        "{}",
        text(&out.stdout)
    );

    // With the operator's rules, in a second ledger, it is quarantined by that rule.
    let second = s.dir.path().join("second");
    let out = ok(castellan()
        .args(["ledger", "intake"])
        .arg(&file)
        .arg("--ledger")
        .arg(&second)
        .arg("--requests")
        .arg(s.ledger.join("owner-requests.json"))
        .arg("--rules")
        .arg(&rules));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("lane: quarantine_secret_or_raw_payload"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ACME billing key (acme.billing.1)"),
        "{stdout}"
    );
    assert!(!stdout.contains(token));

    // A rule file that does not compile is a usage error naming the file and the rule.
    std::fs::write(
        rules.join("broken.yaml"),
        "rules:\n- name: Broken\n  id: broken.1\n  pattern: '(unclosed'\n",
    )
    .unwrap();
    let out = run(castellan()
        .args(["ledger", "intake"])
        .arg(&file)
        .arg("--ledger")
        .arg(&second)
        .arg("--requests")
        .arg(s.ledger.join("owner-requests.json"))
        .arg("--rules")
        .arg(&rules));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("broken.1"),
        "{stderr}"
    );
}

fn seed_reports() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../castellan-ledger/tests/data/seed_reports")
}

#[test]
fn acceptance_reads_seed_shaped_reports_from_other_tools() {
    let dir = tempfile::tempdir().unwrap();
    let data = seed_reports();
    let acceptance = |requests: &Path, output: &Path| {
        run(castellan()
            .args(["ledger", "acceptance", "--root"])
            .arg(dir.path())
            .arg("--inventory-report")
            .arg(data.join("inventory.json"))
            .arg("--owner-request-report")
            .arg(requests)
            .args(["--generated-at", TS, "-o"])
            .arg(output))
    };
    let out_file = dir.path().join("out/acceptance.json");
    let out = acceptance(&data.join("owner-requests.json"), &out_file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("candidates=2 write_capable=1 checks=21 lanes=8 accepted=0"),
        "{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(
        report["acceptance_candidates"][0]["config_kind"],
        "podman_quadlet"
    );
    assert_eq!(
        report["acceptance_candidates"][0]["control_tier"],
        "host_runtime"
    );

    // A wrong type: exit 2, the field named, the value not shown, the old report kept.
    let secret = "ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU";
    let mut bad: Value =
        serde_json::from_slice(&std::fs::read(data.join("owner-requests.json")).unwrap()).unwrap();
    bad["request_drafts"][1]["write_capable_surface"] = json!(secret);
    let bad_file = dir.path().join("bad.json");
    write_json(&bad_file, &bad);
    let before = std::fs::read(&out_file).unwrap();
    let out = acceptance(&bad_file, &out_file);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "request_drafts[1].write_capable_surface must be true or false, found a string"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(!stderr.contains(secret) && !text(&out.stdout).contains(secret));
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("write_capable_surface"))
            .count(),
        1
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), before);
    let only_the_report = || {
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["acceptance.json"], "left behind: {names:?}");
    };
    only_the_report();

    // An inventory report that cannot be read is named (it is read while the candidates
    // stream) and replaces nothing.
    let bad_inventory = dir.path().join("bad-inventory.json");
    std::fs::write(&bad_inventory, b"{\"schema_version\": [}").unwrap();
    let out = run(castellan()
        .args(["ledger", "acceptance", "--root"])
        .arg(dir.path())
        .arg("--inventory-report")
        .arg(&bad_inventory)
        .arg("--owner-request-report")
        .arg(data.join("owner-requests.json"))
        .args(["--generated-at", TS, "-o"])
        .arg(&out_file));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad-inventory.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("bad-inventory.json"))
            .count(),
        1
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), before);
    only_the_report();
}

/// Whoever can write in the output's directory cannot make the report be written
/// through a name planted there: the file beside the output is new and randomly named.
#[test]
fn a_planted_name_beside_the_output_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let data = seed_reports();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    // The name earlier releases wrote beside `acceptance.json`.
    std::os::unix::fs::symlink(&victim, out_dir.join("acceptance.tmp~")).unwrap();
    let out = run(castellan()
        .args(["ledger", "acceptance", "--root"])
        .arg(dir.path())
        .arg("--inventory-report")
        .arg(data.join("inventory.json"))
        .arg("--owner-request-report")
        .arg(data.join("owner-requests.json"))
        .args(["--generated-at", TS, "-o"])
        .arg(out_dir.join("acceptance.json")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("acceptance.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["acceptance_candidate_count"], 2);
}

/// A report written over an existing one replaces it whole (the old one exchanged out and
/// removed, nothing left beside it); a symlink in its place is replaced, never followed.
#[test]
fn acceptance_replaces_an_existing_report_and_never_follows_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let data = seed_reports();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out_file = out_dir.join("acceptance.json");
    let acceptance = |generated_at: &str| {
        let out = run(castellan()
            .args(["ledger", "acceptance", "--root"])
            .arg(dir.path())
            .arg("--inventory-report")
            .arg(data.join("inventory.json"))
            .arg("--owner-request-report")
            .arg(data.join("owner-requests.json"))
            .args(["--generated-at", generated_at, "-o"])
            .arg(&out_file));
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let names = || {
        let mut n: Vec<_> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    std::fs::write(&out_file, vec![b'x'; 1 << 20]).unwrap();
    acceptance("2026-01-01T00:00:00Z");
    let report: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(report["generated_at"], "2026-01-01T00:00:00Z");
    assert_eq!(names(), ["acceptance.json"]);
    acceptance("2026-01-02T00:00:00Z");
    let report: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(report["generated_at"], "2026-01-02T00:00:00Z");
    assert_eq!(names(), ["acceptance.json"]);

    // A symlink planted at the output path: replaced by the report, its target untouched.
    let elsewhere = dir.path().join("precious");
    std::fs::write(&elsewhere, b"keep me").unwrap();
    std::fs::remove_file(&out_file).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &out_file).unwrap();
    acceptance("2026-01-03T00:00:00Z");
    assert!(
        std::fs::symlink_metadata(&out_file)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
    assert_eq!(names(), ["acceptance.json"]);
}

/// An inventory shows a running count of the files it scanned while stderr is a terminal
/// (run here under a pseudo-terminal by `script`), and nothing but its result line when
/// stderr is piped.
#[test]
fn inventory_progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("inventory.json");
    // Piped: the result line alone.
    let out = ok(castellan()
        .args(["ledger", "inventory", "--repo"])
        .arg(fixture_repo())
        .args(["--generated-at", TS, "-o"])
        .arg(&out_file));
    let said = text(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(!said.contains("scanning"), "{said}");
    // On a terminal: the count as well.
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("script (util-linux) is required under CI=true");
        }
        eprintln!("script not found; the terminal half skipped outside CI");
        return;
    }
    let command = format!(
        "{} ledger inventory --repo {} --generated-at {TS} -o {}",
        env!("CARGO_BIN_EXE_castellan"),
        fixture_repo().display(),
        out_file.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let screen = text(&out.stdout);
    assert!(screen.contains("scanning"), "{screen:?}");
    assert!(screen.contains("files"), "{screen:?}");
    assert!(
        screen.contains("HOST_SERVICE_CONFIG_INVENTORY_OK"),
        "{screen:?}"
    );
}
