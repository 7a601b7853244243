//! Decommissioning a node, end to end: the real `castellan agent` on pvesim, a node declared
//! `decommission = true`, two operators' keys signed with plain `ssh-keygen -Y sign`.
//!
//! What must hold: nothing is sent before the op carries two distinct keys (the default
//! threshold of a decommission); once it does, every guest is backed up once and destroyed
//! once, the unreferenced volumes of the node's own storages are removed, a shared
//! storage's volume is never touched, each step is audited, and a replay changes nothing.
//! SIGKILLed at any journal step, the agent finishes the op from where it stopped.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use castellan_store::{AuditEvent, IntentState, Store, verify_chain};
use pvesim::{Seed, SimConfig, SimHandle};

const TOKEN: &str = "root@pam!castellan=decom-secret-51aa";

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
id = "shared-nfs"
type = "nfs"
content = ["images"]
shared = true
total = "1T"

[[guest]]
vmid = 101
kind = "lxc"
status = "running"
ha = true
[guest.config]
hostname = "web"
rootfs = "local-lvm:vm-101-disk-0,size=8G"

[[guest]]
vmid = 102
kind = "qemu"
status = "stopped"
[guest.config]
name = "db"
scsi0 = "local-lvm:vm-102-disk-0,size=4G"

[[volume]]
volid = "local-lvm:vm-300-disk-0"
size = "2G"

[[volume]]
volid = "shared-nfs:300/vm-300-disk-0.qcow2"
size = "3G"
"#;

const DESIRED: &str = "node = \"pve-01\"\ndecommission = true\n";

const PAYLOAD: &str = "state/pending/pve-01-node-pve-01-decommission.op";
const ORPHAN: &str = "local-lvm:vm-300-disk-0";
const SHARED_ORPHAN: &str = "shared-nfs:300/vm-300-disk-0.qcow2";

fn ssh_keygen() -> Option<PathBuf> {
    let found = castellan_sig::sign::find_ssh_keygen();
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("ssh-keygen is required for the decommission tests (install openssh-client)");
    }
    found
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        Env::with_seed("").await
    }

    /// The node of [`SEED`] plus `extra` seed tables.
    async fn with_seed(extra: &str) -> Env {
        let seed = format!("{SEED}\n{extra}");
        let mut cfg = SimConfig::new("pve-01", TOKEN, Seed::from_toml_str(&seed).unwrap());
        cfg.task_duration = Duration::from_millis(20);
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
        std::fs::write(d.join("desired.toml"), DESIRED).unwrap();
        let mut allowed = String::new();
        for who in ["alice", "bob"] {
            let st = Command::new(ssh_keygen().unwrap())
                .args(["-q", "-t", "ed25519", "-N", "", "-C", who, "-f"])
                .arg(d.join(who))
                .status()
                .unwrap();
            assert!(st.success());
            let public = std::fs::read_to_string(d.join(format!("{who}.pub"))).unwrap();
            allowed.push_str(&format!("{who}@example.com {public}"));
        }
        std::fs::write(d.join("allowed_signers"), allowed).unwrap();
        // No [thresholds]: a decommission needs two keys by default.
        std::fs::write(
            d.join("signers.toml"),
            "allowed_signers = \"allowed_signers\"\n[roles]\n\
             \"alice@example.com\" = \"operational\"\n\"bob@example.com\" = \"operational\"\n",
        )
        .unwrap();
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

    /// `who` signs the pending payload with plain `ssh-keygen -Y sign`; the signature goes
    /// into the inbox as signature number `n` (`.sig`, `.2.sig`), then the op itself.
    fn sign(&self, who: &str, n: u32) {
        let payload = self.path(PAYLOAD);
        assert!(payload.exists(), "the agent wrote the payload to sign");
        let copy = self.path(&format!("{who}.op"));
        std::fs::copy(&payload, &copy).unwrap();
        let _ = std::fs::remove_file(copy.with_extension("op.sig"));
        let st = Command::new(ssh_keygen().unwrap())
            .args(["-Y", "sign", "-n", "castellan-op", "-f"])
            .arg(self.path(who))
            .arg(&copy)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let inbox = self.path("state/inbox");
        let sig = if n == 1 {
            "decommission.op.sig".to_owned()
        } else {
            format!("decommission.op.{n}.sig")
        };
        std::fs::copy(copy.with_extension("op.sig"), inbox.join(sig)).unwrap();
        std::fs::copy(&payload, inbox.join("decommission.op")).unwrap();
    }

    /// Someone else changes VM 102's configuration through the node's API.
    async fn set_vm_102(&self, key: &str, value: &str) {
        let put = reqwest::Client::builder()
            .use_preconfigured_tls(
                castellan_pve::tls_client_config(&castellan_pve::TlsMode::System).unwrap(),
            )
            .build()
            .unwrap()
            .put(format!(
                "{}/api2/json/nodes/pve-01/qemu/102/config",
                self.sim.base_url()
            ))
            .header("Authorization", format!("PVEAPIToken={TOKEN}"))
            .form(&[(key, value)])
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{:?}", put.text().await);
    }

    fn count(&self, method: &str, path_has: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_has))
            .count()
    }

    fn guest_deletes(&self, kind: &str, vmid: u32) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/{kind}/{vmid}")))
            .count()
    }

    fn audit(&self) -> Vec<castellan_store::AuditRecord> {
        let store = Store::open_readonly(&self.path("state")).unwrap();
        store.audit_records(1, 100_000).unwrap()
    }
}

