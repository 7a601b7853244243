//! Typed views of the responses the client decodes, and the inputs it sends.

use crate::GuestKind;
use crate::lenient;
use crate::upid::Upid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The full pve-manager package version, for example `9.1.3`.
    #[serde(deserialize_with = "lenient::de_string")]
    pub version: String,
    /// The point release, `x.y`.
    #[serde(deserialize_with = "lenient::de_string")]
    pub release: String,
    /// The short git revision of the build.
    #[serde(deserialize_with = "lenient::de_string")]
    pub repoid: String,
    /// The default console viewer, if configured.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub console: Option<String>,
}

/// One entry of `GET /nodes/{node}/lxc` or `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestSummary {
    /// The guest's id (a string in the LXC list, a number in the QEMU list).
    #[serde(deserialize_with = "lenient::de_u32")]
    pub vmid: u32,
    /// Which list the entry came from.
    pub kind: GuestKind,
    /// `running` or `stopped`.
    #[serde(deserialize_with = "lenient::de_string")]
    pub status: String,
    /// The guest's name (the hostname for containers).
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub name: Option<String>,
    /// The config lock (`backup`, `migrate`, `create`, ...), if any.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub lock: Option<String>,
    /// The tags, `;`-separated, as PVE stores them.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub tags: Option<String>,
    /// Whether the guest is a template.
    #[serde(default, deserialize_with = "lenient::de_bool")]
    pub template: bool,
    /// Configured memory in bytes.
    #[serde(default, deserialize_with = "lenient::de_opt_u64")]
    pub maxmem: Option<u64>,
    /// Configured CPUs (may be fractional for containers with a `cpulimit`).
    #[serde(default, deserialize_with = "lenient::de_opt_f64")]
    pub cpus: Option<f64>,
}

/// `GET /nodes/{node}/{kind}/{vmid}/status/current`, the fields castellan uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestStatus {
    /// `running` or `stopped`.
    #[serde(deserialize_with = "lenient::de_string")]
    pub status: String,
    /// The config lock, if any.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub lock: Option<String>,
    /// The guest's name.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub name: Option<String>,
    /// QEMU only: the state QMP reports (`running`, `paused`, `prelaunch`, ...), which tells
    /// a paused VM from a running one.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub qmpstatus: Option<String>,
    /// Whether the guest is a template.
    #[serde(default, deserialize_with = "lenient::de_bool")]
    pub template: bool,
    /// The tags, `;`-separated.
    #[serde(default, deserialize_with = "lenient::de_opt_string")]
    pub tags: Option<String>,
    /// Seconds since the guest started, when running.
    #[serde(default, deserialize_with = "lenient::de_opt_u64")]
    pub uptime: Option<u64>,
    /// The HA manager's view of it (`{"managed": 0|1, ...}`).
    #[serde(default)]
    pub ha: Option<Value>,
}

impl GuestStatus {
    /// Whether the HA manager manages it (`ha.managed` is 1). Anything unreadable counts
    /// as not managed: it only decides what `castellan plan` says, never what is sent.
    pub fn ha_managed(&self) -> bool {
        self.ha
            .as_ref()
            .and_then(|h| h.get("managed"))
            .is_some_and(|m| lenient::bool_from_value(m) == Ok(true))
    }
}

/// `GET /nodes/{node}/{kind}/{vmid}/config`: the config values and their digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// SHA-1 digest of the config file; send it back with every update so that PVE rejects
    /// the update if the config changed in between.
    pub digest: String,
    /// Every other key of the response, as PVE sent it (numbers may be numbers or strings).
    pub values: BTreeMap<String, Value>,
}

impl GuestConfig {
    /// The value of `key` as text: strings as they are, numbers in decimal, booleans as
    /// `1`/`0`. `None` when absent or not a scalar.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.values.get(key).and_then(lenient::string_from_value)
    }

    /// The value of `key` as an unsigned integer, whether sent as a number or a string.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.values
            .get(key)
            .and_then(|v| lenient::u64_from_value(v).ok())
    }

    /// The value of `key` as a boolean (`1`/`0`, `true`/`false`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.values
            .get(key)
            .and_then(|v| lenient::bool_from_value(v).ok())
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
}

