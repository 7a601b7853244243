//! pvesim's storage model and guest lifecycle over real HTTP: storage content, create,
//! restore, clone, template, vzdump, resize and destroy, with a real node's texts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Sim, enc};
use pvesim::{Fault, FaultRule, Seed};
use serde_json::{Value, json};

const SEED: &str = r#"
[[storage]]
id = "local"
type = "dir"
content = ["iso", "vztmpl", "backup"]
total = "100G"

[[storage]]
id = "local-lvm"
type = "lvmthin"
content = ["images", "rootdir"]
total = "200G"

[[storage]]
id = "small"
type = "dir"
content = ["images", "rootdir"]
total = "10G"

[[storage]]
id = "big"
type = "dir"
content = ["images"]
total = "4T"

[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "web"
rootfs = "local-lvm:vm-101-disk-0,size=8G"

[[guest]]
vmid = 102
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "batch"
rootfs = "local-lvm:vm-102-disk-0,size=4G"
mp0 = "local-lvm:vm-102-disk-1,mp=/data,size=2G"

[[guest]]
vmid = 104
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "keep"
protection = 1
rootfs = "local-lvm:vm-104-disk-0,size=4G"

[[guest]]
vmid = 100
kind = "qemu"
status = "stopped"
[guest.config]
name = "db"
scsi0 = "local-lvm:vm-100-disk-0,size=32G"
ide2 = "none,media=cdrom"
ide3 = "local:iso/debian.iso,media=cdrom"

[[guest]]
vmid = 103
kind = "qemu"
status = "stopped"
ha = true
[guest.config]
name = "ha-vm"
scsi0 = "local-lvm:vm-103-disk-0,size=8G"

[[guest]]
vmid = 105
kind = "qemu"
status = "running"
[guest.config]
name = "busy"
scsi0 = "local-lvm:vm-105-disk-0,size=8G"

[[guest]]
vmid = 106
kind = "qemu"
status = "stopped"
[guest.config]
name = "bigdisk"
scsi0 = "big:106/vm-106-disk-0.qcow2,size=512G"

[[backup]]
storage = "local"
vmid = 900
kind = "lxc"
size = "1G"

[[backup]]
storage = "local"
vmid = 901
kind = "qemu"
size = "2G"
notes = "first line\nsecond line"
protected = true
[backup.config]
name = "restored-vm"
cores = 2
scsi0 = "local-lvm:vm-901-disk-0,size=16G"
net0 = "virtio=BC:24:11:00:00:01,bridge=vmbr0"

[[volume]]
volid = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
size = "120M"

[[volume]]
volid = "local:iso/debian.iso"
size = "600M"

[[volume]]
volid = "local-lvm:vm-102-disk-5"
size = "1G"
"#;

const GIB: u64 = 1 << 30;
const LXC_BACKUP: &str = "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst";
const QEMU_BACKUP: &str = "local:backup/vzdump-qemu-901-2026_01_01-00_00_01.vma.zst";
const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

async fn start() -> Sim {
    common::start(SEED).await
}

fn rule(vmid: Option<u32>, suffix: Option<&str>, fault: Fault) -> FaultRule {
    FaultRule {
        vmid,
        method: None,
        path_suffix: suffix.map(str::to_string),
        times: Some(1),
        fault,
    }
}

fn content_url(storage: &str, volume: &str) -> String {
    format!("/nodes/pve-01/storage/{storage}/content/{}", enc(volume))
}

/// The `message` of a 500 reply (asserting the status).
async fn err(sim: &Sim, method: &str, rel: &str, params: &[(&str, &str)]) -> String {
    let (s, v) = sim.call(method, rel, params).await;
    assert_eq!(s, 500, "{method} {rel}: {v}");
    v["message"].as_str().unwrap_or_default().to_string()
}

/// The `errors` map of a 400 reply.
async fn param_err(sim: &Sim, method: &str, rel: &str, params: &[(&str, &str)]) -> Value {
    let (s, v) = sim.call(method, rel, params).await;
    assert_eq!(s, 400, "{method} {rel}: {v}");
    v["errors"].clone()
}

fn lock_of(sim: &Sim, vmid: u32) -> Option<String> {
    sim.handle.guest(vmid).and_then(|g| g.lock)
}

async fn config(sim: &Sim, kind: &str, vmid: u32) -> Value {
    let (s, v) = sim
        .get(&format!("/nodes/pve-01/{kind}/{vmid}/config"))
        .await;
    assert_eq!(s, 200, "{v}");
    v["data"].clone()
}

#[tokio::test]
async fn storage_content_lists_real_fields() {
    let sim = start().await;
    let (s, v) = sim.get("/nodes/pve-01/storage/local-lvm/content").await;
    assert_eq!(s, 200);
    let items = v["data"].as_array().unwrap();
    let ct = items
        .iter()
        .find(|i| i["volid"] == "local-lvm:vm-101-disk-0")
        .unwrap();
    assert_eq!(
        ct["content"], "rootdir",
        "a container's disk is listed as rootdir"
    );
    assert_eq!(ct["format"], "raw");
    assert_eq!(ct["size"], 8 * GIB);
    assert_eq!(ct["vmid"], 101);
    assert!(ct["ctime"].is_u64());
    let vm = items
        .iter()
        .find(|i| i["volid"] == "local-lvm:vm-100-disk-0")
        .unwrap();
    assert_eq!(vm["content"], "images");
    // the cdroms are not volumes of local-lvm; the unreferenced disk is listed
    assert!(
        items
            .iter()
            .any(|i| i["volid"] == "local-lvm:vm-102-disk-5")
    );
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/storage/local-lvm/content",
            &[("vmid", "102")],
        )
        .await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["volid"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "local-lvm:vm-102-disk-0",
            "local-lvm:vm-102-disk-1",
            "local-lvm:vm-102-disk-5"
        ]
    );
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/storage/local/content",
            &[("content", "backup")],
        )
        .await;
    let backups = v["data"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0]["volid"], LXC_BACKUP);
    assert_eq!(backups[0]["subtype"], "lxc");
    assert_eq!(backups[0]["format"], "tar.zst");
    assert_eq!(backups[0]["ctime"], 1_767_225_600u64);
    assert_eq!(backups[0]["vmid"], 900);
    assert_eq!(backups[1]["volid"], QEMU_BACKUP);
    assert_eq!(backups[1]["subtype"], "qemu");
    assert_eq!(
        backups[1]["notes"], "first line",
        "only the first line is listed"
    );
    assert_eq!(backups[1]["protected"], 1);
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/storage/local/content",
            &[("content", "vztmpl")],
        )
        .await;
    assert_eq!(v["data"][0]["volid"], TEMPLATE);
    assert_eq!(v["data"][0]["format"], "tzst");
    // images asked of a storage without that content: nothing
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/storage/local/content",
            &[("content", "images")],
        )
        .await;
    assert_eq!(v["data"], json!([]));
    assert_eq!(
        err(&sim, "GET", "/nodes/pve-01/storage/nope/content", &[]).await,
        "storage 'nope' does not exist\n"
    );
}

