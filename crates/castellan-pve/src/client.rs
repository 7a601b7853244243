//! The client: one function sends every [`RequestSpec`], with retries and error mapping.

use crate::GuestKind;
use crate::TaskSummary;
use crate::error::{self, Error};
use crate::lenient;
use crate::request::{self, Method, PowerAction, RequestSpec, ShutdownOptions};
use crate::retry::RetryPolicy;
use crate::tls::{self, TlsMode};
use crate::token::ApiToken;
use crate::types::{
    BackupVolume, ConfigUpdate, GuestConfig, GuestStatus, GuestSummary, PendingItem,
    StorageContentEntry, TaskOk, TaskStatus, Version, WaitOptions,
};
use crate::upid::Upid;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Everything needed to talk to one Proxmox VE node.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The node's API address, `https://host:8006`; `/api2/json` is appended (and may
    /// already be present). `http://` is accepted for simulators only.
    pub base_url: Url,
    /// The API token to authenticate with.
    pub token: ApiToken,
    /// How to trust the node's certificate.
    pub tls: TlsMode,
    /// Timeout of a single HTTP request (connect, send, receive).
    pub timeout: Duration,
    /// Retries of lock conflicts and of failed reads.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A configuration with system TLS roots, a 30 s request timeout and the default retry
    /// policy.
    pub fn new(base_url: Url, token: ApiToken) -> Self {
        Self {
            base_url,
            token,
            tls: TlsMode::System,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// An async Proxmox VE API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct PveClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `.../api2/json`, without a trailing slash.
    api_base: Url,
    /// The sensitive `Authorization` header value; never logged or printed.
    auth: HeaderValue,
    token_id: String,
    retry: RetryPolicy,
    timeout: Duration,
}

impl fmt::Debug for PveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PveClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("token_id", &self.inner.token_id)
            .field("retry", &self.inner.retry)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A failed attempt, with what the retry loop needs to know about it.
struct Failure {
    error: Error,
    /// The request certainly did not reach the server (connection not established), so even
    /// a non-idempotent request may be re-sent.
    not_sent: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            not_sent: false,
        }
    }
}

/// The JSON envelope of every PVE API response.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
}

