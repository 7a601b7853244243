//! Descriptions of every request the client sends.
//!
//! Each API call is built here as a [`RequestSpec`] — method, path template, path parameters
//! and parameters — and sent by one function in the client. [`request_catalog`] builds one of
//! every kind with representative values through the same builders, so a test can check the
//! whole surface against the PVE API schema (`crates/pve-schema/data/api-schema-subset.json`).
//!
//! Parameter names and types follow that schema (pve-docs 9.1.3): booleans are sent as
//! `0`/`1`, lists of config keys (`delete`) comma-separated (`pve-configid-list`).

use crate::GuestKind;
use crate::error::Error;
use crate::types::ConfigUpdate;
use crate::upid::Upid;
use std::collections::BTreeMap;
use std::fmt;

/// The HTTP methods the PVE API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Read.
    Get,
    /// Create, or run an action.
    Post,
    /// Update.
    Put,
    /// Delete.
    Delete,
}

impl Method {
    /// The method's name, upper case, as in the schema.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the request after a transport failure is harmless: only reads.
    ///
    /// A POST, PUT or DELETE that timed out may have been carried out, so the client never
    /// re-sends one unless it knows the request never reached the server.
    pub fn is_idempotent(&self) -> bool {
        matches!(self, Method::Get)
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API request, before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The HTTP method.
    pub method: Method,
    /// The path template as in the schema, for example `/nodes/{node}/lxc/{vmid}/config`.
    pub path: &'static str,
    /// Values for the template's `{placeholders}`, in order.
    pub path_params: Vec<(&'static str, String)>,
    /// Query parameters (GET, DELETE) or form fields (POST, PUT), in PVE's text form.
    pub params: BTreeMap<String, String>,
}

impl RequestSpec {
    fn new(method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            path_params: Vec::new(),
            params: BTreeMap::new(),
        }
    }

    fn path_param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.path_params.push((name, value.into()));
        self
    }

    fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }

    /// The path with its placeholders filled in (not percent-encoded), for logs and for
    /// schema validation: `/nodes/pve-01/lxc/101/config`.
    pub fn concrete_path(&self) -> String {
        self.segments().join("/")
    }

    /// The path split into segments with the placeholders filled in; the first segment is
    /// empty (the path starts with `/`).
    pub(crate) fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .map(|seg| {
                seg.strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .and_then(|name| {
                        self.path_params
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, v)| v.clone())
                    })
                    .unwrap_or_else(|| seg.to_owned())
            })
            .collect()
    }

    /// Appends the path's segments to `url`, each percent-encoded on its own, so a value can
    /// never add a segment: a `/` inside a volume id (`local:100/vm-100-disk-0.qcow2`)
    /// travels as `%2F`; `:`, `@` and `!` (volume ids, UPIDs) are left as they are.
    pub(crate) fn push_segments(&self, url: &mut url::Url) -> Result<(), Error> {
        if url.cannot_be_a_base() {
            return Err(Error::Config(format!("base url {url} cannot take a path")));
        }
        let Ok(mut segments) = url.path_segments_mut() else {
            return Err(Error::Config("the base url cannot take a path".into()));
        };
        segments.pop_if_empty();
        for seg in self.segments().iter().skip(1) {
            segments.push(seg);
        }
        Ok(())
    }

    /// The path as it is sent, each placeholder's value percent-encoded within its segment
    /// (`/nodes/pve-01/storage/local/content/local:100%2Fvm-100-disk-0.qcow2`): what a
    /// node (or a schema validator) splits into segments before decoding each.
    pub fn encoded_path(&self) -> String {
        let mut url = match url::Url::parse("http://pve.invalid/") {
            Ok(url) => url,
            Err(_) => return self.concrete_path(),
        };
        match self.push_segments(&mut url) {
            Ok(()) => url.path().to_owned(),
            Err(_) => self.concrete_path(),
        }
    }

    /// Every parameter the schema sees: path parameters and query/form parameters.
    pub fn all_params(&self) -> BTreeMap<String, String> {
        let mut all = self.params.clone();
        for (k, v) in &self.path_params {
            all.insert((*k).to_owned(), v.clone());
        }
        all
    }
}

