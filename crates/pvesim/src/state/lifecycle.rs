//! Creating and restoring guests: `POST /nodes/{node}/lxc` (pve-container
//! `src/PVE/API2/LXC.pm` `create_vm`) and `POST /nodes/{node}/qemu` (qemu-server
//! `src/PVE/API2/Qemu.pm` `create_vm`), with the `create` config lock held while the
//! `vzcreate`/`vzrestore`/`qmcreate`/`qmrestore` worker runs.

use super::*;

/// Request parameters with PVE's boolean reading.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params<'a>(pub(super) &'a BTreeMap<String, String>);

impl<'a> Params<'a> {
    pub(super) fn get(&self, k: &str) -> Option<&'a str> {
        self.0.get(k).map(String::as_str)
    }

    pub(super) fn flag(&self, k: &str) -> bool {
        self.0
            .get(k)
            .is_some_and(|v| parse_boolean(v) == Some(true))
    }

    pub(super) fn vmid(&self, k: &str) -> u32 {
        self.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// `PVE::AbstractConfig::check_lock` (pve-guest-common): `CT is locked (backup)` — the
/// real text names the guest type but not the VMID.
pub(super) fn check_lock_msg(kind: GuestKind, lock: &str) -> String {
    format!("{} is locked ({lock})", label(kind))
}

pub(super) fn param_err(key: &str, msg: impl Into<String>) -> ApiError {
    ApiError::Param(BTreeMap::from([(key.to_string(), msg.into())]))
}

/// `PVE::Tools::random_ether_addr` with the default `BC:24:11` prefix.
pub(super) fn random_mac() -> String {
    let b: [u8; 3] = rand::random();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// `PVE::QemuServer::generate_uuid`.
pub(super) fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A net option with a fresh MAC: LXC `hwaddr=`, QEMU `MODEL=MAC`.
pub(super) fn with_new_mac(kind: GuestKind, value: &str) -> String {
    let mut parts: Vec<String> = value.split(',').map(str::to_string).collect();
    match kind {
        GuestKind::Lxc => {
            parts.retain(|p| !p.starts_with("hwaddr="));
            parts.push(format!("hwaddr={}", random_mac()));
            let (first, rest) = parts.split_at(1);
            let mut rest = rest.to_vec();
            rest.sort();
            [first.to_vec(), rest].concat().join(",")
        }
        GuestKind::Qemu => {
            if let Some(first) = parts.first_mut() {
                let model = first.split('=').next().unwrap_or("virtio").to_string();
                *first = format!("{model}={}", random_mac());
            }
            parts.join(",")
        }
    }
}

/// Parameters of the create calls that are not config keys.
const LXC_CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "password",
    "storage",
    "force",
    "restore",
    "unique",
    "pool",
    "ignore-unpack-errors",
    "ssh-public-keys",
    "bwlimit",
    "start",
    "ha-managed",
];
const QEMU_CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "archive",
    "bwlimit",
    "force",
    "pool",
    "start",
    "ha-managed",
    "storage",
    "unique",
    "live-restore",
    "import-working-storage",
];

/// The OS type PVE detects from a template name (`debian-12-standard_...` → `debian`).
fn ostype_of_template(volid: &str) -> &'static str {
    let file = volid.rsplit('/').next().unwrap_or(volid);
    let first = file.split(['-', '_']).next().unwrap_or("");
    [
        "debian",
        "devuan",
        "ubuntu",
        "centos",
        "fedora",
        "opensuse",
        "archlinux",
        "alpine",
        "gentoo",
        "nixos",
    ]
    .into_iter()
    .find(|o| *o == first)
    .unwrap_or("unmanaged")
}

/// How a create/restore worker ends.
struct Worker {
    conf: BTreeMap<String, String>,
    plan: Plan,
    log: Vec<String>,
}

/// A worker failure: the error, and whether the guest had already been modified.
struct Failure {
    err: String,
    late: bool,
}

fn early(err: impl Into<String>) -> Failure {
    Failure {
        err: err.into(),
        late: false,
    }
}

fn late(err: impl Into<String>) -> Failure {
    Failure {
        err: err.into(),
        late: true,
    }
}

