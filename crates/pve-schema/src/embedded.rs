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
  "/nodes/{node}/qemu": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
      "full": {"optional": 1, "type": "boolean"},
      "node": {"format": "pve-node", "type": "string"}
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
  "/version": {
    "GET": {"parameters": {"additionalProperties": 0, "properties": {
    }}}
  }
}}"##;
