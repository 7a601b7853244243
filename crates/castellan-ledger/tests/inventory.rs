//! The inventory against a small, realistic ops repository (`tests/fixtures/ops-repo`) and
//! against generated edge cases.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use castellan_ledger::detect;
use castellan_ledger::inventory::{self, InventoryError, Scan};
use castellan_ledger::model::{
    ConfigKind, ControlTier, INVENTORY_STATUS, InventoryReport, Surface,
};
use castellan_ledger::schema::INVENTORY_SCHEMA;
use sha2::{Digest, Sha256};

const GENERATED_AT: &str = "2026-01-01T00:00:00+08:00";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops-repo")
}

fn fixture_report() -> InventoryReport {
    let scan = inventory::scan_repo(&fixture()).unwrap();
    inventory::report(scan, GENERATED_AT, "fixture")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn by_path<'a>(report: &'a InventoryReport, path: &str) -> &'a Surface {
    report
        .surfaces
        .iter()
        .find(|s| s.repo_source_path == path)
        .unwrap_or_else(|| panic!("no surface for {path}: {:#?}", report.surfaces))
}

/// `(path, kind, write_capable, expected_host_scope, service_scope)` for every surface.
const EXPECTED: [(&str, ConfigKind, bool, &str, &str); 10] = [
    (
        "ansible/roles/nginx",
        ConfigKind::AnsibleRole,
        true,
        "web",
        "nginx",
    ),
    (
        "ansible/site.yml",
        ConfigKind::AnsiblePlaybook,
        true,
        "all,web",
        "chronyd,nginx",
    ),
    (
        "hosts/pve1/compose/monitoring/docker-compose.yml",
        ConfigKind::DockerCompose,
        true,
        "pve1",
        "grafana,prometheus",
    ),
    (
        "hosts/web1/compose/app.yaml",
        ConfigKind::DockerCompose,
        true,
        "web1",
        "app,edge-firewall,redis",
    ),
    (
        "repair-bot/rules.yaml",
        ConfigKind::RepairBotConfig,
        true,
        "pve1,web1",
        "grafana,nginx",
    ),
    (
        "stacks/readonly/compose.yml",
        ConfigKind::DockerCompose,
        false,
        "unscoped",
        "docs",
    ),
    (
        "systemd/backup.service",
        ConfigKind::SystemdService,
        true,
        "unscoped",
        "backup.service",
    ),
    (
        "systemd/backup.timer",
        ConfigKind::SystemdTimer,
        true,
        "unscoped",
        "backup.service,backup.timer",
    ),
    (
        "systemd/docker.service.d/override.conf",
        ConfigKind::SystemdService,
        true,
        "unscoped",
        "docker.service",
    ),
    (
        "systemd/node-exporter.service",
        ConfigKind::SystemdService,
        false,
        "unscoped",
        "node-exporter.service",
    ),
];

#[test]
fn fixture_surfaces_one_by_one() {
    let report = fixture_report();
    for (path, kind, write, host, services) in EXPECTED {
        let s = by_path(&report, path);
        assert_eq!(s.config_kind, kind, "{path}");
        assert_eq!(s.write_capable_surface, write, "{path} write_capable");
        assert_eq!(s.expected_host_scope, host, "{path} host scope");
        assert_eq!(s.service_scope, services, "{path} service scope");
        assert_eq!(s.surface_id, format!("{kind}:{path}"));
        assert_eq!(s.control_tier, kind.control_tier());
        assert!(s.requires_live_evidence, "{path}");
    }
    assert_eq!(
        report.surfaces.len(),
        EXPECTED.len(),
        "{:#?}",
        report.surfaces
    );
    assert_eq!(
        by_path(&report, "systemd/backup.timer").control_tier,
        ControlTier::ScheduledJob
    );
    assert_eq!(
        by_path(&report, "hosts/pve1/compose/monitoring/docker-compose.yml").label,
        "compose: grafana, prometheus"
    );
    assert_eq!(
        by_path(&report, "systemd/backup.service").label,
        "Nightly restic backup"
    );
    assert_eq!(by_path(&report, "ansible/roles/nginx").label, "role: nginx");
}

