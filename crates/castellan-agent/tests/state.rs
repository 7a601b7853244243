//! The agent's own state: one agent per data directory, and what happens when the state
//! is lost or tampered with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use castellan_agent::lock_data_dir;

/// The exclusion holds on the directory itself: removing every file in it (a lock file
/// included) does not let a second agent in; only the first agent's exit does.
#[test]
fn one_agent_per_data_dir_even_when_its_files_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = lock_data_dir(&dir).unwrap();
    std::fs::write(dir.join("agent.lock"), "").unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let second = lock_data_dir(&dir).unwrap_err().to_string();
    assert!(second.contains("another agent holds its lock"), "{second}");
    // From another process too (flock is per open file description).
    let out = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&dir)
        .arg("true")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "flock(1) got the data directory's lock"
    );
    drop(first);
    lock_data_dir(&dir).expect("free again once the first agent is gone");
}

/// A data directory that is not a directory is refused with its name.
#[test]
fn a_file_where_the_data_dir_should_be_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, "").unwrap();
    let e = lock_data_dir(&file).unwrap_err().to_string();
    assert!(e.contains("data"), "{e}");
}

use castellan_agent::{AgentConfig, StartError, open_state};
use castellan_store::{AuditEvent, Store};

fn config(dir: &std::path::Path) -> AgentConfig {
    std::fs::write(
        dir.join("agent.toml"),
        "node = \"pve-01\"\ndata_dir = \"state\"\n[pve]\nurl = \"https://127.0.0.1:8006\"\n\
         token = \"root@pam!castellan=s3cret\"\ninsecure = true\n[desired]\nfile = \"desired.toml\"\n",
    )
    .unwrap();
    let c = AgentConfig::load(&dir.join("agent.toml")).unwrap();
    std::fs::create_dir_all(&c.data_dir).unwrap();
    c
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A new data directory gets a state with an epoch, named in state.id; reopening it
/// keeps the same state.
#[test]
fn a_new_state_has_an_epoch_named_in_state_id() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path());
    let store = open_state(&c, now()).unwrap();
    let epoch = store.epoch().unwrap().expect("an epoch");
    let id = std::fs::read_to_string(c.data_dir.join("state.id")).unwrap();
    assert_eq!(id.trim(), epoch.state_id);
    drop(store);
    let again = open_state(&c, now()).unwrap();
    assert_eq!(again.epoch().unwrap(), Some(epoch));
}

/// Each sign of earlier use refuses a missing database (and creates none); the operator
/// can accept the loss, audited, and the new state names the one it replaced.
#[test]
fn a_lost_database_is_refused_until_the_operator_accepts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path());
    let first = open_state(&c, now()).unwrap().epoch().unwrap().unwrap();
    let db = c.data_dir.join("castellan.db");
    let lose = || {
        for f in ["castellan.db", "castellan.db-wal", "castellan.db-shm"] {
            let _ = std::fs::remove_file(c.data_dir.join(f));
        }
    };
    lose();
    let e = open_state(&c, now()).unwrap_err();
    assert!(matches!(e, StartError::StateLost { .. }), "{e}");
    assert!(e.to_string().contains("state.id names state"), "{e}");
    assert!(!db.exists(), "a refusal created a database");

    // No state.id, but executed ops in the inbox: refused too.
    std::fs::remove_file(c.data_dir.join("state.id")).unwrap();
    std::fs::create_dir_all(c.inbox.join("done")).unwrap();
    std::fs::write(c.inbox.join("done/op"), "x").unwrap();
    let e = open_state(&c, now()).unwrap_err().to_string();
    assert!(e.contains("executed ops in inbox/done"), "{e}");
    std::fs::write(c.data_dir.join("state.id"), format!("{}\n", first.state_id)).unwrap();

    let mut accepting = c.clone();
    accepting.accept_state_loss = true;
    let store = open_state(&accepting, now()).unwrap();
    let epoch = store.epoch().unwrap().unwrap();
    assert_ne!(epoch.state_id, first.state_id);
    assert_eq!(epoch.replaced.as_deref(), Some(first.state_id.as_str()));
    assert!(epoch.created_at >= first.created_at);
    let events: Vec<AuditEvent> = store
        .audit_records(1, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AuditEvent::StateLossAccepted { evidence } if evidence.contains("state.id"))),
        "{events:?}"
    );
    drop(store);
    // Accepted once: from then on it is the state in force.
    open_state(&c, now()).unwrap();
}

/// A database swapped for another state's (or a state.id edited) is refused.
#[test]
fn a_foreign_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = config(&tmp.path().join("a").tap_mkdir());
    let b = config(&tmp.path().join("b").tap_mkdir());
    drop(open_state(&a, now()).unwrap());
    drop(open_state(&b, now()).unwrap());
    std::fs::copy(
        b.data_dir.join("castellan.db"),
        a.data_dir.join("castellan.db"),
    )
    .unwrap();
    let e = open_state(&a, now()).unwrap_err().to_string();
    assert!(e.contains("castellan.db holds state"), "{e}");
    std::fs::write(a.data_dir.join("state.id"), "not an id\n").unwrap();
    let e = open_state(&a, now()).unwrap_err().to_string();
    assert!(e.contains("state.id is not a state id"), "{e}");
    // Opening it read-only for audit is still possible.
    Store::open_readonly(&a.data_dir).unwrap();
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
