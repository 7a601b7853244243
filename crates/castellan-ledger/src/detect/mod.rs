//! Content classification of host-service configuration.
//!
//! Everything here is pure: a text (and, for tie-breaks, a file name) in, a verdict out. The
//! same rules serve two callers: the inventory ([`crate::inventory`]), which asks of every
//! file in an ops repository whether it is a host-service surface ([`classify`]), and the
//! intake, which asks of every string in an owner response whether it is a pasted raw
//! configuration that must be quarantined ([`raw_payload`]).
//!
//! # Surfaces ([`classify`])
//!
//! A file is judged by its **content**; its name never decides alone. It only names a
//! systemd unit (`backup.timer`), marks a drop-in (`docker.service.d/override.conf`) and
//! breaks ties.
//!
//! - **Docker Compose** (`docker_compose`): the first YAML document is a mapping whose
//!   top-level keys are all compose keys (`version`, `name`, `services`, `networks`,
//!   `volumes`, `configs`, `secrets`, `include`, `models`, `x-*` extensions, as the compose
//!   specification demands), with a non-empty `services` mapping whose every value is a
//!   mapping and at least one of them uses a compose service key (`image`, `build`,
//!   `command`, `ports`, `volumes`, `environment`, `depends_on`, `restart`, `networks`,
//!   `container_name`, `healthcheck`, ...). YAML merge keys (`<<: *defaults`) are followed.
//!   Label `compose: a, b`; service scope the sorted service names. **Write-capable** when
//!   any service has `privileged: true`, `network_mode`/`pid`/`ipc`/`userns_mode: host`, a
//!   non-empty `cap_add` or `devices`, `user` root or `0`, a bind of the Docker (or Podman)
//!   socket (even read-only: the socket is the daemon's API), or a host bind mount that is
//!   not read-only — short syntax `./x:/y`, `/x:/y`, `~/x:/y`, `${VAR}:/y` without `:ro`, or
//!   long syntax `type: bind` without `read_only: true`. Named volumes are not host binds.
//! - **systemd unit**: an INI text (only comments and blank lines before the first
//!   section; every other line a `[Section]` header, a `Key=Value` line or a continuation)
//!   whose sections are all unit sections (`[Unit]`, `[Service]`, `[Timer]`, `[Socket]`,
//!   `[Install]`, `[Path]`, `[Mount]`, `[Automount]`, `[Swap]`, `[Slice]`, `[Scope]`,
//!   `[X-*]`) and that has at least one known directive (`Description=`, `ExecStart=`,
//!   `OnCalendar=`, `WantedBy=`, `ListenStream=`, `Type=`, `Restart=`, `User=`, ...). Kind:
//!   `systemd_timer` with `[Timer]`, `systemd_socket` with `[Socket]`, `systemd_service` with
//!   `[Service]`, else `systemd_unit`; for a drop-in (`NAME.service.d/*.conf`) the kind comes
//!   from the directory's unit suffix. Label `Description=`, else the file name (for a
//!   drop-in `NAME.service.d/FILE`). Service scope: the unit name; a timer, socket or path
//!   unit also names the unit it triggers (`Unit=`/`Service=`, else the same-named
//!   `.service`). **Write-capable**: timers and path units (they trigger jobs), mount,
//!   automount and swap units (they change the host's mounts); a service that runs as root
//!   (no `User=`, `User=root` or `0`, and no `DynamicUser=yes`) unless it is sandboxed
//!   read-only (`ProtectSystem=strict` or `ReadOnlyPaths=/`); and any unit whose `Exec*=`
//!   lines run `rm`, `dd`, `mkfs*`, `iptables*`, `ip6tables*`, `nft`, `docker`,
//!   `docker-compose`, `podman`, `systemctl`, `tee`, `cp`, `mv`, `install`, `rsync`, `apt`,
//!   `apt-get`, `dnf` or `yum`. A drop-in that does not say `User=` counts as root: the
//!   drop-in alone cannot prove otherwise.
//! - **Ansible playbook** (`ansible_playbook`): the first YAML document is a non-empty
//!   sequence of mappings, each a play (`hosts`) or an `import_playbook`, with at least one
//!   play carrying `tasks`, `roles`, `pre_tasks`, `post_tasks` or `handlers`, or at least
//!   one import. Host hint: the plays' `hosts`, split on `,`, sorted, joined with `,`.
//!   Service scope: the roles it applies and the services its own tasks manage
//!   (`service`/`systemd` modules), else the file name. Always write-capable
//!   (configuration management writes).
//! - **Ansible role** (`ansible_role`): a directory `roles/NAME/` whose `tasks/main.yml`
//!   (or `.yaml`) is a non-empty YAML sequence of tasks (mappings with a module key, or
//!   `block`). The inventory makes one surface per role, not per file (see
//!   [`crate::inventory`]); [`classify`] itself never reports a role. Label `role: NAME`;
//!   service scope the services its tasks and handlers manage, else the role name. Always
//!   write-capable.
//! - **Repair-bot configuration** (`repair_bot_config`): a YAML, JSON or TOML document whose
//!   top level has a key among `repair_bot`, `repair`, `repairs`, `remediation`,
//!   `remediations`, `autoheal`, `self_heal` (or says `kind: RepairBot`), with, somewhere
//!   inside, a mapping that pairs a check (`check`, `probe`, `condition`, `when`, `trigger`,
//!   `match`, `healthcheck`, `monitor`, `alert`, ...) with an action (`action`, `run`,
//!   `exec`, `command`, `remediate`, `fix`, `restart`, `script`, ...). Host hint: its
//!   `hosts`/`host`. Service scope: the `service`/`unit`/`container` values it names, else
//!   its name. Always write-capable (it acts on hosts by itself).
//!
//! Anything else — a README, a Kubernetes manifest, a CI workflow (whose jobs may have
//! `services:` of their own), an `.env` file, source code — is not a surface. Malformed YAML,
//! INI or TOML is simply not a surface; so is a YAML document that expands beyond a budget
//! proportional to its size (alias bombs) or nests deeper than 64 levels. [`classify`]
//! does not examine texts over [`MAX_TEXT_BYTES`] and [`raw_payload`] only their first
//! [`MAX_TEXT_BYTES`]. Nothing here panics on any input.
//!
//! # Raw payloads ([`raw_payload`])
//!
//! Whether a string from an owner response is a pasted raw configuration. A one-line
//! reference (`docker-compose.yml@3f2a1bc`), a URL, a sentence about "the `[Service]`
//! section" or a list of references is not: every rule requires several structural lines.
//! The text is examined whole and then each Markdown fenced block in it, so a unit pasted
//! inside prose is still found. Labels:
//!
//! - `raw_compose`: a compose document (as above, unknown top-level keys allowed), or a
//!   compose fragment (a mapping, or a mapping of mappings, with `image`/`build` and two more
//!   service keys); at least 3 lines.
//! - `raw_systemd_unit`: a unit section header line and at least two known `Directive=`
//!   lines.
//! - `raw_host_config:kubernetes_manifest` (`apiVersion` + `kind` + `metadata`/`spec`),
//!   `raw_host_config:ansible_playbook`, `raw_host_config:ansible_tasks` (tasks with known
//!   or fully-qualified module names), `raw_host_config:repair_bot`: YAML of at least 3
//!   lines.
//! - `raw_host_config:sshd_config` (3 `Keyword value` lines with a valid value),
//!   `raw_host_config:nginx` (a block opener and 2 `directive ...;` lines),
//!   `raw_host_config:apache` (a `<VirtualHost>`/`<Directory>` tag and 2 directives),
//!   `raw_host_config:fstab` (2 mount lines), `raw_host_config:hosts` (3 `IP name` lines),
//!   `raw_host_config:sudoers` (2 rules), `raw_host_config:iptables` (3 `iptables-save`
//!   lines), `raw_host_config:nftables` (3 ruleset lines with a `table` or `chain`),
//!   `raw_host_config:crontab` (2 schedule lines), `raw_host_config:ini` (a section and 2
//!   `key = value` lines), `raw_host_config:env` (3 `NAME=value` lines).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::model::ConfigKind;

