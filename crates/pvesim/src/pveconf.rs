//! Guest config files rendered and parsed as PVE does.
//!
//! - Writing: pve-container `PVE::LXC::Config::write_pct_config` and qemu-server
//!   `PVE::QemuServer::write_vm_config`: the description as `#` comment lines first (each line
//!   through `PVE::Tools::encode_text`), then `key: value` lines in sorted key order, then the
//!   pending section (`[pve:pending]` for LXC, `[PENDING]` for QEMU) rendered the same way,
//!   with pending deletions as a `delete:` key (`!` marks a forced delete).
//! - Reading: `parse_pct_config` appends `"\n"` to every description line (so a description
//!   reads back with a trailing newline); `parse_vm_config` does the same but then strips
//!   trailing whitespace (`$descr =~ s/\s+$//`).
//! - `digest` is `Digest::SHA::sha1_hex` of the file text.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::config::GuestKind;

/// A parsed config: current values, pending values and pending deletions (key → force).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedConf {
    /// The current section (description included, decoded).
    pub main: BTreeMap<String, String>,
    /// The pending section's values.
    pub pending: BTreeMap<String, String>,
    /// Pending deletions; `true` = forced (`!key`).
    pub pending_delete: BTreeMap<String, bool>,
}

/// `PVE::Tools::encode_text`: URI-escape everything outside `\x20-\x39\x3b-\x7e` (so control
/// characters, non-ASCII bytes and `:`) of the UTF-8 bytes. Note `%` itself is not escaped.
pub fn encode_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x39).contains(&b) || (0x3b..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `PVE::Tools::decode_text`: URI-unescape, then decode UTF-8.
pub fn decode_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Perl's `split(/\n/, $s)`: trailing empty fields are dropped.
fn perl_split_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split('\n').collect();
    while v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

fn render_section(
    kind: GuestKind,
    conf: &BTreeMap<String, String>,
    delete: Option<&BTreeMap<String, bool>>,
    is_pending: bool,
) -> String {
    let mut raw = String::new();
    if let Some(descr) = conf.get("description") {
        match kind {
            // `my $descr = $conf->{description} || '';` (Perl: "0" is false)
            GuestKind::Lxc => {
                if !descr.is_empty() && descr != "0" {
                    for l in perl_split_lines(descr) {
                        raw.push('#');
                        raw.push_str(&encode_text(l));
                        raw.push('\n');
                    }
                }
            }
            GuestKind::Qemu => {
                if !descr.is_empty() && descr != "0" {
                    for l in perl_split_lines(descr) {
                        raw.push('#');
                        raw.push_str(&encode_text(l));
                        raw.push('\n');
                    }
                } else if is_pending {
                    raw.push_str("#\n");
                }
            }
        }
    }
    let delete_value = delete.filter(|d| !d.is_empty()).map(|d| {
        d.iter()
            .map(|(k, force)| if *force { format!("!{k}") } else { k.clone() })
            .collect::<Vec<_>>()
            .join(",")
    });
    let mut keys: Vec<&str> = conf.keys().map(String::as_str).collect();
    if delete_value.is_some() {
        keys.push("delete");
        keys.sort_unstable();
    }
    for k in keys {
        if matches!(k, "digest" | "description" | "pending" | "snapshots") {
            continue;
        }
        let v = if k == "delete" {
            match &delete_value {
                Some(d) => d.as_str(),
                None => continue,
            }
        } else {
            match conf.get(k) {
                Some(v) => v.as_str(),
                None => continue,
            }
        };
        raw.push_str(k);
        raw.push_str(": ");
        raw.push_str(v);
        raw.push('\n');
    }
    raw
}

/// Renders the config file text.
pub fn render(kind: GuestKind, c: &ParsedConf) -> String {
    let mut raw = render_section(kind, &c.main, None, false);
    if !c.pending.is_empty() || !c.pending_delete.is_empty() {
        raw.push_str(match kind {
            GuestKind::Lxc => "\n[pve:pending]\n",
            GuestKind::Qemu => "\n[PENDING]\n",
        });
        raw.push_str(&render_section(
            kind,
            &c.pending,
            Some(&c.pending_delete),
            true,
        ));
    }
    raw
}

/// Parses config file text.
pub fn parse(kind: GuestKind, raw: &str) -> ParsedConf {
    let mut res = ParsedConf::default();
    let mut in_pending = false;
    let mut descr: Option<String> = None;
    fn finish(kind: GuestKind, descr: &mut Option<String>, conf: &mut BTreeMap<String, String>) {
        if let Some(d) = descr.take() {
            match kind {
                // `$conf->{description} = $descr if $descr;`
                GuestKind::Lxc => {
                    if !d.is_empty() && d != "0" {
                        conf.insert("description".into(), d);
                    }
                }
                // `$descr =~ s/\s+$//; $conf->{description} = $descr;`
                GuestKind::Qemu => {
                    conf.insert("description".into(), d.trim_end().to_string());
                }
            }
        }
    }
    for line in raw.split('\n') {
        if line.trim().is_empty() {
            continue;
        }
        let header = match kind {
            GuestKind::Lxc => line.trim_end().eq_ignore_ascii_case("[pve:pending]"),
            GuestKind::Qemu => line.trim_end().eq_ignore_ascii_case("[PENDING]"),
        };
        if header {
            finish(kind, &mut descr, &mut res.main);
            in_pending = true;
            continue;
        }
        let target = if in_pending {
            &mut res.pending
        } else {
            &mut res.main
        };
        if let Some(rest) = line.strip_prefix('#') {
            let d = descr.get_or_insert_with(String::new);
            d.push_str(&decode_text(rest));
            d.push('\n');
            continue;
        }
        // `m/^([a-z][a-z_]*\d*):\s*(.+?)\s*$/`
        if let Some((k, v)) = line.split_once(':') {
            let key_ok = k.starts_with(|c: char| c.is_ascii_lowercase())
                && k.trim_end_matches(|c: char| c.is_ascii_digit())
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-');
            let v = v.trim();
            if key_ok && !v.is_empty() {
                if in_pending && k == "delete" {
                    for item in pve_schema::split_list(v) {
                        match item.strip_prefix('!') {
                            Some(key) => res.pending_delete.insert(key.to_string(), true),
                            None => res.pending_delete.insert(item.to_string(), false),
                        };
                    }
                } else {
                    target.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    if in_pending {
        finish(kind, &mut descr, &mut res.pending);
    } else {
        finish(kind, &mut descr, &mut res.main);
    }
    res
}

/// SHA-1 hex of the file text, as `$conf->{digest}`.
pub fn digest(raw: &str) -> String {
    hex::encode(Sha1::digest(raw.as_bytes()))
}

/// `PVE::GuestHelpers::get_unique_tags` with the default tag style: split like
/// `PVE::Tools::split_list`, drop case-insensitive duplicates (first wins), sort
/// case-insensitively (`ordering` default `alphabetical`), join with `;`.
pub fn unique_tags(tags: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut res: Vec<&str> = Vec::new();
    for t in pve_schema::split_list(tags) {
        if seen.insert(t.to_lowercase()) {
            res.push(t);
        }
    }
    res.sort_by_key(|t| t.to_lowercase());
    res.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        assert_eq!(encode_text("web: front end"), "web%3A front end");
        assert_eq!(encode_text("tab\there é"), "tab%09here %C3%A9");
        assert_eq!(encode_text("100%"), "100%");
        assert_eq!(decode_text("web%3A front%20end"), "web: front end");
        assert_eq!(decode_text(&encode_text("ünï: x")), "ünï: x");
    }

    #[test]
    fn lxc_description_gains_newline() {
        let mut c = ParsedConf::default();
        c.main.insert("description".into(), "hello\nworld".into());
        c.main.insert("cores".into(), "2".into());
        let raw = render(GuestKind::Lxc, &c);
        assert_eq!(raw, "#hello\n#world\ncores: 2\n");
        let p = parse(GuestKind::Lxc, &raw);
        assert_eq!(
            p.main.get("description").map(String::as_str),
            Some("hello\nworld\n")
        );
    }

    #[test]
    fn qemu_description_trimmed_and_pending() {
        let mut c = ParsedConf::default();
        c.main.insert("description".into(), "hello  \n".into());
        c.main.insert("name".into(), "vm".into());
        c.pending.insert("cores".into(), "4".into());
        c.pending_delete.insert("tablet".into(), true);
        let raw = render(GuestKind::Qemu, &c);
        assert_eq!(
            raw,
            "#hello  \nname: vm\n\n[PENDING]\ncores: 4\ndelete: !tablet\n"
        );
        let p = parse(GuestKind::Qemu, &raw);
        assert_eq!(p.main.get("description").map(String::as_str), Some("hello"));
        assert_eq!(p.pending.get("cores").map(String::as_str), Some("4"));
        assert_eq!(p.pending_delete.get("tablet"), Some(&true));
    }

    #[test]
    fn tags() {
        assert_eq!(unique_tags("b,a;B c"), "a;b;c");
        assert_eq!(unique_tags("Zeta alpha"), "alpha;Zeta");
        assert_eq!(unique_tags(""), "");
    }
}
