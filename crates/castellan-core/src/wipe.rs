//! Storage wipes: the signed parameter that names the volumes a `wipe_storage` removes,
//! each with the size it was approved at, and the state digest the op is bound to.
//!
//! The parameter is `volumes = "local-lvm:vm-105-disk-0=8589934592,local-lvm:vm-105-disk-1=4294967296"`:
//! volume ids in byte order, each with its size in bytes, so the operator signs exactly
//! which volumes go and how big each was, and the agent checks each one against that
//! right before removing it (a wipe resumed after a crash removes what is left of the
//! approved volumes, never anything else). The digest covers the storage and every pair.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::desired::valid_volume_id;

/// The name of the signed parameter.
pub const VOLUMES_PARAM: &str = "volumes";

/// Most volumes one wipe names (the parameter must fit an op's value limit as well).
pub const MAX_WIPE_VOLUMES: usize = 64;

/// The parameter's value for `volumes` (volume id -> size in bytes).
pub fn encode(volumes: &BTreeMap<String, u64>) -> String {
    volumes
        .iter()
        .map(|(v, size)| format!("{v}={size}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The volumes a parameter value names, or what is wrong with it.
pub fn decode(value: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',') {
        let Some((volid, size)) = item.rsplit_once('=') else {
            return Err(format!("{item:?} is not VOLUME=BYTES"));
        };
        if !valid_volume_id(volid) {
            return Err(format!("{volid:?} is not a volume id"));
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || size.starts_with('0') {
            return Err(format!("{volid}: {size:?} is not a size in bytes"));
        }
        let bytes: u64 = size
            .parse()
            .map_err(|_| format!("{volid}: {size} bytes is too large"))?;
        if out.insert(volid.to_owned(), bytes).is_some() {
            return Err(format!("{volid} is named twice"));
        }
    }
    if out.len() > MAX_WIPE_VOLUMES {
        return Err(format!(
            "{} volumes; one wipe names at most {MAX_WIPE_VOLUMES}",
            out.len()
        ));
    }
    // One spelling per set: the order is the encoder's.
    if encode(&out) != value {
        return Err("volumes must be in byte order, each once".to_owned());
    }
    Ok(out)
}

/// The state digest a wipe of `volumes` from `storage` is bound to.
pub fn digest(storage: &str, volumes: &BTreeMap<String, u64>) -> String {
    let mut h = Sha256::new();
    h.update(b"castellan wipe_storage v1\n");
    h.update(storage.as_bytes());
    h.update(b"\n");
    for (v, size) in volumes {
        h.update(format!("{v} {size}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let v = BTreeMap::from([
            ("local-lvm:vm-105-disk-1".to_owned(), 4096),
            ("local-lvm:vm-105-disk-0".to_owned(), 8192),
        ]);
        let text = encode(&v);
        assert_eq!(
            text,
            "local-lvm:vm-105-disk-0=8192,local-lvm:vm-105-disk-1=4096"
        );
        assert_eq!(decode(&text), Ok(v.clone()));
        for (bad, why) in [
            ("", "is not VOLUME=BYTES"),
            ("local-lvm:a=1,local-lvm:a=1", "named twice"),
            ("local-lvm:b=1,local-lvm:a=1", "byte order"),
            ("local-lvm:a=01", "not a size"),
            ("local-lvm:a=-1", "not a size"),
            ("../x=1", "not a volume id"),
            ("local-lvm:a=99999999999999999999999", "too large"),
        ] {
            let e = decode(bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let other = digest("local-lvm", &BTreeMap::new());
        assert_ne!(digest("local-lvm", &v), other);
        assert_ne!(digest("local-lvm", &v), digest("other", &v));
        assert_eq!(digest("local-lvm", &v).len(), 64);
    }
}
