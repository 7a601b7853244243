//! Clone and template: `POST .../{vmid}/clone` (pve-container `src/PVE/API2/LXC.pm`
//! `clone_vm`, qemu-server `src/PVE/API2/Qemu.pm` `clone_vm`) and `POST .../{vmid}/template`
//! (the same files, `template`).

use super::*;

/// Config keys a clone does not copy (qemu-server `clone_vm`, pve-container `clone_vm`).
const NOT_CLONED: &[&str] = &[
    "snapshots",
    "parent",
    "snaptime",
    "vmstate",
    "snapstate",
    "runningcpu",
    "runningmachine",
    "running-nets-host-mtu",
    "template",
    "lock",
];

/// A clone's new volumes and config.
struct CloneWork {
    conf: BTreeMap<String, String>,
    plan: Plan,
}

impl State {
    /// The clone's target node check (`check_node_exists`; this node is a standalone one).
    fn check_target(&self, target: Option<&str>) -> Result<(), ApiError> {
        match target {
            Some(t) if t != self.node && t != "localhost" => {
                die(format!("no such cluster node '{t}'"))
            }
            _ => Ok(()),
        }
    }

    /// `POST .../{vmid}/clone`.
    pub fn clone_guest(
        &mut self,
        ctx: &Ctx,
        kind: GuestKind,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        match kind {
            GuestKind::Lxc => self.lxc_clone(ctx, vmid, params, now),
            GuestKind::Qemu => self.qemu_clone(ctx, vmid, params, now),
        }
    }

    fn lxc_clone(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let p = Params(params);
        let newid = p.vmid("newid");
        let storage = p.get("storage");
        self.check_target(p.get("target"))?;
        if let Some(s) = storage {
            self.storage_cfg(s).or_else(die)?;
        }
        // set_lock($vmid, 'disk'), then create_and_lock_config($newid)
        let src = self.load(GuestKind::Lxc, vmid)?.clone();
        if let Some(lock) = src.lock() {
            return die(check_lock_msg(GuestKind::Lxc, lock));
        }
        if let Some(m) = self.vmid_used_msg(newid) {
            return die(m);
        }
        let full = p.get("full").map_or(!src.is_template(), |_| p.flag("full"));
        if storage.is_some() && !full {
            return die("parameter 'storage' not allowed for linked clones");
        }
        if let Some(s) = p.get("snapname") {
            return die(format!("snapshot '{s}' does not exist"));
        }
        let mut conf = BTreeMap::new();
        for (k, v) in &src.conf.main {
            if NOT_CLONED.contains(&k.as_str()) || is_indexed(k, &["unused"]) {
                continue;
            }
            if k == "rootfs" || is_indexed(k, &["mp"]) {
                let volid = VolSpec::parse(v).volid;
                if storage::parse_volume_id(&volid).is_none() {
                    return die(format!("unable to clone mountpoint '{k}' (type bind)"));
                }
                if full && src.running {
                    return die(
                        "Full clone of a running container is only possible from a snapshot",
                    );
                }
                if !full && !self.can_link_clone(&volid, GuestKind::Lxc) {
                    return die(format!(
                        "Linked clone feature for '{volid}' is not available"
                    ));
                }
            }
            let value = if is_indexed(k, &["net"]) {
                with_new_mac(GuestKind::Lxc, v)
            } else {
                v.clone()
            };
            conf.insert(k.clone(), value);
        }
        for key in ["hostname", "description"] {
            if let Some(v) = p.get(key).filter(|v| !v.is_empty()) {
                conf.insert(key.into(), v.to_string());
            }
        }
        self.lock_config(ctx, GuestKind::Lxc, vmid)?;
        let work = self.plan_clone_disks(GuestKind::Lxc, newid, conf.clone(), full, storage);
        // The source carries `lock: disk`, the new CT its config with `lock: create`.
        self.set_lock(vmid, "disk");
        conf.insert("lock".into(), "create".into());
        self.put_guest(newid, GuestKind::Lxc, conf, false);
        let mut log = vec![format!(
            "creating a clone of container {vmid} with ID {newid}"
        )];
        let unlock_src = Op::RemoveLock {
            vmid,
            lock: "disk".into(),
        };
        let spec = self.clone_spec("vzclone", vmid, newid, GuestKind::Lxc, work, &mut log);
        let spec = spec.cleanup(vec![unlock_src.clone(), Op::RemoveGuest(newid)]);
        let spec = match spec.effect {
            Effect::Ops(mut ops) => {
                ops.push(unlock_src);
                TaskSpec {
                    effect: Effect::Ops(ops),
                    ..spec
                }
            }
            _ => spec,
        };
        let upid = self.spawn(ctx, spec.log(log), now);
        Ok(json!(upid).into())
    }

