//! The simulated node: guests, their config files, tasks, and the API operations on them.
//!
//! Everything here is synchronous and runs under one mutex, never across an await. Time is
//! passed in (`now`), and tasks complete lazily: every access first calls [`State::tick`],
//! which finishes all tasks whose end time has passed and applies their effects, so anyone
//! looking (API client, control endpoint, [`crate::SimHandle`]) sees the state a real node
//! would have at that moment.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pve_schema::{Schema, parse_boolean, split_list};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{Fault, FaultRule, GuestKind, GuestStatus, Seed};
use crate::pveconf::{self, ParsedConf};

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

#[derive(Debug, Clone)]
struct Guest {
    vmid: u32,
    kind: GuestKind,
    running: bool,
    conf: ParsedConf,
    raw: String,
    digest: String,
    started: Option<SystemTime>,
    pid: u32,
}

impl Guest {
    /// Writes the config file and reads it back, as every PVE config write does.
    fn sync(&mut self) {
        let raw = pveconf::render(self.kind, &self.conf);
        self.conf = pveconf::parse(self.kind, &raw);
        self.digest = pveconf::digest(&raw);
        self.raw = raw;
    }

    fn lock(&self) -> Option<&str> {
        self.conf.main.get("lock").map(String::as_str)
    }

    fn view(&self) -> GuestView {
        GuestView {
            vmid: self.vmid,
            kind: self.kind,
            status: if self.running {
                GuestStatus::Running
            } else {
                GuestStatus::Stopped
            },
            lock: self.lock().map(str::to_string),
            config: self.conf.main.clone(),
            pending: self.conf.pending.clone(),
            pending_delete: self.conf.pending_delete.keys().cloned().collect(),
            raw: self.raw.clone(),
            digest: self.digest.clone(),
        }
    }

    fn is_template(&self) -> bool {
        self.conf
            .main
            .get("template")
            .is_some_and(|v| parse_boolean(v) == Some(true))
    }

    fn apply_all_pending(&mut self) {
        let del = std::mem::take(&mut self.conf.pending_delete);
        for k in del.keys() {
            self.conf.main.remove(k);
        }
        let pending = std::mem::take(&mut self.conf.pending);
        self.conf.main.extend(pending);
    }

    /// `vmconfig_hotplug_pending`: apply what can change on a running guest, keep the rest.
    fn hotplug_pending(&mut self) {
        let kind = self.kind;
        let features = hotplug_features(self.conf.main.get("hotplug").map(String::as_str));
        let dels: Vec<String> = self.conf.pending_delete.keys().cloned().collect();
        for k in dels {
            if can_hotplug(kind, &features, &k, true) {
                self.conf.main.remove(&k);
                self.conf.pending_delete.remove(&k);
            }
        }
        let keys: Vec<String> = self.conf.pending.keys().cloned().collect();
        for k in keys {
            if can_hotplug(kind, &features, &k, false)
                && let Some(v) = self.conf.pending.remove(&k)
            {
                self.conf.main.insert(k, v);
            }
        }
    }

    /// `PVE::AbstractConfig::cleanup_pending`.
    fn cleanup_pending(&mut self) {
        let main = &self.conf.main;
        self.conf.pending.retain(|k, v| main.get(k) != Some(v));
        self.conf.pending_delete.retain(|k, _| main.contains_key(k));
    }

    fn memory_mib(&self) -> u64 {
        let m = self
            .conf
            .main
            .get("memory")
            .map(String::as_str)
            .unwrap_or("512");
        // QEMU: property string `[current=]<integer>`; LXC: integer.
        let first = m.split(',').next().unwrap_or("");
        let v = first.strip_prefix("current=").unwrap_or(first);
        v.parse().unwrap_or(512)
    }

    fn cpus(&self) -> f64 {
        let get = |k: &str| self.conf.main.get(k).and_then(|v| v.parse::<f64>().ok());
        match self.kind {
            GuestKind::Lxc => get("cores").unwrap_or(NODE_CPUS as f64),
            GuestKind::Qemu => {
                get("vcpus").unwrap_or(get("sockets").unwrap_or(1.0) * get("cores").unwrap_or(1.0))
            }
        }
    }

