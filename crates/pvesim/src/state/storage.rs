//! Storages: their volumes (disk images, backups, templates, ISOs), volume names as each
//! storage type writes them, space accounting, and the storage content endpoints.
//!
//! Volume names follow pve-storage's plugins: `dir` (`src/PVE/Storage/Plugin.pm`
//! `parse_volname`): `VMID/vm-VMID-disk-N.FMT`, linked clones `BASEVMID/BASENAME/VMID/NAME`,
//! `backup/FILE`, `vztmpl/FILE`, `iso/FILE`; `lvmthin` (`LvmThinPlugin.pm`):
//! `vm-VMID-disk-N` / `base-VMID-disk-N`; `zfspool` (`ZFSPoolPlugin.pm`):
//! `(vm|base|subvol|basevol)-VMID-disk-N`, linked clones `BASE/NAME`.

use super::*;

/// Bytes in a GiB.
pub(super) const GIB: u64 = 1 << 30;

/// A volume's content type (`vtype` in pve-storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VType {
    Images,
    Backup,
    Vztmpl,
    Iso,
}

impl VType {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            VType::Images => "images",
            VType::Backup => "backup",
            VType::Vztmpl => "vztmpl",
            VType::Iso => "iso",
        }
    }
}

/// What a backup archive holds: the guest kind and its config at backup time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BackupInfo {
    pub(super) kind: GuestKind,
    pub(super) config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Volume {
    /// The part after `storage:`.
    pub(super) volname: String,
    pub(super) vtype: VType,
    /// The listing's `format` (`raw`, `qcow2`, `subvol`, `tar.zst`, `tzst`, `iso`).
    pub(super) format: String,
    pub(super) size: u64,
    pub(super) vmid: Option<u32>,
    pub(super) ctime: u64,
    pub(super) notes: Option<String>,
    pub(super) protected: bool,
    /// The base volume (volname) a linked clone was made from.
    pub(super) parent: Option<String>,
    pub(super) backup: Option<BackupInfo>,
}

#[derive(Debug, Clone)]
pub(super) struct Storage {
    pub(super) id: String,
    pub(super) ty: String,
    pub(super) content: Vec<String>,
    pub(super) total: u64,
    pub(super) shared: bool,
    pub(super) path: String,
    pub(super) volumes: BTreeMap<String, Volume>,
}

/// `parse_volname`'s result.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ParsedVol {
    pub(super) vtype: VType,
    pub(super) owner: Option<u32>,
    pub(super) format: String,
    pub(super) base: bool,
}

/// File-backed storage types (a path, every content type).
pub(super) fn is_dir_like(ty: &str) -> bool {
    matches!(ty, "dir" | "nfs" | "cifs")
}

/// The content types a storage type can hold.
pub(super) fn supported_content(ty: &str) -> &'static [&'static str] {
    if is_dir_like(ty) {
        &["images", "rootdir", "backup", "vztmpl", "iso"]
    } else {
        &["images", "rootdir"]
    }
}

/// `PVE::Storage::Plugin::parse_volume_id`.
pub(super) fn parse_volume_id(volid: &str) -> Option<(&str, &str)> {
    let (sid, name) = volid.split_once(':')?;
    let b = sid.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    (ok && !name.is_empty()).then_some((sid, name))
}

/// `vm-100-disk-0` → 100 (prefix one of `prefixes`).
fn owner_of(name: &str, prefixes: &[&str]) -> Option<u32> {
    let (prefix, rest) = name.split_once('-')?;
    if !prefixes.contains(&prefix) {
        return None;
    }
    let (id, tail) = rest.split_once('-')?;
    (!tail.is_empty() && !tail.contains(char::is_whitespace))
        .then(|| id.parse().ok())
        .flatten()
}

fn image(owner: u32, format: &str, base: bool) -> ParsedVol {
    ParsedVol {
        vtype: VType::Images,
        owner: Some(owner),
        format: format.to_string(),
        base,
    }
}