/// The guest actions that return a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    /// `POST .../status/start`.
    Start,
    /// `POST .../status/stop`: hard stop.
    Stop,
    /// `POST .../status/shutdown`: clean shutdown.
    Shutdown,
    /// `POST .../status/reboot`: clean reboot.
    Reboot,
}

impl PowerAction {
    /// All actions, for enumeration.
    pub const ALL: [PowerAction; 4] = [
        PowerAction::Start,
        PowerAction::Stop,
        PowerAction::Shutdown,
        PowerAction::Reboot,
    ];

    /// The last path segment, `start` etc.
    pub fn as_str(&self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Shutdown => "shutdown",
            PowerAction::Reboot => "reboot",
        }
    }
}

/// Options of a clean shutdown (`POST .../status/shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownOptions {
    /// Seconds to wait for the guest to shut down (PVE's default when `None`: 60 for
    /// containers, no limit for VMs).
    pub timeout: Option<u32>,
    /// Hard-stop the guest if it has not shut down within the timeout.
    pub force_stop: bool,
}

/// Smallest and largest vmid PVE accepts (`pve-vmid`).
pub const VMID_MIN: u32 = 100;
/// Largest vmid PVE accepts (`pve-vmid`).
pub const VMID_MAX: u32 = 999_999_999;

fn check_node(node: &str) -> Result<(), Error> {
    // pve-node: a DNS label, `[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?`.
    let ok = !node.is_empty()
        && node.len() <= 63
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !node.starts_with('-')
        && !node.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid node name {node:?}: expected letters, digits and inner '-'"
        )))
    }
}

fn check_vmid(vmid: u32) -> Result<(), Error> {
    if (VMID_MIN..=VMID_MAX).contains(&vmid) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid vmid {vmid}: must be between {VMID_MIN} and {VMID_MAX}"
        )))
    }
}

fn check_config_key(key: &str) -> Result<(), Error> {
    // pve-configid: `[a-z][a-z0-9_]+` (PVE::JSONSchema::pve_verify_configid).
    let mut bytes = key.bytes();
    let ok = key.len() >= 2
        && matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid config key {key:?}: expected a lower-case letter followed by [a-z0-9_]"
        )))
    }
}

/// The per-guest endpoints, so that path templates come from one total table.
#[derive(Debug, Clone, Copy)]
enum GuestPath {
    Root,
    Config,
    Pending,
    StatusCurrent,
    Power(PowerAction),
    Clone,
    Resize,
}

fn template(kind: GuestKind, path: GuestPath) -> &'static str {
    use GuestKind::{Lxc, Qemu};
    use PowerAction::{Reboot, Shutdown, Start, Stop};
    match (kind, path) {
        (Lxc, GuestPath::Root) => "/nodes/{node}/lxc/{vmid}",
        (Qemu, GuestPath::Root) => "/nodes/{node}/qemu/{vmid}",
        (Lxc, GuestPath::Config) => "/nodes/{node}/lxc/{vmid}/config",
        (Qemu, GuestPath::Config) => "/nodes/{node}/qemu/{vmid}/config",
        (Lxc, GuestPath::Pending) => "/nodes/{node}/lxc/{vmid}/pending",
        (Qemu, GuestPath::Pending) => "/nodes/{node}/qemu/{vmid}/pending",
        (Lxc, GuestPath::StatusCurrent) => "/nodes/{node}/lxc/{vmid}/status/current",
        (Qemu, GuestPath::StatusCurrent) => "/nodes/{node}/qemu/{vmid}/status/current",
        (Lxc, GuestPath::Power(Start)) => "/nodes/{node}/lxc/{vmid}/status/start",
        (Qemu, GuestPath::Power(Start)) => "/nodes/{node}/qemu/{vmid}/status/start",
        (Lxc, GuestPath::Power(Stop)) => "/nodes/{node}/lxc/{vmid}/status/stop",
        (Qemu, GuestPath::Power(Stop)) => "/nodes/{node}/qemu/{vmid}/status/stop",
        (Lxc, GuestPath::Power(Shutdown)) => "/nodes/{node}/lxc/{vmid}/status/shutdown",
        (Qemu, GuestPath::Power(Shutdown)) => "/nodes/{node}/qemu/{vmid}/status/shutdown",
        (Lxc, GuestPath::Power(Reboot)) => "/nodes/{node}/lxc/{vmid}/status/reboot",
        (Qemu, GuestPath::Power(Reboot)) => "/nodes/{node}/qemu/{vmid}/status/reboot",
        (Lxc, GuestPath::Clone) => "/nodes/{node}/lxc/{vmid}/clone",
        (Qemu, GuestPath::Clone) => "/nodes/{node}/qemu/{vmid}/clone",
        (Lxc, GuestPath::Resize) => "/nodes/{node}/lxc/{vmid}/resize",
        (Qemu, GuestPath::Resize) => "/nodes/{node}/qemu/{vmid}/resize",
    }
}

