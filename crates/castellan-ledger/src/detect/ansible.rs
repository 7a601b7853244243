//! Ansible playbooks, task files and roles: plays, tasks, modules and the write-capable ones.

use super::*;

// Ansible.

/// The keywords a task may carry besides its module.
pub(super) const TASK_KEYWORDS: [&str; 41] = [
    "name",
    "when",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "tags",
    "register",
    "notify",
    "loop",
    "loop_control",
    "vars",
    "args",
    "environment",
    "ignore_errors",
    "ignore_unreachable",
    "changed_when",
    "failed_when",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "retries",
    "delay",
    "until",
    "no_log",
    "check_mode",
    "diff",
    "async",
    "poll",
    "throttle",
    "timeout",
    "any_errors_fatal",
    "connection",
    "module_defaults",
    "collections",
    "listen",
    "debugger",
    "remote_user",
    "rescue",
    "always",
];

/// Module names recognised without a fully-qualified collection name (for raw payloads).
pub(super) const KNOWN_MODULES: [&str; 58] = [
    "apt",
    "apt_key",
    "apt_repository",
    "yum",
    "yum_repository",
    "dnf",
    "package",
    "pip",
    "copy",
    "template",
    "file",
    "lineinfile",
    "blockinfile",
    "replace",
    "service",
    "systemd",
    "systemd_service",
    "command",
    "shell",
    "raw",
    "script",
    "user",
    "group",
    "git",
    "get_url",
    "unarchive",
    "cron",
    "mount",
    "sysctl",
    "debug",
    "set_fact",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "include_vars",
    "docker_container",
    "docker_compose",
    "docker_compose_v2",
    "docker_image",
    "docker_network",
    "docker_volume",
    "ufw",
    "iptables",
    "firewalld",
    "stat",
    "wait_for",
    "uri",
    "assert",
    "fail",
    "meta",
    "authorized_key",
    "synchronize",
    "reboot",
    "hostname",
    "timezone",
    "modprobe",
    "setup",
];

pub(super) const SERVICE_MODULES: [&str; 8] = [
    "service",
    "systemd",
    "systemd_service",
    "ansible.builtin.service",
    "ansible.builtin.systemd",
    "ansible.builtin.systemd_service",
    "community.general.systemd",
    "ansible.legacy.service",
];

pub(super) static FQCN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$").expect("static pattern"));

pub(super) fn is_block(task: &Node) -> bool {
    task.get("block").is_some_and(|b| b.as_seq().is_some())
}

/// Whether `item` is a task: a block, or a mapping with a module key (`strict`: a known or
/// fully-qualified module name; else any key that is not a task keyword).
pub(super) fn is_task(item: &Node, strict: bool) -> bool {
    if !item.is_map() || item.get("hosts").is_some() {
        return false;
    }
    if is_block(item) {
        return true;
    }
    item.keys().iter().any(|k| {
        !TASK_KEYWORDS.contains(k)
            && !k.starts_with("with_")
            && (!strict || KNOWN_MODULES.contains(k) || FQCN.is_match(k))
    })
}

/// The services a task list manages, if `doc` is one.
pub(super) fn task_list(doc: &Node, strict: bool) -> Option<BTreeSet<String>> {
    let items = doc.as_seq()?;
    if items.is_empty() || !items.iter().all(|t| is_task(t, strict)) {
        return None;
    }
    let mut services = BTreeSet::new();
    collect_task_services(items, &mut services, 0);
    Some(services)
}

pub(super) fn collect_task_services(tasks: &[Node], out: &mut BTreeSet<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    for task in tasks {
        for key in ["block", "rescue", "always"] {
            if let Some(inner) = task.get(key).and_then(Node::as_seq) {
                collect_task_services(inner, out, depth + 1);
            }
        }
        for (key, value) in task.entries() {
            if !SERVICE_MODULES.contains(&key) {
                continue;
            }
            let name = if value.is_map() {
                value.get("name").and_then(Node::scalar).map(str::to_owned)
            } else {
                // Free-form `service: name=nginx state=started`.
                value.scalar().and_then(|s| {
                    s.split_whitespace()
                        .find_map(|kv| kv.strip_prefix("name="))
                        .map(str::to_owned)
                })
            };
            if let Some(name) = name.filter(|n| !n.is_empty() && !is_templated(n)) {
                out.insert(name);
            }
        }
    }
}

pub(super) struct PlaybookInfo {
    pub(super) hosts: BTreeSet<String>,
    pub(super) names: Vec<String>,
    pub(super) role_refs: Vec<RoleRef>,
    pub(super) services: BTreeSet<String>,
}

pub(super) const PLAY_SECTIONS: [&str; 5] =
    ["tasks", "roles", "pre_tasks", "post_tasks", "handlers"];
pub(super) const IMPORT_KEYS: [&str; 2] = ["import_playbook", "ansible.builtin.import_playbook"];

pub(super) fn playbook(doc: &Node) -> Option<PlaybookInfo> {
    let items = doc.as_seq()?;
    if items.is_empty() {
        return None;
    }
    let mut info = PlaybookInfo {
        hosts: BTreeSet::new(),
        names: Vec::new(),
        role_refs: Vec::new(),
        services: BTreeSet::new(),
    };
    let mut substantive = false;
    for item in items {
        if !item.is_map() {
            return None;
        }
        if IMPORT_KEYS.iter().any(|k| item.get(k).is_some()) {
            substantive = true;
            continue;
        }
        let hosts_node = item.get("hosts")?;
        let hosts: Vec<String> = hosts_node
            .strings()
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if PLAY_SECTIONS.iter().any(|k| item.get(k).is_some()) {
            substantive = true;
        }
        if let Some(name) = item.get("name").and_then(Node::scalar) {
            info.names.push(name.to_owned());
        }
        let mut roles = BTreeSet::new();
        if let Some(list) = item.get("roles").and_then(Node::as_seq) {
            for entry in list {
                let reference = entry.scalar().or_else(|| {
                    entry
                        .get("role")
                        .or_else(|| entry.get("name"))
                        .and_then(Node::scalar)
                });
                if let Some(r) = reference.filter(|r| !is_templated(r)) {
                    roles.insert(role_name(r));
                }
            }
        }
        for section in ["pre_tasks", "tasks", "post_tasks", "handlers"] {
            if let Some(tasks) = item.get(section).and_then(Node::as_seq) {
                collect_task_services(tasks, &mut info.services, 0);
                collect_included_roles(tasks, &mut roles, 0);
            }
        }
        for role in roles {
            info.role_refs.push(RoleRef {
                role,
                hosts: hosts.clone(),
            });
        }
        info.hosts.extend(hosts);
    }
    substantive.then_some(info)
}

/// Roles pulled in by `include_role` / `import_role` tasks.
pub(super) fn collect_included_roles(tasks: &[Node], out: &mut BTreeSet<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    for task in tasks {
        for key in ["block", "rescue", "always"] {
            if let Some(inner) = task.get(key).and_then(Node::as_seq) {
                collect_included_roles(inner, out, depth + 1);
            }
        }
        for (key, value) in task.entries() {
            let module = key.rsplit('.').next().unwrap_or(key);
            if module != "include_role" && module != "import_role" {
                continue;
            }
            if let Some(name) = value.get("name").and_then(Node::scalar)
                && !is_templated(name)
            {
                out.insert(role_name(name));
            }
        }
    }
}

/// A role reference's name: the last component of a path reference.
pub(super) fn role_name(reference: &str) -> String {
    let trimmed = reference.trim().trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}
