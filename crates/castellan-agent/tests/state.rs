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
