//! The desired-state file: TOML, read in two stages (syntax into raw structs that refuse
//! unknown fields, then validation into [`DesiredState`]) so every problem is reported
//! with the guest and field it concerns, and nothing half-valid is ever returned.
//!
//! ```toml
//! node = "pve-01"
//!
//! [[guest]]
//! vmid = 101
//! kind = "lxc"            # "lxc" | "qemu"
//! run = "running"         # "running" | "stopped"; left out = unmanaged
//! cores = 2
//! memory = "2GiB"         # bytes as an integer, or a string with a binary unit
//! description = "web front end"
//! tags = ["web", "prod"]
//! restart = "manual"      # "manual" (report pending changes) | "reboot"
//! shutdown_timeout = 180  # seconds a clean shutdown may take (run = "stopped")
//! force_stop = false      # hard-stop after the timeout (can corrupt the guest's data)
//!
//! [[guest]]
//! vmid = 120
//! kind = "lxc"
//! run = "running"
//! # created when missing (benign): a backup restored to vmid 120 ...
//! source = { restore = "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst", storage = "local-lvm" }
//! # ... or a clone of a template: source = { clone = 9000, full = true, storage = "local-lvm" }
//! disks = { rootfs = "16GiB" }   # grown when smaller (never shrunk); 1024GiB == 1TiB
//!
//! [[guest]]
//! vmid = 102
//! kind = "lxc"
//! ensure = "absent"       # destroy it: destructive, so it waits for a signed op
//! purge = true            # also drop it from backup jobs, replication and HA
//! safety_backup = false   # no vzdump before it (the default takes one); part of what is signed
//!
//! [[guest]]
//! vmid = 103
//! kind = "qemu"
//! # restore a backup over the existing guest, once: destructive, waits for a signed op
//! restore_over = { archive = "local:backup/vzdump-qemu-103-2026_12_01-03_00_00.vma.zst", storage = "local-lvm" }
//!
//! [[container]]           # a Docker container on this host
//! name = "web"
//! image = "nginx:1.27"
//! command = ["nginx", "-g", "daemon off;"]   # left out = the image's
//! env = { TZ = "UTC" }
//! ports = ["127.0.0.1:8080:80/tcp"]          # [ip:]host:container[/tcp|udp]
//! labels = { team = "web" }
//! restart = "unless-stopped"  # "no" | "always" | "unless-stopped" | "on-failure"
//! volumes = { webdata = "/usr/share/nginx/html" }   # named volume = path inside
//! run = "running"         # "running" (the default) | "stopped"
//!
//! [[container]]
//! name = "old"
//! ensure = "absent"       # removed; if it holds a volume, only with a signed op
//!
//! [[volume]]
//! name = "olddata"
//! ensure = "absent"       # removing a volume always waits for a signed op
//!
//! [[wipe]]                # remove these disk volumes from a storage: destructive, signed,
//! storage = "local-lvm"   # and only while nothing references them
//! volumes = ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-1"]
//! ```
//!
//! A node taken out of service declares that alone:
//!
//! ```toml
//! node = "pve-01"
//! decommission = true     # every guest destroyed (each backed up first), then the
//!                         # unreferenced volumes of its own storages: signed ops, 2 keys
//! # decommission = { safety_backup = false }   # the same, without the backups
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use thiserror::Error;

use crate::container::{ContainerSpec, PortMapping, Restart};
use crate::model::{
    Decommission, DesiredContainers, DesiredGuest, DesiredRun, DesiredState, Ensure, GuestKind,
    GuestSource, RestartPolicy, RestoreOver, ShutdownPolicy, VMID_RANGE,
};
use crate::normalize::valid_tag;
use crate::units::{MIB, parse_size};

/// Longest clean shutdown a guest may be given, in seconds: nine minutes, inside the ten
/// the agent waits for any task, so a slow shutdown ends as the node ends it rather than
/// as the agent's wait running out.
pub const MAX_SHUTDOWN_TIMEOUT: u32 = 540;
/// Largest `cores` Proxmox VE accepts for a container or a VM.
pub const MAX_CORES: i64 = 8192;
/// Smallest `memory` Proxmox VE accepts, in MiB.
pub const MIN_MEMORY_MIB: u64 = 16;
/// Longest `description` Proxmox VE accepts.
pub const MAX_DESCRIPTION: usize = 8192;
/// Largest desired-state file accepted, so a runaway file cannot exhaust memory.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Why a desired-state document was refused. Nothing from a refused document is used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DesiredError {
    /// The document is larger than [`MAX_FILE_BYTES`].
    #[error("desired state is {0} bytes, more than the {MAX_FILE_BYTES} accepted")]
    TooLarge(usize),
    /// Not valid TOML, or a field of the wrong type or an unknown field.
    #[error("{0}")]
    Syntax(String),
    /// Well-formed but invalid: every problem found, in document order.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `node`, or `guest[i] (vmid N)`.
    pub at: String,
    /// The field concerned.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.field, self.message)
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid desired state ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    node: String,
    #[serde(default, rename = "guest")]
    guests: Vec<RawGuest>,
    #[serde(default, rename = "container")]
    containers: Vec<RawContainer>,
    #[serde(default, rename = "volume")]
    volumes: Vec<RawVolume>,
    #[serde(default, rename = "wipe")]
    wipes: Vec<RawWipe>,
    #[serde(default)]
    decommission: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWipe {
    storage: String,
    volumes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    name: String,
    image: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    restart: Option<Restart>,
    #[serde(default)]
    volumes: BTreeMap<String, String>,
    run: Option<RawRun>,
    #[serde(default)]
    ensure: Ensure,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    name: String,
    ensure: Ensure,
}

