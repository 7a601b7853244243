//! Power and destroy: start, stop, shutdown, reboot and the guest's DELETE, with a real node's refusals.

use super::*;

impl State {
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
        // pve-guest-common AbstractConfig::check_lock: the guest type, no vmid.
        let locked_err = |lock: &Option<String>| lock.as_ref().map(|x| check_lock_msg(kind, x));
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
        let ha = self.ha.contains(&vmid);
        let mut log = Vec::new();
        // Both kinds refuse to remove an HA resource without `purge`.
        let ha_refusal = (ha && !flag("purge")).then(|| {
            format!(
                "unable to remove {} {vmid} - used in HA resources and purge parameter not set.",
                label(kind)
            )
        });
        let outcome = match kind {
            // pve-container API2/LXC.pm destroy_vm: early checks run before the worker.
            GuestKind::Lxc => {
                if protected {
                    return die(format!("can't remove CT {vmid} - protection mode enabled"));
                }
                if let Some(l) = lock {
                    return die(check_lock_msg(kind, &l));
                }
                if let Some(m) = ha_refusal {
                    return die(m);
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
                if let Some(m) = ha_refusal {
                    return die(m);
                }
                if running {
                    return die(format!("VM {vmid} is running - destroy failed"));
                }
                match (lock, flag("skiplock")) {
                    (Some(l), false) => Outcome::Error(check_lock_msg(kind, &l)),
                    _ => self.base_in_use(g).map_or(Outcome::Ok, Outcome::Error),
                }
            }
        };
        if flag("purge") {
            log.push(format!(
                "purging {} {vmid} from related configurations..",
                label(kind)
            ));
            if ha {
                log.push(format!(
                    "NOTE: removed {} {vmid} from HA resource configuration.",
                    label(kind)
                ));
            }
        }
        let ty = match kind {
            GuestKind::Lxc => "vzdestroy",
            GuestKind::Qemu => "qmdestroy",
        };
        let ops = self.destroy_ops(vmid, flag("destroy-unreferenced-disks"), flag("purge"));
        let spec = TaskSpec::new(ty, vmid.to_string(), outcome)
            .effect(ops)
            .log(log);
        let upid = self.spawn(ctx, spec, now);
        Ok(json!(upid).into())
    }

    /// What destroying removes: the guest, the volumes it owns and references (current,
    /// pending, unused), with `destroy-unreferenced-disks` every disk image of its VMID on a
    /// storage for its kind (default off for both kinds in PVE 9), with `purge` its HA entry.
    fn destroy_ops(&self, vmid: u32, unreferenced: bool, purge: bool) -> Vec<Op> {
        let Some(g) = self.guests.get(&vmid) else {
            return vec![Op::RemoveGuest(vmid)];
        };
        let mut volids = self.owned_volumes(g);
        if unreferenced {
            let content = match g.kind {
                GuestKind::Lxc => "rootdir",
                GuestKind::Qemu => "images",
            };
            volids.extend(self.images_of(vmid, content));
        }
        volids.sort();
        volids.dedup();
        let mut ops: Vec<Op> = volids
            .into_iter()
            .map(|volid| Op::RemoveVolume { volid })
            .collect();
        if purge {
            ops.push(Op::SetHa {
                vmid,
                managed: false,
            });
        }
        ops.push(Op::RemoveGuest(vmid));
        ops
    }

    /// qemu-server `destroy_vm`: a template's base volume still used by linked clones
    /// (not detectable on LVM-thin, as on a real node).
    fn base_in_use(&self, g: &Guest) -> Option<String> {
        if !g.is_template() {
            return None;
        }
        self.owned_volumes(g).into_iter().find_map(|volid| {
            let (st, volname, p) = self.parse_volid(&volid).ok()?;
            (p.base && st.clones_of(&volname) > 0)
                .then(|| format!("base volume '{volid}' is still in use by linked cloned"))
        })
    }
}
