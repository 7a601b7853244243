//! The simulated node: guests, their config files, storages and volumes, tasks, and the API
//! operations on them (config, power, destroy in `config`/`power`; storage content in
//! `storage`; create/restore in `lifecycle`; clone and template in `clone`; `resize`;
//! vzdump in `backup`).
//!
//! Everything here is synchronous and runs under one mutex, never across an await. Time is
//! passed in (`now`), and tasks complete lazily: every access first calls [`State::tick`],
//! which finishes all tasks whose end time has passed and applies their effects, so anyone
//! looking (API client, control endpoint, [`crate::SimHandle`]) sees the state a real node
//! would have at that moment.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pve_schema::{Schema, parse_boolean, split_list};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{Fault, FaultRule, GuestKind, GuestStatus, Seed, SeedBackup, SeedStorage};
use crate::pveconf::{self, ParsedConf};

mod backup;
mod clone;
mod config;
mod guests;
mod lifecycle;
mod power;
mod resize;
mod seed;
mod storage;
mod tasks;
mod volumes;

use config::*;
use guests::*;
use lifecycle::*;
use storage::*;
use tasks::*;
use volumes::*;

pub use backup::VZDUMP_DURATION_FACTOR;
pub use storage::{StorageView, VolumeView};

/// Whether `id` is a valid storage ID (`pve-storage-id`: `[a-z][a-z0-9\-_.]*[a-z0-9]`).
pub(crate) fn valid_storage_id(id: &str) -> bool {
    storage::parse_volume_id(&format!("{id}:x")).is_some_and(|(s, _)| s == id)
}

/// The content types a storage type supports, or `None` for an unknown type.
pub(crate) fn storage_type_content(ty: &str) -> Option<&'static [&'static str]> {
    matches!(ty, "dir" | "nfs" | "cifs" | "lvmthin" | "zfspool").then(|| supported_content(ty))
}

/// An API error, shaped like a real node's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// 400 `Parameter verification failed.` with an `errors` map.
    Param(BTreeMap<String, String>),
    /// 500 with the message in the status line and (default) in the body.
    Internal(String),
    /// 500 with the message only in the status line.
    StatusLineOnly(String),
    /// 501 `Method '...' not implemented`.
    NotImplemented(String),
    /// 401 with the reason in the status line.
    Unauthorized(String),
}

/// `die "...\n"` in PVE: the message keeps its trailing newline in the body.
fn die<T>(msg: impl Into<String>) -> Result<T, ApiError> {
    let mut m = msg.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    Err(ApiError::Internal(m))
}

/// A reply's data plus optional envelope attributes (`total`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub data: Value,
    pub total: Option<usize>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Self {
        Reply { data, total: None }
    }
}

type ApiResult = Result<Reply, ApiError>;

/// Per-request context for operations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    /// The authenticated token id (`root@pam!castellan`), written into UPIDs.
    pub user: String,
    /// A `lock_timeout` fault matched: taking the config lock fails.
    pub lock_timeout: bool,
    /// A task fault matched: applies to the task this request starts.
    pub task_fault: Option<Fault>,
    /// A `shutdown_ignored` fault matched: the guest does not react to a shutdown.
    pub shutdown_ignored: bool,
}

/// A guest as seen from outside (control endpoint, [`crate::SimHandle::guest`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuestView {
    /// VMID.
    pub vmid: u32,
    /// Container or VM.
    pub kind: GuestKind,
    /// Power state.
    pub status: GuestStatus,
    /// The config lock, if any.
    pub lock: Option<String>,
    /// Current config values (description decoded; no digest; pending not merged).
    pub config: BTreeMap<String, String>,
    /// Pending values.
    pub pending: BTreeMap<String, String>,
    /// Keys pending deletion.
    pub pending_delete: Vec<String>,
    /// The config file text as PVE would write it.
    pub raw: String,
    /// SHA-1 of `raw`, as returned in `digest`.
    pub digest: String,
}

/// One API request as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path as requested (`/api2/json/...`), without the query.
    pub path: String,
    /// Query and body parameters (path parameters not included).
    pub params: BTreeMap<String, String>,
    /// HTTP status code of the response.
    pub status: u16,
}

/// Most request records kept (oldest dropped first).
const MAX_REQUESTS: usize = 100_000;

