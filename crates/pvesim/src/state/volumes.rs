//! Guest volumes in configs: which keys hold volumes, their property strings (`VOLID,opt=v,...`),
//! cdrom detection, and allocating new volumes for them.

use super::*;
use pve_schema::parse_size;

/// A volume option value split into its volume and the other `key=value` options.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct VolSpec {
    pub(super) volid: String,
    pub(super) opts: Vec<(String, String)>,
}

impl VolSpec {
    /// Splits `local-lvm:vm-100-disk-0,size=8G` (a leading `file=`/`volume=` is accepted).
    pub(super) fn parse(value: &str) -> VolSpec {
        let mut volid = String::new();
        let mut opts = Vec::new();
        for (i, part) in value.split(',').enumerate() {
            match part.split_once('=') {
                Some(("file" | "volume", v)) => volid = v.to_string(),
                Some((k, v)) if i > 0 || !part.contains(':') => {
                    opts.push((k.to_string(), v.to_string()))
                }
                _ if i == 0 => volid = part.to_string(),
                _ => {}
            }
        }
        VolSpec { volid, opts }
    }

    pub(super) fn opt(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn set(&mut self, key: &str, value: String) {
        match self.opts.iter_mut().find(|(k, _)| k == key) {
            Some(o) => o.1 = value,
            None => self.opts.push((key.to_string(), value)),
        }
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.opts.retain(|(k, _)| k != key);
    }

    /// `size=` in bytes.
    pub(super) fn size(&self) -> Option<u64> {
        self.opt("size").and_then(parse_size)
    }

    /// `print_property_string`: the volume (default key) first, then the options sorted by key.
    pub(super) fn render(&self) -> String {
        let mut opts = self.opts.clone();
        opts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = self.volid.clone();
        for (k, v) in opts {
            out.push(',');
            out.push_str(&k);
            out.push('=');
            out.push_str(&v);
        }
        out
    }

    /// `drive_is_cdrom`.
    pub(super) fn is_cdrom(&self) -> bool {
        self.opt("media") == Some("cdrom")
    }
}

/// QEMU drive keys (`is_valid_drivename`).
pub(super) fn is_drive_key(key: &str) -> bool {
    if matches!(key, "efidisk0" | "tpmstate0") {
        return true;
    }
    match pve_schema::indexed_base(key) {
        Some(("ide", n)) => n < 4,
        Some(("sata", n)) => n < 6,
        Some(("scsi", n)) => n < 31,
        Some(("virtio", n)) => n < 16,
        _ => false,
    }
}

/// Keys of a guest's config that hold volumes (mount points/drives and `unusedN`).
pub(super) fn is_volume_key(kind: GuestKind, key: &str) -> bool {
    match kind {
        GuestKind::Lxc => key == "rootfs" || is_indexed(key, &["mp", "unused"]),
        GuestKind::Qemu => is_drive_key(key) || is_indexed(key, &["unused"]),
    }
}

/// `NEW_DISK_RE` (`^(([^/:\s]+):)?(\d+(\.\d+)?)$`): a request for a new volume, as
/// (storage, size in GiB).
pub(super) fn new_disk_request(volid: &str) -> Option<(Option<&str>, f64)> {
    let (sid, num) = match volid.rsplit_once(':') {
        Some((s, n)) if !s.is_empty() && !s.contains(['/', ':', ' ']) => (Some(s), n),
        Some(_) => return None,
        None => (None, volid),
    };
    let valid = !num.is_empty()
        && num.split('.').count() <= 2
        && num
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| num.parse().ok()).flatten().map(|n| (sid, n))
}

/// Volume IDs (non-cdrom, storage-backed) a config references, with their keys.
pub(super) fn config_volumes(
    kind: GuestKind,
    conf: &BTreeMap<String, String>,
) -> Vec<(String, VolSpec)> {
    conf.iter()
        .filter(|(k, _)| is_volume_key(kind, k))
        .map(|(k, v)| (k.clone(), VolSpec::parse(v)))
        .filter(|(_, s)| !s.is_cdrom() && storage::parse_volume_id(&s.volid).is_some())
        .collect()
}

/// A disk image volume for `vmid`.
pub(super) fn new_image(volname: String, format: &str, size: u64, vmid: u32, ctime: u64) -> Volume {
    Volume {
        volname,
        vtype: VType::Images,
        format: format.to_string(),
        size,
        vmid: Some(vmid),
        ctime,
        notes: None,
        protected: false,
        parent: None,
        backup: None,
    }
}

