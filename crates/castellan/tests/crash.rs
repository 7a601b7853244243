//! Crash recovery, end to end: the real `castellan agent` carrying out an operator-signed
//! op on pvesim — a destroy, a restore over an existing guest — is SIGKILLed at each
//! journal step of the op, then restarted. Whatever the step, the op must be carried out
//! exactly once, after one safety backup that is recorded with the intent and audited;
//! the journal must hold exactly one settled intent, and the audit chain must verify.
//!
//! The agent pauses at a named step when `CASTELLAN_CRASHPOINT` names it and announces
//! `castellan-crashpoint: <step>` on stderr; this harness then kills it with SIGKILL
//! (`Child::kill`), so the process gets no chance to clean up.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use castellan_store::{IntentState, Store, verify_chain};
use pvesim::{Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=crash-secret-0b7e";

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "old-web"
cores = 1
memory = 512

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "keep-me"
cores = 1
"#;

const DESIRED: &str = r#"node = "pve-01"
[[guest]]
vmid = 101
kind = "lxc"
ensure = "absent"

[[guest]]
vmid = 102
kind = "lxc"
cores = 1
"#;

/// A backup of guest 101 to restore over it.
const ARCHIVE: &str = "local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst";

const RESTORE_SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "old-web"
cores = 1
memory = 512
rootfs = "local-lvm:vm-101-disk-0,size=8G"

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "keep-me"
cores = 1

[[backup]]
storage = "local"
vmid = 101
kind = "lxc"
size = "1G"
volid = "local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst"
[backup.config]
hostname = "restored-web"
cores = 2
memory = 1024
rootfs = "local-lvm:vm-101-disk-0,size=8G"
"#;

const RESTORE_DESIRED: &str = r#"node = "pve-01"
[[guest]]
vmid = 101
kind = "lxc"
restore_over = { archive = "local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst", storage = "local-lvm" }

[[guest]]
vmid = 102
kind = "lxc"
cores = 1
"#;

const WAIVED_DESIRED: &str = r#"node = "pve-01"
[[guest]]
vmid = 101
kind = "lxc"
ensure = "absent"
safety_backup = false
"#;

const PROTECTED_SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "old-web"
protection = 1
rootfs = "local-lvm:vm-101-disk-0,size=8G"

[[backup]]
storage = "local"
vmid = 101
kind = "lxc"
size = "1G"
volid = "local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst"
[backup.config]
hostname = "restored-web"
rootfs = "local-lvm:vm-101-disk-0,size=8G"
"#;

/// One signed op under test: what the node starts from, what is declared, and how to tell
/// from the node's request log that the op was sent and from its state that it is done.
struct Case {
    op: &'static str,
    /// The target as the payload's file name has it (`lxc-101`).
    stem: &'static str,
    seed: &'static str,
    desired: &'static str,
    /// How many times the op's request reached the node.
    sent: fn(&SimHandle) -> usize,
    /// Whether the node shows the op done.
    done: fn(&SimHandle) -> bool,
}

const DESTROY: Case = Case {
    op: "destroy",
    stem: "lxc-101",
    seed: SEED,
    desired: DESIRED,
    sent: |sim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.ends_with("/lxc/101"))
            .count()
    },
    done: |sim| sim.guest(101).is_none(),
};

const WAIVED: Case = Case {
    desired: WAIVED_DESIRED,
    ..DESTROY
};

const PROTECTED: Case = Case {
    seed: PROTECTED_SEED,
    ..RESTORE
};

const RESTORE: Case = Case {
    op: "restore_overwrite",
    stem: "lxc-101",
    seed: RESTORE_SEED,
    desired: RESTORE_DESIRED,
    sent: |sim| {
        sim.requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.ends_with("/nodes/pve-01/lxc")
                    && r.params.get("force").map(String::as_str) == Some("1")
            })
            .count()
    },
    done: |sim| {
        sim.guest(101)
            .is_some_and(|g| g.config.get("hostname").map(String::as_str) == Some("restored-web"))
    },
};

fn ssh_keygen() -> Option<PathBuf> {
    let found = castellan_sig::sign::find_ssh_keygen();
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("ssh-keygen is required for the crash tests (install openssh-client)");
    }
    found
}

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
    case: &'static Case,
}

