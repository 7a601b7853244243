//! Named formats (`format => 'pve-node'` etc.) with the texts their PVE validators `die` with.
//!
//! Texts and regexes are those of pve-common `src/PVE/JSONSchema.pm` (`pve_verify_node_name`,
//! `pve_verify_vmid`, `pve_verify_configid`, `pve_verify_tag`, `pve_verify_dns_name`,
//! `parse_id`, ...). Each message ends in `\n` because PVE `die`s with it and the `\n` is
//! kept in the error map. Formats not listed here are accepted (only the type is checked).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

use crate::validate::split_list;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns below are literals known to compile; a failure would be a programming
    // error caught by the unit tests, so fall back to a never-matching regex rather than panic.
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| never()))
}

fn never() -> Regex {
    #[allow(clippy::unwrap_used)]
    Regex::new(r"[^\s\S]").unwrap()
}

/// Checks `value` against a named format. `Err` carries PVE's message (ending in `\n`).
pub(crate) fn check_named(format: &str, value: &str) -> Result<(), String> {
    if format == "regex" {
        return Ok(());
    }
    // PVE: `$format =~ m/^(.*?)(?:-(list|opt))?$/`
    let (name, kind) = if let Some(n) = format.strip_suffix("-list") {
        (n, "list")
    } else if let Some(n) = format.strip_suffix("-opt") {
        (n, "opt")
    } else {
        (format, "none")
    };
    match kind {
        // Note: PVE allows empty lists.
        "list" => split_list(value)
            .into_iter()
            .try_for_each(|v| check_single(name, v)),
        "opt" if value.is_empty() => Ok(()),
        _ => check_single(name, value),
    }
}

fn check_single(name: &str, v: &str) -> Result<(), String> {
    static NODE: OnceLock<Regex> = OnceLock::new();
    static VMID: OnceLock<Regex> = OnceLock::new();
    static CONFIGID: OnceLock<Regex> = OnceLock::new();
    static TAG: OnceLock<Regex> = OnceLock::new();
    static ID: OnceLock<Regex> = OnceLock::new();
    static BRIDGE: OnceLock<Regex> = OnceLock::new();
    static MAC: OnceLock<Regex> = OnceLock::new();
    static URLENC: OnceLock<Regex> = OnceLock::new();
    static TASKSTATUS: OnceLock<Regex> = OnceLock::new();
    let bad: Option<String> = match name {
        "pve-node" => (!re(&NODE, r"\A([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\n?\z").is_match(v))
            .then(|| String::from("value does not look like a valid node name\n")),
        "pve-vmid" => (!re(&VMID, r"\A[1-9][0-9]{2,8}\n?\z").is_match(v))
            .then(|| String::from("value does not look like a valid VM ID\n")),
        "pve-configid" => (!re(&CONFIGID, r"(?i)\A[a-z][a-z0-9_-]+\n?\z").is_match(v))
            .then(|| format!("invalid configuration ID '{v}'\n")),
        "pve-tag" => (!re(&TAG, r"(?i)\A[a-z0-9_][a-z0-9_\-+.]*\n?\z").is_match(v))
            .then(|| String::from("invalid characters in tag\n")),
        "dns-name" => {
            (!is_dns_name(v)).then(|| String::from("value does not look like a valid DNS name\n"))
        }
        "pve-storage-id" => (!re(&ID, r"(?i)\A[a-z][a-z0-9\-_.]*[a-z0-9]\n?\z").is_match(v))
            .then(|| format!("storage ID '{v}' contains illegal characters\n")),
        "pve-bridge-id" => (!re(&BRIDGE, r"\A[-_.\w\d]+\n?\z").is_match(v))
            .then(|| format!("invalid bridge ID '{v}'\n")),
        "mac-addr" => (!re(&MAC, r"(?i)\A[a-f0-9][02468ace](?::[a-f0-9]{2}){5}\n?\z").is_match(v))
            .then(|| String::from("value does not look like a valid unicast MAC address\n")),
        "ipv4" => (v.parse::<Ipv4Addr>().is_err())
            .then(|| String::from("value does not look like a valid IPv4 address\n")),
        "ipv6" => (v.parse::<Ipv6Addr>().is_err())
            .then(|| String::from("value does not look like a valid IPv6 address\n")),
        "ip" => (v.parse::<std::net::IpAddr>().is_err())
            .then(|| String::from("value does not look like a valid IP address\n")),
        "address" => (v.parse::<std::net::IpAddr>().is_err() && !is_dns_name(v))
            .then(|| format!("value does not look like a valid address: {v}\n")),
        "CIDRv4" => (!is_cidr4(v))
            .then(|| String::from("value does not look like a valid IPv4 CIDR network\n")),
        "CIDRv6" => (!is_cidr6(v))
            .then(|| String::from("value does not look like a valid IPv6 CIDR network\n")),
        "CIDR" => (!is_cidr4(v) && !is_cidr6(v))
            .then(|| String::from("value does not look like a valid CIDR network\n")),
        "pve-startup-order" => {
            (!is_startup_order(v)).then(|| String::from("unable to parse startup options\n"))
        }
        "urlencoded" => (!re(&URLENC, r"\A[-%a-zA-Z0-9_.!~*'()]*\n?\z").is_match(v))
            .then(|| format!("invalid urlencoded string: {v}\n")),
        "pve-task-status-type" => (!re(&TASKSTATUS, r"(?i)\A(ok|error|warning|unknown)\n?\z")
            .is_match(v))
        .then(|| format!("invalid status '{v}'\n")),
        "disk-size" => (parse_size(v).is_none())
            .then(|| format!("value does not look like a valid disk size: {v}\n")),
        // Everything else: accepted; the type was already checked.
        _ => None,
    };
    match bad {
        Some(msg) => Err(msg),
        None => Ok(()),
    }
}