fn guest(
    method: Method,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    path: GuestPath,
) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_vmid(vmid)?;
    Ok(RequestSpec::new(method, template(kind, path))
        .path_param("node", node)
        .path_param("vmid", vmid.to_string()))
}

fn bool_param(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// `GET /version`.
pub fn version() -> RequestSpec {
    RequestSpec::new(Method::Get, "/version")
}

/// `GET /nodes/{node}/lxc` or `GET /nodes/{node}/qemu`.
pub fn list_guests(node: &str, kind: GuestKind) -> Result<RequestSpec, Error> {
    check_node(node)?;
    let path = match kind {
        GuestKind::Lxc => "/nodes/{node}/lxc",
        GuestKind::Qemu => "/nodes/{node}/qemu",
    };
    Ok(RequestSpec::new(Method::Get, path).path_param("node", node))
}

/// `GET /nodes/{node}/{kind}/{vmid}/status/current`.
pub fn guest_status(node: &str, kind: GuestKind, vmid: u32) -> Result<RequestSpec, Error> {
    guest(Method::Get, kind, node, vmid, GuestPath::StatusCurrent)
}

/// `GET /nodes/{node}/{kind}/{vmid}/config` (the applied config, not pending values).
pub fn guest_config(node: &str, kind: GuestKind, vmid: u32) -> Result<RequestSpec, Error> {
    guest(Method::Get, kind, node, vmid, GuestPath::Config)
}

/// `GET /nodes/{node}/{kind}/{vmid}/pending`.
pub fn pending(node: &str, kind: GuestKind, vmid: u32) -> Result<RequestSpec, Error> {
    guest(Method::Get, kind, node, vmid, GuestPath::Pending)
}

/// LXC: `PUT /nodes/{node}/lxc/{vmid}/config` (synchronous, returns `null`).
/// QEMU: `POST /nodes/{node}/qemu/{vmid}/config` (asynchronous, returns a UPID).
///
/// The digest is required and always sent, so PVE refuses the update if the config changed
/// since it was read. A key may not be both set and deleted, and the update must change
/// something.
pub fn update_config(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    update: &ConfigUpdate,
) -> Result<RequestSpec, Error> {
    let what = format!("config update of {} {vmid}", kind.as_str());
    let digest = update.digest.trim();
    // The schema allows at most 40 characters: a hex SHA-1 (PVE 8) or SHA-256 prefix.
    if digest.is_empty() {
        return Err(Error::Config(format!("{what} has no digest")));
    }
    if digest.len() > 40 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "{what} has an invalid digest {digest:?}: expected at most 40 hex digits"
        )));
    }
    if update.is_empty() {
        return Err(Error::Config(format!("{what} changes nothing")));
    }
    let method = match kind {
        GuestKind::Lxc => Method::Put,
        GuestKind::Qemu => Method::Post,
    };
    let mut spec = guest(method, kind, node, vmid, GuestPath::Config)?;
    for (key, value) in &update.set {
        check_config_key(key)?;
        if matches!(
            key.as_str(),
            "delete" | "digest" | "revert" | "node" | "vmid" | "skiplock" | "background_delay"
        ) {
            return Err(Error::Config(format!(
                "{what} cannot set {key:?}: it is a request parameter, not a config key"
            )));
        }
        if update.delete.iter().any(|d| d == key) {
            return Err(Error::Config(format!(
                "{what} both sets and deletes {key:?}"
            )));
        }
        spec = spec.param(key, value.clone());
    }
    if !update.delete.is_empty() {
        let mut keys: Vec<&str> = Vec::with_capacity(update.delete.len());
        for key in &update.delete {
            check_config_key(key)?;
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        spec = spec.param("delete", keys.join(","));
    }
    Ok(spec.param("digest", digest))
}