#[test]
fn fixture_decoys_are_not_surfaces() {
    let report = fixture_report();
    for decoy in [
        ".github/workflows/ci.yml",
        "k8s/deployment.yaml",
        "README.md",
        ".env.example",
        "ci/gitlab-ci.yml",
        "scratch/broken-compose.yml",
        "rendered/docker-compose.yml",
        "scripts/check_hosts.py",
        ".gitignore",
        // Role members are the role's, never surfaces of their own.
        "ansible/roles/nginx/tasks/main.yml",
        "ansible/roles/nginx/handlers/main.yml",
        "ansible/roles/nginx/templates/nginx.conf.j2",
    ] {
        assert!(
            report.surfaces.iter().all(|s| s.repo_source_path != decoy),
            "{decoy} must not be a surface"
        );
    }
}

#[test]
fn fixture_summary() {
    let report = fixture_report();
    assert_eq!(report.schema_version, INVENTORY_SCHEMA);
    assert_eq!(report.status, INVENTORY_STATUS);
    let summary = &report.summary;
    // 22 files on disk; `rendered/` is ignored; `docs/topology.bin` is not UTF-8.
    assert_eq!(summary.scanned_file_count, 20);
    assert_eq!(summary.surface_count, 10);
    assert_eq!(summary.write_capable_surface_count, 8);
    assert_eq!(summary.live_evidence_required_count, 10);
    assert_eq!(summary.config_kind_counts[&ConfigKind::DockerCompose], 3);
    assert_eq!(summary.config_kind_counts[&ConfigKind::SystemdService], 3);
    assert_eq!(summary.config_kind_counts[&ConfigKind::SystemdTimer], 1);
    assert_eq!(summary.config_kind_counts[&ConfigKind::SystemdSocket], 0);
    assert_eq!(summary.config_kind_counts.len(), 8);
    let scan = inventory::scan_repo(&fixture()).unwrap();
    assert_eq!(scan.skipped_file_count, 1);
}

#[test]
fn fixture_report_snapshot() {
    let report = fixture_report();
    insta::assert_snapshot!("ops_repo_report", castellan_ledger::to_pretty_json(&report));
}

#[test]
fn hashes_and_line_counts_are_of_the_bytes() {
    let root = fixture();
    let report = fixture_report();
    for s in report
        .surfaces
        .iter()
        .filter(|s| s.config_kind != ConfigKind::AnsibleRole)
    {
        let bytes = std::fs::read(root.join(&s.repo_source_path)).unwrap();
        assert_eq!(s.repo_sha256, sha256_hex(&bytes), "{}", s.repo_source_path);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            s.source_line_count,
            text.lines().count() as u64,
            "{}",
            s.repo_source_path
        );
    }

    // The role: the sorted `path\0sha256\n` listing of its files.
    let role_dir = root.join("ansible/roles/nginx");
    let mut listing = Vec::new();
    let mut lines = 0;
    for rel in [
        "handlers/main.yml",
        "tasks/main.yml",
        "templates/nginx.conf.j2",
    ] {
        let bytes = std::fs::read(role_dir.join(rel)).unwrap();
        lines += String::from_utf8_lossy(&bytes).lines().count() as u64;
        listing.extend_from_slice(format!("{rel}\0{}\n", sha256_hex(&bytes)).as_bytes());
    }
    let role = by_path(&report, "ansible/roles/nginx");
    assert_eq!(role.repo_sha256, sha256_hex(&listing));
    assert_eq!(role.source_line_count, lines);
}

#[test]
fn scanning_is_deterministic() {
    let root = fixture();
    let first = inventory::report(inventory::scan_repo(&root).unwrap(), GENERATED_AT, "x");
    for threads in [1, 2, 8, 0] {
        let scan = inventory::scan_repo_with_threads(&root, threads).unwrap();
        let again = inventory::report(scan, GENERATED_AT, "x");
        assert_eq!(first, again, "threads = {threads}");
        assert_eq!(
            castellan_ledger::to_pretty_json(&first),
            castellan_ledger::to_pretty_json(&again)
        );
    }
    let paths: Vec<_> = first
        .surfaces
        .iter()
        .map(|s| (s.repo_source_path.clone(), s.surface_id.clone()))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}