/// `parse_name_dir`: `(vm|base|subvol)-VMID-NAME.(raw|qcow2|vmdk|subvol)`.
fn parse_name_dir(name: &str) -> Option<(String, bool)> {
    let (_, ext) = name.rsplit_once('.')?;
    if !matches!(ext, "raw" | "qcow2" | "vmdk" | "subvol") || name.contains(['/', ' ']) {
        return None;
    }
    Some((ext.to_string(), name.starts_with("base-")))
}

fn parse_dir_volname(volname: &str) -> Option<ParsedVol> {
    let parts: Vec<&str> = volname.split('/').collect();
    let other = |vtype, format: String, owner| {
        Some(ParsedVol {
            vtype,
            owner,
            format,
            base: false,
        })
    };
    match parts.as_slice() {
        [vmid, name] if vmid.bytes().all(|b| b.is_ascii_digit()) => {
            let (fmt, base) = parse_name_dir(name)?;
            Some(image(vmid.parse().ok()?, &fmt, base))
        }
        [_, base, vmid, name] if vmid.bytes().all(|b| b.is_ascii_digit()) => {
            parse_name_dir(base)?;
            let (fmt, is_base) = parse_name_dir(name)?;
            Some(image(vmid.parse().ok()?, &fmt, is_base))
        }
        ["iso", f] if f.to_lowercase().ends_with(".iso") || f.to_lowercase().ends_with(".img") => {
            other(VType::Iso, "iso".into(), None)
        }
        ["vztmpl", f] => other(VType::Vztmpl, vztmpl_format(f)?, None),
        ["backup", f] => {
            let (format, owner) = backup_format(f)?;
            other(VType::Backup, format, owner)
        }
        _ => None,
    }
}

/// `$VZTMPL_EXT_RE_1` and `get_subdir_files`' format: `tar`, or `t` + the compression.
fn vztmpl_format(f: &str) -> Option<String> {
    if f.ends_with(".tar") {
        return Some("tar".into());
    }
    ["gz", "xz", "zst", "bz2"]
        .iter()
        .find(|c| f.ends_with(&format!(".tar.{c}")))
        .map(|c| format!("t{c}"))
}

/// `$BACKUP_EXT_RE_2`: the format (`tar.zst`, `vma`, `tgz`, ...) and, for vzdump names,
/// the owner VMID.
pub(super) fn backup_format(f: &str) -> Option<(String, Option<u32>)> {
    let comps = ["gz", "lzo", "zst", "bz2"];
    let mut format = None;
    if f.ends_with(".tgz") {
        format = Some("tgz".to_string());
    }
    for base in ["tar", "vma"] {
        if f.ends_with(&format!(".{base}")) {
            format = Some(base.to_string());
        }
        for c in comps {
            if f.ends_with(&format!(".{base}.{c}")) {
                format = Some(format!("{base}.{c}"));
            }
        }
    }
    let format = format?;
    let owner = ["openvz", "lxc", "qemu"].iter().find_map(|t| {
        let rest = f.strip_prefix(&format!("vzdump-{t}-"))?;
        rest.split('-').next()?.parse().ok()
    });
    Some((format, owner))
}

