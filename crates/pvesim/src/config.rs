//! Simulator configuration: the seed (initial guests), fault rules and start options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options for [`crate::start`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The node name served (`/nodes/{node}/...`) and written into UPIDs.
    pub node: String,
    /// Accepted API tokens, each as `USER@REALM!TOKENID=SECRET`.
    pub tokens: Vec<String>,
    /// Initial guests (and faults).
    pub seed: Seed,
    /// How long each task runs before it ends (default 50ms).
    pub task_duration: Duration,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    pub tls: bool,
    /// Fault rules in force from the start (added to the seed's own).
    pub faults: Vec<FaultRule>,
    /// A full apidata schema file to validate against; `None` uses the embedded subset.
    pub schema_file: Option<PathBuf>,
}

impl SimConfig {
    /// A plain-HTTP simulator for `node` accepting one token, with 50ms tasks.
    pub fn new(node: impl Into<String>, token: impl Into<String>, seed: Seed) -> Self {
        SimConfig {
            node: node.into(),
            tokens: vec![token.into()],
            seed,
            task_duration: Duration::from_millis(50),
            tls: false,
            faults: Vec::new(),
            schema_file: None,
        }
    }
}

/// Guest type, as in PVE's `type` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A container (`pct`).
    Lxc,
    /// A virtual machine (`qm`).
    Qemu,
}

impl GuestKind {
    /// `lxc` or `qemu`, as in API paths.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Lxc => "lxc",
            GuestKind::Qemu => "qemu",
        }
    }
}

/// Power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
}

/// One seeded guest.
#[derive(Debug, Clone)]
pub struct SeedGuest {
    /// VMID (100..=999999999).
    pub vmid: u32,
    /// Container or VM.
    pub kind: GuestKind,
    /// Initial power state.
    pub status: GuestStatus,
    /// Config lock (`backup`, `migrate`, ...).
    pub lock: Option<String>,
    /// PVE config keys and values, as strings (`cores` = "2").
    pub config: BTreeMap<String, String>,
    /// HA-managed (`ha-manager` has `ct:VMID` / `vm:VMID`).
    pub ha: bool,
}

/// One seeded storage (`[[storage]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedStorage {
    /// Storage ID (`local`, `local-lvm`, ...).
    pub id: String,
    /// Plugin type: `dir`, `nfs`, `cifs` (file-based, every content type), `lvmthin`,
    /// `zfspool` (disk images only).
    pub ty: String,
    /// Content types: `images`, `rootdir`, `backup`, `vztmpl`, `iso`.
    pub content: Vec<String>,
    /// Size in bytes.
    pub total: u64,
    /// Shared (default: `nfs`/`cifs` yes, others no).
    pub shared: bool,
    /// `dir`: the directory (default `/var/lib/vz` for `local`, else `/mnt/pve/ID`);
    /// `lvmthin`: the volume group (default `pve`); `zfspool`: the pool (default `rpool/data`).
    pub path: Option<String>,
}

/// One seeded backup archive (`[[backup]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedBackup {
    /// The storage holding it (needs `backup` content).
    pub storage: String,
    /// The guest it is a backup of.
    pub vmid: u32,
    /// Container or VM.
    pub kind: GuestKind,
    /// Archive size in bytes.
    pub size: u64,
    /// Backup time (epoch seconds; default 2026-01-01 00:00:00 UTC, plus the backup's
    /// position so names stay unique).
    pub ctime: Option<u64>,
    /// Explicit volume ID (default: vzdump's name, `STORAGE:backup/vzdump-KIND-VMID-TIME.tar.zst`
    /// or `.vma.zst`).
    pub volid: Option<String>,
    /// Backup notes.
    pub notes: Option<String>,
    /// Protected backup.
    pub protected: bool,
    /// The guest config inside the archive (default: a minimal plausible one).
    pub config: BTreeMap<String, String>,
}

/// One seeded loose volume (`[[volume]]`): a container template (`local:vztmpl/...`), an
/// ISO, or a disk image no config references.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedVolume {
    /// The volume ID.
    pub volid: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time (epoch seconds).
    pub ctime: Option<u64>,
}

/// The simulator's initial state.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    /// Guests, in seed order.
    pub guests: Vec<SeedGuest>,
    /// Fault rules from the seed's `[[fault]]` tables.
    pub faults: Vec<FaultRule>,
    /// Storages; empty means the defaults: `local` (dir: iso, vztmpl, backup; 100 GiB) and
    /// `local-lvm` (lvmthin: images, rootdir; 200 GiB).
    pub storages: Vec<SeedStorage>,
    /// Backup archives.
    pub backups: Vec<SeedBackup>,
    /// Loose volumes.
    pub volumes: Vec<SeedVolume>,
}

