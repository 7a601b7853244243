//! The embedded schema subset: exactly the paths, methods and parameters pvesim serves.
//!
//! Transcribed from pve-docs 9.1.3 `api-viewer/apidata.js` (the same data as
//! `data/api-schema-subset.json`), keeping only what validation needs: `type`, `optional`,
//! `minimum`, `maximum`, `maxLength`, `minLength`, `pattern`, `enum`, `requires` and string
//! `format`s. Inline property-string formats are dropped (so those values are only type
//! checked) except QEMU `memory`'s. A few exotic QEMU options that pvesim does not model
//! (`hostpci[n]`, `usb[n]`, `args`, `hugepages`, ...) are left out on purpose: only a simulator
//! started with the full schema file accepts them.
//!
//! The test `embedded_matches_the_full_schema` checks every entry here against the real schema,
//! so this copy cannot drift from the API.

use std::sync::OnceLock;

use crate::Schema;

/// The embedded subset of the PVE API schema that pvesim serves.
pub fn embedded() -> Schema {
    static CELL: OnceLock<Schema> = OnceLock::new();
    CELL.get_or_init(|| {
        // A constant in this crate, covered by the unit tests: failing to parse it is a bug.
        #[allow(clippy::expect_used)]
        Schema::from_json_str(EMBEDDED_JSON).expect("embedded schema is valid apidata json")
    })
    .clone()
}

