//! Human-readable output: plan tables and run reports.

use std::fmt::Write as _;

use castellan_agent::RunReport;
use castellan_core::plan::{CandidateKind, Plan};

use crate::followups::FollowUp;

/// The plan as a table, followed by the refused candidates and the notices. `followups`
/// (see [`crate::followups`]) are listed where they will happen: an expected action right
/// after the action it follows, an expected notice among the notices.
pub fn plan_table(node: &str, p: &Plan, followups: &[FollowUp]) -> String {
    let mut out = String::new();
    let then_actions = followups.iter().filter(|f| f.action.is_some()).count();
    let then_notices: Vec<&FollowUp> = followups.iter().filter(|f| f.action.is_none()).collect();
    let actions = p.actions.len() + then_actions;
    let notices = p.notices.len() + then_notices.len();
    let following = if then_actions == 0 {
        String::new()
    } else {
        format!(
            " ({then_actions} expected to follow {})",
            if then_actions == 1 {
                "another"
            } else {
                "others"
            }
        )
    };
    let _ = writeln!(
        out,
        "Plan for node {node}: {actions} action{}{following}, {} candidate{} not acted on, {notices} notice{}",
        plural(actions),
        p.candidates.len(),
        plural(p.candidates.len()),
        plural(notices),
    );
    if p.actions.is_empty() && p.destructive.is_empty() {
        let _ = writeln!(
            out,
            "\n  Nothing to do: the node matches its desired state."
        );
    } else if p.actions.is_empty() {
        let _ = writeln!(out, "\n  No benign actions.");
    } else {
        let _ = writeln!(
            out,
            "\n  {:<6} {:<5} {:<11} CHANGE",
            "VMID", "TYPE", "ACTION"
        );
        for (i, a) in p.actions.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:<6} {:<5} {:<11} {}",
                a.vmid,
                a.guest.as_str(),
                a.kind.as_str(),
                a.reason
            );
            // A follow-up comes after the guest's last planned action.
            if p.actions[i + 1..].iter().any(|b| b.vmid == a.vmid) {
                continue;
            }
            for f in followups.iter().filter(|f| f.vmid == a.vmid) {
                if let Some(kind) = f.action {
                    let _ = writeln!(
                        out,
                        "  {:<6} {:<5} {:<11} {}",
                        f.vmid,
                        f.guest.as_str(),
                        kind.as_str(),
                        f.reason()
                    );
                }
            }
        }
    }
    if !p.destructive.is_empty() {
        let _ = writeln!(
            out,
            "\n  Destructive (each needs an operator-signed op; see docs/signed-ops.md):"
        );
        for d in &p.destructive {
            let params: Vec<String> = d.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let removals = d.op.removals(&d.params);
            if removals.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<6} {:<5} {:<11} bound to config digest {}{}",
                    d.target.id(),
                    d.target.kind().as_str(),
                    d.op,
                    d.state_digest,
                    if params.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", params.join(" "))
                    }
                );
            } else {
                // What it removes, one item a line, before anyone signs.
                let _ = writeln!(
                    out,
                    "  {:<12} {} of {} item{} bound to state digest {}",
                    d.target.id(),
                    d.op,
                    removals.len(),
                    plural(removals.len()),
                    d.state_digest
                );
                for item in &removals {
                    let _ = writeln!(out, "         removes {item}");
                }
                let needs = d.op.spec().default_threshold;
                if needs > 1 {
                    let _ = writeln!(
                        out,
                        "         needs {needs} distinct signer keys unless signers.toml sets [thresholds] {}",
                        d.op
                    );
                }
            }
            // What it takes with it beyond its parameters: disks, HA entry, jobs.
            for line in p.affects.get(&d.target.to_string()).into_iter().flatten() {
                let _ = writeln!(out, "         takes {line}");
            }
            let _ = writeln!(
                out,
                "         to approve: castellan op new {} --host {} --target {} --precondition {}{} --output OPFILE && castellan op sign OPFILE --key KEY",
                d.op,
                d.host,
                d.target,
                d.state_digest,
                params
                    .iter()
                    .map(|p| format!(" --param {p}"))
                    .collect::<String>()
            );
        }
    }
    if !p.candidates.is_empty() {
        let _ = writeln!(out, "\n  Candidates (never acted on by the benign loop):");
        for c in &p.candidates {
            let why = match c.kind {
                CandidateKind::Destroy => {
                    "destroy: present but not desired; destroying is destructive and needs a signed operation"
                }
                CandidateKind::Provisioning => "provisioning: desired but absent from the node",
            };
            let _ = writeln!(out, "  {:<6} {:<5} {why}", c.vmid, c.guest.as_str());
        }
    }
    if !p.storage_notices.is_empty() {
        let _ = writeln!(out, "\n  Storages:");
        for n in &p.storage_notices {
            let _ = writeln!(out, "  {n}");
        }
    }
    if notices > 0 {
        let _ = writeln!(out, "\n  Notices:");
        for n in &p.notices {
            let _ = writeln!(out, "  {n}");
        }
        for f in &then_notices {
            let _ = writeln!(out, "  {}", f.reason());
        }
    }
    out
}