impl PveClient {
    /// Builds a client. Fails on an unusable base URL, retry policy or TLS setup (an
    /// unreadable CA file, for example); nothing is sent.
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        let api_base = api_base(&cfg.base_url)?;
        if cfg.retry.attempts == 0 {
            return Err(Error::Config(
                "invalid retry policy: attempts must be at least 1".into(),
            ));
        }
        if cfg.retry.base > cfg.retry.cap {
            return Err(Error::Config(format!(
                "invalid retry policy: base {:?} exceeds cap {:?}",
                cfg.retry.base, cfg.retry.cap
            )));
        }
        if cfg.timeout.is_zero() {
            return Err(Error::Config(
                "invalid client timeout: must not be zero".into(),
            ));
        }
        // A plain-http node (a lab, a simulator) needs no trust store at all.
        let tls = if cfg.base_url.scheme() == "http" {
            tls::trust_nothing()?
        } else {
            tls::client_config(&cfg.tls)?
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            // A node agent talks to its own node directly; an HTTP(S)_PROXY meant for
            // something else must not silently route the token through a proxy.
            .no_proxy()
            .user_agent(concat!("castellan-pve/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build http client: {}", chain(&e))))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base,
                auth: cfg.token.header_value()?,
                token_id: cfg.token.token_id(),
                retry: cfg.retry,
                timeout: cfg.timeout,
            }),
        })
    }

    /// The API base URL requests go to (`.../api2/json`).
    pub fn api_base(&self) -> &Url {
        &self.inner.api_base
    }

    /// `GET /version`: the node's PVE version.
    pub async fn version(&self) -> Result<Version, Error> {
        let spec = request::version();
        let data = self.execute(&spec).await?;
        decode(data, || "version".to_owned())
    }

    /// `GET /nodes/{node}/{lxc,qemu}`: the node's guests of one kind, sorted by vmid.
    pub async fn list_guests(
        &self,
        node: &str,
        kind: GuestKind,
    ) -> Result<Vec<GuestSummary>, Error> {
        let spec = request::list_guests(node, kind)?;
        let data = self.execute(&spec).await?;
        let what = || format!("{} guest list of node {node}", kind.as_str());
        let Value::Array(items) = data else {
            return Err(Error::Decode {
                what: what(),
                message: format!("expected an array, found {}", type_name(&data)),
            });
        };
        let mut guests = Vec::with_capacity(items.len());
        for (i, mut item) in items.into_iter().enumerate() {
            let Some(obj) = item.as_object_mut() else {
                return Err(Error::Decode {
                    what: format!("entry {i} of the {}", what()),
                    message: format!("expected an object, found {}", type_name(&item)),
                });
            };
            obj.insert("kind".into(), Value::String(kind.as_str().into()));
            guests.push(decode::<GuestSummary>(item, || {
                format!("entry {i} of the {}", what())
            })?);
        }
        guests.sort_by_key(|g| g.vmid);
        Ok(guests)
    }

    /// `GET /nodes/{node}/{kind}/{vmid}/status/current`.
    pub async fn guest_status(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<GuestStatus, Error> {
        let spec = request::guest_status(node, kind, vmid)?;
        let data = self.execute(&spec).await?;
        decode(data, || format!("status of {} {vmid}", kind.as_str()))
    }

    /// `GET /nodes/{node}/{kind}/{vmid}/config`: the applied config and its digest.
    pub async fn guest_config(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<GuestConfig, Error> {
        let spec = request::guest_config(node, kind, vmid)?;
        let data = self.execute(&spec).await?;
        let what = || format!("config of {} {vmid}", kind.as_str());
        let Value::Object(mut values) = data else {
            return Err(Error::Decode {
                what: what(),
                message: format!("expected an object, found {}", type_name(&data)),
            });
        };
        let digest = match values.remove("digest") {
            Some(Value::String(d)) if !d.is_empty() => d,
            Some(other) => {
                return Err(Error::Decode {
                    what: what(),
                    message: format!("expected a digest string, found {}", type_name(&other)),
                });
            }
            None => {
                return Err(Error::Decode {
                    what: what(),
                    message: "the response has no digest".into(),
                });
            }
        };
        Ok(GuestConfig {
            digest,
            values: values.into_iter().collect(),
        })
    }

    /// `GET /nodes/{node}/{kind}/{vmid}/pending`: current and pending values per key.
    pub async fn pending(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<Vec<PendingItem>, Error> {
        let spec = request::pending(node, kind, vmid)?;
        let data = self.execute(&spec).await?;
        let what = || format!("pending changes of {} {vmid}", kind.as_str());
        let Value::Array(items) = data else {
            return Err(Error::Decode {
                what: what(),
                message: format!("expected an array, found {}", type_name(&data)),
            });
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                pending_item(item).map_err(|message| Error::Decode {
                    what: format!("entry {i} of the {}", what()),
                    message,
                })
            })
            .collect()
    }

    /// Applies a config change, always sending its digest.
    ///
    /// LXC: `PUT .../config`, applied synchronously, returns `None`. QEMU: `POST .../config`,
    /// applied by a `qmconfig` task whose UPID is returned (wait for it with
    /// [`wait_task`](Self::wait_task)). A config that changed since the digest was read gives
    /// [`Error::DigestMismatch`]; the client does not retry that: re-read and re-plan.
    pub async fn update_config(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        update: &ConfigUpdate,
    ) -> Result<Option<Upid>, Error> {
        let spec = request::update_config(node, kind, vmid, update)?;
        let data = self.execute(&spec).await?;
        let what = || format!("response to the config update of {} {vmid}", kind.as_str());
        // Real LXC updates return null and QEMU updates a UPID, but a QEMU update that
        // finished within `background_delay` also returns null, so both are accepted.
        match data {
            Value::Null => Ok(None),
            Value::String(s) => s.parse::<Upid>().map(Some).map_err(|e| Error::Decode {
                what: what(),
                message: e.to_string(),
            }),
            other => Err(Error::Decode {
                what: what(),
                message: format!("expected null or a upid, found {}", type_name(&other)),
            }),
        }
    }

    /// `POST .../status/start`; returns the task's UPID.
    pub async fn start(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<Upid, Error> {
        self.power(node, kind, vmid, PowerAction::Start).await
    }

    /// `POST .../status/stop` (hard stop); returns the task's UPID.
    pub async fn stop(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<Upid, Error> {
        self.power(node, kind, vmid, PowerAction::Stop).await
    }

    /// `POST .../status/shutdown` (clean shutdown, PVE's default timeout); returns the task's
    /// UPID.
    pub async fn shutdown(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<Upid, Error> {
        self.power(node, kind, vmid, PowerAction::Shutdown).await
    }

    /// `POST .../status/shutdown` with a timeout and optional hard stop after it.
    pub async fn shutdown_with(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        opts: ShutdownOptions,
    ) -> Result<Upid, Error> {
        let spec = request::shutdown(node, kind, vmid, opts)?;
        self.execute_upid(&spec, || format!("shutdown of {} {vmid}", kind.as_str()))
            .await
    }

    /// `POST .../status/reboot`; returns the task's UPID.
    pub async fn reboot(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<Upid, Error> {
        self.power(node, kind, vmid, PowerAction::Reboot).await
    }

    /// `POST .../status/{action}`; returns the task's UPID.
    pub async fn power(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        action: PowerAction,
    ) -> Result<Upid, Error> {
        let spec = request::power(node, kind, vmid, action)?;
        self.execute_upid(&spec, || {
            format!("{} of {} {vmid}", action.as_str(), kind.as_str())
        })
        .await
    }

    /// `DELETE /nodes/{node}/{kind}/{vmid}` (destroys the guest and its owned volumes);
    /// see [`request::DeleteOptions`]. Returns the task's UPID.
    pub async fn delete_guest(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        opts: request::DeleteOptions,
    ) -> Result<Upid, Error> {
        let spec = request::delete_guest(node, kind, vmid, opts)?;
        self.execute_upid(&spec, || format!("deletion of {} {vmid}", kind.as_str()))
            .await
    }

    /// Restores backup volume `archive` as guest `vmid`, new or over the existing one
    /// (see [`request::restore_guest`]). Returns the task's UPID.
    pub async fn restore_guest(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        archive: &str,
        storage: Option<&str>,
        to: request::Restore,
    ) -> Result<Upid, Error> {
        let spec = request::restore_guest(node, kind, vmid, archive, storage, to)?;
        self.execute_upid(&spec, || format!("restore of {} {vmid}", kind.as_str()))
            .await
    }

    /// Starts one backup of guest `vmid` to `storage` (see [`request::vzdump`]). Returns
    /// the task's UPID.
    pub async fn vzdump(&self, node: &str, vmid: u32, storage: &str) -> Result<Upid, Error> {
        let spec = request::vzdump(node, vmid, storage)?;
        self.execute_upid(&spec, || format!("backup of guest {vmid}"))
            .await
    }

    /// The backups of guest `vmid` on `storage`, as the storage lists them (entries
    /// without a volume id or a size are left out).
    pub async fn backups(
        &self,
        node: &str,
        storage: &str,
        vmid: u32,
    ) -> Result<Vec<BackupVolume>, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            volid: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            size: Option<i64>,
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            ctime: Option<i64>,
        }
        let spec = request::backups(node, storage, vmid)?;
        let data = self.execute(&spec).await?;
        let raw: Vec<Raw> = decode(data, || format!("backups on storage {storage}"))?;
        Ok(raw
            .into_iter()
            .filter_map(|r| {
                Some(BackupVolume {
                    volid: r.volid?,
                    size: u64::try_from(r.size?).ok()?,
                    ctime: r.ctime,
                })
            })
            .collect())
    }

    /// `GET /nodes/{node}/storage/{storage}/content`: everything the storage lists, of
    /// every content type it holds, sorted by volume id. Decoded leniently: numbers may
    /// arrive as strings, a field that cannot be read is left out, and an entry without a
    /// volume id is skipped. A storage the node does not have is the node's error
    /// (`storage 'x' does not exist`, [`Error::NotFound`]).
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
    ) -> Result<Vec<StorageContentEntry>, Error> {
        let spec = request::storage_content(node, storage)?;
        let data = self.execute(&spec).await?;
        let Value::Array(items) = data else {
            return Err(Error::Decode {
                what: format!("content of storage {storage}"),
                message: format!("expected an array, found {}", type_name(&data)),
            });
        };
        let mut out: Vec<StorageContentEntry> =
            items.iter().filter_map(storage_content_entry).collect();
        out.sort_by(|a, b| a.volid.cmp(&b.volid));
        Ok(out)
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}` (see
    /// [`request::delete_volume`]): `volume` is the full volume id. Returns the `imgdel`
    /// task's UPID, or `None` where the node answered `null` (it removed the volume
    /// before answering).
    ///
    /// The node does not check whether a guest still uses the volume, and does not refuse
    /// a volume that is not there at request time (its task then warns or fails, as the
    /// storage type has it): both are the caller's to check first.
    pub async fn delete_volume(
        &self,
        node: &str,
        storage: &str,
        volume: &str,
    ) -> Result<Option<Upid>, Error> {
        let spec = request::delete_volume(node, storage, volume)?;
        let what = || format!("response to the removal of volume {volume}");
        match self.execute(&spec).await? {
            Value::Null => Ok(None),
            Value::String(s) => s.parse::<Upid>().map(Some).map_err(|e| Error::Decode {
                what: what(),
                message: e.to_string(),
            }),
            other => Err(Error::Decode {
                what: what(),
                message: format!("expected null or a upid, found {}", type_name(&other)),
            }),
        }
    }

    /// Clones `template` to the new guest `newid` (see [`request::clone_guest`]). Returns
    /// the task's UPID (a task of the template, as the node lists it).
    pub async fn clone_guest(
        &self,
        node: &str,
        kind: GuestKind,
        template: u32,
        newid: u32,
        storage: Option<&str>,
        full: Option<bool>,
    ) -> Result<Upid, Error> {
        let spec = request::clone_guest(node, kind, template, newid, storage, full)?;
        self.execute_upid(&spec, || {
            format!("clone of {} {template} to {newid}", kind.as_str())
        })
        .await
    }

    /// Grows disk `disk` of a guest to `size` (see [`request::resize_disk`]). Returns the
    /// task's UPID, or `None` where the node answered synchronously.
    pub async fn resize_disk(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: &str,
    ) -> Result<Option<Upid>, Error> {
        let spec = request::resize_disk(node, kind, vmid, disk, size, digest)?;
        let what = || format!("response to the resize of {} {vmid}", kind.as_str());
        match self.execute(&spec).await? {
            Value::Null => Ok(None),
            Value::String(s) => s.parse::<Upid>().map(Some).map_err(|e| Error::Decode {
                what: what(),
                message: e.to_string(),
            }),
            other => Err(Error::Decode {
                what: what(),
                message: format!("expected null or a upid, found {}", type_name(&other)),
            }),
        }
    }

    /// `GET /cluster/nextid?vmid=N`: `Ok` when no guest of the cluster has vmid `vmid`;
    /// the node's refusal (`VM N already exists`) otherwise.
    pub async fn vmid_free(&self, vmid: u32) -> Result<(), Error> {
        let spec = request::vmid_free(vmid)?;
        self.execute(&spec).await.map(|_| ())
    }

    /// `GET /cluster/resources?type=vm`: every guest of the cluster as
    /// `(vmid, node)`, sorted by vmid.
    pub async fn cluster_guests(&self) -> Result<Vec<(u32, String)>, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            vmid: Option<i64>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            node: Option<String>,
        }
        let spec = request::cluster_guests();
        let data = self.execute(&spec).await?;
        let raw: Vec<Raw> = decode(data, || "cluster resources".to_owned())?;
        let mut out: Vec<(u32, String)> = raw
            .into_iter()
            .filter_map(|r| Some((u32::try_from(r.vmid?).ok()?, r.node?)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// `GET /cluster/resources?type=storage`: the storages of node `node` that are its
    /// own (not shared with other nodes) and may hold guests' disks (content `images` or
    /// `rootdir`), sorted by id.
    pub async fn local_disk_storages(&self, node: &str) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            storage: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            node: Option<String>,
            #[serde(default)]
            shared: Option<serde_json::Value>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            content: Option<String>,
        }
        let spec = request::cluster_storages();
        let data = self.execute(&spec).await?;
        let raw: Vec<Raw> = decode(data, || "cluster storages".to_owned())?;
        let mut out: Vec<String> = raw
            .into_iter()
            // A node always says (`shared => $scfg->{shared} || 0`); a flag that is missing
            // or cannot be read counts as shared: never wiped as this node's own.
            .filter(|r| {
                r.node.as_deref() == Some(node)
                    && r.shared
                        .as_ref()
                        .is_some_and(|v| lenient::bool_from_value(v) == Ok(false))
            })
            .filter(|r| {
                r.content.as_deref().is_some_and(|c| {
                    c.split(',')
                        .any(|t| matches!(t.trim(), "images" | "rootdir"))
                })
            })
            .filter_map(|r| r.storage)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// `GET /nodes/{node}/tasks`: the tasks of type `typefilter` (e.g. `vzdestroy`) for
    /// guest `vmid` started at or after `since` (Unix seconds), running or finished,
    /// newest first. Crash recovery uses it to find a task whose UPID was never recorded.
    pub async fn list_tasks(
        &self,
        node: &str,
        vmid: u32,
        typefilter: &str,
        since: i64,
    ) -> Result<Vec<TaskSummary>, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(deserialize_with = "lenient::de_string")]
            upid: String,
            #[serde(default, rename = "type", deserialize_with = "lenient::de_opt_string")]
            kind: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            status: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            starttime: Option<i64>,
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            endtime: Option<i64>,
        }
        let spec = request::list_tasks(node, vmid, typefilter, since)?;
        let data = self.execute(&spec).await?;
        let raw: Vec<Raw> = decode(data, || format!("task list of {vmid}"))?;
        raw.into_iter()
            .map(|r| {
                let upid: Upid = r.upid.parse().map_err(|e: Error| Error::Decode {
                    what: "task list".into(),
                    message: e.to_string(),
                })?;
                Ok(TaskSummary {
                    upid,
                    kind: r.kind,
                    status: r.status,
                    starttime: r.starttime,
                    endtime: r.endtime,
                })
            })
            .collect()
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`: one poll of a task.
    pub async fn task_status(&self, node: &str, upid: &Upid) -> Result<TaskStatus, Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(deserialize_with = "lenient::de_string")]
            status: String,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            exitstatus: Option<String>,
            #[serde(default, rename = "type", deserialize_with = "lenient::de_opt_string")]
            kind: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            id: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_string")]
            user: Option<String>,
            #[serde(default, deserialize_with = "lenient::de_opt_i64")]
            starttime: Option<i64>,
        }
        let spec = request::task_status(node, upid)?;
        let data = self.execute(&spec).await?;
        let what = || format!("status of task {upid}");
        let raw: Raw = decode(data, what)?;
        let running = match raw.status.as_str() {
            "running" => true,
            "stopped" => false,
            other => {
                return Err(Error::Decode {
                    what: what(),
                    message: format!("unknown task status {other:?}"),
                });
            }
        };
        Ok(TaskStatus {
            running,
            exitstatus: raw.exitstatus,
            kind: raw.kind,
            id: raw.id,
            user: raw.user,
            starttime: raw.starttime,
        })
    }

    /// Polls a task until it stops: immediately, then after [`WaitOptions::initial`],
    /// doubling up to [`WaitOptions::max`], for at most [`WaitOptions::timeout`].
    ///
    /// `OK` and `WARNINGS: N` are success; any other exit status is
    /// [`Error::TaskFailed`] carrying it. Still running at the deadline:
    /// [`Error::TaskTimeout`] (the task itself goes on).
    ///
    /// The wait runs inside a `pve_task` span (fields `kind`, `id`, `node`), which the
    /// CLI turns into a spinner on a terminal.
    pub async fn wait_task(
        &self,
        node: &str,
        upid: &Upid,
        wait: WaitOptions,
    ) -> Result<TaskOk, Error> {
        let span = tracing::info_span!(
            "pve_task",
            kind = upid.kind(),
            id = upid.id(),
            node = upid.node()
        );
        tracing::Instrument::instrument(self.poll_task(node, upid, wait), span).await
    }

    async fn poll_task(&self, node: &str, upid: &Upid, wait: WaitOptions) -> Result<TaskOk, Error> {
        let deadline = tokio::time::Instant::now() + wait.timeout;
        let mut delay = wait.initial;
        loop {
            // A failed poll says nothing about the task: a node answering 500 once, or a
            // connection reset, is retried until the deadline. Only the task's own end
            // (or a definite error such as a refused token) is an outcome.
            let status = match self.task_status(node, upid).await {
                Ok(s) => s,
                Err(e) if poll_error_is_transient(&e) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(Error::TaskTimeout {
                            upid: upid.to_string(),
                        });
                    }
                    tracing::warn!(event = "task_poll_failed", upid = %upid, error = %e, "retrying");
                    tokio::time::sleep(delay.min(deadline - now)).await;
                    delay = (delay * 2).min(wait.max);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match status.outcome() {
                Some(Ok(ok)) => {
                    if ok.warnings > 0 {
                        tracing::info!(upid = %upid, warnings = ok.warnings, "pve task finished with warnings");
                    }
                    return Ok(ok);
                }
                Some(Err(exitstatus)) => {
                    return Err(Error::TaskFailed {
                        upid: upid.to_string(),
                        exitstatus,
                    });
                }
                None => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::TaskTimeout {
                    upid: upid.to_string(),
                });
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(wait.max);
        }
    }

    async fn execute_upid(
        &self,
        spec: &RequestSpec,
        what: impl Fn() -> String,
    ) -> Result<Upid, Error> {
        let data = self.execute(spec).await?;
        match data {
            Value::String(s) => s.parse().map_err(|e: Error| Error::Decode {
                what: format!("response to the {}", what()),
                message: e.to_string(),
            }),
            other => Err(Error::Decode {
                what: format!("response to the {}", what()),
                message: format!("expected a upid string, found {}", type_name(&other)),
            }),
        }
    }

    /// Sends a request, retrying lock conflicts (any method) and retryable failures of
    /// reads, and returns the response's `data`.
    async fn execute(&self, spec: &RequestSpec) -> Result<Value, Error> {
        let policy = self.inner.retry;
        let mut attempt = 1u32;
        loop {
            let failure = match self.send_once(spec).await {
                Ok(data) => return Ok(data),
                Err(failure) => failure,
            };
            let error = failure.error;
            // A lock conflict is raised before the handler acts, so re-sending is safe for
            // every method. Other retryable failures are re-sent only for reads, or when the
            // request never left.
            let retry = error.is_lock()
                || (error.is_retryable() && (spec.method.is_idempotent() || failure.not_sent));
            if !retry || attempt >= policy.attempts {
                return Err(error);
            }
            let delay = policy.delay(attempt);
            tracing::debug!(
                method = spec.method.as_str(),
                path = %spec.concrete_path(),
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "retrying pve request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Sends one request and maps the response.
    async fn send_once(&self, spec: &RequestSpec) -> Result<Value, Failure> {
        let url = self.url_for(spec)?;
        let mut req = self
            .inner
            .http
            .request(spec.method.to_reqwest(), url)
            .header(AUTHORIZATION, self.inner.auth.clone());
        if !spec.params.is_empty() {
            req = match spec.method {
                Method::Get | Method::Delete => req.query(&spec.params),
                Method::Post | Method::Put => req.form(&spec.params),
            };
        }
        let path = spec.concrete_path();
        tracing::debug!(
            method = spec.method.as_str(),
            path = %path,
            params = ?spec.params.keys().collect::<Vec<_>>(),
            "pve request"
        );
        let response = req
            .send()
            .await
            .map_err(|e| self.transport_failure(spec, &e, true))?;
        let status = response.status();
        // PVE puts the error text in the HTTP/1 status line. hyper keeps a non-canonical
        // reason phrase as the `ReasonPhrase` response extension (and none when it equals
        // the canonical one), which reqwest passes through in `Response::extensions`.
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_owned));
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(spec, &e, false))?;
        tracing::debug!(
            method = spec.method.as_str(),
            path = %path,
            status = status.as_u16(),
            "pve response"
        );
        let what = || format!("response to {} {path}", spec.method);
        if status.is_success() {
            let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| Error::Decode {
                what: what(),
                message: format!("invalid json envelope: {e}"),
            })?;
            return Ok(envelope.data);
        }
        // Error bodies may be JSON (`message`, `errors`), empty, or not JSON at all.
        let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
        let body_message = envelope
            .as_ref()
            .and_then(|e| e.message.as_ref())
            .and_then(lenient::string_from_value)
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
        let message = body_message
            .or_else(|| {
                reason
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
            })
            .unwrap_or_else(|| format!("http status {}", status.as_u16()));
        let errors = envelope
            .and_then(|e| e.errors)
            .map(errors_map)
            .unwrap_or_default();
        let error = error::from_response(status.as_u16(), message, errors);
        tracing::debug!(
            method = spec.method.as_str(),
            path = %path,
            status = status.as_u16(),
            error = %error,
            "pve request failed"
        );
        Err(error.into())
    }

    fn url_for(&self, spec: &RequestSpec) -> Result<Url, Error> {
        let mut url = self.inner.api_base.clone();
        // Each segment is percent-encoded on its own, so a value can never add a segment
        // (a volume id's '/' travels as %2F). UPIDs keep their ':', '@' and '!' as PVE
        // expects.
        spec.push_segments(&mut url)?;
        Ok(url)
    }

    fn transport_failure(&self, spec: &RequestSpec, e: &reqwest::Error, sending: bool) -> Failure {
        let target = format!("{} {}", spec.method, spec.concrete_path());
        if let Some(tls) = find_tls_error(e) {
            return Failure {
                error: Error::Tls(format!("{target}: {tls}")),
                not_sent: true,
            };
        }
        let message = if e.is_timeout() {
            format!("{target}: timed out after {:?}", self.inner.timeout)
        } else if sending {
            format!("{target}: {}", chain(e))
        } else {
            format!("{target}: reading the response failed: {}", chain(e))
        };
        Failure {
            error: Error::Transport(message),
            not_sent: sending && e.is_connect(),
        }
    }
}