/// One entry of `GET /nodes/{node}/{kind}/{vmid}/pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingItem {
    /// The config key.
    pub key: String,
    /// The current value, if set.
    pub value: Option<Value>,
    /// The pending (not yet applied) value, if any.
    pub pending: Option<Value>,
    /// Whether a delete of the key is pending (PVE's `delete` is 1, or 2 for a forced delete).
    pub delete: bool,
}

/// A config change: keys to set, keys to delete, and the digest of the config it was
/// planned against. Sent as LXC `PUT .../config` or QEMU `POST .../config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// Keys to set, with values in PVE's text form (`memory=2048`, `net0=name=eth0,...`).
    pub set: BTreeMap<String, String>,
    /// Keys to delete.
    pub delete: Vec<String>,
    /// The [`GuestConfig::digest`] the change was planned against. Required.
    pub digest: String,
}

impl ConfigUpdate {
    /// An empty update against `digest`.
    pub fn new(digest: impl Into<String>) -> Self {
        Self {
            digest: digest.into(),
            ..Self::default()
        }
    }

    /// Adds a key to set.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.insert(key.into(), value.into());
        self
    }

    /// Adds a key to delete.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.delete.push(key.into());
        self
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Whether the task is still running (`status` is `running`).
    pub running: bool,
    /// The exit status once stopped: `OK`, `WARNINGS: N`, or the error text.
    pub exitstatus: Option<String>,
    /// The task type, for example `qmstart`.
    pub kind: Option<String>,
    /// The task's object id, usually the vmid.
    pub id: Option<String>,
    /// The user or token that started the task.
    pub user: Option<String>,
    /// The task's start time, seconds since the Unix epoch.
    pub starttime: Option<i64>,
}

/// One entry of `GET /nodes/{node}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task.
    pub upid: Upid,
    /// Its type, for example `vzdestroy`.
    pub kind: Option<String>,
    /// Its exit status once finished (absent while running).
    pub status: Option<String>,
    /// Start, Unix seconds.
    pub starttime: Option<i64>,
    /// End, Unix seconds (absent while running).
    pub endtime: Option<i64>,
}

/// One backup volume of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupVolume {
    /// Its volume id (`local:backup/vzdump-lxc-101-....tar.zst`).
    pub volid: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was made, Unix seconds, where the storage says.
    pub ctime: Option<i64>,
}

/// One entry of `GET /nodes/{node}/storage/{storage}/content` (every content type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageContentEntry {
    /// Its volume id (`local-lvm:vm-105-disk-0`, `local:backup/vzdump-....tar.zst`).
    pub volid: String,
    /// Its size in bytes (`size`, else the `approximate-size` some storages list instead);
    /// `None` when the storage says neither.
    pub size: Option<u64>,
    /// The guest the storage says owns it (from its name, `vm-105-disk-0` → 105), whether
    /// or not that guest exists.
    pub vmid: Option<u32>,
    /// Its content type: `images` (a VM's disk, or one whose owner is no container),
    /// `rootdir` (a container's), `backup`, `iso`, `vztmpl`, `snippets`, `import`.
    pub content: Option<String>,
}

impl StorageContentEntry {
    /// Whether it is a guest's disk (content `images` or `rootdir`), not a backup, ISO,
    /// template or snippet.
    pub fn is_disk(&self) -> bool {
        matches!(self.content.as_deref(), Some("images" | "rootdir"))
    }
}

/// A task that finished successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskOk {
    /// How many warnings the task logged (`WARNINGS: N`); 0 for `OK`.
    pub warnings: u32,
}

impl TaskStatus {
    /// `None` while running; once stopped, `Ok` for `OK` and `WARNINGS: N`, otherwise `Err`
    /// with the exit status, which is the task's error text.
    ///
    /// pve-common `PVE::Tools::upid_status_is_error`: only `OK` and `WARNINGS: \d+` are
    /// success. A stopped task without an exit status is an error (`unknown`, as
    /// `upid_read_status` reports an unreadable one).
    pub fn outcome(&self) -> Option<Result<TaskOk, String>> {
        if self.running {
            return None;
        }
        let Some(exit) = self.exitstatus.as_deref() else {
            return Some(Err("unknown".to_owned()));
        };
        Some(parse_exitstatus(exit))
    }
}

