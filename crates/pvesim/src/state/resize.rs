//! `PUT .../{vmid}/resize`: both kinds answer with a `resize` task UPID in PVE 9.
//!
//! - LXC (pve-container `src/PVE/API2/LXC.pm` `resize_vm`): the checks run before the
//!   worker (synchronous errors); growing to the current size is an error.
//! - QEMU (qemu-server `src/PVE/API2/Qemu.pm` `resize_vm`): every check runs in the worker
//!   (task errors); growing to the current size is a no-op that ends OK.
//!
//! The new `size=` is written with `PVE::JSONSchema::format_size`.

use super::*;
use pve_schema::parse_size;

/// A planned resize: the config key's new value and the volume's new size.
struct Resize {
    key: String,
    value: String,
    volid: String,
    size: u64,
}

/// `^(\+)?(\d+(\.\d+)?)([KMGT])?$` → (relative, bytes).
fn parse_request(size: &str) -> Option<(bool, u64)> {
    let (ext, rest) = match size.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, size),
    };
    parse_size(rest).map(|b| (ext, b))
}

impl State {
    /// `PUT /nodes/{node}/{lxc|qemu}/{vmid}/resize`.
    pub fn resize(
        &mut self,
        ctx: &Ctx,
        kind: GuestKind,
        vmid: u32,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let outcome = match kind {
            GuestKind::Lxc => Ok(self.lxc_resize_check(ctx, vmid, params)?),
            GuestKind::Qemu => self.qemu_resize_check(ctx, vmid, params),
        };
        let spec = match outcome {
            Ok(None) => TaskSpec::new("resize", vmid.to_string(), Outcome::Ok),
            Ok(Some(r)) => {
                let ops = vec![
                    Op::SetVolumeSize {
                        volid: r.volid,
                        size: r.size,
                    },
                    Op::SetConfig {
                        vmid,
                        key: r.key,
                        value: r.value,
                    },
                ];
                TaskSpec::new("resize", vmid.to_string(), Outcome::Ok).effect(ops)
            }
            Err(e) => TaskSpec::new("resize", vmid.to_string(), Outcome::Error(e)),
        };
        let upid = self.spawn(ctx, spec, now);
        Ok(json!(upid).into())
    }

    /// pve-container's `$load_and_check`, run before forking.
    fn lxc_resize_check(
        &self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Resize>, ApiError> {
        let p = Params(params);
        let (ext, request) = parse_request(p.get("size").unwrap_or("")).unwrap_or((false, 0));
        self.lock_config(ctx, GuestKind::Lxc, vmid)?;
        let g = self.load(GuestKind::Lxc, vmid)?;
        if let Some(lock) = g.lock() {
            return die(check_lock_msg(GuestKind::Lxc, lock));
        }
        if p.get("digest")
            .is_some_and(|d| !d.is_empty() && d != g.digest)
        {
            // PVE::Tools::assert_if_modified
            return die("detected modified configuration - file changed by other user? Try again.");
        }
        let disk = p.get("disk").unwrap_or("");
        let value = g.conf.main.get(disk).cloned().unwrap_or_default();
        let spec = VolSpec::parse(&value);
        // A missing key parses to no volume: parse_volume_id(undef).
        let (st, volname, _) = self.parse_volid(&spec.volid).or_else(die)?;
        let Some(cur) = st.volumes.get(&volname).map(|v| v.size) else {
            return die(format!(
                "Could not determine current size of volume '{}'",
                spec.volid
            ));
        };
        let newsize = if ext { cur + request } else { request };
        if newsize < cur {
            return die("unable to shrink disk size");
        }
        if newsize == cur {
            return die("disk is already at specified size");
        }
        Ok(Some(
            self.plan_resize(st, disk, spec, newsize, cur)
                .or_else(die)?,
        ))
    }

    /// qemu-server's `$updatefn`, run in the worker: its errors end the task.
    fn qemu_resize_check(
        &self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Resize>, String> {
        let p = Params(params);
        if ctx.lock_timeout {
            return Err(lock_timeout_msg(GuestKind::Qemu, vmid));
        }
        let g = self
            .load(GuestKind::Qemu, vmid)
            .map_err(|_| self.not_exists_msg(GuestKind::Qemu, vmid))?;
        if p.get("digest")
            .is_some_and(|d| !d.is_empty() && d != g.digest)
        {
            return Err("checksum mismatch (file change by other user?)".into());
        }
        if let (Some(lock), false) = (g.lock(), p.flag("skiplock")) {
            return Err(check_lock_msg(GuestKind::Qemu, lock));
        }
        let disk = p.get("disk").unwrap_or("");
        let Some(value) = g.conf.main.get(disk) else {
            return Err(format!("disk '{disk}' does not exist"));
        };
        let spec = VolSpec::parse(value);
        let (st, volname, _) = self.parse_volid(&spec.volid)?;
        if spec.is_cdrom() {
            return Err("you can't resize a cdrom".into());
        }
        let Some(cur) = st.volumes.get(&volname).map(|v| v.size) else {
            return Err(format!(
                "Could not determine current size of volume '{}'",
                spec.volid
            ));
        };
        let (ext, request) = parse_request(p.get("size").unwrap_or("")).unwrap_or((false, 0));
        let newsize = if ext { cur + request } else { request };
        if newsize < cur {
            return Err("shrinking disks is not supported".into());
        }
        if newsize == cur {
            return Ok(None);
        }
        self.plan_resize(st, disk, spec, newsize, cur).map(Some)
    }

    /// The growth must fit in the storage.
    fn plan_resize(
        &self,
        st: &Storage,
        key: &str,
        mut spec: VolSpec,
        newsize: u64,
        cur: u64,
    ) -> Result<Resize, String> {
        let volname = storage::parse_volume_id(&spec.volid).map_or("", |(_, n)| n);
        if !st.fits(newsize - cur) {
            return Err(st.no_space_error(volname));
        }
        let volid = spec.volid.clone();
        spec.set("size", format_size(newsize));
        Ok(Resize {
            key: key.to_string(),
            value: spec.render(),
            volid,
            size: newsize,
        })
    }
}
