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
}