impl State {
    /// `PVE::Cluster::check_vmid_unused`'s error, if the VMID is taken.
    pub(super) fn vmid_used_msg(&self, vmid: u32) -> Option<String> {
        self.guests.get(&vmid).map(|g| {
            format!(
                "{} {vmid} already exists on node '{}'",
                label(g.kind),
                self.node
            )
        })
    }

    /// `PVE::Storage::check_volume_access` with a content type, then the file's existence
    /// (`abs_filesystem_path`: `can't find file`).
    pub(super) fn check_archive(&self, volid: &str, content: &str) -> Result<&Volume, String> {
        if storage::parse_volume_id(volid).is_none() {
            return Err(format!("can't find file '{volid}'"));
        }
        let (_, _, parsed) = self.parse_volid(volid)?;
        if parsed.vtype.as_str() != content {
            return Err(format!(
                "unable to use volume {volid} - content type needs to be '{content}'"
            ));
        }
        self.volume(volid)
            .ok_or_else(|| format!("can't find file '{volid}'"))
    }

    /// `create_and_lock_config`: the config written with only (or additionally) `lock: create`.
    fn lock_for_create(&mut self, vmid: u32, kind: GuestKind) {
        let mut conf = match self.guests.get(&vmid) {
            Some(g) if g.kind == kind => g.conf.main.clone(),
            _ => BTreeMap::new(),
        };
        conf.insert("lock".into(), "create".into());
        let running = self.running(kind, vmid);
        self.put_guest(vmid, kind, conf, running);
    }

    /// Spawns a create/restore worker's task.
    #[allow(clippy::too_many_arguments)]
    fn spawn_create(
        &mut self,
        ctx: &Ctx,
        (ty, kind, vmid): (&str, GuestKind, u32),
        result: Result<Worker, Failure>,
        existed: bool,
        emsg: Option<&str>,
        (start, ha): (bool, bool),
        now: Instant,
    ) -> String {
        let mut remove_old: Vec<Op> = Vec::new();
        if existed && let Some(g) = self.guests.get(&vmid) {
            for v in self.owned_volumes(g) {
                remove_old.push(Op::RemoveVolume { volid: v });
            }
        }
        // Failures injected by faults count as failing after the disks were touched.
        let late_fail = result.as_ref().map_or_else(|f| f.late, |_| true);
        let cleanup_op = match (kind, ty) {
            // A failed restore keeps the (possibly empty) config, only the lock goes.
            (GuestKind::Qemu, "qmrestore") => Op::RemoveLock {
                vmid,
                lock: "create".into(),
            },
            // LXC: the config of an existing CT survives errors before its disks were
            // touched; otherwise (and for a failed `qmcreate`) it is removed.
            (GuestKind::Lxc, _) if existed && !late_fail => Op::RemoveLock {
                vmid,
                lock: "create".into(),
            },
            _ => Op::RemoveGuest(vmid),
        };
        let spec = match result {
            Ok(w) => {
                let mut ops = remove_old;
                ops.extend(w.plan.add_ops());
                ops.push(Op::PutGuest {
                    vmid,
                    kind,
                    conf: w.conf,
                    running: start,
                });
                if ha {
                    ops.push(Op::SetHa {
                        vmid,
                        managed: true,
                    });
                }
                TaskSpec::new(ty, vmid.to_string(), Outcome::Ok)
                    .effect(ops)
                    .log(w.log)
            }
            Err(f) => {
                let err = match emsg {
                    Some(e) => format!("{e} {}", f.err),
                    None => f.err,
                };
                TaskSpec::new(ty, vmid.to_string(), Outcome::Error(err))
            }
        };
        self.spawn(ctx, spec.cleanup(vec![cleanup_op]), now)
    }