/// Allocations planned while the state is only read: volumes accounted per storage, so
/// several new disks of one request see each other's space and names.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) added: Vec<(String, Volume)>,
}

impl Plan {
    fn planned_in(&self, sid: &str) -> impl Iterator<Item = &Volume> {
        self.added
            .iter()
            .filter(move |(v, _)| storage::parse_volume_id(v).is_some_and(|(s, _)| s == sid))
            .map(|(_, vol)| vol)
    }

    pub(super) fn add_ops(&self) -> Vec<Op> {
        self.added
            .iter()
            .map(|(volid, v)| Op::AddVolume {
                volid: volid.clone(),
                volume: Box::new(v.clone()),
            })
            .collect()
    }
}

impl State {
    /// A storage with the plan's volumes added (for names and space).
    fn planned_storage(&self, sid: &str, plan: &Plan) -> Result<Storage, String> {
        let mut st = self.storage_cfg(sid)?.clone();
        for v in plan.planned_in(sid) {
            st.volumes.insert(v.volname.clone(), v.clone());
        }
        Ok(st)
    }

    /// Plans a new disk image of `size` bytes for `vmid` on `sid` (`alloc_image`); the
    /// error is what the storage says when it does not fit.
    pub(super) fn plan_alloc(
        &self,
        plan: &mut Plan,
        sid: &str,
        vmid: u32,
        format: &str,
        size: u64,
    ) -> Result<String, String> {
        let st = self.planned_storage(sid, plan)?;
        let volname = st.new_image_name(vmid, format);
        if !st.fits(size) {
            return Err(st.no_space_error(&volname));
        }
        let volid = st.volid(&volname);
        let vol = new_image(volname, format, size, vmid, epoch(SystemTime::now()));
        plan.added.push((volid.clone(), vol));
        Ok(volid)
    }

    /// Plans a linked clone of base volume `base_volid` for `vmid` (`vdisk_clone`).
    pub(super) fn plan_linked_clone(
        &self,
        plan: &mut Plan,
        base_volid: &str,
        vmid: u32,
    ) -> Result<String, String> {
        let (st, base_name, parsed) = self.parse_volid(base_volid)?;
        let sid = st.id.clone();
        let st = self.planned_storage(&sid, plan)?;
        let volname = st.linked_clone_name(&base_name, vmid);
        let size = st.volumes.get(&base_name).map_or(0, |v| v.size);
        let format = if is_dir_like(&st.ty) {
            "qcow2"
        } else {
            &parsed.format
        };
        let mut vol = new_image(
            volname.clone(),
            format,
            size,
            vmid,
            epoch(SystemTime::now()),
        );
        // LVM-thin does not record the base of a clone (Storage.pm volume_is_base_and_used).
        if st.ty != "lvmthin" {
            vol.parent = Some(base_name);
        }
        let volid = st.volid(&volname);
        plan.added.push((volid.clone(), vol));
        Ok(volid)
    }

    /// `volume_has_feature(clone)` of a base volume for a linked clone; LXC needs a raw or
    /// subvol target, which a directory storage cannot give (it clones to qcow2).
    pub(super) fn can_link_clone(&self, volid: &str, kind: GuestKind) -> bool {
        match self.parse_volid(volid) {
            Ok((st, _, p)) => p.base && !(kind == GuestKind::Lxc && is_dir_like(&st.ty)),
            Err(_) => false,
        }
    }

    /// Volumes owned by `vmid` referenced by its config (current and pending).
    pub(super) fn owned_volumes(&self, g: &Guest) -> Vec<String> {
        let mut all = config_volumes(g.kind, &g.conf.main);
        all.extend(config_volumes(g.kind, &g.conf.pending));
        let mut out: Vec<String> = all
            .into_iter()
            .map(|(_, s)| s.volid)
            .filter(|v| {
                self.parse_volid(v)
                    .is_ok_and(|(_, _, p)| p.owner == Some(g.vmid))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Disk images owned by `vmid` in storages with `content` (`vdisk_list`), referenced or not.
    pub(super) fn images_of(&self, vmid: u32, content: &str) -> Vec<String> {
        self.storages
            .values()
            .filter(|st| st.has_content(content))
            .flat_map(|st| {
                st.volumes
                    .values()
                    .filter(|v| v.vtype == VType::Images && v.vmid == Some(vmid))
                    .map(|v| st.volid(&v.volname))
            })
            .collect()
    }
}