fn parse_exitstatus(exit: &str) -> Result<TaskOk, String> {
    if exit == "OK" {
        return Ok(TaskOk { warnings: 0 });
    }
    if let Some(n) = exit.strip_prefix("WARNINGS: ")
        && let Ok(warnings) = n.trim().parse::<u32>()
    {
        return Ok(TaskOk { warnings });
    }
    Err(exit.to_owned())
}

/// How [`crate::PveClient::wait_task`] polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// Delay before the second poll (the first is immediate); doubles after each poll.
    pub initial: Duration,
    /// Upper bound of the delay between polls.
    pub max: Duration,
    /// Give up with [`crate::Error::TaskTimeout`] after this long.
    pub timeout: Duration,
}

impl Default for WaitOptions {
    /// 20 ms, doubling to 1 s, for at most 10 minutes.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(1),
            timeout: Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(running: bool, exit: Option<&str>) -> TaskStatus {
        TaskStatus {
            running,
            exitstatus: exit.map(str::to_owned),
            kind: None,
            id: None,
            user: None,
            starttime: None,
        }
    }

    #[test]
    fn task_outcomes() {
        assert_eq!(task(true, None).outcome(), None);
        assert_eq!(
            task(false, Some("OK")).outcome(),
            Some(Ok(TaskOk { warnings: 0 }))
        );
        assert_eq!(
            task(false, Some("WARNINGS: 3")).outcome(),
            Some(Ok(TaskOk { warnings: 3 }))
        );
        assert_eq!(
            task(
                false,
                Some("command 'lxc-start -n 101' failed: exit code 1")
            )
            .outcome(),
            Some(Err("command 'lxc-start -n 101' failed: exit code 1".into()))
        );
        assert_eq!(
            task(false, Some("WARNINGS: many")).outcome(),
            Some(Err("WARNINGS: many".into()))
        );
        assert_eq!(task(false, Some("ok")).outcome(), Some(Err("ok".into())));
        assert_eq!(task(false, None).outcome(), Some(Err("unknown".into())));
    }

    #[test]
    fn summary_tolerates_pve_inconsistencies() -> Result<(), serde_json::Error> {
        let lxc: GuestSummary = serde_json::from_value(json!({
            "vmid": "101", "kind": "lxc", "status": "running", "name": "web",
            "lock": "", "template": "", "maxmem": "536870912", "cpus": 1, "tags": "a;b"
        }))?;
        assert_eq!(lxc.vmid, 101);
        assert_eq!(lxc.lock, None);
        assert!(!lxc.template);
        assert_eq!(lxc.maxmem, Some(536870912));
        assert_eq!(lxc.cpus, Some(1.0));
        let qemu: GuestSummary = serde_json::from_value(json!({
            "vmid": 100, "kind": "qemu", "status": "stopped", "name": 1234, "template": 1
        }))?;
        assert_eq!(qemu.name.as_deref(), Some("1234"));
        assert!(qemu.template);
        assert_eq!(qemu.maxmem, None);
        Ok(())
    }

    #[test]
    fn config_helpers() {
        let mut values = BTreeMap::new();
        values.insert("memory".to_owned(), json!(2048));
        values.insert("cores".to_owned(), json!("2"));
        values.insert("onboot".to_owned(), json!(1));
        values.insert("hostname".to_owned(), json!("web"));
        let cfg = GuestConfig {
            digest: "abc".into(),
            values,
        };
        assert_eq!(cfg.get_str("memory").as_deref(), Some("2048"));
        assert_eq!(cfg.get_u64("memory"), Some(2048));
        assert_eq!(cfg.get_u64("cores"), Some(2));
        assert_eq!(cfg.get_u64("hostname"), None);
        assert_eq!(cfg.get_bool("onboot"), Some(true));
        assert_eq!(cfg.get_str("missing"), None);
    }
}