#[tokio::test]
async fn cluster_resources_state_and_handle_show_storages() {
    let sim = start().await;
    let (_, v) = sim
        .call("GET", "/cluster/resources", &[("type", "storage")])
        .await;
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    let lvm = list.iter().find(|r| r["storage"] == "local-lvm").unwrap();
    assert_eq!(lvm["id"], "storage/pve-01/local-lvm");
    assert_eq!(lvm["plugintype"], "lvmthin");
    assert_eq!(lvm["content"], "images,rootdir");
    assert_eq!(lvm["maxdisk"], 200 * GIB);
    // 8 + 4 + 2 + 4 + 32 + 8 + 8 + 1 GiB of disks
    assert_eq!(lvm["disk"], 67 * GIB);
    assert_eq!(lvm["shared"], 0);
    let (_, v) = sim
        .call("GET", "/cluster/resources", &[("type", "vm")])
        .await;
    let ha = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == 103)
        .unwrap();
    assert_eq!(ha["hastate"], "stopped");
    let (_, v) = sim.get("/nodes/pve-01/qemu/103/status/current").await;
    assert_eq!(v["data"]["ha"]["managed"], 1);
    let state: Value = sim
        .client
        .get(format!("{}/_sim/state", sim.handle.base_url()))
        .header("Authorization", format!("PVEAPIToken={}", common::TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["guests"].as_array().unwrap().len(), 7);
    let local = state["storages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "local")
        .unwrap();
    assert_eq!(local["volumes"].as_array().unwrap().len(), 4);
    assert_eq!(sim.handle.storage("small").unwrap().total, 10 * GIB);
    assert_eq!(sim.handle.volume(LXC_BACKUP).unwrap().size, GIB);
    assert!(sim.handle.ha_managed(103));
    assert_eq!(sim.handle.storages().len(), 4);
}

#[tokio::test]
async fn default_storages_without_seeded_ones() {
    let sim = common::start(
        "[[guest]]\nvmid = 100\nkind = \"lxc\"\nstatus = \"stopped\"\n[guest.config]\nrootfs = \"local-lvm:vm-100-disk-0,size=8G\"\n",
    )
    .await;
    let ids: Vec<String> = sim.handle.storages().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["local", "local-lvm"]);
    let local = sim.handle.storage("local").unwrap();
    assert_eq!((local.ty.as_str(), local.total), ("dir", 100 * GIB));
    assert_eq!(local.content, ["iso", "vztmpl", "backup"]);
    let lvm = sim.handle.storage("local-lvm").unwrap();
    assert_eq!(
        (lvm.ty.as_str(), lvm.total, lvm.used),
        ("lvmthin", 200 * GIB, 8 * GIB)
    );
}

