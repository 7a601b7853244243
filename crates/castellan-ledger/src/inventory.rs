//! The inventory: every host-service surface of an ops repository,
//! `host_service_config_inventory_v1`.
//!
//! [`scan_repo`] walks the repository the way git sees it — `.gitignore` (and
//! `.git/info/exclude`) honoured even without a `.git` directory, `.git` itself skipped,
//! hidden files included, symlinks not followed — and classifies every file by content with
//! [`crate::detect`], in parallel. The result does not depend on thread scheduling: files
//! are reassembled in path order and surfaces sorted by `repo_source_path`, then
//! `surface_id`.
//!
//! - Paths are repo-relative with `/`. A surface's `repo_sha256` is the SHA-256 of the
//!   file's bytes and `source_line_count` counts lines as Python's `str.splitlines` does.
//! - An **Ansible role** is one surface for the directory `…/roles/NAME` whose
//!   `tasks/main.yml` (or `.yaml`) is a task list. Every file under it belongs to the role
//!   and is not classified on its own (a unit template in `templates/` is the role's). Its
//!   `repo_sha256` is the SHA-256 of the sorted listing of `relative_path\0sha256hex\n` over
//!   its files (paths relative to the role directory), its line count their total, and its
//!   host scope the `hosts` of every play in the repo that applies it (`roles:`,
//!   `include_role`, `import_role`), sorted and joined with `,`.
//! - **Host scope** otherwise: the content's own hint (a play's `hosts`), else the path —
//!   the component after `hosts/`, `host_vars/`, `nodes/` or `machines/` (innermost wins;
//!   a file directly there gives its stem when it is `.yml`/`.yaml`/`.json`/`.toml`),
//!   `group_vars/NAME` → `group:NAME` — else `unscoped`.
//! - **Counts**: every regular file the walk yields is either scanned or skipped. Skipped:
//!   files over [`MAX_FILE_BYTES`], files that are not UTF-8 (a role still lists their
//!   hash), names that are not UTF-8, symlinks and special files.
//! - **Errors**: a missing root, a root that is not a directory, a directory that cannot be
//!   listed and a file that cannot be read are fatal ([`InventoryError`]): an inventory that
//!   silently missed part of the repository would be worse than none. A file that vanishes
//!   during the walk is simply not there.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::detect::{self, Classified, Detected};
use crate::model::{ConfigKind, INVENTORY_STATUS, InventoryReport, InventorySummary, Surface};
use crate::schema::INVENTORY_SCHEMA;

/// Files larger than this are skipped (and counted in `skipped_file_count`).
pub const MAX_FILE_BYTES: u64 = detect::MAX_TEXT_BYTES as u64;

/// Every config kind, so the summary lists zero counts too.
const ALL_KINDS: [ConfigKind; 8] = [
    ConfigKind::DockerCompose,
    ConfigKind::SystemdService,
    ConfigKind::SystemdTimer,
    ConfigKind::SystemdSocket,
    ConfigKind::SystemdUnit,
    ConfigKind::AnsibleRole,
    ConfigKind::AnsiblePlaybook,
    ConfigKind::RepairBotConfig,
];