/// `POST /nodes/{node}/{kind}/{vmid}/status/{start,stop,shutdown,reboot}`.
pub fn power(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    action: PowerAction,
) -> Result<RequestSpec, Error> {
    guest(Method::Post, kind, node, vmid, GuestPath::Power(action))
}

/// `POST /nodes/{node}/{kind}/{vmid}/status/shutdown` with options.
pub fn shutdown(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    opts: ShutdownOptions,
) -> Result<RequestSpec, Error> {
    let mut spec = power(node, kind, vmid, PowerAction::Shutdown)?;
    if let Some(t) = opts.timeout {
        spec = spec.param("timeout", t.to_string());
    }
    if opts.force_stop {
        spec = spec.param("forceStop", bool_param(true));
    }
    Ok(spec)
}

/// Options of a guest's deletion (`DELETE /nodes/{node}/{kind}/{vmid}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Also remove the guest from backup jobs, replication and HA (`purge=1`).
    pub purge: bool,
    /// `destroy-unreferenced-disks`: also remove (`Some(true)`) or keep (`Some(false)`)
    /// disks of the vmid that its configuration does not reference; `None` sends nothing
    /// (the node's default).
    pub unreferenced_disks: Option<bool>,
}

/// `DELETE /nodes/{node}/{kind}/{vmid}`.
pub fn delete_guest(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    opts: DeleteOptions,
) -> Result<RequestSpec, Error> {
    let mut spec = guest(Method::Delete, kind, node, vmid, GuestPath::Root)?;
    if opts.purge {
        spec = spec.param("purge", bool_param(true));
    }
    if let Some(u) = opts.unreferenced_disks {
        spec = spec.param("destroy-unreferenced-disks", bool_param(u));
    }
    Ok(spec)
}

fn check_storage(storage: &str) -> Result<(), Error> {
    if castellan_core::desired::valid_storage_id(storage) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid storage id {storage:?}: expected a letter, then letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Where a restore goes: a new guest, or over the existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// To the new guest `vmid`, with new MAC addresses (`unique=1`), so that the copy
    /// never clashes with the guest it came from. A node refuses a vmid that is taken
    /// anywhere in the cluster.
    New,
    /// Over the existing guest `vmid` (`force=1`): its configuration and disks are
    /// replaced by the backup's (MAC addresses kept: it is the same guest). A node refuses
    /// it for a running or protected guest.
    Over,
}

