//! A declared guest beside the guest the node has, field by field, for people (the hub's
//! host page): what is declared, what is there, and whether the planner is content with it.
//!
//! "Matches" is the planner's own judgement, not a second one: a field matches unless the
//! plan for this guest changes it (a `set_config` that sets or removes its key, a resize of
//! that disk, a power action, a provisioning, a signed destroy). So a description that
//! differs only in what the normalisers ignore matches, as it does for the agent.

use crate::model::{ActualGuest, DesiredGuest, DesiredRun, Ensure};
use crate::operation::Operation;
use crate::plan::Plan;
use crate::units::format_size;

/// Longest value shown; longer ones are cut (a description may run to kilobytes).
pub const MAX_VALUE_CHARS: usize = 160;

/// One field of a guest, declared and observed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldComparison {
    /// The field (`exists`, `run`, `cores`, `memory`, `description`, `tags`, `disk rootfs`).
    pub field: String,
    /// What the desired state declares.
    pub desired: String,
    /// What the node has (`–` when the guest or its configuration could not be read).
    pub actual: String,
    /// Whether the planner leaves it as it is.
    pub matches: bool,
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_VALUE_CHARS).collect();
        out.push('…');
        out
    }
}

/// `d` beside `a` (`None`: the node has no such guest), judged by `plan`, the plan for
/// this guest alone. Only fields the desired state declares are listed, after `exists`
/// and (when declared) `run`.
pub fn side_by_side(
    d: &DesiredGuest,
    a: Option<&ActualGuest>,
    plan: &Plan,
) -> Vec<FieldComparison> {
    let set = |key: &str| {
        plan.actions.iter().any(|x| {
            x.vmid == d.vmid
                && x.kind == Operation::SetConfig
                && (x.params.contains_key(key) || x.delete.iter().any(|k| k == key))
        })
    };
    let acts = |ops: &[Operation]| {
        plan.actions
            .iter()
            .any(|x| x.vmid == d.vmid && ops.contains(&x.kind))
            || plan
                .destructive
                .iter()
                .any(|x| x.target.as_guest() == Some((d.kind, d.vmid)) && ops.contains(&x.op))
    };
    let spec = a.and_then(|a| a.spec.as_ref());
    let unknown = || "–".to_owned();
    let mut out = vec![FieldComparison {
        field: "exists".into(),
        desired: match d.ensure {
            Ensure::Present => "present".into(),
            Ensure::Absent => "absent".into(),
        },
        actual: if a.is_some() { "present" } else { "missing" }.into(),
        matches: !acts(&[Operation::Provision, Operation::Destroy])
            && (a.is_some() == (d.ensure == Ensure::Present)),
    }];
    if d.run != DesiredRun::Unspecified {
        out.push(FieldComparison {
            field: "run".into(),
            desired: match d.run {
                DesiredRun::Running => "running".into(),
                _ => "stopped".into(),
            },
            actual: a.map_or_else(unknown, |a| a.run.to_string()),
            matches: a.is_some()
                && !acts(&[
                    Operation::Start,
                    Operation::Shutdown,
                    Operation::Stop,
                    Operation::Reboot,
                ]),
        });
    }
    if let Some(c) = d.cores {
        out.push(FieldComparison {
            field: "cores".into(),
            desired: c.to_string(),
            actual: spec
                .map(|s| {
                    s.cores
                        .map_or_else(|| "default".to_owned(), |c| c.to_string())
                })
                .unwrap_or_else(unknown),
            matches: spec.is_some() && !set("cores"),
        });
    }
    if let Some(m) = d.memory_bytes {
        out.push(FieldComparison {
            field: "memory".into(),
            desired: format_size(m),
            actual: spec
                .map(|s| format_size(s.memory_mib.saturating_mul(1 << 20)))
                .unwrap_or_else(unknown),
            matches: spec.is_some() && !set("memory"),
        });
    }
    if let Some(text) = &d.description {
        out.push(FieldComparison {
            field: "description".into(),
            desired: cut(text),
            actual: spec
                .map(|s| cut(s.description.as_deref().unwrap_or("")))
                .unwrap_or_else(unknown),
            matches: spec.is_some() && !set("description"),
        });
    }
    if let Some(tags) = &d.tags {
        out.push(FieldComparison {
            field: "tags".into(),
            desired: cut(&tags.join(";")),
            actual: spec
                .map(|s| cut(s.tags.as_deref().unwrap_or("")))
                .unwrap_or_else(unknown),
            matches: spec.is_some() && !set("tags"),
        });
    }
    for (disk, size) in &d.disks {
        let resized = plan.actions.iter().any(|x| {
            x.vmid == d.vmid
                && x.kind == Operation::Resize
                && x.params.get("disk").is_some_and(|k| k == disk)
        });
        let have = spec.and_then(|s| s.disks.get(disk)).copied();
        out.push(FieldComparison {
            field: format!("disk {disk}"),
            desired: format_size(*size),
            actual: have.map_or_else(unknown, format_size),
            // A disk larger than declared is never shrunk: the planner reports it and
            // leaves it, which is not a match.
            matches: have == Some(*size) && !resized,
        });
    }
    out
}