/// Why a scan could not produce a complete inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The repository root does not exist.
    #[error("repository root {path} does not exist")]
    RootMissing {
        /// The root as given.
        path: PathBuf,
    },
    /// The repository root is a file (or something else), not a directory.
    #[error("repository root {path} is not a directory")]
    RootNotDirectory {
        /// The root as given.
        path: PathBuf,
    },
    /// The repository root could not be examined.
    #[error("cannot examine repository root {path}: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be listed (or a symlink loop was met).
    #[error("cannot walk {path}: {source}")]
    Walk {
        /// The path the walker was at.
        path: PathBuf,
        /// The walker's error.
        #[source]
        source: ignore::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl InventoryError {
    fn path(&self) -> &Path {
        match self {
            InventoryError::RootMissing { path }
            | InventoryError::RootNotDirectory { path }
            | InventoryError::Root { path, .. }
            | InventoryError::Walk { path, .. }
            | InventoryError::Read { path, .. } => path,
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The surfaces, sorted by `repo_source_path`, then `surface_id`.
    pub surfaces: Vec<Surface>,
    /// Files read and classified.
    pub scanned_file_count: u64,
    /// Files not examined: too large, not UTF-8, symlinks, special files.
    pub skipped_file_count: u64,
}

/// Walks the repository at `root` (`.gitignore` respected, `.git` skipped, symlinks not
/// followed), classifies and hashes its files in parallel and returns the surfaces sorted
/// by (`repo_source_path`, `surface_id`). The result is the same whatever the thread
/// scheduling.
pub fn scan_repo(root: &Path) -> Result<Scan, InventoryError> {
    scan_repo_with_threads(root, 0)
}

/// [`scan_repo`] with `threads` walker threads (`0`: one per core, at most 12). The result
/// does not depend on `threads`; benchmarks use `1` to measure the parallel speed-up.
pub fn scan_repo_with_threads(root: &Path, threads: usize) -> Result<Scan, InventoryError> {
    scan_repo_watched(root, threads, &|| {})
}

/// [`scan_repo_with_threads`], calling `on_file` (from the walker's threads) once for each
/// regular file the walk yields, scanned or skipped: how a caller shows progress on a
/// large repository.
pub fn scan_repo_watched(
    root: &Path,
    threads: usize,
    on_file: &(dyn Fn() + Sync),
) -> Result<Scan, InventoryError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(InventoryError::RootNotDirectory {
                path: root.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InventoryError::RootMissing {
                path: root.to_owned(),
            });
        }
        Err(source) => {
            return Err(InventoryError::Root {
                path: root.to_owned(),
                source,
            });
        }
    }

    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .threads(threads)
        .hidden(false)
        .follow_links(false)
        // The repository's own rules only: not the user's global excludes, not ripgrep's
        // `.ignore` files, not rules from directories above the root.
        .git_global(false)
        .git_ignore(true)
        .git_exclude(true)
        .ignore(false)
        .parents(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git");

    let (tx, rx) = mpsc::channel::<Result<FileRecord, InventoryError>>();
    builder.build_parallel().run(|| {
        let tx = tx.clone();
        Box::new(move |entry| {
            let result = match entry {
                Ok(entry) => visit(root, &entry),
                Err(source) => Err(InventoryError::Walk {
                    path: walk_error_path(&source).unwrap_or_else(|| root.to_owned()),
                    source,
                }),
            };
            match result {
                Ok(None) => ignore::WalkState::Continue,
                Ok(Some(record)) => {
                    on_file();
                    // The receiver outlives the walk; a send cannot fail while it runs.
                    let _ = tx.send(Ok(record));
                    ignore::WalkState::Continue
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    ignore::WalkState::Quit
                }
            }
        })
    });
    drop(tx);

    let mut records = Vec::new();
    let mut errors = Vec::new();
    for result in rx {
        match result {
            Ok(record) => records.push(record),
            Err(e) => errors.push(e),
        }
    }
    // Report the same error whichever thread met it first, as far as that is knowable.
    if let Some(error) = errors.into_iter().min_by(|a, b| a.path().cmp(b.path())) {
        return Err(error);
    }
    records.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(assemble(records))
}

/// One file's result from the parallel phase.
#[derive(Debug)]
struct FileRecord {
    /// Repo-relative, `/`-separated.
    rel: String,
    /// Whether it was read and classified (else skipped).
    scanned: bool,
    /// SHA-256 hex and line count, when it is a surface or may belong to a role.
    digest: Option<(String, u64)>,
    /// Its classification, if it is a surface on its own.
    classified: Option<Classified>,
    /// For a `roles/NAME/{tasks,handlers}/*.yml` task list: the services it manages.
    task_services: Option<BTreeSet<String>>,
}

impl FileRecord {
    fn skipped(rel: String) -> Self {
        FileRecord {
            rel,
            scanned: false,
            digest: None,
            classified: None,
            task_services: None,
        }
    }
}

fn walk_error_path(error: &ignore::Error) -> Option<PathBuf> {
    match error {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::Partial(errors) => errors.iter().find_map(walk_error_path),
        _ => None,
    }
}

/// The repo-relative `/` path of `path`, if every component is UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

fn visit(root: &Path, entry: &ignore::DirEntry) -> Result<Option<FileRecord>, InventoryError> {
    let Some(file_type) = entry.file_type() else {
        return Ok(None);
    };
    if file_type.is_dir() {
        return Ok(None);
    }
    let path = entry.path();
    let Some(rel) = relative(root, path) else {
        return Ok(Some(FileRecord::skipped(
            path.to_string_lossy().into_owned(),
        )));
    };
    if !file_type.is_file() {
        // Symlinks (not followed), sockets, FIFOs, devices.
        return Ok(Some(FileRecord::skipped(rel)));
    }
    let read_error = |source| InventoryError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(Some(FileRecord::skipped(rel)));
    }
    // Sized from the metadata; `take` still guards against a file that grows meanwhile.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Ok(Some(FileRecord::skipped(rel)));
    }
    let in_role_dir = role_candidates(&rel).next().is_some();
    match String::from_utf8(bytes) {
        Err(e) => {
            // Not text: not classified, but a role still lists its hash.
            let bytes = e.into_bytes();
            let digest = in_role_dir.then(|| {
                let lines = line_count(&String::from_utf8_lossy(&bytes));
                (sha256_hex(&bytes), lines)
            });
            Ok(Some(FileRecord {
                digest,
                ..FileRecord::skipped(rel)
            }))
        }
        Ok(text) => {
            let classified = detect::classify_full(&rel, &text);
            let task_services = if is_role_task_file(&rel) {
                detect::task_file_services(&text)
            } else {
                None
            };
            let digest = (classified.is_some() || in_role_dir)
                .then(|| (sha256_hex(text.as_bytes()), line_count(&text)));
            Ok(Some(FileRecord {
                rel,
                scanned: true,
                digest,
                classified,
                task_services,
            }))
        }
    }
}

