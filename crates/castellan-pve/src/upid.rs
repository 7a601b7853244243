//! Unique process ids of Proxmox VE tasks.
//!
//! Format (pve-common `PVE::Tools::upid_encode` / `upid_decode`):
//! `UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type}:{id}:{user}:`, for example
//! `UPID:pve-01:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam!castellan:`. `pstart` may have
//! nine hex digits on long-running hosts, and `id` may be empty.

use crate::error::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A task's UPID. Parsing and printing round-trip exactly: the original text is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    node: String,
    pid: u32,
    pstart: u64,
    starttime: i64,
    kind: String,
    id: String,
    user: String,
}

impl Upid {
    /// Builds a UPID from its fields, formatted as PVE formats it.
    pub fn new(
        node: &str,
        pid: u32,
        pstart: u64,
        starttime: i64,
        kind: &str,
        id: &str,
        user: &str,
    ) -> Result<Self, Error> {
        format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:").parse()
    }

    /// The node the task runs on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The task's process id on the node.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process start time (in clock ticks since boot).
    pub fn pstart(&self) -> u64 {
        self.pstart
    }

    /// The task type, for example `vzstart`, `qmstop`, `qmconfig`, `vzdestroy`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The task's object id, usually the vmid; may be empty.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user (or token id, `user@realm!token`) that started the task.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The task's start time, in seconds since the Unix epoch.
    pub fn starttime(&self) -> i64 {
        self.starttime
    }

    /// The UPID as text, exactly as received.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::Decode {
        what: format!("upid {s:?}"),
        message: why.to_owned(),
    }
}

fn hex_field<T>(s: &str, field: &str, name: &str, min: usize, max: usize) -> Result<T, Error>
where
    T: TryFrom<u64>,
{
    if field.len() < min || field.len() > max || !field.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            s,
            &format!("{name} must be {min} to {max} hex digits, found {field:?}"),
        ));
    }
    let v = u64::from_str_radix(field, 16).map_err(|e| bad(s, &format!("{name}: {e}")))?;
    T::try_from(v).map_err(|_| bad(s, &format!("{name} {field:?} is out of range")))
}

fn is_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("UPID:")
            .ok_or_else(|| bad(s, "must start with \"UPID:\""))?;
        let rest = rest
            .strip_suffix(':')
            .ok_or_else(|| bad(s, "must end with ':'"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, kind, id, user] = parts[..] else {
            return Err(bad(
                s,
                &format!("expected 7 ':'-separated fields, found {}", parts.len()),
            ));
        };
        if !is_node_name(node) {
            return Err(bad(s, &format!("invalid node name {node:?}")));
        }
        if kind.is_empty() || kind.contains(char::is_whitespace) {
            return Err(bad(s, "the task type must be non-empty without whitespace"));
        }
        if id.contains(char::is_whitespace) {
            return Err(bad(s, "the task id must not contain whitespace"));
        }
        if user.is_empty() || user.contains(char::is_whitespace) {
            return Err(bad(s, "the user must be non-empty without whitespace"));
        }
        let pid: u32 = hex_field(s, pid, "pid", 8, 8)?;
        let pstart: u64 = hex_field(s, pstart, "pstart", 8, 9)?;
        let starttime: i64 = hex_field(s, starttime, "starttime", 8, 8)?;
        Ok(Self {
            raw: s.to_owned(),
            node: node.to_owned(),
            pid,
            pstart,
            starttime,
            kind: kind.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_real_upids() -> Result<(), Error> {
        for s in [
            "UPID:pve-01:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam!castellan:",
            "UPID:pve:00002D5A:0000A0F6:5C0E5B7B:qmstart:100:root@pam:",
            "UPID:node1:000FFFFF:1A2B3C4D5:6A000000:vzdump::root@pam:",
            "UPID:n:0000abcd:0000abcd:6a0000ff:qmconfig:100:user@pve:",
        ] {
            let u: Upid = s.parse()?;
            assert_eq!(u.to_string(), s);
            let again: Upid = u.to_string().parse()?;
            assert_eq!(again, u);
        }
        let u: Upid =
            "UPID:pve-01:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam!castellan:".parse()?;
        assert_eq!(u.node(), "pve-01");
        assert_eq!(u.pid(), 0x1E240);
        assert_eq!(u.pstart(), 0xA5B6C7);
        assert_eq!(u.starttime(), 0x65F0A1B2);
        assert_eq!(u.kind(), "vzstart");
        assert_eq!(u.id(), "101");
        assert_eq!(u.user(), "root@pam!castellan");
        Ok(())
    }

    #[test]
    fn new_formats_like_pve() -> Result<(), Error> {
        let u = Upid::new(
            "pve-01", 0x1E240, 0xA5B6C7, 0x65F0A1B2, "qmstop", "100", "root@pam",
        )?;
        assert_eq!(
            u.as_str(),
            "UPID:pve-01:0001E240:00A5B6C7:65F0A1B2:qmstop:100:root@pam:"
        );
        Ok(())
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "UPID:",
            "UPID:pve:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam",
            "XPID:pve:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam:",
            "UPID:pve:1E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam:",
            "UPID:pve:0001E24G:00A5B6C7:65F0A1B2:vzstart:101:root@pam:",
            "UPID:pve:0001E240:00A5B6C7:65F0A1B2::101:root@pam:",
            "UPID:pve:0001E240:00A5B6C7:65F0A1B2:vzstart:101::",
            "UPID:-pve:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam:",
            "UPID:pve:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam:extra:",
        ] {
            assert!(s.parse::<Upid>().is_err(), "{s:?} parsed");
        }
    }
}