    fn maxdisk(&self) -> u64 {
        let disk = match self.kind {
            GuestKind::Lxc => self.conf.main.get("rootfs"),
            GuestKind::Qemu => {
                let order: Vec<String> = self
                    .conf
                    .main
                    .get("boot")
                    .and_then(|b| b.split(',').find_map(|p| p.strip_prefix("order=")))
                    .map(|o| split_list(o).into_iter().map(str::to_string).collect())
                    .unwrap_or_default();
                let candidates = order.into_iter().chain(
                    ["scsi0", "virtio0", "sata0", "ide0"]
                        .iter()
                        .map(|s| s.to_string()),
                );
                let mut found = None;
                for c in candidates {
                    if let Some(v) = self.conf.main.get(&c)
                        && !v.contains("media=cdrom")
                    {
                        found = Some(v);
                        break;
                    }
                }
                found
            }
        };
        disk.and_then(|d| d.split(',').find_map(|p| p.strip_prefix("size=")))
            .and_then(parse_size)
            .unwrap_or(0)
    }

    fn uptime(&self, now: SystemTime) -> u64 {
        match (self.running, self.started) {
            (true, Some(s)) => now.duration_since(s).map(|d| d.as_secs()).unwrap_or(0),
            _ => 0,
        }
    }
}

fn label(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "CT",
        GuestKind::Qemu => "VM",
    }
}

const NODE_CPUS: u32 = 8;
const NODE_MEM: u64 = 64 << 30;

use pve_schema::parse_size;

/// qemu-server `parse_hotplug_features`: default `network,disk,usb`; `0` none; `1` default.
fn hotplug_features(v: Option<&str>) -> Vec<String> {
    match v.unwrap_or("network,disk,usb") {
        "0" => Vec::new(),
        "1" => vec!["network".into(), "disk".into(), "usb".into()],
        s => s.split(',').map(str::to_string).collect(),
    }
}

fn is_indexed(key: &str, bases: &[&str]) -> bool {
    pve_schema::indexed_base(key).is_some_and(|(b, _)| bases.contains(&b))
}