#[tokio::test]
async fn volume_info_and_delete() {
    let sim = start().await;
    let (s, v) = sim
        .get(&content_url("local-lvm", "local-lvm:vm-100-disk-0"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"],
        json!({"path": "/dev/pve/vm-100-disk-0", "size": 32 * GIB, "used": 0, "format": "raw"})
    );
    // the volume name alone works too
    let (s, v) = sim.get(&content_url("local", QEMU_BACKUP)).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["notes"], "first line\nsecond line");
    assert_eq!(v["data"]["protected"], 1);
    assert_eq!(
        v["data"]["path"],
        "/var/lib/vz/dump/vzdump-qemu-901-2026_01_01-00_00_01.vma.zst"
    );
    assert_eq!(
        err(
            &sim,
            "GET",
            &content_url("local", "local:100/vm-100-disk-9.raw"),
            &[]
        )
        .await,
        "volume_size_info on 'local:100/vm-100-disk-9.raw' failed - no format\n"
    );
    let e = param_err(
        &sim,
        "GET",
        &content_url("local", "local-lvm:vm-100-disk-0"),
        &[],
    )
    .await;
    assert_eq!(e["volume"], "storage ID mismatch (local-lvm != local)\n");
    // delete: an imgdel task, a referenced volume is not protected by its config
    let (upid, status) = sim
        .task(
            "DELETE",
            &content_url("local-lvm", "local-lvm:vm-102-disk-1"),
            &[],
        )
        .await;
    assert!(upid.contains(":imgdel:102@local-lvm:"), "{upid}");
    assert_eq!(status, "OK");
    assert!(sim.handle.volume("local-lvm:vm-102-disk-1").is_none());
    assert!(sim.handle.guest(102).unwrap().config.contains_key("mp0"));
    let (_, status) = sim
        .task("DELETE", &content_url("local", QEMU_BACKUP), &[])
        .await;
    assert_eq!(
        status,
        "cannot remove protected volume 'backup/vzdump-qemu-901-2026_01_01-00_00_01.vma.zst' on 'local'"
    );
    assert!(sim.handle.volume(QEMU_BACKUP).is_some());
    let (upid, status) = sim
        .task(
            "DELETE",
            &content_url("local", "local:iso/nothere.iso"),
            &[],
        )
        .await;
    assert!(upid.contains(":imgdel:local:"), "{upid}");
    assert_eq!(status, "WARNINGS: 1");
    // `delay` waits for the task and answers null
    let (s, v) = sim
        .call(
            "DELETE",
            &content_url("local", LXC_BACKUP),
            &[("delay", "5")],
        )
        .await;
    assert_eq!((s, &v["data"]), (200, &Value::Null), "{v}");
    assert!(sim.handle.volume(LXC_BACKUP).is_none());
    assert_eq!(
        err(&sim, "DELETE", &content_url("nope", "nope:iso/x.iso"), &[]).await,
        "storage 'nope' does not exist\n"
    );
}

#[tokio::test]
async fn lxc_restore_creates_a_guest_under_a_create_lock() {
    let sim = start().await;
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "200"),
                ("ostemplate", LXC_BACKUP),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let upid = v["data"].as_str().unwrap().to_string();
    assert!(upid.contains(":vzrestore:200:"), "{upid}");
    assert_eq!(lock_of(&sim, 200).as_deref(), Some("create"));
    let (_, v) = sim.get("/cluster/nextid").await;
    assert_ne!(v["data"], "200");
    let st = sim.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    let c = config(&sim, "lxc", 200).await;
    assert_eq!(c["hostname"], "ct900");
    assert_eq!(c["rootfs"], "local-lvm:vm-200-disk-0,size=4G");
    assert!(c.get("lock").is_none());
    assert_eq!(
        sim.handle.volume("local-lvm:vm-200-disk-0").unwrap().size,
        4 * GIB
    );
    // refusals
    let restore = |vmid: &'static str| {
        vec![
            ("vmid", vmid),
            ("ostemplate", LXC_BACKUP),
            ("restore", "1"),
            ("storage", "local-lvm"),
        ]
    };
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc", &restore("101")).await,
        "CT 101 already exists on node 'pve-01'\n"
    );
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc", &restore("100")).await,
        "VM 100 already exists on node 'pve-01'\n"
    );
    let mut force = restore("101");
    force.push(("force", "1"));
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc", &force).await,
        "can't overwrite running container\n"
    );
    let mut force = restore("104");
    force.push(("force", "1"));
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc", &force).await,
        "unable to restore CT 104 - protection mode enabled\n"
    );
    // the default storage `local` holds no container directories
    let e = param_err(
        &sim,
        "POST",
        "/nodes/pve-01/lxc",
        &[
            ("vmid", "201"),
            ("ostemplate", LXC_BACKUP),
            ("restore", "1"),
        ],
    )
    .await;
    assert_eq!(
        e["storage"],
        "storage 'local' does not support container directories"
    );
    let e = err(
        &sim,
        "POST",
        "/nodes/pve-01/lxc",
        &[
            ("vmid", "201"),
            ("ostemplate", TEMPLATE),
            ("restore", "1"),
            ("storage", "local-lvm"),
        ],
    )
    .await;
    assert_eq!(
        e,
        format!("unable to use volume {TEMPLATE} - content type needs to be 'backup'\n")
    );
    let missing = "local:backup/vzdump-lxc-999-2026_01_01-00_00_00.tar.zst";
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "201"),
                ("ostemplate", missing),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        status,
        format!("unable to restore CT 201 - can't find file '{missing}'")
    );
    assert!(sim.handle.guest(201).is_none(), "a new CT is removed again");
}

