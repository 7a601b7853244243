//! Guests: one simulated guest's configuration, pending changes, lock and the hotplug rules a real node applies.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Guest {
    pub(super) vmid: u32,
    pub(super) kind: GuestKind,
    pub(super) running: bool,
    pub(super) conf: ParsedConf,
    pub(super) raw: String,
    pub(super) digest: String,
    pub(super) started: Option<SystemTime>,
    pub(super) pid: u32,
}

impl Guest {
    /// Writes the config file and reads it back, as every PVE config write does.
    pub(super) fn sync(&mut self) {
        let raw = pveconf::render(self.kind, &self.conf);
        self.conf = pveconf::parse(self.kind, &raw);
        self.digest = pveconf::digest(&raw);
        self.raw = raw;
    }

    pub(super) fn lock(&self) -> Option<&str> {
        self.conf.main.get("lock").map(String::as_str)
    }

    pub(super) fn view(&self) -> GuestView {
        GuestView {
            vmid: self.vmid,
            kind: self.kind,
            status: if self.running {
                GuestStatus::Running
            } else {
                GuestStatus::Stopped
            },
            lock: self.lock().map(str::to_string),
            config: self.conf.main.clone(),
            pending: self.conf.pending.clone(),
            pending_delete: self.conf.pending_delete.keys().cloned().collect(),
            raw: self.raw.clone(),
            digest: self.digest.clone(),
        }
    }

    pub(super) fn is_template(&self) -> bool {
        self.conf
            .main
            .get("template")
            .is_some_and(|v| parse_boolean(v) == Some(true))
    }

    pub(super) fn apply_all_pending(&mut self) {
        let del = std::mem::take(&mut self.conf.pending_delete);
        for k in del.keys() {
            self.conf.main.remove(k);
        }
        let pending = std::mem::take(&mut self.conf.pending);
        self.conf.main.extend(pending);
    }

    /// `vmconfig_hotplug_pending`: apply what can change on a running guest, keep the rest.
    pub(super) fn hotplug_pending(&mut self) {
        let kind = self.kind;
        let features = hotplug_features(self.conf.main.get("hotplug").map(String::as_str));
        let dels: Vec<String> = self.conf.pending_delete.keys().cloned().collect();
        for k in dels {
            if can_hotplug(kind, &features, &k, true) {
                self.conf.main.remove(&k);
                self.conf.pending_delete.remove(&k);
            }
        }
        let keys: Vec<String> = self.conf.pending.keys().cloned().collect();
        for k in keys {
            if can_hotplug(kind, &features, &k, false)
                && let Some(v) = self.conf.pending.remove(&k)
            {
                self.conf.main.insert(k, v);
            }
        }
    }

    /// `PVE::AbstractConfig::cleanup_pending`.
    pub(super) fn cleanup_pending(&mut self) {
        let main = &self.conf.main;
        self.conf.pending.retain(|k, v| main.get(k) != Some(v));
        self.conf.pending_delete.retain(|k, _| main.contains_key(k));
    }

    pub(super) fn memory_mib(&self) -> u64 {
        let m = self
            .conf
            .main
            .get("memory")
            .map(String::as_str)
            .unwrap_or("512");
        // QEMU: property string `[current=]<integer>`; LXC: integer.
        let first = m.split(',').next().unwrap_or("");
        let v = first.strip_prefix("current=").unwrap_or(first);
        v.parse().unwrap_or(512)
    }

    pub(super) fn cpus(&self) -> f64 {
        let get = |k: &str| self.conf.main.get(k).and_then(|v| v.parse::<f64>().ok());
        match self.kind {
            GuestKind::Lxc => get("cores").unwrap_or(NODE_CPUS as f64),
            GuestKind::Qemu => {
                get("vcpus").unwrap_or(get("sockets").unwrap_or(1.0) * get("cores").unwrap_or(1.0))
            }
        }
    }