/// Errors parsing a seed or fault file.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not valid TOML, or not the seed's shape (unknown fields included).
    #[error("invalid seed: {0}")]
    Toml(#[from] toml::de::Error),
    /// A guest field has a bad value.
    #[error("guest {vmid}: field '{field}': {message}")]
    Guest {
        /// The guest's VMID (as written).
        vmid: i64,
        /// The field (`kind`, `status`, `config.cores`, ...).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A storage, backup or volume table is invalid.
    #[error("{table} {index}: field '{field}': {message}")]
    Table {
        /// `storage`, `backup` or `volume`.
        table: &'static str,
        /// Position in the file (0-based).
        index: usize,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A fault rule is invalid.
    #[error("fault {index}: {message}")]
    Fault {
        /// Position in the file (0-based).
        index: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    #[serde(default)]
    guest: Vec<RawGuest>,
    #[serde(default)]
    fault: Vec<toml::Value>,
    #[serde(default)]
    storage: Vec<RawStorage>,
    #[serde(default)]
    backup: Vec<RawBackup>,
    #[serde(default)]
    volume: Vec<RawVolume>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuest {
    vmid: i64,
    kind: String,
    status: String,
    #[serde(default)]
    lock: Option<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    ha: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    id: String,
    #[serde(rename = "type")]
    ty: String,
    content: Vec<String>,
    total: toml::Value,
    #[serde(default)]
    shared: Option<bool>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    storage: String,
    vmid: i64,
    kind: String,
    size: toml::Value,
    #[serde(default)]
    ctime: Option<u64>,
    #[serde(default)]
    volid: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    volid: String,
    size: toml::Value,
    #[serde(default)]
    ctime: Option<u64>,
}

/// A size: bytes as an integer, or a string with a `K`/`M`/`G`/`T` unit (`"100G"`).
fn parse_size_value(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        toml::Value::String(s) => {
            pve_schema::parse_size(s).ok_or_else(|| format!("invalid size '{s}'"))
        }
        other => Err(format!("invalid size {other}")),
    }
}

fn parse_kind(s: &str) -> Result<GuestKind, String> {
    match s {
        "lxc" => Ok(GuestKind::Lxc),
        "qemu" => Ok(GuestKind::Qemu),
        other => Err(format!("'{other}' is not one of lxc, qemu")),
    }
}

/// Checks config keys and values against the embedded schema of the kind's config update
/// call; returns them as strings. Errors name the key (`config.KEY`).
fn parse_config_table(
    kind: GuestKind,
    vmid: u32,
    table: &toml::Table,
) -> Result<BTreeMap<String, String>, (String, String)> {
    let schema = pve_schema::embedded();
    let method = match kind {
        GuestKind::Lxc => "PUT",
        GuestKind::Qemu => "POST",
    };
    let path = format!("/nodes/seed/{}/{vmid}/config", kind.as_str());
    let mut config = BTreeMap::new();
    for (k, v) in table {
        let field = format!("config.{k}");
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
            other => return Err((field, format!("unsupported value {other}"))),
        };
        if matches!(
            k.as_str(),
            "node" | "vmid" | "digest" | "delete" | "revert" | "lock"
        ) || k.starts_with("skip")
        {
            return Err((field, "not a config key".into()));
        }
        let one = BTreeMap::from([(k.clone(), value.clone())]);
        if let Err(e) = schema.validate(method, &path, &one) {
            let msg = e.errors.values().next().cloned().unwrap_or_default();
            return Err((field, msg.trim_end().to_string()));
        }
        config.insert(k.clone(), value);
    }
    Ok(config)
}

impl Seed {
    /// No guests, no faults.
    pub fn empty() -> Seed {
        Seed::default()
    }

    /// Parses the seed TOML: `[[guest]]` tables (`vmid`, `kind`, `status`, optional `lock`,
    /// `[guest.config]` of PVE config keys) and optional `[[fault]]` tables ([`FaultRule`]).
    /// Config keys and values are checked against the embedded PVE schema of the kind's config
    /// update call, so a seed can only hold what the API could have written.
    pub fn from_toml_str(s: &str) -> Result<Seed, SeedError> {
        let raw: RawSeed = toml::from_str(s)?;
        let schema = pve_schema::embedded();
        let mut guests: Vec<SeedGuest> = Vec::new();
        for g in raw.guest {
            let bad = |field: &str, message: String| SeedError::Guest {
                vmid: g.vmid,
                field: field.to_string(),
                message,
            };
            if !(100..=999_999_999).contains(&g.vmid) {
                return Err(bad("vmid", "must be between 100 and 999999999".into()));
            }
            let vmid = g.vmid as u32;
            if guests.iter().any(|o| o.vmid == vmid) {
                return Err(bad("vmid", "duplicate vmid".into()));
            }
            let kind = match g.kind.as_str() {
                "lxc" => GuestKind::Lxc,
                "qemu" => GuestKind::Qemu,
                other => return Err(bad("kind", format!("'{other}' is not one of lxc, qemu"))),
            };
            let status = match g.status.as_str() {
                "running" => GuestStatus::Running,
                "stopped" => GuestStatus::Stopped,
                other => {
                    return Err(bad(
                        "status",
                        format!("'{other}' is not one of running, stopped"),
                    ));
                }
            };
            let method = match kind {
                GuestKind::Lxc => "PUT",
                GuestKind::Qemu => "POST",
            };
            let config = parse_config_table(kind, vmid, &g.config).map_err(|(f, m)| bad(&f, m))?;
            if let Some(lock) = &g.lock {
                let path = format!("/nodes/seed/{}/{vmid}/config", kind.as_str());
                let mut one = BTreeMap::new();
                one.insert("lock".to_string(), lock.clone());
                if let Err(e) = schema.validate(method, &path, &one) {
                    let msg = e.errors.values().next().cloned().unwrap_or_default();
                    return Err(bad("lock", msg.trim_end().to_string()));
                }
            }
            guests.push(SeedGuest {
                vmid,
                kind,
                status,
                lock: g.lock,
                config,
                ha: g.ha,
            });
        }
        let faults = parse_fault_values(raw.fault)?;
        let storages = parse_storages(raw.storage)?;
        let backups = parse_backups(raw.backup, &storages)?;
        let volumes = raw
            .volume
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let size = parse_size_value(&v.size).map_err(|message| SeedError::Table {
                    table: "volume",
                    index,
                    field: "size".into(),
                    message,
                })?;
                Ok(SeedVolume {
                    volid: v.volid,
                    size,
                    ctime: v.ctime,
                })
            })
            .collect::<Result<Vec<_>, SeedError>>()?;
        Ok(Seed {
            guests,
            faults,
            storages,
            backups,
            volumes,
        })
    }
}