impl Env {
    async fn new(task_duration: Duration) -> Env {
        Env::of(&DESTROY, task_duration).await
    }

    async fn of(case: &'static Case, task_duration: Duration) -> Env {
        let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(case.seed).unwrap());
        cfg.task_duration = task_duration;
        let sim = pvesim::start(cfg, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("agent.toml"),
            format!(
                "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\
                 [desired]\nfile = \"desired.toml\"\n[signers]\nconfig = \"signers.toml\"\n\
                 [agent]\nbackoff_base_ms = 50\nonce_attempts = 3\n",
                sim.base_url()
            ),
        )
        .unwrap();
        std::fs::write(d.join("desired.toml"), case.desired).unwrap();
        let keygen = ssh_keygen().unwrap();
        let st = Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f"])
            .arg(d.join("alice"))
            .status()
            .unwrap();
        assert!(st.success());
        let public = std::fs::read_to_string(d.join("alice.pub")).unwrap();
        std::fs::write(
            d.join("allowed_signers"),
            format!("alice@example.com {public}"),
        )
        .unwrap();
        std::fs::write(
            d.join("signers.toml"),
            "allowed_signers = \"allowed_signers\"\n[roles]\n\"alice@example.com\" = \"operational\"\n",
        )
        .unwrap();
        Env { sim, dir, case }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn agent(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
        cmd.args(["agent", "--once", "--config"])
            .arg(self.path("agent.toml"))
            .env_remove("CASTELLAN_CRASHPOINT");
        cmd
    }

    fn run_agent(&self) -> Output {
        self.agent().output().unwrap()
    }

    /// The operator's side: take the payload the agent wrote, sign it with plain
    /// `ssh-keygen -Y sign`, and drop both into the inbox (signature first).
    fn sign_pending(&self) {
        let (op, stem) = (self.case.op, self.case.stem);
        let payload = self.path(&format!("state/pending/pve-01-{stem}-{op}.op"));
        assert!(payload.exists(), "the agent wrote the payload to sign");
        let st = Command::new(ssh_keygen().unwrap())
            .args(["-Y", "sign", "-n", "castellan-op", "-f"])
            .arg(self.path("alice"))
            .arg(&payload)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let inbox = self.path("state/inbox");
        std::fs::copy(
            payload.with_extension("op.sig"),
            inbox.join(format!("{op}-101.op.sig")),
        )
        .unwrap();
        std::fs::copy(&payload, inbox.join(format!("{op}-101.op"))).unwrap();
    }

    /// How many times the op's request reached the node.
    fn sends(&self) -> usize {
        (self.case.sent)(&self.sim)
    }

    fn deletes(&self) -> usize {
        (DESTROY.sent)(&self.sim)
    }