/// The whole simulated node.
#[derive(Debug)]
pub(crate) struct State {
    pub node: String,
    pub schema: Arc<Schema>,
    pub task_duration: Duration,
    pub faults: Vec<FaultRule>,
    guests: HashMap<u32, Guest>,
    tasks: HashMap<String, Task>,
    task_order: Vec<String>,
    due: BinaryHeap<Reverse<(Instant, String)>>,
    requests: VecDeque<RequestRecord>,
    next_pid: u32,
    boot: SystemTime,
    storages: BTreeMap<String, Storage>,
    /// HA-managed guests.
    ha: BTreeSet<u32>,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    pub fn new(node: String, schema: Arc<Schema>, task_duration: Duration, seed: &Seed) -> State {
        let now = SystemTime::now();
        let mut st = State {
            node,
            schema,
            task_duration,
            faults: seed.faults.clone(),
            guests: HashMap::with_capacity(seed.guests.len()),
            tasks: HashMap::new(),
            task_order: Vec::new(),
            due: BinaryHeap::new(),
            requests: VecDeque::new(),
            next_pid: 2000,
            boot: now - Duration::from_secs(86_400),
            storages: BTreeMap::new(),
            ha: BTreeSet::new(),
        };
        st.seed_storages(&seed.storages);
        for g in &seed.guests {
            let mut conf = ParsedConf {
                main: g.config.clone(),
                ..Default::default()
            };
            if let Some(tags) = conf.main.get("tags").cloned() {
                conf.main.insert("tags".into(), pveconf::unique_tags(&tags));
            }
            if let Some(lock) = &g.lock {
                conf.main.insert("lock".into(), lock.clone());
            }
            let running = g.status == GuestStatus::Running;
            let pid = st.alloc_pid();
            let mut guest = Guest {
                vmid: g.vmid,
                kind: g.kind,
                running,
                conf,
                raw: String::new(),
                digest: String::new(),
                started: running.then_some(now - Duration::from_secs(3600)),
                pid,
            };
            guest.sync();
            st.guests.insert(g.vmid, guest);
            if g.ha {
                st.ha.insert(g.vmid);
            }
        }
        st.seed_volumes(seed);
        st
    }

    fn alloc_pid(&mut self) -> u32 {
        self.next_pid = if self.next_pid >= 4_000_000 {
            2000
        } else {
            self.next_pid + 7
        };
        self.next_pid
    }

    // ----- outside views -----

    pub fn guest_view(&self, vmid: u32) -> Option<GuestView> {
        self.guests.get(&vmid).map(Guest::view)
    }

    pub fn ha_managed(&self, vmid: u32) -> bool {
        self.ha.contains(&vmid)
    }

    pub fn guest_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.guests.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn all_views(&self) -> Vec<GuestView> {
        self.guest_ids()
            .into_iter()
            .filter_map(|id| self.guest_view(id))
            .collect()
    }

    pub fn record(&mut self, r: RequestRecord) {
        if self.requests.len() >= MAX_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(r);
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.iter().cloned().collect()
    }

    pub fn clear_requests(&mut self) {
        self.requests.clear();
    }

    /// Finds the first fault rule matching the request, consuming one of its `times`.
    pub fn take_fault(&mut self, method: &str, rel_path: &str, vmid: Option<u32>) -> Option<Fault> {
        let path = rel_path.trim_end_matches('/');
        let idx = self.faults.iter().position(|r| {
            r.vmid.is_none_or(|v| Some(v) == vmid)
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.path_suffix.as_deref().is_none_or(|s| {
                    let s = s.trim_matches('/');
                    path == s || path.ends_with(&format!("/{s}"))
                })
                && r.times != Some(0)
        })?;
        let rule = &mut self.faults[idx];
        let fault = rule.fault.clone();
        if let Some(t) = rule.times.as_mut() {
            *t -= 1;
            if *t == 0 {
                self.faults.remove(idx);
            }
        }
        Some(fault)
    }

