//! What each page shows, worked out from what the store holds (pure: no I/O, so every
//! rule here is tested without a browser). Every string in a view may come from a host
//! or an operator and is escaped by the templates; nothing here builds HTML.

use std::collections::BTreeMap;

use castellan_core::op::SignedOp;
use castellan_core::operation::{Operation, WAIVE_BACKUP};
use jiff::{SignedDuration, Timestamp};

use crate::proto::{AgentReport, HostState, HostStatus, PendingReport};
use crate::store::{RelayedOp, RevisionMeta};

/// A host that has not called the hub for this long stands out on the fleet page. An
/// agent waits on its long-poll for at most a minute and reports on every change, so
/// three minutes of silence means it is down or cut off.
pub const QUIET_AFTER: SignedDuration = SignedDuration::from_secs(180);

/// "3 min ago", "2 h ago", "in 5 min".
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = now.duration_since(t);
    let (secs, future) = if d.is_negative() {
        (d.as_secs().unsigned_abs(), true)
    } else {
        (d.as_secs().unsigned_abs(), false)
    };
    let amount = match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// One row of the fleet page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    /// The host.
    pub host: String,
    /// Its state's word (`converged`, `drifting`, `pending`, `error`, `unknown`).
    pub state: &'static str,
    /// When it last called, in words ("never").
    pub last_seen: String,
    /// The exact time, for the title attribute.
    pub last_seen_exact: String,
    /// Not heard from for [`QUIET_AFTER`] (or never).
    pub quiet: bool,
    /// The latest desired revision ("–" when none).
    pub desired: String,
    /// The revision the agent works from.
    pub applied: String,
    /// The agent works from an older revision than the latest.
    pub behind: bool,
    /// Counts from its last report.
    pub plan: usize,
    /// Ops waiting for signatures.
    pub pending: usize,
    /// Errors.
    pub errors: usize,
    /// The agent's version.
    pub agent_version: String,
    /// Enrolled with a live credential.
    pub enrolled: bool,
    /// Audit: the verified head and the problem count.
    pub audit_seq: String,
    /// Audit problems.
    pub audit_problems: usize,
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_owned(), |n| n.to_string())
}

/// A fleet row for `status`.
pub fn fleet_row(status: &HostStatus, now: Timestamp) -> FleetRow {
    let seen: Option<Timestamp> = status.last_seen.as_deref().and_then(|t| t.parse().ok());
    FleetRow {
        host: status.host.clone(),
        state: status.state.as_str(),
        last_seen: seen.map_or_else(|| "never".to_owned(), |t| relative(t, now)),
        last_seen_exact: seen.map(|t| t.to_string()).unwrap_or_default(),
        quiet: seen.is_none_or(|t| now.duration_since(t) >= QUIET_AFTER),
        desired: opt_num(status.desired_revision),
        applied: opt_num(status.applied_revision),
        behind: status.desired_revision.is_some()
            && status.applied_revision != status.desired_revision,
        plan: status.plan,
        pending: status.pending,
        errors: status.errors,
        agent_version: status.agent_version.clone().unwrap_or_else(|| "–".into()),
        enrolled: status.enrolled,
        audit_seq: opt_num(status.audit_seq),
        audit_problems: status.audit_problems,
    }
}

/// How the fleet page is filtered and sorted (its query string).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    /// Hosts whose name contains this.
    #[serde(default)]
    pub q: String,
    /// Only hosts in this state (`quiet` for hosts gone quiet).
    #[serde(default)]
    pub state: String,
    /// `host` (default), `state`, `last_seen`, `pending`, `errors`.
    #[serde(default)]
    pub sort: String,
    /// Which page of [`FLEET_PAGE`] rows (0: the first).
    #[serde(default)]
    pub page: usize,
}

/// Hosts listed on one page of the fleet (the totals count them all).
pub const FLEET_PAGE: usize = 500;

/// The page of `rows` that `page` names (the last one when past the end), its number, and
/// how many pages there are.
pub fn fleet_page(rows: Vec<FleetRow>, page: usize) -> (Vec<FleetRow>, usize, usize) {
    let pages = rows.len().div_ceil(FLEET_PAGE).max(1);
    let page = page.min(pages - 1);
    let shown = rows
        .into_iter()
        .skip(page * FLEET_PAGE)
        .take(FLEET_PAGE)
        .collect();
    (shown, page, pages)
}

/// Per-state totals for the fleet page's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetTotals {
    /// All hosts.
    pub hosts: usize,
    /// Converged.
    pub converged: usize,
    /// Drifting.
    pub drifting: usize,
    /// Waiting for signatures.
    pub pending: usize,
    /// With errors.
    pub error: usize,
    /// Never reported.
    pub unknown: usize,
    /// Gone quiet.
    pub quiet: usize,
}

