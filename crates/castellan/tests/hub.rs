//! The hub end to end: the real `castellan hub` and `castellan agent` binaries, pvesim,
//! and the real ssh-keygen.
//!
//! - A change written with `castellan apply` reaches the node; a destroy is held, its
//!   payload reported to the hub, signed with ssh-keygen, relayed with
//!   `castellan op submit --hub`, executed once; relaying it again changes nothing.
//! - With the hub gone the agent keeps repairing drift from its cached revision (also
//!   across a restart) and destroys nothing; when the hub is back it catches up.
//! - A forged hub (the attacker holds the hub's key, so the pin matches) sends a
//!   destructive desired state, a desired state with a provenance marker, an op signed
//!   by an untrusted key, a tampered op, an op for another host and a replay: every one
//!   is refused by the agent and audited; only a real operator signature destroys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_core::RejectReason;
use castellan_hub::store::HubStore as _;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, SqliteStore};
use castellan_pve::{Fingerprint, TlsMode};
use castellan_store::{AuditEvent, Store};
use jiff::Timestamp;
use pvesim::{Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=hub-secret-77c1";

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "old-web"
cores = 1

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "app"
cores = 1
"#;

fn desired(cores: u32, destroy_101: bool) -> String {
    let first = if destroy_101 {
        "[[guest]]\nvmid = 101\nkind = \"lxc\"\nensure = \"absent\"\n"
    } else {
        "[[guest]]\nvmid = 101\nkind = \"lxc\"\n"
    };
    format!(
        "node = \"pve-01\"\n{first}\n[[guest]]\nvmid = 102\nkind = \"lxc\"\ncores = {cores}\nrun = \"running\"\n"
    )
}

fn ssh_keygen_present() -> bool {
    let found = castellan_sig::sign::find_ssh_keygen().is_some();
    if !found && castellan_testkit::ci() {
        panic!("ssh-keygen is required for the hub tests (install openssh-client)");
    }
    found
}

fn castellan() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.env_remove("CASTELLAN_CRASHPOINT")
        .env_remove("CASTELLAN_HUB")
        .env_remove("CASTELLAN_HUB_TOKEN")
        .env_remove("CASTELLAN_HUB_FINGERPRINT")
        .env_remove("CASTELLAN_HUB_TOKEN_FILE")
        .env_remove("CASTELLAN_HUB_DATABASE_URL");
    cmd
}

/// Kills its process when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, then wait.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn wait_for<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Keys {
    alice: PathBuf,
    mallory: PathBuf,
}

/// alice (trusted, operational) and mallory (not in allowed_signers).
fn keys(dir: &Path) -> Keys {
    let alice = castellan_testkit::keygen(dir, "alice", "ed25519", None);
    let mallory = castellan_testkit::keygen(dir, "mallory", "ed25519", None);
    std::fs::write(
        dir.join("allowed_signers"),
        format!("alice@example.com {}\n", alice.line),
    )
    .unwrap();
    std::fs::write(
        dir.join("signers.toml"),
        "allowed_signers = \"allowed_signers\"\n[roles]\n\"alice@example.com\" = \"operational\"\n",
    )
    .unwrap();
    Keys {
        alice: alice.private,
        mallory: mallory.private,
    }
}

/// Writes `text` to `path` and signs it with `key` (`path.sig`).
fn sign(path: &Path, text: &str, key: &Path) -> String {
    std::fs::write(path, text).unwrap();
    let _ = std::fs::remove_file(path.with_extension("op.sig"));
    castellan_testkit::run_ok(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "castellan-op", "-f"])
            .arg(key)
            .arg(path),
    );
    std::fs::read_to_string(path.with_extension("op.sig")).unwrap()
}

async fn start_sim() -> SimHandle {
    let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(SEED).unwrap());
    cfg.task_duration = Duration::from_millis(20);
    pvesim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn cores(sim: &SimHandle, vmid: u32) -> Option<String> {
    sim.guest(vmid).and_then(|g| g.config.get("cores").cloned())
}

fn deletes(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with("/lxc/101"))
        .count()
}

/// Stops guest 102 behind castellan's back.
async fn stop_102(sim: &SimHandle) {
    let r = reqwest::Client::builder()
        .use_preconfigured_tls(castellan_pve::tls_client_config(&TlsMode::System).unwrap())
        .build()
        .unwrap()
        .post(format!(
            "{}/api2/json/nodes/pve-01/lxc/102/status/stop",
            sim.base_url()
        ))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        r.text().await.unwrap_or_default()
    );
}