/// `POST /nodes/{node}/lxc` (`ostemplate` = the archive, `restore=1`) or
/// `POST /nodes/{node}/qemu` (`archive`): restores backup volume `archive` as guest
/// `vmid` (see [`Restore`]), its disks to `storage` (the node's choice when `None`).
pub fn restore_guest(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    archive: &str,
    storage: Option<&str>,
    to: Restore,
) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_vmid(vmid)?;
    if !castellan_core::desired::valid_volume_id(archive) {
        return Err(Error::Config(format!(
            "invalid backup volume {archive:?}: expected storage:path"
        )));
    }
    let spec = match kind {
        GuestKind::Lxc => RequestSpec::new(Method::Post, "/nodes/{node}/lxc")
            .param("ostemplate", archive)
            .param("restore", bool_param(true)),
        GuestKind::Qemu => {
            RequestSpec::new(Method::Post, "/nodes/{node}/qemu").param("archive", archive)
        }
    };
    let spec = spec
        .path_param("node", node)
        .param("vmid", vmid.to_string());
    let mut spec = if to == Restore::Over {
        spec.param("force", bool_param(true))
    } else {
        spec.param("unique", bool_param(true))
    };
    if let Some(s) = storage {
        check_storage(s)?;
        spec = spec.param("storage", s);
    }
    Ok(spec)
}

/// `POST /nodes/{node}/{kind}/{template}/clone`: a copy of `template` as guest `newid`;
/// `full` a full copy (`None`: Proxmox VE's choice, a linked clone of a template),
/// `storage` where a full copy's disks go.
pub fn clone_guest(
    node: &str,
    kind: GuestKind,
    template: u32,
    newid: u32,
    storage: Option<&str>,
    full: Option<bool>,
) -> Result<RequestSpec, Error> {
    check_vmid(newid)?;
    let mut spec = guest(Method::Post, kind, node, template, GuestPath::Clone)?
        .param("newid", newid.to_string());
    if let Some(f) = full {
        spec = spec.param("full", bool_param(f));
    }
    if let Some(s) = storage {
        check_storage(s)?;
        spec = spec.param("storage", s);
    }
    Ok(spec)
}

/// `PUT /nodes/{node}/{kind}/{vmid}/resize`: grows disk `disk` to the absolute `size`
/// (as Proxmox VE writes sizes: `64G`), conditional on the configuration digest.
pub fn resize_disk(
    node: &str,
    kind: GuestKind,
    vmid: u32,
    disk: &str,
    size: &str,
    digest: &str,
) -> Result<RequestSpec, Error> {
    check_config_key(disk)?;
    let digits = size.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(size);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Config(format!(
            "invalid disk size {size:?}: expected a whole number with K, M, G or T"
        )));
    }
    if digest.is_empty() || digest.len() > 40 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Config(format!(
            "resize of {} {vmid} has an invalid digest {digest:?}",
            kind.as_str()
        )));
    }
    Ok(guest(Method::Put, kind, node, vmid, GuestPath::Resize)?
        .param("disk", disk)
        .param("size", size)
        .param("digest", digest))
}

/// `POST /nodes/{node}/vzdump`: one backup of guest `vmid` to `storage`, zstd-compressed,
/// in `snapshot` mode (for a stopped guest, as a guest about to be destroyed is, the same
/// as `stop`), with notes naming castellan so people can tell the backup apart.
pub fn vzdump(node: &str, vmid: u32, storage: &str) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_vmid(vmid)?;
    check_storage(storage)?;
    Ok(RequestSpec::new(Method::Post, "/nodes/{node}/vzdump")
        .path_param("node", node)
        .param("vmid", vmid.to_string())
        .param("storage", storage)
        .param("mode", "snapshot")
        .param("compress", "zstd")
        .param("notes-template", "castellan safety backup of {{guestname}}"))
}

/// `GET /nodes/{node}/storage/{storage}/content?content=backup&vmid=N`: the backups of
/// guest `vmid` on `storage`.
pub fn backups(node: &str, storage: &str, vmid: u32) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_storage(storage)?;
    check_vmid(vmid)?;
    Ok(
        RequestSpec::new(Method::Get, "/nodes/{node}/storage/{storage}/content")
            .path_param("node", node)
            .path_param("storage", storage)
            .param("content", "backup")
            .param("vmid", vmid.to_string()),
    )
}