/// The storage plugin's `parse_volname`, with its error text.
pub(super) fn parse_volname(ty: &str, volname: &str) -> Result<ParsedVol, String> {
    let parsed = match ty {
        _ if is_dir_like(ty) => parse_dir_volname(volname),
        // LvmThinPlugin.pm parse_volname
        "lvmthin" => owner_of(volname, &["vm", "base"])
            .map(|o| image(o, "raw", volname.starts_with("base-"))),
        // ZFSPoolPlugin.pm parse_volname
        _ => {
            let name = volname.rsplit('/').next().unwrap_or(volname);
            owner_of(name, &["vm", "base", "subvol", "basevol"]).map(|o| {
                let subvol = name.starts_with("subvol-") || name.starts_with("basevol-");
                let fmt = if subvol { "subvol" } else { "raw" };
                image(o, fmt, name.starts_with("base"))
            })
        }
    };
    parsed.ok_or_else(|| match ty {
        // Plugin.pm, LvmThinPlugin.pm, ZFSPoolPlugin.pm parse_volname
        _ if is_dir_like(ty) => format!("unable to parse directory volume name '{volname}'"),
        "lvmthin" => format!("unable to parse lvm volume name '{volname}'"),
        _ => format!("unable to parse zfs volume name '{volname}'"),
    })
}

/// `PVE::JSONSchema::format_size`: the largest unit that divides the size.
pub(crate) fn format_size(size: u64) -> String {
    let units = ["K", "M", "G", "T"];
    let mut v = size;
    let mut unit = "";
    for u in units {
        if !v.is_multiple_of(1024) || v == 0 {
            break;
        }
        v /= 1024;
        unit = u;
    }
    format!("{v}{unit}")
}

impl Storage {
    pub(super) fn used(&self) -> u64 {
        self.volumes.values().map(|v| v.size).sum()
    }

    pub(super) fn has_content(&self, c: &str) -> bool {
        self.content.iter().any(|x| x == c)
    }

    pub(super) fn volid(&self, volname: &str) -> String {
        format!("{}:{volname}", self.id)
    }

    /// `PVE::Storage::path` of a volume.
    pub(super) fn path_of(&self, volname: &str) -> String {
        if is_dir_like(&self.ty) {
            let (dir, rest) = match volname.split_once('/') {
                Some(("backup", f)) => ("dump", f.to_string()),
                Some(("vztmpl", f)) => ("template/cache", f.to_string()),
                Some(("iso", f)) => ("template/iso", f.to_string()),
                _ => {
                    let parts: Vec<&str> = volname.split('/').collect();
                    let tail = parts[parts.len().saturating_sub(2)..].join("/");
                    ("images", tail)
                }
            };
            format!("{}/{dir}/{rest}", self.path)
        } else if self.ty == "lvmthin" {
            format!("/dev/{}/{volname}", self.path)
        } else {
            let name = volname.rsplit('/').next().unwrap_or(volname);
            if name.starts_with("subvol-") || name.starts_with("basevol-") {
                format!("/{}/{name}", self.path)
            } else {
                format!("/dev/zvol/{}/{name}", self.path)
            }
        }
    }

    /// `find_free_diskname`: the first `vm-VMID-disk-N` whose N no volume of the guest uses.
    pub(super) fn free_diskname(&self, vmid: u32, prefix: &str, ext: Option<&str>) -> String {
        let used = |n: u32| {
            self.volumes.values().any(|v| {
                let name = v.volname.rsplit('/').next().unwrap_or("");
                let stem = name.split('.').next().unwrap_or("");
                ["vm", "base", "subvol", "basevol"]
                    .iter()
                    .any(|p| stem == format!("{p}-{vmid}-disk-{n}"))
            })
        };
        let n = (0..).find(|n| !used(*n)).unwrap_or(0);
        let name = format!("{prefix}-{vmid}-disk-{n}");
        match ext {
            Some(e) => format!("{vmid}/{name}.{e}"),
            None => name,
        }
    }

    /// A new disk image volume name for `vmid` in `format` (`raw`, `qcow2`, `subvol`).
    pub(super) fn new_image_name(&self, vmid: u32, format: &str) -> String {
        if is_dir_like(&self.ty) {
            let prefix = if format == "subvol" { "subvol" } else { "vm" };
            self.free_diskname(vmid, prefix, Some(format))
        } else if format == "subvol" {
            self.free_diskname(vmid, "subvol", None)
        } else {
            self.free_diskname(vmid, "vm", None)
        }
    }