#[test]
fn report_round_trips_through_json() {
    let report = fixture_report();
    let json = castellan_ledger::to_pretty_json(&report);
    let back: InventoryReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn roles_absorb_their_files_and_take_hosts_from_every_play() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "roles/app/tasks/main.yml", b"- name: unit\n  copy:\n    src: app.service\n    dest: /etc/systemd/system/app.service\n- systemd: name=app state=started\n");
    // A unit shipped by the role is the role's, not a surface of its own.
    write(
        root,
        "roles/app/files/app.service",
        b"[Service]\nExecStart=/usr/bin/app\n",
    );
    write(
        root,
        "roles/app/files/logo.png",
        b"\x89PNG\r\n\x1a\n\xff\xfe",
    );
    // Not a role: no task list.
    write(root, "roles/empty/tasks/main.yml", b"# nothing yet\n");
    write(
        root,
        "roles/empty/files/x.service",
        b"[Service]\nExecStart=/usr/bin/x\n",
    );
    write(root, "play1.yml", b"- hosts: db\n  roles: [app]\n");
    write(
        root,
        "play2.yml",
        b"- hosts: [api, db]\n  tasks:\n    - include_role:\n        name: app\n",
    );

    let scan = inventory::scan_repo(root).unwrap();
    let paths: Vec<_> = scan
        .surfaces
        .iter()
        .map(|s| s.surface_id.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "ansible_playbook:play1.yml",
            "ansible_playbook:play2.yml",
            "ansible_role:roles/app",
            "systemd_service:roles/empty/files/x.service",
        ]
    );
    let role = &scan.surfaces[2];
    assert_eq!(role.expected_host_scope, "api,db");
    assert_eq!(role.service_scope, "app");
    // The binary is skipped for classification but still in the role's listing.
    assert_eq!(scan.skipped_file_count, 1);
    let mut listing = Vec::new();
    for rel in ["files/app.service", "files/logo.png", "tasks/main.yml"] {
        let bytes = std::fs::read(root.join("roles/app").join(rel)).unwrap();
        listing.extend_from_slice(format!("{rel}\0{}\n", sha256_hex(&bytes)).as_bytes());
    }
    assert_eq!(role.repo_sha256, sha256_hex(&listing));
    assert_eq!(role.source_line_count, 5 + 2 + 3);
}

#[test]
fn large_files_and_symlinks_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut big = b"services:\n  a:\n    image: x\n".to_vec();
    big.resize(inventory::MAX_FILE_BYTES as usize + 1, b'#');
    write(root, "big.yml", &big);
    write(root, "small.yml", b"services:\n  a:\n    image: x\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("small.yml"), root.join("link.yml")).unwrap();
    let scan: Scan = inventory::scan_repo(root).unwrap();
    assert_eq!(scan.surfaces.len(), 1);
    assert_eq!(scan.surfaces[0].repo_source_path, "small.yml");
    assert_eq!(scan.scanned_file_count, 1);
    assert_eq!(scan.skipped_file_count, if cfg!(unix) { 2 } else { 1 });
}