/// `GET /nodes/{node}/storage/{storage}/content`: everything on `storage` the node lists,
/// of every content type the storage is configured for (disk images, container volumes,
/// backups, ISOs, templates, ...).
pub fn storage_content(node: &str, storage: &str) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_storage(storage)?;
    Ok(
        RequestSpec::new(Method::Get, "/nodes/{node}/storage/{storage}/content")
            .path_param("node", node)
            .path_param("storage", storage),
    )
}

/// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`: removes volume `volume`, given
/// as its full volume id (`local-lvm:vm-105-disk-1`, `local:105/vm-105-disk-0.qcow2`), which
/// must be on `storage` (the node refuses a mismatch with `storage ID mismatch`; it is
/// refused here before anything is sent). The node answers with the `imgdel` task's UPID.
///
/// No `delay` is sent: with it the node may wait for the task and answer `null`, or its
/// error, and the task's UPID, which a journal can follow, would be lost.
pub fn delete_volume(node: &str, storage: &str, volume: &str) -> Result<RequestSpec, Error> {
    check_node(node)?;
    check_storage(storage)?;
    if !castellan_core::desired::valid_volume_id(volume) {
        return Err(Error::Config(format!(
            "invalid volume id {volume:?}: expected storage:name"
        )));
    }
    if volume.split_once(':').map(|(sid, _)| sid) != Some(storage) {
        return Err(Error::Config(format!(
            "volume {volume:?} is not on storage {storage:?}"
        )));
    }
    Ok(RequestSpec::new(
        Method::Delete,
        "/nodes/{node}/storage/{storage}/content/{volume}",
    )
    .path_param("node", node)
    .path_param("storage", storage)
    .path_param("volume", volume))
}

/// `GET /cluster/nextid?vmid=N`: answers the vmid if no guest anywhere in the cluster
/// has it, and refuses it (400) otherwise.
pub fn vmid_free(vmid: u32) -> Result<RequestSpec, Error> {
    check_vmid(vmid)?;
    Ok(RequestSpec::new(Method::Get, "/cluster/nextid").param("vmid", vmid.to_string()))
}

/// `GET /cluster/resources?type=vm`: every guest of the cluster with its node.
pub fn cluster_guests() -> RequestSpec {
    RequestSpec::new(Method::Get, "/cluster/resources").param("type", "vm")
}