/// `.../api2/json` for a configured base URL.
fn api_base(base: &Url) -> Result<Url, Error> {
    match base.scheme() {
        "https" | "http" => {}
        other => {
            return Err(Error::Config(format!(
                "invalid base url {base}: scheme {other:?} is not https"
            )));
        }
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("invalid base url {base}: no host")));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(Error::Config(
            "invalid base url: it must not contain credentials; use the api token".into(),
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(Error::Config(format!(
            "invalid base url {base}: it must not have a query or fragment"
        )));
    }
    let mut url = base.clone();
    let path = base.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with("/api2/json") {
        path
    } else {
        format!("{path}/api2/json")
    };
    url.set_path(&path);
    Ok(url)
}

fn decode<T: DeserializeOwned>(data: Value, what: impl Fn() -> String) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Decode {
        what: what(),
        message: e.to_string(),
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn errors_map(v: Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let text = lenient::string_from_value(&v).unwrap_or_else(|| v.to_string());
                (k, text.trim().to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => {
            let mut m = BTreeMap::new();
            m.insert(String::new(), other.to_string());
            m
        }
    }
}

/// One entry of a storage's content listing; `None` for an entry without a volume id.
fn storage_content_entry(item: &Value) -> Option<StorageContentEntry> {
    let obj = item.as_object()?;
    let volid = obj
        .get("volid")
        .and_then(lenient::string_from_value)
        .filter(|v| !v.is_empty())?;
    let number = |key: &str| obj.get(key).and_then(|v| lenient::u64_from_value(v).ok());
    Some(StorageContentEntry {
        volid,
        size: number("size").or_else(|| number("approximate-size")),
        vmid: obj
            .get("vmid")
            .and_then(|v| lenient::u32_from_value(v).ok()),
        content: obj
            .get("content")
            .and_then(lenient::string_from_value)
            .filter(|c| !c.is_empty()),
    })
}

fn pending_item(item: Value) -> Result<PendingItem, String> {
    let Value::Object(mut obj) = item else {
        return Err(format!("expected an object, found {}", type_name(&item)));
    };
    let key = match obj.remove("key") {
        Some(Value::String(k)) if !k.is_empty() => k,
        _ => return Err("the entry has no key".into()),
    };
    let delete = match obj.remove("delete") {
        None | Some(Value::Null) => false,
        Some(v) => lenient::u64_from_value(&v)
            .map(|n| n != 0)
            .or_else(|_| lenient::bool_from_value(&v))
            .map_err(|e| format!("delete flag of {key:?}: {e}"))?,
    };
    Ok(PendingItem {
        value: obj.remove("value").filter(|v| !v.is_null()),
        pending: obj.remove("pending").filter(|v| !v.is_null()),
        key,
        delete,
    })
}

/// The error and its sources, joined with `: `, without repeating a source's text that its
/// parent already contains.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The rustls error behind a reqwest error, if the failure was in the TLS handshake.
///
/// tokio-rustls reports it as an `io::Error` (kind `InvalidData`) wrapping the
/// `rustls::Error`, which hyper-util wraps in a further `io::Error`. `io::Error::source`
/// skips the wrapped error itself, so custom io errors are unwrapped with `get_ref`.
fn find_tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        source = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    None
}