/// Parses a published port as Docker's CLI writes it: `[ip:]host:container[/tcp|udp]`.
pub fn parse_port(s: &str) -> Result<PortMapping, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, p @ ("tcp" | "udp"))) => (r, p),
        Some((_, p)) => return Err(format!("protocol {p:?} is not tcp or udp")),
        None => (s, "tcp"),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => (Some(*ip), *h, *c),
        _ => return Err("expected [ip:]host:container[/tcp|udp]".into()),
    };
    let port = |p: &str, what: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{what} port {p:?} is not a port number (1-65535)"))
    };
    if let Some(ip) = ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("{ip:?} is not an IP address"));
    }
    Ok(PortMapping {
        container_port: port(container, "container")?,
        protocol: protocol.to_owned(),
        host_port: port(host, "host")?,
        host_ip: ip.map(str::to_owned),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuest {
    vmid: i64,
    kind: GuestKind,
    #[serde(default)]
    run: Option<RawRun>,
    cores: Option<i64>,
    memory: Option<RawSize>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    #[serde(default)]
    restart: Option<RestartPolicy>,
    #[serde(default)]
    ensure: Ensure,
    purge: Option<bool>,
    shutdown_timeout: Option<i64>,
    force_stop: Option<bool>,
    source: Option<RawSource>,
    #[serde(default)]
    disks: BTreeMap<String, RawSize>,
    restore_over: Option<RawRestoreOver>,
    safety_backup: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestoreOver {
    archive: String,
    storage: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    restore: Option<String>,
    clone: Option<i64>,
    storage: Option<String>,
    full: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawRun {
    Running,
    Stopped,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

/// Parses and validates a desired-state document.
pub fn parse_desired(text: &str) -> Result<DesiredState, DesiredError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(DesiredError::TooLarge(text.len()));
    }
    let raw: RawDoc = toml::from_str(text).map_err(|e| DesiredError::Syntax(e.to_string()))?;
    let mut problems = Vec::new();
    if !crate::op::valid_host(&raw.node) {
        problems.push(Problem {
            at: "node".into(),
            field: "node",
            message: format!("{:?} is not a valid Proxmox VE node name", raw.node),
        });
    }
    let mut guests = BTreeMap::new();
    let mut first_at: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, g) in raw.guests.into_iter().enumerate() {
        let at = format!("guest[{i}] (vmid {})", g.vmid);
        let managed: Vec<&str> = [
            ("run", g.run.is_some()),
            ("cores", g.cores.is_some()),
            ("memory", g.memory.is_some()),
            ("description", g.description.is_some()),
            ("tags", g.tags.is_some()),
            ("restart", g.restart.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        let before = problems.len();
        let mut problem = |field: &'static str, message: String| {
            problems.push(Problem {
                at: at.clone(),
                field,
                message,
            })
        };
        if let Some(first) = first_at.get(&g.vmid) {
            problem(
                "vmid",
                format!("duplicate vmid, first declared at guest[{first}]"),
            );
        } else {
            first_at.insert(g.vmid, i);
        }
        let vmid = u32::try_from(g.vmid)
            .ok()
            .filter(|v| VMID_RANGE.contains(v))
            .unwrap_or_else(|| {
                problem(
                    "vmid",
                    format!(
                        "must be between {} and {}",
                        VMID_RANGE.start(),
                        VMID_RANGE.end()
                    ),
                );
                0
            });
        let cores = g.cores.and_then(|c| {
            if (1..=MAX_CORES).contains(&c) {
                u32::try_from(c).ok()
            } else {
                problem(
                    "cores",
                    format!("must be between 1 and {MAX_CORES}, got {c}"),
                );
                None
            }
        });
        let memory_bytes = match g.memory {
            None => None,
            Some(RawSize::Bytes(b)) if b < 0 => {
                problem("memory", format!("cannot be negative, got {b}"));
                None
            }
            Some(RawSize::Bytes(b)) => Some(b.unsigned_abs()),
            Some(RawSize::Text(t)) => match parse_size(&t) {
                Ok(b) => Some(b),
                Err(e) => {
                    problem("memory", format!("{e} in {t:?}"));
                    None
                }
            },
        };
        if let Some(b) = memory_bytes
            && b / MIB < MIN_MEMORY_MIB
        {
            problem(
                "memory",
                format!("must be at least {MIN_MEMORY_MIB}MiB, got {b} bytes"),
            );
        }
        if let Some(d) = &g.description
            && d.len() > MAX_DESCRIPTION
        {
            problem(
                "description",
                format!("longer than {MAX_DESCRIPTION} bytes ({})", d.len()),
            );
        }
        if let Some(tags) = &g.tags {
            for t in tags {
                if !valid_tag(t) {
                    problem(
                        "tags",
                        format!(
                            "{t:?} is not a valid tag (letters, digits, _ - + . and not starting with - + .)"
                        ),
                    );
                }
            }
        }
        if g.ensure == Ensure::Absent {
            if !managed.is_empty() {
                problem(
                    "ensure",
                    format!(
                        "an absent guest has no {}; remove {} or the ensure line",
                        managed.join(", "),
                        if managed.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
        } else if g.purge.is_some() {
            problem(
                "purge",
                "only applies to a guest with ensure = \"absent\"".to_owned(),
            );
        }
        let mut shutdown = ShutdownPolicy::default();
        if let Some(t) = g.shutdown_timeout {
            match u32::try_from(t)
                .ok()
                .filter(|t| (1..=MAX_SHUTDOWN_TIMEOUT).contains(t))
            {
                Some(t) => shutdown.timeout_secs = t,
                None => problem(
                    "shutdown_timeout",
                    format!("{t} is not a number of seconds between 1 and {MAX_SHUTDOWN_TIMEOUT}"),
                ),
            }
        }
        if let Some(f) = g.force_stop {
            shutdown.force_stop = f;
        }
        let source = g.source.and_then(|src| {
            if g.ensure == Ensure::Absent {
                problem(
                    "source",
                    "an absent guest is not provisioned; remove source or the ensure line"
                        .to_owned(),
                );
                return None;
            }
            guest_source(src, vmid, &mut problem)
        });
        let restore_over = g.restore_over.and_then(|r| {
            if g.ensure == Ensure::Absent {
                problem(
                    "restore_over",
                    "an absent guest is not restored; remove restore_over or the ensure line"
                        .to_owned(),
                );
                return None;
            }
            if !valid_volume_id(&r.archive) {
                problem(
                    "restore_over",
                    format!(
                        "archive {:?} is not a volume id (storage:backup/vzdump-...)",
                        r.archive
                    ),
                );
                return None;
            }
            if let Some(s) = r.storage.as_deref().filter(|s| !valid_storage_id(s)) {
                problem(
                    "restore_over",
                    format!("storage {s:?} is not a Proxmox VE storage id"),
                );
                return None;
            }
            Some(RestoreOver {
                archive: r.archive,
                storage: r.storage,
            })
        });
        if g.safety_backup.is_some() && g.ensure != Ensure::Absent && restore_over.is_none() {
            problem(
                "safety_backup",
                "only applies to a guest with ensure = \"absent\" or a restore_over".to_owned(),
            );
        }
        let mut disks = BTreeMap::new();
        if g.ensure == Ensure::Absent && !g.disks.is_empty() {
            problem(
                "disks",
                "an absent guest has no disks to grow; remove disks or the ensure line".to_owned(),
            );
        }
        for (key, size) in g.disks {
            if !disk_key(g.kind, &key) {
                problem(
                    "disks",
                    format!(
                        "{key:?} is not a disk a {} can grow ({})",
                        g.kind.noun(),
                        match g.kind {
                            GuestKind::Lxc => "rootfs or mp0 to mp255",
                            GuestKind::Qemu => "scsi0-30, virtio0-15, sata0-5 or ide0-3",
                        }
                    ),
                );
                continue;
            }
            let bytes = match size {
                RawSize::Bytes(b) => {
                    u64::try_from(b).map_err(|_| format!("cannot be negative, got {b}"))
                }
                RawSize::Text(t) => parse_size(&t).map_err(|e| format!("{e} in {t:?}")),
            };
            match bytes {
                Ok(b) if b == 0 || !b.is_multiple_of(1024) => problem(
                    "disks",
                    format!(
                        "{key}: a disk size is a whole number of KiB, at least 1KiB, got {b} bytes"
                    ),
                ),
                Ok(b) => {
                    disks.insert(key, b);
                }
                Err(e) => problem("disks", format!("{key}: {e}")),
            }
        }
        if problems.len() == before {
            let run = match g.run {
                None => DesiredRun::Unspecified,
                Some(RawRun::Running) => DesiredRun::Running,
                Some(RawRun::Stopped) => DesiredRun::Stopped,
            };
            guests.insert(
                vmid,
                DesiredGuest {
                    vmid,
                    kind: g.kind,
                    run,
                    cores,
                    memory_bytes,
                    description: g.description,
                    tags: g.tags,
                    restart: g.restart.unwrap_or_default(),
                    ensure: g.ensure,
                    purge: g.purge.unwrap_or(false),
                    shutdown,
                    source,
                    disks,
                    restore_over,
                    safety_backup: g.safety_backup.unwrap_or(true),
                },
            );
        }
    }
    let containers = containers(raw.containers, raw.volumes, &mut problems);
    let wipes = wipes(raw.wipes, &mut problems);
    let decommission = raw
        .decommission
        .and_then(|v| decommission(&v, &mut problems));
    if decommission.is_some() {
        let declared = [
            ("guest", guests.len()),
            (
                "container",
                containers.declared.len() + containers.absent.len(),
            ),
            ("volume", containers.absent_volumes.len()),
            ("wipe", wipes.len()),
        ];
        for (what, n) in declared.into_iter().filter(|(_, n)| *n > 0) {
            problems.push(Problem {
                at: "decommission".into(),
                field: "decommission",
                message: format!(
                    "a node being decommissioned declares nothing else, but {n} [[{what}]] table{} declared",
                    if n == 1 { " is" } else { "s are" }
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(DesiredState {
            node: raw.node,
            guests,
            containers,
            wipes,
            decommission,
        })
    } else {
        Err(DesiredError::Invalid(problems))
    }
}

/// Validates `decommission`: `true`, `false`, or a table of its options.
fn decommission(value: &toml::Value, problems: &mut Vec<Problem>) -> Option<Decommission> {
    let mut problem = |message: String| {
        problems.push(Problem {
            at: "decommission".into(),
            field: "decommission",
            message,
        });
    };
    match value {
        toml::Value::Boolean(true) => Some(Decommission {
            safety_backup: true,
        }),
        toml::Value::Boolean(false) => None,
        toml::Value::Table(t) => {
            let mut safety_backup = true;
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("safety_backup", toml::Value::Boolean(b)) => safety_backup = *b,
                    ("safety_backup", other) => problem(format!(
                        "safety_backup is true or false, not {}",
                        other.type_str()
                    )),
                    (other, _) => problem(format!(
                        "unknown field {other:?}; a decommission table takes only safety_backup"
                    )),
                }
            }
            Some(Decommission { safety_backup })
        }
        other => {
            problem(format!(
                "decommission is true, false or a table ({{ safety_backup = false }}), not {}",
                other.type_str()
            ));
            None
        }
    }
}

/// Validates the `[[wipe]]` tables: a storage id, once; volume ids of that storage, each
/// once, at most [`crate::wipe::MAX_WIPE_VOLUMES`].
fn wipes(
    raw: Vec<RawWipe>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (i, w) in raw.into_iter().enumerate() {
        let at = format!("wipe[{i}] (storage {:?})", w.storage);
        let mut problem = |field: &'static str, message: String| {
            problems.push(Problem {
                at: at.clone(),
                field,
                message,
            });
        };
        if !valid_storage_id(&w.storage) {
            problem("storage", "not a Proxmox VE storage id".to_owned());
            continue;
        }
        if out.contains_key(&w.storage) {
            problem(
                "storage",
                "a second wipe of the same storage; list every volume in one".to_owned(),
            );
            continue;
        }
        if w.volumes.is_empty() {
            problem("volumes", "names no volume".to_owned());
            continue;
        }
        if w.volumes.len() > crate::wipe::MAX_WIPE_VOLUMES {
            problem(
                "volumes",
                format!(
                    "{} volumes; one wipe names at most {}",
                    w.volumes.len(),
                    crate::wipe::MAX_WIPE_VOLUMES
                ),
            );
            continue;
        }
        let prefix = format!("{}:", w.storage);
        let mut set = std::collections::BTreeSet::new();
        let mut ok = true;
        for v in &w.volumes {
            if !valid_volume_id(v) || !v.starts_with(&prefix) {
                problem(
                    "volumes",
                    format!(
                        "{v:?} is not a volume id of storage {} ({prefix}...)",
                        w.storage
                    ),
                );
                ok = false;
            } else if !set.insert(v.clone()) {
                problem("volumes", format!("{v} is named twice"));
                ok = false;
            }
        }
        if ok {
            out.insert(w.storage, set);
        }
    }
    out
}

/// Whether `key` names a disk of a `kind` guest that can be grown: an LXC container's
/// `rootfs` and mount points, a VM's SCSI, VirtIO, SATA and IDE disks (Proxmox VE's
/// ranges; EFI and TPM state disks have fixed sizes).
pub fn disk_key(kind: GuestKind, key: &str) -> bool {
    if kind == GuestKind::Lxc && key == "rootfs" {
        return true;
    }
    let split = key.find(|c: char| c.is_ascii_digit()).unwrap_or(key.len());
    let (base, index) = key.split_at(split);
    let Ok(n) = index.parse::<u32>() else {
        return false;
    };
    if index.len() > 1 && index.starts_with('0') {
        return false;
    }
    let max = match (kind, base) {
        (GuestKind::Lxc, "mp") => 255,
        (GuestKind::Qemu, "scsi") => 30,
        (GuestKind::Qemu, "virtio") => 15,
        (GuestKind::Qemu, "sata") => 5,
        (GuestKind::Qemu, "ide") => 3,
        _ => return false,
    };
    n <= max
}

/// Whether `id` is a Proxmox VE storage id (`pve-storage-id`: a letter, then letters,
/// digits, `-`, `_` and `.`, ending in a letter or digit).
pub fn valid_storage_id(id: &str) -> bool {
    let b = id.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic())
        && matches!(b.last(), Some(c) if c.is_ascii_alphanumeric())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.len() <= 64
}

/// Whether `volid` names a backup volume as Proxmox VE writes one: `storage:path`,
/// with a storage id and a path of printable characters without spaces, `..` segments
/// or a leading `/`.
pub fn valid_volume_id(volid: &str) -> bool {
    let Some((storage, path)) = volid.split_once(':') else {
        return false;
    };
    valid_storage_id(storage)
        && !path.is_empty()
        && path.len() <= 255
        && !path.starts_with('/')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "..")
        && path.bytes().all(|c| c.is_ascii_graphic())
}

/// Validates a guest's `source`.
fn guest_source(
    src: RawSource,
    vmid: u32,
    problem: &mut impl FnMut(&'static str, String),
) -> Option<GuestSource> {
    if let Some(s) = &src.storage
        && !valid_storage_id(s)
    {
        problem(
            "source",
            format!("storage {s:?} is not a Proxmox VE storage id"),
        );
        return None;
    }
    match (src.restore, src.clone) {
        (Some(archive), None) => {
            if src.full.is_some() {
                problem(
                    "source",
                    "full applies to a clone, not to a restore".to_owned(),
                );
                return None;
            }
            if !valid_volume_id(&archive) {
                problem(
                    "source",
                    format!("restore {archive:?} is not a volume id (storage:backup/vzdump-...)"),
                );
                return None;
            }
            Some(GuestSource::Restore {
                archive,
                storage: src.storage,
            })
        }
        (None, Some(t)) => {
            let template = u32::try_from(t).ok().filter(|v| VMID_RANGE.contains(v));
            match template {
                Some(template) if template != vmid => Some(GuestSource::Clone {
                    template,
                    storage: src.storage,
                    full: src.full,
                }),
                Some(_) => {
                    problem("source", "a guest cannot be cloned from itself".to_owned());
                    None
                }
                None => {
                    problem(
                        "source",
                        format!(
                            "clone {t} is not a vmid between {} and {}",
                            VMID_RANGE.start(),
                            VMID_RANGE.end()
                        ),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            problem(
                "source",
                "give either restore or clone, not both".to_owned(),
            );
            None
        }
        (None, None) => {
            problem(
                "source",
                "give restore = \"<backup volume>\" or clone = <template vmid>".to_owned(),
            );
            None
        }
    }
}

/// Validates the `[[container]]` and `[[volume]]` tables.
fn containers(
    raw: Vec<RawContainer>,
    volumes: Vec<RawVolume>,
    problems: &mut Vec<Problem>,
) -> DesiredContainers {
    let mut out = DesiredContainers::default();
    let mut first_at: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("container[{i}] ({})", c.name);
        let before = problems.len();
        let mut problem = |field: &'static str, message: String| {
            problems.push(Problem {
                at: at.clone(),
                field,
                message,
            })
        };
        if let Some(first) = first_at.get(&c.name) {
            problem(
                "name",
                format!("duplicate name, first declared at container[{first}]"),
            );
        } else {
            first_at.insert(c.name.clone(), i);
        }
        if c.ensure == Ensure::Absent {
            let declared: Vec<&str> = [
                ("image", c.image.is_some()),
                ("command", c.command.is_some()),
                ("env", !c.env.is_empty()),
                ("ports", !c.ports.is_empty()),
                ("labels", !c.labels.is_empty()),
                ("restart", c.restart.is_some()),
                ("volumes", !c.volumes.is_empty()),
                ("run", c.run.is_some()),
            ]
            .into_iter()
            .filter_map(|(f, set)| set.then_some(f))
            .collect();
            if !declared.is_empty() {
                problem(
                    "ensure",
                    format!("an absent container has no {}", declared.join(", ")),
                );
            }
            if !crate::container::valid_name(&c.name) {
                problem("name", "not a Docker container name".into());
            }
            if problems.len() == before {
                out.absent.insert(c.name);
            }
            continue;
        }
        let Some(image) = c.image else {
            problem("image", "a container needs an image".into());
            continue;
        };
        let mut ports = Vec::new();
        for p in &c.ports {
            match parse_port(p) {
                Ok(m) => ports.push(m),
                Err(e) => problem("ports", format!("{p:?}: {e}")),
            }
        }
        for path in c.volumes.values() {
            if !path.starts_with('/') {
                problem("volumes", format!("{path:?} is not an absolute path"));
            }
        }
        let spec = ContainerSpec {
            name: c.name,
            image,
            command: c.command,
            env: c.env,
            ports,
            labels: c.labels,
            restart: c.restart.unwrap_or_default(),
            volumes: c.volumes,
            running: !matches!(c.run, Some(RawRun::Stopped)),
        };
        if let Err(e) = spec.validate() {
            problem("container", e.to_string());
        }
        if problems.len() == before {
            out.declared.insert(spec.name.clone(), spec);
        }
    }
    for (i, v) in volumes.into_iter().enumerate() {
        let mut problem = |field: &'static str, message: String| {
            problems.push(Problem {
                at: format!("volume[{i}] ({})", v.name),
                field,
                message,
            })
        };
        if v.ensure != Ensure::Absent {
            problem(
                "ensure",
                "only ensure = \"absent\" is declared for a volume (a container's volumes are made with it)".into(),
            );
        } else if !crate::container::valid_name(&v.name) {
            problem("name", "not a Docker volume name".into());
        } else if out
            .declared
            .values()
            .any(|c| c.volumes.contains_key(&v.name))
        {
            problem("ensure", "a declared container mounts this volume".into());
        } else {
            out.absent_volumes.insert(v.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn full_document() {
        let d = parse_desired(
            r#"
node = "pve-01"
[[guest]]
vmid = 101
kind = "lxc"
run = "running"
cores = 2
memory = "2GiB"
description = "web"
tags = ["web", "prod"]

[[guest]]
vmid = 200
kind = "qemu"
memory = 1073741824
restart = "reboot"
"#,
        )
        .expect("valid");
        assert_eq!(d.node, "pve-01");
        let g = &d.guests[&101];
        assert_eq!(g.kind, GuestKind::Lxc);
        assert_eq!(g.run, DesiredRun::Running);
        assert_eq!(g.cores, Some(2));
        assert_eq!(g.memory_bytes, Some(2 << 30));
        assert_eq!(
            g.tags.as_deref(),
            Some(&["web".to_string(), "prod".into()][..])
        );
        let g = &d.guests[&200];
        assert_eq!(g.run, DesiredRun::Unspecified);
        assert_eq!(g.cores, None);
        assert_eq!(g.memory_bytes, Some(1 << 30));
        assert_eq!(g.restart, RestartPolicy::Reboot);
    }

    fn error(text: &str) -> String {
        parse_desired(text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let cases = [
            ("node = \"pve-01\"\n[[guest]\n", "line 2, column 9"),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncolour = \"red\"\n",
                "unknown field `colour`",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = -2\n",
                "guest[0] (vmid 101): cores: must be between 1 and 8192, got -2",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\n[[guest]]\nvmid = 101\nkind = \"qemu\"\n",
                "guest[1] (vmid 101): vmid: duplicate vmid, first declared at guest[0]",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 5\nkind = \"lxc\"\n",
                "guest[0] (vmid 5): vmid: must be between 100 and 999999999",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"vm\"\n",
                "unknown variant `vm`, expected `lxc` or `qemu`",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nmemory = \"2GB\"\n",
                "memory: ambiguous unit \"GB\"",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nmemory = 1024\n",
                "memory: must be at least 16MiB, got 1024 bytes",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ntags = [\"ok\", \"not ok\"]\n",
                "tags: \"not ok\" is not a valid tag",
            ),
            (
                "node = \"pve 01\"\n",
                "node: node: \"pve 01\" is not a valid Proxmox VE node name",
            ),
            (
                "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"paused\"\n",
                "unknown variant `paused`",
            ),
            (
                "[[guest]]\nvmid = 101\nkind = \"lxc\"\n",
                "missing field `node`",
            ),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(
                got.contains(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn decommission_stands_alone() {
        let d = parse_desired("node = \"pve-01\"\ndecommission = true\n").unwrap_or_default();
        assert_eq!(
            d.decommission,
            Some(Decommission {
                safety_backup: true
            })
        );
        let d = parse_desired("node = \"pve-01\"\ndecommission = { safety_backup = false }\n")
            .unwrap_or_default();
        assert_eq!(
            d.decommission,
            Some(Decommission {
                safety_backup: false
            })
        );
        let d = parse_desired("node = \"pve-01\"\ndecommission = false\n").unwrap_or_default();
        assert_eq!(d.decommission, None);
        for (text, why) in [
            (
                "decommission = \"yes\"",
                "decommission is true, false or a table",
            ),
            (
                "decommission = { backup = false }",
                "unknown field \"backup\"",
            ),
            (
                "decommission = { safety_backup = 0 }",
                "safety_backup is true or false",
            ),
            (
                "decommission = true\n[[guest]]\nvmid = 101\nkind = \"lxc\"",
                "declares nothing else, but 1 [[guest]] table is declared",
            ),
            (
                "decommission = true\n[[wipe]]\nstorage = \"local\"\nvolumes = [\"local:a\"]",
                "1 [[wipe]] table is declared",
            ),
        ] {
            let e = parse_desired(&format!("node = \"pve-01\"\n{text}\n"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("decommission: decommission:"), "{e}");
        }
    }

    #[test]
    fn wipes() {
        let d = parse_desired(
            "node = \"pve-01\"\n[[wipe]]\nstorage = \"local-lvm\"\n\
             volumes = [\"local-lvm:vm-105-disk-1\", \"local-lvm:vm-105-disk-0\"]\n",
        )
        .expect("valid");
        assert_eq!(
            d.wipes["local-lvm"].iter().collect::<Vec<_>>(),
            ["local-lvm:vm-105-disk-0", "local-lvm:vm-105-disk-1"]
        );
        for (body, want) in [
            (
                "storage = \"a b\"\nvolumes = [\"x:y\"]",
                "storage: not a Proxmox VE storage id",
            ),
            (
                "storage = \"local\"\nvolumes = []",
                "volumes: names no volume",
            ),
            (
                "storage = \"local\"\nvolumes = [\"local-lvm:vm-1-disk-0\"]",
                "is not a volume id of storage local",
            ),
            (
                "storage = \"local\"\nvolumes = [\"local:a\", \"local:a\"]",
                "local:a is named twice",
            ),
            (
                "storage = \"local\"\nvolumes = [\"local:a\"]\nforce = true",
                "unknown field `force`",
            ),
        ] {
            let text = format!("node = \"pve-01\"\n[[wipe]]\n{body}\n");
            let e = parse_desired(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{body}: {e}");
        }
        let twice = "node = \"pve-01\"\n[[wipe]]\nstorage = \"local\"\nvolumes = [\"local:a\"]\n\
                     [[wipe]]\nstorage = \"local\"\nvolumes = [\"local:b\"]\n";
        let e = parse_desired(twice)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("a second wipe of the same storage"), "{e}");
    }

    #[test]
    fn sources_and_disks() {
        let d = parse_desired(
            r#"
node = "pve-01"
[[guest]]
vmid = 120
kind = "lxc"
source = { restore = "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst", storage = "local-lvm" }
disks = { rootfs = "16GiB", mp0 = 1099511627776 }

[[guest]]
vmid = 130
kind = "qemu"
source = { clone = 9000, full = true }
disks = { scsi0 = "1024G" }
"#,
        )
        .expect("valid");
        assert_eq!(
            d.guests[&120].source,
            Some(GuestSource::Restore {
                archive: "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst".into(),
                storage: Some("local-lvm".into()),
            })
        );
        assert_eq!(d.guests[&120].disks["rootfs"], 16 << 30);
        assert_eq!(d.guests[&120].disks["mp0"], 1 << 40);
        assert_eq!(
            d.guests[&130].source,
            Some(GuestSource::Clone {
                template: 9000,
                storage: None,
                full: Some(true),
            })
        );
        assert_eq!(d.guests[&130].disks["scsi0"], 1 << 40, "1024G is 1T");
        let d = parse_desired(
            "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"qemu\"\nsafety_backup = false\n\
             restore_over = { archive = \"pbs:backup/vm/101/2026-12-01T03:00:00Z\", storage = \"local-lvm\" }\n",
        )
        .expect("valid");
        assert_eq!(
            d.guests[&101].restore_over,
            Some(RestoreOver {
                archive: "pbs:backup/vm/101/2026-12-01T03:00:00Z".into(),
                storage: Some("local-lvm".into()),
            })
        );
        assert!(!d.guests[&101].safety_backup);
        let head = "node = \"pve-01\"\n[[guest]]\nvmid = 120\n";
        let cases = [
            (
                "kind = \"lxc\"\nrestore_over = { archive = \"../x\" }\n",
                "restore_over: archive \"../x\" is not a volume id",
            ),
            (
                "kind = \"lxc\"\nrestore_over = { archive = \"local:backup/a.tar\", storage = \"a b\" }\n",
                "restore_over: storage \"a b\" is not a Proxmox VE storage id",
            ),
            (
                "kind = \"lxc\"\nensure = \"absent\"\nrestore_over = { archive = \"local:backup/a.tar\" }\n",
                "an absent guest is not restored",
            ),
            (
                "kind = \"lxc\"\nrestore_over = { archive = \"local:backup/a.tar\", force = 1 }\n",
                "unknown field `force`",
            ),
            (
                "kind = \"lxc\"\nsafety_backup = false\n",
                "safety_backup: only applies to a guest with ensure = \"absent\" or a restore_over",
            ),
            (
                "kind = \"lxc\"\nsource = { restore = \"x\" }\n",
                "source: restore \"x\" is not a volume id",
            ),
            (
                "kind = \"lxc\"\nsource = { restore = \"local:../etc/shadow\" }\n",
                "is not a volume id",
            ),
            (
                "kind = \"lxc\"\nsource = { clone = 9000, restore = \"local:backup/a.tar\" }\n",
                "give either restore or clone, not both",
            ),
            (
                "kind = \"lxc\"\nsource = { storage = \"local\" }\n",
                "give restore = ",
            ),
            (
                "kind = \"lxc\"\nsource = { clone = 120 }\n",
                "a guest cannot be cloned from itself",
            ),
            (
                "kind = \"lxc\"\nsource = { clone = 7 }\n",
                "clone 7 is not a vmid",
            ),
            (
                "kind = \"lxc\"\nsource = { clone = 9000, storage = \"bad storage\" }\n",
                "storage \"bad storage\" is not a Proxmox VE storage id",
            ),
            (
                "kind = \"lxc\"\nsource = { restore = \"local:backup/a.tar\", full = true }\n",
                "full applies to a clone",
            ),
            (
                "kind = \"lxc\"\nsource = { clone = 9000, colour = 1 }\n",
                "unknown field `colour`",
            ),
            (
                "kind = \"lxc\"\nensure = \"absent\"\nsource = { clone = 9000 }\n",
                "an absent guest is not provisioned",
            ),
            (
                "kind = \"lxc\"\ndisks = { scsi0 = \"8G\" }\n",
                "\"scsi0\" is not a disk a CT can grow (rootfs or mp0 to mp255)",
            ),
            (
                "kind = \"qemu\"\ndisks = { efidisk0 = \"8G\" }\n",
                "\"efidisk0\" is not a disk a VM can grow",
            ),
            (
                "kind = \"qemu\"\ndisks = { scsi31 = \"8G\" }\n",
                "\"scsi31\" is not a disk",
            ),
            (
                "kind = \"qemu\"\ndisks = { scsi01 = \"8G\" }\n",
                "\"scsi01\" is not a disk",
            ),
            (
                "kind = \"qemu\"\ndisks = { scsi0 = \"8GB\" }\n",
                "disks: scsi0: ambiguous unit \"GB\"",
            ),
            (
                "kind = \"qemu\"\ndisks = { scsi0 = -1 }\n",
                "disks: scsi0: cannot be negative",
            ),
            (
                "kind = \"qemu\"\ndisks = { scsi0 = 1000 }\n",
                "a whole number of KiB",
            ),
            (
                "kind = \"lxc\"\nensure = \"absent\"\ndisks = { rootfs = \"8G\" }\n",
                "an absent guest has no disks to grow",
            ),
        ];
        for (rest, want) in cases {
            let text = format!("{head}{rest}");
            let got = error(&text);
            assert!(
                got.contains(want),
                "for {rest:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let got = error(
            "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = 0\nmemory = \"1 parsec\"\n",
        );
        assert!(
            got.starts_with("invalid desired state (2 problems)"),
            "{got}"
        );
        assert!(got.contains("cores: must be between"), "{got}");
        assert!(got.contains("memory: unknown unit"), "{got}");
    }

    #[test]
    fn shutdown_policy() {
        let doc = "node = \"pve-01\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"stopped\"\n";
        let d = parse_desired(doc).map_err(|e| e.to_string());
        let g = d.as_ref().map(|d| d.guests[&101].shutdown);
        assert_eq!(g, Ok(ShutdownPolicy::default()));
        assert_eq!(ShutdownPolicy::default().timeout_secs, 180);
        assert!(
            !ShutdownPolicy::default().force_stop,
            "a hard stop is never the default"
        );
        let d = parse_desired(&format!("{doc}shutdown_timeout = 30\nforce_stop = true\n"))
            .map_err(|e| e.to_string());
        assert_eq!(
            d.map(|d| d.guests[&101].shutdown),
            Ok(ShutdownPolicy {
                timeout_secs: 30,
                force_stop: true
            })
        );
        for bad in ["0", "-5", "541"] {
            let e = parse_desired(&format!("{doc}shutdown_timeout = {bad}\n"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("shutdown_timeout"), "{bad}: {e}");
        }
    }

    #[test]
    fn oversize_refused() {
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        assert!(matches!(
            parse_desired(&big),
            Err(DesiredError::TooLarge(_))
        ));
    }

    #[test]
    fn containers_and_volumes() {
        let d = parse_desired(
            r#"
node = "docker-01"
[[container]]
name = "web"
image = "nginx:1.27"
command = ["nginx", "-g", "daemon off;"]
env = { TZ = "UTC" }
ports = ["127.0.0.1:8080:80/tcp", "5353:53/udp"]
restart = "unless-stopped"
volumes = { webdata = "/srv" }
run = "stopped"
[[container]]
name = "old"
ensure = "absent"
[[volume]]
name = "olddata"
ensure = "absent"
"#,
        )
        .unwrap();
        let web = &d.containers.declared["web"];
        assert!(!web.running);
        assert_eq!(web.restart, Restart::UnlessStopped);
        assert_eq!(web.ports.len(), 2);
        assert_eq!(web.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(web.ports[1].protocol, "udp");
        assert!(d.containers.absent.contains("old"));
        assert!(d.containers.absent_volumes.contains("olddata"));

        let bad = parse_desired(
            r#"
node = "docker-01"
[[container]]
name = "-web"
image = "x"
[[container]]
name = "a"
[[container]]
name = "b"
image = "x"
ports = ["80"]
volumes = { data = "rel" }
labels = { "io.castellan.owner" = "me" }
[[container]]
name = "b"
image = "x"
[[container]]
name = "c"
image = "x"
ensure = "absent"
[[volume]]
name = "data2"
ensure = "present"
"#,
        )
        .unwrap_err()
        .to_string();
        for want in [
            "container[0] (-web): container:",
            "container[1] (a): image: a container needs an image",
            "container[2] (b): ports:",
            "container[2] (b): volumes: \"rel\" is not an absolute path",
            "container[2] (b): container: label \"io.castellan.owner\" is castellan's own",
            "container[3] (b): name: duplicate name",
            "container[4] (c): ensure: an absent container has no image",
            "volume[0] (data2): ensure:",
        ] {
            assert!(bad.contains(want), "{want:?} missing from:\n{bad}");
        }
        assert!(parse_port("0:80").is_err());
        assert!(parse_port("x:1:2").is_err());
        assert!(parse_port("1:2/sctp").is_err());
        assert!(parse_port("1:2:3:4").is_err());
    }
}
