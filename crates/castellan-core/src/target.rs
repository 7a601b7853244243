//! What an operation acts on: a [`Target`] names the kind of thing (which backend manages
//! it) and an id that backend understands, written `kind/id`:
//!
//! | target          | backend     | id                                             |
//! |-----------------|-------------|------------------------------------------------|
//! | `lxc/101`       | Proxmox VE  | a vmid (100 ..= 999 999 999)                    |
//! | `qemu/101`      | Proxmox VE  | a vmid                                          |
//! | `container/web` | Docker      | a container name                                |
//! | `volume/pgdata` | Docker      | a volume name                                   |
//! | `storage/local-lvm` | Proxmox VE | a storage id (what a storage wipe acts on)  |
//! | `node/pve-01`   | Proxmox VE  | a node name (what a decommission acts on)       |
//!
//! The text form is what an operator signs (`target = "lxc/101"` in an op), what the
//! journal and the audit log record, and what the agent's scheduler is keyed by; it has
//! exactly one spelling per target, so two targets are equal exactly when their text is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::model::{GuestKind, VMID_RANGE, Vmid};

/// The kinds of thing castellan manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A Proxmox VE container.
    Lxc,
    /// A Proxmox VE virtual machine.
    Qemu,
    /// A Docker container.
    Container,
    /// A Docker volume.
    Volume,
    /// A Proxmox VE storage.
    Storage,
    /// A Proxmox VE node as a whole.
    Node,
}

impl TargetKind {
    /// Every kind, in order.
    pub const ALL: [TargetKind; 6] = [
        TargetKind::Lxc,
        TargetKind::Qemu,
        TargetKind::Container,
        TargetKind::Volume,
        TargetKind::Storage,
        TargetKind::Node,
    ];

    /// The kind's name, as written before the `/`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Lxc => "lxc",
            TargetKind::Qemu => "qemu",
            TargetKind::Container => "container",
            TargetKind::Volume => "volume",
            TargetKind::Storage => "storage",
            TargetKind::Node => "node",
        }
    }

    /// How people call one ("CT", "VM", "container", "volume").
    pub fn noun(self) -> &'static str {
        match self {
            TargetKind::Lxc => "CT",
            TargetKind::Qemu => "VM",
            TargetKind::Container => "container",
            TargetKind::Volume => "volume",
            TargetKind::Storage => "storage",
            TargetKind::Node => "node",
        }
    }

    fn from_name(s: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl From<GuestKind> for TargetKind {
    fn from(k: GuestKind) -> Self {
        match k {
            GuestKind::Lxc => TargetKind::Lxc,
            GuestKind::Qemu => TargetKind::Qemu,
        }
    }
}

/// One thing an operation acts on. Always valid: built by [`Target::guest`] or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    kind: TargetKind,
    id: String,
}

/// Why a target's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// No `/` between kind and id.
    #[error("{0:?} is not a target (expected kind/id, e.g. \"lxc/101\" or \"container/web\")")]
    Shape(String),
    /// A kind castellan does not manage.
    #[error("{0:?} is not a kind of target (lxc, qemu, container, volume, storage or node)")]
    Kind(String),
    /// An id the kind does not allow.
    #[error("{id:?} is not a valid {kind} id: {why}")]
    Id {
        /// The kind.
        kind: &'static str,
        /// The id as written.
        id: String,
        /// The rule it breaks.
        why: &'static str,
    },
}