    /// `POST /nodes/{node}/lxc`.
    pub fn lxc_create(
        &mut self,
        ctx: &Ctx,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let p = Params(params);
        let vmid = p.vmid("vmid");
        let restore = p.flag("restore");
        let existing = self.guests.get(&vmid).cloned();
        let same_ct = existing.as_ref().is_some_and(|g| g.kind == GuestKind::Lxc);
        if !(same_ct && restore && p.flag("force")) {
            if let Some(m) = self.vmid_used_msg(vmid) {
                return die(m);
            }
        } else if let Some(g) = &existing {
            if g.running {
                return die("can't overwrite running container");
            }
            if g.conf
                .main
                .get("protection")
                .is_some_and(|v| parse_boolean(v) == Some(true))
            {
                return die(format!(
                    "unable to restore CT {vmid} - protection mode enabled"
                ));
            }
        }
        let ostemplate = p.get("ostemplate").unwrap_or("");
        let content = if restore { "backup" } else { "vztmpl" };
        if storage::parse_volume_id(ostemplate).is_some() {
            let (_, _, parsed) = self.parse_volid(ostemplate).or_else(die)?;
            if parsed.vtype.as_str() != content {
                return die(format!(
                    "unable to use volume {ostemplate} - content type needs to be '{content}'"
                ));
            }
        }
        let storage = p.get("storage").unwrap_or("local").to_string();
        let (mp_param, mut other) = split_ct_params(params, &storage);
        self.check_ct_storages(&mp_param, &storage)?;
        let emsg = if restore {
            format!("unable to restore CT {vmid} -")
        } else {
            format!("unable to create CT {vmid} -")
        };
        if let Some(lock) = existing.as_ref().and_then(|g| g.lock()) {
            return die(format!("{emsg} {}", check_lock_msg(GuestKind::Lxc, lock)));
        }
        self.lock_config(ctx, GuestKind::Lxc, vmid)?;
        self.normalize_params(GuestKind::Lxc, &mut other);
        let result = if restore {
            self.lxc_restore_worker(
                vmid,
                ostemplate,
                &storage,
                mp_param,
                other,
                p.flag("unique"),
            )
        } else {
            self.lxc_create_worker(vmid, ostemplate, &storage, mp_param, other)
        };
        let ty = if restore { "vzrestore" } else { "vzcreate" };
        self.lock_for_create(vmid, GuestKind::Lxc);
        let flags = (p.flag("start"), p.flag("ha-managed"));
        let key = (ty, GuestKind::Lxc, vmid);
        let upid = self.spawn_create(ctx, key, result, same_ct, Some(&emsg), flags, now);
        Ok(json!(upid).into())
    }

    /// `$check_and_activate_storage` for each mount point's storage (or the default).
    fn check_ct_storages(
        &self,
        mp_param: &BTreeMap<String, String>,
        storage: &str,
    ) -> Result<(), ApiError> {
        if !mp_param.is_empty() && !mp_param.contains_key("rootfs") {
            return die("mount points configured, but 'rootfs' not set - aborting");
        }
        let mut sids: Vec<String> = mp_param
            .values()
            .filter_map(|v| {
                let spec = VolSpec::parse(v);
                storage::parse_volume_id(&spec.volid).map(|(s, _)| s.to_string())
            })
            .collect();
        if mp_param.is_empty() {
            sids.push(storage.to_string());
        }
        for sid in sids {
            let st = self.storage_cfg(&sid).or_else(die)?;
            if !st.has_content("rootdir") {
                return Err(param_err(
                    "storage",
                    format!("storage '{sid}' does not support container directories"),
                ));
            }
        }
        Ok(())
    }

