//! Provisioning and disk growth, end to end: the real `castellan agent --once` against
//! pvesim. Declared guests that do not exist are restored from a backup or cloned from a
//! template, recorded as the agent's own creations (provenance), then converged
//! (configuration, disks, power); a creation that fails half-way is undone without a
//! signature; a missing backup or a full storage is a clear error that leaves nothing;
//! and the agent SIGKILLed at every journal step of a provisioning settles it exactly once
//! when it starts again.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use castellan_core::{GuestKind, Target};
use castellan_store::{IntentState, ProvenanceCheck, Store, verify_chain};
use pvesim::{Fault, FaultRule, GuestStatus, Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=provision-secret-51c2";
const GIB: u64 = 1 << 30;

const SEED: &str = r#"
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

[[storage]]
id = "tiny"
type = "lvmthin"
content = ["images", "rootdir"]
total = "2G"

[[backup]]
storage = "local"
vmid = 900
kind = "lxc"
size = "1G"
[backup.config]
hostname = "web-template"
cores = 1
memory = 512
rootfs = "local-lvm:vm-900-disk-0,size=8G"

[[backup]]
storage = "local"
vmid = 901
kind = "qemu"
size = "2G"

[[guest]]
vmid = 9000
kind = "qemu"
status = "stopped"
[guest.config]
name = "debian-tmpl"
template = 1
cores = 1
memory = "1024"
scsi0 = "local-lvm:base-9000-disk-0,size=8G"

[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "existing"
cores = 1
memory = 512
rootfs = "local-lvm:vm-101-disk-0,size=8G"
"#;

const LXC_BACKUP: &str = "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst";
const QEMU_BACKUP: &str = "local:backup/vzdump-qemu-901-2026_01_01-00_00_01.vma.zst";

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(desired: &str) -> Env {
        Env::with_tasks(desired, None).await
    }

    /// With every task of the node taking `task` (pvesim's default otherwise).
    async fn with_tasks(desired: &str, task: Option<std::time::Duration>) -> Env {
        let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(SEED).unwrap());
        if let Some(t) = task {
            cfg.task_duration = t;
        }
        let sim = pvesim::start(cfg, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!(
                "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\n\
                 [desired]\nfile = \"desired.toml\"\n\
                 [agent]\nbackoff_base_ms = 50\nonce_attempts = 3\n",
                sim.base_url()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("desired.toml"), desired).unwrap();
        Env { sim, dir }
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

    /// How many requests `method` on a path ending in `suffix` the node served.
    fn count(&self, method: &str, suffix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    fn store(&self) -> Store {
        Store::open_readonly(&self.path("state")).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn disk_size(sim: &SimHandle, vmid: u32, key: &str) -> u64 {
    let g = sim.guest(vmid).unwrap();
    let v = g
        .config
        .get(key)
        .unwrap_or_else(|| panic!("{vmid} has {key}"));
    let size = v.split(',').find_map(|p| p.strip_prefix("size=")).unwrap();
    castellan_core::units::parse_size(size).unwrap()
}

/// The provisioning intents of `target`, oldest first.
fn provisions(store: &Store, target: Target) -> Vec<castellan_store::Intent> {
    store
        .intents_for(&target)
        .unwrap()
        .into_iter()
        .filter(|i| i.op == "provision")
        .collect()
}

const CONVERGE: &str = r#"node = "pve-01"

[[guest]]
vmid = 120
kind = "lxc"
run = "running"
cores = 2
source = { restore = "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst", storage = "local-lvm" }
disks = { rootfs = "16GiB" }

[[guest]]
vmid = 130
kind = "qemu"
run = "running"
source = { clone = 9000, full = true, storage = "local-lvm" }
disks = { scsi0 = "32G" }

[[guest]]
vmid = 101
kind = "lxc"
disks = { rootfs = "8192MiB" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_guests_are_created_grown_and_started_once() {
    let env = Env::new(CONVERGE).await;
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "converged\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let ct = env.sim.guest(120).expect("120 restored");
    assert_eq!(ct.status, GuestStatus::Running);
    assert_eq!(ct.config.get("cores").map(String::as_str), Some("2"));
    assert_eq!(
        ct.config.get("hostname").map(String::as_str),
        Some("web-template")
    );
    assert_eq!(disk_size(&env.sim, 120, "rootfs"), 16 * GIB);
    let vm = env.sim.guest(130).expect("130 cloned");
    assert_eq!(vm.status, GuestStatus::Running);
    assert_eq!(disk_size(&env.sim, 130, "scsi0"), 32 * GIB);
    // 8192MiB is the node's 8G: nothing is sent for 101.
    assert_eq!(env.count("PUT", "/lxc/101/resize"), 0);
    assert_eq!(env.count("POST", "/nodes/pve-01/lxc"), 1, "one restore");
    assert_eq!(env.count("POST", "/qemu/9000/clone"), 1, "one clone");
    // The restore asked for new MAC addresses, and the cluster was asked first.
    let restore = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/nodes/pve-01/lxc"))
        .unwrap();
    assert_eq!(restore.params.get("unique").map(String::as_str), Some("1"));
    assert_eq!(
        restore.params.get("ostemplate").map(String::as_str),
        Some(LXC_BACKUP)
    );
    assert!(env.count("GET", "/cluster/nextid") >= 2);

    // Both are this agent's creations, recorded with their intents.
    let store = env.store();
    for (kind, vmid) in [(GuestKind::Lxc, 120), (GuestKind::Qemu, 130)] {
        let intents = provisions(&store, Target::guest(kind, vmid));
        assert_eq!(intents.len(), 1, "{intents:#?}");
        assert_eq!(intents[0].state, IntentState::Succeeded);
        assert!(!intents[0].destructive);
        match store.verified_provenance(vmid, kind).unwrap() {
            ProvenanceCheck::Verified(p) => assert_eq!(p.kind.intent(), intents[0].id),
            other => panic!("{vmid}: {other:?}"),
        }
    }
    verify_chain(&store).unwrap();
    assert!(store.in_flight().unwrap().is_empty());
    drop(store);

    // A second run has nothing to create, grow or start.
    env.sim.clear_requests();
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.sim.requests().iter().all(|r| r.method == "GET"),
        "a converged node gets only reads: {:#?}",
        env.sim.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrink_is_refused_and_reported() {
    let env = Env::new(
        "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ndisks = { rootfs = \"4GiB\" }\n",
    )
    .await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("disk rootfs is 8GiB and cannot shrink to the declared 4GiB"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.count("PUT", "/lxc/101/resize"), 0, "nothing sent");
    assert_eq!(disk_size(&env.sim, 101, "rootfs"), 8 * GIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_half_way_is_undone_without_a_signature() {
    let env = Env::new(&format!(
        "node = \"pve-01\"\n[[guest]]\nvmid = 140\nkind = \"qemu\"\nsource = {{ restore = \"{QEMU_BACKUP}\", storage = \"local-lvm\" }}\n"
    ))
    .await;
    // The first restore's task fails; a failed qmrestore leaves its VM behind, unlocked.
    env.sim.set_faults(vec![FaultRule {
        method: Some("POST".into()),
        path_suffix: Some("/qemu".into()),
        vmid: None,
        times: Some(1),
        fault: Fault::TaskFailure {
            exitstatus: "command 'zstd -q -d -c /var/lib/vz/dump/x.vma.zst' failed: got signal 13"
                .into(),
        },
    }]);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "the retry converges\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        env.sim.guest(140).is_some(),
        "restored on the second attempt"
    );
    assert_eq!(env.count("POST", "/nodes/pve-01/qemu"), 2, "two restores");
    assert_eq!(
        env.count("DELETE", "/qemu/140"),
        1,
        "what the failed one left was removed once"
    );
    let store = env.store();
    let intents = provisions(&store, Target::guest(GuestKind::Qemu, 140));
    assert_eq!(intents.len(), 2, "{intents:#?}");
    assert_eq!(intents[0].state, IntentState::RolledBack, "{intents:#?}");
    assert!(intents.iter().all(|i| !i.destructive && i.nonce.is_none()));
    match &intents[0].outcome {
        Some(castellan_store::Outcome::RolledBack { reason }) => {
            assert!(reason.contains("got signal 13"), "{reason}");
            assert!(reason.contains("what it made was removed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(intents[1].state, IntentState::Succeeded);
    match store.verified_provenance(140, GuestKind::Qemu).unwrap() {
        ProvenanceCheck::Verified(p) => assert_eq!(p.kind.intent(), intents[1].id),
        other => panic!("{other:?}"),
    }
    let events: Vec<String> = store
        .audit_records(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.event.kind().to_owned())
        .collect();
    assert!(events.iter().any(|e| e == "undo_started"), "{events:?}");
    assert!(
        !events.iter().any(|e| e == "signature_pending"),
        "no signature was asked for: {events:?}"
    );
    verify_chain(&store).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_backup_or_a_full_storage_leaves_nothing_behind() {
    let env = Env::new(
        "node = \"pve-01\"\n\
         [[guest]]\nvmid = 150\nkind = \"lxc\"\nsource = { restore = \"local:backup/vzdump-lxc-999-2020_01_01-00_00_00.tar.zst\", storage = \"local-lvm\" }\n\
         [[guest]]\nvmid = 151\nkind = \"lxc\"\nsource = { restore = \"local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst\", storage = \"tiny\" }\n\
         [[guest]]\nvmid = 101\nkind = \"qemu\"\nsource = { clone = 9000 }\n",
    )
    .await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(env.sim.guest(150).is_none() && env.sim.guest(151).is_none());
    let volumes: Vec<_> = ["local-lvm", "tiny"]
        .iter()
        .flat_map(|s| env.sim.volumes(s))
        .collect();
    assert!(
        !volumes
            .iter()
            .any(|v| v.volid.contains("vm-150-") || v.volid.contains("vm-151-")),
        "no volume left: {volumes:#?}"
    );
    assert!(stdout.contains("150: gave up: "), "{stdout}");
    assert!(stdout.contains("151: gave up: "), "{stdout}");
    // 101 is a container already: never provisioned as a VM, never touched.
    assert!(
        stdout.contains("declared as qemu but the node has a lxc"),
        "{stdout}"
    );
    assert_eq!(env.count("POST", "/qemu/9000/clone"), 0);
    let store = env.store();
    for vmid in [150, 151] {
        let intents = provisions(&store, Target::guest(GuestKind::Lxc, vmid));
        assert!(!intents.is_empty());
        assert!(
            intents.iter().all(|i| i.state == IntentState::Failed),
            "{vmid}: {intents:#?}"
        );
        assert!(matches!(
            store.verified_provenance(vmid, GuestKind::Lxc).unwrap(),
            ProvenanceCheck::None
        ));
    }
    let failed: Vec<String> = provisions(&store, Target::guest(GuestKind::Lxc, 150))
        .into_iter()
        .filter_map(|i| match i.outcome {
            Some(castellan_store::Outcome::Failed { error }) => Some(error),
            _ => None,
        })
        .collect();
    assert!(
        failed[0].contains("vzdump-lxc-999"),
        "the error names the missing backup: {failed:?}"
    );
}

/// The agent SIGKILLed at `step` of provisioning 120, then run again: the guest exists,
/// restored exactly once, with its provenance, and nothing is left in flight.
async fn killed_while_provisioning(step: &str) {
    let env = Env::new(CONVERGE).await;
    castellan_testkit::kill_at_crashpoint(env.agent(), step);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "step {step}: converged after recovery\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(env.sim.guest(120).is_some() && env.sim.guest(130).is_some());
    assert_eq!(
        env.count("POST", "/nodes/pve-01/lxc"),
        1,
        "step {step}: restored exactly once"
    );
    assert_eq!(
        env.count("POST", "/qemu/9000/clone"),
        1,
        "step {step}: cloned once"
    );
    assert_eq!(env.count("DELETE", ""), 0, "step {step}: nothing removed");
    let store = env.store();
    assert!(store.in_flight().unwrap().is_empty(), "step {step}");
    verify_chain(&store).unwrap_or_else(|b| panic!("step {step}: {b}"));
    for (kind, vmid) in [(GuestKind::Lxc, 120), (GuestKind::Qemu, 130)] {
        let intents = provisions(&store, Target::guest(kind, vmid));
        let succeeded: Vec<_> = intents
            .iter()
            .filter(|i| i.state == IntentState::Succeeded)
            .collect();
        assert_eq!(succeeded.len(), 1, "step {step}: {intents:#?}");
        match store.verified_provenance(vmid, kind).unwrap() {
            ProvenanceCheck::Verified(p) => assert_eq!(p.kind.intent(), succeeded[0].id),
            other => panic!("step {step}: {vmid}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_provisioning_intent() {
    killed_while_provisioning("provision:intent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_provisioning_task_mark() {
    killed_while_provisioning("provision:prepared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_create_request_and_recording_its_task() {
    killed_while_provisioning("provision:posted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_create_task_was_recorded() {
    killed_while_provisioning("provision:dispatched").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_provisioning_succeeded() {
    killed_while_provisioning("provision:succeeded").await;
}

/// On a terminal (here a pseudo-terminal made by `script`), `castellan agent --once`
/// shows a spinner while it waits for a node's task, saying which; with stderr piped it
/// draws nothing and its log lines are as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_task_shows_a_spinner_only_on_a_terminal() {
    let desired = "node = \"pve-01\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"stopped\"\n";
    let env = Env::with_tasks(desired, Some(std::time::Duration::from_millis(1500))).await;
    let have_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        assert!(
            !castellan_testkit::ci(),
            "script (util-linux) is required under CI=true"
        );
        eprintln!("script not found; skipped outside CI");
        return;
    }
    let command = format!(
        "{} agent --once --config {}",
        env!("CARGO_BIN_EXE_castellan"),
        env.path("agent.toml").display()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("CASTELLAN_CRASHPOINT")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("waiting for the shutdown of 101 on pve-01 (vzshutdown)"),
        "{screen:?}"
    );
    assert!(
        screen.contains("action_applied"),
        "the log lines are still there: {screen:?}"
    );
    assert_eq!(env.sim.guest(101).unwrap().status, GuestStatus::Stopped);

    // Piped: the same run draws nothing.
    let env = Env::with_tasks(desired, Some(std::time::Duration::from_millis(300))).await;
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(!err.contains("waiting for"), "{err}");
    assert!(err.contains("action_applied"), "{err}");
}