/// Everything the decommission must leave, whatever happened on the way: both guests gone,
/// each destroyed once with purge after exactly one safety backup that is recorded and on
/// the backup storage; the orphan of the node's own storage removed once; the shared
/// storage's orphan untouched; one intent, succeeded; the chain verifies.
fn check_decommissioned(env: &Env) {
    assert!(env.sim.guest(101).is_none() && env.sim.guest(102).is_none());
    assert_eq!(env.guest_deletes("lxc", 101), 1, "CT 101 destroyed once");
    assert_eq!(env.guest_deletes("qemu", 102), 1, "VM 102 destroyed once");
    let purged = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with("/lxc/101"))
        .all(|r| {
            r.params.get("purge").map(String::as_str) == Some("1")
                && r.params
                    .get("destroy-unreferenced-disks")
                    .map(String::as_str)
                    == Some("0")
        });
    assert!(
        purged,
        "guests are destroyed with purge, never with disks nobody named"
    );
    assert!(
        env.sim.volume(ORPHAN).is_none(),
        "the node's orphan is removed"
    );
    assert!(
        env.sim.volume(SHARED_ORPHAN).is_some(),
        "a shared storage's volume is never the node's to remove"
    );
    assert_eq!(
        env.count("POST", "/vzdump"),
        2,
        "one safety backup per guest"
    );
    let store = Store::open_readonly(&env.path("state")).unwrap();
    verify_chain(&store).unwrap();
    assert!(store.in_flight().unwrap().is_empty(), "nothing in flight");
    let node = castellan_core::Target::node("pve-01").unwrap();
    let intents = store.intents_for(&node).unwrap();
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0].state, IntentState::Succeeded, "{intents:#?}");
    assert!(intents[0].destructive);
    let backups = store.item_backups(intents[0].id).unwrap();
    assert_eq!(backups.len(), 2, "{backups:?}");
    for (guest, volume) in &backups {
        let (kind, vmid) = guest.as_guest().unwrap();
        assert!(
            volume.starts_with(&format!("local:backup/vzdump-{kind}-{vmid}-")),
            "{volume}"
        );
        assert!(
            env.sim.volume(volume).is_some(),
            "{volume} is on the storage"
        );
    }
    let mut destroyed = Vec::new();
    let mut taken = Vec::new();
    let mut removed = Vec::new();
    for r in env.audit() {
        match r.event {
            AuditEvent::GuestDestroyed { backup, .. } => {
                let guest = r.fields.target.clone().unwrap();
                assert_eq!(backup.as_ref(), backups.get(&guest), "{guest}");
                destroyed.push(guest.to_string());
            }
            AuditEvent::BackupTaken { volume, .. } => taken.push(volume),
            AuditEvent::VolumeRemoved { volume, .. } => removed.push(volume),
            _ => {}
        }
    }
    assert_eq!(
        destroyed,
        ["lxc/101", "qemu/102"],
        "each destroy audited once"
    );
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(removed, [ORPHAN], "the orphan's removal audited once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_decommissioned_only_with_two_keys_and_only_once() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new().await;
    // 1. Declared, not signed: pending; nothing sent, nothing backed up.
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("pve-01: decommission pending a signed op"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.count("DELETE", ""), 0);
    assert_eq!(env.count("POST", "/vzdump"), 0);
    // 2. Before anyone signs, the plan lists what goes: each guest, then the orphan with
    //    its size; never the shared storage's volume; two keys needed.
    let plan = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["plan", "--config"])
        .arg(env.path("agent.toml"))
        .output()
        .unwrap();
    let shown = text(&plan.stdout);
    assert!(shown.contains("decommission of 3 items"), "{shown}");
    assert!(
        shown.contains("removes CT 101 with its configured disks"),
        "{shown}"
    );
    assert!(
        shown.contains("removes VM 102 with its configured disks"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("removes {ORPHAN} (2GiB)")),
        "{shown}"
    );
    assert!(!shown.contains("shared-nfs"), "{shown}");
    assert!(shown.contains("needs 2 distinct signer keys"), "{shown}");
    // And what each guest takes with it: its disks with their sizes, its HA entry.
    assert!(
        shown.contains("takes CT 101: disk rootfs (8GiB)"),
        "{shown}"
    );
    assert!(shown.contains("takes VM 102: disk scsi0 (4GiB)"), "{shown}");
    assert!(
        shown.contains("takes CT 101: removed from every backup job and replication job that names it, and from HA"),
        "{shown}"
    );
    let show = Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(["op", "show"])
        .arg(env.path(PAYLOAD))
        .output()
        .unwrap();
    let shown = text(&show.stdout);
    assert!(
        shown.contains("removes:      CT 101 with its configured disks"),
        "{shown}"
    );
    assert!(
        shown.contains("signatures:   2 distinct keys by default"),
        "{shown}"
    );
    // 3. One key is not enough: still pending, the op kept for the second signature.
    env.sign("alice", 1);
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(env.count("DELETE", ""), 0, "nothing sent on one key");
    assert_eq!(env.count("POST", "/vzdump"), 0);
    assert!(env.path("state/inbox/decommission.op").exists());
    assert!(
        env.audit().iter().any(|r| matches!(
            &r.event,
            AuditEvent::OpRejected {
                reason: castellan_core::RejectReason::ThresholdNotMet,
                ..
            }
        )),
        "the short count is audited"
    );
    // 4. The same key twice still counts once.
    env.sign("alice", 2);
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        env.count("DELETE", ""),
        0,
        "one key signing twice is one key"
    );
    // 5. A second operator's key: carried out, converged.
    env.sign("bob", 2);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    check_decommissioned(&env);
    assert!(env.path("state/inbox/done/decommission.op").exists());
    // 6. Replayed, the op changes nothing.
    for f in [
        "decommission.op.sig",
        "decommission.op.2.sig",
        "decommission.op",
    ] {
        std::fs::copy(
            env.path(&format!("state/inbox/done/{f}")),
            env.path(&format!("state/inbox/{f}")),
        )
        .unwrap();
    }
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_decommissioned(&env);
}