    fn qemu_clone(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let p = Params(params);
        let newid = p.vmid("newid");
        let storage = p.get("storage");
        self.check_target(p.get("target"))?;
        if let Some(s) = storage
            && !self.storage_cfg(s).or_else(die)?.has_content("images")
        {
            return Err(param_err(
                "storage",
                format!("storage '{s}' does not support vm images"),
            ));
        }
        let src = self.load(GuestKind::Qemu, vmid)?.clone();
        if let Some(lock) = src.lock() {
            return die(check_lock_msg(GuestKind::Qemu, lock));
        }
        if let Some(s) = p.get("snapname") {
            return die(format!("snapshot '{s}' does not exist"));
        }
        let full = p.get("full").map_or(!src.is_template(), |_| p.flag("full"));
        if storage.is_some() && !full {
            return die("parameter 'storage' not allowed for linked clones");
        }
        if p.get("format").is_some() && !full {
            return die("parameter 'format' not allowed for linked clones");
        }
        let conf = self.qemu_clone_conf(&src, full, &p)?;
        if self.guests.contains_key(&newid) {
            return die(format!(
                "unable to create VM {newid}: config file already exists"
            ));
        }
        let work = self.plan_clone_disks(GuestKind::Qemu, newid, conf, full, storage);
        // "# qmclone temporary file\nlock: clone\n"
        self.put_guest(
            newid,
            GuestKind::Qemu,
            BTreeMap::from([("lock".to_string(), "clone".to_string())]),
            false,
        );
        let mut log = vec![format!("creating a clone of VM {vmid} with ID {newid}")];
        let spec = self.clone_spec("qmclone", vmid, newid, GuestKind::Qemu, work, &mut log);
        let upid = self.spawn(
            ctx,
            spec.cleanup(vec![Op::RemoveGuest(newid)]).log(log),
            now,
        );
        Ok(json!(upid).into())
    }