#[tokio::test]
async fn lxc_force_restore_replaces_disks_and_config() {
    let sim = start().await;
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "102"),
                ("ostemplate", LXC_BACKUP),
                ("restore", "1"),
                ("force", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(status, "OK");
    let c = config(&sim, "lxc", 102).await;
    assert_eq!(c["hostname"], "ct900");
    // the new disk is allocated before the old ones go: the first free name is disk-2
    assert_eq!(c["rootfs"], "local-lvm:vm-102-disk-2,size=4G");
    assert!(c.get("mp0").is_none());
    assert!(sim.handle.volume("local-lvm:vm-102-disk-0").is_none());
    assert!(sim.handle.volume("local-lvm:vm-102-disk-1").is_none());
    // not referenced by the old config: stays
    assert!(sim.handle.volume("local-lvm:vm-102-disk-5").is_some());
}

#[tokio::test]
async fn lxc_create_from_template_and_out_of_space() {
    let sim = start().await;
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "210"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "local-lvm:8"),
                ("hostname", "fresh"),
                ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ],
        )
        .await;
    assert!(upid.contains(":vzcreate:210:"));
    assert_eq!(status, "OK");
    let c = config(&sim, "lxc", 210).await;
    assert_eq!(c["rootfs"], "local-lvm:vm-210-disk-0,size=8G");
    assert_eq!(c["ostype"], "debian");
    assert_eq!(c["unprivileged"], 1);
    assert_eq!(c["memory"], 512);
    assert_eq!(c["hostname"], "fresh");
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "211"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "small:20"),
            ],
        )
        .await;
    assert!(
        status.starts_with(
            "unable to create CT 211 - unable to create image: qemu-img: /mnt/pve/small/images/211/vm-211-disk-0.raw: "
        ) && status.ends_with("No space left on device"),
        "{status}"
    );
    assert!(sim.handle.guest(211).is_none());
    assert!(sim.handle.volumes("small").is_empty());
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "212"),
                ("ostemplate", TEMPLATE),
                ("mp0", "local-lvm:1,mp=/x")
            ],
        )
        .await,
        "mount points configured, but 'rootfs' not set - aborting\n"
    );
}

#[tokio::test]
async fn qemu_create_and_restore() {
    let sim = start().await;
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[
                ("vmid", "300"),
                ("name", "new-vm"),
                ("scsi0", "local-lvm:16,iothread=1"),
                ("efidisk0", "local-lvm:1,efitype=4m"),
                ("net0", "virtio,bridge=vmbr0"),
            ],
        )
        .await;
    assert!(upid.contains(":qmcreate:300:"));
    assert_eq!(status, "OK");
    let c = config(&sim, "qemu", 300).await;
    assert_eq!(c["scsi0"], "local-lvm:vm-300-disk-1,iothread=1,size=16G");
    assert_eq!(
        c["efidisk0"],
        "local-lvm:vm-300-disk-0,efitype=4m,size=528K"
    );
    assert!(
        regex::Regex::new("^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$")
            .unwrap()
            .is_match(c["net0"].as_str().unwrap()),
        "{}",
        c["net0"]
    );
    assert_eq!(c["boot"], "order=scsi0;net0");
    assert!(c["smbios1"].as_str().unwrap().starts_with("uuid="));
    assert_eq!(
        sim.handle.volume("local-lvm:vm-300-disk-1").unwrap().size,
        16 * GIB
    );
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/qemu", &[("vmid", "100")]).await,
        "unable to create VM 100 - VM 100 already exists on node 'pve-01'\n"
    );
    let e = param_err(
        &sim,
        "POST",
        "/nodes/pve-01/qemu",
        &[("vmid", "301"), ("scsi0", "local:8")],
    )
    .await;
    assert_eq!(e["storage"], "storage 'local' does not support vm images");
    // restore
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[("vmid", "301"), ("archive", QEMU_BACKUP), ("unique", "1")],
        )
        .await;
    assert!(upid.contains(":qmrestore:301:"));
    assert_eq!(status, "OK");
    let c = config(&sim, "qemu", 301).await;
    assert_eq!(c["name"], "restored-vm");
    assert_eq!(c["scsi0"], "local-lvm:vm-301-disk-0,size=16G");
    assert_ne!(
        c["net0"], "virtio=BC:24:11:00:00:01,bridge=vmbr0",
        "unique: new MAC"
    );
    let e = param_err(
        &sim,
        "POST",
        "/nodes/pve-01/qemu",
        &[
            ("vmid", "302"),
            ("archive", QEMU_BACKUP),
            ("scsi0", "local-lvm:1"),
        ],
    )
    .await;
    assert_eq!(e["scsi0"], "option conflicts with option 'archive'");
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[
                ("vmid", "302"),
                ("archive", QEMU_BACKUP),
                ("storage", "local"),
            ],
        )
        .await;
    assert_eq!(
        status,
        "Content type 'images' is not available on storage 'local'"
    );
    // a failed restore leaves the config, without the lock
    assert_eq!(sim.handle.guest(302).unwrap().lock, None);
    // force over a protected VM: checked in the worker (note the doubled dash)
    let (s, _) = sim
        .call(
            "PUT",
            "/nodes/pve-01/qemu/106/config",
            &[("protection", "1")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[("vmid", "106"), ("archive", QEMU_BACKUP), ("force", "1")],
        )
        .await;
    assert_eq!(
        status,
        "unable to restore VM 106 - - protection mode enabled"
    );
    assert_eq!(lock_of(&sim, 106), None);
    assert_eq!(config(&sim, "qemu", 106).await["name"], "bigdisk");
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[("vmid", "105"), ("archive", QEMU_BACKUP), ("force", "1")],
        )
        .await;
    assert_eq!(status, "unable to restore VM 105 - vm is running");
    // force over a stopped VM replaces its disks
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu",
            &[("vmid", "100"), ("archive", QEMU_BACKUP), ("force", "1")],
        )
        .await;
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "qemu", 100).await["scsi0"],
        "local-lvm:vm-100-disk-1,size=16G"
    );
    assert!(sim.handle.volume("local-lvm:vm-100-disk-0").is_none());
}

