//! Execution requests and incident content: the phrase patterns looked for in an owner response's text.

use super::*;

pub(super) struct Pattern {
    pub(super) label: &'static str,
    pub(super) re: Regex,
}

/// Patterns with a one-pass prefilter: the individual regexes run only where the set
/// says they match.
pub(super) struct PatternSet {
    pub(super) set: Option<regex::RegexSet>,
    pub(super) patterns: Vec<Pattern>,
}

impl PatternSet {
    pub(super) fn matching<'s>(&'s self, text: &str) -> Vec<&'s Pattern> {
        match &self.set {
            Some(set) => set
                .matches(text)
                .into_iter()
                .filter_map(|i| self.patterns.get(i))
                .collect(),
            None => self.patterns.iter().collect(),
        }
    }
}

pub(super) fn patterns(list: &[(&'static str, &str)]) -> PatternSet {
    let patterns: Vec<Pattern> = list
        .iter()
        .filter_map(|(label, re)| match Regex::new(re) {
            Ok(re) => Some(Pattern { label, re }),
            Err(e) => {
                tracing::error!(%label, error = %e, "built-in pattern does not compile");
                None
            }
        })
        .collect();
    // Without the set every pattern runs: slower, never less thorough.
    let set = regex::RegexSet::new(patterns.iter().map(|p| p.re.as_str())).ok();
    PatternSet { set, patterns }
}

pub(super) static EXECUTION: LazyLock<PatternSet> = LazyLock::new(|| {
    patterns(&[
        (
            "ssh_write",
            r"(?i)\b(?:scp|rsync)\s+(?:-\S+\s+)*\S+\s+\S*@?[\w.-]+:\S*",
        ),
        (
            "ssh_read",
            r"(?i)\bssh\s+(?:-\S+\s+(?:\S+\s+)?)*(?:[\w.-]+@)?[\w.-]+\.[\w.-]+|\bssh\s+(?:-\S+\s+)*[\w.-]+@[\w.-]+|\b(?:please|pls|kindly|then|and)\s+ssh\b|\bssh\s+(?:into|to|onto)\s+\S+",
        ),
        (
            "docker_compose_up",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*(?:up|start|restart|run|exec|create)\b",
        ),
        (
            "docker_compose_down",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*(?:down|stop|rm|kill)\b",
        ),
        (
            "docker_compose_pull",
            r"(?i)\bdocker[- ]compose\s+(?:-\S+\s+(?:\S+\s+)?)*pull\b|\bdocker\s+pull\s+\S",
        ),
        (
            "docker_compose_up",
            r"(?i)\bdocker\s+(?:container\s+)?(?:run|start|restart|exec|update)\s+\S",
        ),
        (
            "docker_compose_down",
            r"(?i)\bdocker\s+(?:container\s+)?(?:stop|kill|rm|rmi)\s+\S",
        ),
        (
            "systemctl_restart",
            r"(?i)\bsystemctl\s+(?:--?\S+\s+)*(?:restart|try-restart|reload-or-restart|start|stop|kill|enable|disable|mask|unmask|isolate|reboot|poweroff)\b|\bservice\s+[\w@.-]+\s+(?:restart|stop|start)\b",
        ),
        (
            "systemctl_reload",
            r"(?i)\bsystemctl\s+(?:--?\S+\s+)*(?:reload|daemon-reload|daemon-reexec)\b|\bservice\s+[\w@.-]+\s+reload\b",
        ),
        (
            "repair_bot_execute",
            r"(?i)\brepair[-_ ]?bot\s+(?:run|execute|exec|trigger|apply|fix|heal)\b|\b(?:run|trigger|execute|start|kick off|invoke)\s+(?:the\s+)?repair[-_ ]?bot\b",
        ),
        (
            "ansible_apply",
            r"(?i)\bansible-playbook\b|\bansible\s+\S+\s+(?:.*\s)?(?:-m|--module-name|-a|--args|-b|--become)\b|\b(?:run|apply|execute|trigger)\s+(?:the\s+)?(?:ansible|playbook)\b",
        ),
        (
            "sudo_action",
            r"(?i)(?:^|[\s;&|`$(])sudo\s+\S|\bsu\s+-c\s|\bdoas\s+\S",
        ),
        (
            "host_file_write",
            r"(?i)(?:>>?|\btee\s+(?:-a\s+)?)\s*/(?:etc|usr|var|opt|srv|root|home|boot|lib)/|\b(?:rm\s+-[rRf]+|mkfs(?:\.\w+)?|dd\s+if=|sed\s+-i|truncate\s+-s|chmod\s+[0-7+=ugoa]|chown\s+\S+:?\S*\s+/)|\b(?:cp|mv|install|ln\s+-sf?)\s+\S+\s+/(?:etc|usr|opt|srv|boot)/",
        ),
        (
            "firewall_change",
            r"(?i)\b(?:iptables|ip6tables)\s+(?:-t\s+\w+\s+)?-[AIDRFXNP]\b|\bnft\s+(?:add|delete|insert|flush|replace)\b|\bufw\s+(?:allow|deny|delete|reject|enable|disable|insert)\b|\bfirewall-cmd\s+.*--(?:add|remove)-",
        ),
        (
            "restart_without_window",
            r"(?i)\b(?:please|pls|kindly|go ahead and|can you|could you|you can|just)\s+(?:\w+\s+){0,2}(?:restart|reboot|redeploy|bounce|recreate)\b|\b(?:restart|reboot|redeploy)\s+(?:it|them|the\s+\w+)\s+(?:now|immediately|asap|right away)\b",
        ),
        (
            "systemctl_reload",
            r"(?i)\b(?:please|pls|kindly|go ahead and|can you|could you)\s+(?:\w+\s+){0,2}reload\b",
        ),
    ])
});

/// The blocked actions `text` asks for, each with an excerpt (≤ 80 chars).
pub fn execution_requests(text: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for p in EXECUTION.matching(text) {
        if let Some(m) = p.re.find(text) {
            if out.iter().any(|(l, _)| *l == p.label) {
                continue;
            }
            out.push((p.label, excerpt(text, m.start(), m.end())));
        }
    }
    out
}

pub(super) fn excerpt(text: &str, start: usize, end: usize) -> String {
    let mut end = end.min(start + 80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[start..end].trim().to_owned()
}

pub(super) static INCIDENT: LazyLock<PatternSet> = LazyLock::new(|| {
    patterns(&[
        (
            "incident",
            r"(?i)\b(?:incident|outage|post-?mortem|sev[ -]?[0-4]\b|went down|was down|crashed|degraded|unavailable for)",
        ),
        (
            "silent_restart",
            r"(?i)\b(?:silent(?:ly)?\s+(?:re)?(?:start|restart|reload)(?:ed|s)?|restarted\s+(?:itself|automatically|on its own|without)|auto-?restart(?:ed|s)?|unexpected(?:ly)?\s+(?:re)?start(?:ed)?|restart\s+loop|crash[- ]?loop(?:ing)?|oom[- ]?kill(?:ed|er)?|reloaded\s+without)",
        ),
        (
            "port_incident",
            r"(?i)\b(?:port\s+(?:conflict|collision|clash|exhaustion|incident|hijack)|address already in use|eaddrinuse|port\s+\d{1,5}\s+(?:was|is|got)\s+(?:taken|occupied|in use|already used)|(?:host|container)\s+port\s+(?:drift|mismatch))",
        ),
        (
            "cold_start",
            r"(?i)\b(?:cold[- ]?(?:start|boot)|after\s+(?:a\s+)?(?:power\s+(?:loss|failure|outage|cut)|host\s+reboot|full\s+reboot)|did\s+not\s+come\s+back\s+(?:up\s+)?after\s+(?:a\s+)?reboot)",
        ),
    ])
});

pub(super) static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"(?i)\b(?:no|not|never|without|zero|nor|none)\b(?:\s+[\w-]+){0,2}\s*$").unwrap()
});

/// The incident signals in `text` (`incident`, `silent_restart`, `port_incident`,
/// `cold_start`), ignoring negated mentions ("no incident", "never restarted silently").
pub fn incident_signals(text: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for p in INCIDENT.matching(text) {
        let hit = p.re.find_iter(text).any(|m| {
            let mut from = m.start().saturating_sub(32);
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            // The clause before the match, from its last sentence boundary.
            let before = &text[from..m.start()];
            let clause = before
                .rsplit(['.', ';', '!', '?', '\n'])
                .next()
                .unwrap_or(before);
            !NEGATION.is_match(clause)
        });
        if hit && !out.contains(&p.label) {
            out.push(p.label);
        }
    }
    out
}
