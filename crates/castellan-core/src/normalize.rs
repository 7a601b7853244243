//! Normalised comparison: a value that survives a faithful Proxmox VE round-trip must
//! compare equal to what was written, or the agent would "fix" it forever.
//!
//! The quirks handled here, each seen in real deployments:
//! - an LXC `description` reads back with a trailing newline (every comment line is
//!   re-joined with `\n`), and QEMU strips trailing whitespace: compare trim-end;
//! - `tags` are stored split on any of `,; `, de-duplicated, sorted and `;`-joined, and
//!   compared case-insensitively, unless the datacenter's `tag-style` says otherwise;
//! - `memory` is whole MiB, and QEMU's is a property string `[current=]N`.

use serde::{Deserialize, Serialize};

use crate::units::MIB;

/// How tags are ordered when Proxmox VE stores them (datacenter.cfg `tag-style ordering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagOrder {
    /// Sorted (the Proxmox VE default).
    #[default]
    Alphabetical,
    /// Kept in the order written.
    Config,
}

/// The comparison rules in force for a node; the defaults match a stock Proxmox VE
/// cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Normalizers {
    /// datacenter.cfg `tag-style case-sensitive=1`.
    pub tags_case_sensitive: bool,
    /// datacenter.cfg `tag-style ordering=`.
    pub tag_order: TagOrder,
}

impl Normalizers {
    /// Tags as Proxmox VE would store the given list: split on `,; `, de-duplicated
    /// (case-insensitively unless configured), ordered, `;`-joined. This is both the
    /// value written and the canonical form compared.
    pub fn tags_stored<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> String {
        self.canonical_tags(tags).join(";")
    }

    /// Whether desired tags match the stored string. This runs for every guest on every
    /// plan, so up to [`INLINE_TAGS`] tags per side are canonicalised on the stack.
    pub fn tags_equal(&self, desired: &[String], actual: Option<&str>) -> bool {
        let mut want = TagBuf::default();
        let mut have = TagBuf::default();
        self.canonical_into(desired.iter().map(String::as_str), &mut want);
        self.canonical_into(actual, &mut have);
        let (want, have) = (want.as_slice(), have.as_slice());
        want.len() == have.len() && want.iter().zip(have).all(|(w, h)| self.tag_eq(w, h))
    }

    fn tag_eq(&self, a: &str, b: &str) -> bool {
        if self.tags_case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    }

    fn canonical_tags<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut buf = TagBuf::default();
        self.canonical_into(tags, &mut buf);
        buf.as_slice().to_vec()
    }

    fn canonical_into<'a>(&self, tags: impl IntoIterator<Item = &'a str>, out: &mut TagBuf<'a>) {
        for tag in tags.into_iter().flat_map(split_tags) {
            if !out.as_slice().iter().any(|t| self.tag_eq(t, tag)) {
                out.push(tag);
            }
        }
        let list = out.as_mut_slice();
        if self.tag_order == TagOrder::Alphabetical {
            if self.tags_case_sensitive {
                list.sort_unstable();
            } else {
                list.sort_unstable_by(|a, b| {
                    let lower = |s: &'a str| s.bytes().map(|c| c.to_ascii_lowercase());
                    lower(a).cmp(lower(b))
                });
            }
        }
    }

    /// Whether a desired description matches the stored one (trailing whitespace and an
    /// absent value are not differences).
    pub fn description_equal(&self, desired: &str, actual: Option<&str>) -> bool {
        desired.trim_end() == actual.unwrap_or("").trim_end()
    }
}

/// Tags held on the stack by [`Normalizers::tags_equal`] before spilling to the heap.
pub const INLINE_TAGS: usize = 16;

/// A list of tag slices, inline up to [`INLINE_TAGS`].
#[derive(Default)]
struct TagBuf<'a> {
    inline: [&'a str; INLINE_TAGS],
    len: usize,
    spill: Vec<&'a str>,
}

