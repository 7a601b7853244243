//! Raw payloads: pasted configuration in an owner response (fenced blocks, compose, units, crontabs) that must be quarantined.

use super::*;

// Raw payloads.

/// Markdown fenced blocks (```` ``` ```` or `~~~`) in `text`.
pub(super) fn fenced_blocks(text: &str) -> Vec<&str> {
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

pub(super) fn raw_in(text: &str) -> Option<&'static str> {
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

pub(super) fn raw_yaml(text: &str) -> Option<&'static str> {
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

pub(super) fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern")
}

pub(super) static NGINX_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(server|location\s+[^{]+|upstream\s+\S+|http|events|stream|map\s+[^{]+|if\s*\(.*\))\s*\{$",
    )
});
pub(super) static NGINX_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(listen|server_name|root|index|proxy_pass|proxy_set_header|ssl_certificate|ssl_certificate_key|ssl_protocols|return|rewrite|try_files|add_header|access_log|error_log|include|client_max_body_size|worker_processes|worker_connections|gzip|server|fastcgi_pass|proxy_http_version|keepalive_timeout|sendfile)\s+[^;]*;$",
    )
});
pub(super) static APACHE_TAG: LazyLock<Regex> =
    LazyLock::new(|| re(r"^</?(VirtualHost|Directory|Location|IfModule|Files)(\s[^>]*)?>$"));
pub(super) static APACHE_DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(ServerName|ServerAlias|ServerAdmin|DocumentRoot|ErrorLog|CustomLog|ProxyPass|ProxyPassReverse|ProxyPreserveHost|RewriteEngine|RewriteRule|RewriteCond|SSLEngine|SSLCertificateFile|SSLCertificateKeyFile|Require|AllowOverride|Options|Listen|Redirect|Header)\s+\S",
    )
});
pub(super) static SUDOERS: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        re(r"^Defaults([:@>!]\S+)?\s+!?[a-z_]+(\s*[+-]?=.*)?(\s*,\s*!?[a-z_]+(\s*[+-]?=.*)?)*$"),
        re(
            r"^[%+]?[A-Za-z0-9_.-]+\s+[A-Za-z0-9_.,!-]+\s*=\s*(\([^)]*\)\s*)?((NO)?PASSWD:|(NO)?SETENV:|(NO)?EXEC:|\s)*\s*(ALL|/\S+)",
        ),
        re(r"^(Cmnd|User|Host|Runas)_Alias\s+[A-Z0-9_]+\s*="),
        re(r"^[@#]includedir\s+/\S+$"),
    ]
});
pub(super) static IPTABLES: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        re(r"^\*(filter|nat|mangle|raw|security)$"),
        re(r"^:[A-Za-z0-9_-]+\s+(ACCEPT|DROP|RETURN|-)\s+\[\d+:\d+\]$"),
        re(r"^-[ANIP]\s+[A-Za-z0-9_-]+(\s+\S+)*$"),
        re(r"^COMMIT$"),
    ]
});
pub(super) static NFT_TABLE_OR_CHAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(table\s+(ip|ip6|inet|arp|bridge|netdev)\s+\S+|chain\s+\S+)\s*\{$"));
pub(super) static NFT_RULE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(type\s+(filter|nat|route)\s+hook\s+\S+.*|.*\b(tcp|udp|ip|ip6|ct|iif|iifname|oif|oifname|meta)\b.*\b(accept|drop|reject|counter|masquerade|dnat|snat|jump\s+\S+)\s*;?|policy\s+(accept|drop)\s*;)$",
    )
});
pub(super) static INI_SECTION: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\[[A-Za-z0-9 _.:\x22-]+\]$"));
pub(super) static INI_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.-]+\s*=\s*\S?"));
pub(super) static ENV_LINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(export\s+)?[A-Z_][A-Z0-9_]*=(\S.*)?$"));

pub(super) fn is_yes_no(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "no")
}

pub(super) fn is_number(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// A `Keyword value` line of sshd_config with a value that fits the keyword.
pub(super) fn sshd_line(line: &str) -> bool {
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

pub(super) const FS_TYPES: [&str; 24] = [
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

pub(super) fn fstab_line(line: &str) -> bool {
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

pub(super) fn hosts_line(line: &str) -> bool {
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

pub(super) fn cron_field(field: &str) -> bool {
    !field.is_empty()
        && (field
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*/,-".contains(&b))
            || field.len() == 3 && field.bytes().all(|b| b.is_ascii_alphabetic()))
}

pub(super) fn cron_line(line: &str) -> bool {
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