/// Texts longer than this are not examined (the inventory skips such files).
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// What a text is, judged by its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The kind of host-service configuration.
    pub kind: ConfigKind,
    /// A human label (`compose: grafana, prometheus`, a unit's `Description=`, ...).
    pub label: String,
    /// The services it defines or touches, sorted, joined with `,`.
    pub service_scope: String,
    /// Whether applying it can change host state beyond its own service.
    pub write_capable: bool,
    /// The host or host group the content itself names (a play's `hosts`), if any.
    pub host_hint: Option<String>,
}

/// Classifies one file's text.
///
/// `file_name` is the file's name or its `/`-separated repo-relative path: its last
/// component names a systemd unit, and a parent directory `NAME.service.d` (or another unit
/// suffix) marks a drop-in. It never decides alone: a `docker-compose.yml` that is not a
/// compose document is not a surface, and a compose document named `app.yaml` is one.
/// Ansible roles are directories and are recognised by the inventory, not here.
pub fn classify(file_name: &str, text: &str) -> Option<Detected> {
    classify_full(file_name, text).map(|c| c.detected)
}

/// Whether `text` (a string from an owner response) is a pasted raw configuration; returns
/// a short machine label (`raw_compose`, `raw_systemd_unit`, `raw_host_config:KIND`). See
/// the module documentation for the rules.
pub fn raw_payload(text: &str) -> Option<&'static str> {
    let text = truncate(text, MAX_TEXT_BYTES);
    if let Some(label) = raw_in(text) {
        return Some(label);
    }
    fenced_blocks(text).into_iter().find_map(raw_in)
}

/// A classification with what the inventory needs beyond [`Detected`].
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    /// The verdict.
    pub detected: Detected,
    /// For a playbook: the roles its plays apply, each with the plays' host patterns.
    pub role_refs: Vec<RoleRef>,
}