    /// Applies guest-changing faults (`locked`, `vanish`) before the request is served.
    pub fn apply_guest_fault(&mut self, fault: &Fault, vmid: Option<u32>) {
        let Some(vmid) = vmid else { return };
        match fault {
            Fault::Locked { lock } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.conf.main.insert("lock".into(), lock.clone());
                    g.sync();
                }
            }
            Fault::Vanish => {
                self.guests.remove(&vmid);
            }
            _ => {}
        }
    }

    // ----- helpers for operations -----

    fn config_path(&self, kind: GuestKind, vmid: u32) -> String {
        match kind {
            GuestKind::Lxc => format!("nodes/{}/lxc/{vmid}.conf", self.node),
            GuestKind::Qemu => format!("nodes/{}/qemu-server/{vmid}.conf", self.node),
        }
    }

    /// `load_config`: the guest, or PVE's "does not exist" error.
    fn load(&self, kind: GuestKind, vmid: u32) -> Result<&Guest, ApiError> {
        match self.guests.get(&vmid) {
            Some(g) if g.kind == kind => Ok(g),
            _ => die(format!(
                "Configuration file '{}' does not exist",
                self.config_path(kind, vmid)
            )),
        }
    }

    fn not_exists_msg(&self, kind: GuestKind, vmid: u32) -> String {
        format!(
            "Configuration file '{}' does not exist",
            self.config_path(kind, vmid)
        )
    }

    fn running(&self, kind: GuestKind, vmid: u32) -> bool {
        self.guests
            .get(&vmid)
            .is_some_and(|g| g.kind == kind && g.running)
    }

    /// `lock_config` failing on a `lock_timeout` fault.
    fn lock_config(&self, ctx: &Ctx, kind: GuestKind, vmid: u32) -> Result<(), ApiError> {
        if ctx.lock_timeout {
            return die(lock_timeout_msg(kind, vmid));
        }
        Ok(())
    }

    fn value_json(&self, kind: GuestKind, key: &str, value: &str) -> Value {
        let (template, method) = update_method(kind);
        let ty = self
            .schema
            .property(template, method, key)
            .and_then(|p| p.ty.as_deref());
        typed_value(ty, value)
    }

    // ----- operations -----

    pub fn version(&self) -> ApiResult {
        Ok(json!({"version": "9.1.1", "release": "9.1", "repoid": "42c2d5a5"}).into())
    }

    fn vmstatus(&self, g: &Guest, now: SystemTime) -> Value {
        let mut d = json!({
            "status": if g.running { "running" } else { "stopped" },
            "maxmem": g.memory_mib() << 20,
            "maxdisk": g.maxdisk(),
            "cpus": g.cpus(),
            "uptime": g.uptime(now),
            "cpu": 0,
            "mem": if g.running { (g.memory_mib() << 20) / 4 } else { 0 },
            "disk": 0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
            "template": u8::from(g.is_template()),
        });
        match g.kind {
            GuestKind::Lxc => {
                // PVE::LXC::vmstatus keys its result hash by vmid and stores
                // `$d->{vmid} = $vmid` from that key, so the JSON value is a string.
                d["vmid"] = json!(g.vmid.to_string());
                d["type"] = json!("lxc");
                d["name"] = json!(
                    g.conf
                        .main
                        .get("hostname")
                        .cloned()
                        .unwrap_or_else(|| format!("CT{}", g.vmid))
                );
                let swap: u64 = g
                    .conf
                    .main
                    .get("swap")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(512);
                d["maxswap"] = json!(swap << 20);
            }
            GuestKind::Qemu => {
                d["vmid"] = json!(g.vmid);
                d["name"] = json!(
                    g.conf
                        .main
                        .get("name")
                        .cloned()
                        .unwrap_or_else(|| format!("VM {}", g.vmid))
                );
                if g.running {
                    d["pid"] = json!(g.pid);
                }
            }
        }
        if let Some(t) = g.conf.main.get("tags") {
            d["tags"] = json!(t);
        }
        if let Some(l) = g.lock() {
            d["lock"] = json!(l);
        }
        d
    }

    pub fn list(&self, kind: GuestKind, full: bool) -> ApiResult {
        let now = SystemTime::now();
        let mut ids: Vec<&Guest> = self.guests.values().filter(|g| g.kind == kind).collect();
        ids.sort_unstable_by_key(|g| g.vmid);
        let list: Vec<Value> = ids
            .into_iter()
            .map(|g| {
                let mut d = self.vmstatus(g, now);
                if kind == GuestKind::Qemu && full {
                    d["qmpstatus"] = json!(if g.running { "running" } else { "stopped" });
                }
                d
            })
            .collect();
        Ok(Value::Array(list).into())
    }

    pub fn status_current(&self, kind: GuestKind, vmid: u32) -> ApiResult {
        let g = self.load(kind, vmid)?;
        let mut d = self.vmstatus(g, SystemTime::now());
        d["ha"] = self.ha_status(g);
        if kind == GuestKind::Qemu {
            d["qmpstatus"] = json!(if g.running { "running" } else { "stopped" });
            if g.conf.main.get("agent").is_some_and(|a| {
                let first = a.split(',').next().unwrap_or("");
                parse_boolean(first.strip_prefix("enabled=").unwrap_or(first)) == Some(true)
            }) {
                d["agent"] = json!(1);
            }
        }
        Ok(d.into())
    }

    pub fn resources(&self, ty: Option<&str>) -> ApiResult {
        let now = SystemTime::now();
        let mut out = Vec::new();
        if ty.is_none() || ty == Some("vm") {
            let mut gs: Vec<&Guest> = self.guests.values().collect();
            gs.sort_unstable_by_key(|g| g.vmid);
            for g in gs {
                let mut d = json!({
                    "id": format!("{}/{}", g.kind.as_str(), g.vmid),
                    "type": g.kind.as_str(),
                    "vmid": g.vmid,
                    "node": self.node,
                    "name": match g.kind {
                        GuestKind::Lxc => g.conf.main.get("hostname").cloned().unwrap_or_else(|| format!("CT{}", g.vmid)),
                        GuestKind::Qemu => g.conf.main.get("name").cloned().unwrap_or_else(|| format!("VM {}", g.vmid)),
                    },
                    "status": if g.running { "running" } else { "stopped" },
                    "maxcpu": g.cpus(),
                    "maxmem": g.memory_mib() << 20,
                    "maxdisk": g.maxdisk(),
                    "mem": 0, "disk": 0, "cpu": 0,
                    "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
                    "uptime": g.uptime(now),
                    "template": u8::from(g.is_template()),
                });
                if let Some(t) = g.conf.main.get("tags") {
                    d["tags"] = json!(t);
                }
                if let Some(l) = g.lock() {
                    d["lock"] = json!(l);
                }
                if self.ha.contains(&g.vmid) {
                    d["hastate"] = json!(if g.running { "started" } else { "stopped" });
                }
                out.push(d);
            }
        }
        if ty.is_none() || ty == Some("node") {
            out.push(json!({
                "id": format!("node/{}", self.node), "type": "node", "node": self.node,
                "status": "online", "maxcpu": NODE_CPUS, "maxmem": NODE_MEM, "cpu": 0.01,
                "mem": NODE_MEM / 8, "maxdisk": 100u64 << 30, "disk": 10u64 << 30,
                "uptime": epoch(now).saturating_sub(epoch(self.boot)), "level": "",
                "cgroup-mode": 2,
            }));
        }
        if ty.is_none() || ty == Some("storage") {
            out.extend(self.storage_resources());
        }
        Ok(Value::Array(out).into())
    }

    /// `status/current`'s `ha` object (`PVE::HA::Config::get_service_status`).
    fn ha_status(&self, g: &Guest) -> Value {
        if !self.ha.contains(&g.vmid) {
            return json!({"managed": 0});
        }
        let state = if g.running { "started" } else { "stopped" };
        json!({"managed": 1, "state": state})
    }

    pub fn nextid(&self, vmid: Option<&str>) -> ApiResult {
        if let Some(v) = vmid {
            let id: u32 = v.parse().unwrap_or(0);
            if self.guests.contains_key(&id) {
                // pve-manager API2/Cluster.pm nextid: raise_param_exc.
                return Err(ApiError::Param(BTreeMap::from([(
                    "vmid".to_string(),
                    format!("VM {id} already exists"),
                )])));
            }
            // The parameter is echoed back: a JSON string.
            return Ok(json!(v).into());
        }
        let mut id = 100u32;
        while self.guests.contains_key(&id) {
            id += 1;
        }
        // Like the real endpoint, the id comes back as a string.
        Ok(json!(id.to_string()).into())
    }
}

/// `lock_file_full`'s timeout text with the guest's config lock file path.
pub(crate) fn lock_timeout_msg(kind: GuestKind, vmid: u32) -> String {
    match kind {
        GuestKind::Lxc => {
            format!("can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
        }
        GuestKind::Qemu => {
            format!("can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
        }
    }
}