/// Docker's rule for container and volume names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), kept to
/// 128 bytes.
pub fn valid_docker_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Target {
    /// The Proxmox VE guest `vmid` of kind `kind`.
    pub fn guest(kind: GuestKind, vmid: Vmid) -> Target {
        Target {
            kind: kind.into(),
            id: vmid.to_string(),
        }
    }

    /// A target of kind `kind` with id `id`, checked by the kind's rule.
    pub fn new(kind: TargetKind, id: &str) -> Result<Target, TargetError> {
        let bad = |why| TargetError::Id {
            kind: kind.as_str(),
            id: id.to_owned(),
            why,
        };
        match kind {
            TargetKind::Lxc | TargetKind::Qemu => {
                // One spelling per vmid: no sign, no leading zero.
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.starts_with('0') {
                    return Err(bad("a vmid is written in decimal digits"));
                }
                let v: Vmid = id.parse().map_err(|_| bad("out of range"))?;
                if !VMID_RANGE.contains(&v) {
                    return Err(bad("a vmid is between 100 and 999999999"));
                }
            }
            TargetKind::Container | TargetKind::Volume => {
                if !valid_docker_name(id) {
                    return Err(bad(
                        "a Docker name is 1 to 128 of a-z, A-Z, 0-9, _, . and -, starting with a letter or digit",
                    ));
                }
            }
            TargetKind::Storage => {
                if !crate::desired::valid_storage_id(id) {
                    return Err(bad(
                        "a storage id is a letter, then letters, digits, -, _ or .",
                    ));
                }
            }
            TargetKind::Node => {
                if !crate::op::valid_host(id) {
                    return Err(bad(
                        "a node name is 1 to 63 letters, digits and -, not starting or ending with -",
                    ));
                }
            }
        }
        Ok(Target {
            kind,
            id: id.to_owned(),
        })
    }

    /// The Docker container named `name`.
    pub fn container(name: &str) -> Result<Target, TargetError> {
        Target::new(TargetKind::Container, name)
    }

    /// The Docker volume named `name`.
    pub fn volume(name: &str) -> Result<Target, TargetError> {
        Target::new(TargetKind::Volume, name)
    }

    /// The Proxmox VE storage `id`.
    pub fn storage(id: &str) -> Result<Target, TargetError> {
        Target::new(TargetKind::Storage, id)
    }

    /// The Proxmox VE node `name` as a whole.
    pub fn node(name: &str) -> Result<Target, TargetError> {
        Target::new(TargetKind::Node, name)
    }

    /// Its kind.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// Its id, as its backend writes it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Proxmox VE guest it names, if it names one.
    pub fn as_guest(&self) -> Option<(GuestKind, Vmid)> {
        let kind = match self.kind {
            TargetKind::Lxc => GuestKind::Lxc,
            TargetKind::Qemu => GuestKind::Qemu,
            TargetKind::Container | TargetKind::Volume | TargetKind::Storage | TargetKind::Node => {
                return None;
            }
        };
        // Checked when built.
        self.id.parse().ok().map(|v| (kind, v))
    }

    /// Whether `other` names the same slot on its host: the same target, or (on a
    /// Proxmox VE node, where containers and virtual machines share one vmid space) a
    /// guest of the other kind with the same vmid. An op for one is judged — and refused
    /// as a binding mismatch — when the other is what is there.
    pub fn same_slot(&self, other: &Target) -> bool {
        match (self.as_guest(), other.as_guest()) {
            (Some((_, a)), Some((_, b))) => a == b,
            _ => self == other,
        }
    }

    /// How people call it ("CT 101", "container web").
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind.noun(), self.id)
    }

    /// The target as a file-name fragment (`lxc-101`, `container-web`): no `/`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}", self.kind.as_str(), self.id)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id)
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = s
            .split_once('/')
            .ok_or_else(|| TargetError::Shape(s.to_owned()))?;
        let kind = TargetKind::from_name(kind).ok_or_else(|| TargetError::Kind(kind.to_owned()))?;
        Target::new(kind, id)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_spelling_per_target() {
        for ok in [
            "lxc/101",
            "qemu/999999999",
            "container/web",
            "volume/pg.data-1",
            "node/pve-01",
        ] {
            let t: Target = ok.parse().unwrap();
            assert_eq!(t.to_string(), ok);
        }
        for bad in [
            "lxc/0101",
            "lxc/+101",
            "lxc/99",
            "lxc/1000000000",
            "lxc/",
            "lxc/web",
            "lxc",
            "vm/101",
            "container/-web",
            "container/we b",
            "container/web/x",
            "container/",
            "volume/../etc",
            "node/-pve",
            "node/pve_01",
            "",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?} accepted");
        }
        assert!(Target::container(&"a".repeat(129)).is_err());
    }

    #[test]
    fn guests_round_trip() {
        let t = Target::guest(GuestKind::Qemu, 150);
        assert_eq!(t.to_string(), "qemu/150");
        assert_eq!(t.as_guest(), Some((GuestKind::Qemu, 150)));
        assert_ne!(t, Target::guest(GuestKind::Lxc, 150));
        assert_eq!(Target::container("web").unwrap().as_guest(), None);
        assert_eq!(t.describe(), "VM 150");
        assert!(t.same_slot(&Target::guest(GuestKind::Lxc, 150)));
        assert!(!t.same_slot(&Target::guest(GuestKind::Qemu, 151)));
        assert!(!Target::container("150").unwrap().same_slot(&t));
        assert!(
            !Target::container("a")
                .unwrap()
                .same_slot(&Target::volume("a").unwrap())
        );
        assert_eq!(t.file_stem(), "qemu-150");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let t = Target::container("web").unwrap();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, "\"container/web\"");
        assert_eq!(serde_json::from_str::<Target>(&j).unwrap(), t);
        assert!(serde_json::from_str::<Target>("\"lxc/1\"").is_err());
    }
}