/// The subset, in apidata format.
pub const EMBEDDED_JSON: &str = r##"{"paths": {
  "/cluster/nextid": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "optional": 1, "type": "integer"}
    }}}
  },
  "/cluster/resources": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "type": {"enum": ["vm", "storage", "node", "sdn"], "optional": 1, "type": "string"}
    }}}
  },
  "/nodes/{node}/lxc": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"}
    }}},
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "arch": {"enum": ["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"], "optional": 1, "type": "string"},
      "bwlimit": {"minimum": 0, "optional": 1, "type": "number"},
      "cmode": {"enum": ["shell", "console", "tty"], "optional": 1, "type": "string"},
      "console": {"optional": 1, "type": "boolean"},
      "cores": {"maximum": 8192, "minimum": 1, "optional": 1, "type": "integer"},
      "cpulimit": {"maximum": 8192, "minimum": 0, "optional": 1, "type": "number"},
      "cpuunits": {"maximum": 500000, "minimum": 0, "optional": 1, "type": "integer"},
      "debug": {"optional": 1, "type": "boolean"},
      "description": {"maxLength": 8192, "optional": 1, "type": "string"},
      "dev[n]": {"optional": 1, "type": "string"},
      "entrypoint": {"optional": 1, "pattern": "(?^:[^\\x00-\\x08\\x10-\\x1F\\x7F]+)", "type": "string"},
      "env": {"optional": 1, "pattern": "(?^:(?:\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)(?:\\0\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)*)", "type": "string"},
      "features": {"optional": 1, "type": "string"},
      "force": {"optional": 1, "type": "boolean"},
      "ha-managed": {"optional": 1, "type": "boolean"},
      "hookscript": {"format": "pve-volume-id", "optional": 1, "type": "string"},
      "hostname": {"format": "dns-name", "maxLength": 255, "optional": 1, "type": "string"},
      "ignore-unpack-errors": {"optional": 1, "type": "boolean"},
      "lock": {"enum": ["backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"], "optional": 1, "type": "string"},
      "memory": {"minimum": 16, "optional": 1, "type": "integer"},
      "mp[n]": {"optional": 1, "type": "string"},
      "nameserver": {"format": "lxc-ip-with-ll-iface-list", "optional": 1, "type": "string"},
      "net[n]": {"optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "onboot": {"optional": 1, "type": "boolean"},
      "ostemplate": {"maxLength": 255, "type": "string"},
      "ostype": {"enum": ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"], "optional": 1, "type": "string"},
      "password": {"minLength": 5, "optional": 1, "type": "string"},
      "pool": {"format": "pve-poolid", "optional": 1, "type": "string"},
      "protection": {"optional": 1, "type": "boolean"},
      "restore": {"optional": 1, "type": "boolean"},
      "rootfs": {"optional": 1, "type": "string"},
      "searchdomain": {"format": "dns-name-list", "optional": 1, "type": "string"},
      "ssh-public-keys": {"optional": 1, "type": "string"},
      "start": {"optional": 1, "type": "boolean"},
      "startup": {"format": "pve-startup-order", "optional": 1, "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "swap": {"minimum": 0, "optional": 1, "type": "integer"},
      "tags": {"format": "pve-tag-list", "optional": 1, "type": "string"},
      "template": {"optional": 1, "type": "boolean"},
      "timezone": {"format": "pve-ct-timezone", "optional": 1, "type": "string"},
      "tty": {"maximum": 6, "minimum": 0, "optional": 1, "type": "integer"},
      "unique": {"optional": 1, "requires": "restore", "type": "boolean"},
      "unprivileged": {"optional": 1, "type": "boolean"},
      "unused[n]": {"optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}": {
    "DELETE": {"parameters": {"additionalProperties": 0, "properties": {
      "destroy-unreferenced-disks": {"optional": 1, "type": "boolean"},
      "force": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "purge": {"optional": 1, "type": "boolean"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/clone": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "bwlimit": {"minimum": 0, "optional": 1, "type": "number"},
      "description": {"optional": 1, "type": "string"},
      "full": {"optional": 1, "type": "boolean"},
      "hostname": {"format": "dns-name", "optional": 1, "type": "string"},
      "newid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "node": {"format": "pve-node", "type": "string"},
      "pool": {"format": "pve-poolid", "optional": 1, "type": "string"},
      "snapname": {"format": "pve-configid", "maxLength": 40, "optional": 1, "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "target": {"format": "pve-node", "optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/config": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "current": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "snapshot": {"format": "pve-configid", "maxLength": 40, "optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}},
    "PUT": {"parameters": {"additionalProperties": 0, "properties": {
      "arch": {"enum": ["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"], "optional": 1, "type": "string"},
      "cmode": {"enum": ["shell", "console", "tty"], "optional": 1, "type": "string"},
      "console": {"optional": 1, "type": "boolean"},
      "cores": {"maximum": 8192, "minimum": 1, "optional": 1, "type": "integer"},
      "cpulimit": {"maximum": 8192, "minimum": 0, "optional": 1, "type": "number"},
      "cpuunits": {"maximum": 500000, "minimum": 0, "optional": 1, "type": "integer"},
      "debug": {"optional": 1, "type": "boolean"},
      "delete": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "description": {"maxLength": 8192, "optional": 1, "type": "string"},
      "dev[n]": {"optional": 1, "type": "string"},
      "digest": {"maxLength": 40, "optional": 1, "type": "string"},
      "entrypoint": {"optional": 1, "pattern": "(?^:[^\\x00-\\x08\\x10-\\x1F\\x7F]+)", "type": "string"},
      "env": {"optional": 1, "pattern": "(?^:(?:\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)(?:\\0\\w+=[^\\x00-\\x08\\x10-\\x1F\\x7F]*)*)", "type": "string"},
      "features": {"optional": 1, "type": "string"},
      "hookscript": {"format": "pve-volume-id", "optional": 1, "type": "string"},
      "hostname": {"format": "dns-name", "maxLength": 255, "optional": 1, "type": "string"},
      "lock": {"enum": ["backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"], "optional": 1, "type": "string"},
      "memory": {"minimum": 16, "optional": 1, "type": "integer"},
      "mp[n]": {"optional": 1, "type": "string"},
      "nameserver": {"format": "lxc-ip-with-ll-iface-list", "optional": 1, "type": "string"},
      "net[n]": {"optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "onboot": {"optional": 1, "type": "boolean"},
      "ostype": {"enum": ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"], "optional": 1, "type": "string"},
      "protection": {"optional": 1, "type": "boolean"},
      "revert": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "rootfs": {"optional": 1, "type": "string"},
      "searchdomain": {"format": "dns-name-list", "optional": 1, "type": "string"},
      "startup": {"format": "pve-startup-order", "optional": 1, "type": "string"},
      "swap": {"minimum": 0, "optional": 1, "type": "integer"},
      "tags": {"format": "pve-tag-list", "optional": 1, "type": "string"},
      "template": {"optional": 1, "type": "boolean"},
      "timezone": {"format": "pve-ct-timezone", "optional": 1, "type": "string"},
      "tty": {"maximum": 6, "minimum": 0, "optional": 1, "type": "integer"},
      "unprivileged": {"optional": 1, "type": "boolean"},
      "unused[n]": {"optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/pending": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/resize": {
    "PUT": {"parameters": {"additionalProperties": 0, "properties": {
      "digest": {"maxLength": 40, "optional": 1, "type": "string"},
      "disk": {"enum": ["rootfs", "mp0", "mp1", "mp2", "mp3", "mp4", "mp5", "mp6", "mp7", "mp8", "mp9", "mp10", "mp11", "mp12", "mp13", "mp14", "mp15", "mp16", "mp17", "mp18", "mp19", "mp20", "mp21", "mp22", "mp23", "mp24", "mp25", "mp26", "mp27", "mp28", "mp29", "mp30", "mp31", "mp32", "mp33", "mp34", "mp35", "mp36", "mp37", "mp38", "mp39", "mp40", "mp41", "mp42", "mp43", "mp44", "mp45", "mp46", "mp47", "mp48", "mp49", "mp50", "mp51", "mp52", "mp53", "mp54", "mp55", "mp56", "mp57", "mp58", "mp59", "mp60", "mp61", "mp62", "mp63", "mp64", "mp65", "mp66", "mp67", "mp68", "mp69", "mp70", "mp71", "mp72", "mp73", "mp74", "mp75", "mp76", "mp77", "mp78", "mp79", "mp80", "mp81", "mp82", "mp83", "mp84", "mp85", "mp86", "mp87", "mp88", "mp89", "mp90", "mp91", "mp92", "mp93", "mp94", "mp95", "mp96", "mp97", "mp98", "mp99", "mp100", "mp101", "mp102", "mp103", "mp104", "mp105", "mp106", "mp107", "mp108", "mp109", "mp110", "mp111", "mp112", "mp113", "mp114", "mp115", "mp116", "mp117", "mp118", "mp119", "mp120", "mp121", "mp122", "mp123", "mp124", "mp125", "mp126", "mp127", "mp128", "mp129", "mp130", "mp131", "mp132", "mp133", "mp134", "mp135", "mp136", "mp137", "mp138", "mp139", "mp140", "mp141", "mp142", "mp143", "mp144", "mp145", "mp146", "mp147", "mp148", "mp149", "mp150", "mp151", "mp152", "mp153", "mp154", "mp155", "mp156", "mp157", "mp158", "mp159", "mp160", "mp161", "mp162", "mp163", "mp164", "mp165", "mp166", "mp167", "mp168", "mp169", "mp170", "mp171", "mp172", "mp173", "mp174", "mp175", "mp176", "mp177", "mp178", "mp179", "mp180", "mp181", "mp182", "mp183", "mp184", "mp185", "mp186", "mp187", "mp188", "mp189", "mp190", "mp191", "mp192", "mp193", "mp194", "mp195", "mp196", "mp197", "mp198", "mp199", "mp200", "mp201", "mp202", "mp203", "mp204", "mp205", "mp206", "mp207", "mp208", "mp209", "mp210", "mp211", "mp212", "mp213", "mp214", "mp215", "mp216", "mp217", "mp218", "mp219", "mp220", "mp221", "mp222", "mp223", "mp224", "mp225", "mp226", "mp227", "mp228", "mp229", "mp230", "mp231", "mp232", "mp233", "mp234", "mp235", "mp236", "mp237", "mp238", "mp239", "mp240", "mp241", "mp242", "mp243", "mp244", "mp245", "mp246", "mp247", "mp248", "mp249", "mp250", "mp251", "mp252", "mp253", "mp254", "mp255"], "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "size": {"pattern": "\\+?\\d+(\\.\\d+)?[KMGT]?", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/status/current": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/status/reboot": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/status/shutdown": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "forceStop": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/status/start": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "debug": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/status/stop": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "overrule-shutdown": {"optional": 1, "type": "boolean"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/lxc/{vmid}/template": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "full": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"}
    }}},
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "acpi": {"optional": 1, "type": "boolean"},
      "affinity": {"format": "pve-cpuset", "optional": 1, "type": "string"},
      "agent": {"optional": 1, "type": "string"},
      "allow-ksm": {"optional": 1, "type": "boolean"},
      "amd-sev": {"format": "pve-qemu-sev-fmt", "optional": 1, "type": "string"},
      "arch": {"enum": ["x86_64", "aarch64"], "optional": 1, "type": "string"},
      "archive": {"maxLength": 255, "optional": 1, "type": "string"},
      "args": {"optional": 1, "type": "string"},
      "audio0": {"optional": 1, "type": "string"},
      "autostart": {"optional": 1, "type": "boolean"},
      "balloon": {"minimum": 0, "optional": 1, "type": "integer"},
      "bios": {"enum": ["seabios", "ovmf"], "optional": 1, "type": "string"},
      "boot": {"format": "pve-qm-boot", "optional": 1, "type": "string"},
      "bootdisk": {"format": "pve-qm-bootdisk", "optional": 1, "pattern": "(ide|sata|scsi|virtio)\\d+", "type": "string"},
      "bwlimit": {"minimum": 0, "optional": 1, "type": "integer"},
      "cdrom": {"format": "pve-qm-ide", "optional": 1, "type": "string"},
      "cicustom": {"format": "pve-qm-cicustom", "optional": 1, "type": "string"},
      "cipassword": {"optional": 1, "type": "string"},
      "citype": {"enum": ["configdrive2", "nocloud", "opennebula"], "optional": 1, "type": "string"},
      "ciupgrade": {"optional": 1, "type": "boolean"},
      "ciuser": {"optional": 1, "type": "string"},
      "cores": {"minimum": 1, "optional": 1, "type": "integer"},
      "cpu": {"format": "pve-vm-cpu-conf", "optional": 1, "type": "string"},
      "cpulimit": {"maximum": 128, "minimum": 0, "optional": 1, "type": "number"},
      "cpuunits": {"maximum": 262144, "minimum": 1, "optional": 1, "type": "integer"},
      "description": {"maxLength": 8192, "optional": 1, "type": "string"},
      "efidisk0": {"optional": 1, "type": "string"},
      "force": {"optional": 1, "requires": "archive", "type": "boolean"},
      "freeze": {"optional": 1, "type": "boolean"},
      "ha-managed": {"optional": 1, "type": "boolean"},
      "hookscript": {"format": "pve-volume-id", "optional": 1, "type": "string"},
      "hostpci[n]": {"format": "pve-qm-hostpci", "optional": 1, "type": "string"},
      "hotplug": {"format": "pve-hotplug-features", "optional": 1, "type": "string"},
      "hugepages": {"enum": ["any", "2", "1024"], "optional": 1, "type": "string"},
      "ide[n]": {"optional": 1, "type": "string"},
      "import-working-storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "intel-tdx": {"format": "pve-qemu-tdx-fmt", "optional": 1, "type": "string"},
      "ipconfig[n]": {"format": "pve-qm-ipconfig", "optional": 1, "type": "string"},
      "ivshmem": {"optional": 1, "type": "string"},
      "keephugepages": {"optional": 1, "type": "boolean"},
      "keyboard": {"enum": ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"], "optional": 1, "type": "string"},
      "kvm": {"optional": 1, "type": "boolean"},
      "live-restore": {"optional": 1, "type": "boolean"},
      "localtime": {"optional": 1, "type": "boolean"},
      "lock": {"enum": ["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"], "optional": 1, "type": "string"},
      "machine": {"optional": 1, "type": "string"},
      "memory": {"optional": 1, "type": "string"},
      "migrate_downtime": {"minimum": 0, "optional": 1, "type": "number"},
      "migrate_speed": {"minimum": 0, "optional": 1, "type": "integer"},
      "name": {"format": "dns-name", "optional": 1, "type": "string"},
      "nameserver": {"format": "address-list", "optional": 1, "type": "string"},
      "net[n]": {"optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "numa": {"optional": 1, "type": "boolean"},
      "numa[n]": {"optional": 1, "type": "string"},
      "onboot": {"optional": 1, "type": "boolean"},
      "ostype": {"enum": ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"], "optional": 1, "type": "string"},
      "parallel[n]": {"optional": 1, "pattern": "/dev/parport\\d+|/dev/usb/lp\\d+", "type": "string"},
      "pool": {"format": "pve-poolid", "optional": 1, "type": "string"},
      "protection": {"optional": 1, "type": "boolean"},
      "reboot": {"optional": 1, "type": "boolean"},
      "rng0": {"format": "pve-qm-rng", "optional": 1, "type": "string"},
      "sata[n]": {"optional": 1, "type": "string"},
      "scsi[n]": {"optional": 1, "type": "string"},
      "scsihw": {"enum": ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"], "optional": 1, "type": "string"},
      "searchdomain": {"optional": 1, "type": "string"},
      "serial[n]": {"optional": 1, "pattern": "(/dev/.+|socket)", "type": "string"},
      "shares": {"maximum": 50000, "minimum": 0, "optional": 1, "type": "integer"},
      "smbios1": {"format": "pve-qm-smbios1", "maxLength": 512, "optional": 1, "type": "string"},
      "smp": {"minimum": 1, "optional": 1, "type": "integer"},
      "sockets": {"minimum": 1, "optional": 1, "type": "integer"},
      "spice_enhancements": {"optional": 1, "type": "string"},
      "sshkeys": {"format": "urlencoded", "optional": 1, "type": "string"},
      "start": {"optional": 1, "type": "boolean"},
      "startdate": {"optional": 1, "pattern": "(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)", "type": "string"},
      "startup": {"format": "pve-startup-order", "optional": 1, "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "tablet": {"optional": 1, "type": "boolean"},
      "tags": {"format": "pve-tag-list", "optional": 1, "type": "string"},
      "tdf": {"optional": 1, "type": "boolean"},
      "template": {"optional": 1, "type": "boolean"},
      "tpmstate0": {"optional": 1, "type": "string"},
      "unique": {"optional": 1, "requires": "archive", "type": "boolean"},
      "unused[n]": {"optional": 1, "type": "string"},
      "usb[n]": {"optional": 1, "type": "string"},
      "vcpus": {"minimum": 1, "optional": 1, "type": "integer"},
      "vga": {"optional": 1, "type": "string"},
      "virtio[n]": {"optional": 1, "type": "string"},
      "virtiofs[n]": {"optional": 1, "type": "string"},
      "vmgenid": {"optional": 1, "pattern": "(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "vmstatestorage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "watchdog": {"format": "pve-qm-watchdog", "optional": 1, "type": "string"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}": {
    "DELETE": {"parameters": {"additionalProperties": 0, "properties": {
      "destroy-unreferenced-disks": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "purge": {"optional": 1, "type": "boolean"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/clone": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "bwlimit": {"minimum": 0, "optional": 1, "type": "integer"},
      "description": {"optional": 1, "type": "string"},
      "format": {"enum": ["raw", "qcow2", "vmdk"], "optional": 1, "type": "string"},
      "full": {"optional": 1, "type": "boolean"},
      "name": {"format": "dns-name", "optional": 1, "type": "string"},
      "newid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "node": {"format": "pve-node", "type": "string"},
      "pool": {"format": "pve-poolid", "optional": 1, "type": "string"},
      "snapname": {"format": "pve-configid", "maxLength": 40, "optional": 1, "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "target": {"format": "pve-node", "optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/config": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "current": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "snapshot": {"format": "pve-configid", "maxLength": 40, "optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}},
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "acpi": {"optional": 1, "type": "boolean"},
      "agent": {"optional": 1, "type": "string"},
      "arch": {"enum": ["x86_64", "aarch64"], "optional": 1, "type": "string"},
      "autostart": {"optional": 1, "type": "boolean"},
      "background_delay": {"maximum": 30, "minimum": 1, "optional": 1, "type": "integer"},
      "balloon": {"minimum": 0, "optional": 1, "type": "integer"},
      "bios": {"enum": ["seabios", "ovmf"], "optional": 1, "type": "string"},
      "boot": {"format": "pve-qm-boot", "optional": 1, "type": "string"},
      "bootdisk": {"format": "pve-qm-bootdisk", "optional": 1, "pattern": "(ide|sata|scsi|virtio)\\d+", "type": "string"},
      "cdrom": {"format": "pve-qm-ide", "optional": 1, "type": "string"},
      "cicustom": {"format": "pve-qm-cicustom", "optional": 1, "type": "string"},
      "cipassword": {"optional": 1, "type": "string"},
      "citype": {"enum": ["configdrive2", "nocloud", "opennebula"], "optional": 1, "type": "string"},
      "ciupgrade": {"optional": 1, "type": "boolean"},
      "ciuser": {"optional": 1, "type": "string"},
      "cores": {"minimum": 1, "optional": 1, "type": "integer"},
      "cpu": {"format": "pve-vm-cpu-conf", "optional": 1, "type": "string"},
      "cpulimit": {"maximum": 128, "minimum": 0, "optional": 1, "type": "number"},
      "cpuunits": {"maximum": 262144, "minimum": 1, "optional": 1, "type": "integer"},
      "delete": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "description": {"maxLength": 8192, "optional": 1, "type": "string"},
      "digest": {"maxLength": 40, "optional": 1, "type": "string"},
      "efidisk0": {"optional": 1, "type": "string"},
      "force": {"optional": 1, "requires": "delete", "type": "boolean"},
      "freeze": {"optional": 1, "type": "boolean"},
      "hookscript": {"format": "pve-volume-id", "optional": 1, "type": "string"},
      "hotplug": {"format": "pve-hotplug-features", "optional": 1, "type": "string"},
      "ide[n]": {"optional": 1, "type": "string"},
      "ipconfig[n]": {"format": "pve-qm-ipconfig", "optional": 1, "type": "string"},
      "keyboard": {"enum": ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"], "optional": 1, "type": "string"},
      "kvm": {"optional": 1, "type": "boolean"},
      "localtime": {"optional": 1, "type": "boolean"},
      "lock": {"enum": ["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"], "optional": 1, "type": "string"},
      "machine": {"optional": 1, "type": "string"},
      "memory": {"format": {"current": {"default_key": 1, "minimum": 16, "type": "integer"}}, "optional": 1, "type": "string"},
      "migrate_downtime": {"minimum": 0, "optional": 1, "type": "number"},
      "migrate_speed": {"minimum": 0, "optional": 1, "type": "integer"},
      "name": {"format": "dns-name", "optional": 1, "type": "string"},
      "nameserver": {"format": "address-list", "optional": 1, "type": "string"},
      "net[n]": {"optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "numa": {"optional": 1, "type": "boolean"},
      "onboot": {"optional": 1, "type": "boolean"},
      "ostype": {"enum": ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"], "optional": 1, "type": "string"},
      "protection": {"optional": 1, "type": "boolean"},
      "reboot": {"optional": 1, "type": "boolean"},
      "revert": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "sata[n]": {"optional": 1, "type": "string"},
      "scsi[n]": {"optional": 1, "type": "string"},
      "scsihw": {"enum": ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"], "optional": 1, "type": "string"},
      "searchdomain": {"optional": 1, "type": "string"},
      "serial[n]": {"optional": 1, "pattern": "(/dev/.+|socket)", "type": "string"},
      "shares": {"maximum": 50000, "minimum": 0, "optional": 1, "type": "integer"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "smbios1": {"format": "pve-qm-smbios1", "maxLength": 512, "optional": 1, "type": "string"},
      "smp": {"minimum": 1, "optional": 1, "type": "integer"},
      "sockets": {"minimum": 1, "optional": 1, "type": "integer"},
      "sshkeys": {"format": "urlencoded", "optional": 1, "type": "string"},
      "startdate": {"optional": 1, "pattern": "(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)", "type": "string"},
      "startup": {"format": "pve-startup-order", "optional": 1, "type": "string"},
      "tablet": {"optional": 1, "type": "boolean"},
      "tags": {"format": "pve-tag-list", "optional": 1, "type": "string"},
      "tdf": {"optional": 1, "type": "boolean"},
      "template": {"optional": 1, "type": "boolean"},
      "tpmstate0": {"optional": 1, "type": "string"},
      "unused[n]": {"optional": 1, "type": "string"},
      "vcpus": {"minimum": 1, "optional": 1, "type": "integer"},
      "vga": {"optional": 1, "type": "string"},
      "virtio[n]": {"optional": 1, "type": "string"},
      "vmgenid": {"optional": 1, "pattern": "(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "vmstatestorage": {"format": "pve-storage-id", "optional": 1, "type": "string"}
    }}},
    "PUT": {"parameters": {"additionalProperties": 0, "properties": {
      "acpi": {"optional": 1, "type": "boolean"},
      "agent": {"optional": 1, "type": "string"},
      "arch": {"enum": ["x86_64", "aarch64"], "optional": 1, "type": "string"},
      "autostart": {"optional": 1, "type": "boolean"},
      "balloon": {"minimum": 0, "optional": 1, "type": "integer"},
      "bios": {"enum": ["seabios", "ovmf"], "optional": 1, "type": "string"},
      "boot": {"format": "pve-qm-boot", "optional": 1, "type": "string"},
      "bootdisk": {"format": "pve-qm-bootdisk", "optional": 1, "pattern": "(ide|sata|scsi|virtio)\\d+", "type": "string"},
      "cdrom": {"format": "pve-qm-ide", "optional": 1, "type": "string"},
      "cicustom": {"format": "pve-qm-cicustom", "optional": 1, "type": "string"},
      "cipassword": {"optional": 1, "type": "string"},
      "citype": {"enum": ["configdrive2", "nocloud", "opennebula"], "optional": 1, "type": "string"},
      "ciupgrade": {"optional": 1, "type": "boolean"},
      "ciuser": {"optional": 1, "type": "string"},
      "cores": {"minimum": 1, "optional": 1, "type": "integer"},
      "cpu": {"format": "pve-vm-cpu-conf", "optional": 1, "type": "string"},
      "cpulimit": {"maximum": 128, "minimum": 0, "optional": 1, "type": "number"},
      "cpuunits": {"maximum": 262144, "minimum": 1, "optional": 1, "type": "integer"},
      "delete": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "description": {"maxLength": 8192, "optional": 1, "type": "string"},
      "digest": {"maxLength": 40, "optional": 1, "type": "string"},
      "efidisk0": {"optional": 1, "type": "string"},
      "force": {"optional": 1, "requires": "delete", "type": "boolean"},
      "freeze": {"optional": 1, "type": "boolean"},
      "hookscript": {"format": "pve-volume-id", "optional": 1, "type": "string"},
      "hotplug": {"format": "pve-hotplug-features", "optional": 1, "type": "string"},
      "ide[n]": {"optional": 1, "type": "string"},
      "ipconfig[n]": {"format": "pve-qm-ipconfig", "optional": 1, "type": "string"},
      "keyboard": {"enum": ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"], "optional": 1, "type": "string"},
      "kvm": {"optional": 1, "type": "boolean"},
      "localtime": {"optional": 1, "type": "boolean"},
      "lock": {"enum": ["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"], "optional": 1, "type": "string"},
      "machine": {"optional": 1, "type": "string"},
      "memory": {"format": {"current": {"default_key": 1, "minimum": 16, "type": "integer"}}, "optional": 1, "type": "string"},
      "migrate_downtime": {"minimum": 0, "optional": 1, "type": "number"},
      "migrate_speed": {"minimum": 0, "optional": 1, "type": "integer"},
      "name": {"format": "dns-name", "optional": 1, "type": "string"},
      "nameserver": {"format": "address-list", "optional": 1, "type": "string"},
      "net[n]": {"optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "numa": {"optional": 1, "type": "boolean"},
      "onboot": {"optional": 1, "type": "boolean"},
      "ostype": {"enum": ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"], "optional": 1, "type": "string"},
      "protection": {"optional": 1, "type": "boolean"},
      "reboot": {"optional": 1, "type": "boolean"},
      "revert": {"format": "pve-configid-list", "optional": 1, "type": "string"},
      "sata[n]": {"optional": 1, "type": "string"},
      "scsi[n]": {"optional": 1, "type": "string"},
      "scsihw": {"enum": ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"], "optional": 1, "type": "string"},
      "searchdomain": {"optional": 1, "type": "string"},
      "serial[n]": {"optional": 1, "pattern": "(/dev/.+|socket)", "type": "string"},
      "shares": {"maximum": 50000, "minimum": 0, "optional": 1, "type": "integer"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "smbios1": {"format": "pve-qm-smbios1", "maxLength": 512, "optional": 1, "type": "string"},
      "smp": {"minimum": 1, "optional": 1, "type": "integer"},
      "sockets": {"minimum": 1, "optional": 1, "type": "integer"},
      "sshkeys": {"format": "urlencoded", "optional": 1, "type": "string"},
      "startdate": {"optional": 1, "pattern": "(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)", "type": "string"},
      "startup": {"format": "pve-startup-order", "optional": 1, "type": "string"},
      "tablet": {"optional": 1, "type": "boolean"},
      "tags": {"format": "pve-tag-list", "optional": 1, "type": "string"},
      "tdf": {"optional": 1, "type": "boolean"},
      "template": {"optional": 1, "type": "boolean"},
      "tpmstate0": {"optional": 1, "type": "string"},
      "unused[n]": {"optional": 1, "type": "string"},
      "vcpus": {"minimum": 1, "optional": 1, "type": "integer"},
      "vga": {"optional": 1, "type": "string"},
      "virtio[n]": {"optional": 1, "type": "string"},
      "vmgenid": {"optional": 1, "pattern": "(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "vmstatestorage": {"format": "pve-storage-id", "optional": 1, "type": "string"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/pending": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/resize": {
    "PUT": {"parameters": {"additionalProperties": 0, "properties": {
      "digest": {"maxLength": 40, "optional": 1, "type": "string"},
      "disk": {"enum": ["ide0", "ide1", "ide2", "ide3", "scsi0", "scsi1", "scsi2", "scsi3", "scsi4", "scsi5", "scsi6", "scsi7", "scsi8", "scsi9", "scsi10", "scsi11", "scsi12", "scsi13", "scsi14", "scsi15", "scsi16", "scsi17", "scsi18", "scsi19", "scsi20", "scsi21", "scsi22", "scsi23", "scsi24", "scsi25", "scsi26", "scsi27", "scsi28", "scsi29", "scsi30", "virtio0", "virtio1", "virtio2", "virtio3", "virtio4", "virtio5", "virtio6", "virtio7", "virtio8", "virtio9", "virtio10", "virtio11", "virtio12", "virtio13", "virtio14", "virtio15", "sata0", "sata1", "sata2", "sata3", "sata4", "sata5", "efidisk0", "tpmstate0"], "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "size": {"pattern": "\\+?\\d+(\\.\\d+)?[KMGT]?", "type": "string"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/status/current": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/status/reboot": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/status/shutdown": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "forceStop": {"optional": 1, "type": "boolean"},
      "keepActive": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/status/start": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "force-cpu": {"optional": 1, "type": "string"},
      "machine": {"optional": 1, "type": "string"},
      "migratedfrom": {"format": "pve-node", "optional": 1, "type": "string"},
      "migration_network": {"format": "CIDR", "optional": 1, "type": "string"},
      "migration_type": {"enum": ["secure", "insecure"], "optional": 1, "type": "string"},
      "nets-host-mtu": {"optional": 1, "pattern": "net\\d+=\\d+(,net\\d+=\\d+)*", "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "stateuri": {"maxLength": 128, "optional": 1, "type": "string"},
      "targetstorage": {"format": "storage-pair-list", "optional": 1, "type": "string"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"},
      "with-conntrack-state": {"optional": 1, "type": "boolean"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/status/stop": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "keepActive": {"optional": 1, "type": "boolean"},
      "migratedfrom": {"format": "pve-node", "optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "overrule-shutdown": {"optional": 1, "type": "boolean"},
      "skiplock": {"optional": 1, "type": "boolean"},
      "timeout": {"minimum": 0, "optional": 1, "type": "integer"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/qemu/{vmid}/template": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "disk": {"enum": ["ide0", "ide1", "ide2", "ide3", "scsi0", "scsi1", "scsi2", "scsi3", "scsi4", "scsi5", "scsi6", "scsi7", "scsi8", "scsi9", "scsi10", "scsi11", "scsi12", "scsi13", "scsi14", "scsi15", "scsi16", "scsi17", "scsi18", "scsi19", "scsi20", "scsi21", "scsi22", "scsi23", "scsi24", "scsi25", "scsi26", "scsi27", "scsi28", "scsi29", "scsi30", "virtio0", "virtio1", "virtio2", "virtio3", "virtio4", "virtio5", "virtio6", "virtio7", "virtio8", "virtio9", "virtio10", "virtio11", "virtio12", "virtio13", "virtio14", "virtio15", "sata0", "sata1", "sata2", "sata3", "sata4", "sata5", "efidisk0", "tpmstate0"], "optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "type": "integer"}
    }}}
  },
  "/nodes/{node}/storage/{storage}/content": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "content": {"format": "pve-storage-content", "optional": 1, "type": "string"},
      "node": {"format": "pve-node", "type": "string"},
      "storage": {"format": "pve-storage-id", "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "optional": 1, "type": "integer"}
    }}}
  },
  "/nodes/{node}/storage/{storage}/content/{volume}": {
    "DELETE": {"parameters": {"additionalProperties": 0, "properties": {
      "delay": {"maximum": 30, "minimum": 1, "optional": 1, "type": "integer"},
      "node": {"format": "pve-node", "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "volume": {"type": "string"}
    }}},
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "volume": {"type": "string"}
    }}}
  },
  "/nodes/{node}/tasks": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "errors": {"optional": 1, "type": "boolean"},
      "limit": {"minimum": 0, "optional": 1, "type": "integer"},
      "node": {"format": "pve-node", "type": "string"},
      "since": {"optional": 1, "type": "integer"},
      "source": {"enum": ["archive", "active", "all"], "optional": 1, "type": "string"},
      "start": {"minimum": 0, "optional": 1, "type": "integer"},
      "statusfilter": {"format": "pve-task-status-type-list", "optional": 1, "type": "string"},
      "typefilter": {"optional": 1, "type": "string"},
      "until": {"optional": 1, "type": "integer"},
      "userfilter": {"optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid", "maximum": 999999999, "minimum": 100, "optional": 1, "type": "integer"}
    }}}
  },
  "/nodes/{node}/tasks/{upid}/log": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "download": {"optional": 1, "type": "boolean"},
      "limit": {"minimum": 0, "optional": 1, "type": "integer"},
      "node": {"format": "pve-node", "type": "string"},
      "start": {"minimum": 0, "optional": 1, "type": "integer"},
      "upid": {"type": "string"}
    }}}
  },
  "/nodes/{node}/tasks/{upid}/status": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "node": {"format": "pve-node", "type": "string"},
      "upid": {"type": "string"}
    }}}
  },
  "/nodes/{node}/vzdump": {
    "POST": {"parameters": {"additionalProperties": 0, "properties": {
      "all": {"optional": 1, "type": "boolean"},
      "bwlimit": {"minimum": 0, "optional": 1, "type": "integer"},
      "compress": {"enum": ["0", "1", "gzip", "lzo", "zstd"], "optional": 1, "type": "string"},
      "dumpdir": {"optional": 1, "type": "string"},
      "exclude": {"format": "pve-vmid-list", "optional": 1, "type": "string"},
      "exclude-path": {"optional": 1, "type": "array"},
      "fleecing": {"format": "backup-fleecing", "optional": 1, "type": "string"},
      "ionice": {"maximum": 8, "minimum": 0, "optional": 1, "type": "integer"},
      "job-id": {"maxLength": 50, "optional": 1, "pattern": "\\S+", "type": "string"},
      "lockwait": {"minimum": 0, "optional": 1, "type": "integer"},
      "mailnotification": {"enum": ["always", "failure"], "optional": 1, "type": "string"},
      "mailto": {"format": "email-or-username-list", "optional": 1, "type": "string"},
      "maxfiles": {"minimum": 1, "optional": 1, "type": "integer"},
      "mode": {"enum": ["snapshot", "suspend", "stop"], "optional": 1, "type": "string"},
      "node": {"format": "pve-node", "optional": 1, "type": "string"},
      "notes-template": {"maxLength": 1024, "optional": 1, "requires": "storage", "type": "string"},
      "notification-mode": {"enum": ["auto", "legacy-sendmail", "notification-system"], "optional": 1, "type": "string"},
      "pbs-change-detection-mode": {"enum": ["legacy", "data", "metadata"], "optional": 1, "type": "string"},
      "performance": {"format": "backup-performance", "optional": 1, "type": "string"},
      "pigz": {"optional": 1, "type": "integer"},
      "pool": {"optional": 1, "type": "string"},
      "protected": {"optional": 1, "requires": "storage", "type": "boolean"},
      "prune-backups": {"format": "prune-backups", "optional": 1, "type": "string"},
      "quiet": {"optional": 1, "type": "boolean"},
      "remove": {"optional": 1, "type": "boolean"},
      "script": {"optional": 1, "type": "string"},
      "stdexcludes": {"optional": 1, "type": "boolean"},
      "stdout": {"optional": 1, "type": "boolean"},
      "stop": {"optional": 1, "type": "boolean"},
      "stopwait": {"minimum": 0, "optional": 1, "type": "integer"},
      "storage": {"format": "pve-storage-id", "optional": 1, "type": "string"},
      "tmpdir": {"optional": 1, "type": "string"},
      "vmid": {"format": "pve-vmid-list", "optional": 1, "type": "string"},
      "zstd": {"optional": 1, "type": "integer"}
    }}}
  },
  "/version": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
    }}}
  }
}}"##;