#[tokio::test]
async fn lxc_clone_locks_source_and_target() {
    let sim = start().await;
    let e = err(
        &sim,
        "POST",
        "/nodes/pve-01/lxc/102/clone",
        &[("newid", "220"), ("full", "0")],
    )
    .await;
    // keys are checked in sorted order: mp0 before rootfs
    assert_eq!(
        e,
        "Linked clone feature for 'local-lvm:vm-102-disk-1' is not available\n"
    );
    assert_eq!(lock_of(&sim, 102), None);
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/lxc/102/clone",
            &[("newid", "101")]
        )
        .await,
        "CT 101 already exists on node 'pve-01'\n"
    );
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/lxc/101/clone",
            &[("newid", "220")]
        )
        .await,
        "Full clone of a running container is only possible from a snapshot\n"
    );
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/lxc/102/clone",
            &[("newid", "220"), ("hostname", "copy")],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let upid = v["data"].as_str().unwrap().to_string();
    assert!(upid.contains(":vzclone:102:"), "{upid}");
    assert_eq!(lock_of(&sim, 102).as_deref(), Some("disk"));
    assert_eq!(lock_of(&sim, 220).as_deref(), Some("create"));
    assert_eq!(sim.wait_task(&upid).await["exitstatus"], "OK");
    assert_eq!(lock_of(&sim, 102), None);
    let c = config(&sim, "lxc", 220).await;
    assert_eq!(c["hostname"], "copy");
    assert_eq!(c["rootfs"], "local-lvm:vm-220-disk-0,size=4G");
    assert_eq!(c["mp0"], "local-lvm:vm-220-disk-1,mp=/data,size=2G");
    assert!(c.get("lock").is_none());
}

#[tokio::test]
async fn templates_and_linked_clones() {
    let sim = start().await;
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc/101/template", &[]).await,
        "you can't convert a CT to template if the CT is running\n"
    );
    let (s, v) = sim
        .call("POST", "/nodes/pve-01/lxc/102/template", &[])
        .await;
    assert_eq!((s, &v["data"]), (200, &Value::Null), "LXC answers null");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let c = config(&sim, "lxc", 102).await;
    assert_eq!(c["template"], 1);
    assert_eq!(c["rootfs"], "local-lvm:base-102-disk-0,size=4G");
    assert!(sim.handle.volume("local-lvm:base-102-disk-0").is_some());
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/tasks",
            &[("typefilter", "vztemplate")],
        )
        .await;
    assert_eq!(v["total"], 1);
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/lxc/102/template", &[]).await,
        "you can't convert a template to a template\n"
    );
    // a template clones linked by default
    let (_, status) = sim
        .task("POST", "/nodes/pve-01/lxc/102/clone", &[("newid", "230")])
        .await;
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "lxc", 230).await["rootfs"],
        "local-lvm:vm-230-disk-0,size=4G"
    );
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/lxc/102/clone",
            &[("newid", "231"), ("full", "0"), ("storage", "local-lvm")]
        )
        .await,
        "parameter 'storage' not allowed for linked clones\n"
    );
    // QEMU
    assert_eq!(
        err(&sim, "POST", "/nodes/pve-01/qemu/105/template", &[]).await,
        "you can't convert a VM to template if VM is running\n"
    );
    let (upid, status) = sim
        .task("POST", "/nodes/pve-01/qemu/100/template", &[])
        .await;
    assert!(upid.contains(":qmtemplate:100:"));
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "qemu", 100).await["scsi0"],
        "local-lvm:base-100-disk-0,size=32G"
    );
    let (s, v) = sim
        .call("POST", "/nodes/pve-01/qemu/100/clone", &[("newid", "310")])
        .await;
    assert_eq!(s, 200, "{v}");
    let upid = v["data"].as_str().unwrap().to_string();
    assert!(upid.contains(":qmclone:100:"));
    assert_eq!(lock_of(&sim, 310).as_deref(), Some("clone"));
    assert_eq!(
        lock_of(&sim, 100),
        None,
        "a VM clone takes no config lock on the source"
    );
    assert_eq!(sim.wait_task(&upid).await["exitstatus"], "OK");
    let c = config(&sim, "qemu", 310).await;
    assert_eq!(c["name"], "Copy-of-VM-db");
    assert_eq!(c["scsi0"], "local-lvm:vm-310-disk-0,size=32G");
    assert_eq!(c["ide2"], "none,media=cdrom");
    assert!(c.get("template").is_none());
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/qemu/103/clone",
            &[("newid", "311"), ("full", "0")]
        )
        .await,
        "Linked clone feature is not supported for 'local-lvm:vm-103-disk-0' (scsi0)\n"
    );
    assert_eq!(
        err(
            &sim,
            "POST",
            "/nodes/pve-01/qemu/103/clone",
            &[("newid", "310")]
        )
        .await,
        "unable to create VM 310: config file already exists\n"
    );
    // a full clone that does not fit
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu/103/clone",
            &[("newid", "312"), ("storage", "small"), ("full", "1")],
        )
        .await;
    assert_eq!(status, "OK", "8G fits in 10G");
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu/103/clone",
            &[("newid", "313"), ("storage", "small"), ("full", "1")],
        )
        .await;
    assert!(
        status.starts_with("clone failed: unable to create image: qemu-img: "),
        "{status}"
    );
    assert!(sim.handle.guest(313).is_none());
}