/// `GET /cluster/resources?type=storage`: every storage of every node of the cluster,
/// with whether it is shared and what content it holds.
pub fn cluster_storages() -> RequestSpec {
    RequestSpec::new(Method::Get, "/cluster/resources").param("type", "storage")
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub fn task_status(node: &str, upid: &Upid) -> Result<RequestSpec, Error> {
    check_node(node)?;
    Ok(
        RequestSpec::new(Method::Get, "/nodes/{node}/tasks/{upid}/status")
            .path_param("node", node)
            .path_param("upid", upid.as_str()),
    )
}

/// `GET /nodes/{node}/tasks?vmid=..&typefilter=..&source=all&since=..`: the node's tasks
/// for one guest and task type (running and finished), newest first.
pub fn list_tasks(
    node: &str,
    vmid: u32,
    typefilter: &str,
    since: i64,
) -> Result<RequestSpec, Error> {
    check_node(node)?;
    Ok(RequestSpec::new(Method::Get, "/nodes/{node}/tasks")
        .path_param("node", node)
        .param("vmid", vmid.to_string())
        .param("typefilter", typefilter)
        .param("source", "all")
        .param("since", since.max(0).to_string())
        .param("limit", "50"))
}

/// One of every request the client can send, built by the same functions the client uses,
/// with representative values: for a test that validates them all against the API schema.
#[doc(hidden)]
pub fn request_catalog() -> Vec<RequestSpec> {
    let node = "pve-01";
    let mut out = vec![version()];
    let upid =
        "UPID:pve-01:0001E240:00A5B6C7:65F0A1B2:vzstart:101:root@pam!castellan:".parse::<Upid>();
    let mut push = |r: Result<RequestSpec, Error>| match r {
        Ok(spec) => out.push(spec),
        // A builder rejecting its representative input is a bug the catalog test must
        // see, so it is recorded as an impossible request rather than dropped.
        Err(e) => out.push(
            RequestSpec::new(Method::Get, "/invalid-representative-request")
                .param("error", e.to_string()),
        ),
    };
    for (kind, vmid) in [(GuestKind::Lxc, 101), (GuestKind::Qemu, 100)] {
        push(list_guests(node, kind));
        push(guest_status(node, kind, vmid));
        push(guest_config(node, kind, vmid));
        push(pending(node, kind, vmid));
        let update = match kind {
            GuestKind::Lxc => ConfigUpdate::new("8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4")
                .set("cores", "2")
                .set("memory", "1024")
                .set("swap", "512")
                .set("hostname", "web-01")
                .set("onboot", "1")
                .set("tags", "castellan;web")
                .set("description", "managed by castellan\n")
                .delete("nameserver"),
            GuestKind::Qemu => ConfigUpdate::new("8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4")
                .set("cores", "2")
                .set("sockets", "1")
                .set("memory", "2048")
                .set("name", "db-01")
                .set("onboot", "1")
                .set("tags", "castellan;db")
                .set("description", "managed by castellan\n")
                .delete("balloon"),
        };
        push(update_config(node, kind, vmid, &update));
        for action in PowerAction::ALL {
            push(power(node, kind, vmid, action));
        }
        push(shutdown(
            node,
            kind,
            vmid,
            ShutdownOptions {
                timeout: Some(60),
                force_stop: true,
            },
        ));
        push(delete_guest(node, kind, vmid, DeleteOptions::default()));
        push(delete_guest(
            node,
            kind,
            vmid,
            DeleteOptions {
                purge: true,
                unreferenced_disks: Some(false),
            },
        ));
        push(restore_guest(
            node,
            kind,
            vmid + 20,
            "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst",
            Some("local-lvm"),
            Restore::New,
        ));
        push(restore_guest(
            node,
            kind,
            vmid + 21,
            "local:backup/x.vma.zst",
            None,
            Restore::New,
        ));
        push(clone_guest(
            node,
            kind,
            9000,
            vmid + 22,
            Some("local-lvm"),
            Some(true),
        ));
        push(clone_guest(node, kind, 9000, vmid + 23, None, None));
        push(restore_guest(
            node,
            kind,
            vmid,
            "local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst",
            Some("local-lvm"),
            Restore::Over,
        ));
        push(restore_guest(
            node,
            kind,
            vmid,
            "local:backup/x.vma.zst",
            None,
            Restore::Over,
        ));
        push(vzdump(node, vmid, "local"));
        push(backups(node, "local", vmid));
        let disk = if kind == GuestKind::Lxc {
            "rootfs"
        } else {
            "scsi0"
        };
        push(resize_disk(
            node,
            kind,
            vmid,
            disk,
            "64G",
            "8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4",
        ));
    }
    push(storage_content(node, "local-lvm"));
    push(delete_volume(node, "local-lvm", "local-lvm:vm-105-disk-1"));
    push(delete_volume(
        node,
        "local",
        "local:105/vm-105-disk-0.qcow2",
    ));
    push(vmid_free(120));
    push(Ok(cluster_guests()));
    push(Ok(cluster_storages()));
    match upid {
        Ok(upid) => push(task_status(node, &upid)),
        Err(e) => push(Err(e)),
    }
    push(list_tasks(node, 101, "vzdestroy", 1_763_800_000));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_paths() -> Result<(), Error> {
        let spec = guest_config("pve-01", GuestKind::Lxc, 101)?;
        assert_eq!(spec.concrete_path(), "/nodes/pve-01/lxc/101/config");
        assert_eq!(spec.method, Method::Get);
        let all = spec.all_params();
        assert_eq!(all.get("vmid").map(String::as_str), Some("101"));
        Ok(())
    }

    #[test]
    fn lxc_updates_are_put_and_qemu_updates_post() -> Result<(), Error> {
        let u = ConfigUpdate::new("abc123")
            .set("memory", "512")
            .delete("swap");
        let lxc = update_config("pve", GuestKind::Lxc, 101, &u)?;
        assert_eq!(lxc.method, Method::Put);
        assert_eq!(lxc.params.get("digest").map(String::as_str), Some("abc123"));
        assert_eq!(lxc.params.get("delete").map(String::as_str), Some("swap"));
        assert_eq!(lxc.params.get("memory").map(String::as_str), Some("512"));
        let qemu = update_config("pve", GuestKind::Qemu, 100, &u)?;
        assert_eq!(qemu.method, Method::Post);
        assert_eq!(qemu.path, "/nodes/{node}/qemu/{vmid}/config");
        Ok(())
    }

    #[test]
    fn rejects_bad_updates() {
        let cases = [
            ConfigUpdate::new("").set("memory", "512"),
            ConfigUpdate::new("not-hex!").set("memory", "512"),
            ConfigUpdate::new("abc"),
            ConfigUpdate::new("abc")
                .set("memory", "512")
                .delete("memory"),
            ConfigUpdate::new("abc").set("digest", "x"),
            ConfigUpdate::new("abc").set("Memory", "1"),
            ConfigUpdate::new("abc").delete("bad key"),
        ];
        for u in cases {
            let r = update_config("pve", GuestKind::Lxc, 101, &u);
            assert!(matches!(r, Err(Error::Config(_))), "{u:?} gave {r:?}");
        }
    }

    #[test]
    fn rejects_bad_targets() {
        assert!(guest_config("pve", GuestKind::Lxc, 99).is_err());
        assert!(guest_config("pve", GuestKind::Lxc, 1_000_000_000).is_err());
        assert!(guest_config("-pve", GuestKind::Lxc, 100).is_err());
        assert!(guest_config("pve/../x", GuestKind::Lxc, 100).is_err());
        assert!(list_guests("", GuestKind::Qemu).is_err());
    }

    #[test]
    fn volume_ids_stay_one_path_segment() -> Result<(), Error> {
        let spec = delete_volume("pve-01", "local", "local:105/vm-105-disk-0.qcow2")?;
        assert_eq!(spec.method, Method::Delete);
        assert_eq!(
            spec.encoded_path(),
            "/nodes/pve-01/storage/local/content/local:105%2Fvm-105-disk-0.qcow2"
        );
        assert_eq!(
            spec.all_params().get("volume").map(String::as_str),
            Some("local:105/vm-105-disk-0.qcow2")
        );
        let lvm = delete_volume("pve-01", "local-lvm", "local-lvm:vm-105-disk-1")?;
        assert_eq!(
            lvm.encoded_path(),
            "/nodes/pve-01/storage/local-lvm/content/local-lvm:vm-105-disk-1"
        );
        // Paths without a value to encode are sent as they are written.
        let cfg = guest_config("pve-01", GuestKind::Lxc, 101)?;
        assert_eq!(cfg.encoded_path(), cfg.concrete_path());
        Ok(())
    }

    #[test]
    fn volume_deletes_name_a_volume_of_their_storage() {
        for (storage, volume) in [
            ("local-lvm", "local:vm-105-disk-1"),
            ("local-lvm", "vm-105-disk-1"),
            ("local-lvm", "local-lvm:"),
            ("local", "local:../etc/passwd"),
            ("local", "local:/abs"),
            ("local", "local:a b"),
            ("bad id", "bad id:x"),
        ] {
            let r = delete_volume("pve-01", storage, volume);
            assert!(
                matches!(r, Err(Error::Config(_))),
                "{volume} on {storage}: {r:?}"
            );
        }
        assert!(storage_content("pve-01", "-x").is_err());
    }

    #[test]
    fn catalog_has_no_invalid_entries() {
        let catalog = request_catalog();
        assert!(catalog.len() > 20);
        for spec in &catalog {
            assert_ne!(spec.path, "/invalid-representative-request", "{spec:?}");
        }
    }
}
