//! Decommissioning a node: the signed parameters that name exactly what a `decommission`
//! removes, and the state digest the op is bound to.
//!
//! A decommission of node `pve-01` (target `node/pve-01`) names:
//!
//! - `guests = "lxc/101=<digest>,qemu/102=<digest>"`: each guest it destroys, with the
//!   configuration digest it was approved at, in vmid order. Each is brought down, backed
//!   up (unless `backup=0` waives it) and destroyed with `purge=1` and
//!   `destroy-unreferenced-disks=0`, one at a time, each looked at right before it goes;
//! - `volumes = "local-lvm:vm-9-disk-0=8589934592,..."`: the unreferenced disk volumes of
//!   the node's own (not shared) storages it removes afterwards, each with its size (the
//!   encoding of [`crate::wipe`]).
//!
//! One op names at most [`MAX_DECOMMISSION_GUESTS`] guests (an op file is small, and so
//! is what one pair of signatures should be asked to remove at once): a node with more is
//! decommissioned in several ops, guests first in vmid order, its storage with the last.
//! The digest covers the node, every guest with its digest and every volume with its size,
//! so the operator signs exactly that list and nothing that appeared since.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::model::{GuestKind, Vmid};
use crate::target::Target;

/// The signed parameter naming the guests.
pub const GUESTS_PARAM: &str = "guests";

/// The signed parameter naming the volumes (as a storage wipe names them).
pub const VOLUMES_PARAM: &str = crate::wipe::VOLUMES_PARAM;

/// Most guests one decommission op names.
pub const MAX_DECOMMISSION_GUESTS: usize = 64;

/// The parameters a guest is destroyed with during a decommission: gone from backup jobs,
/// replication and HA with its configured disks, and nothing else. A disk of its vmid that
/// its configuration does not name is not backed up with it and may sit on a shared
/// storage, so it is never taken along unnamed: on the node's own storages it is named by
/// a later op once its guest is gone (as any unused volume is); elsewhere it stays.
pub const GUEST_DESTROY_PARAMS: [(&str, &str); 2] =
    [("purge", "1"), ("destroy-unreferenced-disks", "0")];