/// A `--once` run: what was applied, and whether the node converged.
pub fn report(node: &str, r: &RunReport) -> String {
    let mut out = String::new();
    let n = r.applied.len() + r.storage_applied.len();
    if n == 0 {
        let _ = writeln!(out, "No action applied on {node}.");
    } else {
        let _ = writeln!(out, "Applied {n} action{} on {node}:", plural(n));
    }
    for a in &r.applied {
        let warn = if a.warnings > 0 {
            format!(" ({} warning{})", a.warnings, plural(a.warnings as usize))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<6} {:<11} {}{warn}",
            a.vmid,
            a.kind.as_str(),
            a.reason
        );
    }
    for (target, op, why) in &r.storage_applied {
        let _ = writeln!(out, "  {target:<24} {op:<13} {why}");
    }
    if let Some(p) = &r.final_plan {
        out.push('\n');
        out.push_str(&plan_table(node, p, &[]));
    }
    if let Some(c) = &r.containers {
        let _ = writeln!(
            out,
            "\nContainers: {} operation{} applied",
            c.applied.len(),
            plural(c.applied.len())
        );
        for d in &c.applied {
            let _ = writeln!(out, "  {:<24} {:<13} {}", d.target, d.op, d.reason);
        }
        for n in &c.notices {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    if r.converged() {
        let _ = writeln!(out, "\nConverged.");
    } else {
        let _ = writeln!(out, "\nNot converged:");
        for reason in r.reasons() {
            let _ = writeln!(out, "  {reason}");
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `castellan plan`'s container section: the benign steps, the held ones (each needs a
/// signed op, with the command that makes it), and what is reported.
pub fn container_plan(node: &str, p: &castellan_docker::ContainerPlan) -> String {
    let mut out = String::new();
    if p.converged() && p.notices.is_empty() {
        let _ = writeln!(out, "Containers on {node}: converged.");
        return out;
    }
    let _ = writeln!(out, "Containers on {node}:");
    for s in &p.steps {
        let _ = writeln!(out, "  {:<24} {:<13} {}", s.target, s.op, s.reason);
    }
    if !p.held.is_empty() {
        let _ = writeln!(
            out,
            "\n  Destructive (each needs an operator-signed op; see docs/signed-ops.md):"
        );
        for s in &p.held {
            let target = s
                .target()
                .map_or_else(|_| s.target.clone(), |t| t.to_string());
            let _ = writeln!(
                out,
                "  {target:<34} {:<13} {} (the agent writes the payload to sign to <data_dir>/pending/)",
                s.op, s.reason
            );
        }
    }
    for n in &p.notices {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}