/// The directories `…/roles/NAME` that `rel` lies inside, outermost first.
fn role_candidates(rel: &str) -> impl Iterator<Item = &str> {
    let mut ends = Vec::new();
    let mut offset = 0;
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        // `roles`, a name, and at least one more component below it.
        if *part == "roles" && i + 2 < parts.len() {
            ends.push(offset + part.len() + 1 + parts[i + 1].len());
        }
        offset += part.len() + 1;
    }
    ends.into_iter().map(move |end| &rel[..end])
}

/// Whether `rel` is `…/roles/NAME/{tasks,handlers}/FILE.y(a)ml`.
fn is_role_task_file(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let n = parts.len();
    n >= 4
        && parts[n - 4] == "roles"
        && matches!(parts[n - 2], "tasks" | "handlers")
        && (parts[n - 1].ends_with(".yml") || parts[n - 1].ends_with(".yaml"))
}

/// The role directory `rel` marks, if it is `…/roles/NAME/tasks/main.y(a)ml`.
fn role_marker(rel: &str) -> Option<&str> {
    let dir = rel
        .strip_suffix("/tasks/main.yml")
        .or_else(|| rel.strip_suffix("/tasks/main.yaml"))?;
    let parent = dir.rsplit_once('/').map_or("", |(p, _)| p);
    (parent == "roles" || parent.ends_with("/roles")).then_some(dir)
}

#[derive(Default)]
struct RoleAgg {
    /// (path relative to the role directory, sha256 hex)
    listing: Vec<(String, String)>,
    lines: u64,
    services: BTreeSet<String>,
}