#[test]
fn a_bad_root_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = inventory::scan_repo(&missing).unwrap_err();
    assert!(matches!(err, InventoryError::RootMissing { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");

    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = inventory::scan_repo(&file).unwrap_err();
    assert!(
        matches!(err, InventoryError::RootNotDirectory { .. }),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn an_unreadable_directory_is_fatal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "locked/compose.yml",
        b"services:\n  a:\n    image: x\n",
    );
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let result = inventory::scan_repo(root);
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Root ignores permissions; only assert when the directory really was unreadable.
    if std::fs::read_dir(root.join("locked")).is_ok() && result.is_ok() {
        return;
    }
    let err = result.unwrap_err();
    assert!(matches!(err, InventoryError::Walk { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn git_sha_is_unknown_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    // A temp dir may sit inside some checkout; only a fresh `git init` without commits is
    // certain to have no HEAD.
    let status = std::process::Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(dir.path())
        .status();
    if status.is_ok_and(|s| s.success()) {
        assert_eq!(inventory::git_short_sha(dir.path()), "unknown");
    }
    assert_eq!(
        inventory::git_short_sha(&dir.path().join("missing")),
        "unknown"
    );
}

#[test]
fn raw_payload_flags_pasted_configs() {
    let fixture = fixture();
    for (rel, label) in [
        (
            "hosts/pve1/compose/monitoring/docker-compose.yml",
            "raw_compose",
        ),
        ("systemd/backup.service", "raw_systemd_unit"),
        ("systemd/node-exporter.service", "raw_systemd_unit"),
        (".env.example", "raw_host_config:env"),
        ("k8s/deployment.yaml", "raw_host_config:kubernetes_manifest"),
        (
            "ansible/roles/nginx/tasks/main.yml",
            "raw_host_config:ansible_tasks",
        ),
        ("ansible/site.yml", "raw_host_config:ansible_playbook"),
        ("repair-bot/rules.yaml", "raw_host_config:repair_bot"),
    ] {
        let text = std::fs::read_to_string(fixture.join(rel)).unwrap();
        assert_eq!(detect::raw_payload(&text), Some(label), "{rel}");
    }
    let sshd = "# hardened\nPort 2222\nListenAddress 0.0.0.0\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp /usr/lib/openssh/sftp-server\n";
    assert_eq!(
        detect::raw_payload(sshd),
        Some("raw_host_config:sshd_config")
    );
    let fstab = "# /etc/fstab\nUUID=0a1b2c3d-0000-4000-8000-000000000001 /     ext4 errors=remount-ro 0 1\nUUID=0a1b2c3d-0000-4000-8000-000000000002 /boot ext4 defaults 0 2\nnas:/export/backups /mnt/backups nfs4 defaults,_netdev 0 0\n";
    assert_eq!(detect::raw_payload(fstab), Some("raw_host_config:fstab"));
    let iptables = "# Generated by iptables-save v1.8.9\n*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [120:9000]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    assert_eq!(
        detect::raw_payload(iptables),
        Some("raw_host_config:iptables")
    );
    let prose_with_unit = "The override we run is:\n\n```\n[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd://\n```\n\nNothing else changed.";
    assert_eq!(
        detect::raw_payload(prose_with_unit),
        Some("raw_systemd_unit")
    );
}

#[test]
fn raw_payload_leaves_references_and_prose_alone() {
    for text in [
        "docker-compose.yml@3f2a1bc",
        "hosts/pve1/compose/monitoring/docker-compose.yml@3f2a1bc (sha256:9f86d081884c7d65)",
        "The backup unit's [Service] section sets User=root; we will move it to a dedicated user.",
        "See [Service] and [Install] in backup.service; ExecStart= is unchanged since OPS-1234.",
        "https://git.example.internal/ops/blob/3f2a1bc/systemd/backup.service#L5-L9",
        r#"["docker-compose.yml@3f2a1bc", "systemd/backup.timer@3f2a1bc", "OPS-1234"]"#,
        "[\n  \"docker-compose.yml@3f2a1bc\",\n  \"systemd/backup.timer@3f2a1bc\",\n  \"OPS-1234\"\n]",
        "Restart window: Saturday 02:00-04:00 UTC+8.\nRollback owner: platform team (on-call).\nPost-check: grafana dashboards, route health, queue depth, logs.",
        "We checked the services on every host. Nothing listens on 0.0.0.0 except nginx.",
        "",
    ] {
        assert_eq!(detect::raw_payload(text), None, "{text}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Neither detector panics, whatever the text: YAML-, INI- and TOML-shaped noise.
    #[test]
    fn detectors_never_panic(
        text in "[a-zA-Z0-9 :\\-\\[\\]{}=&*!|>'\"\n\t#%@`,?.~<$\\\\]{0,300}",
        name in "[a-z./]{0,20}",
    ) {
        let _ = detect::classify(&name, &text);
        let _ = detect::raw_payload(&text);
    }

    /// Mutations of real surfaces: every fixture file with a byte range replaced.
    #[test]
    fn mutated_surfaces_never_panic(
        index in 0usize..EXPECTED.len(),
        at in 0usize..4096,
        len in 0usize..64,
        junk in "[ :\\-\\[\\]{}=&*\n\t#]{0,16}",
    ) {
        let (rel, ..) = EXPECTED[index];
        let path = fixture().join(rel);
        if path.is_file() {
            let mut text = std::fs::read_to_string(&path).unwrap();
            let at = at.min(text.len());
            let end = (at + len).min(text.len());
            if text.is_char_boundary(at) && text.is_char_boundary(end) {
                text.replace_range(at..end, &junk);
            }
            let _ = detect::classify(rel, &text);
            let _ = detect::raw_payload(&text);
        }
    }
}