/// The fleet page: totals over every host, then the rows the query selects, in its order.
pub fn fleet(
    statuses: &[HostStatus],
    query: &FleetQuery,
    now: Timestamp,
) -> (FleetTotals, Vec<FleetRow>) {
    let rows: Vec<FleetRow> = statuses.iter().map(|s| fleet_row(s, now)).collect();
    let mut totals = FleetTotals {
        hosts: rows.len(),
        ..FleetTotals::default()
    };
    for (s, r) in statuses.iter().zip(&rows) {
        match s.state {
            HostState::Converged => totals.converged += 1,
            HostState::Drifting => totals.drifting += 1,
            HostState::Pending => totals.pending += 1,
            HostState::Error => totals.error += 1,
            HostState::Unknown => totals.unknown += 1,
        }
        totals.quiet += usize::from(r.quiet);
    }
    let needle = query.q.trim().to_lowercase();
    let mut shown: Vec<(Option<Timestamp>, FleetRow)> = statuses
        .iter()
        .zip(rows)
        .filter(|(_, r)| needle.is_empty() || r.host.to_lowercase().contains(&needle))
        .filter(|(_, r)| match query.state.as_str() {
            "" => true,
            "quiet" => r.quiet,
            word => r.state == word,
        })
        .map(|(s, r)| (s.last_seen.as_deref().and_then(|t| t.parse().ok()), r))
        .collect();
    let rank = |state: &str| match state {
        "error" => 0,
        "pending" => 1,
        "drifting" => 2,
        "unknown" => 3,
        _ => 4,
    };
    match query.sort.as_str() {
        "state" => {
            shown.sort_by(|a, b| (rank(a.1.state), &a.1.host).cmp(&(rank(b.1.state), &b.1.host)))
        }
        // Longest silent first: those are the ones to look at.
        "last_seen" => shown.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.host.cmp(&b.1.host))),
        "pending" => {
            shown.sort_by(|a, b| b.1.pending.cmp(&a.1.pending).then(a.1.host.cmp(&b.1.host)))
        }
        "errors" => shown.sort_by(|a, b| b.1.errors.cmp(&a.1.errors).then(a.1.host.cmp(&b.1.host))),
        _ => shown.sort_by(|a, b| a.1.host.cmp(&b.1.host)),
    }
    (totals, shown.into_iter().map(|(_, r)| r).collect())
}

/// A name an agent gave a pending payload, if it is safe to put in a URL path and a shell
/// command as it is (letters, digits, `.`, `_`, `-`; not starting with `.` or `-`).
pub fn safe_file_name(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(name)
}

/// A destructive op waiting for signatures, as the pending page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingView {
    /// The host it is for.
    pub host: String,
    /// The payload's file name (made safe; see [`safe_file_name`]).
    pub file: String,
    /// The anchor of its section on the page.
    pub anchor: String,
    /// The operation's name.
    pub op: String,
    /// Its target (`lxc/101`).
    pub target: String,
    /// What it does, in words.
    pub effect: String,
    /// What it removes, one line each (volumes with sizes, guests with their digests).
    pub removals: Vec<String>,
    /// What it takes with it beyond its parameters, as the agent planned it (a guest's
    /// disks with sizes, its HA entry, its jobs).
    pub takes: Vec<String>,
    /// The safety backup: taken first, waived by the signed parameters, or none for this
    /// operation.
    pub backup: &'static str,
    /// The signed precondition (the state the op is bound to).
    pub precondition: String,
    /// Its signed parameters, `key = value`.
    pub params: Vec<String>,
    /// When its validity ends, and in words.
    pub expires: String,
    /// In words.
    pub expires_in: String,
    /// Past `not_after`: signing it now is useless.
    pub expired: bool,
    /// Signatures on copies of it relayed through the hub so far.
    pub signatures: usize,
    /// How many distinct signer keys it needs unless the host's signer config says
    /// otherwise.
    pub threshold: u32,
    /// The commands that download, review, sign and submit it.
    pub commands: Vec<String>,
    /// Why it could not be read, if it could not (shown instead of the rest; no download
    /// and no command is offered then).
    pub problem: Option<String>,
    /// Whether it is the first of its host's ops on the page (it carries the host's anchor).
    pub first_of_host: bool,
    /// The payload's text.
    pub payload: String,
}