fn parse_storages(raw: Vec<RawStorage>) -> Result<Vec<SeedStorage>, SeedError> {
    let mut out: Vec<SeedStorage> = Vec::new();
    for (index, r) in raw.into_iter().enumerate() {
        let bad = |field: &str, message: String| SeedError::Table {
            table: "storage",
            index,
            field: field.into(),
            message,
        };
        let id_ok = crate::state::valid_storage_id(&r.id);
        if !id_ok {
            return Err(bad("id", format!("'{}' is not a valid storage ID", r.id)));
        }
        if out.iter().any(|o| o.id == r.id) {
            return Err(bad("id", "duplicate storage ID".into()));
        }
        let supported = crate::state::storage_type_content(&r.ty).ok_or_else(|| {
            bad(
                "type",
                format!("'{}' is not one of dir, nfs, cifs, lvmthin, zfspool", r.ty),
            )
        })?;
        if let Some(c) = r.content.iter().find(|c| !supported.contains(&c.as_str())) {
            return Err(bad(
                "content",
                format!("'{c}' is not supported by storage type '{}'", r.ty),
            ));
        }
        let total = parse_size_value(&r.total).map_err(|m| bad("total", m))?;
        let shared = r.shared.unwrap_or(matches!(r.ty.as_str(), "nfs" | "cifs"));
        out.push(SeedStorage {
            id: r.id,
            ty: r.ty,
            content: r.content,
            total,
            shared,
            path: r.path,
        });
    }
    Ok(out)
}

fn parse_backups(
    raw: Vec<RawBackup>,
    storages: &[SeedStorage],
) -> Result<Vec<SeedBackup>, SeedError> {
    let mut out = Vec::new();
    for (index, r) in raw.into_iter().enumerate() {
        let bad = |field: &str, message: String| SeedError::Table {
            table: "backup",
            index,
            field: field.into(),
            message,
        };
        if !(100..=999_999_999).contains(&r.vmid) {
            return Err(bad("vmid", "must be between 100 and 999999999".into()));
        }
        let vmid = r.vmid as u32;
        let kind = parse_kind(&r.kind).map_err(|m| bad("kind", m))?;
        let size = parse_size_value(&r.size).map_err(|m| bad("size", m))?;
        if !storages.is_empty() && !storages.iter().any(|s| s.id == r.storage) {
            return Err(bad(
                "storage",
                format!("storage '{}' is not seeded", r.storage),
            ));
        }
        let config = parse_config_table(kind, vmid, &r.config).map_err(|(f, m)| bad(&f, m))?;
        out.push(SeedBackup {
            storage: r.storage,
            vmid,
            kind,
            size,
            ctime: r.ctime,
            volid: r.volid,
            notes: r.notes,
            protected: r.protected,
            config,
        });
    }
    Ok(out)
}