/// Whether `s` can be a guest's configuration digest in the parameter (lower-case hex).
fn valid_digest(s: &str) -> bool {
    (8..=128).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The parameter's value for `guests` (vmid -> (kind, digest)).
pub fn encode_guests(guests: &BTreeMap<Vmid, (GuestKind, String)>) -> String {
    guests
        .iter()
        .map(|(vmid, (kind, digest))| format!("{}={digest}", Target::guest(*kind, *vmid)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The guests a parameter value names, or what is wrong with it.
pub fn decode_guests(value: &str) -> Result<BTreeMap<Vmid, (GuestKind, String)>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',') {
        let Some((target, digest)) = item.split_once('=') else {
            return Err(format!("{item:?} is not GUEST=DIGEST"));
        };
        let t: Target = target.parse().map_err(|e| format!("{e}"))?;
        let Some((kind, vmid)) = t.as_guest() else {
            return Err(format!("{target} is not a guest (lxc/VMID or qemu/VMID)"));
        };
        if !valid_digest(digest) {
            return Err(format!(
                "{target}: {digest:?} is not a configuration digest"
            ));
        }
        if out.insert(vmid, (kind, digest.to_owned())).is_some() {
            return Err(format!("vmid {vmid} is named twice"));
        }
    }
    if out.len() > MAX_DECOMMISSION_GUESTS {
        return Err(format!(
            "{} guests; one decommission names at most {MAX_DECOMMISSION_GUESTS}",
            out.len()
        ));
    }
    if encode_guests(&out) != value {
        return Err("guests must be in vmid order, each once".to_owned());
    }
    Ok(out)
}

/// The state digest a decommission of `node` naming `guests` and `volumes` is bound to.
pub fn digest(
    node: &str,
    guests: &BTreeMap<Vmid, (GuestKind, String)>,
    volumes: &BTreeMap<String, u64>,
) -> String {
    let mut h = Sha256::new();
    h.update(b"castellan decommission v1\n");
    h.update(node.as_bytes());
    h.update(b"\n");
    for (vmid, (kind, d)) in guests {
        h.update(format!("guest {} {d}\n", Target::guest(*kind, *vmid)).as_bytes());
    }
    for (v, size) in volumes {
        h.update(format!("volume {v} {size}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a decommission op's parameters name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Approved {
    /// The guests, by vmid, with their kind and the digest each was approved at.
    pub guests: BTreeMap<Vmid, (GuestKind, String)>,
    /// The volumes, with the size each was approved at.
    pub volumes: BTreeMap<String, u64>,
}

impl Approved {
    /// Reads the signed parameters of a decommission; one naming neither guests nor
    /// volumes is refused (it would approve nothing).
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Approved, String> {
        let guests = match params.get(GUESTS_PARAM) {
            Some(v) => decode_guests(v).map_err(|e| format!("its guests: {e}"))?,
            None => BTreeMap::new(),
        };
        let volumes = match params.get(VOLUMES_PARAM) {
            Some(v) => crate::wipe::decode(v).map_err(|e| format!("its volumes: {e}"))?,
            None => BTreeMap::new(),
        };
        if guests.is_empty() && volumes.is_empty() {
            return Err("a decommission names neither guests nor volumes".to_owned());
        }
        Ok(Approved { guests, volumes })
    }

    /// The guests as targets, in vmid order.
    pub fn guest_targets(&self) -> impl Iterator<Item = (Target, &str)> {
        self.guests
            .iter()
            .map(|(vmid, (kind, d))| (Target::guest(*kind, *vmid), d.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn guests_round_trip_and_refusals() {
        let g = BTreeMap::from([
            (1000, (GuestKind::Qemu, D1.to_owned())),
            (101, (GuestKind::Lxc, "deadbeef".to_owned())),
        ]);
        let text = encode_guests(&g);
        assert_eq!(text, format!("lxc/101=deadbeef,qemu/1000={D1}"));
        assert_eq!(decode_guests(&text), Ok(g.clone()));
        for (bad, why) in [
            ("", "not GUEST=DIGEST"),
            ("lxc/101", "not GUEST=DIGEST"),
            ("lxc/101=deadbeef,qemu/101=deadbeef", "named twice"),
            ("qemu/200=deadbeef,lxc/101=deadbeef", "vmid order"),
            ("lxc/101=DEADBEEF", "not a configuration digest"),
            ("lxc/101=dead", "not a configuration digest"),
            ("storage/local=deadbeef", "not a guest"),
            ("lxc/99=deadbeef", "not a valid lxc id"),
        ] {
            let e = decode_guests(bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let many: BTreeMap<Vmid, (GuestKind, String)> =
            (100..100 + MAX_DECOMMISSION_GUESTS as u32 + 1)
                .map(|v| (v, (GuestKind::Lxc, D1.to_owned())))
                .collect();
        let e = decode_guests(&encode_guests(&many))
            .err()
            .unwrap_or_default();
        assert!(e.contains("at most 64"), "{e}");
        // The largest op still fits the op format's limit on one value.
        let max: BTreeMap<Vmid, (GuestKind, String)> = (0..MAX_DECOMMISSION_GUESTS as u32)
            .map(|i| (999_999_000 + i, (GuestKind::Qemu, D1.to_owned())))
            .collect();
        assert!(crate::op::valid_param_value(&encode_guests(&max)));
    }

    #[test]
    fn digest_binds_node_guests_and_volumes() {
        let g = BTreeMap::from([(101, (GuestKind::Lxc, D1.to_owned()))]);
        let v = BTreeMap::from([("local-lvm:vm-9-disk-0".to_owned(), 4096)]);
        let base = digest("pve-01", &g, &v);
        assert_ne!(base, digest("pve-02", &g, &v));
        assert_ne!(base, digest("pve-01", &BTreeMap::new(), &v));
        assert_ne!(base, digest("pve-01", &g, &BTreeMap::new()));
        let other = BTreeMap::from([(101, (GuestKind::Qemu, D1.to_owned()))]);
        assert_ne!(base, digest("pve-01", &other, &v));
    }

    #[test]
    fn params_name_something() {
        let p = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let e = Approved::from_params(&BTreeMap::new())
            .err()
            .unwrap_or_default();
        assert!(e.contains("neither"), "{e}");
        let a =
            Approved::from_params(&p(GUESTS_PARAM, &format!("lxc/101={D1}"))).unwrap_or_default();
        assert_eq!(
            a.guest_targets()
                .map(|(t, _)| t.to_string())
                .collect::<Vec<_>>(),
            ["lxc/101"]
        );
        assert!(Approved::from_params(&p(VOLUMES_PARAM, "local:a=1")).is_ok());
        assert!(Approved::from_params(&p(GUESTS_PARAM, "x")).is_err());
    }
}