    /// How many safety backups were started.
    fn backups(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/vzdump"))
            .count()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the agent until it reaches `step`, then SIGKILLs it.
fn kill_at(env: &Env, step: &str) {
    castellan_testkit::kill_at_crashpoint(env.agent(), step);
}

/// The journal and audit log after the op: exactly one intent of it, succeeded, its nonce
/// spent, its safety backup recorded, audited and on the node's storage; nothing in
/// flight; the chain verifies.
fn check_consistent(env: &Env) {
    let data_dir = env.path("state");
    let store = Store::open_readonly(&data_dir).unwrap();
    let report = verify_chain(&store).unwrap_or_else(|b| panic!("audit chain broken: {b}"));
    assert!(report.records > 0);
    assert!(
        store.in_flight().unwrap().is_empty(),
        "nothing left in flight"
    );
    let op = env.case.op;
    let intents: Vec<_> = store
        .intents_for(&castellan_core::Target::guest(
            castellan_core::GuestKind::Lxc,
            101,
        ))
        .unwrap()
        .into_iter()
        .filter(|i| i.op == op)
        .collect();
    assert_eq!(intents.len(), 1, "exactly one {op} intent: {intents:#?}");
    assert_eq!(intents[0].state, IntentState::Succeeded, "{intents:#?}");
    assert!(intents[0].destructive);
    let nonce = intents[0].nonce.clone().unwrap();
    assert!(store.nonce_consumed(&nonce).unwrap());
    let backup = intents[0]
        .backup
        .clone()
        .expect("a safety backup was recorded");
    assert!(
        backup.starts_with("local:backup/vzdump-lxc-101-") && backup != ARCHIVE,
        "{backup}"
    );
    let volume = env
        .sim
        .volume(&backup)
        .expect("the safety backup is on the storage");
    assert!(volume.size > 0);
    let audited: Vec<String> = store
        .audit_records(1, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            castellan_store::AuditEvent::BackupTaken { volume, .. } => Some(volume),
            _ => None,
        })
        .collect();
    assert_eq!(audited, [backup], "one backup_taken, naming the volume");
}

async fn crash_and_recover(step: &str, task_duration: Duration) {
    crash_and_recover_op(&DESTROY, step, task_duration).await;
}

async fn crash_and_recover_op(case: &'static Case, step: &str, task_duration: Duration) {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let op = case.op;
    let env = Env::of(case, task_duration).await;
    // 1. Without a signature the op is pending, and nothing is sent.
    let out = env.run_agent();
    assert_eq!(
        out.status.code(),
        Some(1),
        "pending is not converged: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("101: {op} pending a signed op")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.sends(), 0);
    assert_eq!(env.backups(), 0, "no backup before the signature");
    // 2. The operator signs; the agent is killed at `step` of executing it.
    env.sign_pending();
    kill_at(&env, step);
    // 3. Restarted, the agent recovers and settles everything.
    let started = Instant::now();
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "step {step}: converged after recovery\nstdout: {}\nstderr: {}\njournal: {:#?}",
        text(&out.stdout),
        text(&out.stderr),
        Store::open_readonly(&env.path("state"))
            .and_then(|s| s.recent_intents(10))
            .map(|v| v
                .into_iter()
                .map(|i| (i.op, i.state, i.outcome))
                .collect::<Vec<_>>())
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!((case.done)(&env.sim), "step {step}: {op} of guest 101 done");
    assert!(env.sim.guest(102).is_some(), "the other guest is untouched");
    assert_eq!(env.sends(), 1, "step {step}: {op} sent exactly once");
    assert!(env.backups() >= 1, "step {step}: a safety backup first");
    check_consistent(&env);
    // The op is settled out of the inbox, and offering it again changes nothing.
    assert!(!env.path(&format!("state/inbox/{op}-101.op")).exists());
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.sends(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_signature_was_accepted() {
    crash_and_recover("accepted", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_intent_was_journaled() {
    crash_and_recover("intent", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_post_and_recording_its_task() {
    crash_and_recover("posted", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_post_and_recording_its_task_while_it_runs() {
    // A slow destroy task: recovery finds the guest still locked by it and waits.
    crash_and_recover("posted", Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_task_was_recorded() {
    // The task is still running at restart: recovery asks for its status once, then
    // waits for it.
    crash_and_recover("dispatched", Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_outcome_was_recorded() {
    crash_and_recover("terminal", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_guest_was_shut_down() {
    // Between the shutdown before the destroy and the task mark: nothing was sent; the
    // restarted agent looks again and finishes the approved destroy, once.
    crash_and_recover("stopped", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_safety_backup_was_recorded() {
    // The backup is the intent's: the restarted agent does not take a second one.
    crash_and_recover("backed_up", Duration::from_millis(20)).await;
}

// ---- the same, for a restore over an existing guest ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_signature_was_accepted() {
    crash_and_recover_op(&RESTORE, "accepted", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_intent_was_journaled() {
    crash_and_recover_op(&RESTORE, "intent", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_guest_was_shut_down() {
    crash_and_recover_op(&RESTORE, "stopped", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_safety_backup_was_recorded() {
    crash_and_recover_op(&RESTORE, "backed_up", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_between_the_post_and_recording_its_task() {
    crash_and_recover_op(&RESTORE, "posted", Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_between_the_post_and_recording_its_task_while_it_runs() {
    crash_and_recover_op(&RESTORE, "posted", Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_task_was_recorded() {
    crash_and_recover_op(&RESTORE, "dispatched", Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_after_the_outcome_was_recorded() {
    crash_and_recover_op(&RESTORE, "terminal", Duration::from_millis(20)).await;
}

// ---- recovery never re-sends a destroy it cannot prove unsent ---------------------------

impl Env {
    /// The operator's own op for the pending destroy, valid for `ttl`, signed and dropped
    /// into the inbox (the signature first).
    fn sign_own(&self, ttl: &str) {
        let payload = self.path("state/pending/pve-01-lxc-101-destroy.op");
        let pending =
            castellan_core::op::SignedOp::parse(&std::fs::read(&payload).unwrap()).unwrap();
        let digest = pending.precondition.unwrap();
        let op = self.path("own.op");
        let out = Command::new(env!("CARGO_BIN_EXE_castellan"))
            .args(["op", "new", "destroy", "--host", "pve-01"])
            .args([
                "--target",
                "lxc/101",
                "--precondition",
                &digest,
                "--ttl",
                ttl,
                "-o",
            ])
            .arg(&op)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let st = Command::new(ssh_keygen().unwrap())
            .args(["-Y", "sign", "-n", "castellan-op", "-f"])
            .arg(self.path("alice"))
            .arg(&op)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let inbox = self.path("state/inbox");
        std::fs::copy(op.with_extension("op.sig"), inbox.join("own.op.sig")).unwrap();
        std::fs::copy(&op, inbox.join("own.op")).unwrap();
    }

    /// The node's next destroy task of guest 101 fails (the guest stays, unchanged).
    fn fail_next_destroy(&self) {
        self.sim.set_faults(vec![pvesim::FaultRule {
            vmid: Some(101),
            method: Some("DELETE".into()),
            path_suffix: None,
            times: Some(1),
            fault: pvesim::Fault::TaskFailure {
                exitstatus: "unable to destroy CT 101 - simulated storage error".into(),
            },
        }]);
    }

    fn destroy_intent(&self) -> castellan_store::Intent {
        let store = Store::open_readonly(&self.path("state")).unwrap();
        let mut destroys: Vec<_> = store
            .intents_for(&castellan_core::Target::guest(
                castellan_core::GuestKind::Lxc,
                101,
            ))
            .unwrap()
            .into_iter()
            .filter(|i| i.op == "destroy")
            .collect();
        assert_eq!(destroys.len(), 1, "{destroys:#?}");
        destroys.remove(0)
    }

    fn audit_kinds(&self) -> Vec<String> {
        let store = Store::open_readonly(&self.path("state")).unwrap();
        store
            .audit_records(1, 100_000)
            .unwrap()
            .into_iter()
            .map(|r| r.event.kind().to_owned())
            .collect()
    }
}

/// The agent's clock high-water mark is a day ahead of the node's clock, the node's
/// destroy task fails, and the agent dies between the DELETE and recording its task.
/// Recovery must find that task by the node's own task list (not by comparing clocks),
/// record the failure, and never send the DELETE a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_task_is_found_whatever_the_clocks_say_and_never_resent() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(20)).await;
    env.fail_next_destroy();
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    {
        let mut store = Store::open(&env.path("state")).unwrap();
        let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
        store.effective_now(ahead).unwrap();
    }
    env.sign_own("3d");
    kill_at(&env, "posted");
    assert_eq!(env.deletes(), 1);
    let out = env.run_agent();
    assert_eq!(
        env.deletes(),
        1,
        "the DELETE was sent again: {}",
        text(&out.stderr)
    );
    assert!(
        env.sim.guest(101).is_some(),
        "the failed destroy left the guest"
    );
    let intent = env.destroy_intent();
    assert_eq!(intent.state, IntentState::Failed, "{intent:#?}");
    assert!(
        intent
            .upid
            .as_deref()
            .is_some_and(|u| u.contains(":vzdestroy:101:")),
        "{intent:#?}"
    );
    let store = Store::open_readonly(&env.path("state")).unwrap();
    verify_chain(&store).unwrap();
}

/// A transient error (HTTP 500) on a task-status poll is not an outcome: the destroy that
/// succeeded is recorded as succeeded, no action_failed is audited, and no fresh payload
/// is offered for the guest being destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_status_poll_is_not_an_outcome() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(300)).await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    env.sign_pending();
    let payload = env.path("state/pending/pve-01-lxc-101-destroy.op");
    let before = std::fs::read(&payload).unwrap();
    env.sim.set_faults(vec![pvesim::FaultRule {
        vmid: None,
        method: Some("GET".into()),
        path_suffix: Some("status".into()),
        times: Some(2),
        fault: pvesim::Fault::InternalError {
            message: "proxy loop detected".into(),
        },
    }]);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        env.sim.faults().iter().all(|f| f.times == Some(0)),
        "the polls did fail: {:?}",
        env.sim.faults()
    );
    assert_eq!(env.deletes(), 1);
    assert!(env.sim.guest(101).is_none());
    assert_eq!(env.destroy_intent().state, IntentState::Succeeded);
    let kinds = env.audit_kinds();
    assert!(!kinds.iter().any(|k| k == "action_failed"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "signature_pending").count(),
        1,
        "no fresh payload: {kinds:?}"
    );
    assert_eq!(std::fs::read(&payload).unwrap(), before);
}

// ---- losing the agent's database never revives a used op --------------------------------

/// An op is used (its destroy failed on the node, so the guest is still there, unchanged),
/// then castellan.db is deleted and the op put back into the inbox. The agent refuses to
/// start on the lost state; told to accept the loss, it starts, audits that, and refuses
/// the old op as `predates_state`: the DELETE is never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_never_revives_a_used_op() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(20)).await;
    env.fail_next_destroy();
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Let the next second begin, so the op's window starts after the state did.
    std::thread::sleep(Duration::from_millis(1100));
    env.sign_pending();
    let _ = env.run_agent();
    assert_eq!(env.deletes(), 1, "the op was used once");
    assert!(env.sim.guest(101).is_some());
    let done = env.path("state/inbox/done/destroy-101.op");
    assert!(done.exists(), "the used op was settled to done/");

    // The state is lost; the used op is offered again.
    for f in ["castellan.db", "castellan.db-wal", "castellan.db-shm"] {
        let _ = std::fs::remove_file(env.path("state").join(f));
    }
    let inbox = env.path("state/inbox");
    std::fs::rename(&done, inbox.join("again.op")).unwrap();
    std::fs::rename(
        env.path("state/inbox/done/destroy-101.op.sig"),
        inbox.join("again.op.sig"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));

    let out = env.run_agent();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shows earlier use"), "{stderr}");
    assert!(stderr.contains("--accept-state-loss"), "{stderr}");
    assert!(
        !env.path("state/castellan.db").exists(),
        "a refusal creates no database"
    );
    assert_eq!(env.deletes(), 1);

    let out = env.agent().arg("--accept-state-loss").output().unwrap();
    assert_eq!(
        env.deletes(),
        1,
        "a used op ran again: {}",
        text(&out.stderr)
    );
    assert!(env.sim.guest(101).is_some());
    // Refused as predating the state (left in the inbox for now: its files changed a
    // moment ago, so it is not settled for good until they have been still a while).
    let store = Store::open_readonly(&env.path("state")).unwrap();
    let refusals: Vec<String> = store
        .audit_records(1, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            castellan_store::AuditEvent::OpRejected { reason, .. } => {
                Some(reason.as_str().to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(refusals, ["predates_state"], "{}", text(&out.stderr));
    let kinds = env.audit_kinds();
    assert!(
        kinds.iter().any(|k| k == "state_loss_accepted"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "state_created"), "{kinds:?}");
}

/// An intent held for an operator blocks its guest (no DELETE, no fresh payload), is
/// shown by `castellan plan` with the command that settles it, and is settled only by
/// `castellan journal resolve` (audited), after which the guest is handled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_intent_is_shown_and_settled_only_by_an_operator() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(20)).await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let payload = env.path("state/pending/pve-01-lxc-101-destroy.op");
    std::fs::remove_file(&payload).unwrap();
    let id = {
        let mut store = Store::open(&env.path("state")).unwrap();
        let now = jiff::Timestamp::now();
        let (id, _) = store
            .begin_intent(
                castellan_store::NewIntent {
                    action_id: "f".repeat(64),
                    op: "destroy".into(),
                    target: castellan_core::Target::guest(castellan_core::GuestKind::Lxc, 101),
                    params: Default::default(),
                    nonce: Some("a".repeat(32)),
                    nonce_not_after: Some(now + jiff::SignedDuration::from_hours(1)),
                    destructive: true,
                    upid_hint: None,
                },
                castellan_store::AuditEvent::IntentRecorded,
                now,
            )
            .unwrap();
        store
            .hold_intent(
                id,
                "two destroy tasks appeared",
                castellan_store::AuditEvent::IntentHeld {
                    reason: String::new(),
                },
                now,
            )
            .unwrap();
        id
    };
    let out = env.run_agent();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("held for an operator"), "{stdout}");
    assert_eq!(env.deletes(), 0);
    assert!(
        !payload.exists(),
        "a fresh payload while a destroy is unsettled"
    );

    let plan = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["plan", "--config"])
        .arg(env.path("agent.toml"))
        .output()
        .unwrap();
    let shown = text(&plan.stdout);
    assert!(shown.contains("Held for an operator"), "{shown}");
    assert!(
        shown.contains(&format!("castellan journal resolve {id} ")),
        "{shown}"
    );

    let journal = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_castellan"))
            .arg("journal")
            .args(args)
            .arg("--data-dir")
            .arg(env.path("state"))
            .output()
            .unwrap()
    };
    let id_text = id.to_string();
    let out = journal(&["resolve", &id_text, "--as", "maybe", "--reason", "x"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the parser refuses an unknown outcome"
    );
    let out = journal(&[
        "resolve",
        &id_text,
        "--as",
        "rolled-back",
        "--reason",
        "no vzdestroy task of ours in the node's task log",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = journal(&["resolve", &id_text, "--as", "failed", "--reason", "again"]);
    assert_eq!(out.status.code(), Some(1), "settled once only");
    assert!(env.audit_kinds().iter().any(|k| k == "intent_resolved"));
    // The guest is handled again: its destroy is pending a signature once more.
    let out = env.run_agent();
    assert!(
        text(&out.stdout).contains("destroy pending a signed op"),
        "{}",
        text(&out.stdout)
    );
    assert!(payload.exists());
    assert_eq!(env.deletes(), 0);
}

// ---- the safety net ---------------------------------------------------------------------

impl Env {
    /// Runs the agent once (the op pending), signs the payload and runs it again.
    fn sign_and_run(&self) -> Output {
        let out = self.run_agent();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        self.sign_pending();
        self.run_agent()
    }

    fn only_intent(&self) -> castellan_store::Intent {
        let store = Store::open_readonly(&self.path("state")).unwrap();
        let mut all: Vec<_> = store
            .intents_for(&castellan_core::Target::guest(
                castellan_core::GuestKind::Lxc,
                101,
            ))
            .unwrap()
            .into_iter()
            .filter(|i| i.op == self.case.op)
            .collect();
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }
}

/// The safety backup's task fails: the destroy is never sent, the guest stays, the intent
/// is rolled back naming the backup, and no backup is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_safety_backup_stops_the_destroy() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(20)).await;
    env.sim.set_faults(vec![pvesim::FaultRule {
        vmid: None,
        method: Some("POST".into()),
        path_suffix: Some("vzdump".into()),
        times: Some(1),
        fault: pvesim::Fault::TaskFailure {
            exitstatus: "job errors".into(),
        },
    }]);
    let out = env.sign_and_run();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(env.backups(), 1, "the backup was tried");
    assert_eq!(env.deletes(), 0, "no destroy without its backup");
    assert!(env.sim.guest(101).is_some());
    let intent = env.only_intent();
    assert_eq!(intent.state, IntentState::RolledBack, "{intent:#?}");
    let reason = format!("{:?}", intent.outcome);
    assert!(reason.contains("to storage local failed"), "{reason}");
    assert!(reason.contains("the destroy was not sent"), "{reason}");
    assert!(intent.backup.is_none());
    let kinds = env.audit_kinds();
    assert!(!kinds.iter().any(|k| k == "backup_taken"), "{kinds:?}");
    // The op is spent; the destroy waits for a fresh signature.
    assert!(
        text(&out.stdout).contains("destroy pending a signed op")
            || text(&env.run_agent().stdout).contains("destroy pending a signed op")
    );
}

/// A backup storage that does not exist stops the destroy the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_backup_storage_stops_the_destroy() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new(Duration::from_millis(20)).await;
    let config = std::fs::read_to_string(env.path("agent.toml")).unwrap();
    std::fs::write(
        env.path("agent.toml"),
        format!("{config}[backup]\nstorage = \"nas\"\n"),
    )
    .unwrap();
    let _ = env.sign_and_run();
    assert_eq!(env.deletes(), 0);
    assert!(env.sim.guest(101).is_some());
    let intent = env.only_intent();
    assert_eq!(intent.state, IntentState::RolledBack, "{intent:#?}");
    let reason = format!("{:?}", intent.outcome);
    assert!(reason.contains("storage nas"), "{reason}");
}

/// `safety_backup = false` is part of what the operator signs (`backup=0`): no vzdump
/// is taken, and the waiver is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waived_backup_is_signed_and_audited() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::of(&WAIVED, Duration::from_millis(20)).await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let payload =
        std::fs::read_to_string(env.path("state/pending/pve-01-lxc-101-destroy.op")).unwrap();
    assert!(payload.contains("backup = \"0\""), "{payload}");
    env.sign_pending();
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.backups(), 0, "waived: no vzdump");
    assert_eq!(env.deletes(), 1);
    assert!(env.only_intent().backup.is_none());
    let kinds = env.audit_kinds();
    assert!(kinds.iter().any(|k| k == "backup_waived"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "backup_taken"), "{kinds:?}");
}

/// A restore over a protected guest is refused by the node as a real node refuses it: the
/// intent fails with the node's words, the guest keeps its data, and the safety backup
/// taken before stays on the storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_a_protected_guest_is_refused_by_the_node() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::of(&PROTECTED, Duration::from_millis(20)).await;
    let out = env.sign_and_run();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(env.sends(), 1, "sent once, refused");
    let g = env.sim.guest(101).unwrap();
    assert_eq!(
        g.config.get("hostname").map(String::as_str),
        Some("old-web")
    );
    let intent = env.only_intent();
    assert_eq!(intent.state, IntentState::Failed, "{intent:#?}");
    let error = format!("{:?}", intent.outcome);
    assert!(
        error.contains("unable to restore CT 101 - protection mode enabled"),
        "{error}"
    );
    let backup = intent.backup.expect("the backup was taken first");
    assert!(env.sim.volume(&backup).is_some());
}

// ---- storage wipes --------------------------------------------------------------------

const WIPE_SEED: &str = r#"
[[storage]]
id = "local"
type = "dir"
content = ["iso", "vztmpl", "backup"]
total = "100G"

[[storage]]
id = "local-lvm"
type = "lvmthin"
content = ["images", "rootdir"]
total = "200G"

[[guest]]
vmid = 106
kind = "lxc"
status = "running"
[guest.config]
hostname = "keeps-its-disk"
rootfs = "local-lvm:vm-106-disk-0,size=8G"

[[volume]]
volid = "local-lvm:vm-105-disk-0"
size = "8G"

[[volume]]
volid = "local-lvm:vm-105-disk-1"
size = "4G"

[[volume]]
volid = "local-lvm:vm-107-disk-0"
size = "2G"
"#;

const WIPE_DESIRED: &str = r#"node = "pve-01"
[[guest]]
vmid = 106
kind = "lxc"

[[wipe]]
storage = "local-lvm"
volumes = ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-1"]
"#;

/// The same wipe, also naming the disk guest 106 uses.
const WIPE_TOO_MUCH: &str = r#"node = "pve-01"
[[guest]]
vmid = 106
kind = "lxc"

[[wipe]]
storage = "local-lvm"
volumes = ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-1", "local-lvm:vm-106-disk-0"]
"#;

const WIPE: Case = Case {
    op: "wipe_storage",
    stem: "storage-local-lvm",
    seed: WIPE_SEED,
    desired: WIPE_DESIRED,
    sent: |sim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.contains("/storage/local-lvm/content/"))
            .count()
    },
    done: |sim| {
        sim.volume("local-lvm:vm-105-disk-0").is_none()
            && sim.volume("local-lvm:vm-105-disk-1").is_none()
    },
};

/// What a wipe must leave: the two approved orphans gone, each removal audited once, the
/// disk a guest uses and the orphan nobody named untouched, one intent succeeded.
fn check_wiped(env: &Env) {
    assert!((WIPE.done)(&env.sim), "the approved volumes are gone");
    assert!(
        env.sim.volume("local-lvm:vm-106-disk-0").is_some(),
        "a disk in use is never wiped"
    );
    assert!(
        env.sim.volume("local-lvm:vm-107-disk-0").is_some(),
        "a volume nobody named is untouched"
    );
    let store = Store::open_readonly(&env.path("state")).unwrap();
    verify_chain(&store).unwrap();
    assert!(store.in_flight().unwrap().is_empty());
    let target = castellan_core::Target::storage("local-lvm").unwrap();
    let intents = store.intents_for(&target).unwrap();
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0].state, IntentState::Succeeded, "{intents:#?}");
    let mut removed: Vec<String> = store
        .audit_records(1, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            castellan_store::AuditEvent::VolumeRemoved { volume, .. } => Some(volume),
            _ => None,
        })
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-1"],
        "each removal audited once"
    );
}

async fn wipe_killed_at(step: &str) {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::of(&WIPE, Duration::from_millis(20)).await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(env.sends(), 0, "nothing removed before the signature");
    env.sign_pending();
    kill_at(&env, step);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "step {step}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    check_wiped(&env);
    assert!(env.sends() <= 3, "step {step}: {} DELETEs", env.sends());
    // Offered again, the used op changes nothing.
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_wiped(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_after_the_signature_was_accepted() {
    wipe_killed_at("accepted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_after_the_intent_was_journaled() {
    wipe_killed_at("intent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_right_before_a_removal() {
    wipe_killed_at("removing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_after_a_volume_was_removed() {
    // Half-way: the first volume is gone and audited; recovery removes the other one.
    wipe_killed_at("removed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_between_a_removal_and_its_record() {
    wipe_killed_at("volume_deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_killed_after_the_outcome_was_recorded() {
    wipe_killed_at("terminal").await;
}

/// Before anyone signs, `castellan plan` lists what the wipe removes, with sizes, and why
/// the disk in use is left alone; the payload names each volume with its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wipe_shows_what_it_removes_and_never_touches_a_disk_in_use() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::of(&WIPE, Duration::from_millis(20)).await;
    std::fs::write(env.path("desired.toml"), WIPE_TOO_MUCH).unwrap();
    let plan = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["plan", "--config"])
        .arg(env.path("agent.toml"))
        .output()
        .unwrap();
    let shown = text(&plan.stdout);
    assert!(shown.contains("wipe_storage of 2 items"), "{shown}");
    assert!(
        shown.contains("removes local-lvm:vm-105-disk-0 (8GiB)"),
        "{shown}"
    );
    assert!(
        shown.contains("removes local-lvm:vm-105-disk-1 (4GiB)"),
        "{shown}"
    );
    assert!(
        shown.contains("local-lvm:vm-106-disk-0 is used by CT 106"),
        "{shown}"
    );
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1));
    let payload =
        std::fs::read_to_string(env.path("state/pending/pve-01-storage-local-lvm-wipe_storage.op"))
            .unwrap();
    assert!(
        payload.contains(
            "volumes = \"local-lvm:vm-105-disk-0=8589934592,local-lvm:vm-105-disk-1=4294967296\""
        ),
        "{payload}"
    );
    assert!(
        payload.contains("target = \"storage/local-lvm\""),
        "{payload}"
    );
    // Signed and run: the two orphans go; the disk in use stays, and the run says why it
    // is not converged.
    env.sign_pending();
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("local-lvm:vm-106-disk-0 is used by CT 106's rootfs"),
        "{}",
        text(&out.stdout)
    );
    check_wiped(&env);
}

/// A volume that changes after the approval stops the wipe before anything is removed:
/// the op is refused as stale and a fresh payload is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wipe_approved_before_a_volume_changed_is_refused() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::of(&WIPE, Duration::from_millis(20)).await;
    let _ = env.run_agent();
    // Someone attaches one of the approved volumes to guest 106 meanwhile.
    let put = reqwest::Client::builder()
        .use_preconfigured_tls(
            castellan_pve::tls_client_config(&castellan_pve::TlsMode::System).unwrap(),
        )
        .build()
        .unwrap()
        .put(format!(
            "{}/api2/json/nodes/pve-01/lxc/106/config",
            env.sim.base_url()
        ))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .form(&[("mp0", "local-lvm:vm-105-disk-1,mp=/data,size=4G")])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    env.sign_pending();
    let _ = env.run_agent();
    assert_eq!(env.sends(), 0, "nothing removed");
    assert!(env.sim.volume("local-lvm:vm-105-disk-0").is_some());
    let kinds = env.audit_kinds();
    assert!(kinds.iter().any(|k| k == "op_rejected"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "volume_removed"), "{kinds:?}");
}