/// Whether a failed task-status poll may succeed if repeated: transport failures, any
/// server-side error (5xx, PVE's proxy errors 595/596), a garbled answer, a lock conflict.
fn poll_error_is_transient(e: &Error) -> bool {
    match e {
        Error::Transport(_)
        | Error::Decode { .. }
        | Error::Locked { .. }
        | Error::LockTimeout { .. } => true,
        Error::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_appends_api2_json_once() -> Result<(), Box<dyn std::error::Error>> {
        for (input, want) in [
            ("https://pve:8006", "https://pve:8006/api2/json"),
            ("https://pve:8006/", "https://pve:8006/api2/json"),
            ("https://pve:8006/api2/json", "https://pve:8006/api2/json"),
            ("https://pve:8006/api2/json/", "https://pve:8006/api2/json"),
            ("http://127.0.0.1:1234", "http://127.0.0.1:1234/api2/json"),
            ("https://proxy/pve", "https://proxy/pve/api2/json"),
        ] {
            assert_eq!(api_base(&input.parse()?)?.as_str(), want, "{input}");
        }
        for bad in [
            "ftp://pve",
            "https://user:pw@pve:8006",
            "https://pve:8006/?x=1",
        ] {
            assert!(api_base(&bad.parse()?).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn storage_content_entries_decode_leniently() {
        let entry = storage_content_entry(&serde_json::json!({
            "volid": "local-lvm:vm-105-disk-0", "size": "8589934592", "vmid": "105",
            "content": "rootdir", "format": "raw"
        }));
        assert_eq!(
            entry,
            Some(StorageContentEntry {
                volid: "local-lvm:vm-105-disk-0".into(),
                size: Some(8 << 30),
                vmid: Some(105),
                content: Some("rootdir".into()),
            })
        );
        let approx = storage_content_entry(&serde_json::json!({
            "volid": "pbs:backup/vm/105/2026-01-01T00:00:00Z", "approximate-size": 1024,
            "vmid": "x", "content": "backup"
        }));
        assert_eq!(approx.as_ref().and_then(|e| e.size), Some(1024));
        assert_eq!(approx.as_ref().and_then(|e| e.vmid), None);
        assert!(approx.is_some_and(|e| !e.is_disk()));
        assert_eq!(storage_content_entry(&serde_json::json!({"size": 1})), None);
        assert_eq!(
            storage_content_entry(&serde_json::json!({"volid": ""})),
            None
        );
        assert_eq!(
            storage_content_entry(&serde_json::json!("local:iso/x.iso")),
            None
        );
    }

    #[test]
    fn pending_items_decode() -> Result<(), String> {
        let item =
            pending_item(serde_json::json!({"key": "memory", "value": 512, "pending": "1024"}))?;
        assert_eq!(item.key, "memory");
        assert!(!item.delete);
        assert_eq!(item.pending, Some(serde_json::json!("1024")));
        let del = pending_item(serde_json::json!({"key": "swap", "value": 0, "delete": 1}))?;
        assert!(del.delete);
        let forced = pending_item(serde_json::json!({"key": "net0", "delete": "2"}))?;
        assert!(forced.delete && forced.value.is_none());
        assert!(pending_item(serde_json::json!({"value": 1})).is_err());
        Ok(())
    }
}
