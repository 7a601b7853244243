//! `PveBackend`'s storage side against the stateful simulator `pvesim`: a storage's disk
//! volumes with what references each, and the removal of one, end to end (a volume id
//! with a '/' travels as one path segment, the node's `imgdel` task is waited for, and the
//! volume is gone from the simulator afterwards).

use std::time::Duration;

use castellan_backend::{Backend, BackendError, FailureClass, StorageVolume};
use castellan_core::Target;
use castellan_core::model::GuestKind;
use castellan_pve::{ApiToken, ClientConfig, PveBackend, PveClient, RetryPolicy, TlsMode};
use pvesim::{Seed, SimConfig, SimHandle};
use url::Url;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NODE: &str = "pve-01";
const TOKEN: &str = "root@pam!castellan=4f1c2b7e-8d3a-4e5f-9a6b-0c1d2e3f4a5b";

const SEED: &str = r#"
[[storage]]
id = "local"
type = "dir"
content = ["images", "rootdir", "backup", "iso", "vztmpl"]
total = "100G"

[[storage]]
id = "local-lvm"
type = "lvmthin"
content = ["images", "rootdir"]
total = "200G"

# Its rootfs and mp0 are referenced; its unused0 names a volume whose owner (777) is no
# guest anywhere, and which is referenced all the same.
[[guest]]
vmid = 105
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "web"
ostype = "debian"
rootfs = "local-lvm:vm-105-disk-0,size=8G"
mp0 = "local-lvm:vm-105-disk-1,mp=/srv,size=4G"
unused0 = "local-lvm:vm-777-disk-0"

[[guest]]
vmid = 200
kind = "qemu"
status = "running"
[guest.config]
name = "db"
scsi0 = "local:200/vm-200-disk-0.qcow2,size=4G"

# CT 105's own disk, which its configuration does not name.
[[volume]]
volid = "local-lvm:vm-105-disk-2"
size = "2G"

# Orphans: their owner 900 is no guest anywhere.
[[volume]]
volid = "local-lvm:vm-900-disk-0"
size = "3G"

[[volume]]
volid = "local:900/vm-900-disk-0.raw"
size = "1G"

[[volume]]
volid = "local:iso/debian-13.iso"
size = "600M"

[[volume]]
volid = "local:vztmpl/debian-13-standard_13.1-1_amd64.tar.zst"
size = "120M"

[[backup]]
storage = "local"
vmid = 900
kind = "qemu"
size = "1G"
"#;

async fn sim() -> Result<SimHandle, Box<dyn std::error::Error>> {
    let mut cfg = SimConfig::new(NODE, TOKEN, Seed::from_toml_str(SEED)?);
    cfg.task_duration = Duration::from_millis(20);
    Ok(pvesim::start(cfg, "127.0.0.1:0".parse()?).await?)
}

fn backend(sim: &SimHandle) -> Result<PveBackend, Box<dyn std::error::Error>> {
    let base: Url = sim.base_url().parse()?;
    let token: ApiToken = TOKEN.parse()?;
    let mut cfg = ClientConfig::new(base, token);
    cfg.tls = TlsMode::Insecure;
    cfg.timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(10),
    };
    Ok(PveBackend::new(PveClient::new(cfg)?, NODE))
}

fn volume(size: u64, referenced_by: Option<&str>) -> StorageVolume {
    StorageVolume {
        size,
        referenced_by: referenced_by.map(str::to_owned),
    }
}

