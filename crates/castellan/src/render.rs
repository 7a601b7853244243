//! Human-readable output: plan tables and run reports.

use std::fmt::Write as _;

use castellan_agent::RunReport;
use castellan_core::plan::{CandidateKind, Plan};

/// The plan as a table, followed by the refused candidates and the notices.
pub fn plan_table(node: &str, p: &Plan) -> String {
    let mut out = String::new();
    let notices = p.notices.len();
    let _ = writeln!(
        out,
        "Plan for node {node}: {} action{}, {} candidate{} not acted on, {notices} notice{}",
        p.actions.len(),
        plural(p.actions.len()),
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
        for a in &p.actions {
            let _ = writeln!(
                out,
                "  {:<6} {:<5} {:<11} {}",
                a.vmid,
                a.guest.as_str(),
                a.kind.as_str(),
                a.reason
            );
        }
    }
    if !p.destructive.is_empty() {
        let _ = writeln!(
            out,
            "\n  Destructive (each needs an operator-signed op; see docs/signed-ops.md):"
        );
        for d in &p.destructive {
            let params: Vec<String> = d.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "  {:<6} {:<5} {:<11} bound to config digest {}{}",
                d.vmid,
                d.guest.as_str(),
                d.op,
                d.state_digest,
                if params.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", params.join(" "))
                }
            );
            let _ = writeln!(
                out,
                "         to approve: castellan op new {} --host {} --guest {} --kind {} --precondition {}{} --output OPFILE && castellan op sign OPFILE --key KEY",
                d.op,
                d.host,
                d.vmid,
                d.guest,
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
    if !p.notices.is_empty() {
        let _ = writeln!(out, "\n  Notices:");
        for n in &p.notices {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

/// A `--once` run: what was applied, and whether the node converged.
pub fn report(node: &str, r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Applied {} action{} on {node}:",
        r.applied.len(),
        plural(r.applied.len())
    );
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
    if let Some(p) = &r.final_plan {
        out.push('\n');
        out.push_str(&plan_table(node, p));
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
