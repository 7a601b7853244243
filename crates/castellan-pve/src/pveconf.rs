//! Reading the compared part of a Proxmox VE guest configuration (the `data` of
//! `GET /nodes/{node}/{lxc|qemu}/{vmid}/config`) into an [`ActualSpec`], and the volumes a
//! configuration names ([`volume_key`], [`volume_in`], [`volume_owner`]), which a storage
//! wipe must leave alone.
//!
//! Values arrive as JSON numbers or strings depending on key, kind and version, so every
//! numeric read accepts both.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use castellan_core::model::{ActualSpec, GuestKind};

/// Memory Proxmox VE assumes when a configuration has no `memory` key (both kinds).
pub const DEFAULT_MEMORY_MIB: u64 = 512;

/// A configuration value the planner needs could not be understood. The planner then
/// treats the spec as unknown and writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot read {key} = {value}: {why}")]
pub struct ConfigReadError {
    /// The configuration key.
    pub key: String,
    /// The value as received (configuration values here are never secret).
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Extracts cores, memory, description and tags from a guest configuration.
pub fn spec_from_config(
    kind: GuestKind,
    values: &BTreeMap<String, Value>,
    digest: &str,
) -> Result<ActualSpec, ConfigReadError> {
    let cores = match values.get("cores") {
        None | Some(Value::Null) => match kind {
            // A VM without `cores` has one core per socket; a container without it may use
            // every host core, which no desired number equals.
            GuestKind::Qemu => Some(1),
            GuestKind::Lxc => None,
        },
        Some(v) => Some(
            u32::try_from(number(v).ok_or_else(|| err("cores", v, "not a whole number"))?)
                .map_err(|_| err("cores", v, "out of range"))?,
        ),
    };
    let memory_mib = match values.get("memory") {
        None | Some(Value::Null) => DEFAULT_MEMORY_MIB,
        Some(v) => match kind {
            GuestKind::Lxc => number(v).ok_or_else(|| err("memory", v, "not a whole number"))?,
            GuestKind::Qemu => qemu_memory(v)?,
        },
    };
    Ok(ActualSpec {
        cores,
        memory_mib,
        description: string(values.get("description")),
        tags: string(values.get("tags")),
        digest: digest.to_owned(),
        disks: disks(kind, values)?,
    })
}

/// The size of every disk a guest of `kind` can grow, from its `size=` (CD-ROM drives
/// and disks without a size are left out): `rootfs: local-lvm:vm-101-disk-0,size=8G`.
fn disks(
    kind: GuestKind,
    values: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, u64>, ConfigReadError> {
    let mut out = BTreeMap::new();
    for (key, v) in values {
        if !castellan_core::desired::disk_key(kind, key) {
            continue;
        }
        let Some(text) = v.as_str() else {
            return Err(err(key, v, "not a disk property string"));
        };
        let mut parts = text.split(',');
        parts.next(); // the volume
        let mut size = None;
        for part in parts {
            match part.split_once('=') {
                Some(("media", "cdrom")) => {
                    size = None;
                    break;
                }
                Some(("size", s)) => size = Some(s),
                _ => {}
            }
        }
        if let Some(s) = size {
            let bytes = castellan_core::units::parse_size(s)
                .map_err(|_| err(key, v, "its size is not a size Proxmox VE writes"))?;
            out.insert(key.clone(), bytes);
        }
    }
    Ok(out)
}

/// Whether configuration key `key` (of either guest kind) holds a volume: a container's
/// `rootfs` and `mpN`, a VM's `scsiN`, `virtioN`, `sataN`, `ideN`, `efidisk0` and
/// `tpmstate0`, a hibernated VM's `vmstate`, and either kind's `unusedN` (a detached
/// disk, which Proxmox VE still counts as the guest's and destroys with it).
pub fn volume_key(key: &str) -> bool {
    use castellan_core::desired::disk_key;
    if disk_key(GuestKind::Lxc, key)
        || disk_key(GuestKind::Qemu, key)
        || matches!(key, "efidisk0" | "tpmstate0" | "vmstate")
    {
        return true;
    }
    key.strip_prefix("unused").is_some_and(|n| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    })
}

/// The storage volume a volume key's value names: its first comma-separated field (a
/// leading `file=` or `volume=` taken off), when that is `storage:name`. `None` for a
/// bind mount or device path (`/mnt/data`), `none` and `cdrom`.
///
/// `local-lvm:vm-105-disk-0,size=8G` → `local-lvm:vm-105-disk-0`.
pub fn volume_in(value: &str) -> Option<&str> {
    let first = value.split(',').next()?.trim();
    let volid = first
        .strip_prefix("file=")
        .or_else(|| first.strip_prefix("volume="))
        .unwrap_or(first);
    let (storage, name) = volid.split_once(':')?;
    (castellan_core::desired::valid_storage_id(storage) && !name.is_empty()).then_some(volid)
}

/// The guest a volume belongs to by its name, as every storage type names guest volumes:
/// the last `/`-separated part of the name starts `vm-VMID-`, `base-VMID-`,
/// `subvol-VMID-` or `basevol-VMID-` (`local:105/vm-105-disk-0.qcow2` → 105,
/// `local-zfs:base-900-disk-0/vm-105-disk-0` → 105).
pub fn volume_owner(volid: &str) -> Option<u32> {
    let (_, name) = volid.split_once(':')?;
    let last = name.rsplit('/').next()?;
    let (prefix, rest) = last.split_once('-')?;
    if !matches!(prefix, "vm" | "base" | "subvol" | "basevol") {
        return None;
    }
    let (id, tail) = rest.split_once('-')?;
    if tail.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// QEMU `memory` is the property string `[current=]<integer>`.
fn qemu_memory(v: &Value) -> Result<u64, ConfigReadError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| err("memory", v, "not a property string"))?;
    let mut current = None;
    for part in s.split(',') {
        let value = match part.split_once('=') {
            Some(("current", value)) => value,
            Some(_) => continue,
            None => part,
        };
        if current.is_some() {
            return Err(err("memory", v, "current given twice"));
        }
        current = Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| err("memory", v, "current is not a whole number"))?,
        );
    }
    current.ok_or_else(|| err("memory", v, "no current value"))
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn err(key: &str, value: &Value, why: &'static str) -> ConfigReadError {
    let mut shown = value.to_string();
    if shown.len() > 64 {
        shown.truncate(64);
        shown.push('…');
    }
    ConfigReadError {
        key: key.to_owned(),
        value: shown,
        why,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).expect("test config is an object")
    }

    #[test]
    fn lxc() {
        let s = spec_from_config(
            GuestKind::Lxc,
            &cfg(json!({"cores": 2, "memory": 1024, "description": "web\n", "tags": "a;b"})),
            "d1",
        )
        .expect("valid");
        assert_eq!(s.cores, Some(2));
        assert_eq!(s.memory_mib, 1024);
        assert_eq!(s.description.as_deref(), Some("web\n"));
        assert_eq!(s.tags.as_deref(), Some("a;b"));
        assert_eq!(s.digest, "d1");
        let s = spec_from_config(GuestKind::Lxc, &cfg(json!({})), "d").expect("valid");
        assert_eq!((s.cores, s.memory_mib), (None, 512));
        let s = spec_from_config(
            GuestKind::Lxc,
            &cfg(json!({"cores": "4", "memory": "256"})),
            "d",
        )
        .expect("numbers as strings");
        assert_eq!((s.cores, s.memory_mib), (Some(4), 256));
    }

    #[test]
    fn qemu_memory_property_string() {
        for (v, want) in [
            (json!("2048"), 2048),
            (json!("current=4096"), 4096),
            (json!(1024), 1024),
        ] {
            let s =
                spec_from_config(GuestKind::Qemu, &cfg(json!({"memory": v})), "d").expect("valid");
            assert_eq!(s.memory_mib, want);
            assert_eq!(s.cores, Some(1), "qemu default cores");
        }
        for bad in [json!("lots"), json!("current=x"), json!(""), json!([1])] {
            let e = spec_from_config(GuestKind::Qemu, &cfg(json!({"memory": bad})), "d")
                .expect_err("invalid");
            assert_eq!(e.key, "memory");
        }
    }

    #[test]
    fn disk_sizes_are_read_from_their_property_strings() {
        let lxc = spec_from_config(
            GuestKind::Lxc,
            &cfg(json!({
                "rootfs": "local-lvm:vm-101-disk-0,size=8G",
                "mp0": "local-lvm:vm-101-disk-1,mp=/srv,size=1T",
                "mp1": "/mnt/bind,mp=/bind",
                "net0": "name=eth0,bridge=vmbr0",
            })),
            "d",
        )
        .map(|s| s.disks);
        assert_eq!(
            lxc,
            Ok(BTreeMap::from([
                ("mp0".to_owned(), 1u64 << 40),
                ("rootfs".to_owned(), 8u64 << 30),
            ]))
        );
        let qemu = spec_from_config(
            GuestKind::Qemu,
            &cfg(json!({
                "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=1536M",
                "ide2": "local:iso/debian.iso,media=cdrom,size=600M",
                "efidisk0": "local-lvm:vm-100-disk-1,size=4M",
            })),
            "d",
        )
        .map(|s| s.disks);
        assert_eq!(
            qemu,
            Ok(BTreeMap::from([("scsi0".to_owned(), 1536u64 << 20)]))
        );
        let bad = spec_from_config(
            GuestKind::Qemu,
            &cfg(json!({"scsi0": "local-lvm:vm-100-disk-0,size=lots"})),
            "d",
        );
        assert!(bad.is_err(), "{bad:?}");
    }

    #[test]
    fn volume_keys_and_values() {
        for key in [
            "rootfs",
            "mp0",
            "mp255",
            "scsi0",
            "scsi30",
            "virtio15",
            "sata5",
            "ide2",
            "efidisk0",
            "tpmstate0",
            "vmstate",
            "unused0",
            "unused12",
        ] {
            assert!(volume_key(key), "{key}");
        }
        for key in [
            "net0", "memory", "mp", "unused", "unused01", "scsi31", "ide4", "efidisk1", "mpx",
            "hostname",
        ] {
            assert!(!volume_key(key), "{key}");
        }
        for (value, want) in [
            (
                "local-lvm:vm-105-disk-0,size=8G",
                Some("local-lvm:vm-105-disk-0"),
            ),
            ("local-lvm:vm-105-disk-1", Some("local-lvm:vm-105-disk-1")),
            (
                "volume=local-lvm:vm-105-disk-1,mp=/srv",
                Some("local-lvm:vm-105-disk-1"),
            ),
            (
                "file=local:105/vm-105-disk-0.qcow2,iothread=1",
                Some("local:105/vm-105-disk-0.qcow2"),
            ),
            (
                "local:iso/debian.iso,media=cdrom",
                Some("local:iso/debian.iso"),
            ),
            ("/mnt/data,mp=/data", None),
            ("none,media=cdrom", None),
            ("cdrom,media=cdrom", None),
            ("", None),
        ] {
            assert_eq!(volume_in(value), want, "{value}");
        }
    }

    #[test]
    fn volume_owners_by_name() {
        for (volid, want) in [
            ("local-lvm:vm-105-disk-0", Some(105)),
            ("local-lvm:base-900-disk-1", Some(900)),
            ("local-zfs:subvol-105-disk-0", Some(105)),
            ("local-zfs:basevol-900-disk-0", Some(900)),
            ("local-zfs:base-900-disk-0/vm-105-disk-0", Some(105)),
            ("local:105/vm-105-disk-0.qcow2", Some(105)),
            (
                "local:900/base-900-disk-0.raw/105/vm-105-disk-0.qcow2",
                Some(105),
            ),
            ("local-lvm:vm-105-cloudinit", Some(105)),
            (
                "local:backup/vzdump-lxc-105-2026_01_01-00_00_00.tar.zst",
                None,
            ),
            ("local-lvm:vm-105", None),
            ("local-lvm:vm-x-disk-0", None),
            ("local-lvm:data", None),
            ("vm-105-disk-0", None),
        ] {
            assert_eq!(volume_owner(volid), want, "{volid}");
        }
    }

    #[test]
    fn bad_cores() {
        let e = spec_from_config(GuestKind::Lxc, &cfg(json!({"cores": -1})), "d")
            .expect_err("negative");
        assert_eq!(e.to_string(), "cannot read cores = -1: not a whole number");
    }
}
