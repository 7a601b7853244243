//! systemd units and drop-ins: sections, directives and the write-capable ones.

use super::*;

// systemd.

pub(super) const UNIT_SECTIONS: [&str; 11] = [
    "Unit",
    "Service",
    "Timer",
    "Socket",
    "Install",
    "Path",
    "Mount",
    "Automount",
    "Swap",
    "Slice",
    "Scope",
];

pub(super) const UNIT_SUFFIXES: [&str; 10] = [
    ".service",
    ".timer",
    ".socket",
    ".path",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".target",
    ".scope",
];

/// Directives that mark a text as a unit (any one will do).
pub(super) const KNOWN_DIRECTIVES: [&str; 98] = [
    // [Unit]
    "Description",
    "Documentation",
    "Requires",
    "Wants",
    "After",
    "Before",
    "BindsTo",
    "PartOf",
    "Conflicts",
    "Requisite",
    "Upholds",
    "OnFailure",
    "OnSuccess",
    "ConditionPathExists",
    "ConditionPathIsDirectory",
    "ConditionHost",
    "AssertPathExists",
    "DefaultDependencies",
    "StartLimitIntervalSec",
    "StartLimitBurst",
    "RequiresMountsFor",
    // [Service]
    "Type",
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecStop",
    "ExecStopPost",
    "ExecReload",
    "ExecCondition",
    "Restart",
    "RestartSec",
    "User",
    "Group",
    "DynamicUser",
    "WorkingDirectory",
    "Environment",
    "EnvironmentFile",
    "PIDFile",
    "TimeoutSec",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "RemainAfterExit",
    "KillMode",
    "KillSignal",
    "LimitNOFILE",
    "Nice",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "StandardOutput",
    "StandardError",
    "SyslogIdentifier",
    "SupplementaryGroups",
    "RuntimeDirectory",
    "StateDirectory",
    "Slice",
    "Delegate",
    "TasksMax",
    "MemoryMax",
    "CPUQuota",
    "NotifyAccess",
    "WatchdogSec",
    "SuccessExitStatus",
    // [Timer]
    "OnCalendar",
    "OnBootSec",
    "OnStartupSec",
    "OnActiveSec",
    "OnUnitActiveSec",
    "OnUnitInactiveSec",
    "Persistent",
    "RandomizedDelaySec",
    "AccuracySec",
    "Unit",
    "WakeSystem",
    // [Socket]
    "ListenStream",
    "ListenDatagram",
    "ListenSequentialPacket",
    "ListenFIFO",
    "Accept",
    "SocketUser",
    "SocketMode",
    "Service",
    // [Install]
    "WantedBy",
    "RequiredBy",
    "Alias",
    "Also",
    // [Path]
    "PathExists",
    "PathChanged",
    "PathModified",
    "DirectoryNotEmpty",
    // [Mount]
    "What",
    "Where",
];

/// Commands whose presence in an `Exec*=` line makes a unit write-capable.
pub(super) const WRITING_COMMANDS: [&str; 19] = [
    "rm",
    "dd",
    "nft",
    "docker",
    "docker-compose",
    "podman",
    "systemctl",
    "tee",
    "cp",
    "mv",
    "install",
    "rsync",
    "apt",
    "apt-get",
    "dnf",
    "yum",
    "iptables",
    "ip6tables",
    "mkfs",
];

/// A parsed unit file: sections in order, each with its `Key=Value` lines in order.
pub(super) struct UnitFile {
    pub(super) sections: Vec<(String, Vec<(String, String)>)>,
}

impl UnitFile {
    fn has(&self, section: &str) -> bool {
        self.sections.iter().any(|(s, _)| s == section)
    }