/// A role applied by a play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleRef {
    /// The role's name (the last component of a path reference).
    pub role: String,
    /// The play's `hosts` patterns.
    pub hosts: Vec<String>,
}

/// [`classify`], keeping a playbook's role references.
pub(crate) fn classify_full(file_name: &str, text: &str) -> Option<Classified> {
    if text.len() > MAX_TEXT_BYTES {
        return None;
    }
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    if let Some(detected) = systemd(file_name, text) {
        return Some(Classified {
            detected,
            role_refs: Vec::new(),
        });
    }
    if !might_be_structured(text) {
        return None;
    }
    if let Some(docs) = yaml::load(text)
        && let Some(doc) = docs.first()
    {
        if let Some(info) = compose(doc, true) {
            return Some(Classified {
                detected: Detected {
                    kind: ConfigKind::DockerCompose,
                    label: format!("compose: {}", info.services.join(", ")),
                    service_scope: info.services.join(","),
                    write_capable: info.write_capable,
                    host_hint: None,
                },
                role_refs: Vec::new(),
            });
        }
        if let Some(play) = playbook(doc) {
            let mut scope: BTreeSet<String> =
                play.role_refs.iter().map(|r| r.role.clone()).collect();
            scope.extend(play.services);
            let label = if play.names.is_empty() {
                format!("playbook: {base}")
            } else {
                format!("playbook: {}", play.names.join("; "))
            };
            return Some(Classified {
                detected: Detected {
                    kind: ConfigKind::AnsiblePlaybook,
                    label,
                    service_scope: scope_or(&scope, base),
                    write_capable: true,
                    host_hint: join_nonempty(&play.hosts),
                },
                role_refs: play.role_refs,
            });
        }
        if let Some(bot) = repair_bot(doc) {
            return Some(repair_classified(bot, base));
        }
    }
    if mentions_repair_key(text)
        && toml_is_shallow(text)
        && let Ok(table) = text.parse::<toml::Table>()
    {
        let doc = yaml::from_toml(&toml::Value::Table(table), 0)?;
        if let Some(bot) = repair_bot(&doc) {
            return Some(repair_classified(bot, base));
        }
    }
    None
}

fn repair_classified(bot: RepairInfo, base: &str) -> Classified {
    let name = bot.name.unwrap_or_else(|| base.to_owned());
    Classified {
        detected: Detected {
            kind: ConfigKind::RepairBotConfig,
            label: format!("repair bot: {name}"),
            service_scope: scope_or(&bot.services, &name),
            write_capable: true,
            host_hint: join_nonempty(&bot.hosts),
        },
        role_refs: Vec::new(),
    }
}

/// The services a role task file manages, if `text` is a task list (a non-empty YAML
/// sequence of tasks; module names are not checked against a list).
pub(crate) fn task_file_services(text: &str) -> Option<BTreeSet<String>> {
    if text.len() > MAX_TEXT_BYTES {
        return None;
    }
    let docs = yaml::load(text)?;
    task_list(docs.first()?, false)
}

/// The surface of the Ansible role `name`, given the services its task files manage.
pub(crate) fn role_detected(name: &str, services: &BTreeSet<String>) -> Detected {
    Detected {
        kind: ConfigKind::AnsibleRole,
        label: format!("role: {name}"),
        service_scope: scope_or(services, name),
        write_capable: true,
        host_hint: None,
    }
}

fn scope_or(set: &BTreeSet<String>, fallback: &str) -> String {
    if set.is_empty() {
        fallback.to_owned()
    } else {
        set.iter().map(String::as_str).collect::<Vec<_>>().join(",")
    }
}

fn join_nonempty(set: &BTreeSet<String>) -> Option<String> {
    (!set.is_empty()).then(|| set.iter().map(String::as_str).collect::<Vec<_>>().join(","))
}

/// Cheap pre-filter, one pass over the text: YAML, JSON and TOML surfaces all contain one
/// of these words.
fn might_be_structured(text: &str) -> bool {
    static WORDS: LazyLock<Regex> = LazyLock::new(|| {
        re("services|hosts|import_playbook|repair|remediation|autoheal|self_heal|RepairBot")
    });
    WORDS.is_match(text)
}

fn mentions_repair_key(text: &str) -> bool {
    // `repair` covers repair_bot/repairs; `remediation`, `autoheal`, `self_heal` the rest.
    text.contains("repair")
        || text.contains("remediation")
        || text.contains("autoheal")
        || text.contains("self_heal")
        || text.contains("RepairBot")
}

/// Refuses TOML whose dotted keys or headers would nest absurdly deep (the parser guards
/// inline nesting itself, not `a.b.c.d...`).
fn toml_is_shallow(text: &str) -> bool {
    text.lines().all(|line| {
        let key_part = line.split('=').next().unwrap_or("");
        key_part.matches('.').count() <= 32
    })
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

mod yaml;

use yaml::Node;

mod ansible;
mod compose;
mod raw;
mod repair;
mod systemd;

use ansible::*;
use compose::*;
use raw::*;
use repair::*;
use systemd::*;

#[cfg(test)]
mod tests;
