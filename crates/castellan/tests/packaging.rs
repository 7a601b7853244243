//! What a Linux operator's package installs, checked against the real tools: the systemd
//! units (verified by `systemd-analyze verify`, and rated by `systemd-analyze security`
//! against a ceiling), the manual pages and the shell completions generated from the
//! command-line definition.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn castellan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `systemd-analyze`, or `None` outside CI when it is missing (under `CI=true` it must be
/// there: `cargo xtask test` installs it).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("systemd-analyze is required for the packaging tests (install systemd)");
    }
    found.then_some("systemd-analyze")
}

/// The unit, with its `ExecStart` pointed at the binary under test (what verify checks
/// exists), in a directory of its own.
fn unit_under_test(name: &str) -> (tempfile::TempDir, PathBuf) {
    let unit = std::fs::read_to_string(repo().join("packaging/systemd").join(name)).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/castellan "), "{name}");
    let unit = unit.replace(
        "/usr/bin/castellan ",
        &format!("{} ", env!("CARGO_BIN_EXE_castellan")),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, unit).unwrap();
    (dir, path)
}

/// Each unit is well formed, and `systemd-analyze security` rates it no worse than 2.0
/// ("OK" on its 0 to 10 exposure scale): its own transient user, a read-only system, no
/// capabilities, a system-call filter.
#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("systemd-analyze not found; skipped outside CI");
        return;
    };
    for name in ["castellan-agent.service", "castellan-hub.service"] {
        let (_dir, path) = unit_under_test(name);
        let out = Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let said = text(&out.stderr);
        // verify checks what it can; outside a booted system it may say so, but never that
        // the unit itself is wrong.
        for bad in [
            "Unknown key",
            "Unknown section",
            "Failed to parse",
            "bad-setting",
            "is not executable",
            "Missing",
        ] {
            assert!(!said.contains(bad), "{name}: {said}");
        }
        let text_of_unit = std::fs::read_to_string(&path).unwrap();
        for must in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "StateDirectory=",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(text_of_unit.contains(must), "{name} lacks {must}");
        }
        let out = Command::new(analyze)
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let report = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: exposure above 2.0\n{report}\n{}",
            text(&out.stderr)
        );
        assert!(report.contains("Overall exposure level"), "{report}");
    }
}

/// The manual pages: one for castellan and one per subcommand, as roff a `man` reads,
/// each naming its options; written fresh over old ones.
#[test]
fn manual_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = castellan(&["manpages", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "castellan.1",
        "castellan-agent.1",
        "castellan-plan.1",
        "castellan-hub.1",
        "castellan-op-sign.1",
        "castellan-signers-propose.1",
        "castellan-completions.1",
    ] {
        let roff = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}\nwritten: {}", text(&out.stdout)));
        assert!(roff.contains(".TH "), "{page}");
        assert!(text(&out.stdout).contains(page), "{page} listed");
    }
    let agent = std::fs::read_to_string(dir.path().join("castellan-agent.1")).unwrap();
    assert!(agent.contains("once"), "{agent}");
    assert!(agent.contains("accept\\-state\\-loss"), "{agent}");
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(dir.path().join("castellan.1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o644);
    // A link planted where a page goes is replaced, never written through.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::fs::remove_file(dir.path().join("castellan.1")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("castellan.1")).unwrap();
    let out = castellan(&["manpages", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(
        !std::fs::symlink_metadata(dir.path().join("castellan.1"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Where `man` is installed, it formats the page.
    if let Ok(out) = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("castellan-agent.1"))
        .env("MANWIDTH", "100")
        .output()
        && out.status.success()
    {
        assert!(
            text(&out.stdout).contains("--once"),
            "{}",
            text(&out.stdout)
        );
    }
}

/// Completion scripts for the shells operators use, naming the subcommands; an unknown
/// shell is refused with the list of known ones.
#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef castellan"),
        ("fish", "complete -c castellan"),
    ] {
        let out = castellan(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["agent", "plan", "signers", "manpages"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    let out = castellan(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bash"), "{}", text(&out.stderr));
}