/// The pending view of one payload an agent reported. `relayed` is what the hub has
/// relayed to that host (signatures are counted on copies of the same text).
pub fn pending_view(
    host: &str,
    pending: &PendingReport,
    relayed: &[RelayedOp],
    now: Timestamp,
) -> PendingView {
    let (name, payload) = (pending.name.as_str(), pending.payload.as_str());
    let file = safe_file_name(name).map_or_else(|| format!("{host}-pending.op"), ToOwned::to_owned);
    let mut view = PendingView {
        host: host.to_owned(),
        anchor: format!("{host}--{file}"),
        file: file.clone(),
        op: String::new(),
        target: String::new(),
        effect: String::new(),
        removals: Vec::new(),
        takes: pending.takes.clone(),
        backup: "",
        precondition: String::new(),
        params: Vec::new(),
        expires: String::new(),
        expires_in: String::new(),
        expired: false,
        signatures: 0,
        threshold: 1,
        commands: Vec::new(),
        problem: None,
        first_of_host: false,
        payload: payload.to_owned(),
    };
    let op = match SignedOp::parse(payload.as_bytes()) {
        Ok(op) => op,
        Err(e) => {
            view.problem = Some(format!("the agent's payload is not a readable op: {e}"));
            return view;
        }
    };
    if op.host != host {
        view.problem = Some(format!(
            "the payload is for host {:?}, not {host:?}: the agent reported something odd",
            op.host
        ));
        return view;
    }
    view.op.clone_from(&op.op);
    view.target = op.target.to_string();
    view.precondition = op.precondition.clone().unwrap_or_else(|| "none".into());
    view.params = op
        .params
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    view.expires = op.not_after.to_string();
    view.expires_in = relative(op.not_after, now);
    view.expired = op.not_after <= now;
    match op.op.parse::<Operation>() {
        Ok(operation) => {
            let spec = operation.spec();
            view.effect = operation.describe(&view.target, &op.params);
            view.removals = operation.removals(&op.params);
            view.threshold = spec.default_threshold;
            view.backup = backup_word(
                spec.params.iter().any(|r| r.key == WAIVE_BACKUP.key),
                &op.params,
            );
        }
        Err(e) => view.problem = Some(e.to_string()),
    }
    view.signatures = relayed
        .iter()
        .filter(|r| r.op == payload.as_bytes())
        .map(|r| r.sigs.len())
        .sum();
    view.commands = vec![
        format!("castellan op show {file}    # after downloading it with the link above"),
        format!("castellan op sign {file} --key ~/.ssh/id_ed25519"),
        format!(
            "ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n castellan-op {file}    # the same, with plain OpenSSH"
        ),
        format!("castellan op submit {file}    # relays {file} and its .sig files to {host}"),
    ];
    view
}

/// The pending views of every op one host reported, each downloadable under a name of
/// its own. An op that cannot be read, is for another host, or shares its file name with
/// another of the host's ops is shown with its problem and offers no download and no
/// command: what an operator downloads and signs is always exactly what the page shows.
pub fn host_pending(
    host: &str,
    pending: &[PendingReport],
    relayed: &[RelayedOp],
    now: Timestamp,
) -> Vec<PendingView> {
    let mut views: Vec<PendingView> = pending
        .iter()
        .map(|p| pending_view(host, p, relayed, now))
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for v in &views {
        *seen.entry(v.file.clone()).or_default() += 1;
    }
    for (i, v) in views.iter_mut().enumerate() {
        if seen.get(&v.file).copied().unwrap_or(0) > 1 {
            v.problem.get_or_insert_with(|| {
                "the agent reported several pending ops under this one name: none of them is offered for signing".to_owned()
            });
            v.anchor = format!("{host}--{i}");
        }
        if v.problem.is_some() {
            v.commands.clear();
        }
        v.first_of_host = i == 0;
    }
    views
}

fn backup_word(takes_backup: bool, params: &BTreeMap<String, String>) -> &'static str {
    if !takes_backup {
        "none: this operation takes no safety backup"
    } else if params.get(WAIVE_BACKUP.key).map(String::as_str) == Some("0") {
        "waived by the signed parameters"
    } else {
        "taken and verified before anything is removed"
    }
}

/// A relayed op as the host page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedView {
    /// The hub's id.
    pub id: u64,
    /// `destroy lxc/101`, or why it cannot be read.
    pub summary: String,
    /// How many signatures came with it.
    pub signatures: usize,
    /// Who relayed it.
    pub by: String,
    /// When.
    pub at: String,
    /// When the host took it, or "waiting".
    pub delivered: String,
}

/// The host page's view of a relayed op.
pub fn relayed_view(r: &RelayedOp, now: Timestamp) -> RelayedView {
    let summary = match SignedOp::parse(&r.op) {
        Ok(op) => format!("{} {}", op.op, op.target),
        Err(e) => format!("unreadable op: {e}"),
    };
    RelayedView {
        id: r.id,
        summary,
        signatures: r.sigs.len(),
        by: r.submitted_by.clone(),
        at: relative(r.submitted_at, now),
        delivered: r
            .delivered_at
            .map_or_else(|| "waiting for the host".into(), |t| relative(t, now)),
    }
}

/// One line of a diff between two revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `add`, `del`, `same` or `gap` (lines left out between hunks).
    pub kind: &'static str,
    /// `+`, `-`, ` ` or `…`.
    pub sign: &'static str,
    /// The line's text, without its newline.
    pub text: String,
}

/// Longest a diff may search for the smallest set of changes; past it the diff is still
/// correct, only coarser (two large, very different documents cost bounded time).
pub const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(300);

/// Most lines a diff shows; the rest is summarised.
pub const MAX_DIFF_LINES: usize = 5_000;