/// A guest that changed after the operators signed is not destroyed: the op is refused as
/// stale before anything goes, and a fresh payload is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_changed_after_signing_stops_the_decommission_before_anything_goes() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new().await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    env.sign("alice", 1);
    env.sign("bob", 2);
    // Someone changes VM 102 meanwhile.
    env.set_vm_102("memory", "4096").await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(env.count("DELETE", ""), 0, "nothing destroyed");
    assert_eq!(env.count("POST", "/vzdump"), 0, "nothing backed up");
    assert!(env.sim.guest(101).is_some() && env.sim.guest(102).is_some());
    // The guest's digest is part of what was signed, so the signed op no longer matches
    // what the agent would do: refused, audited.
    assert!(
        env.audit().iter().any(|r| matches!(
            &r.event,
            AuditEvent::OpRejected {
                reason: castellan_core::RejectReason::BindingMismatch
                    | castellan_core::RejectReason::StalePrecondition,
                ..
            }
        )),
        "refused, audited"
    );
    // The payload offered now is bound to the guest as it is.
    let fresh = std::fs::read_to_string(env.path(PAYLOAD)).unwrap();
    let signed = std::fs::read_to_string(env.path("bob.op")).unwrap();
    assert_ne!(fresh, signed, "a new payload replaces the stale one");
}