    /// Every value of `key` in `section`, in order (later lines override earlier ones).
    fn values<'a>(&'a self, section: &str, key: &str) -> Vec<&'a str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, lines)| lines.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn last<'a>(&'a self, section: &str, key: &str) -> Option<&'a str> {
        self.values(section, key).pop()
    }

    fn all_lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sections
            .iter()
            .flat_map(|(_, lines)| lines.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

pub(super) fn is_unit_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `text` as a unit file, strictly: `None` for anything that is not one.
pub(super) fn parse_unit(text: &str) -> Option<UnitFile> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut pending: Option<String> = None;
    for raw in text.lines() {
        let line = match pending.take() {
            Some(mut joined) => {
                joined.push(' ');
                joined.push_str(raw.trim());
                joined
            }
            None => raw.trim().to_owned(),
        };
        if let Some(stripped) = line.strip_suffix('\\')
            && !line.starts_with('#')
            && !line.starts_with(';')
        {
            pending = Some(stripped.trim_end().to_owned());
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !(UNIT_SECTIONS.contains(&name) || name.starts_with("X-")) {
                return None;
            }
            sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        if !is_unit_key(key) {
            return None;
        }
        let (_, lines) = sections.last_mut()?;
        lines.push((key.to_owned(), value.trim().to_owned()));
    }
    if let Some(line) = pending {
        // A dangling continuation at end of file: the line as it stands.
        let (key, value) = line.split_once('=')?;
        let (_, lines) = sections.last_mut()?;
        lines.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    let has_unit_section = sections
        .iter()
        .any(|(s, _)| UNIT_SECTIONS.contains(&s.as_str()));
    let unit = UnitFile { sections };
    let known = unit.all_lines().any(|(k, _)| KNOWN_DIRECTIVES.contains(&k));
    (has_unit_section && known).then_some(unit)
}

pub(super) fn unit_suffix(name: &str) -> Option<&'static str> {
    UNIT_SUFFIXES
        .iter()
        .copied()
        .find(|s| name.ends_with(s) && name.len() > s.len())
}

pub(super) fn systemd(file_name: &str, text: &str) -> Option<Detected> {
    let unit = parse_unit(text)?;
    let mut components = file_name.rsplit('/');
    let base = components.next().unwrap_or(file_name);
    let parent = components.next();
    // A drop-in: `NAME.service.d/FILE.conf`; the unit it amends names it.
    let drop_in = parent
        .and_then(|p| p.strip_suffix(".d"))
        .filter(|p| unit_suffix(p).is_some());
    let unit_name = drop_in.unwrap_or(base);

    let kind = match drop_in.and_then(unit_suffix) {
        Some(".service") => ConfigKind::SystemdService,
        Some(".timer") => ConfigKind::SystemdTimer,
        Some(".socket") => ConfigKind::SystemdSocket,
        Some(_) => ConfigKind::SystemdUnit,
        None if unit.has("Timer") => ConfigKind::SystemdTimer,
        None if unit.has("Socket") => ConfigKind::SystemdSocket,
        None if unit.has("Service") => ConfigKind::SystemdService,
        None => ConfigKind::SystemdUnit,
    };

    let label = match unit.last("Unit", "Description") {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => match (drop_in, parent) {
            (Some(_), Some(p)) => format!("{p}/{base}"),
            _ => base.to_owned(),
        },
    };

    let mut scope = BTreeSet::from([unit_name.to_owned()]);
    let triggering_section = match kind {
        ConfigKind::SystemdTimer => Some(("Timer", "Unit")),
        ConfigKind::SystemdSocket => Some(("Socket", "Service")),
        _ if unit.has("Path") => Some(("Path", "Unit")),
        _ => None,
    };
    if let Some((section, key)) = triggering_section {
        match unit.last(section, key).filter(|v| !v.is_empty()) {
            Some(target) => scope.insert(target.to_owned()),
            None => {
                let stem = unit_suffix(unit_name)
                    .and_then(|s| unit_name.strip_suffix(s))
                    .unwrap_or(unit_name);
                scope.insert(format!("{stem}.service"))
            }
        };
    }

    let exec_writes = unit
        .all_lines()
        .filter(|(k, _)| k.starts_with("Exec"))
        .any(|(_, v)| command_writes(v));
    let write_capable = exec_writes
        || match kind {
            ConfigKind::SystemdTimer => true,
            ConfigKind::SystemdService => service_runs_as_writing_root(&unit),
            ConfigKind::SystemdSocket => false,
            _ => ["Path", "Mount", "Automount", "Swap"]
                .iter()
                .any(|s| unit.has(s)),
        };

    Some(Detected {
        kind,
        label,
        service_scope: scope.into_iter().collect::<Vec<_>>().join(","),
        write_capable,
        host_hint: None,
    })
}

pub(super) fn service_runs_as_writing_root(unit: &UnitFile) -> bool {
    let dynamic = unit
        .last("Service", "DynamicUser")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"));
    let user = unit.last("Service", "User").unwrap_or("");
    let root = !dynamic && (user.is_empty() || user == "root" || user == "0");
    let strict = unit
        .last("Service", "ProtectSystem")
        .is_some_and(|v| v == "strict");
    let read_only_root = unit.values("Service", "ReadOnlyPaths").iter().any(|v| {
        v.split_whitespace()
            .any(|p| p.trim_start_matches(['-', '+']) == "/")
    });
    root && !(strict || read_only_root)
}

/// Whether a command line runs one of [`WRITING_COMMANDS`].
pub(super) fn command_writes(command: &str) -> bool {
    command
        .split(|c: char| c.is_whitespace() || ";|&'\"()`$<>".contains(c))
        .map(|token| token.trim_start_matches(['@', '-', ':', '+', '!', '|']))
        .map(|token| token.rsplit('/').next().unwrap_or(token))
        .any(|name| {
            WRITING_COMMANDS.contains(&name)
                || name.starts_with("mkfs.")
                || name.starts_with("iptables-")
                || name.starts_with("ip6tables-")
        })
}