/// Parses a faults file: `[[fault]]` tables of [`FaultRule`] (the `--faults` option).
pub fn faults_from_toml_str(s: &str) -> Result<Vec<FaultRule>, SeedError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawFaults {
        #[serde(default)]
        fault: Vec<toml::Value>,
    }
    let raw: RawFaults = toml::from_str(s)?;
    parse_fault_values(raw.fault)
}

fn parse_fault_values(values: Vec<toml::Value>) -> Result<Vec<FaultRule>, SeedError> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            v.try_into::<FaultRule>().map_err(|e| SeedError::Fault {
                index,
                message: e.to_string(),
            })
        })
        .collect()
}

/// A fault injection rule: which requests it matches, how often, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFaultRule")]
pub struct FaultRule {
    /// Only requests for this guest (`None` = any).
    pub vmid: Option<u32>,
    /// Only this HTTP method, case-insensitive (`None` = any).
    pub method: Option<String>,
    /// Only paths ending in this (whole segments), e.g. `config`, `status/start`.
    pub path_suffix: Option<String>,
    /// How many matching requests it affects (`None` = always).
    pub times: Option<u32>,
    /// What happens.
    #[serde(flatten)]
    pub fault: Fault,
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Delay the response.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// 500 with the message in the status line and in the body's `message`.
    InternalError {
        /// The error text.
        message: String,
    },
    /// 500 with the message only in the status line, body `{"data":null}` (older PVE).
    StatusLineOnly {
        /// The error text.
        message: String,
    },
    /// 500 `can't lock file '...' - got timeout` for the request's guest.
    LockTimeout,
    /// Sets the guest's config lock before the request is served.
    Locked {
        /// The lock name (`backup`, `migrate`, ...).
        lock: String,
    },
    /// The task started by the request ends with this exit status.
    TaskFailure {
        /// The exit status text (e.g. `command 'lxc-start -n 101' failed: exit code 1`).
        exitstatus: String,
    },
    /// The task started by the request ends with `WARNINGS: count`.
    TaskWarnings {
        /// Number of warnings.
        count: u32,
    },
    /// The guest disappears before the request is served.
    Vanish,
    /// The guest does not react to a clean shutdown (no ACPI, a hung init): the shutdown
    /// task ends as the node ends it when the timeout passes, with the guest still
    /// running, unless `forceStop` was given.
    ShutdownIgnored,
}

/// Flat, strict form of [`FaultRule`]: serde cannot combine `deny_unknown_fields` with
/// `flatten`, so rules are read through this and checked by hand.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaultRule {
    vmid: Option<u32>,
    method: Option<String>,
    path_suffix: Option<String>,
    times: Option<u32>,
    kind: String,
    ms: Option<u64>,
    message: Option<String>,
    lock: Option<String>,
    exitstatus: Option<String>,
    count: Option<u32>,
}

impl TryFrom<RawFaultRule> for FaultRule {
    type Error = String;

    fn try_from(r: RawFaultRule) -> Result<Self, String> {
        let kind = r.kind.as_str();
        let mut extra: Vec<&str> = Vec::new();
        let mut take = |name: &'static str, present: bool, wanted: bool| {
            if present && !wanted {
                extra.push(name);
            }
        };
        take("ms", r.ms.is_some(), kind == "latency");
        take(
            "message",
            r.message.is_some(),
            matches!(kind, "internal_error" | "status_line_only"),
        );
        take("lock", r.lock.is_some(), kind == "locked");
        take("exitstatus", r.exitstatus.is_some(), kind == "task_failure");
        take("count", r.count.is_some(), kind == "task_warnings");
        if let Some(f) = extra.first() {
            return Err(format!("field `{f}` is not valid for fault kind `{kind}`"));
        }
        let missing = |f: &str| format!("fault kind `{kind}` needs field `{f}`");
        let fault = match kind {
            "latency" => Fault::Latency {
                ms: r.ms.ok_or_else(|| missing("ms"))?,
            },
            "internal_error" => Fault::InternalError {
                message: r.message.ok_or_else(|| missing("message"))?,
            },
            "status_line_only" => Fault::StatusLineOnly {
                message: r.message.ok_or_else(|| missing("message"))?,
            },
            "lock_timeout" => Fault::LockTimeout,
            "locked" => Fault::Locked {
                lock: r.lock.ok_or_else(|| missing("lock"))?,
            },
            "task_failure" => Fault::TaskFailure {
                exitstatus: r.exitstatus.ok_or_else(|| missing("exitstatus"))?,
            },
            "task_warnings" => Fault::TaskWarnings {
                count: r.count.ok_or_else(|| missing("count"))?,
            },
            "vanish" => Fault::Vanish,
            "shutdown_ignored" => Fault::ShutdownIgnored,
            other => return Err(format!("unknown fault kind `{other}`")),
        };
        Ok(FaultRule {
            vmid: r.vmid,
            method: r.method,
            path_suffix: r.path_suffix,
            times: r.times,
            fault,
        })
    }
}