    /// The format a container's new volume gets here (`subvol` on ZFS, else `raw`).
    pub(super) fn ct_format(&self) -> &'static str {
        if self.ty == "zfspool" {
            "subvol"
        } else {
            "raw"
        }
    }

    /// Whether `size` more bytes fit.
    pub(super) fn fits(&self, size: u64) -> bool {
        self.used().saturating_add(size) <= self.total
    }

    /// The error creating a `size`-byte volume `volname` fails with when it does not fit.
    ///
    /// The prefixes are pve-storage's (`Common.pm` `qemu_img_create`: `unable to create
    /// image`; `LvmThinPlugin.pm` `alloc_image`: `lvcreate 'VG/NAME' error`); the tool's own
    /// stderr after them is modelled (see the crate docs).
    pub(super) fn no_space_error(&self, volname: &str) -> String {
        let name = volname.rsplit('/').next().unwrap_or(volname);
        if is_dir_like(&self.ty) {
            let path = self.path_of(volname);
            format!(
                "unable to create image: qemu-img: {path}: Could not create image: No space left on device"
            )
        } else if self.ty == "lvmthin" {
            format!(
                "lvcreate '{vg}/{name}' error:   Cannot create new thin volume, free space in thin pool {vg}/data reached threshold.",
                vg = self.path
            )
        } else {
            format!(
                "zfs error: cannot create '{}/{name}': out of space",
                self.path
            )
        }
    }

    /// The name a volume gets when its guest becomes a template (`vdisk_create_base`).
    pub(super) fn base_name(&self, volname: &str) -> String {
        let (dir, name) = match volname.rsplit_once('/') {
            Some((d, n)) if is_dir_like(&self.ty) => (Some(d), n),
            _ => (None, volname),
        };
        let based = if let Some(r) = name.strip_prefix("subvol-") {
            format!("basevol-{r}")
        } else if let Some(r) = name.strip_prefix("vm-") {
            format!("base-{r}")
        } else {
            name.to_string()
        };
        match dir {
            Some(d) => format!("{d}/{based}"),
            None => based,
        }
    }

    /// The volume name of a linked clone of base volume `base` for `vmid`.
    pub(super) fn linked_clone_name(&self, base: &str, vmid: u32) -> String {
        if is_dir_like(&self.ty) {
            // Plugin.pm clone_image: always qcow2 on top of the base.
            let name = self.free_diskname(vmid, "vm", Some("qcow2"));
            let file = name.rsplit('/').next().unwrap_or(&name).to_string();
            format!("{base}/{vmid}/{file}")
        } else if self.ty == "zfspool" {
            let sub = base.starts_with("basevol-");
            let name = self.free_diskname(vmid, if sub { "subvol" } else { "vm" }, None);
            format!("{base}/{name}")
        } else {
            self.free_diskname(vmid, "vm", None)
        }
    }

    /// Volume names whose `parent` is `base` (linked clones of it).
    pub(super) fn clones_of(&self, base: &str) -> usize {
        self.volumes
            .values()
            .filter(|v| v.parent.as_deref() == Some(base))
            .count()
    }

    /// `status`-like summary for the control endpoint and [`crate::SimHandle`].
    pub(super) fn view(&self) -> StorageView {
        StorageView {
            id: self.id.clone(),
            ty: self.ty.clone(),
            content: self.content.clone(),
            total: self.total,
            used: self.used(),
            shared: self.shared,
            volumes: self
                .volumes
                .values()
                .map(|v| VolumeView {
                    volid: self.volid(&v.volname),
                    content: v.vtype.as_str().to_string(),
                    format: v.format.clone(),
                    size: v.size,
                    vmid: v.vmid,
                    ctime: v.ctime,
                    notes: v.notes.clone(),
                    protected: v.protected,
                })
                .collect(),
        }
    }
}

