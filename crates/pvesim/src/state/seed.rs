//! Loading the seed's storages, volumes and backups into the state.

use super::*;

/// 2026-01-01 00:00:00 UTC, the default time of seeded backups.
const DEFAULT_BACKUP_TIME: u64 = 1_767_225_600;

/// The storages a fresh PVE 9 install has.
fn default_storages() -> Vec<SeedStorage> {
    vec![
        SeedStorage {
            id: "local".into(),
            ty: "dir".into(),
            content: vec!["iso".into(), "vztmpl".into(), "backup".into()],
            total: 100 * GIB,
            shared: false,
            path: None,
        },
        SeedStorage {
            id: "local-lvm".into(),
            ty: "lvmthin".into(),
            content: vec!["images".into(), "rootdir".into()],
            total: 200 * GIB,
            shared: false,
            path: None,
        },
    ]
}

/// `strftime("%Y_%m_%d-%H_%M_%S")` of an epoch time, in UTC (the simulated node's zone).
pub(super) fn vzdump_time(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}_{m:02}_{d:02}-{:02}_{:02}_{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The archive file name vzdump gives a backup (`PVE::VZDump::exec_backup_task`).
pub(super) fn vzdump_name(kind: GuestKind, vmid: u32, time: u64, ext: &str) -> String {
    let base = if kind == GuestKind::Qemu {
        "vma"
    } else {
        "tar"
    };
    let ext = if ext.is_empty() {
        String::new()
    } else {
        format!(".{ext}")
    };
    format!(
        "vzdump-{}-{vmid}-{}.{base}{ext}",
        kind.as_str(),
        vzdump_time(time)
    )
}

/// A plausible config inside a seeded backup without one.
fn default_backup_config(b: &SeedBackup, storage: &str) -> BTreeMap<String, String> {
    let disk_size = format_size((b.size.saturating_mul(4)).max(GIB) / GIB * GIB);
    let mut c = BTreeMap::new();
    c.insert("cores".to_string(), "1".to_string());
    c.insert("memory".to_string(), "512".to_string());
    match b.kind {
        GuestKind::Lxc => {
            c.insert("hostname".into(), format!("ct{}", b.vmid));
            c.insert("ostype".into(), "debian".into());
            c.insert("arch".into(), "amd64".into());
            c.insert(
                "rootfs".into(),
                format!("{storage}:vm-{}-disk-0,size={disk_size}", b.vmid),
            );
        }
        GuestKind::Qemu => {
            c.insert("name".into(), format!("vm{}", b.vmid));
            c.insert("ostype".into(), "l26".into());
            c.insert(
                "scsi0".into(),
                format!("{storage}:vm-{}-disk-0,size={disk_size}", b.vmid),
            );
        }
    }
    c
}

impl State {
    pub(super) fn seed_storages(&mut self, seeded: &[SeedStorage]) {
        let list = if seeded.is_empty() {
            default_storages()
        } else {
            seeded.to_vec()
        };
        for s in list {
            let path = s.path.clone().unwrap_or_else(|| match s.ty.as_str() {
                "lvmthin" => "pve".into(),
                "zfspool" => "rpool/data".into(),
                _ if s.id == "local" => "/var/lib/vz".into(),
                _ => format!("/mnt/pve/{}", s.id),
            });
            self.storages.insert(
                s.id.clone(),
                Storage {
                    id: s.id,
                    ty: s.ty,
                    content: s.content,
                    total: s.total,
                    shared: s.shared,
                    path,
                    volumes: BTreeMap::new(),
                },
            );
        }
    }

    /// Registers the seeded guests' disks, the loose volumes and the backups. Volumes on
    /// storages that do not exist (or whose names the storage cannot parse) are skipped.
    pub(super) fn seed_volumes(&mut self, seed: &Seed) {
        let ctime = epoch(self.boot);
        let mut found = Vec::new();
        for g in self.guests.values() {
            for (_, spec) in config_volumes(g.kind, &g.conf.main) {
                if let Ok((_, volname, p)) = self.parse_volid(&spec.volid)
                    && p.vtype == VType::Images
                    && let Some(owner) = p.owner
                {
                    let size = spec.size().unwrap_or(0);
                    let vol = new_image(volname, &p.format, size, owner, ctime);
                    found.push((spec.volid.clone(), vol));
                }
            }
        }
        for v in &seed.volumes {
            if let Ok((_, volname, p)) = self.parse_volid(&v.volid) {
                let vol = Volume {
                    volname,
                    vtype: p.vtype,
                    format: p.format,
                    size: v.size,
                    vmid: p.owner,
                    ctime: v.ctime.unwrap_or(ctime),
                    notes: None,
                    protected: false,
                    parent: None,
                    backup: None,
                };
                found.push((v.volid.clone(), vol));
            }
        }
        for (volid, vol) in found {
            if self.volume(&volid).is_none() {
                self.add_volume(&volid, vol);
            }
        }
        for (i, b) in seed.backups.iter().enumerate() {
            self.seed_backup(i as u64, b);
        }
    }

    fn seed_backup(&mut self, index: u64, b: &SeedBackup) {
        let time = b.ctime.unwrap_or(DEFAULT_BACKUP_TIME + index);
        let volid = b.volid.clone().unwrap_or_else(|| {
            format!(
                "{}:backup/{}",
                b.storage,
                vzdump_name(b.kind, b.vmid, time, "zst")
            )
        });
        let Ok((_, volname, p)) = self.parse_volid(&volid) else {
            return;
        };
        if p.vtype != VType::Backup {
            return;
        }
        let disk_storage = self
            .storages
            .values()
            .find(|s| {
                s.has_content(if b.kind == GuestKind::Lxc {
                    "rootdir"
                } else {
                    "images"
                })
            })
            .map_or_else(|| "local-lvm".to_string(), |s| s.id.clone());
        let config = if b.config.is_empty() {
            default_backup_config(b, &disk_storage)
        } else {
            b.config.clone()
        };
        let vol = Volume {
            volname,
            vtype: VType::Backup,
            format: p.format,
            size: b.size,
            vmid: Some(b.vmid),
            ctime: time,
            notes: b.notes.clone(),
            protected: b.protected,
            parent: None,
            backup: Some(BackupInfo {
                kind: b.kind,
                config,
            }),
        };
        self.add_volume(&volid, vol);
    }
}