fn expect_class<T: std::fmt::Debug>(
    r: Result<T, BackendError>,
    class: FailureClass,
) -> Result<BackendError, String> {
    match r {
        Err(e) if e.class == class => Ok(e),
        other => Err(format!("expected a {class:?} error, got {other:?}")),
    }
}

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn a_storages_disks_with_what_references_each() -> TestResult {
    let sim = sim().await?;
    let pve = backend(&sim)?;

    let lvm = pve.storage_volumes(&Target::storage("local-lvm")?).await?;
    let want = [
        (
            "local-lvm:vm-105-disk-0",
            volume(8 * GIB, Some("CT 105's rootfs")),
        ),
        (
            "local-lvm:vm-105-disk-1",
            volume(4 * GIB, Some("CT 105's mp0")),
        ),
        (
            "local-lvm:vm-105-disk-2",
            volume(2 * GIB, Some("CT 105 on this node")),
        ),
        (
            "local-lvm:vm-777-disk-0",
            volume(0, Some("CT 105's unused0")),
        ),
        ("local-lvm:vm-900-disk-0", volume(3 * GIB, None)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(lvm, Some(want));

    // Backups, ISOs and templates on the same storage are never listed.
    let local = pve.storage_volumes(&Target::storage("local")?).await?;
    let want = [
        (
            "local:200/vm-200-disk-0.qcow2",
            volume(4 * GIB, Some("VM 200's scsi0")),
        ),
        ("local:900/vm-900-disk-0.raw", volume(GIB, None)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(local, Some(want));
    assert!(
        sim.volumes("local").iter().any(|v| v.content == "backup"),
        "the seed has a backup on local"
    );

    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_storage_the_node_lacks_is_gone_and_other_targets_are_refused() -> TestResult {
    let sim = sim().await?;
    let pve = backend(&sim)?;
    let nfs = Target::storage("nfs-archive")?;

    let e = expect_class(pve.storage_volumes(&nfs).await, FailureClass::Gone)?;
    assert!(e.message.contains("nfs-archive"), "{e}");
    expect_class(
        pve.remove_storage_volume(&nfs, "nfs-archive:vm-900-disk-0")
            .await,
        FailureClass::Gone,
    )?;

    // A storage is not looked at as a guest; a guest has no storage volumes.
    let e = expect_class(
        pve.look(&Target::storage("local-lvm")?).await,
        FailureClass::Retry,
    )?;
    assert!(e.message.contains("storage"), "{e}");
    let ct = Target::guest(GuestKind::Lxc, 105);
    expect_class(pve.storage_volumes(&ct).await, FailureClass::Retry)?;
    expect_class(
        pve.remove_storage_volume(&ct, "local-lvm:vm-105-disk-0")
            .await,
        FailureClass::Retry,
    )?;
    assert!(pve.serves(&Target::storage("local-lvm")?));

    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_orphan_disk_is_removed_through_the_nodes_task() -> TestResult {
    let sim = sim().await?;
    let pve = backend(&sim)?;
    let local = Target::storage("local")?;
    let volid = "local:900/vm-900-disk-0.raw";
    assert!(sim.volume(volid).is_some());

    sim.clear_requests();
    let task = pve
        .remove_storage_volume(&local, volid)
        .await?
        .ok_or("the node answers a volume removal with its task")?;
    assert!(task.as_str().contains(":imgdel:900@local:"), "{task}");
    assert_eq!(pve.wait_task(&task).await?, 0);
    assert_eq!(sim.volume(volid), None);

    // The volume id travelled as one path segment, its '/' encoded.
    let deletes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].path,
        "/api2/json/nodes/pve-01/storage/local/content/local:900%2Fvm-900-disk-0.raw"
    );
    assert_eq!(deletes[0].status, 200);

    // Gone now: neither listed nor removable again.
    let listed = pve.storage_volumes(&local).await?.unwrap_or_default();
    assert!(!listed.contains_key(volid), "{listed:?}");
    expect_class(
        pve.remove_storage_volume(&local, volid).await,
        FailureClass::Gone,
    )?;

    // The same on an LVM-thin storage, whose volume ids have no '/'.
    let lvm = Target::storage("local-lvm")?;
    let task = pve
        .remove_storage_volume(&lvm, "local-lvm:vm-900-disk-0")
        .await?
        .ok_or("a task")?;
    pve.wait_task(&task).await?;
    assert_eq!(sim.volume("local-lvm:vm-900-disk-0"), None);
    assert!(sim.volume("local-lvm:vm-105-disk-0").is_some());

    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn removals_outside_the_storages_disks_are_refused_before_anything_is_sent() -> TestResult {
    let sim = sim().await?;
    let pve = backend(&sim)?;
    let lvm = Target::storage("local-lvm")?;
    let local = Target::storage("local")?;
    sim.clear_requests();

    // Another storage's volume, or no volume id at all.
    for volid in [
        "local:900/vm-900-disk-0.raw",
        "vm-900-disk-0",
        "local-lvm:",
        "local-lvm-2:vm-900-disk-0",
    ] {
        let e = expect_class(
            pve.remove_storage_volume(&lvm, volid).await,
            FailureClass::Retry,
        )?;
        assert!(
            e.message.contains("not a volume of storage local-lvm"),
            "{e}"
        );
    }
    // A volume the storage does not have.
    expect_class(
        pve.remove_storage_volume(&lvm, "local-lvm:vm-901-disk-0")
            .await,
        FailureClass::Gone,
    )?;
    // A backup, an ISO and a template are not disks: a wipe never removes them.
    let backup = sim
        .volumes("local")
        .into_iter()
        .find(|v| v.content == "backup")
        .ok_or("the seeded backup")?;
    for volid in [
        backup.volid.as_str(),
        "local:iso/debian-13.iso",
        "local:vztmpl/debian-13-standard_13.1-1_amd64.tar.zst",
    ] {
        let e = expect_class(
            pve.remove_storage_volume(&local, volid).await,
            FailureClass::Retry,
        )?;
        assert!(e.message.contains("disks only"), "{e}");
        assert!(sim.volume(volid).is_some(), "{volid}");
    }
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        sim.requests()
    );

    sim.shutdown().await;
    Ok(())
}

/// A decommission's storages: the node's own that may hold disks. A shared storage holds
/// other nodes' data and a storage for backups or ISOs only holds no disks: neither is
/// listed.
#[tokio::test]
async fn the_nodes_own_disk_storages_exclude_shared_and_diskless_ones() -> TestResult {
    let seed = format!(
        "{SEED}\n[[storage]]\nid = \"nfs\"\ntype = \"nfs\"\ncontent = [\"images\"]\nshared = true\ntotal = \"1T\"\n\n\
         [[storage]]\nid = \"isos\"\ntype = \"dir\"\ncontent = [\"iso\", \"backup\"]\ntotal = \"10G\"\n"
    );
    let mut cfg = SimConfig::new(NODE, TOKEN, Seed::from_toml_str(&seed)?);
    cfg.task_duration = Duration::from_millis(20);
    let sim = pvesim::start(cfg, "127.0.0.1:0".parse()?).await?;
    let pve = backend(&sim)?;
    assert_eq!(
        pve.local_storages().await?,
        Some(vec!["local".to_owned(), "local-lvm".to_owned()])
    );
    assert!(pve.serves(&Target::node(NODE)?));
    assert!(!pve.serves(&Target::node("pve-02")?));
    Ok(())
}