/// A storage as seen from outside (control endpoint, [`crate::SimHandle::storage`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageView {
    /// Storage ID.
    pub id: String,
    /// Plugin type (`dir`, `lvmthin`, `zfspool`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Content types.
    pub content: Vec<String>,
    /// Size in bytes.
    pub total: u64,
    /// Sum of its volumes' sizes.
    pub used: u64,
    /// Shared storage.
    pub shared: bool,
    /// Its volumes, by volume ID.
    pub volumes: Vec<VolumeView>,
}

/// One volume as seen from outside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeView {
    /// `storage:volname`.
    pub volid: String,
    /// `images` (disks of VMs and containers), `backup`, `vztmpl` or `iso`.
    pub content: String,
    /// Format (`raw`, `qcow2`, `subvol`, `tar.zst`, ...).
    pub format: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub vmid: Option<u32>,
    /// Creation time (epoch seconds).
    pub ctime: u64,
    /// Backup notes.
    pub notes: Option<String>,
    /// Backup protection.
    pub protected: bool,
}

/// `PVE::API2::Storage::Content` `$real_volume_id`: the volume ID and storage of a
/// `{volume}` path parameter, with its parameter errors.
fn real_volume_id(storage: &str, volume: &str) -> Result<(String, String), ApiError> {
    let param = |m: String| ApiError::Param(BTreeMap::from([("volume".to_string(), m)]));
    if volume.contains(':') {
        let Some((sid, _)) = parse_volume_id(volume) else {
            return Err(param(format!("unable to parse volume ID '{volume}'\n")));
        };
        if !storage.is_empty() && sid != storage {
            return Err(param(format!("storage ID mismatch ({sid} != {storage})\n")));
        }
        return Ok((volume.to_string(), sid.to_string()));
    }
    if storage.is_empty() {
        return Err(param("no storage specified - incomplete volume ID".into()));
    }
    Ok((format!("{storage}:{volume}"), storage.to_string()))
}

impl State {
    /// `storage_config`: the storage, or `storage 'ID' does not exist`.
    pub(super) fn storage_cfg(&self, id: &str) -> Result<&Storage, String> {
        self.storages
            .get(id)
            .ok_or_else(|| format!("storage '{id}' does not exist"))
    }

    /// `parse_volname` of a full volume ID (storage must exist).
    pub(super) fn parse_volid(&self, volid: &str) -> Result<(&Storage, String, ParsedVol), String> {
        let (sid, volname) =
            parse_volume_id(volid).ok_or_else(|| format!("unable to parse volume ID '{volid}'"))?;
        let st = self.storage_cfg(sid)?;
        let parsed = parse_volname(&st.ty, volname)?;
        Ok((st, volname.to_string(), parsed))
    }

    pub(super) fn volume(&self, volid: &str) -> Option<&Volume> {
        let (sid, volname) = parse_volume_id(volid)?;
        self.storages.get(sid)?.volumes.get(volname)
    }

    pub(super) fn volume_mut(&mut self, volid: &str) -> Option<&mut Volume> {
        let (sid, volname) = parse_volume_id(volid)?;
        self.storages.get_mut(sid)?.volumes.get_mut(volname)
    }

    pub(super) fn remove_volume(&mut self, volid: &str) -> Option<Volume> {
        let (sid, volname) = parse_volume_id(volid)?;
        self.storages.get_mut(sid)?.volumes.remove(volname)
    }

    pub(super) fn add_volume(&mut self, volid: &str, vol: Volume) {
        if let Some((sid, volname)) = parse_volume_id(volid)
            && let Some(st) = self.storages.get_mut(sid)
        {
            st.volumes.insert(volname.to_string(), vol);
        }
    }

    pub fn storage_views(&self) -> Vec<StorageView> {
        self.storages.values().map(Storage::view).collect()
    }

    pub fn storage_view(&self, id: &str) -> Option<StorageView> {
        self.storages.get(id).map(Storage::view)
    }