fn is_dns_name(v: &str) -> bool {
    static DNS: OnceLock<Regex> = OnceLock::new();
    let name = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)";
    re(&DNS, &format!(r"\A({name}\.)*{name}\n?\z")).is_match(v)
}

fn is_cidr4(v: &str) -> bool {
    match v.split_once('/') {
        Some((ip, bits)) => {
            ip.parse::<Ipv4Addr>().is_ok() && bits.parse::<u32>().is_ok_and(|b| b > 7 && b <= 32)
        }
        None => false,
    }
}

fn is_cidr6(v: &str) -> bool {
    match v.split_once('/') {
        Some((ip, bits)) => {
            ip.parse::<Ipv6Addr>().is_ok() && bits.parse::<u32>().is_ok_and(|b| b > 7 && b <= 128)
        }
        None => false,
    }
}

fn is_startup_order(v: &str) -> bool {
    // PVE::JSONSchema::pve_parse_startup_order: `return undef if !$value;`
    if v.is_empty() || v == "0" {
        return false;
    }
    v.split(',').all(|p| {
        let p = p.trim_matches(|c: char| c.is_whitespace());
        if p.is_empty() {
            return true;
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(p)
            || p.strip_prefix("order=").is_some_and(digits)
            || p.strip_prefix("up=").is_some_and(digits)
            || p.strip_prefix("down=").is_some_and(digits)
    })
}

/// `PVE::JSONSchema::parse_size`: `\d+(\.\d+)?[KMGT]?` to bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let (num, mult) = match v.chars().last()? {
        'K' => (&v[..v.len() - 1], 1u64 << 10),
        'M' => (&v[..v.len() - 1], 1 << 20),
        'G' => (&v[..v.len() - 1], 1 << 30),
        'T' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_vmid() {
        assert!(check_named("pve-node", "pve-01").is_ok());
        assert_eq!(
            check_named("pve-node", "-bad").unwrap_err(),
            "value does not look like a valid node name\n"
        );
        assert!(check_named("pve-vmid", "100").is_ok());
        assert_eq!(
            check_named("pve-vmid", "99").unwrap_err(),
            "value does not look like a valid VM ID\n"
        );
    }

    #[test]
    fn lists() {
        assert!(check_named("pve-tag-list", "a;b,c d").is_ok());
        assert!(check_named("pve-tag-list", "").is_ok());
        assert_eq!(
            check_named("pve-tag-list", "ok;b@d").unwrap_err(),
            "invalid characters in tag\n"
        );
        assert!(check_named("pve-configid-list", "cores,memory").is_ok());
        assert_eq!(
            check_named("pve-configid-list", "cores,1x").unwrap_err(),
            "invalid configuration ID '1x'\n"
        );
    }

    #[test]
    fn misc() {
        assert!(check_named("dns-name", "web.example.com").is_ok());
        assert!(check_named("dns-name", "web_1").is_err());
        assert!(check_named("pve-startup-order", "order=1,up=30").is_ok());
        assert!(check_named("pve-startup-order", "first").is_err());
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("x"), None);
        assert!(check_named("some-unknown-format", "anything").is_ok());
    }
}