/// The sequential phase: roles, host scopes, sorting.
fn assemble(records: Vec<FileRecord>) -> Scan {
    let scanned_file_count = records.iter().filter(|r| r.scanned).count() as u64;
    let skipped_file_count = records.len() as u64 - scanned_file_count;

    let role_dirs: BTreeSet<String> = records
        .iter()
        .filter(|r| r.task_services.is_some())
        .filter_map(|r| role_marker(&r.rel))
        .map(str::to_owned)
        .collect();

    let mut roles: BTreeMap<String, RoleAgg> = role_dirs
        .iter()
        .map(|d| (d.clone(), RoleAgg::default()))
        .collect();
    let mut role_hosts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut surfaces = Vec::new();
    for record in records {
        let owner = role_candidates(&record.rel)
            .find(|dir| role_dirs.contains(*dir))
            .map(str::to_owned);
        if let Some(dir) = owner {
            let Some(agg) = roles.get_mut(&dir) else {
                continue;
            };
            if let Some((sha, lines)) = record.digest {
                let inner = record.rel[dir.len() + 1..].to_owned();
                agg.listing.push((inner, sha));
                agg.lines += lines;
            }
            if let Some(services) = record.task_services {
                agg.services.extend(services);
            }
            continue;
        }
        let (Some(classified), Some((sha, lines))) = (record.classified, record.digest) else {
            continue;
        };
        for role_ref in &classified.role_refs {
            role_hosts
                .entry(role_ref.role.clone())
                .or_default()
                .extend(role_ref.hosts.iter().cloned());
        }
        let scope = classified
            .detected
            .host_hint
            .clone()
            .or_else(|| path_host_scope(&record.rel))
            .unwrap_or_else(|| "unscoped".to_owned());
        surfaces.push(surface(classified.detected, record.rel, sha, lines, scope));
    }

    for (dir, mut agg) in roles {
        let name = dir.rsplit('/').next().unwrap_or(&dir).to_owned();
        agg.listing.sort();
        let mut hasher = Sha256::new();
        for (path, sha) in &agg.listing {
            hasher.update(path.as_bytes());
            hasher.update(b"\0");
            hasher.update(sha.as_bytes());
            hasher.update(b"\n");
        }
        let sha = hex::encode(hasher.finalize());
        let scope = role_hosts
            .get(&name)
            .filter(|hosts| !hosts.is_empty())
            .map(|hosts| hosts.iter().cloned().collect::<Vec<_>>().join(","))
            .or_else(|| path_host_scope(&dir))
            .unwrap_or_else(|| "unscoped".to_owned());
        let detected = detect::role_detected(&name, &agg.services);
        surfaces.push(surface(detected, dir, sha, agg.lines, scope));
    }

    sort_surfaces(&mut surfaces);
    Scan {
        surfaces,
        scanned_file_count,
        skipped_file_count,
    }
}

fn sort_surfaces(surfaces: &mut [Surface]) {
    surfaces.sort_by(|a, b| {
        (&a.repo_source_path, &a.surface_id).cmp(&(&b.repo_source_path, &b.surface_id))
    });
}

fn surface(detected: Detected, path: String, sha: String, lines: u64, scope: String) -> Surface {
    let kind = detected.kind;
    Surface {
        surface_id: format!("{kind}:{path}"),
        label: detected.label,
        expected_host_scope: scope,
        config_kind: kind,
        service_scope: detected.service_scope,
        control_tier: kind.control_tier(),
        repo_source_path: path,
        repo_sha256: sha,
        source_line_count: lines,
        write_capable_surface: detected.write_capable,
        requires_live_evidence: requires_live_evidence(kind, detected.write_capable),
    }
}

/// Whether the owner must bring live evidence for a surface. Compose files, systemd units
/// and repair-bot configs live as files on hosts that can drift from the repo; an Ansible
/// surface needs it because it writes (and every Ansible surface is write-capable). So
/// today this is `true` for every surface; it stays a function of the kind so a future
/// repo-only kind can say otherwise.
fn requires_live_evidence(kind: ConfigKind, write_capable: bool) -> bool {
    match kind {
        ConfigKind::DockerCompose
        | ConfigKind::SystemdService
        | ConfigKind::SystemdTimer
        | ConfigKind::SystemdSocket
        | ConfigKind::SystemdUnit
        | ConfigKind::RepairBotConfig => true,
        ConfigKind::AnsibleRole | ConfigKind::AnsiblePlaybook => write_capable,
    }
}

/// The host scope a path implies: the component after `hosts/`, `host_vars/`, `nodes/` or
/// `machines/` (innermost wins), or `group:NAME` after `group_vars/`.
fn path_host_scope(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut found = None;
    for (i, part) in parts.iter().enumerate() {
        let Some(next) = parts.get(i + 1) else { break };
        let is_last = i + 2 == parts.len();
        let name = if is_last {
            // A file directly under the marker: `nodes/pve1.yml` names pve1.
            match next.rsplit_once('.') {
                Some((stem, "yml" | "yaml" | "json" | "toml")) if !stem.is_empty() => stem,
                _ => continue,
            }
        } else {
            next
        };
        match *part {
            "hosts" | "host_vars" | "nodes" | "machines" => found = Some(name.to_owned()),
            "group_vars" => found = Some(format!("group:{name}")),
            _ => {}
        }
    }
    found
}