    /// The config a VM clone starts from, after qemu-server's early checks.
    fn qemu_clone_conf(
        &self,
        src: &Guest,
        full: bool,
        p: &Params,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let mut conf = BTreeMap::new();
        for (k, v) in &src.conf.main {
            if NOT_CLONED.contains(&k.as_str()) || is_indexed(k, &["unused"]) {
                continue;
            }
            let mut value = v.clone();
            if is_indexed(k, &["net"]) {
                value = with_new_mac(GuestKind::Qemu, v);
            } else if is_drive_key(k) && !VolSpec::parse(v).is_cdrom() {
                let volid = VolSpec::parse(v).volid;
                if full && src.running && k == "tpmstate0" {
                    return die("cannot clone TPM state while VM is running");
                }
                if !full && k != "tpmstate0" && !self.can_link_clone(&volid, GuestKind::Qemu) {
                    return die(format!(
                        "Linked clone feature is not supported for '{volid}' ({k})"
                    ));
                }
            }
            conf.insert(k.clone(), value);
        }
        let smbios = conf
            .get("smbios1")
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.starts_with("uuid=") && !x.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut smbios1 = vec![format!("uuid={}", random_uuid())];
        smbios1.extend(smbios.into_iter().map(str::to_string));
        conf.insert("smbios1".into(), smbios1.join(","));
        if conf.contains_key("vmgenid") {
            conf.insert("vmgenid".into(), random_uuid());
        }
        let name = match p.get("name") {
            Some(n) => n.to_string(),
            None => format!(
                "Copy-of-VM-{}",
                src.conf
                    .main
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| src.vmid.to_string())
            ),
        };
        conf.insert("name".into(), name);
        if let Some(d) = p.get("description").filter(|d| !d.is_empty()) {
            conf.insert("description".into(), d.to_string());
        }
        Ok(conf)
    }

    /// New volumes for a clone: full copies (same size, on `storage` or the source's) or
    /// linked clones of base volumes.
    fn plan_clone_disks(
        &self,
        kind: GuestKind,
        newid: u32,
        mut conf: BTreeMap<String, String>,
        full: bool,
        storage: Option<&str>,
    ) -> Result<CloneWork, String> {
        let mut plan = Plan::default();
        let mut keys: Vec<String> = config_volumes(kind, &conf)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // The root file system first (a real node walks a hash here: no defined order).
        keys.sort_by_key(|k| (k != "rootfs", k.clone()));
        for k in keys {
            let mut spec = VolSpec::parse(&conf[&k]);
            let (st, volname, parsed) = self.parse_volid(&spec.volid)?;
            let sid = st.id.clone();
            let linked = !(full || kind == GuestKind::Qemu && k == "tpmstate0");
            spec.volid = if linked {
                self.plan_linked_clone(&mut plan, &spec.volid, newid)?
            } else {
                let size = st
                    .volumes
                    .get(&volname)
                    .map_or(spec.size().unwrap_or(0), |v| v.size);
                let target = storage.unwrap_or(&sid);
                let tst = self.storage_cfg(target)?;
                let format = match (kind, parsed.format.as_str()) {
                    (GuestKind::Lxc, _) => tst.ct_format(),
                    (_, "qcow2") if is_dir_like(&tst.ty) => "qcow2",
                    _ => "raw",
                };
                self.plan_alloc(&mut plan, target, newid, format, size)?
            };
            conf.insert(k, spec.render());
        }
        Ok(CloneWork { conf, plan })
    }

    /// The clone task: on success the new guest's config with its disks (no lock).
    fn clone_spec(
        &self,
        ty: &str,
        vmid: u32,
        newid: u32,
        kind: GuestKind,
        work: Result<CloneWork, String>,
        log: &mut Vec<String>,
    ) -> TaskSpec {
        match work {
            Ok(w) => {
                for (volid, _) in &w.plan.added {
                    log.push(format!("clone to {volid}"));
                }
                let mut ops = w.plan.add_ops();
                ops.push(Op::PutGuest {
                    vmid: newid,
                    kind,
                    conf: w.conf,
                    running: false,
                });
                TaskSpec::new(ty, vmid.to_string(), Outcome::Ok).effect(ops)
            }
            Err(e) => TaskSpec::new(
                ty,
                vmid.to_string(),
                Outcome::Error(format!("clone failed: {e}")),
            ),
        }
    }

    /// `set_lock` without the checks (done by the caller).
    fn set_lock(&mut self, vmid: u32, lock: &str) {
        if let Some(g) = self.guests.get_mut(&vmid) {
            g.conf.main.insert("lock".into(), lock.into());
            g.sync();
        }
    }

    /// `POST .../{vmid}/template`: LXC answers `null` (its `vztemplate` worker's UPID is
    /// not returned), QEMU the `qmtemplate` UPID.
    pub fn template(
        &mut self,
        ctx: &Ctx,
        kind: GuestKind,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let disk = params.get("disk").map(String::as_str);
        self.lock_config(ctx, kind, vmid)?;
        let g = self.load(kind, vmid)?.clone();
        if let Some(lock) = g.lock() {
            return die(check_lock_msg(kind, lock));
        }
        if g.is_template() && (kind == GuestKind::Lxc || disk.is_none()) {
            return die("you can't convert a template to a template");
        }
        if g.running {
            return die(match kind {
                GuestKind::Lxc => "you can't convert a CT to template if the CT is running",
                GuestKind::Qemu => "you can't convert a VM to template if VM is running",
            });
        }
        let mut ops = vec![Op::SetConfig {
            vmid,
            key: "template".into(),
            value: "1".into(),
        }];
        for (k, spec) in config_volumes(kind, &g.conf.main) {
            if is_indexed(&k, &["unused"]) || disk.is_some_and(|d| d != k) {
                continue;
            }
            let Ok((st, volname, parsed)) = self.parse_volid(&spec.volid) else {
                continue;
            };
            if parsed.base {
                continue;
            }
            let to = st.volid(&st.base_name(&volname));
            let mut new_spec = spec.clone();
            new_spec.volid = to.clone();
            ops.push(Op::RenameVolume {
                from: spec.volid.clone(),
                to,
            });
            ops.push(Op::SetConfig {
                vmid,
                key: k,
                value: new_spec.render(),
            });
        }
        let ty = match kind {
            GuestKind::Lxc => "vztemplate",
            GuestKind::Qemu => "qmtemplate",
        };
        let upid = self.spawn(
            ctx,
            TaskSpec::new(ty, vmid.to_string(), Outcome::Ok).effect(ops),
            now,
        );
        Ok(match kind {
            GuestKind::Lxc => Value::Null,
            GuestKind::Qemu => json!(upid),
        }
        .into())
    }
}