    /// The content type a disk image is listed under: `rootdir` when its owner is a
    /// container, else `images` (Plugin.pm `list_volumes`).
    fn image_content(&self, owner: Option<u32>) -> &'static str {
        match owner.and_then(|o| self.guests.get(&o)) {
            Some(g) if g.kind == GuestKind::Lxc => "rootdir",
            _ => "images",
        }
    }

    fn content_item(&self, st: &Storage, v: &Volume, content: &str) -> Value {
        let mut item = json!({
            "volid": st.volid(&v.volname),
            "content": content,
            "format": v.format,
            "size": v.size,
            "ctime": v.ctime,
        });
        if let Some(id) = v.vmid {
            item["vmid"] = json!(id);
        }
        match v.vtype {
            VType::Images if is_dir_like(&st.ty) => {
                item["used"] = json!(v.size);
                if let Some(p) = &v.parent {
                    item["parent"] = json!(format!("../{p}"));
                }
            }
            VType::Backup => {
                item["subtype"] = json!(v.backup.as_ref().map_or("unknown", |b| b.kind.as_str()));
                if let Some(n) = &v.notes {
                    // Only the first line is listed.
                    item["notes"] = json!(n.lines().next().unwrap_or(""));
                }
                if v.protected {
                    item["protected"] = json!(1);
                }
            }
            _ => {}
        }
        item
    }

    /// `GET /nodes/{node}/storage/{storage}/content` (pve-storage `API2/Storage/Content.pm`
    /// `index`, `PVE::Storage::volume_list`): the storage's content types (or the one asked
    /// for, if the storage has it), disk images listed as `rootdir` or `images` by owner.
    pub fn storage_content(&self, storage: &str, params: &BTreeMap<String, String>) -> ApiResult {
        let st = self.storage_cfg(storage).or_else(die)?;
        let vmid: Option<u32> = params.get("vmid").and_then(|v| v.parse().ok());
        let wanted: Vec<&str> = match params.get("content") {
            Some(c) => split_list(c),
            None => st.content.iter().map(String::as_str).collect(),
        };
        let mut out = Vec::new();
        for ct in wanted.into_iter().filter(|c| st.has_content(c)) {
            for v in st.volumes.values() {
                let listed_as = match v.vtype {
                    VType::Images => self.image_content(v.vmid),
                    VType::Backup => "backup",
                    VType::Vztmpl => "vztmpl",
                    VType::Iso => "iso",
                };
                if listed_as != ct || vmid.is_some_and(|id| v.vmid != Some(id)) {
                    continue;
                }
                // Templates and ISOs are not listed when filtering by VMID.
                if vmid.is_some() && matches!(v.vtype, VType::Vztmpl | VType::Iso) {
                    continue;
                }
                out.push(self.content_item(st, v, ct));
            }
        }
        out.sort_by(|a, b| a["volid"].as_str().cmp(&b["volid"].as_str()));
        Ok(Value::Array(out).into())
    }

    /// `GET /nodes/{node}/storage/{storage}/content/{volume}` (Content.pm `info`).
    pub fn volume_info(&self, storage: &str, volume: &str) -> ApiResult {
        let (volid, _) = real_volume_id(storage, volume)?;
        let (st, volname, parsed) = self.parse_volid(&volid).or_else(die)?;
        let path = st.path_of(&volname);
        let Some(v) = st.volumes.get(&volname) else {
            return die(missing_size_error(st, &volid, &volname, &path));
        };
        let format = if parsed.vtype == VType::Images {
            v.format.clone()
        } else {
            // qemu-img info on an archive or ISO reports `raw`.
            "raw".to_string()
        };
        let used = if st.ty == "lvmthin" { 0 } else { v.size };
        let mut d = json!({"path": path, "size": v.size, "used": used, "format": format});
        if v.vtype == VType::Backup {
            if let Some(n) = &v.notes {
                d["notes"] = json!(n);
            }
            d["protected"] = json!(u8::from(v.protected));
        }
        Ok(d.into())
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}` (Content.pm `delete`): an
    /// `imgdel` task (ID `OWNER@STORAGE`); a real node does not check whether a guest still
    /// references the volume.
    pub fn volume_delete(
        &mut self,
        ctx: &Ctx,
        storage: &str,
        volume: &str,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let (volid, sid) = real_volume_id(storage, volume)?;
        let (st, volname, parsed) = self.parse_volid(&volid).or_else(die)?;
        let path = st.path_of(&volname);
        let vol = st.volumes.get(&volname).cloned();
        let mut log = Vec::new();
        let outcome = match &vol {
            // Plugin.pm free_image
            Some(v) if v.protected => Outcome::Error(format!(
                "cannot remove protected volume '{volname}' on '{sid}'"
            )),
            // Storage.pm vdisk_free
            Some(_) if parsed.base && st.clones_of(&volname) > 0 => Outcome::Error(format!(
                "base volume '{volname}' is still in use by linked clones"
            )),
            Some(_) => {
                log.push(format!("Removed volume '{volid}'"));
                Outcome::Ok
            }
            None if is_dir_like(&st.ty) => {
                log.push(format!("disk image '{path}' does not exist"));
                log.push(format!("Removed volume '{volid}'"));
                Outcome::Warnings(1)
            }
            None => {
                log.push(format!("Removed volume '{volid}'"));
                Outcome::Ok
            }
        };
        let id = match parsed.owner {
            Some(o) => format!("{o}@{sid}"),
            None => sid.clone(),
        };
        let spec = TaskSpec::new("imgdel", id, outcome)
            .effect(vec![Op::RemoveVolume { volid }])
            .log(log);
        let upid = self.spawn(ctx, spec, now);
        self.delete_delay(&upid, params.get("delay"))
    }

    /// `delay`: wait up to that many seconds for the task; if it has ended, return `null`
    /// (or die with its error) instead of the UPID.
    fn delete_delay(&mut self, upid: &str, delay: Option<&String>) -> ApiResult {
        let secs: u64 = delay.and_then(|d| d.parse().ok()).unwrap_or(0);
        if secs == 0 || self.task_duration > Duration::from_secs(secs) {
            return Ok(json!(upid).into());
        }
        self.finish_now(upid);
        match self.tasks.get(upid).and_then(|t| t.exitstatus.clone()) {
            Some(s) if s == "OK" || s.starts_with("WARNINGS") => Ok(Value::Null.into()),
            Some(s) => die(s),
            None => Ok(json!(upid).into()),
        }
    }

    /// `/cluster/resources` entries of type `storage`.
    pub(super) fn storage_resources(&self) -> Vec<Value> {
        self.storages
            .values()
            .map(|st| {
                json!({
                    "id": format!("storage/{}/{}", self.node, st.id), "type": "storage",
                    "storage": st.id, "node": self.node, "status": "available",
                    "plugintype": st.ty, "shared": u8::from(st.shared),
                    "content": st.content.join(","), "maxdisk": st.total, "disk": st.used(),
                })
            })
            .collect()
    }
}

/// `volume_size_info` failing for a volume that is not there.
fn missing_size_error(st: &Storage, volid: &str, volname: &str, path: &str) -> String {
    if is_dir_like(&st.ty) {
        // Content.pm info: file_size_info returns nothing.
        format!("volume_size_info on '{volid}' failed - no format")
    } else if st.ty == "lvmthin" {
        // LVMPlugin.pm volume_size_info: `lvs` fails (its stderr is modelled).
        format!(
            "can't get size of '{path}':   Failed to find logical volume \"{}/{volname}\"",
            st.path
        )
    } else {
        format!(
            "zfs error: cannot open '{}/{volname}': dataset does not exist",
            st.path
        )
    }
}