#[tokio::test]
async fn vzdump_locks_the_guest_and_leaves_an_archive() {
    let sim = start().await;
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/vzdump",
            &[
                ("vmid", "101"),
                ("storage", "local"),
                ("compress", "zstd"),
                ("mode", "snapshot"),
                ("notes-template", "{{guestname}} on {{node}}"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let upid = v["data"].as_str().unwrap().to_string();
    assert!(upid.contains(":vzdump:101:"), "{upid}");
    // while it runs: lock backup everywhere
    assert_eq!(config(&sim, "lxc", 101).await["lock"], "backup");
    let (_, v) = sim.get("/nodes/pve-01/lxc/101/status/current").await;
    assert_eq!(v["data"]["lock"], "backup");
    let (_, v) = sim
        .call("GET", "/cluster/resources", &[("type", "vm")])
        .await;
    let r = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == 101)
        .unwrap()
        .clone();
    assert_eq!(r["lock"], "backup");
    let e = err(
        &sim,
        "PUT",
        "/nodes/pve-01/lxc/101/config",
        &[("cores", "2")],
    )
    .await;
    assert!(e.contains("is locked (backup)"), "{e}");
    let e = err(&sim, "DELETE", "/nodes/pve-01/lxc/101", &[("force", "1")]).await;
    assert!(e.contains("is locked (backup)"), "{e}");
    let st = sim.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(lock_of(&sim, 101), None);
    let (_, v) = sim
        .call(
            "GET",
            "/nodes/pve-01/storage/local/content",
            &[("content", "backup"), ("vmid", "101")],
        )
        .await;
    let item = &v["data"][0];
    let re = regex::Regex::new(
        r"^local:backup/vzdump-lxc-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$",
    )
    .unwrap();
    assert!(re.is_match(item["volid"].as_str().unwrap()), "{item}");
    assert_eq!(item["size"], GIB, "8G of disks, compressed to an eighth");
    assert_eq!(item["notes"], "web on pve-01");
    assert_eq!(item["subtype"], "lxc");
    let (_, log) = sim
        .get(&format!("/nodes/pve-01/tasks/{}/log", enc(&upid)))
        .await;
    let lines: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"INFO: Starting Backup of VM 101 (lxc)"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"INFO: Backup job finished successfully"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn vzdump_failures() {
    let sim = start().await;
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/vzdump",
            &[("vmid", "102"), ("storage", "local-lvm")],
        )
        .await;
    assert!(upid.contains(":vzdump:102:"));
    assert_eq!(
        status,
        "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type"
    );
    assert_eq!(lock_of(&sim, 102), None);
    // an injected worker failure: the lock goes, no archive stays
    sim.handle.set_faults(vec![rule(
        Some(102),
        Some("vzdump"),
        Fault::TaskFailure {
            exitstatus: "job errors".into(),
        },
    )]);
    let before = sim.handle.volumes("local").len();
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/vzdump",
            &[("vmid", "102"), ("storage", "local")],
        )
        .await;
    assert_eq!(status, "job errors");
    assert_eq!(lock_of(&sim, 102), None);
    assert_eq!(sim.handle.volumes("local").len(), before);
    // a guest locked by something else fails, the others are backed up
    sim.handle.set_faults(vec![rule(
        Some(104),
        None,
        Fault::Locked {
            lock: "snapshot".into(),
        },
    )]);
    let (s, _) = sim.get("/nodes/pve-01/lxc/104/config").await;
    assert_eq!(s, 200);
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/vzdump",
            &[("vmid", "102,104"), ("storage", "local")],
        )
        .await;
    assert!(upid.contains(":vzdump::"), "no ID with two guests: {upid}");
    assert_eq!(status, "job errors");
    let (_, log) = sim
        .get(&format!("/nodes/pve-01/tasks/{}/log", enc(&upid)))
        .await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["t"] == "ERROR: Backup of VM 104 failed - CT is locked (snapshot)"),
        "{log}"
    );
    assert_eq!(sim.handle.volumes("local").len(), before + 1);
    let e = param_err(
        &sim,
        "POST",
        "/nodes/pve-01/vzdump",
        &[("storage", "local")],
    )
    .await;
    assert_eq!(e["vmid"], "property is missing");
    let e = param_err(
        &sim,
        "POST",
        "/nodes/pve-01/vzdump",
        &[
            ("vmid", "101"),
            ("storage", "local"),
            ("notes-template", "{{bogus}}"),
        ],
    )
    .await;
    assert_eq!(
        e["notes-template"],
        "found unknown: variable 'bogus' at char 2\n"
    );
}