async fn decommission_killed_at(step: &str) {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new().await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    env.sign("alice", 1);
    env.sign("bob", 2);
    castellan_testkit::kill_at_crashpoint(env.agent(), step);
    let out = env.run_agent();
    assert!(
        out.status.success(),
        "step {step}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    check_decommissioned(&env);
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_decommissioned(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_signatures_were_accepted() {
    decommission_killed_at("accepted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_intent_was_journaled() {
    decommission_killed_at("intent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_guest_was_brought_down() {
    decommission_killed_at("stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_safety_backup_was_recorded() {
    decommission_killed_at("backed_up").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_before_a_guest_is_destroyed() {
    decommission_killed_at("destroying").await;
}

/// Between the node's destroy and its record: the resumed op finds the guest gone and
/// records it so (`found_gone`), never destroying or auditing anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_a_guests_destroy_and_its_record() {
    decommission_killed_at("deleted").await;
}

/// The same between a volume's removal and its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_a_volumes_removal_and_its_record() {
    decommission_killed_at("volume_deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_guest_was_destroyed() {
    decommission_killed_at("destroyed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_before_a_volume_is_removed() {
    decommission_killed_at("removing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_volume_was_removed() {
    decommission_killed_at("removed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_outcome_was_recorded() {
    decommission_killed_at("terminal").await;
}

/// The node refuses to destroy a protected guest: the decommission stops there, recorded
/// failed and naming what it had removed before; nothing after it (the orphan volume) is
/// touched. The next plan names only what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_the_node_refuses_to_destroy_stops_the_decommission_there() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::new().await;
    env.set_vm_102("protection", "1").await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    env.sign("alice", 1);
    env.sign("bob", 2);
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(env.sim.guest(101).is_none(), "CT 101 went first");
    assert!(env.sim.guest(102).is_some(), "the protected VM stays");
    assert!(
        env.sim.volume(ORPHAN).is_some(),
        "nothing after the refusal is touched"
    );
    let store = Store::open_readonly(&env.path("state")).unwrap();
    let node = castellan_core::Target::node("pve-01").unwrap();
    let intents = store.intents_for(&node).unwrap();
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert_eq!(intents[0].state, IntentState::Failed, "{intents:#?}");
    let detail = format!("{:?}", intents[0].outcome);
    assert!(detail.contains("VM 102"), "{detail}");
    assert!(
        detail.contains("removed before it stopped: lxc/101"),
        "{detail}"
    );
    // What is left is proposed anew, bound to what is there now.
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(env.sim.guest(102).is_some());
    let payload = std::fs::read_to_string(env.path(PAYLOAD)).unwrap();
    assert!(payload.contains("qemu/102="), "{payload}");
    assert!(!payload.contains("lxc/101"), "{payload}");
}

/// A disk of a guest's vmid that its configuration does not name is not in its backup: it
/// never goes unnamed with the guest. On the node's own storage the next op names it (the
/// operators sign for it by name); on a shared storage it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_unnamed_disks_are_never_taken_along_unsigned() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::with_seed(
        "[[volume]]\nvolid = \"local-lvm:vm-101-disk-5\"\nsize = \"1G\"\n\n\
         [[volume]]\nvolid = \"shared-nfs:101/vm-101-disk-9.qcow2\"\nsize = \"5G\"\n",
    )
    .await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let first = std::fs::read_to_string(env.path(PAYLOAD)).unwrap();
    assert!(!first.contains("vm-101-disk-5"), "{first}");
    env.sign("alice", 1);
    env.sign("bob", 2);
    let out = env.run_agent();
    // The guests are gone; the orphan of 101 on the node's own storage is what is left,
    // proposed by name now that its guest is gone.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(env.sim.guest(101).is_none() && env.sim.guest(102).is_none());
    assert!(
        env.sim.volume("local-lvm:vm-101-disk-5").is_some(),
        "not taken along"
    );
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let second = std::fs::read_to_string(env.path(PAYLOAD)).unwrap();
    assert!(
        second.contains("local-lvm:vm-101-disk-5=1073741824"),
        "{second}"
    );
    assert!(!second.contains("guests"), "{second}");
    assert!(!second.contains("shared-nfs"), "{second}");
    env.sign("alice", 1);
    env.sign("bob", 2);
    let out = env.run_agent();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(env.sim.volume("local-lvm:vm-101-disk-5").is_none());
    assert!(
        env.sim
            .volume("shared-nfs:101/vm-101-disk-9.qcow2")
            .is_some(),
        "a shared storage is never the node's to empty"
    );
    assert!(env.sim.volume(SHARED_ORPHAN).is_some());
}

/// A guest a task holds locked (a backup running) when the signed op arrives: nothing is
/// started and the op is not spent (it is taken up again on the next pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_guest_holds_the_decommission_back_without_spending_the_op() {
    if ssh_keygen().is_none() {
        eprintln!("ssh-keygen not found; skipped outside CI");
        return;
    }
    let env = Env::with_seed(
        "[[guest]]\nvmid = 103\nkind = \"lxc\"\nstatus = \"stopped\"\nlock = \"backup\"\n\
         [guest.config]\nhostname = \"busy\"\nrootfs = \"local-lvm:vm-103-disk-0,size=1G\"\n",
    )
    .await;
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let payload = std::fs::read_to_string(env.path(PAYLOAD)).unwrap();
    assert!(payload.contains("lxc/103="), "{payload}");
    env.sign("alice", 1);
    env.sign("bob", 2);
    let out = env.run_agent();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("locked (backup)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        env.count("DELETE", ""),
        0,
        "nothing destroyed while 103 is locked"
    );
    assert_eq!(env.count("POST", "/vzdump"), 0);
    assert!(
        env.path("state/inbox/decommission.op").exists(),
        "the op is kept"
    );
    let store = Store::open_readonly(&env.path("state")).unwrap();
    let node = castellan_core::Target::node("pve-01").unwrap();
    assert!(
        store.intents_for(&node).unwrap().is_empty(),
        "nothing journaled"
    );
}
