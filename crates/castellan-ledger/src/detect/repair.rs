//! Repair-bot configurations: their keys, their actions and the write-capable ones.

use super::*;

// Repair bots.

pub(super) const REPAIR_KEYS: [&str; 7] = [
    "repair_bot",
    "repair",
    "repairs",
    "remediation",
    "remediations",
    "autoheal",
    "self_heal",
];

pub(super) const CHECK_KEYS: [&str; 20] = [
    "check",
    "checks",
    "probe",
    "probes",
    "condition",
    "conditions",
    "when",
    "if",
    "trigger",
    "triggers",
    "match",
    "detect",
    "healthcheck",
    "health_check",
    "monitor",
    "monitors",
    "alert",
    "alerts",
    "watch",
    "on_failure",
];

pub(super) const ACTION_KEYS: [&str; 16] = [
    "action",
    "actions",
    "run",
    "exec",
    "command",
    "remediate",
    "remediation",
    "remedy",
    "fix",
    "do",
    "then",
    "restart",
    "script",
    "steps",
    "repair",
    "heal",
];

pub(super) struct RepairInfo {
    pub(super) name: Option<String>,
    pub(super) hosts: BTreeSet<String>,
    pub(super) services: BTreeSet<String>,
}

pub(super) fn repair_bot(doc: &Node) -> Option<RepairInfo> {
    if !doc.is_map() {
        return None;
    }
    let section = REPAIR_KEYS
        .iter()
        .find_map(|k| doc.get(k).filter(|v| v.is_map() || v.as_seq().is_some()))
        .or_else(|| (doc.get("kind").and_then(Node::scalar) == Some("RepairBot")).then_some(doc))?;
    if !has_rule(section, 0) {
        return None;
    }
    let name = section
        .get("name")
        .or_else(|| doc.get("name"))
        .or_else(|| doc.get("metadata").and_then(|m| m.get("name")))
        .and_then(Node::scalar)
        .map(str::to_owned);
    let mut hosts = BTreeSet::new();
    for node in [section, doc] {
        for key in ["hosts", "host"] {
            if let Some(v) = node.get(key) {
                hosts.extend(
                    v.strings()
                        .iter()
                        .flat_map(|h| h.split(','))
                        .map(str::trim)
                        .filter(|h| !h.is_empty() && !is_templated(h))
                        .map(str::to_owned),
                );
            }
        }
    }
    let mut services = BTreeSet::new();
    collect_named_services(section, &mut services, 0);
    Some(RepairInfo {
        name,
        hosts,
        services,
    })
}

/// Whether some mapping in `node` pairs a check with an action.
pub(super) fn has_rule(node: &Node, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    match node {
        Node::Map(_) => {
            let entries = node.entries();
            let has = |set: &[&str]| entries.iter().any(|(k, _)| set.contains(k));
            (has(&CHECK_KEYS) && has(&ACTION_KEYS))
                || entries.iter().any(|(_, v)| has_rule(v, depth + 1))
        }
        Node::Seq(items) => items.iter().any(|v| has_rule(v, depth + 1)),
        Node::Scalar { .. } => false,
    }
}

pub(super) fn collect_named_services(node: &Node, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    match node {
        Node::Map(_) => {
            for (key, value) in node.entries() {
                if matches!(
                    key,
                    "service" | "services" | "unit" | "units" | "container" | "containers"
                ) {
                    out.extend(
                        value
                            .strings()
                            .into_iter()
                            .filter(|s| !s.is_empty() && !is_templated(s))
                            .map(str::to_owned),
                    );
                }
                collect_named_services(value, out, depth + 1);
            }
        }
        Node::Seq(items) => {
            for item in items {
                collect_named_services(item, out, depth + 1);
            }
        }
        Node::Scalar { .. } => {}
    }
}
