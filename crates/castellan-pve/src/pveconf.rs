//! Reading the compared part of a Proxmox VE guest configuration (the `data` of
//! `GET /nodes/{node}/{lxc|qemu}/{vmid}/config`) into an [`ActualSpec`].
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
    fn bad_cores() {
        let e = spec_from_config(GuestKind::Lxc, &cfg(json!({"cores": -1})), "d")
            .expect_err("negative");
        assert_eq!(e.to_string(), "cannot read cores = -1: not a whole number");
    }
}