/// Which options change live on a running guest: qemu-server `vmconfig_hotplug_pending`
/// (`$fast_plug_option`, hotplug features) and pve-container `vmconfig_hotplug_pending`
/// (`$LXC_FASTPLUG_OPTIONS`, cgroup-backed cpu/memory, network).
fn can_hotplug(kind: GuestKind, features: &[String], key: &str, delete: bool) -> bool {
    let has = |f: &str| features.iter().any(|x| x == f);
    match kind {
        GuestKind::Qemu => {
            const FAST: &[&str] = &[
                "description",
                "hookscript",
                "lock",
                "migrate_downtime",
                "migrate_speed",
                "name",
                "onboot",
                "protection",
                "shares",
                "startup",
                "tags",
                "vmstatestorage",
            ];
            if FAST.contains(&key) {
                return true;
            }
            match key {
                "vcpus" => has("cpu"),
                "memory" => has("memory"),
                "balloon" => !delete,
                _ if is_indexed(key, &["net"]) => has("network"),
                _ if is_indexed(key, &["scsi", "virtio", "sata", "ide"]) => has("disk"),
                _ if is_indexed(key, &["usb"]) => has("usb"),
                _ => false,
            }
        }
        GuestKind::Lxc => {
            const FAST: &[&str] = &[
                "description",
                "onboot",
                "startup",
                "protection",
                "tags",
                "timezone",
                "hookscript",
                "tty",
                "console",
                "cmode",
                "lock",
            ];
            if FAST.contains(&key) {
                return true;
            }
            if delete {
                matches!(key, "swap" | "cpulimit" | "cpuunits")
                    || is_indexed(key, &["net", "unused"])
            } else {
                matches!(key, "cpulimit" | "cpuunits" | "memory" | "swap" | "cores")
                    || is_indexed(key, &["net", "mp"])
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok,
    Warnings(u32),
    Error(String),
}

#[derive(Debug, Clone)]
enum Effect {
    None,
    Start(u32),
    Stop(u32),
    Reboot(u32),
    Destroy { vmid: u32 },
    QemuUpdate { vmid: u32, update: Update },
}

#[derive(Debug, Clone, Default)]
struct Update {
    params: BTreeMap<String, String>,
    delete: Vec<String>,
    revert: Vec<String>,
    force: bool,
}

#[derive(Debug, Clone)]
struct Task {
    upid: String,
    pid: u32,
    pstart: u64,
    starttime: u64,
    ty: String,
    id: String,
    user: String,
    log: Vec<String>,
    outcome: Outcome,
    effect: Effect,
    /// Set when the task has ended.
    exitstatus: Option<String>,
    endtime: Option<u64>,
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
        };
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
        }
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

    // ----- tasks -----

    /// Ends every task whose time is up, applying its effect (the worker's state change).
    pub fn tick(&mut self, now: Instant) {
        while let Some(Reverse((end, _))) = self.due.peek() {
            if *end > now {
                break;
            }
            let Some(Reverse((_, upid))) = self.due.pop() else {
                break;
            };
            self.finish_task(&upid);
        }
    }

    fn finish_task(&mut self, upid: &str) {
        let Some(task) = self.tasks.get(upid) else {
            return;
        };
        let outcome = task.outcome.clone();
        let effect = task.effect.clone();
        let mut log_extra = Vec::new();
        if outcome != Outcome::Error(String::new()) && !matches!(outcome, Outcome::Error(_)) {
            log_extra = self.apply_effect(effect);
        }
        let endtime = epoch(SystemTime::now());
        let Some(task) = self.tasks.get_mut(upid) else {
            return;
        };
        task.log.extend(log_extra);
        // PVE::Tools::upid_read_status: "OK", "WARNINGS: N", or the error text.
        let status = match &outcome {
            Outcome::Ok => {
                task.log.push("TASK OK".into());
                "OK".to_string()
            }
            Outcome::Warnings(n) => {
                task.log.push(format!("TASK WARNINGS: {n}"));
                format!("WARNINGS: {n}")
            }
            Outcome::Error(e) => {
                task.log.push(format!("TASK ERROR: {e}"));
                e.clone()
            }
        };
        task.exitstatus = Some(status);
        task.endtime = Some(endtime);
    }

    fn apply_effect(&mut self, effect: Effect) -> Vec<String> {
        let now = SystemTime::now();
        match effect {
            Effect::None => {}
            Effect::Start(vmid) => {
                let pid = self.alloc_pid();
                if let Some(g) = self.guests.get_mut(&vmid) {
                    // Pending changes are applied when the guest starts.
                    g.apply_all_pending();
                    g.sync();
                    g.running = true;
                    g.started = Some(now);
                    g.pid = pid;
                }
            }
            Effect::Stop(vmid) => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.running = false;
                    g.started = None;
                }
            }
            Effect::Reboot(vmid) => {
                let pid = self.alloc_pid();
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.apply_all_pending();
                    g.sync();
                    g.running = true;
                    g.started = Some(now);
                    g.pid = pid;
                }
            }
            Effect::Destroy { vmid } => {
                self.guests.remove(&vmid);
            }
            Effect::QemuUpdate { vmid, update } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    return apply_qemu_update(g, &update);
                }
            }
        }
        Vec::new()
    }

    #[allow(clippy::too_many_arguments)]
    fn new_task(
        &mut self,
        ctx: &Ctx,
        ty: &str,
        vmid: u32,
        mut outcome: Outcome,
        mut effect: Effect,
        mut log: Vec<String>,
        now: Instant,
    ) -> String {
        match &ctx.task_fault {
            Some(Fault::TaskFailure { exitstatus }) => {
                outcome = Outcome::Error(exitstatus.clone());
                effect = Effect::None;
            }
            Some(Fault::TaskWarnings { count }) if outcome == Outcome::Ok => {
                for i in 1..=*count {
                    log.push(format!("WARN: simulated warning {i}"));
                }
                outcome = Outcome::Warnings(*count);
            }
            _ => {}
        }
        let pid = self.alloc_pid();
        let wall = SystemTime::now();
        let starttime = epoch(wall);
        let pstart = wall
            .duration_since(self.boot)
            .map(|d| d.as_millis() as u64 / 10)
            .unwrap_or(0);
        let user = if ctx.user.is_empty() {
            "root@pam".to_string()
        } else {
            ctx.user.clone()
        };
        let upid = format!(
            "UPID:{}:{pid:08X}:{pstart:08X}:{starttime:08X}:{ty}:{vmid}:{user}:",
            self.node
        );
        let end = now + self.task_duration;
        self.tasks.insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                pid,
                pstart,
                starttime,
                ty: ty.to_string(),
                id: vmid.to_string(),
                user,
                log,
                outcome,
                effect,
                exitstatus: None,
                endtime: None,
            },
        );
        self.task_order.push(upid.clone());
        self.due.push(Reverse((end, upid.clone())));
        if self.task_duration.is_zero() {
            self.tick(now);
        }
        upid
    }

    fn task_json(&self, t: &Task, with_endtime: bool) -> Value {
        let mut v = json!({
            "upid": t.upid,
            "node": self.node,
            "pid": t.pid,
            "pstart": t.pstart,
            "starttime": t.starttime,
            "type": t.ty,
            "id": t.id,
            "user": t.user,
        });
        if with_endtime {
            if let (Some(s), Some(e)) = (&t.exitstatus, t.endtime) {
                v["status"] = json!(s);
                v["endtime"] = json!(e);
            }
        } else {
            match &t.exitstatus {
                Some(s) => {
                    v["status"] = json!("stopped");
                    v["exitstatus"] = json!(s);
                }
                None => v["status"] = json!("running"),
            }
        }
        v
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
        d["ha"] = json!({"managed": 0});
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
            out.push(json!({
                "id": format!("storage/{}/local", self.node), "type": "storage", "storage": "local",
                "node": self.node, "status": "available", "plugintype": "dir", "shared": 0,
                "content": "iso,vztmpl,backup", "maxdisk": 100u64 << 30, "disk": 10u64 << 30,
            }));
        }
        Ok(Value::Array(out).into())
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

    pub fn get_config(&self, kind: GuestKind, vmid: u32, current: bool) -> ApiResult {
        let g = self.load(kind, vmid)?;
        // PVE::AbstractConfig::load_current_config: pending merged unless `current`.
        let mut conf = g.conf.main.clone();
        if !current {
            for (k, v) in &g.conf.pending {
                conf.insert(k.clone(), v.clone());
            }
            for k in g.conf.pending_delete.keys() {
                conf.remove(k);
            }
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in &conf {
            obj.insert(k.clone(), self.value_json(kind, k, v));
        }
        obj.insert("digest".into(), json!(g.digest));
        Ok(Value::Object(obj).into())
    }

    pub fn get_pending(&self, kind: GuestKind, vmid: u32) -> ApiResult {
        let g = self.load(kind, vmid)?;
        // PVE::GuestHelpers::config_with_pending_array (digest included, as it is in $conf).
        let mut main = g.conf.main.clone();
        main.insert("digest".into(), g.digest.clone());
        let mut items: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &main {
            let mut item = json!({"key": k, "value": self.value_json(kind, k, v)});
            if let Some(p) = g.conf.pending.get(k) {
                item["pending"] = self.value_json(kind, k, p);
            }
            if let Some(force) = g.conf.pending_delete.get(k) {
                item["delete"] = json!(if *force { 2 } else { 1 });
            }
            items.insert(k.clone(), item);
        }
        for (k, p) in &g.conf.pending {
            items
                .entry(k.clone())
                .or_insert_with(|| json!({"key": k, "pending": self.value_json(kind, k, p)}));
        }
        for (k, force) in &g.conf.pending_delete {
            items
                .entry(k.clone())
                .or_insert_with(|| json!({"key": k, "delete": if *force { 2 } else { 1 }}));
        }
        Ok(Value::Array(items.into_values().collect()).into())
    }

    fn split_update(
        params: &BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, Update, Option<String>) {
        let mut rest = params.clone();
        for k in ["node", "vmid", "skiplock", "background_delay"] {
            rest.remove(k);
        }
        let digest = rest.remove("digest");
        let delete_str = rest.remove("delete");
        let revert_str = rest.remove("revert");
        let force = rest
            .remove("force")
            .is_some_and(|f| parse_boolean(&f) == Some(true));
        let update = Update {
            params: rest.clone(),
            delete: delete_str
                .as_deref()
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
            revert: revert_str
                .as_deref()
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
            force,
        };
        let any = delete_str.is_some() || revert_str.is_some() || !rest.is_empty();
        (
            if any { rest } else { BTreeMap::new() },
            update,
            digest.filter(|d| !d.is_empty()),
        )
    }

    fn normalize_params(&self, kind: GuestKind, params: &mut BTreeMap<String, String>) {
        let (template, method) = update_method(kind);
        for (k, v) in params.iter_mut() {
            if k == "tags" {
                *v = pveconf::unique_tags(v);
            } else if self
                .schema
                .property(template, method, k)
                .and_then(|p| p.ty.as_deref())
                == Some("boolean")
                && let Some(b) = parse_boolean(v)
            {
                *v = if b { "1" } else { "0" }.to_string();
            }
        }
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/config` (pve-container `update_vm`): synchronous.
    pub fn lxc_update(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> ApiResult {
        let (_, mut update, digest) = Self::split_update(params);
        if update.delete.is_empty()
            && update.revert.is_empty()
            && update.params.is_empty()
            && !params.contains_key("delete")
            && !params.contains_key("revert")
        {
            return die("no options specified");
        }
        self.lock_config(ctx, GuestKind::Lxc, vmid)?;
        let g = self.load(GuestKind::Lxc, vmid)?;
        if let Some(lock) = g.lock() {
            return die(format!("CT {vmid} is locked ({lock})"));
        }
        // PVE::Tools::assert_if_modified
        if digest.as_deref().is_some_and(|d| d != g.digest) {
            return die("detected modified configuration - file changed by other user? Try again.");
        }
        self.normalize_params(GuestKind::Lxc, &mut update.params);
        let Some(g) = self.guests.get_mut(&vmid) else {
            return Ok(Value::Null.into());
        };
        for opt in &update.delete {
            g.conf.pending.remove(opt);
            g.conf.pending_delete.insert(opt.clone(), false);
        }
        for opt in &update.revert {
            g.conf.pending.remove(opt);
            g.conf.pending_delete.remove(opt);
        }
        for (k, v) in &update.params {
            g.conf.pending.insert(k.clone(), v.clone());
            g.conf.pending_delete.remove(k);
        }
        g.cleanup_pending();
        if g.running {
            g.hotplug_pending();
        } else {
            g.apply_all_pending();
        }
        g.sync();
        Ok(Value::Null.into())
    }

    /// `POST`/`PUT /nodes/{node}/qemu/{vmid}/config` (qemu-server `update_vm_api`).
    /// Checks run synchronously; the change itself runs in the `qmconfig` worker for POST.
    pub fn qemu_update(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
        sync: bool,
        now: Instant,
    ) -> ApiResult {
        let (_, mut update, digest) = Self::split_update(params);
        if update.delete.is_empty()
            && update.revert.is_empty()
            && update.params.is_empty()
            && !params.contains_key("delete")
            && !params.contains_key("revert")
        {
            return die("no options specified");
        }
        for opt in &update.delete {
            if update.params.contains_key(opt) {
                return Err(ApiError::Param(BTreeMap::from([(
                    "delete".to_string(),
                    format!("you can't use '-{opt}' and -delete {opt}' at the same time"),
                )])));
            }
        }
        self.lock_config(ctx, GuestKind::Qemu, vmid)?;
        let g = self.load(GuestKind::Qemu, vmid)?;
        // qemu-server uses its own text here, not PVE::Tools::assert_if_modified's.
        if digest.as_deref().is_some_and(|d| d != g.digest) {
            return die("checksum missmatch (file change by other user?)");
        }
        let skiplock = params
            .get("skiplock")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        if let (Some(lock), false) = (g.lock(), skiplock) {
            return die(format!("VM {vmid} is locked ({lock})"));
        }
        self.normalize_params(GuestKind::Qemu, &mut update.params);
        if sync {
            if let Some(g) = self.guests.get_mut(&vmid) {
                // Warnings of a synchronous call only reach the daemon's log.
                let _ = apply_qemu_update(g, &update);
            }
            return Ok(Value::Null.into());
        }
        let mut paramarr: Vec<String> = Vec::new();
        if !update.delete.is_empty() {
            paramarr.push(format!("-delete {}", update.delete.join(",")));
        }
        for (k, v) in &update.params {
            paramarr.push(format!("-{k} '{v}'"));
        }
        let log = vec![format!("update VM {vmid}: {}", paramarr.join(" "))];
        // Deleting an option that is not set only warns (`warn "cannot delete ..."`), which
        // makes the worker end with "WARNINGS: n".
        let warnings = update
            .delete
            .iter()
            .filter(|o| !g.conf.main.contains_key(*o) && !g.conf.pending.contains_key(*o))
            .count() as u32;
        let outcome = if warnings > 0 {
            Outcome::Warnings(warnings)
        } else {
            Outcome::Ok
        };
        let upid = self.new_task(
            ctx,
            "qmconfig",
            vmid,
            outcome,
            Effect::QemuUpdate { vmid, update },
            log,
            now,
        );
        Ok(json!(upid).into())
    }

    /// `POST .../status/{action}`.
    pub fn power(
        &mut self,
        ctx: &Ctx,
        kind: GuestKind,
        vmid: u32,
        action: &str,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let skiplock = params
            .get("skiplock")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        let running = self.running(kind, vmid);
        let exists = self.guests.get(&vmid).is_some_and(|g| g.kind == kind);
        let lock = self
            .guests
            .get(&vmid)
            .filter(|g| g.kind == kind)
            .and_then(|g| g.lock().map(str::to_string));
        let template = self.guests.get(&vmid).is_some_and(|g| g.is_template());
        let l = label(kind);
        let locked_err =
            |lock: &Option<String>| lock.as_ref().map(|x| format!("{l} {vmid} is locked ({x})"));
        let missing = self.not_exists_msg(kind, vmid);
        let (ty, outcome, effect) = match (kind, action) {
            // pve-container src/PVE/API2/LXC/Status.pm
            (GuestKind::Lxc, "start") => {
                if running {
                    return die(format!("CT {vmid} already running"));
                }
                self.lock_config(ctx, kind, vmid)?;
                let outcome = if !exists {
                    Outcome::Error(missing)
                } else if template {
                    Outcome::Error("you can't start a CT if it's a template".into())
                } else if let (Some(e), false) = (
                    locked_err(&lock),
                    skiplock || lock.as_deref() == Some("mounted"),
                ) {
                    Outcome::Error(e)
                } else {
                    Outcome::Ok
                };
                ("vzstart", outcome, Effect::Start(vmid))
            }
            (GuestKind::Lxc, "stop" | "shutdown") => {
                if !running {
                    return die(format!("CT {vmid} not running"));
                }
                self.lock_config(ctx, kind, vmid)?;
                let skip = action == "stop" && (skiplock || lock.as_deref() == Some("mounted"));
                let force = params
                    .get("forceStop")
                    .is_some_and(|v| parse_boolean(v) == Some(true));
                let outcome = match (locked_err(&lock), skip) {
                    (Some(e), false) => Outcome::Error(e),
                    // pve-container LXC.pm vm_stop: `lxc-stop --nokill --timeout N` gives
                    // up, the worker waits, then dies; without --nokill it kills.
                    _ if action == "shutdown" && ctx.shutdown_ignored && !force => {
                        Outcome::Error("container did not stop".into())
                    }
                    _ => Outcome::Ok,
                };
                let effect = if matches!(outcome, Outcome::Error(_)) {
                    Effect::None
                } else {
                    Effect::Stop(vmid)
                };
                (
                    if action == "stop" {
                        "vzstop"
                    } else {
                        "vzshutdown"
                    },
                    outcome,
                    effect,
                )
            }
            (GuestKind::Lxc, "reboot") => {
                if !running {
                    // sic: pve-container's vm_reboot says "VM", not "CT".
                    return die(format!("VM {vmid} not running"));
                }
                ("vzreboot", Outcome::Ok, Effect::Reboot(vmid))
            }
            // qemu-server PVE/API2/Qemu.pm: start/stop/shutdown do their checks in the worker
            // (under the config lock), so they fail as tasks.
            (GuestKind::Qemu, "start") => {
                let outcome = if ctx.lock_timeout {
                    Outcome::Error(lock_timeout_msg(kind, vmid))
                } else if !exists {
                    Outcome::Error(missing)
                } else if template {
                    Outcome::Error("you can't start a vm if it's a template".into())
                } else if let (Some(e), false) = (
                    locked_err(&lock),
                    skiplock || lock.as_deref() == Some("suspended"),
                ) {
                    Outcome::Error(e)
                } else if running {
                    Outcome::Error(format!("VM {vmid} already running"))
                } else {
                    Outcome::Ok
                };
                ("qmstart", outcome, Effect::Start(vmid))
            }
            (GuestKind::Qemu, "stop" | "shutdown") => {
                let outcome = if ctx.lock_timeout {
                    Outcome::Error(lock_timeout_msg(kind, vmid))
                } else if !exists {
                    Outcome::Error(missing)
                } else if let (Some(e), false) = (locked_err(&lock), skiplock) {
                    Outcome::Error(e)
                } else if action == "shutdown" && running && ctx.shutdown_ignored {
                    // qemu-server QemuServer.pm _do_vm_stop: the powerdown wait runs out.
                    if params
                        .get("forceStop")
                        .is_some_and(|v| parse_boolean(v) == Some(true))
                    {
                        Outcome::Warnings(1)
                    } else {
                        Outcome::Error("VM quit/powerdown failed - got timeout".into())
                    }
                } else {
                    // Stopping a stopped VM is a no-op that ends OK.
                    Outcome::Ok
                };
                let effect = if matches!(outcome, Outcome::Error(_)) {
                    Effect::None
                } else {
                    Effect::Stop(vmid)
                };
                (
                    if action == "stop" {
                        "qmstop"
                    } else {
                        "qmshutdown"
                    },
                    outcome,
                    effect,
                )
            }
            (GuestKind::Qemu, "reboot") => {
                if !running {
                    return die(format!("VM {vmid} not running"));
                }
                let outcome = if ctx.lock_timeout {
                    Outcome::Error(lock_timeout_msg(kind, vmid))
                } else if let Some(e) = locked_err(&lock) {
                    Outcome::Error(e)
                } else {
                    Outcome::Ok
                };
                ("qmreboot", outcome, Effect::Reboot(vmid))
            }
            _ => return Err(ApiError::NotImplemented(format!("status/{action}"))),
        };
        let upid = self.new_task(ctx, ty, vmid, outcome, effect, Vec::new(), now);
        Ok(json!(upid).into())
    }

    /// `DELETE /nodes/{node}/{lxc|qemu}/{vmid}`.
    pub fn destroy(
        &mut self,
        ctx: &Ctx,
        kind: GuestKind,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let flag = |k: &str| {
            params
                .get(k)
                .is_some_and(|v| parse_boolean(v) == Some(true))
        };
        let g = self.load(kind, vmid)?;
        let protected = g
            .conf
            .main
            .get("protection")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        let lock = g.lock().map(str::to_string);
        let running = g.running;
        let mut log = Vec::new();
        let outcome = match kind {
            // pve-container API2/LXC.pm destroy_vm: early checks run before the worker.
            GuestKind::Lxc => {
                if protected {
                    return die(format!("can't remove CT {vmid} - protection mode enabled"));
                }
                if let Some(l) = lock {
                    return die(format!("CT {vmid} is locked ({l})"));
                }
                if running && !flag("force") {
                    return die(format!(
                        "unable to destroy CT {vmid} - container is running"
                    ));
                }
                self.lock_config(ctx, kind, vmid)?;
                Outcome::Ok
            }
            // qemu-server API2/Qemu.pm destroy_vm: early checks, lock checked in the worker.
            GuestKind::Qemu => {
                if protected {
                    return die(format!("can't remove VM {vmid} - protection mode enabled"));
                }
                if running {
                    return die(format!("VM {vmid} is running - destroy failed"));
                }
                match (lock, flag("skiplock")) {
                    (Some(l), false) => Outcome::Error(format!("VM {vmid} is locked ({l})")),
                    _ => Outcome::Ok,
                }
            }
        };
        if flag("purge") {
            log.push(format!(
                "purging {} {vmid} from related configurations..",
                label(kind)
            ));
        }
        let ty = match kind {
            GuestKind::Lxc => "vzdestroy",
            GuestKind::Qemu => "qmdestroy",
        };
        let upid = self.new_task(ctx, ty, vmid, outcome, Effect::Destroy { vmid }, log, now);
        Ok(json!(upid).into())
    }

    pub fn task_list(&self, params: &BTreeMap<String, String>) -> ApiResult {
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let start = num("start", 0);
        let limit = num("limit", 50);
        let source = params
            .get("source")
            .map(String::as_str)
            .unwrap_or("archive");
        let vmid = params.get("vmid");
        let since: Option<u64> = params.get("since").and_then(|v| v.parse().ok());
        let until: Option<u64> = params.get("until").and_then(|v| v.parse().ok());
        let typefilter = params.get("typefilter");
        let userfilter = params.get("userfilter").map(|u| u.to_lowercase());
        let errors = params
            .get("errors")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        let mut matched: Vec<Value> = Vec::new();
        for upid in self.task_order.iter().rev() {
            let Some(t) = self.tasks.get(upid) else {
                continue;
            };
            let finished = t.exitstatus.is_some();
            let src_ok = match source {
                "active" => !finished,
                "all" => true,
                _ => finished,
            };
            if !src_ok
                || vmid.is_some_and(|v| *v != t.id)
                || since.is_some_and(|s| t.starttime < s)
                || until.is_some_and(|u| t.starttime > u)
                || typefilter.is_some_and(|f| *f != t.ty)
                || userfilter
                    .as_ref()
                    .is_some_and(|u| !t.user.to_lowercase().contains(u.as_str()))
                || (errors && t.exitstatus.as_deref().is_none_or(|s| s == "OK"))
            {
                continue;
            }
            matched.push(self.task_json(t, true));
        }
        let total = matched.len();
        let page: Vec<Value> = matched.into_iter().skip(start).take(limit).collect();
        Ok(Reply {
            data: Value::Array(page),
            total: Some(total),
        })
    }

    pub fn task_status(&self, upid: &str) -> ApiResult {
        let decoded = decode_upid(upid)?;
        match self.tasks.get(upid) {
            Some(t) => Ok(self.task_json(t, false).into()),
            None => {
                // PVE::Tools::upid_read_status on a task without a log file.
                let mut v = decoded;
                v["status"] = json!("stopped");
                v["exitstatus"] = json!("unable to open file - No such file or directory");
                Ok(v.into())
            }
        }
    }

    pub fn task_log(&self, upid: &str, params: &BTreeMap<String, String>) -> ApiResult {
        decode_upid(upid)?;
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let start = num("start", 0);
        let limit = num("limit", 50);
        let Some(t) = self.tasks.get(upid) else {
            return die(format!(
                "unable to open file '/var/log/pve/tasks/{upid}' - No such file or directory"
            ));
        };
        let lines: Vec<Value> = t
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect();
        Ok(Reply {
            data: Value::Array(lines),
            total: Some(t.log.len()),
        })
    }
}

fn apply_qemu_update(g: &mut Guest, u: &Update) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut params = u.params.clone();
    let mut delete = u.delete.clone();
    for opt in &u.revert {
        if let Some(v) = g.conf.main.get(opt) {
            params.insert(opt.clone(), v.clone());
        } else if g.conf.pending.contains_key(opt) {
            delete.push(opt.clone());
        }
    }
    for opt in &delete {
        if !g.conf.main.contains_key(opt) && !g.conf.pending.contains_key(opt) {
            warnings.push(format!(
                "cannot delete '{opt}' - not set in current configuration!"
            ));
            continue;
        }
        g.conf.pending.remove(opt);
        if opt == "tags" {
            g.conf.main.remove(opt);
        } else {
            g.conf.pending_delete.insert(opt.clone(), u.force);
        }
    }
    for (k, v) in &params {
        if g.conf.pending.get(k) == Some(v) {
            continue;
        }
        g.conf.pending.insert(k.clone(), v.clone());
        g.conf.pending_delete.remove(k);
    }
    g.cleanup_pending();
    if g.running {
        g.hotplug_pending();
    } else {
        g.apply_all_pending();
    }
    g.sync();
    warnings
}

fn update_method(kind: GuestKind) -> (&'static str, &'static str) {
    match kind {
        GuestKind::Lxc => ("/nodes/{node}/lxc/{vmid}/config", "PUT"),
        GuestKind::Qemu => ("/nodes/{node}/qemu/{vmid}/config", "POST"),
    }
}

/// Config values as `check_type` leaves them when parsing: integers and booleans become
/// numbers in the JSON, everything else stays a string.
fn typed_value(ty: Option<&str>, v: &str) -> Value {
    match ty {
        Some("integer") => v
            .trim_start_matches('+')
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        Some("boolean") => match parse_boolean(v) {
            Some(b) => json!(u8::from(b)),
            None => json!(v),
        },
        Some("number") => v
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| json!(v)),
        _ => json!(v),
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

/// `PVE::Tools::upid_decode`.
fn decode_upid(upid: &str) -> Result<Value, ApiError> {
    let bad = || die::<Value>(format!("unable to parse worker upid '{upid}'"));
    let parts: Vec<&str> = upid.split(':').collect();
    if parts.len() != 9 || parts[0] != "UPID" || !parts[8].is_empty() {
        return bad();
    }
    let hex = |s: &str, min: usize, max: usize| {
        (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    let (Some(pid), Some(pstart), Some(starttime)) = (
        hex(parts[2], 8, 8),
        hex(parts[3], 8, 9),
        hex(parts[4], 8, 8),
    ) else {
        return bad();
    };
    if parts[1].is_empty() || parts[5].is_empty() || parts[7].is_empty() {
        return bad();
    }
    Ok(json!({
        "upid": upid, "node": parts[1], "pid": pid, "pstart": pstart, "starttime": starttime,
        "type": parts[5], "id": parts[6], "user": parts[7],
    }))
}