    pub(super) fn maxdisk(&self) -> u64 {
        let disk = match self.kind {
            GuestKind::Lxc => self.conf.main.get("rootfs"),
            GuestKind::Qemu => {
                let order: Vec<String> = self
                    .conf
                    .main
                    .get("boot")
                    .and_then(|b| b.split(',').find_map(|p| p.strip_prefix("order=")))
                    .map(|o| split_list(o).into_iter().map(str::to_string).collect())
                    .unwrap_or_default();
                let candidates = order.into_iter().chain(
                    ["scsi0", "virtio0", "sata0", "ide0"]
                        .iter()
                        .map(|s| s.to_string()),
                );
                let mut found = None;
                for c in candidates {
                    if let Some(v) = self.conf.main.get(&c)
                        && !v.contains("media=cdrom")
                    {
                        found = Some(v);
                        break;
                    }
                }
                found
            }
        };
        disk.and_then(|d| d.split(',').find_map(|p| p.strip_prefix("size=")))
            .and_then(parse_size)
            .unwrap_or(0)
    }

    pub(super) fn uptime(&self, now: SystemTime) -> u64 {
        match (self.running, self.started) {
            (true, Some(s)) => now.duration_since(s).map(|d| d.as_secs()).unwrap_or(0),
            _ => 0,
        }
    }
}

pub(super) fn label(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "CT",
        GuestKind::Qemu => "VM",
    }
}

pub(super) const NODE_CPUS: u32 = 8;
pub(super) const NODE_MEM: u64 = 64 << 30;

use pve_schema::parse_size;

/// qemu-server `parse_hotplug_features`: default `network,disk,usb`; `0` none; `1` default.
pub(super) fn hotplug_features(v: Option<&str>) -> Vec<String> {
    match v.unwrap_or("network,disk,usb") {
        "0" => Vec::new(),
        "1" => vec!["network".into(), "disk".into(), "usb".into()],
        s => s.split(',').map(str::to_string).collect(),
    }
}

pub(super) fn is_indexed(key: &str, bases: &[&str]) -> bool {
    pve_schema::indexed_base(key).is_some_and(|(b, _)| bases.contains(&b))
}

/// Which options change live on a running guest: qemu-server `vmconfig_hotplug_pending`
/// (`$fast_plug_option`, hotplug features) and pve-container `vmconfig_hotplug_pending`
/// (`$LXC_FASTPLUG_OPTIONS`, cgroup-backed cpu/memory, network).
pub(super) fn can_hotplug(kind: GuestKind, features: &[String], key: &str, delete: bool) -> bool {
    let has = |f: &str| features.iter().any(|x| x == f);
    match kind {
        GuestKind::Qemu => {
            const FAST: &[&str] = &[
                "description",
                "hookscript",
                "lock",
                "migrate_downtime",
                "migrate_speed",
                "name",
                "onboot",
                "protection",
                "shares",
                "startup",
                "tags",
                "vmstatestorage",
            ];
            if FAST.contains(&key) {
                return true;
            }
            match key {
                "vcpus" => has("cpu"),
                "memory" => has("memory"),
                "balloon" => !delete,
                _ if is_indexed(key, &["net"]) => has("network"),
                _ if is_indexed(key, &["scsi", "virtio", "sata", "ide"]) => has("disk"),
                _ if is_indexed(key, &["usb"]) => has("usb"),
                _ => false,
            }
        }
        GuestKind::Lxc => {
            const FAST: &[&str] = &[
                "description",
                "onboot",
                "startup",
                "protection",
                "tags",
                "timezone",
                "hookscript",
                "tty",
                "console",
                "cmode",
                "lock",
            ];
            if FAST.contains(&key) {
                return true;
            }
            if delete {
                matches!(key, "swap" | "cpulimit" | "cpuunits")
                    || is_indexed(key, &["net", "unused"])
            } else {
                matches!(key, "cpulimit" | "cpuunits" | "memory" | "swap" | "cores")
                    || is_indexed(key, &["net", "mp"])
            }
        }
    }
}