/// Lines as Python's `len(text.splitlines())` counts them: `\n`, `\r`, `\r\n`, `\v`, `\f`,
/// `\x1c`–`\x1e`, `\u{85}`, `\u{2028}`, `\u{2029}` end a line; a final line needs no end.
pub fn line_count(text: &str) -> u64 {
    let mut count = 0u64;
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                count += 1;
                open = false;
            }
            '\n' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => {
                count += 1;
                open = false;
            }
            _ => open = true,
        }
    }
    count + u64::from(open)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the `host_service_config_inventory_v1` document from a scan.
pub fn report(scan: Scan, generated_at: &str, git_commit: &str) -> InventoryReport {
    let mut surfaces = scan.surfaces;
    sort_surfaces(&mut surfaces);
    let mut config_kind_counts: BTreeMap<ConfigKind, u64> =
        ALL_KINDS.iter().map(|k| (*k, 0)).collect();
    for s in &surfaces {
        *config_kind_counts.entry(s.config_kind).or_default() += 1;
    }
    InventoryReport {
        schema_version: INVENTORY_SCHEMA.to_owned(),
        generated_at: generated_at.to_owned(),
        git_commit: git_commit.to_owned(),
        status: INVENTORY_STATUS.to_owned(),
        summary: InventorySummary {
            scanned_file_count: scan.scanned_file_count,
            surface_count: surfaces.len() as u64,
            config_kind_counts,
            write_capable_surface_count: surfaces.iter().filter(|s| s.write_capable_surface).count()
                as u64,
            live_evidence_required_count: surfaces
                .iter()
                .filter(|s| s.requires_live_evidence)
                .count() as u64,
        },
        surfaces,
    }
}

/// `git rev-parse --short HEAD` in `root`, or `unknown` when git is missing, `root` is not
/// in a repository or it has no commit.
pub fn git_short_sha(root: &Path) -> String {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--short", "HEAD"])
        // Only `root` decides which repository this is.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !sha.is_empty() && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                sha
            } else {
                "unknown".to_owned()
            }
        }
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_like_python_splitlines() {
        for (text, n) in [
            ("", 0),
            ("a", 1),
            ("a\n", 1),
            ("\n", 1),
            ("a\nb", 2),
            ("a\r\nb\r\n", 2),
            ("a\rb", 2),
            ("a\n\nb", 3),
            ("a\u{2028}b\u{85}", 2),
            ("a\x0cb\x0bc", 3),
        ] {
            assert_eq!(line_count(text), n, "{text:?}");
        }
    }

    #[test]
    fn host_scope_from_path() {
        assert_eq!(
            path_host_scope("hosts/pve1/compose/a.yml").as_deref(),
            Some("pve1")
        );
        assert_eq!(
            path_host_scope("inventory/host_vars/web1/x.yml").as_deref(),
            Some("web1")
        );
        assert_eq!(
            path_host_scope("machines/a/nodes/b/c.service").as_deref(),
            Some("b")
        );
        assert_eq!(
            path_host_scope("group_vars/web/x.yml").as_deref(),
            Some("group:web")
        );
        assert_eq!(path_host_scope("nodes/pve2.yml").as_deref(), Some("pve2"));
        assert_eq!(path_host_scope("hosts/backup.service"), None);
        assert_eq!(path_host_scope("systemd/backup.service"), None);
        assert_eq!(path_host_scope("hosts"), None);
    }

    #[test]
    fn role_paths() {
        assert_eq!(
            role_candidates("a/roles/x/tasks/main.yml").collect::<Vec<_>>(),
            ["a/roles/x"]
        );
        assert_eq!(role_candidates("roles/x").count(), 0);
        assert_eq!(
            role_marker("ansible/roles/nginx/tasks/main.yml"),
            Some("ansible/roles/nginx")
        );
        assert_eq!(
            role_marker("roles/nginx/tasks/main.yaml"),
            Some("roles/nginx")
        );
        assert_eq!(role_marker("nginx/tasks/main.yml"), None);
        assert!(is_role_task_file("roles/n/handlers/main.yml"));
        assert!(!is_role_task_file("roles/n/templates/x.yml"));
    }
}