/// The line diff from `old` to `new`, three lines of context around each change, at most
/// [`MAX_DIFF_LINES`] lines (a last `gap` line says how many more there were).
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let d = similar::TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_lines(old, new);
    let mut out = Vec::new();
    for (i, group) in d.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push(DiffLine {
                kind: "gap",
                sign: "…",
                text: String::new(),
            });
        }
        for op in group {
            for change in d.iter_changes(op) {
                let (kind, sign) = match change.tag() {
                    similar::ChangeTag::Insert => ("add", "+"),
                    similar::ChangeTag::Delete => ("del", "-"),
                    similar::ChangeTag::Equal => ("same", " "),
                };
                out.push(DiffLine {
                    kind,
                    sign,
                    text: change.value().trim_end_matches(['\n', '\r']).to_owned(),
                });
            }
        }
    }
    if out.len() > MAX_DIFF_LINES {
        let more = out.len() - MAX_DIFF_LINES;
        out.truncate(MAX_DIFF_LINES);
        out.push(DiffLine {
            kind: "gap",
            sign: "…",
            text: format!("{more} more lines of the diff not shown"),
        });
    }
    out
}

/// A revision as the history page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRow {
    /// Its number.
    pub revision: u64,
    /// Who pushed it.
    pub author: String,
    /// When, in words.
    pub at: String,
    /// When, exactly.
    pub exact: String,
    /// The first 12 hex digits of the document's SHA-256.
    pub sha: String,
}

/// The history page's row for `m`.
pub fn revision_row(m: &RevisionMeta, now: Timestamp) -> RevisionRow {
    RevisionRow {
        revision: m.revision,
        author: m.author.clone(),
        at: relative(m.created_at, now),
        exact: m.created_at.to_string(),
        sha: m.sha256.chars().take(12).collect(),
    }
}

/// An audit record as the audit page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Its sequence number.
    pub seq: u64,
    /// When (as recorded).
    pub time: String,
    /// The event's name.
    pub event: String,
    /// The event's other fields, `key=value`.
    pub fields: Vec<String>,
    /// Whether the record is at or below the head the hub verified.
    pub verified: bool,
}

/// The audit page's filter (its query string).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records whose event holds this text (a guest, an op, a reason...).
    #[serde(default)]
    pub q: String,
    /// Only this event.
    #[serde(default)]
    pub event: String,
    /// Records at or after this time (RFC 3339, or `YYYY-MM-DD`).
    #[serde(default)]
    pub since: String,
    /// Records before this time.
    #[serde(default)]
    pub until: String,
    /// Start after this seq (the page's "older/newer" links).
    #[serde(default)]
    pub after: Option<u64>,
}

/// Reads a filter time: RFC 3339, or a date (midnight UTC).
pub fn filter_time(text: &str) -> Result<Option<Timestamp>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| Some(z.timestamp()))
        .ok_or_else(|| format!("{text:?} is not a time (2026-12-06 or 2026-12-06T10:00:00Z)"))
}

/// The audit rows among `records` (export form) that `query` selects. `verified` is the
/// head the hub verified.
pub fn audit_rows(
    records: &[serde_json::Value],
    query: &AuditQuery,
    verified: u64,
) -> Result<Vec<AuditRow>, String> {
    let since = filter_time(&query.since)?;
    let until = filter_time(&query.until)?;
    let needle = query.q.trim().to_lowercase();
    let mut rows = Vec::new();
    for r in records {
        let seq = r
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let time = r
            .get("time")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let at: Option<Timestamp> = time.parse().ok();
        let event = r.get("event");
        let name = event
            .and_then(|e| e.get("event"))
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned();
        let mut fields = Vec::new();
        if let Some(obj) = event.and_then(|e| e.as_object()) {
            for (k, v) in obj {
                if k == "event" {
                    continue;
                }
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                fields.push(format!("{k}={v}"));
            }
        }
        if !query.event.is_empty() && name != query.event {
            continue;
        }
        if let Some(s) = since
            && at.is_none_or(|t| t < s)
        {
            continue;
        }
        if let Some(u) = until
            && at.is_none_or(|t| t >= u)
        {
            continue;
        }
        if !needle.is_empty()
            && !name.to_lowercase().contains(&needle)
            && !fields.iter().any(|f| f.to_lowercase().contains(&needle))
        {
            continue;
        }
        rows.push(AuditRow {
            seq,
            time,
            event: name,
            fields,
            verified: seq <= verified,
        });
    }
    Ok(rows)
}

/// The host page's summary of a report's age and content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportView {
    /// When it came, in words ("no report yet").
    pub at: String,
    /// The agent's version.
    pub agent_version: String,
    /// Converged, per the agent.
    pub converged: bool,
    /// What is left to do.
    pub plan: Vec<String>,
    /// What failed.
    pub errors: Vec<String>,
    /// How many ops wait for signatures.
    pub pending: usize,
    /// Each declared guest beside what the node has.
    pub guests: Vec<crate::proto::GuestReport>,
    /// Guests as declared that the agent left out of its report.
    pub guests_left_out: u64,
}

/// The report part of the host page.
pub fn report_view(report: Option<(Timestamp, &AgentReport)>, now: Timestamp) -> ReportView {
    match report {
        None => ReportView {
            at: "no report yet".into(),
            ..ReportView::default()
        },
        Some((at, r)) => ReportView {
            at: relative(at, now),
            agent_version: r.agent_version.clone(),
            converged: r.converged,
            plan: r.plan.clone(),
            errors: r.errors.clone(),
            pending: r.pending.len(),
            guests: r.guests.clone(),
            guests_left_out: r.guests_left_out,
        },
    }
}

