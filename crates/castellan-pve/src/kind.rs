//! Temporary stand-in for `castellan_core::model::GuestKind`.
//!
//! The lead switches this over to the core type once `castellan-core` exports it; the shape
//! (variants, serde names, `as_str`) is identical so the switch is a one-line change in `lib.rs`.

use serde::{Deserialize, Serialize};

/// The two kinds of Proxmox VE guest, named as they appear in API paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A container (`/nodes/{node}/lxc/...`).
    Lxc,
    /// A virtual machine (`/nodes/{node}/qemu/...`).
    Qemu,
}

impl GuestKind {
    /// The path segment and serde name: `"lxc"` or `"qemu"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GuestKind::Lxc => "lxc",
            GuestKind::Qemu => "qemu",
        }
    }
}
