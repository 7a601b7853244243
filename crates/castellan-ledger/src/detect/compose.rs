//! Docker Compose files: what makes a YAML document a compose file, its services and its write-capable settings.

use super::*;

// Docker Compose.

pub(super) const COMPOSE_TOP_KEYS: [&str; 9] = [
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

pub(super) const COMPOSE_SERVICE_KEYS: [&str; 60] = [
    "image",
    "build",
    "command",
    "entrypoint",
    "ports",
    "expose",
    "volumes",
    "volumes_from",
    "environment",
    "env_file",
    "depends_on",
    "restart",
    "networks",
    "network_mode",
    "container_name",
    "healthcheck",
    "labels",
    "logging",
    "deploy",
    "user",
    "working_dir",
    "privileged",
    "cap_add",
    "cap_drop",
    "devices",
    "hostname",
    "domainname",
    "extra_hosts",
    "dns",
    "dns_search",
    "ulimits",
    "sysctls",
    "tmpfs",
    "secrets",
    "configs",
    "profiles",
    "pull_policy",
    "stop_signal",
    "stop_grace_period",
    "init",
    "read_only",
    "security_opt",
    "shm_size",
    "tty",
    "stdin_open",
    "pid",
    "ipc",
    "extends",
    "links",
    "external_links",
    "mem_limit",
    "mem_reservation",
    "cpus",
    "cpu_shares",
    "platform",
    "runtime",
    "userns_mode",
    "develop",
    "post_start",
    "pre_stop",
];

pub(super) struct ComposeInfo {
    /// Sorted service names.
    pub(super) services: Vec<String>,
    pub(super) write_capable: bool,
}

/// `doc` as a compose document; `strict_top` refuses unknown top-level keys (as compose
/// itself does).
pub(super) fn compose(doc: &Node, strict_top: bool) -> Option<ComposeInfo> {
    if !doc.is_map() {
        return None;
    }
    if strict_top
        && !doc
            .keys()
            .iter()
            .all(|k| k.starts_with("x-") || COMPOSE_TOP_KEYS.contains(k))
    {
        return None;
    }
    let services = doc.get("services")?;
    if !services.is_map() {
        return None;
    }
    let entries = services.entries();
    if entries.is_empty() || !entries.iter().all(|(_, svc)| svc.is_map()) {
        return None;
    }
    let any_compose_key = entries
        .iter()
        .any(|(_, svc)| svc.keys().iter().any(|k| COMPOSE_SERVICE_KEYS.contains(k)));
    if !any_compose_key {
        return None;
    }
    let mut names: Vec<String> = entries.iter().map(|(name, _)| (*name).to_owned()).collect();
    names.sort();
    let write_capable = entries.iter().any(|(_, svc)| service_writes(svc));
    Some(ComposeInfo {
        services: names,
        write_capable,
    })
}

/// A compose fragment pasted without the `services:` wrapper: one service, or a mapping
/// of services.
pub(super) fn compose_fragment(doc: &Node) -> bool {
    let looks_like_service = |n: &Node| {
        let keys = n.keys();
        (keys.contains(&"image") || keys.contains(&"build"))
            && keys
                .iter()
                .filter(|k| COMPOSE_SERVICE_KEYS.contains(k))
                .count()
                >= 3
    };
    looks_like_service(doc) || doc.entries().iter().any(|(_, v)| looks_like_service(v))
}

pub(super) fn service_writes(svc: &Node) -> bool {
    let is = |key: &str, value: &str| svc.get(key).and_then(Node::scalar) == Some(value);
    if svc.get("privileged").is_some_and(Node::is_true)
        || is("network_mode", "host")
        || is("pid", "host")
        || is("ipc", "host")
        || is("userns_mode", "host")
    {
        return true;
    }
    let non_empty = |key: &str| match svc.get(key) {
        Some(Node::Seq(items)) => !items.is_empty(),
        Some(Node::Map(entries)) => !entries.is_empty(),
        Some(other) => other.scalar().is_some(),
        None => false,
    };
    if non_empty("cap_add") || non_empty("devices") {
        return true;
    }
    if let Some(user) = svc.get("user").and_then(Node::scalar) {
        let name = user.split(':').next().unwrap_or("").trim();
        if name == "root" || name == "0" {
            return true;
        }
    }
    svc.get("volumes")
        .and_then(Node::as_seq)
        .is_some_and(|vols| vols.iter().any(volume_writes))
}

pub(super) fn is_socket(source: &str) -> bool {
    source.ends_with("docker.sock") || source.ends_with("podman.sock")
}

pub(super) fn volume_writes(vol: &Node) -> bool {
    if let Some(short) = vol.scalar() {
        let parts: Vec<&str> = short.split(':').collect();
        if parts.len() < 2 {
            return false; // an anonymous volume
        }
        let source = parts[0];
        if is_socket(source) {
            return true;
        }
        let host_path = source.starts_with('/')
            || source.starts_with('.')
            || source.starts_with('~')
            || source.starts_with('$');
        let read_only = parts
            .get(2)
            .is_some_and(|mode| mode.split(',').any(|m| m == "ro"));
        return host_path && !read_only;
    }
    if vol.is_map() {
        let kind = vol.get("type").and_then(Node::scalar);
        let source = vol.get("source").and_then(Node::scalar).unwrap_or("");
        if kind != Some("bind") {
            return false;
        }
        if is_socket(source) {
            return true;
        }
        return !vol.get("read_only").is_some_and(Node::is_true);
    }
    false
}