/// Each declared guest of a desired-state document, with what it declares in words
/// (`None`: the document does not parse, which the hub never stores).
pub fn declared_guests(document: &str) -> Option<Vec<(String, Vec<String>)>> {
    let desired = castellan_core::parse_desired(document).ok()?;
    let mut out = Vec::new();
    if let Some(d) = &desired.decommission {
        out.push((
            format!("node/{}", desired.node),
            vec![format!(
                "decommission (safety backup {})",
                if d.safety_backup { "on" } else { "waived" }
            )],
        ));
    }
    for (vmid, g) in &desired.guests {
        let mut f = vec![format!("ensure = {:?}", g.ensure).to_lowercase()];
        if g.run != castellan_core::DesiredRun::Unspecified {
            f.push(format!("run = {:?}", g.run).to_lowercase());
        }
        if let Some(c) = g.cores {
            f.push(format!("cores = {c}"));
        }
        if let Some(m) = g.memory_bytes {
            f.push(format!(
                "memory = {}",
                castellan_core::units::format_size(m)
            ));
        }
        if let Some(d) = &g.description {
            f.push(format!("description = {d}"));
        }
        if let Some(t) = &g.tags {
            f.push(format!("tags = {}", t.join(";")));
        }
        for (disk, size) in &g.disks {
            f.push(format!(
                "disk {disk} = {}",
                castellan_core::units::format_size(*size)
            ));
        }
        match &g.source {
            Some(castellan_core::GuestSource::Restore { archive, .. }) => {
                f.push(format!("restored from {archive}"));
            }
            Some(castellan_core::GuestSource::Clone { template, .. }) => {
                f.push(format!("cloned from {template}"));
            }
            None => {}
        }
        out.push((castellan_core::Target::guest(g.kind, *vmid).to_string(), f));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn status(host: &str, state: HostState, seen: Option<&str>, pending: usize) -> HostStatus {
        HostStatus {
            host: host.into(),
            enrolled: true,
            last_seen: seen.map(str::to_owned),
            desired_revision: Some(3),
            applied_revision: Some(if host == "b" { 2 } else { 3 }),
            state,
            plan: 0,
            pending,
            errors: 0,
            agent_version: Some("1.0.0".into()),
            audit_seq: None,
            audit_problems: 0,
        }
    }

    #[test]
    fn the_fleet_counts_every_host_filters_and_sorts_and_flags_quiet_ones() {
        let now = t("2026-12-06T12:00:00Z");
        let hosts = [
            status("c", HostState::Converged, Some("2026-12-06T11:59:30Z"), 0),
            status("a", HostState::Pending, Some("2026-12-06T11:50:00Z"), 2),
            status("b", HostState::Error, None, 0),
        ];
        let (totals, rows) = fleet(&hosts, &FleetQuery::default(), now);
        assert_eq!(
            (totals.hosts, totals.pending, totals.error, totals.quiet),
            (3, 1, 1, 2)
        );
        assert_eq!(
            rows.iter().map(|r| r.host.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // Quiet: ten minutes silent, or never heard from; thirty seconds is not.
        assert_eq!(
            rows.iter().map(|r| r.quiet).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(rows[0].last_seen, "10 min ago");
        assert!(rows[1].behind && !rows[0].behind);

        let q = |q: &str, state: &str, sort: &str| FleetQuery {
            q: q.into(),
            state: state.into(),
            sort: sort.into(),
            page: 0,
        };
        let names = |query: FleetQuery| {
            fleet(&hosts, &query, now)
                .1
                .into_iter()
                .map(|r| r.host)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(q("", "", "state")), ["b", "a", "c"]);
        assert_eq!(names(q("", "", "last_seen")), ["b", "a", "c"]);
        assert_eq!(names(q("", "", "pending")), ["a", "b", "c"]);
        assert_eq!(names(q("", "quiet", "")), ["a", "b"]);
        assert_eq!(names(q("C", "", "")), ["c"]);
        assert!(names(q("", "drifting", "")).is_empty());
    }

    #[test]
    fn the_fleet_is_listed_a_page_at_a_time() {
        let now = t("2026-12-06T12:00:00Z");
        let hosts: Vec<HostStatus> = (0..1203)
            .map(|i| status(&format!("h{i:04}"), HostState::Converged, None, 0))
            .collect();
        let (totals, rows) = fleet(&hosts, &FleetQuery::default(), now);
        assert_eq!(totals.hosts, 1203);
        let (first, page, pages) = fleet_page(rows.clone(), 0);
        assert_eq!((first.len(), page, pages), (FLEET_PAGE, 0, 3));
        assert_eq!(first[0].host, "h0000");
        let (last, page, _) = fleet_page(rows.clone(), 99);
        assert_eq!((last.len(), page, last[0].host.as_str()), (203, 2, "h1000"));
        let (none, page, pages) = fleet_page(Vec::new(), 0);
        assert_eq!((none.len(), page, pages), (0, 0, 1));
    }

    #[test]
    fn only_plain_file_names_reach_a_url_or_a_command() {
        for ok in ["pve-01-lxc-101-destroy.op", "a_b.op"] {
            assert_eq!(safe_file_name(ok), Some(ok));
        }
        for bad in [
            "", "../x.op", "-rf", ".hidden", "a b.op", "a;b", "a/b", "é.op", "a$(x)",
        ] {
            assert_eq!(safe_file_name(bad), None, "{bad}");
        }
        assert_eq!(safe_file_name(&"a".repeat(201)), None);
    }

    fn op(host: &str, name: &str, params: &[(&str, &str)], hours: i64) -> String {
        let now = t("2026-12-06T12:00:00Z");
        SignedOp {
            op: name.into(),
            host: host.into(),
            target: "qemu/102".parse().expect("target"),
            precondition: Some("c".repeat(40)),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            not_before: now - SignedDuration::from_hours(3),
            not_after: now + SignedDuration::from_hours(hours),
            params: params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
        .render()
    }

    fn relayed(text: &str, sigs: usize) -> RelayedOp {
        RelayedOp {
            id: 1,
            host: "pve-01".into(),
            op: text.as_bytes().to_vec(),
            sigs: vec![b"sig".to_vec(); sigs],
            submitted_by: "alice".into(),
            submitted_at: t("2026-12-06T11:00:00Z"),
            delivered_at: None,
        }
    }

    fn pend(name: &str, payload: &str) -> PendingReport {
        PendingReport {
            name: name.into(),
            payload: payload.into(),
            takes: vec!["disk".into()],
        }
    }

    #[test]
    fn a_pending_op_says_what_it_destroys_its_backup_expiry_and_signatures_so_far() {
        let now = t("2026-12-06T12:00:00Z");
        let text = op("pve-01", "destroy", &[("purge", "1")], 2);
        let other = op("pve-01", "destroy", &[], 2);
        let v = pending_view(
            "pve-01",
            &pend("pve-01-qemu-102-destroy.op", &text),
            &[relayed(&text, 1), relayed(&other, 3)],
            now,
        );
        assert_eq!(v.problem, None);
        assert_eq!((v.op.as_str(), v.target.as_str()), ("destroy", "qemu/102"));
        assert_eq!(v.backup, "taken and verified before anything is removed");
        assert_eq!(v.signatures, 1, "only copies of this very text count");
        assert_eq!(v.threshold, 1);
        assert_eq!(v.expires_in, "in 2 h");
        assert!(!v.expired);
        assert_eq!(v.takes, ["disk"]);
        assert!(
            v.commands.iter().any(
                |c| c == "castellan op sign pve-01-qemu-102-destroy.op --key ~/.ssh/id_ed25519"
            )
        );

        let waived = pending_view(
            "pve-01",
            &pend("x.op", &op("pve-01", "destroy", &[("backup", "0")], -1)),
            &[],
            now,
        );
        assert_eq!(waived.backup, "waived by the signed parameters");
        assert!(waived.expired);

        // An op for another host, or no op at all: reported as odd, nothing else shown.
        let foreign = pending_view(
            "pve-01",
            &pend("x.op", &op("pve-02", "destroy", &[], 2)),
            &[],
            now,
        );
        assert!(
            foreign
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("pve-02"))
        );
        assert!(foreign.commands.is_empty());
        let junk = pending_view("pve-01", &pend("../../x", "<b>"), &[], now);
        assert!(junk.problem.is_some());
        assert_eq!(junk.file, "pve-01-pending.op");
    }

    #[test]
    fn ops_sharing_a_name_or_unreadable_are_never_offered_for_signing() {
        let now = t("2026-12-06T12:00:00Z");
        let good = op("pve-01", "destroy", &[], 2);
        let hidden = op("pve-02", "destroy", &[], 2);
        // The attacker's op first, a harmless-looking one under the same name second.
        let views = host_pending(
            "pve-01",
            &[
                pend("x.op", &hidden),
                pend("x.op", &good),
                pend("y.op", &good),
                pend("../z", "junk"),
            ],
            &[],
            now,
        );
        assert!(
            views[0].problem.is_some() && views[1].problem.is_some(),
            "{views:?}"
        );
        assert!(
            views[1]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("several"))
        );
        assert!(views[0].commands.is_empty() && views[1].commands.is_empty());
        assert_ne!(views[0].anchor, views[1].anchor);
        assert_eq!(views[2].problem, None);
        assert!(!views[2].commands.is_empty());
        assert!(views[3].problem.is_some() && views[3].commands.is_empty());
        assert_eq!(views.iter().filter(|v| v.first_of_host).count(), 1);
    }

    #[test]
    fn a_diff_shows_changed_lines_with_context_and_gaps() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 2\n", "line two\n")
            .replace("line 19\n", "");
        let d = diff(&old, &new);
        let signs: String = d.iter().map(|l| l.sign).collect();
        assert_eq!(signs.matches('-').count(), 2);
        assert_eq!(signs.matches('+').count(), 1);
        assert_eq!(d.iter().filter(|l| l.kind == "gap").count(), 1);
        assert!(d.iter().any(|l| l.kind == "add" && l.text == "line two"));
        assert!(diff(&old, &old).is_empty());
        // A huge change is cut, and says so.
        let big_old: String = (0..20_000).map(|i| format!("a {i}\n")).collect();
        let big_new: String = (0..20_000).map(|i| format!("b {i}\n")).collect();
        let d = diff(&big_old, &big_new);
        assert_eq!(d.len(), MAX_DIFF_LINES + 1);
        assert!(
            d[MAX_DIFF_LINES]
                .text
                .ends_with("more lines of the diff not shown")
        );
    }

    #[test]
    fn audit_rows_are_searched_by_text_event_and_time() {
        let rec = |seq: u64, time: &str, event: serde_json::Value| serde_json::json!({"seq": seq, "time": time, "hash": "h", "prev_hash": "p", "event": event});
        let records = [
            rec(
                1,
                "2026-12-01T10:00:00Z",
                serde_json::json!({"event": "agent_started"}),
            ),
            rec(
                2,
                "2026-12-02T10:00:00Z",
                serde_json::json!({"event": "action_failed", "error": "lxc/101: refused"}),
            ),
            rec(
                3,
                "2026-12-03T10:00:00Z",
                serde_json::json!({"event": "action_failed", "error": "qemu/200: locked"}),
            ),
        ];
        let q = |q: &str, event: &str, since: &str, until: &str| AuditQuery {
            q: q.into(),
            event: event.into(),
            since: since.into(),
            until: until.into(),
            after: None,
        };
        let seqs = |query: AuditQuery| {
            audit_rows(&records, &query, 2)
                .expect("rows")
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(q("", "", "", "")), [1, 2, 3]);
        assert_eq!(seqs(q("LXC/101", "", "", "")), [2]);
        assert_eq!(seqs(q("", "action_failed", "", "")), [2, 3]);
        assert_eq!(seqs(q("", "", "2026-12-02", "2026-12-03")), [2]);
        assert_eq!(seqs(q("", "", "2026-12-02T12:00:00Z", "")), [3]);
        let rows = audit_rows(&records, &AuditQuery::default(), 2).expect("rows");
        assert!(
            rows[1].verified && !rows[2].verified,
            "past the verified head"
        );
        assert_eq!(rows[1].fields, ["error=lxc/101: refused"]);
        let e = audit_rows(&records, &q("", "", "yesterday", ""), 2).expect_err("bad time");
        assert!(e.contains("yesterday"), "{e}");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = t("2026-12-06T12:00:00Z");
        assert_eq!(relative(t("2026-12-06T11:59:55Z"), now), "5 s ago");
        assert_eq!(relative(t("2026-12-06T09:00:00Z"), now), "3 h ago");
        assert_eq!(relative(t("2026-12-01T12:00:00Z"), now), "5 days ago");
        assert_eq!(relative(t("2026-12-06T12:30:00Z"), now), "in 30 min");
    }

    #[test]
    fn a_report_that_claims_an_authorisation_is_shown_as_such_and_lacks_are_named() {
        let doc = serde_json::json!({
            "acceptance_candidates": [
                {"surface_id": "a", "status": "request_supplement", "required_owner_fields": ["x", "y", "z", "w"],
                 "x": "ok", "y": castellan_ledger::schema::PENDING, "z": [], "w": ""},
                {"surface_id": "b", "status": "waiting_owner_response"},
            ],
            "execution_boundaries": {"host_write_authorized": true, "ssh_read_authorized": false,
                                     "owner_response_accepted": true, "not_authorization": true},
        });
        let v = services(&doc, &ServicesQuery::default());
        assert_eq!(v.open_boundaries, ["host_write_authorized = true"]);
        assert_eq!(v.candidates[0].lacks, ["y", "z", "w"]);
        assert_eq!(v.lanes.iter().map(|l| l.count).sum::<usize>(), 2);
        let only = services(
            &doc,
            &ServicesQuery {
                lane: "waiting_owner_response".into(),
                q: String::new(),
            },
        );
        assert_eq!(
            (only.matching, only.candidates[0].surface.as_str()),
            (1, "b")
        );
    }

    #[test]
    fn declared_guests_are_listed_field_by_field() {
        let doc = "node = \"pve-01\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nrun = \"running\"\ncores = 2\nmemory = \"2GiB\"\ntags = [\"web\", \"prod\"]\n";
        let guests = declared_guests(doc).expect("parses");
        assert_eq!(guests.len(), 1);
        assert_eq!(guests[0].0, "lxc/101");
        for want in [
            "ensure = present",
            "run = running",
            "cores = 2",
            "tags = web;prod",
        ] {
            assert!(
                guests[0].1.iter().any(|f| f == want),
                "{want}: {:?}",
                guests[0].1
            );
        }
        assert!(declared_guests("not toml [").is_none());
    }
}

/// The Host services page's filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesQuery {
    /// Only candidates in this lane.
    #[serde(default)]
    pub lane: String,
    /// Candidates whose surface, label or scope holds this.
    #[serde(default)]
    pub q: String,
}

/// Most candidates listed on one page (the counts cover them all).
pub const MAX_CANDIDATES_SHOWN: usize = 500;

/// One acceptance candidate as the Host services page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateRow {
    /// `acceptance_candidate_id`.
    pub id: String,
    /// `surface_id`.
    pub surface: String,
    /// `label`.
    pub label: String,
    /// `config_kind`.
    pub kind: String,
    /// `expected_host_scope`.
    pub scope: String,
    /// Whether the surface can change a host.
    pub write_capable: bool,
    /// Its lane (`status`).
    pub lane: String,
    /// What the owner response still lacks: required fields still pending or empty.
    pub lacks: Vec<String>,
    /// `reviewer_outcome`, if any.
    pub reviewer: String,
}