    /// Plans the volumes of `mp_param` (`create_disks`), returning the final values.
    fn plan_ct_disks(
        &self,
        vmid: u32,
        mp_param: &BTreeMap<String, String>,
        plan: &mut Plan,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut keys: Vec<&String> = mp_param.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "rootfs", k.len(), k.to_string()));
        for k in keys {
            let mut spec = VolSpec::parse(&mp_param[k]);
            if let Some((Some(sid), gib)) = new_disk_request(&spec.volid) {
                let size = (gib * GIB as f64) as u64;
                let format = self.storage_cfg(sid)?.ct_format();
                spec.volid = self.plan_alloc(plan, sid, vmid, format, size)?;
                spec.set("size", format_size(size));
            }
            out.insert(k.clone(), spec.render());
        }
        Ok(out)
    }

    fn lxc_create_worker(
        &self,
        vmid: u32,
        ostemplate: &str,
        storage: &str,
        mut mp_param: BTreeMap<String, String>,
        other: BTreeMap<String, String>,
    ) -> Result<Worker, Failure> {
        if mp_param.is_empty() {
            // "defaults to 4GB"
            mp_param.insert("rootfs".into(), format!("{storage}:4"));
        }
        let mut plan = Plan::default();
        let disks = self
            .plan_ct_disks(vmid, &mp_param, &mut plan)
            .map_err(late)?;
        let tmpl = self.check_archive(ostemplate, "vztmpl").map_err(late)?;
        let mut conf = other;
        conf.extend(disks);
        conf.entry("unprivileged".into())
            .or_insert_with(|| "1".into());
        conf.entry("arch".into()).or_insert_with(|| "amd64".into());
        conf.entry("ostype".into())
            .or_insert_with(|| ostype_of_template(&tmpl.volname).into());
        ct_defaults(vmid, &mut conf);
        Ok(Worker {
            conf,
            plan,
            log: Vec::new(),
        })
    }

    fn lxc_restore_worker(
        &self,
        vmid: u32,
        archive: &str,
        storage: &str,
        mp_param: BTreeMap<String, String>,
        other: BTreeMap<String, String>,
        unique: bool,
    ) -> Result<Worker, Failure> {
        let vol = self.check_archive(archive, "backup").map_err(early)?;
        let mut log = vec![format!(
            "recovering backed-up configuration from '{archive}'"
        )];
        let orig = vol
            .backup
            .as_ref()
            .map(|b| b.config.clone())
            .unwrap_or_default();
        let mp_param = if mp_param.is_empty() {
            restored_mountpoints(&orig, storage).map_err(early)?
        } else {
            mp_param
        };
        let mut plan = Plan::default();
        let disks = self
            .plan_ct_disks(vmid, &mp_param, &mut plan)
            .map_err(late)?;
        log.push(format!("restoring '{archive}' now.."));
        log.push("merging backed-up and given configuration..".into());
        let mut conf: BTreeMap<String, String> = orig
            .iter()
            .filter(|(k, _)| {
                !is_volume_key(GuestKind::Lxc, k) && !matches!(k.as_str(), "lock" | "template")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        conf.extend(other);
        conf.extend(disks);
        if unique {
            for (k, v) in conf.iter_mut() {
                if is_indexed(k, &["net"]) {
                    *v = with_new_mac(GuestKind::Lxc, v);
                }
            }
        }
        ct_defaults(vmid, &mut conf);
        if orig.get("template").is_some_and(|t| t == "1") {
            log.push("Convert restored container to template...".into());
            self.plan_template(&mut plan, &mut conf, GuestKind::Lxc);
        }
        Ok(Worker { conf, plan, log })
    }

    /// Turns the plan's volumes into base volumes and marks the config a template.
    pub(super) fn plan_template(
        &self,
        plan: &mut Plan,
        conf: &mut BTreeMap<String, String>,
        kind: GuestKind,
    ) {
        for (volid, vol) in plan.added.iter_mut() {
            let Some((sid, name)) =
                storage::parse_volume_id(volid).map(|(s, n)| (s.to_string(), n.to_string()))
            else {
                continue;
            };
            let Some(st) = self.storages.get(&sid) else {
                continue;
            };
            let base = st.base_name(&name);
            let new_volid = st.volid(&base);
            for v in conf.values_mut() {
                let mut spec = VolSpec::parse(v);
                if spec.volid == *volid {
                    spec.volid = new_volid.clone();
                    *v = spec.render();
                }
            }
            vol.volname = base;
            *volid = new_volid;
        }
        let _ = kind;
        conf.insert("template".into(), "1".into());
    }

    /// `POST /nodes/{node}/qemu`.
    pub fn qemu_create(
        &mut self,
        ctx: &Ctx,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let p = Params(params);
        let vmid = p.vmid("vmid");
        let archive = p.get("archive");
        if let Some(a) = archive {
            if let Some(k) = params.keys().find(|k| is_drive_key(k)) {
                return Err(param_err(k, "option conflicts with option 'archive'"));
            }
            self.check_archive(a, "backup").or_else(die)?;
        }
        let storage = p.get("storage");
        let mut other: BTreeMap<String, String> = params
            .iter()
            .filter(|(k, _)| !QEMU_CREATE_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.check_qemu_storage_access(&other, storage)?;
        let emsg = if archive.is_some() {
            format!("unable to restore VM {vmid} -")
        } else {
            format!("unable to create VM {vmid} -")
        };
        let existing = self.guests.get(&vmid).cloned();
        if let Some(g) = &existing {
            if !p.flag("force") || g.kind != GuestKind::Qemu {
                return die(format!(
                    "{emsg} {}",
                    self.vmid_used_msg(vmid).unwrap_or_default()
                ));
            }
            if let Some(lock) = g.lock() {
                return die(format!("{emsg} {}", check_lock_msg(GuestKind::Qemu, lock)));
            }
        }
        self.lock_config(ctx, GuestKind::Qemu, vmid)?;
        self.normalize_params(GuestKind::Qemu, &mut other);
        let flags = (p.flag("start"), p.flag("ha-managed"));
        let (ty, result, emsg) = match archive {
            Some(a) => {
                let r = self.qemu_restore_worker(vmid, a, storage, other, p.flag("unique"), &emsg);
                ("qmrestore", r, None)
            }
            None => (
                "qmcreate",
                self.qemu_create_worker(vmid, storage, other),
                Some(emsg.as_str()),
            ),
        };
        self.lock_for_create(vmid, GuestKind::Qemu);
        let key = (ty, GuestKind::Qemu, vmid);
        let upid = self.spawn_create(ctx, key, result, existing.is_some(), emsg, flags, now);
        Ok(json!(upid).into())
    }

    /// qemu-server `$check_storage_access` for the drives of a create call.
    fn check_qemu_storage_access(
        &self,
        conf: &BTreeMap<String, String>,
        default: Option<&str>,
    ) -> Result<(), ApiError> {
        for (k, v) in conf.iter().filter(|(k, _)| is_drive_key(k)) {
            let spec = VolSpec::parse(v);
            if spec.is_cdrom() && matches!(spec.volid.as_str(), "none" | "cdrom") {
                continue;
            }
            if let (false, Some((sid, _))) = (spec.is_cdrom(), new_disk_request(&spec.volid)) {
                let Some(sid) = sid.or(default) else {
                    return die("no storage ID specified (and no default storage)");
                };
                let st = self.storage_cfg(sid).or_else(die)?;
                if !st.has_content("images") {
                    return Err(param_err(
                        "storage",
                        format!("storage '{sid}' does not support vm images"),
                    ));
                }
                continue;
            }
            let (_, _, parsed) = self.parse_volid(&spec.volid).or_else(die)?;
            if !matches!(parsed.vtype, VType::Images | VType::Iso) {
                return Err(param_err(k, "content type needs to be 'images' or 'iso'"));
            }
        }
        Ok(())
    }

    fn qemu_create_worker(
        &self,
        vmid: u32,
        default: Option<&str>,
        params: BTreeMap<String, String>,
    ) -> Result<Worker, Failure> {
        let mut plan = Plan::default();
        let mut conf = params;
        for (k, v) in conf.iter_mut() {
            if is_drive_key(k) {
                *v = self
                    .plan_qemu_disk(vmid, k, v, default, &mut plan)
                    .map_err(late)?;
            } else if is_indexed(k, &["net"]) && !v.split(',').next().unwrap_or("").contains('=') {
                // add_random_macs
                *v = with_new_mac(GuestKind::Qemu, v);
            }
        }
        if let Some(t) = conf.get("tags").cloned() {
            conf.insert("tags".into(), pveconf::unique_tags(&t));
        }
        if !conf.contains_key("boot") {
            let boot = default_boot(&conf_keys(&conf));
            conf.insert("boot".into(), boot);
        }
        conf.entry("smbios1".into())
            .or_insert_with(|| format!("uuid={}", random_uuid()));
        if conf.get("vmgenid").is_none_or(|v| v == "1") {
            conf.insert("vmgenid".into(), random_uuid());
        }
        conf.insert(
            "meta".into(),
            format!("creation-qemu=10.0.2,ctime={}", epoch(SystemTime::now())),
        );
        Ok(Worker {
            conf,
            plan,
            log: Vec::new(),
        })
    }

    /// One drive of a create call: a new volume for `STORAGE:SIZE`, anything else kept.
    fn plan_qemu_disk(
        &self,
        vmid: u32,
        key: &str,
        value: &str,
        default: Option<&str>,
        plan: &mut Plan,
    ) -> Result<String, String> {
        let mut spec = VolSpec::parse(value);
        let Some((sid, gib)) = new_disk_request(&spec.volid).filter(|_| !spec.is_cdrom()) else {
            return Ok(value.to_string());
        };
        let sid = sid.or(default).unwrap_or_default().to_string();
        // Fixed sizes: OVMF vars (528K for 4m, 128K for 2m) and the TPM state (4M).
        let size = match key {
            "efidisk0" if spec.opt("efitype") == Some("4m") => 528 << 10,
            "efidisk0" => 128 << 10,
            "tpmstate0" => 4 << 20,
            _ => (gib * GIB as f64) as u64,
        };
        let st = self.storage_cfg(&sid)?;
        let format = match spec.opt("format") {
            Some(f @ ("qcow2" | "vmdk")) if is_dir_like(&st.ty) => f.to_string(),
            _ => "raw".to_string(),
        };
        spec.remove("format");
        spec.volid = self.plan_alloc(plan, &sid, vmid, &format, size)?;
        spec.set("size", format_size(size));
        Ok(spec.render())
    }

    fn qemu_restore_worker(
        &self,
        vmid: u32,
        archive: &str,
        storage: Option<&str>,
        other: BTreeMap<String, String>,
        unique: bool,
        emsg: &str,
    ) -> Result<Worker, Failure> {
        if let Some(g) = self.guests.get(&vmid) {
            if g.conf
                .main
                .get("protection")
                .is_some_and(|v| parse_boolean(v) == Some(true))
            {
                // check_protection($conf, $emsg): "$err_msg - protection mode enabled".
                return Err(early(format!("{emsg} - protection mode enabled")));
            }
            if g.running {
                return Err(early(format!("{emsg} vm is running")));
            }
        }
        let orig = self
            .volume(archive)
            .and_then(|v| v.backup.as_ref())
            .map(|b| b.config.clone())
            .unwrap_or_default();
        let mut plan = Plan::default();
        let mut conf: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &orig {
            if matches!(k.as_str(), "lock" | "template") || is_indexed(k, &["unused"]) {
                continue;
            }
            let value = if is_drive_key(k) {
                self.plan_restore_disk(vmid, v, storage, &mut plan)
                    .map_err(early)?
            } else if unique && is_indexed(k, &["net"]) {
                with_new_mac(GuestKind::Qemu, v)
            } else {
                v.clone()
            };
            conf.insert(k.clone(), value);
        }
        conf.extend(other);
        let mut log = Vec::new();
        if orig.get("template").is_some_and(|t| t == "1") {
            log.push("Convert to template.".into());
            self.plan_template(&mut plan, &mut conf, GuestKind::Qemu);
        }
        Ok(Worker { conf, plan, log })
    }

    /// A disk of a VM backup restored to `storage` (or where it was).
    fn plan_restore_disk(
        &self,
        vmid: u32,
        value: &str,
        storage: Option<&str>,
        plan: &mut Plan,
    ) -> Result<String, String> {
        let mut spec = VolSpec::parse(value);
        let Some((orig_sid, _)) = storage::parse_volume_id(&spec.volid) else {
            return Ok(value.to_string());
        };
        if spec.is_cdrom() {
            return Ok(value.to_string());
        }
        let sid = storage.unwrap_or(orig_sid).to_string();
        let st = self.storage_cfg(&sid)?;
        if !st.has_content("images") {
            // QemuServer.pm $parse_backup_hints
            return Err(format!(
                "Content type 'images' is not available on storage '{sid}'"
            ));
        }
        let size = spec.size().unwrap_or(0);
        let orig_fmt = VolSpec::parse(value)
            .volid
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_string();
        let format = if is_dir_like(&st.ty) && orig_fmt == "qcow2" {
            "qcow2"
        } else {
            "raw"
        };
        spec.volid = self.plan_alloc(plan, &sid, vmid, format, size)?;
        Ok(spec.render())
    }
}

/// The config's keys (for the default boot order).
fn conf_keys(conf: &BTreeMap<String, String>) -> Vec<(String, bool)> {
    conf.iter()
        .map(|(k, v)| (k.clone(), VolSpec::parse(v).is_cdrom()))
        .collect()
}

/// `get_default_bootdevices` + `print_bootorder`: disks and cdroms by bus (ide, sata,
/// scsi, virtio), then the first network device.
fn default_boot(keys: &[(String, bool)]) -> String {
    let rank = |k: &str| match pve_schema::indexed_base(k) {
        Some(("ide", n)) => Some((0, n)),
        Some(("sata", n)) => Some((1, n)),
        Some(("scsi", n)) => Some((2, n)),
        Some(("virtio", n)) => Some((3, n)),
        _ => None,
    };
    let mut devs: Vec<(u32, u32, &str)> = keys
        .iter()
        .filter_map(|(k, _)| rank(k).map(|(b, n)| (b, n, k.as_str())))
        .collect();
    devs.sort();
    let mut order: Vec<&str> = devs.into_iter().map(|(_, _, k)| k).collect();
    if let Some((net, _)) = keys.iter().find(|(k, _)| is_indexed(k, &["net"])) {
        order.push(net);
    }
    format!("order={}", order.join(";"))
}

/// Splits a container create call into mount points (numbers becoming `STORAGE:N`) and
/// the other config keys.
fn split_ct_params(
    params: &BTreeMap<String, String>,
    storage: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut mp = BTreeMap::new();
    let mut other = BTreeMap::new();
    for (k, v) in params {
        if LXC_CREATE_ONLY.contains(&k.as_str()) || is_indexed(k, &["unused"]) {
            continue;
        }
        if k == "rootfs" || is_indexed(k, &["mp"]) {
            let first = v.split(',').next().unwrap_or("");
            let value = if new_disk_request(first).is_some_and(|(s, _)| s.is_none()) {
                format!("{storage}:{v}")
            } else {
                v.clone()
            };
            mp.insert(k.clone(), value);
        } else {
            other.insert(k.clone(), v.clone());
        }
    }
    (mp, other)
}

/// The backed-up mount points as new volumes on `storage` of the same size.
fn restored_mountpoints(
    orig: &BTreeMap<String, String>,
    storage: &str,
) -> Result<BTreeMap<String, String>, String> {
    if !orig.contains_key("rootfs") {
        return Err(
            "rootfs configuration could not be recovered, please check and specify manually!"
                .into(),
        );
    }
    let mut out = BTreeMap::new();
    for (k, v) in orig
        .iter()
        .filter(|(k, _)| *k == "rootfs" || is_indexed(k, &["mp"]))
    {
        let mut spec = VolSpec::parse(v);
        if storage::parse_volume_id(&spec.volid).is_none() {
            continue;
        }
        let Some(size) = spec.size() else {
            return Err(format!(
                "unable to detect disk size - please specify {k} (size)"
            ));
        };
        spec.remove("size");
        spec.volid = format!("{storage}:{}", size as f64 / GIB as f64);
        out.insert(k.clone(), spec.render());
    }
    Ok(out)
}

/// The defaults create/restore set at the end.
fn ct_defaults(vmid: u32, conf: &mut BTreeMap<String, String>) {
    if conf.get("hostname").is_none_or(|h| h.is_empty()) {
        conf.insert("hostname".into(), format!("CT{vmid}"));
    }
    if conf.get("memory").is_none_or(|m| m == "0") {
        conf.insert("memory".into(), "512".into());
    }
    conf.entry("swap".into()).or_insert_with(|| "512".into());
}
