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

// ---------------------------------------------------------------------------------------
// YAML: a small tree over yaml-rust2's event parser, with depth and expansion budgets.

mod yaml {
    use std::collections::{HashMap, HashSet};

    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;

    /// Deeper documents are refused (no configuration nests this deep).
    const MAX_DEPTH: usize = 64;

    /// A YAML (or JSON, or TOML) node. Scalars keep their text; `plain` is false for quoted
    /// or tagged scalars, so `"0"` and `0` can be told apart where it matters.
    #[derive(Debug, Clone)]
    pub(super) enum Node {
        Map(Vec<(Node, Node)>),
        Seq(Vec<Node>),
        Scalar { text: String, plain: bool },
    }

    impl Node {
        pub(super) fn scalar(&self) -> Option<&str> {
            match self {
                Node::Scalar { text, plain } => {
                    if *plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        None
                    } else {
                        Some(text)
                    }
                }
                _ => None,
            }
        }

        pub(super) fn is_true(&self) -> bool {
            matches!(self.scalar(), Some("true" | "True" | "TRUE"))
        }

        pub(super) fn as_seq(&self) -> Option<&[Node]> {
            match self {
                Node::Seq(items) => Some(items),
                _ => None,
            }
        }

        pub(super) fn is_map(&self) -> bool {
            matches!(self, Node::Map(_))
        }

        /// A mapping's entries with string keys, merge keys (`<<`) followed; a key given
        /// directly shadows a merged one. Empty for a non-mapping.
        pub(super) fn entries(&self) -> Vec<(&str, &Node)> {
            let mut out = Vec::new();
            self.collect_entries(&mut out, 0);
            out
        }