/// A lane with how many candidates are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneRow {
    /// `lane_id`.
    pub id: String,
    /// What it means.
    pub meaning: String,
    /// Candidates in it.
    pub count: usize,
    /// Whether the page is filtered to it.
    pub selected: bool,
}

/// The Host services page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicesView {
    /// `generated_at`.
    pub generated_at: String,
    /// `git_commit`.
    pub git_commit: String,
    /// The summary's counters, `key = value`.
    pub summary: Vec<(String, String)>,
    /// The lanes in contract order, with counts.
    pub lanes: Vec<LaneRow>,
    /// The candidates the filter selects (at most [`MAX_CANDIDATES_SHOWN`]).
    pub candidates: Vec<CandidateRow>,
    /// How many the filter selects in all.
    pub matching: usize,
    /// Every `*_authorized`, `runtime_gate` and `action_buttons_allowed` flag in the
    /// report's execution boundaries that is not `false` (there should be none).
    pub open_boundaries: Vec<String>,
}

fn text_of(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Reads an acceptance report (already checked by the hub when it was pushed) for the
/// Host services page.
pub fn services(doc: &serde_json::Value, query: &ServicesQuery) -> ServicesView {
    let mut view = ServicesView {
        generated_at: text_of(doc.get("generated_at")),
        git_commit: text_of(doc.get("git_commit")),
        ..ServicesView::default()
    };
    if let Some(summary) = doc.get("summary").and_then(|s| s.as_object()) {
        view.summary = summary
            .iter()
            .map(|(k, v)| (k.clone(), text_of(Some(v))))
            .collect();
    }
    if let Some(b) = doc.get("execution_boundaries").and_then(|b| b.as_object()) {
        view.open_boundaries = b
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "not_authorization"
                    && k.as_str() != "owner_response_accepted"
                    && **v != serde_json::Value::Bool(false)
            })
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
    }
    let pending = castellan_ledger::schema::PENDING;
    let rows: Vec<CandidateRow> = doc
        .get("acceptance_candidates")
        .and_then(|c| c.as_array())
        .map(|all| {
            all.iter()
                .map(|c| {
                    let lacks = c
                        .get("required_owner_fields")
                        .and_then(|f| f.as_array())
                        .map(|fields| {
                            fields
                                .iter()
                                .filter_map(|f| f.as_str())
                                .filter(|f| match c.get(*f) {
                                    None | Some(serde_json::Value::Null) => true,
                                    Some(serde_json::Value::String(s)) => {
                                        s == pending || s.is_empty()
                                    }
                                    Some(serde_json::Value::Array(a)) => a.is_empty(),
                                    Some(_) => false,
                                })
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    CandidateRow {
                        id: text_of(c.get("acceptance_candidate_id")),
                        surface: text_of(c.get("surface_id")),
                        label: text_of(c.get("label")),
                        kind: text_of(c.get("config_kind")),
                        scope: text_of(c.get("expected_host_scope")),
                        write_capable: c.get("write_capable_surface")
                            == Some(&serde_json::Value::Bool(true)),
                        lane: text_of(c.get("status")),
                        lacks,
                        reviewer: text_of(c.get("reviewer_outcome")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    view.lanes = castellan_ledger::schema::OUTCOME_LANES
        .iter()
        .map(|l| LaneRow {
            id: l.lane_id.to_owned(),
            meaning: l.meaning.to_owned(),
            count: rows.iter().filter(|r| r.lane == l.lane_id).count(),
            selected: query.lane == l.lane_id,
        })
        .collect();
    let needle = query.q.trim().to_lowercase();
    let selected: Vec<CandidateRow> = rows
        .into_iter()
        .filter(|r| query.lane.is_empty() || r.lane == query.lane)
        .filter(|r| {
            needle.is_empty()
                || [&r.surface, &r.label, &r.scope, &r.kind, &r.id]
                    .iter()
                    .any(|s| s.to_lowercase().contains(&needle))
        })
        .collect();
    view.matching = selected.len();
    view.candidates = selected.into_iter().take(MAX_CANDIDATES_SHOWN).collect();
    view
}