/// How many times guest 102 was started through the API.
fn starts_102(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lxc/102/status/start"))
        .count()
}

fn running(sim: &SimHandle, vmid: u32) -> bool {
    sim.guest(vmid)
        .is_some_and(|g| format!("{:?}", g.status).eq_ignore_ascii_case("running"))
}

/// Writes the agent's config; returns the address its metrics are served on.
fn agent_toml(dir: &Path, sim: &SimHandle, hub_url: &str, fingerprint: &str) -> String {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "node = \"pve-01\"\ndata_dir = \"state\"\n\
             [pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\
             [hub]\nurl = \"{hub_url}\"\nfingerprint = \"{fingerprint}\"\nenrol_token_file = \"enrol-token\"\npoll_secs = 5\n\
             [signers]\nconfig = \"signers.toml\"\n\
             [agent]\nbackoff_base_ms = 50\nresync_secs = 1\n\
             [metrics]\nlisten = \"{metrics}\"\n",
            sim.base_url()
        ),
    )
    .unwrap();
    metrics
}

/// The agent's metrics as text (plain HTTP/1.0, as a scraper asks).
fn scrape(addr: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    text
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn start_agent(dir: &Path) -> Proc {
    let log =
        std::fs::File::create(dir.join(format!("agent-{}.log", Timestamp::now().as_millisecond())))
            .unwrap();
    Proc(
        castellan()
            .args(["agent", "--config"])
            .arg(dir.join("agent.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Starts `castellan hub`, returning it with its URL and fingerprint as it printed them.
fn start_hub(data_dir: &Path, listen: &str) -> (Proc, String, String) {
    start_hub_on(data_dir, listen, None)
}

/// `castellan hub`, on SQLite in `data_dir` or on the PostgreSQL database `db` (given
/// through the environment, as a password would be).
fn start_hub_on(data_dir: &Path, listen: &str, db: Option<&str>) -> (Proc, String, String) {
    let mut cmd = castellan();
    if let Some(db) = db {
        cmd.env("CASTELLAN_HUB_DATABASE_URL", db);
    }
    let mut child = cmd
        .args(["hub", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("castellan hub listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let fp = second.rsplit(' ').next().unwrap().to_owned();
    (Proc(child), url, fp)
}

fn hub_cmd(data_dir: &Path, args: &[&str]) -> String {
    let out = castellan_testkit::run_ok(
        castellan()
            .args(["hub"])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir),
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn audit(dir: &Path) -> Vec<castellan_store::AuditRecord> {
    let store = Store::open_readonly(&dir.join("state")).unwrap();
    store.audit_records(1, 100_000).unwrap()
}

/// Whether the agent settled a relayed op as a replay of one it had executed.
fn replay_refused(dir: &Path) -> bool {
    replays(dir) > 0
}

fn replays(dir: &Path) -> usize {
    audit(dir)
        .into_iter()
        .filter(|r| {
            matches!(&r.event, AuditEvent::OpSettled { file, detail, .. }
            if file.starts_with("hub-") && detail.contains("replay"))
                || matches!(
                    r.event,
                    AuditEvent::OpRejected {
                        reason: RejectReason::Replayed,
                        ..
                    }
                )
        })
        .count()
}

fn rejections(dir: &Path) -> Vec<RejectReason> {
    audit(dir)
        .into_iter()
        .filter_map(|r| match r.event {
            AuditEvent::OpRejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_and_a_signed_destroy_go_through_the_hub_and_the_agent_survives_losing_it() {
    if !ssh_keygen_present() {
        return;
    }
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = keys(d);
    let hub_dir = d.join("hub");
    let (hub, url, fp) = start_hub(&hub_dir, "127.0.0.1:0");
    let op_token = hub_cmd(&hub_dir, &["operator-token", "create", "alice"]);
    assert!(op_token.starts_with("cst_op_"), "{op_token}");
    std::fs::write(d.join("op-token"), &op_token).unwrap();
    let enrol = hub_cmd(&hub_dir, &["enrol-token", "--host", "pve-01"]);
    std::fs::write(d.join("enrol-token"), &enrol).unwrap();
    let metrics = agent_toml(d, &sim, &url, &fp);
    let operator = |args: &[&str]| {
        let mut cmd = castellan();
        cmd.args(args)
            .args(["--hub", &url, "--hub-fingerprint", &fp, "--token-file"])
            .arg(d.join("op-token"));
        cmd
    };
    let client = operator_client(&url, &fp, op_token.clone());

    let agent = start_agent(d);
    // An invalid document is refused with every problem and nothing is written.
    std::fs::write(
        d.join("bad.toml"),
        "node = \"pve-01\"\n[[guest]]\nvmid = 5\nkind = \"lxc\"\ncores = 0\n",
    )
    .unwrap();
    let out = operator(&["apply"])
        .arg("-f")
        .arg(d.join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing applied") && err.contains("cores"),
        "{err}"
    );

    // A benign change, pushed: applied on the node.
    std::fs::write(d.join("pve-01.toml"), desired(2, false)).unwrap();
    let written = Instant::now();
    let out = castellan_testkit::run_ok(operator(&["apply"]).arg("-f").arg(d.join("pve-01.toml")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pve-01: revision 1"));
    wait_for("cores = 2 on 102", Duration::from_secs(20), || {
        cores(&sim, 102).as_deref() == Some("2")
    })
    .await;
    eprintln!("revision 1 applied {:?} after the write", written.elapsed());
    // Based on a revision that is no longer the latest: a conflict, nothing written.
    std::fs::write(d.join("stale.toml"), desired(5, false)).unwrap();
    let out = operator(&["apply", "--based-on", "0"])
        .arg("-f")
        .arg(d.join("stale.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("409") && err.contains("latest revision of pve-01 is 1"),
        "{err}"
    );
    // The fleet view shows it converged on revision 1.
    let mut status = Vec::new();
    for _ in 0..200 {
        status = client.hosts().await.unwrap();
        if status.first().is_some_and(|h| {
            h.applied_revision == Some(1) && h.state == castellan_hub::proto::HostState::Converged
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(
        status[0].state,
        castellan_hub::proto::HostState::Converged,
        "{status:?}"
    );
    // The report puts each declared guest beside the node, field by field: converged,
    // every field is as declared (102's cores included, changed by the agent).
    let report = client
        .host_report("pve-01")
        .await
        .unwrap()
        .expect("a report");
    let g102 = report
        .guests
        .iter()
        .find(|g| g.target == "lxc/102")
        .unwrap_or_else(|| panic!("{:?}", report.guests));
    let field = g102
        .fields
        .iter()
        .find(|f| f.field == "cores")
        .expect("cores");
    assert_eq!(
        (field.desired.as_str(), field.actual.as_str()),
        ("2", "2"),
        "{g102:?}"
    );
    assert!(
        report.guests.iter().all(|g| !g.needs_a_look()),
        "{:?}",
        report.guests
    );
    let out = castellan_testkit::run_ok(&mut operator(&["status"]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("pve-01") && table.contains("converged"),
        "{table}"
    );

    // A destroy: held, its payload reported through the hub.
    std::fs::write(d.join("pve-01.toml"), desired(2, true)).unwrap();
    castellan_testkit::run_ok(operator(&["apply"]).arg("-f").arg(d.join("pve-01.toml")));
    let mut payload = None;
    for _ in 0..400 {
        if let Some(r) = client.host_report("pve-01").await.unwrap()
            && let Some(p) = r.pending.first()
        {
            payload = Some((p.payload.clone(), p.takes.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (payload, takes) = payload.expect("the pending destroy reaches the hub");
    // With what the destroy takes with it beyond its parameters, as the agent's plan saw
    // it, for the hub's pending page (this guest has no disk; its jobs stay, no purge).
    assert!(
        takes
            .iter()
            .any(|t| t.starts_with("CT 101") && t.contains("(no purge)")),
        "{takes:?}"
    );
    assert_eq!(deletes(&sim), 0, "nothing destroyed on the hub's word");
    let opfile = d.join("destroy-101.op");
    sign(&opfile, &payload, &keys.alice);
    let out = castellan_testkit::run_ok(operator(&["op", "submit"]).arg(&opfile));
    assert!(String::from_utf8_lossy(&out.stdout).contains("relayed"));
    wait_for("101 destroyed", Duration::from_secs(20), || {
        sim.guest(101).is_none()
    })
    .await;
    assert_eq!(deletes(&sim), 1);
    // Relayed again: refused by the agent as a replay, nothing more destroyed.
    castellan_testkit::run_ok(operator(&["op", "submit"]).arg(&opfile));
    wait_for("the replay refused", Duration::from_secs(20), || {
        replay_refused(d)
    })
    .await;
    assert_eq!(deletes(&sim), 1, "a destroy never runs twice");
    // The agent's metrics tell the same story as its audit log.
    let mut text = String::new();
    wait_for("the agent's metrics", Duration::from_secs(20), || {
        text = scrape(&metrics);
        // The op executed, and its replay: both settled to done/.
        metric(&text, "castellan_agent_ops_settled_total{to=\"done\"}") == Some(2.0)
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "castellan_agent_actions_total{op=\"destroy\",outcome=\"succeeded\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "castellan_agent_gate_decisions_total{decision=\"accepted\",reason=\"\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "castellan_agent_hub_connected"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "castellan_agent_desired_revision"),
        Some(2.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "castellan_agent_reconcile_passes_total{side=\"guests\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let relayed = client.ops("pve-01").await.unwrap();
    assert_eq!(relayed.len(), 2);
    assert!(
        relayed.iter().all(|o| o.delivered_at.is_some()),
        "{relayed:?}"
    );

    // The hub goes away: drift is still repaired from the cached revision, also by an
    // agent restarted while the hub is gone.
    let port = url.rsplit(':').next().unwrap().to_owned();
    hub.stop();
    wait_for("102 running", Duration::from_secs(20), || {
        running(&sim, 102)
    })
    .await;
    let starts = starts_102(&sim);
    stop_102(&sim).await;
    wait_for(
        "102 restarted without the hub",
        Duration::from_secs(20),
        || starts_102(&sim) > starts && running(&sim, 102),
    )
    .await;
    agent.stop();
    let agent = start_agent(d);
    wait_for("102 running", Duration::from_secs(20), || {
        running(&sim, 102)
    })
    .await;
    let starts = starts_102(&sim);
    stop_102(&sim).await;
    wait_for(
        "102 restarted by a fresh agent without the hub",
        Duration::from_secs(20),
        || starts_102(&sim) > starts && running(&sim, 102),
    )
    .await;
    assert_eq!(cores(&sim, 102).as_deref(), Some("2"));

    // The hub is back: a new revision reaches the node.
    let (hub, _, fp2) = start_hub(&hub_dir, &format!("127.0.0.1:{port}"));
    assert_eq!(fp2, fp, "the hub keeps its certificate across restarts");
    std::fs::write(d.join("pve-01.toml"), desired(3, true)).unwrap();
    castellan_testkit::run_ok(operator(&["apply"]).arg("-f").arg(d.join("pve-01.toml")));
    wait_for(
        "cores = 3 after the hub came back",
        Duration::from_secs(20),
        || cores(&sim, 102).as_deref() == Some("3"),
    )
    .await;
    assert_eq!(deletes(&sim), 1);

    // The agent's audit chain reaches the hub, which verified every record; the
    // operator verifies the hub's copy here and checks the local log against it.
    let local_head = |d: &Path| {
        Store::open_readonly(&d.join("state"))
            .unwrap()
            .audit_head()
            .unwrap()
            .unwrap()
    };
    let mut synced = false;
    for _ in 0..200 {
        let page = client.host_audit("pve-01", 0).await.unwrap();
        let (seq, hash) = local_head(d);
        if page.verified.seq == seq && page.verified.hash == hash {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced, "the hub holds the agent's whole chain");
    let verify = |with_local: bool| {
        let mut cmd = operator(&["audit", "verify", "--host", "pve-01"]);
        if with_local {
            cmd.arg("--data-dir").arg(d.join("state"));
        }
        cmd.output().unwrap()
    };
    let out = verify(true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok: the hub holds"), "{text}");
    assert!(text.contains("holds the head the hub verified"), "{text}");

    // Someone with root on the host rewrites its history consistently (the local
    // chain still verifies on its own): the hub's pinned head catches it, and so does
    // the hub when the agent next uploads.
    agent.stop();
    rewrite_history(&d.join("state"));
    castellan_store::verify_chain(&Store::open_readonly(&d.join("state")).unwrap())
        .expect("a consistent rewrite verifies alone");
    let out = verify(true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("rewritten"), "{text}");
    let agent = start_agent(d);
    let mut flagged = false;
    for _ in 0..200 {
        let page = client.host_audit("pve-01", 0).await.unwrap();
        if page
            .problems
            .iter()
            .any(|p| p.kind == castellan_hub::proto::AuditProblemKind::Fork)
        {
            flagged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flagged, "the hub flags the rewritten chain as a fork");
    let out = verify(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("problem: fork"), "{text}");
    let table = castellan_testkit::run_ok(&mut operator(&["status"]));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("!1"), "{table}");
    // Once understood, an administrator starts the host's chain afresh on the hub.
    let out = hub_cmd(&hub_dir, &["audit-reset", "--host", "pve-01"]);
    assert!(
        out.contains("archived") && out.contains("cleared its problems"),
        "{out}"
    );
    let out = verify(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("problem:"), "{text}");

    agent.stop();
    hub.stop();
    let store = Store::open_readonly(&d.join("state")).unwrap();
    castellan_store::verify_chain(&store).unwrap();
    let received: Vec<String> = audit(d)
        .into_iter()
        .filter_map(|r| match r.event {
            AuditEvent::DesiredStateReceived { source } => Some(source),
            _ => None,
        })
        .collect();
    assert!(
        received.contains(&"hub revision 1".to_owned()),
        "{received:?}"
    );
    assert!(
        received.contains(&"hub revision 3".to_owned()),
        "{received:?}"
    );
}

/// Rewrites a stopped agent's audit log as root could: record 2 gets another time and
/// every hash from there on is recomputed, so the local chain verifies on its own.
fn rewrite_history(state: &Path) {
    let conn = rusqlite::Connection::open(state.join(castellan_store::DB_FILE_NAME)).unwrap();
    conn.execute_batch("DROP TRIGGER audit_no_update").unwrap();
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, time, event FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = castellan_store::GENESIS_HASH.to_owned();
    for (seq, time, event) in rows {
        let time = if seq == 2 {
            "2020-01-01T00:00:00Z".to_owned()
        } else {
            time
        };
        let hash = castellan_store::record_hash(&prev, seq as u64, &time, &event);
        conn.execute(
            "UPDATE audit SET time = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![time, prev, hash, seq],
        )
        .unwrap();
        prev = hash;
    }
}

/// A hub the attacker runs: same key (so the agent's pin matches), arbitrary store
/// contents.
struct ForgedHub {
    hub: Arc<Hub<SqliteStore>>,
    running: castellan_hub::Running,
    url: String,
    fingerprint: String,
    dir: tempfile::TempDir,
}

impl ForgedHub {
    async fn start() -> ForgedHub {
        let dir = tempfile::tempdir().unwrap();
        Self::serve(dir, "db", "127.0.0.1:0")
    }

    fn serve(dir: tempfile::TempDir, db: &str, addr: &str) -> ForgedHub {
        let db = dir.path().join(db);
        std::fs::create_dir_all(&db).unwrap();
        let store = SqliteStore::open(&db).unwrap();
        let tls = castellan_hub::tls::self_signed(dir.path(), &["127.0.0.1".into()]).unwrap();
        let hub = Hub::new(store);
        let running = castellan_hub::serve(
            Arc::clone(&hub),
            std::net::TcpListener::bind(addr).unwrap(),
            &tls,
        )
        .unwrap();
        ForgedHub {
            url: running.url(),
            fingerprint: castellan_hub::tls::fingerprint_text(&tls.fingerprint),
            hub,
            running,
            dir,
        }
    }

    /// The same address and certificate over a new, empty database that knows the
    /// agent's credential (as a hub restored from nothing, or a forger, would).
    async fn swap_database(self, credential: &str) -> ForgedHub {
        let addr = self.running.addr().to_string();
        self.running.shutdown(Duration::from_secs(1)).await.unwrap();
        let next = Self::serve(self.dir, "db2", &addr);
        let store = next.hub.store();
        let enrol = Token::generate(TokenKind::Enrol);
        let now = Timestamp::now();
        store
            .create_enrol_token(
                "pve-01",
                enrol.hash(),
                now,
                now + jiff::SignedDuration::from_hours(1),
            )
            .await
            .unwrap();
        let cred = castellan_hub::token::check(credential.trim(), TokenKind::Host).unwrap();
        store
            .redeem_enrol_token("pve-01", enrol.hash(), cred, now)
            .await
            .unwrap();
        next
    }

    async fn revision(&self, document: &str) {
        let store = self.hub.store();
        let latest = store
            .latest_revision("pve-01")
            .await
            .unwrap()
            .map_or(0, |r| r.revision);
        store
            .put_revision("pve-01", document, "mallory", latest, Timestamp::now())
            .await
            .unwrap();
        self.hub.changed("pve-01");
    }

    async fn op(&self, text: &str, sig: &str) {
        self.hub
            .store()
            .submit_op(
                "pve-01",
                text.as_bytes(),
                &[sig.as_bytes().to_vec()],
                "mallory",
                Timestamp::now(),
            )
            .await
            .unwrap();
        self.hub.changed("pve-01");
    }

    async fn pending_payload(&self) -> Option<String> {
        let host = self.hub.store().host("pve-01").await.unwrap()?;
        let (_, report) = host.report?;
        let report: castellan_hub::proto::AgentReport = serde_json::from_str(&report).unwrap();
        report.pending.first().map(|p| p.payload.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_hub_cannot_make_a_host_destroy_anything() {
    if !ssh_keygen_present() {
        return;
    }
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = keys(d);
    let forged = ForgedHub::start().await;
    let enrol = Token::generate(TokenKind::Enrol);
    let now = Timestamp::now();
    forged
        .hub
        .store()
        .create_enrol_token(
            "pve-01",
            enrol.hash(),
            now,
            now + jiff::SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
    std::fs::write(d.join("enrol-token"), enrol.reveal()).unwrap();
    agent_toml(d, &sim, &forged.url, &forged.fingerprint);

    // A destructive desired state, from the start.
    forged.revision(&desired(2, true)).await;
    let agent = start_agent(d);
    wait_for("the benign part applied", Duration::from_secs(20), || {
        cores(&sim, 102).as_deref() == Some("2")
    })
    .await;
    let mut payload = None;
    for _ in 0..400 {
        payload = forged.pending_payload().await;
        if payload.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payload = payload.expect("the destroy is only proposed");
    assert_eq!(deletes(&sim), 0);

    // A provenance marker the desired-state format does not have: the document is
    // refused (audited) and the previous one stays in force.
    let marked = desired(2, true).replace(
        "ensure = \"absent\"",
        "ensure = \"absent\"\nprovenance = \"agent_created\"",
    );
    forged.revision(&marked).await;
    wait_for(
        "the marked document refused",
        Duration::from_secs(20),
        || {
            audit(d).iter().any(|r| {
                matches!(&r.event, AuditEvent::DesiredStateRefused { source, detail }
            if source == "hub revision 2" && detail.contains("provenance"))
            })
        },
    )
    .await;

    // A scratch marker (as if the agent had made the guest as scratch space, which
    // would make its destroy benign): the format has no such field either, and scratch
    // provenance only ever comes from the agent's own journal.
    let scratch =
        desired(2, true).replace("ensure = \"absent\"", "ensure = \"absent\"\nscratch = true");
    forged.revision(&scratch).await;
    wait_for(
        "the scratch-marked document refused",
        Duration::from_secs(20),
        || {
            audit(d).iter().any(|r| {
                matches!(&r.event, AuditEvent::DesiredStateRefused { source, detail }
            if source == "hub revision 3" && detail.contains("scratch"))
            })
        },
    )
    .await;

    // An op signed by a key the host does not trust.
    let work = d.join("work");
    std::fs::create_dir(&work).unwrap();
    let sig = sign(&work.join("m.op"), &payload, &keys.mallory);
    forged.op(&payload, &sig).await;
    // A tampered op: alice signed something else.
    let sig = sign(&work.join("a.op"), &payload, &keys.alice);
    let tampered = payload.replace("lxc/101", "lxc/102");
    assert_ne!(tampered, payload);
    forged.op(&tampered, &sig).await;
    // An op for another host, genuinely signed by alice.
    let other = payload.replace("host = \"pve-01\"", "host = \"pve-02\"");
    assert_ne!(other, payload);
    let sig_other = sign(&work.join("o.op"), &other, &keys.alice);
    forged.op(&other, &sig_other).await;
    wait_for("three refusals", Duration::from_secs(20), || {
        let r = rejections(d);
        r.contains(&RejectReason::UnknownSigner)
            && r.contains(&RejectReason::BadSignature)
            && r.contains(&RejectReason::WrongHost)
    })
    .await;
    assert_eq!(deletes(&sim), 0, "nothing destroyed by a forged hub");
    assert!(sim.guest(101).is_some());

    // Only alice's signature on the exact payload destroys, once; replayed, refused.
    let sig = sign(&work.join("ok.op"), &payload, &keys.alice);
    forged.op(&payload, &sig).await;
    wait_for(
        "101 destroyed with alice's signature",
        Duration::from_secs(20),
        || sim.guest(101).is_none(),
    )
    .await;
    forged.op(&payload, &sig).await;
    wait_for("the replay refused", Duration::from_secs(20), || {
        replay_refused(d)
    })
    .await;
    assert_eq!(deletes(&sim), 1);

    // The hub's database is swapped for a new one (ids start again at 1): the agent
    // notices, asks for everything, takes its revision 1 and meets the op again as the
    // replay it is.
    let received_1 = |d: &Path| {
        audit(d)
            .iter()
            .filter(|r| {
                matches!(&r.event, AuditEvent::DesiredStateReceived { source } if source == "hub revision 1")
            })
            .count()
    };
    assert_eq!(received_1(d), 1);
    let replays_before = replays(d);
    let credential = std::fs::read_to_string(d.join("state").join("hub.credential")).unwrap();
    let forged = forged.swap_database(&credential).await;
    forged.revision(&desired(3, false)).await;
    forged.op(&payload, &sig).await;
    wait_for(
        "revision 1 of the new database taken",
        Duration::from_secs(20),
        || received_1(d) == 2 && cores(&sim, 102).as_deref() == Some("3"),
    )
    .await;
    wait_for(
        "the op met again as a replay",
        Duration::from_secs(20),
        || replays(d) > replays_before,
    )
    .await;
    assert_eq!(deletes(&sim), 1);
    agent.stop();
    let store = Store::open_readonly(&d.join("state")).unwrap();
    castellan_store::verify_chain(&store).unwrap();
}

/// A hub process killed (SIGKILL) while operators write as fast as they can leaves its
/// PostgreSQL database whole: every host's revisions are numbered without a gap, each
/// stored document is complete and matches its checksum, and a new hub on the same
/// database takes the next write at once (no lock left behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_write_leaves_its_database_whole() {
    if !castellan_testkit::postgres::available() {
        return;
    }
    let db = castellan_testkit::postgres::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let token = operator_token(&hub_dir, &db, "alice");
    let (hub, url, fp) = start_hub_on(&hub_dir, "127.0.0.1:0", Some(&db));
    let client = operator_client(&url, &fp, token);
    let hosts: Vec<String> = (1..=4).map(|i| format!("pve-{i:02}")).collect();
    let mut writers = Vec::new();
    for host in &hosts {
        let (client, host) = (client.clone(), host.clone());
        writers.push(tokio::spawn(async move {
            let mut based = 0;
            loop {
                // A large document, so a write takes a while on the wire and in the database.
                let doc = format!(
                    "node = \"{host}\"\n# {}\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {}\n",
                    "x".repeat(200_000),
                    based + 1
                );
                match client.put_desired(&host, &doc, based).await {
                    Ok(r) => based = r.revision,
                    Err(_) => return based,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(hub); // SIGKILL, mid-write
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.push(w.await.unwrap());
    }
    assert!(acknowledged.iter().all(|n| *n > 0), "{acknowledged:?}");

    let store = castellan_hub::PgStore::connect(&db).await.unwrap();
    for (host, acked) in hosts.iter().zip(&acknowledged) {
        let history = store.history(host, 10_000).await.unwrap();
        let latest = history.first().map_or(0, |r| r.revision);
        // Every acknowledged write is there; at most the one in flight went in too.
        assert!(
            latest == *acked || latest == acked + 1,
            "{host}: {latest} vs {acked}"
        );
        let numbers: Vec<u64> = history.iter().map(|r| r.revision).collect();
        let expected: Vec<u64> = (1..=latest).rev().collect();
        assert_eq!(numbers, expected, "{host}: revisions without a gap");
        for meta in &history {
            let rev = store.revision(host, meta.revision).await.unwrap().unwrap();
            castellan_core::parse_desired(&rev.document).expect("a whole document");
            assert_eq!(
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    rev.document.as_bytes()
                )),
                meta.sha256
            );
        }
    }
    // A new hub on the same database goes on at once.
    let (hub, url, _) = start_hub_on(&hub_dir, "127.0.0.1:0", Some(&db));
    let client = operator_client(&url, &fp, operator_token(&hub_dir, &db, "bob"));
    for host in &hosts {
        let latest = client
            .desired(host)
            .await
            .unwrap()
            .map_or(0, |r| r.revision);
        let doc = format!("node = \"{host}\"\n");
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            client.put_desired(host, &doc, latest),
        )
        .await
        .expect("no lock left behind")
        .unwrap();
        assert_eq!(r.revision, latest + 1);
    }
    drop(hub);
}

/// An operator token made with `castellan hub operator-token create` on PostgreSQL.
fn operator_token(hub_dir: &Path, db: &str, name: &str) -> String {
    let mut cmd = castellan();
    cmd.env("CASTELLAN_HUB_DATABASE_URL", db)
        .args(["hub", "operator-token", "create", name, "--data-dir"])
        .arg(hub_dir);
    String::from_utf8(castellan_testkit::run_ok(&mut cmd).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

/// A client of the hub at `url` (its certificate pinned to `fp`) with an operator token.
fn operator_client(url: &str, fp: &str, token: String) -> HubClient {
    HubClient::new(
        url.parse().unwrap(),
        &TlsMode::Fingerprint(fp.parse::<Fingerprint>().unwrap()),
    )
    .unwrap()
    .with_token(token)
}

/// `castellan ledger publish` pushes a real acceptance report to a real hub, which keeps
/// it for its Host services page; a file that is not one is refused before anything is
/// sent, naming what is wrong.
#[tokio::test]
async fn a_ledger_acceptance_report_is_published_to_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../castellan-ledger/tests/fixtures/ops-repo");
    castellan_testkit::run_ok(
        castellan()
            .args(["ledger", "inventory", "--repo"])
            .arg(&repo)
            .arg("-o")
            .arg(d.join("inventory.json")),
    );
    castellan_testkit::run_ok(
        castellan()
            .args(["ledger", "requests", "--inventory"])
            .arg(d.join("inventory.json"))
            .arg("-o")
            .arg(d.join("requests.json")),
    );
    castellan_testkit::run_ok(
        castellan()
            .args(["ledger", "acceptance", "--repo"])
            .arg(&repo)
            .arg("--inventory")
            .arg(d.join("inventory.json"))
            .arg("--requests")
            .arg(d.join("requests.json"))
            .arg("-o")
            .arg(d.join("acceptance.json")),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("acceptance.json")).unwrap()).unwrap();
    let candidates = report["acceptance_candidates"].as_array().unwrap().len();
    assert!(candidates > 0);

    let hub_dir = d.join("hub");
    let (_hub, url, fp) = start_hub(&hub_dir, "127.0.0.1:0");
    let op_token = hub_cmd(&hub_dir, &["operator-token", "create", "alice"]);
    std::fs::write(d.join("op-token"), &op_token).unwrap();
    let publish = |file: &Path| {
        let mut cmd = castellan();
        cmd.args(["ledger", "publish"])
            .arg(file)
            .args(["--hub", &url, "--hub-fingerprint", &fp, "--token-file"])
            .arg(d.join("op-token"));
        cmd.output().unwrap()
    };
    // The inventory is not an acceptance report: refused here, exit 2, nothing pushed.
    let out = publish(&d.join("inventory.json"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema_version must be \"host_service_owner_response_acceptance_v1\""),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "said once: {err}");
    let client = castellan_hub::HubClient::new(
        url.parse().unwrap(),
        &castellan_pve::TlsMode::Fingerprint(fp.parse().unwrap()),
    )
    .unwrap()
    .with_token(op_token.clone());
    let e = client.ledger().await.expect_err("nothing pushed yet");
    assert_eq!(e.status(), Some(reqwest::StatusCode::NOT_FOUND), "{e}");

    let out = publish(&d.join("acceptance.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "pushed acceptance report 1 ({candidates} candidates)"
        )),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(client.ledger().await.unwrap(), report);
}