        fn collect_entries<'a>(&'a self, out: &mut Vec<(&'a str, &'a Node)>, depth: usize) {
            let Node::Map(entries) = self else { return };
            let mut merges = Vec::new();
            for (key, value) in entries {
                match key.scalar() {
                    Some("<<") if key_is_plain(key) => merges.push(value),
                    Some(k) if !out.iter().any(|(seen, _)| *seen == k) => out.push((k, value)),
                    _ => {}
                }
            }
            if depth >= 8 {
                return;
            }
            for merged in merges {
                match merged {
                    Node::Map(_) => merged.collect_entries(out, depth + 1),
                    Node::Seq(items) => {
                        for item in items {
                            item.collect_entries(out, depth + 1);
                        }
                    }
                    Node::Scalar { .. } => {}
                }
            }
        }

        pub(super) fn get(&self, key: &str) -> Option<&Node> {
            self.entries()
                .into_iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        }

        /// The keys of a mapping (merges followed).
        pub(super) fn keys(&self) -> Vec<&str> {
            self.entries().into_iter().map(|(k, _)| k).collect()
        }

        /// A scalar or a sequence of scalars, as strings.
        pub(super) fn strings(&self) -> Vec<&str> {
            match self {
                Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
                other => other.scalar().into_iter().collect(),
            }
        }
    }

    fn key_is_plain(key: &Node) -> bool {
        matches!(key, Node::Scalar { plain: true, .. })
    }

    enum Frame {
        Seq {
            items: Vec<Node>,
            anchor: usize,
            weight: usize,
        },
        Map {
            entries: Vec<(Node, Node)>,
            key: Option<Node>,
            anchor: usize,
            weight: usize,
        },
    }

    /// Every document of `text`, or `None` when it is not well-formed YAML, repeats a key,
    /// nests deeper than [`MAX_DEPTH`] or expands its aliases beyond a budget proportional
    /// to its size.
    pub(super) fn load(text: &str) -> Option<Vec<Node>> {
        let mut parser = Parser::new_from_str(text);
        // Aliases are expanded by copying; this bounds the copies (alias bombs).
        let mut budget = text.len().saturating_mul(4).saturating_add(64 * 1024);
        let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Node> = None;
        let mut docs = Vec::new();
        loop {
            let (event, _) = parser.next_token().ok()?;
            let (node, anchor, weight) = match event {
                Event::StreamEnd => break,
                Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
                Event::DocumentEnd => {
                    if !stack.is_empty() {
                        return None;
                    }
                    docs.push(root.take().unwrap_or(Node::Scalar {
                        text: String::new(),
                        plain: true,
                    }));
                    continue;
                }
                Event::SequenceStart(anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    stack.push(Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        weight: 1,
                    });
                    continue;
                }
                Event::MappingStart(anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    stack.push(Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        anchor,
                        weight: 1,
                    });
                    continue;
                }
                Event::SequenceEnd => match stack.pop()? {
                    Frame::Seq {
                        items,
                        anchor,
                        weight,
                    } => (Node::Seq(items), anchor, weight),
                    Frame::Map { .. } => return None,
                },
                Event::MappingEnd => match stack.pop()? {
                    Frame::Map {
                        entries,
                        key: None,
                        anchor,
                        weight,
                    } => {
                        let mut seen = HashSet::new();
                        for (k, _) in &entries {
                            if let Node::Scalar { text, .. } = k
                                && !seen.insert(text.as_str())
                            {
                                return None;
                            }
                        }
                        (Node::Map(entries), anchor, weight)
                    }
                    _ => return None,
                },
                Event::Scalar(text, style, anchor, tag) => {
                    let weight = 1 + text.len();
                    let plain = style == TScalarStyle::Plain && tag.is_none();
                    (Node::Scalar { text, plain }, anchor, weight)
                }
                Event::Alias(id) => {
                    let (node, weight) = anchors.get(&id)?;
                    budget = budget.checked_sub(*weight)?;
                    (node.clone(), 0, *weight)
                }
            };
            if anchor > 0 {
                budget = budget.checked_sub(weight)?;
                anchors.insert(anchor, (node.clone(), weight));
            }
            match stack.last_mut() {
                None => {
                    if root.is_some() {
                        return None;
                    }
                    root = Some(node);
                }
                Some(Frame::Seq {
                    items, weight: w, ..
                }) => {
                    *w = w.saturating_add(weight);
                    items.push(node);
                }
                Some(Frame::Map {
                    entries,
                    key,
                    weight: w,
                    ..
                }) => {
                    *w = w.saturating_add(weight);
                    match key.take() {
                        None => *key = Some(node),
                        Some(k) => entries.push((k, node)),
                    }
                }
            }
        }
        Some(docs)
    }

    /// A TOML value as a [`Node`]; `None` past [`MAX_DEPTH`].
    pub(super) fn from_toml(value: &toml::Value, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match value {
            toml::Value::String(s) => Node::Scalar {
                text: s.clone(),
                plain: false,
            },
            toml::Value::Integer(i) => Node::Scalar {
                text: i.to_string(),
                plain: true,
            },
            toml::Value::Float(f) => Node::Scalar {
                text: f.to_string(),
                plain: true,
            },
            toml::Value::Boolean(b) => Node::Scalar {
                text: b.to_string(),
                plain: true,
            },
            toml::Value::Datetime(d) => Node::Scalar {
                text: d.to_string(),
                plain: false,
            },
            toml::Value::Array(items) => Node::Seq(
                items
                    .iter()
                    .map(|v| from_toml(v, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            toml::Value::Table(table) => Node::Map(
                table
                    .iter()
                    .map(|(k, v)| {
                        let key = Node::Scalar {
                            text: k.clone(),
                            plain: false,
                        };
                        from_toml(v, depth + 1).map(|v| (key, v))
                    })
                    .collect::<Option<_>>()?,
            ),
        })
    }
}

use yaml::Node;

// ---------------------------------------------------------------------------------------
// Docker Compose.

const COMPOSE_TOP_KEYS: [&str; 9] = [
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

const COMPOSE_SERVICE_KEYS: [&str; 60] = [
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

struct ComposeInfo {
    /// Sorted service names.
    services: Vec<String>,
    write_capable: bool,
}

/// `doc` as a compose document; `strict_top` refuses unknown top-level keys (as compose
/// itself does).
fn compose(doc: &Node, strict_top: bool) -> Option<ComposeInfo> {
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
fn compose_fragment(doc: &Node) -> bool {
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

fn service_writes(svc: &Node) -> bool {
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

fn is_socket(source: &str) -> bool {
    source.ends_with("docker.sock") || source.ends_with("podman.sock")
}

fn volume_writes(vol: &Node) -> bool {
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

// ---------------------------------------------------------------------------------------
// Ansible.

/// The keywords a task may carry besides its module.
const TASK_KEYWORDS: [&str; 41] = [
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
const KNOWN_MODULES: [&str; 58] = [
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

const SERVICE_MODULES: [&str; 8] = [
    "service",
    "systemd",
    "systemd_service",
    "ansible.builtin.service",
    "ansible.builtin.systemd",
    "ansible.builtin.systemd_service",
    "community.general.systemd",
    "ansible.legacy.service",
];

static FQCN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$").expect("static pattern"));

fn is_block(task: &Node) -> bool {
    task.get("block").is_some_and(|b| b.as_seq().is_some())
}

/// Whether `item` is a task: a block, or a mapping with a module key (`strict`: a known or
/// fully-qualified module name; else any key that is not a task keyword).
fn is_task(item: &Node, strict: bool) -> bool {
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
fn task_list(doc: &Node, strict: bool) -> Option<BTreeSet<String>> {
    let items = doc.as_seq()?;
    if items.is_empty() || !items.iter().all(|t| is_task(t, strict)) {
        return None;
    }
    let mut services = BTreeSet::new();
    collect_task_services(items, &mut services, 0);
    Some(services)
}

fn collect_task_services(tasks: &[Node], out: &mut BTreeSet<String>, depth: usize) {
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

struct PlaybookInfo {
    hosts: BTreeSet<String>,
    names: Vec<String>,
    role_refs: Vec<RoleRef>,
    services: BTreeSet<String>,
}

const PLAY_SECTIONS: [&str; 5] = ["tasks", "roles", "pre_tasks", "post_tasks", "handlers"];
const IMPORT_KEYS: [&str; 2] = ["import_playbook", "ansible.builtin.import_playbook"];

fn playbook(doc: &Node) -> Option<PlaybookInfo> {
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
fn collect_included_roles(tasks: &[Node], out: &mut BTreeSet<String>, depth: usize) {
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
fn role_name(reference: &str) -> String {
    let trimmed = reference.trim().trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

// ---------------------------------------------------------------------------------------
// Repair bots.

const REPAIR_KEYS: [&str; 7] = [
    "repair_bot",
    "repair",
    "repairs",
    "remediation",
    "remediations",
    "autoheal",
    "self_heal",
];

const CHECK_KEYS: [&str; 20] = [
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

const ACTION_KEYS: [&str; 16] = [
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

struct RepairInfo {
    name: Option<String>,
    hosts: BTreeSet<String>,
    services: BTreeSet<String>,
}

fn repair_bot(doc: &Node) -> Option<RepairInfo> {
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
fn has_rule(node: &Node, depth: usize) -> bool {
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

fn collect_named_services(node: &Node, out: &mut BTreeSet<String>, depth: usize) {
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

// ---------------------------------------------------------------------------------------
// systemd.

const UNIT_SECTIONS: [&str; 11] = [
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

const UNIT_SUFFIXES: [&str; 10] = [
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
const KNOWN_DIRECTIVES: [&str; 98] = [
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
const WRITING_COMMANDS: [&str; 19] = [
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
struct UnitFile {
    sections: Vec<(String, Vec<(String, String)>)>,
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

fn is_unit_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `text` as a unit file, strictly: `None` for anything that is not one.
fn parse_unit(text: &str) -> Option<UnitFile> {
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

fn unit_suffix(name: &str) -> Option<&'static str> {
    UNIT_SUFFIXES
        .iter()
        .copied()
        .find(|s| name.ends_with(s) && name.len() > s.len())
}

fn systemd(file_name: &str, text: &str) -> Option<Detected> {
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

fn service_runs_as_writing_root(unit: &UnitFile) -> bool {
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
fn command_writes(command: &str) -> bool {
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

// ---------------------------------------------------------------------------------------
// Raw payloads.

/// Markdown fenced blocks (```` ``` ```` or `~~~`) in `text`.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut start: Option<(usize, &str)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        match start {
            None => {
                if trimmed.starts_with("```") {
                    start = Some((offset + line.len(), "```"));
                } else if trimmed.starts_with("~~~") {
                    start = Some((offset + line.len(), "~~~"));
                }
            }
            Some((begin, fence)) => {
                if trimmed.starts_with(fence) {
                    blocks.push(&text[begin..offset]);
                    start = None;
                }
            }
        }
        offset += line.len();
    }
    if let Some((begin, _)) = start {
        blocks.push(&text[begin.min(text.len())..]);
    }
    blocks
}

fn raw_in(text: &str) -> Option<&'static str> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() < 2 {
        return None;
    }
    if lines.len() >= 3
        && text.contains(':')
        && let Some(label) = raw_yaml(text)
    {
        return Some(label);
    }
    let content: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .collect();
    let count = |pred: &dyn Fn(&str) -> bool| content.iter().filter(|l| pred(l)).count();

    let unit_headers = count(&|l| {
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .is_some_and(|name| UNIT_SECTIONS.contains(&name))
    });
    let unit_directives = count(&|l| {
        l.split_once('=')
            .is_some_and(|(k, _)| KNOWN_DIRECTIVES.contains(&k.trim()))
    });
    if unit_headers >= 1 && unit_directives >= 2 {
        return Some("raw_systemd_unit");
    }
    if count(&sshd_line) >= 3 {
        return Some("raw_host_config:sshd_config");
    }
    if count(&|l| NGINX_BLOCK.is_match(l)) >= 1 && count(&|l| NGINX_DIRECTIVE.is_match(l)) >= 2 {
        return Some("raw_host_config:nginx");
    }
    if count(&|l| APACHE_TAG.is_match(l)) >= 1 && count(&|l| APACHE_DIRECTIVE.is_match(l)) >= 2 {
        return Some("raw_host_config:apache");
    }
    if count(&fstab_line) >= 2 {
        return Some("raw_host_config:fstab");
    }
    if count(&hosts_line) >= 3 {
        return Some("raw_host_config:hosts");
    }
    if count(&|l| SUDOERS.iter().any(|re| re.is_match(l))) >= 2 {
        return Some("raw_host_config:sudoers");
    }
    if count(&|l| IPTABLES.iter().any(|re| re.is_match(l))) >= 3 {
        return Some("raw_host_config:iptables");
    }
    if count(&|l| NFT_TABLE_OR_CHAIN.is_match(l)) >= 1
        && count(&|l| NFT_TABLE_OR_CHAIN.is_match(l) || NFT_RULE.is_match(l)) >= 3
    {
        return Some("raw_host_config:nftables");
    }
    if count(&cron_line) >= 2 {
        return Some("raw_host_config:crontab");
    }
    if count(&|l| INI_SECTION.is_match(l)) >= 1 && count(&|l| INI_KEY.is_match(l)) >= 2 {
        return Some("raw_host_config:ini");
    }
    if count(&|l| ENV_LINE.is_match(l)) >= 3 {
        return Some("raw_host_config:env");
    }
    None
}

fn raw_yaml(text: &str) -> Option<&'static str> {
    let docs = yaml::load(text)?;
    for doc in docs.iter().take(64) {
        if compose(doc, false).is_some() || compose_fragment(doc) {
            return Some("raw_compose");
        }
        if doc.get("apiVersion").and_then(Node::scalar).is_some()
            && doc.get("kind").and_then(Node::scalar).is_some()
            && (doc.get("metadata").is_some() || doc.get("spec").is_some())
        {
            if doc.get("kind").and_then(Node::scalar) == Some("RepairBot") {
                return Some("raw_host_config:repair_bot");
            }
            return Some("raw_host_config:kubernetes_manifest");
        }
        if playbook(doc).is_some() {
            return Some("raw_host_config:ansible_playbook");
        }
        if task_list(doc, true).is_some() {
            return Some("raw_host_config:ansible_tasks");
        }
        if repair_bot(doc).is_some() {
            return Some("raw_host_config:repair_bot");
        }
    }
    None
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern")
}

static NGINX_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(server|location\s+[^{]+|upstream\s+\S+|http|events|stream|map\s+[^{]+|if\s*\(.*\))\s*\{$",
    )
});
static NGINX_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(listen|server_name|root|index|proxy_pass|proxy_set_header|ssl_certificate|ssl_certificate_key|ssl_protocols|return|rewrite|try_files|add_header|access_log|error_log|include|client_max_body_size|worker_processes|worker_connections|gzip|server|fastcgi_pass|proxy_http_version|keepalive_timeout|sendfile)\s+[^;]*;$",
    )
});
static APACHE_TAG: LazyLock<Regex> =
    LazyLock::new(|| re(r"^</?(VirtualHost|Directory|Location|IfModule|Files)(\s[^>]*)?>$"));
static APACHE_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(ServerName|ServerAlias|ServerAdmin|DocumentRoot|ErrorLog|CustomLog|ProxyPass|ProxyPassReverse|ProxyPreserveHost|RewriteEngine|RewriteRule|RewriteCond|SSLEngine|SSLCertificateFile|SSLCertificateKeyFile|Require|AllowOverride|Options|Listen|Redirect|Header)\s+\S",
    )
});
static SUDOERS: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        re(r"^Defaults([:@>!]\S+)?\s+!?[a-z_]+(\s*[+-]?=.*)?(\s*,\s*!?[a-z_]+(\s*[+-]?=.*)?)*$"),
        re(
            r"^[%+]?[A-Za-z0-9_.-]+\s+[A-Za-z0-9_.,!-]+\s*=\s*(\([^)]*\)\s*)?((NO)?PASSWD:|(NO)?SETENV:|(NO)?EXEC:|\s)*\s*(ALL|/\S+)",
        ),
        re(r"^(Cmnd|User|Host|Runas)_Alias\s+[A-Z0-9_]+\s*="),
        re(r"^[@#]includedir\s+/\S+$"),
    ]
});
static IPTABLES: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        re(r"^\*(filter|nat|mangle|raw|security)$"),
        re(r"^:[A-Za-z0-9_-]+\s+(ACCEPT|DROP|RETURN|-)\s+\[\d+:\d+\]$"),
        re(r"^-[ANIP]\s+[A-Za-z0-9_-]+(\s+\S+)*$"),
        re(r"^COMMIT$"),
    ]
});
static NFT_TABLE_OR_CHAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(table\s+(ip|ip6|inet|arp|bridge|netdev)\s+\S+|chain\s+\S+)\s*\{$"));
static NFT_RULE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(type\s+(filter|nat|route)\s+hook\s+\S+.*|.*\b(tcp|udp|ip|ip6|ct|iif|iifname|oif|oifname|meta)\b.*\b(accept|drop|reject|counter|masquerade|dnat|snat|jump\s+\S+)\s*;?|policy\s+(accept|drop)\s*;)$",
    )
});
static INI_SECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^\[[A-Za-z0-9 _.:\x22-]+\]$"));
static INI_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.-]+\s*=\s*\S?"));
static ENV_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"^(export\s+)?[A-Z_][A-Z0-9_]*=(\S.*)?$"));

fn is_yes_no(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "no")
}

fn is_number(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// A `Keyword value` line of sshd_config with a value that fits the keyword.
fn sshd_line(line: &str) -> bool {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let [keyword, rest @ ..] = tokens.as_slice() else {
        return false;
    };
    let Some(value) = rest.first() else {
        return false;
    };
    let single = rest.len() == 1;
    match keyword.to_ascii_lowercase().as_str() {
        "port"
        | "clientaliveinterval"
        | "clientalivecountmax"
        | "maxauthtries"
        | "maxsessions"
        | "logingracetime" => single && is_number(value.trim_end_matches('s')),
        "permitrootlogin" => {
            single
                && matches!(
                    value.to_ascii_lowercase().as_str(),
                    "yes"
                        | "no"
                        | "prohibit-password"
                        | "without-password"
                        | "forced-commands-only"
                )
        }
        "passwordauthentication"
        | "pubkeyauthentication"
        | "challengeresponseauthentication"
        | "kbdinteractiveauthentication"
        | "usepam"
        | "x11forwarding"
        | "permitemptypasswords"
        | "printmotd"
        | "usedns"
        | "allowtcpforwarding"
        | "gatewayports"
        | "tcpkeepalive"
        | "strictmodes"
        | "permittunnel"
        | "allowagentforwarding" => single && is_yes_no(value),
        "listenaddress" => {
            single && (value.parse::<std::net::IpAddr>().is_ok() || value.contains(':'))
        }
        "hostkey" | "authorizedkeysfile" | "include" | "pidfile" => rest
            .iter()
            .all(|p| p.starts_with('/') || p.starts_with('.') || p.starts_with('%')),
        "subsystem" => rest.len() >= 2 && rest[1].starts_with('/'),
        "addressfamily" => single && matches!(*value, "any" | "inet" | "inet6"),
        "loglevel" => {
            single
                && matches!(
                    *value,
                    "QUIET"
                        | "FATAL"
                        | "ERROR"
                        | "INFO"
                        | "VERBOSE"
                        | "DEBUG"
                        | "DEBUG1"
                        | "DEBUG2"
                        | "DEBUG3"
                )
        }
        "syslogfacility" => single && (value.starts_with("AUTH") || value.starts_with("LOCAL")),
        "protocol" => single && matches!(*value, "1" | "2" | "2,1" | "1,2"),
        "acceptenv" => rest.iter().all(|v| {
            v.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'*')
        }),
        "allowusers" | "allowgroups" | "denyusers" | "denygroups" => rest.iter().all(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.@*?".contains(&b))
        }),
        _ => false,
    }
}

const FS_TYPES: [&str; 24] = [
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "vfat",
    "ntfs",
    "exfat",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "tmpfs",
    "proc",
    "sysfs",
    "swap",
    "zfs",
    "auto",
    "devpts",
    "iso9660",
    "overlay",
    "fuse.sshfs",
    "9p",
    "none",
];

fn fstab_line(line: &str) -> bool {
    let t: Vec<&str> = line.split_whitespace().collect();
    if !(4..=6).contains(&t.len()) {
        return false;
    }
    let device = t[0];
    let device_ok = device.starts_with("/dev/")
        || ["UUID=", "LABEL=", "PARTUUID=", "PARTLABEL="]
            .iter()
            .any(|p| device.starts_with(p))
        || device.starts_with("//")
        || device.contains(":/")
        || matches!(
            device,
            "tmpfs" | "proc" | "sysfs" | "none" | "overlay" | "devpts"
        );
    let mount_ok = t[1].starts_with('/') || matches!(t[1], "none" | "swap");
    let numbers_ok = t[4..].iter().all(|n| is_number(n));
    device_ok && mount_ok && FS_TYPES.contains(&t[2]) && numbers_ok
}

fn hosts_line(line: &str) -> bool {
    let mut tokens = line.split_whitespace();
    let Some(ip) = tokens.next() else {
        return false;
    };
    if ip.parse::<std::net::IpAddr>().is_err() {
        return false;
    }
    let names: Vec<&str> = tokens.take_while(|t| !t.starts_with('#')).collect();
    !names.is_empty()
        && names.iter().all(|n| {
            n.bytes().any(|b| b.is_ascii_alphabetic())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
                && n.as_bytes()[0].is_ascii_alphanumeric()
        })
}

fn cron_field(field: &str) -> bool {
    !field.is_empty()
        && (field
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*/,-".contains(&b))
            || field.len() == 3 && field.bytes().all(|b| b.is_ascii_alphabetic()))
}

fn cron_line(line: &str) -> bool {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    if let Some(first) = tokens.first()
        && first.starts_with('@')
    {
        return matches!(
            *first,
            "@reboot"
                | "@yearly"
                | "@annually"
                | "@monthly"
                | "@weekly"
                | "@daily"
                | "@midnight"
                | "@hourly"
        ) && tokens.len() >= 2;
    }
    tokens.len() >= 6
        && tokens[..5].iter().all(|f| cron_field(f))
        && tokens[..2]
            .iter()
            .all(|f| f.bytes().any(|b| b.is_ascii_digit() || b == b'*'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kind(name: &str, text: &str) -> Option<ConfigKind> {
        classify(name, text).map(|d| d.kind)
    }

    #[test]
    fn compose_short_and_long_volumes() {
        let text = "services:\n  a:\n    image: x\n    volumes:\n      - data:/data\n      - ./conf:/etc/conf:ro\n";
        let d = classify("c.yml", text).unwrap();
        assert_eq!(d.kind, ConfigKind::DockerCompose);
        assert!(!d.write_capable);
        let rw = "services:\n  a:\n    image: x\n    volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n";
        assert!(classify("c.yml", rw).unwrap().write_capable);
        let ro = "services:\n  a:\n    image: x\n    volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n        read_only: true\n";
        assert!(!classify("c.yml", ro).unwrap().write_capable);
        let sock = "services:\n  a:\n    image: x\n    volumes: ['/var/run/docker.sock:/var/run/docker.sock:ro']\n";
        assert!(classify("c.yml", sock).unwrap().write_capable);
        let root = "services:\n  a:\n    image: x\n    user: \"0:0\"\n";
        assert!(classify("c.yml", root).unwrap().write_capable);
    }

    #[test]
    fn compose_merge_keys_and_extensions() {
        let text = "x-base: &base\n  image: busybox\n  privileged: true\nservices:\n  a:\n    <<: *base\n  b:\n    image: y\n";
        let d = classify("c.yml", text).unwrap();
        assert_eq!(d.service_scope, "a,b");
        assert_eq!(d.label, "compose: a, b");
        assert!(d.write_capable);
    }

    #[test]
    fn not_compose() {
        // services as a list (GitLab CI), unknown top-level keys (a workflow), no service keys.
        assert_eq!(kind("x.yml", "services:\n  - postgres\n  - redis\n"), None);
        assert_eq!(
            kind(
                "x.yml",
                "on: push\njobs:\n  t:\n    services:\n      pg:\n        image: postgres\n"
            ),
            None
        );
        assert_eq!(
            kind(
                "x.yml",
                "stages: [a]\nservices:\n  pg:\n    image: postgres\n"
            ),
            None
        );
        assert_eq!(kind("x.yml", "services:\n  pg:\n    colour: blue\n"), None);
        assert_eq!(kind("x.yml", "services:\n  pg:\n    image: [\n"), None);
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='z' {
            text.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        text.push_str("services:\n  s:\n    image: x\n");
        assert!(yaml::load(&text).is_none());
        assert_eq!(classify("c.yml", &text), None);
        assert_eq!(raw_payload(&text), None);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "- ".repeat(10_000) + "x\n";
        assert!(yaml::load(&text).is_none());
        let flow = "[".repeat(300) + &"]".repeat(300);
        assert!(yaml::load(&flow).is_none());
        let toml = format!(
            "[repair_bot.{}]\ncheck = 1\naction = 2\n",
            "a.".repeat(5000)
        );
        assert_eq!(classify("r.toml", &toml), None);
    }

    #[test]
    fn systemd_kinds_and_names() {
        let timer = "[Unit]\nDescription=Nightly backup\n\n[Timer]\nOnCalendar=daily\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n";
        let d = classify("systemd/backup.timer", timer).unwrap();
        assert_eq!(d.kind, ConfigKind::SystemdTimer);
        assert_eq!(d.service_scope, "backup.service,backup.timer");
        assert!(d.write_capable);

        let dropin = "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd://\n";
        let d = classify("docker.service.d/override.conf", dropin).unwrap();
        assert_eq!(d.kind, ConfigKind::SystemdService);
        assert_eq!(d.service_scope, "docker.service");
        assert_eq!(d.label, "docker.service.d/override.conf");
        assert!(d.write_capable);

        let sandboxed = "[Service]\nExecStart=/usr/bin/exporter\nProtectSystem=strict\n";
        assert!(!classify("e.service", sandboxed).unwrap().write_capable);
        let as_user = "[Service]\nUser=app\nExecStart=/usr/bin/app\n";
        assert!(!classify("a.service", as_user).unwrap().write_capable);
        let as_user_rm =
            "[Service]\nUser=app\nExecStartPre=-/bin/rm -f /run/app.pid\nExecStart=/usr/bin/app\n";
        assert!(classify("a.service", as_user_rm).unwrap().write_capable);
        let socket = "[Socket]\nListenStream=8080\n[Install]\nWantedBy=sockets.target\n";
        let d = classify("app.socket", socket).unwrap();
        assert_eq!(d.kind, ConfigKind::SystemdSocket);
        assert_eq!(d.service_scope, "app.service,app.socket");
        assert!(!d.write_capable);
        let mount = "[Mount]\nWhat=/dev/sdb1\nWhere=/data\n";
        assert_eq!(kind("data.mount", mount), Some(ConfigKind::SystemdUnit));
    }

    #[test]
    fn not_systemd() {
        assert_eq!(
            kind(
                "README.md",
                "# Units\n\nEdit the [Service] section:\n\n[Service]\nUser=x\n"
            ),
            None
        );
        assert_eq!(kind("x.ini", "[Service]\ncolour=blue\n"), None);
        assert_eq!(
            kind("x.network", "[Match]\nName=eth0\n[Network]\nDHCP=yes\n"),
            None
        );
        assert_eq!(kind(".env", "A=1\nB=2\n"), None);
    }

    #[test]
    fn playbooks_and_task_lists() {
        let play = "- name: Web\n  hosts: web, edge\n  become: true\n  roles:\n    - nginx\n    - role: common\n  tasks:\n    - ansible.builtin.service:\n        name: nginx\n        state: started\n";
        let c = classify_full("site.yml", play).unwrap();
        assert_eq!(c.detected.kind, ConfigKind::AnsiblePlaybook);
        assert_eq!(c.detected.host_hint.as_deref(), Some("edge,web"));
        assert_eq!(c.detected.service_scope, "common,nginx");
        assert_eq!(c.role_refs.len(), 2);
        let tasks =
            "- name: install\n  apt:\n    name: nginx\n- service: name=nginx state=started\n";
        assert_eq!(classify("main.yml", tasks), None);
        let services = task_file_services(tasks).unwrap();
        assert_eq!(services.into_iter().collect::<Vec<_>>(), ["nginx"]);
        assert_eq!(task_file_services("- 1\n- 2\n"), None);
        assert_eq!(task_file_services("[]\n"), None);
    }

    #[test]
    fn repair_bots_in_three_syntaxes() {
        let yaml = "repair_bot:\n  name: heal\n  rules:\n    - check: {http: 'http://x'}\n      action: {restart: grafana}\n";
        let d = classify("r.yaml", yaml).unwrap();
        assert_eq!(d.kind, ConfigKind::RepairBotConfig);
        assert_eq!(d.label, "repair bot: heal");
        let json = r#"{"remediation": {"rules": [{"probe": "tcp:80", "action": "restart", "service": "web"}]}}"#;
        let d = classify("r.json", json).unwrap();
        assert_eq!(d.service_scope, "web");
        let toml = "[autoheal]\nhosts = [\"h1\"]\n[[autoheal.rules]]\ncheck = \"disk\"\naction = \"prune\"\nunit = \"docker.service\"\n";
        let d = classify("r.toml", toml).unwrap();
        assert_eq!(d.host_hint.as_deref(), Some("h1"));
        assert_eq!(d.service_scope, "docker.service");
        // A key without rules is not a repair bot.
        assert_eq!(kind("r.yaml", "repair_bot:\n  enabled: false\n"), None);
    }

    #[test]
    fn raw_payload_positives() {
        let cases = [
            (
                "services:\n  web:\n    image: nginx\n    ports:\n      - 80:80\n",
                "raw_compose",
            ),
            (
                "image: nginx:1.25\nports:\n  - 80:80\nrestart: always\n",
                "raw_compose",
            ),
            (
                "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/x\n",
                "raw_systemd_unit",
            ),
            (
                "Here it is:\n```ini\n[Service]\nUser=root\nExecStart=/bin/x\n```\n",
                "raw_systemd_unit",
            ),
            (
                "Port 22\nPermitRootLogin no\nPasswordAuthentication no\n",
                "raw_host_config:sshd_config",
            ),
            (
                "UUID=abcd / ext4 defaults 0 1\n/dev/sdb1 /data xfs defaults 0 2\n",
                "raw_host_config:fstab",
            ),
            (
                "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
                "raw_host_config:iptables",
            ),
            (
                "DB_HOST=db\nDB_USER=app\nexport DB_PORT=5432\n",
                "raw_host_config:env",
            ),
            (
                "127.0.0.1 localhost\n10.0.0.2 web1 web1.lan\n10.0.0.3 db1\n",
                "raw_host_config:hosts",
            ),
            (
                "Defaults env_reset\n%sudo ALL=(ALL:ALL) ALL\ndeploy ALL=(root) NOPASSWD: /usr/bin/systemctl\n",
                "raw_host_config:sudoers",
            ),
            (
                "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    tcp dport 22 accept\n  }\n}\n",
                "raw_host_config:nftables",
            ),
            (
                "0 3 * * * root /usr/local/bin/backup\n*/5 * * * * /usr/bin/check\n",
                "raw_host_config:crontab",
            ),
            (
                "server {\n  listen 443 ssl;\n  server_name example.org;\n  location / {\n    proxy_pass http://app;\n  }\n}\n",
                "raw_host_config:nginx",
            ),
            (
                "<VirtualHost *:80>\nServerName example.org\nDocumentRoot /var/www\n</VirtualHost>\n",
                "raw_host_config:apache",
            ),
            (
                "- name: restart\n  ansible.builtin.systemd:\n    name: nginx\n    state: restarted\n",
                "raw_host_config:ansible_tasks",
            ),
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
                "raw_host_config:kubernetes_manifest",
            ),
            (
                "[mysqld]\nbind-address = 0.0.0.0\nport = 3306\n",
                "raw_host_config:ini",
            ),
        ];
        for (text, label) in cases {
            assert_eq!(raw_payload(text), Some(label), "{text}");
        }
    }

    #[test]
    fn raw_payload_negatives() {
        for text in [
            "",
            "docker-compose.yml@3f2a1bc",
            "See the [Service] section of backup.service; User= is set there.",
            "https://git.example.org/ops/compose/blob/3f2a1bc/docker-compose.yml",
            "[\"docker-compose.yml@3f2a1bc\", \"ticket:OPS-1234\", \"sha256:9f86d08\"]",
            "[\n  \"docker-compose.yml@3f2a1bc\",\n  \"ticket:OPS-1234\",\n  \"sha256:9f86d08\"\n]",
            "We restart the services during the Saturday window.\nThe rollback owner is the platform team.\nPost-check: dashboards green.",
            "Port 22 is open to the bastion only.\nProtocol changes go through review.\nMatch rules are unchanged.",
            "owner: platform-team\ndecision: approve\nwindow: sat 02:00-04:00\n",
            "- ticket: OPS-1\n- commit: 3f2a1bc\n- artifact: build-42\n",
        ] {
            assert_eq!(raw_payload(text), None, "{text}");
        }
    }

    #[test]
    fn lines_and_prose_never_panic() {
        for text in [
            "\u{feff}",
            "\\",
            "[",
            "]",
            "=",
            "---\n...\n---",
            "&a *a",
            "? : -",
            "\t\t:\n",
            "- &x\n- *x\n- *y",
        ] {
            let _ = classify("x", text);
            let _ = raw_payload(text);
        }
    }
}