#[tokio::test]
async fn resize_lxc_and_qemu() {
    let sim = start().await;
    let (upid, status) = sim
        .task(
            "PUT",
            "/nodes/pve-01/lxc/102/resize",
            &[("disk", "rootfs"), ("size", "+4G")],
        )
        .await;
    assert!(upid.contains(":resize:102:"), "{upid}");
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "lxc", 102).await["rootfs"],
        "local-lvm:vm-102-disk-0,size=8G"
    );
    assert_eq!(
        sim.handle.volume("local-lvm:vm-102-disk-0").unwrap().size,
        8 * GIB
    );
    let lxc = "/nodes/pve-01/lxc/102/resize";
    assert_eq!(
        err(&sim, "PUT", lxc, &[("disk", "rootfs"), ("size", "4G")]).await,
        "unable to shrink disk size\n"
    );
    assert_eq!(
        err(&sim, "PUT", lxc, &[("disk", "rootfs"), ("size", "8G")]).await,
        "disk is already at specified size\n"
    );
    assert_eq!(
        err(&sim, "PUT", lxc, &[("disk", "mp7"), ("size", "+1G")]).await,
        "unable to parse volume ID ''\n"
    );
    assert_eq!(
        err(
            &sim,
            "PUT",
            lxc,
            &[
                ("disk", "rootfs"),
                ("size", "+1G"),
                ("digest", "0000000000000000000000000000000000000000")
            ]
        )
        .await,
        "detected modified configuration - file changed by other user? Try again.\n"
    );
    sim.handle.set_faults(vec![rule(
        Some(102),
        None,
        Fault::Locked {
            lock: "backup".into(),
        },
    )]);
    assert_eq!(
        err(&sim, "PUT", lxc, &[("disk", "rootfs"), ("size", "+1G")]).await,
        "CT is locked (backup)\n"
    );
    // QEMU: everything in the worker
    let qm = "/nodes/pve-01/qemu/100/resize";
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi0"), ("size", "+512M")])
        .await;
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "qemu", 100).await["scsi0"],
        "local-lvm:vm-100-disk-0,size=33280M"
    );
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi0"), ("size", "33280M")])
        .await;
    assert_eq!(status, "OK", "same size: a no-op");
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi0"), ("size", "1G")])
        .await;
    assert_eq!(status, "shrinking disks is not supported");
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi5"), ("size", "1G")])
        .await;
    assert_eq!(status, "disk 'scsi5' does not exist");
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "ide2"), ("size", "1G")])
        .await;
    assert_eq!(status, "unable to parse volume ID 'none'");
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "ide3"), ("size", "+1G")])
        .await;
    assert_eq!(status, "you can't resize a cdrom");
    let (_, status) = sim
        .task(
            "PUT",
            qm,
            &[
                ("disk", "scsi0"),
                ("size", "+1G"),
                ("digest", "0000000000000000000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(status, "checksum mismatch (file change by other user?)");
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi0"), ("size", "+500G")])
        .await;
    assert!(
        status.starts_with("lvcreate 'pve/vm-100-disk-0' error:"),
        "no space: {status}"
    );
    sim.handle.set_faults(vec![rule(
        Some(100),
        None,
        Fault::Locked {
            lock: "migrate".into(),
        },
    )]);
    let (_, status) = sim
        .task("PUT", qm, &[("disk", "scsi0"), ("size", "+1G")])
        .await;
    assert_eq!(status, "VM is locked (migrate)");
    // format_size: 512G + 512G is written as 1T
    let (_, status) = sim
        .task(
            "PUT",
            "/nodes/pve-01/qemu/106/resize",
            &[("disk", "scsi0"), ("size", "+512G")],
        )
        .await;
    assert_eq!(status, "OK");
    assert_eq!(
        config(&sim, "qemu", 106).await["scsi0"],
        "big:106/vm-106-disk-0.qcow2,size=1T"
    );
}

#[tokio::test]
async fn destroy_rules_ha_purge_and_unreferenced_disks() {
    let sim = start().await;
    assert_eq!(
        err(&sim, "DELETE", "/nodes/pve-01/qemu/103", &[]).await,
        "unable to remove VM 103 - used in HA resources and purge parameter not set.\n"
    );
    let (_, status) = sim
        .task("DELETE", "/nodes/pve-01/qemu/103", &[("purge", "1")])
        .await;
    assert_eq!(status, "OK");
    assert!(sim.handle.guest(103).is_none());
    assert!(!sim.handle.ha_managed(103));
    assert!(sim.handle.volume("local-lvm:vm-103-disk-0").is_none());
    assert_eq!(
        err(&sim, "DELETE", "/nodes/pve-01/lxc/104", &[]).await,
        "can't remove CT 104 - protection mode enabled\n"
    );
    // without destroy-unreferenced-disks (default off) only referenced disks go
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "150"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "local-lvm:1"),
            ],
        )
        .await;
    assert_eq!(status, "OK");
    let (_, status) = sim.task("DELETE", "/nodes/pve-01/lxc/102", &[]).await;
    assert_eq!(status, "OK");
    assert!(sim.handle.volume("local-lvm:vm-102-disk-0").is_none());
    assert!(sim.handle.volume("local-lvm:vm-102-disk-1").is_none());
    assert!(sim.handle.volume("local-lvm:vm-102-disk-5").is_some());
    // with it, also the disks of the VMID no config references
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/lxc",
            &[
                ("vmid", "102"),
                ("ostemplate", TEMPLATE),
                ("rootfs", "local-lvm:1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    sim.wait_task(v["data"].as_str().unwrap()).await;
    let (_, status) = sim
        .task(
            "DELETE",
            "/nodes/pve-01/lxc/102",
            &[("destroy-unreferenced-disks", "1")],
        )
        .await;
    assert_eq!(status, "OK");
    let left: Vec<String> = sim
        .handle
        .volumes("local-lvm")
        .into_iter()
        .filter(|v| v.vmid == Some(102))
        .map(|v| v.volid)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(sim.handle.volume("local-lvm:vm-150-disk-0").is_some());
}

#[tokio::test]
async fn nextid_skips_guests_being_created() {
    let mut cfg = common::config(SEED);
    cfg.task_duration = Duration::from_millis(300);
    let sim = common::start_cfg(cfg).await;
    let (_, v) = sim.get("/cluster/nextid").await;
    assert_eq!(v["data"], "107");
    let (s, _) = sim
        .call(
            "POST",
            "/nodes/pve-01/qemu",
            &[("vmid", "107"), ("scsi0", "local-lvm:1")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = sim.get("/cluster/nextid").await;
    assert_eq!(v["data"], "108");
    assert_eq!(lock_of(&sim, 107).as_deref(), Some("create"));
    let (_, v) = sim.get("/nodes/pve-01/qemu").await;
    let vm = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 107)
        .unwrap()
        .clone();
    assert_eq!(vm["lock"], "create");
}

#[tokio::test]
async fn vzdump_takes_twice_the_task_duration() {
    let mut cfg = common::config(SEED);
    cfg.task_duration = Duration::from_millis(150);
    let sim = common::start_cfg(cfg).await;
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/vzdump",
            &[("vmid", "102"), ("storage", "local")],
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        lock_of(&sim, 102).as_deref(),
        Some("backup"),
        "still running after 1x"
    );
    assert_eq!(pvesim::VZDUMP_DURATION_FACTOR, 2);
    sim.wait_task(v["data"].as_str().unwrap()).await;
    assert_eq!(lock_of(&sim, 102), None);
}

#[test]
fn seed_storage_backup_and_volume_errors() {
    let cases = [
        (
            "[[storage]]\nid = \"x\"\ntype = \"dir\"\ncontent = [\"iso\"]\ntotal = 1\n",
            "storage 0: field 'id'",
        ),
        (
            "[[storage]]\nid = \"s1\"\ntype = \"ceph\"\ncontent = []\ntotal = 1\n",
            "storage 0: field 'type'",
        ),
        (
            "[[storage]]\nid = \"s1\"\ntype = \"lvmthin\"\ncontent = [\"backup\"]\ntotal = 1\n",
            "storage 0: field 'content'",
        ),
        (
            "[[storage]]\nid = \"s1\"\ntype = \"dir\"\ncontent = []\ntotal = \"lots\"\n",
            "storage 0: field 'total'",
        ),
        (
            "[[backup]]\nstorage = \"local\"\nvmid = 900\nkind = \"vm\"\nsize = 1\n",
            "backup 0: field 'kind'",
        ),
        (
            "[[backup]]\nstorage = \"local\"\nvmid = 900\nkind = \"lxc\"\nsize = 1\n[backup.config]\ncores = 0\n",
            "backup 0: field 'config.cores'",
        ),
        (
            "[[volume]]\nvolid = \"local:iso/x.iso\"\nsize = -1\n",
            "volume 0: field 'size'",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\nha = 3\n",
            "invalid",
        ),
    ];
    for (toml, want) in cases {
        let err = Seed::from_toml_str(toml).expect_err(toml).to_string();
        assert!(err.contains(want), "{toml}\n=> {err}\nwanted {want}");
    }
    let seed = Seed::from_toml_str(SEED).unwrap();
    assert_eq!(seed.storages.len(), 4);
    assert_eq!(seed.backups[1].config["cores"], "2");
    assert!(seed.guests.iter().any(|g| g.vmid == 103 && g.ha));
}