impl<'a> TagBuf<'a> {
    fn push(&mut self, tag: &'a str) {
        if !self.spill.is_empty() {
            self.spill.push(tag);
        } else if self.len < INLINE_TAGS {
            self.inline[self.len] = tag;
            self.len += 1;
        } else {
            self.spill.extend_from_slice(&self.inline);
            self.spill.push(tag);
        }
    }

    fn as_slice(&self) -> &[&'a str] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    fn as_mut_slice(&mut self) -> &mut [&'a str] {
        if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        }
    }
}

fn split_tags(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ';', ' ']).filter(|t| !t.is_empty())
}

/// Canonicalises a desired byte count to the whole MiB Proxmox VE stores. Floor division
/// is deliberate: the value compared is exactly the value written, so a non-MiB-aligned
/// request converges in one pass instead of drifting forever.
pub fn memory_mib(bytes: u64) -> u64 {
    bytes / MIB
}

/// Whether a tag is one Proxmox VE accepts (`pve-tag`: `[a-z0-9_][a-z0-9_\-\+\.]*`,
/// case-insensitive).
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tags_as_stored() {
        let n = Normalizers::default();
        assert_eq!(n.tags_stored(["web", "Prod", "web", "db"]), "db;Prod;web");
        assert_eq!(n.tags_stored(["a,b; c"]), "a;b;c");
        assert_eq!(n.tags_stored(["prod", "PROD"]), "prod");
        let cfg = Normalizers {
            tag_order: TagOrder::Config,
            ..Normalizers::default()
        };
        assert_eq!(cfg.tags_stored(["web", "db", "web"]), "web;db");
        let cs = Normalizers {
            tags_case_sensitive: true,
            ..Normalizers::default()
        };
        assert_eq!(cs.tags_stored(["prod", "PROD"]), "PROD;prod");
    }

    #[test]
    fn many_tags_spill_to_the_heap() {
        let n = Normalizers::default();
        let many: Vec<String> = (0..40).rev().map(|i| format!("t{i:02}")).collect();
        let stored = n.tags_stored(many.iter().map(String::as_str));
        assert_eq!(stored.split(';').count(), 40);
        assert!(stored.starts_with("t00;t01;"));
        assert!(n.tags_equal(&many, Some(&stored)));
        assert!(!n.tags_equal(&many[1..], Some(&stored)));
    }

    #[test]
    fn tags_compare() {
        let n = Normalizers::default();
        assert!(n.tags_equal(&v(&["web", "prod"]), Some("prod;web")));
        assert!(n.tags_equal(&v(&["Web", "prod", "web"]), Some("prod;web")));
        assert!(n.tags_equal(&v(&["b", "a"]), Some("a,b")));
        assert!(n.tags_equal(&v(&[]), None));
        assert!(n.tags_equal(&v(&[]), Some("")));
        assert!(!n.tags_equal(&v(&["a"]), None));
        assert!(!n.tags_equal(&v(&["a", "b"]), Some("a")));
        let cs = Normalizers {
            tags_case_sensitive: true,
            ..Normalizers::default()
        };
        assert!(!cs.tags_equal(&v(&["Web"]), Some("web")));
    }

    #[test]
    fn description_compare() {
        let n = Normalizers::default();
        assert!(n.description_equal("hello", Some("hello\n")));
        assert!(n.description_equal("two\nlines", Some("two\nlines\n")));
        assert!(n.description_equal("", None));
        assert!(n.description_equal("x  ", Some("x")));
        assert!(!n.description_equal("hello", Some("hello world")));
        assert!(!n.description_equal(" lead", Some("lead")));
    }

    #[test]
    fn memory_floor() {
        assert_eq!(memory_mib(2 << 30), 2048);
        assert_eq!(memory_mib((2 << 30) + 123), 2048);
        assert_eq!(memory_mib(MIB - 1), 0);
    }

    #[test]
    fn tag_validity() {
        for ok in ["prod", "Web-1", "_x", "a.b+c", "9"] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", "-x", "a b", "a;b", "ü", ".x"] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }
}
