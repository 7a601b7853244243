//! A storage's content and the removal of a volume against the scripted fake node: the
//! client's requests and decoding, and `PveBackend`'s reading of references (a cluster of
//! several nodes, pending changes, linked clones) and its error classes, which the
//! simulator (a single node) cannot show.

use crate::support::*;
use castellan_backend::{Backend, BackendError, FailureClass, StorageVolume};
use castellan_core::Target;
use castellan_pve::{PveBackend, StorageContentEntry};
use serde_json::json;
use std::collections::BTreeMap;

const CONTENT: &str = "/nodes/pve-01/storage/shared/content";

fn backend(fake: &Fake) -> Result<PveBackend, castellan_pve::Error> {
    Ok(PveBackend::new(fake.client()?, NODE))
}

fn class_of<T: std::fmt::Debug>(r: Result<T, BackendError>) -> Result<BackendError, String> {
    r.map(|v| format!("expected an error, got {v:?}"))
        .map_or_else(Ok, Err)
}

#[tokio::test]
async fn storage_content_is_every_entry_with_a_volume_id() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        CONTENT,
        vec![ok(json!([
            {"volid": "shared:vm-106-disk-0", "size": "2048", "content": "rootdir", "format": "raw"},
            {"volid": "shared:vm-105-disk-0", "size": 1024, "vmid": "105", "content": "images"},
            {"size": 1, "content": "images"},
            {"volid": "shared:iso/x.iso", "content": "iso", "size": "lots"}
        ]))],
    );
    let listed = fake.client()?.storage_content(NODE, "shared").await?;
    assert_eq!(
        listed,
        [
            StorageContentEntry {
                volid: "shared:iso/x.iso".into(),
                size: None,
                vmid: None,
                content: Some("iso".into()),
            },
            StorageContentEntry {
                volid: "shared:vm-105-disk-0".into(),
                size: Some(1024),
                vmid: Some(105),
                content: Some("images".into()),
            },
            StorageContentEntry {
                volid: "shared:vm-106-disk-0".into(),
                size: Some(2048),
                vmid: None,
                content: Some("rootdir".into()),
            },
        ]
    );
    // All content types: no `content` or `vmid` filter is sent.
    assert_eq!(fake.seen()[0].query, None);

    fake.route("GET", CONTENT, vec![ok(json!({"volid": "shared:x"}))]);
    let e = fake.client()?.storage_content(NODE, "shared").await;
    assert!(
        matches!(e, Err(castellan_pve::Error::Decode { .. })),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn references_across_the_cluster_pending_changes_and_linked_clones() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        CONTENT,
        vec![ok(json!([
            {"volid": "shared:vm-105-disk-0", "vmid": 105, "content": "images", "size": 1024},
            // No vmid field: the owner is read from the name.
            {"volid": "shared:vm-106-disk-0", "content": "rootdir", "size": "2048"},
            {"volid": "shared:base-900-disk-0", "vmid": 900, "content": "images", "size": 4096},
            {"volid": "shared:base-900-disk-0/vm-150-disk-0", "vmid": 150, "content": "rootdir", "size": 4096},
            {"volid": "shared:vm-160-disk-0", "vmid": 160, "content": "images", "size": 1},
            {"volid": "shared:vm-161-disk-0", "vmid": 161, "content": "images", "size": 1},
            {"volid": "shared:vm-162-disk-0", "vmid": 162, "content": "images", "size": 1},
            {"volid": "shared:vm-999-disk-0", "vmid": 999, "content": "images", "approximate-size": 8},
            {"volid": "shared:backup/vzdump-qemu-999-2026_01_01-00_00_00.vma.zst", "vmid": 999,
             "content": "backup", "size": 5}
        ]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![ok(json!([{"vmid": "150", "status": "running"}]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/qemu",
        vec![ok(json!([{"vmid": 160, "status": "running"}]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/150/pending",
        vec![ok(json!([
            {"key": "rootfs", "value": "shared:base-900-disk-0/vm-150-disk-0,size=4K"},
            {"key": "mp0", "value": "/mnt/bind,mp=/srv"},
            {"key": "hostname", "value": "shared:vm-999-disk-0"}
        ]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/qemu/160/pending",
        vec![ok(json!([
            {"key": "scsi0", "value": "shared:vm-160-disk-0,size=1K"},
            // Its removal is pending: the running VM still has it.
            {"key": "scsi1", "value": "shared:vm-161-disk-0,size=1K", "delete": 1},
            // Its addition is pending.
            {"key": "scsi2", "pending": "shared:vm-162-disk-0,size=1K"},
            {"key": "ide2", "value": "none,media=cdrom"}
        ]))],
    );
    fake.route(
        "GET",
        "/cluster/resources",
        vec![ok(json!([
            {"vmid": 105, "node": "pve-02", "type": "qemu"},
            {"vmid": "106", "node": "pve-03", "type": "lxc"},
            {"vmid": 150, "node": "pve-01", "type": "lxc"},
            {"vmid": 160, "node": "pve-01", "type": "qemu"}
        ]))],
    );
    let volumes = backend(&fake)?
        .storage_volumes(&Target::storage("shared")?)
        .await?
        .ok_or("a node of guests has storages")?;
    let v = |size: u64, by: Option<&str>| StorageVolume {
        size,
        referenced_by: by.map(str::to_owned),
    };
    let want: BTreeMap<String, StorageVolume> = [
        (
            "shared:vm-105-disk-0",
            v(1024, Some("VM 105, which node pve-02 has")),
        ),
        (
            "shared:vm-106-disk-0",
            v(2048, Some("VM 106, which node pve-03 has")),
        ),
        (
            "shared:base-900-disk-0",
            v(4096, Some("CT 150's rootfs (a linked clone of it)")),
        ),
        (
            "shared:base-900-disk-0/vm-150-disk-0",
            v(4096, Some("CT 150's rootfs")),
        ),
        ("shared:vm-160-disk-0", v(1, Some("VM 160's scsi0"))),
        ("shared:vm-161-disk-0", v(1, Some("VM 160's scsi1"))),
        (
            "shared:vm-162-disk-0",
            v(1, Some("VM 160's scsi2 (pending)")),
        ),
        ("shared:vm-999-disk-0", v(8, None)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(volumes, want);
    Ok(())
}

#[tokio::test]
async fn no_volume_is_called_unreferenced_without_every_configuration() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        CONTENT,
        vec![ok(json!([
            {"volid": "shared:vm-999-disk-0", "vmid": 999, "content": "images", "size": 1}
        ]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![ok(json!([{"vmid": "150", "status": "running"}]))],
    );
    fake.route("GET", "/nodes/pve-01/qemu", vec![ok(json!([]))]);
    fake.route("GET", "/cluster/resources", vec![ok(json!([]))]);
    let target = Target::storage("shared")?;

    // A configuration the node will not give.
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/150/pending",
        vec![pve_error(500, "unable to read config")],
    );
    let e = class_of(backend(&fake)?.storage_volumes(&target).await)?;
    assert_eq!(e.class, FailureClass::Retry, "{e}");
    assert!(e.message.contains("CT 150"), "{e}");

    // A guest that vanished meanwhile: the storage is not gone, look again.
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/150/pending",
        vec![pve_error(
            500,
            "Configuration file 'nodes/pve-01/lxc/150.conf' does not exist",
        )],
    );
    let e = class_of(backend(&fake)?.storage_volumes(&target).await)?;
    assert_eq!(e.class, FailureClass::Retry, "{e}");

    fake.route("GET", "/nodes/pve-01/lxc/150/pending", vec![ok(json!([]))]);
    let volumes = backend(&fake)?.storage_volumes(&target).await?;
    assert_eq!(
        volumes.and_then(|v| v.get("shared:vm-999-disk-0").cloned()),
        Some(StorageVolume {
            size: 1,
            referenced_by: None
        })
    );
    Ok(())
}

#[tokio::test]
async fn a_storage_this_node_does_not_have_is_gone() -> TestResult {
    let fake = Fake::start().await?;
    let target = Target::storage("shared")?;
    for (message, class) in [
        ("storage 'shared' does not exist", FailureClass::Gone),
        (
            "storage 'shared' is not available on node 'pve-01'",
            FailureClass::Gone,
        ),
        ("storage 'shared' is disabled", FailureClass::Retry),
        ("storage 'shared' is not online", FailureClass::Retry),
        (
            "unable to activate storage 'shared' - directory '/mnt/pve/shared' does not exist or is unreachable",
            FailureClass::Retry,
        ),
        // Another storage's absence is not this one's.
        ("storage 'shared2' does not exist", FailureClass::Retry),
    ] {
        fake.route("GET", CONTENT, vec![pve_error(500, message)]);
        let e = class_of(backend(&fake)?.storage_volumes(&target).await)?;
        assert_eq!(e.class, class, "{message}: {e}");
        assert!(e.message.contains(message), "{e}");
        let e = class_of(
            backend(&fake)?
                .remove_storage_volume(&target, "shared:vm-999-disk-0")
                .await,
        )?;
        assert_eq!(e.class, class, "{message}: {e}");
    }
    assert!(fake.seen().iter().all(|s| s.method == "GET"));
    Ok(())
}

#[tokio::test]
async fn removal_answers_and_refusals() -> TestResult {
    let fake = Fake::start().await?;
    let target = Target::storage("shared")?;
    fake.route(
        "GET",
        CONTENT,
        vec![ok(json!([
            {"volid": "shared:999/vm-999-disk-0.qcow2", "vmid": 999, "content": "images", "size": 1}
        ]))],
    );
    let volid = "shared:999/vm-999-disk-0.qcow2";
    let path = format!("{CONTENT}/shared:999%2Fvm-999-disk-0.qcow2");
    let u = upid("imgdel", 999).replace(":imgdel:999:", ":imgdel:999@shared:");

    fake.route("DELETE", &path, vec![ok(json!(u))]);
    let task = backend(&fake)?
        .remove_storage_volume(&target, volid)
        .await?;
    assert_eq!(task.map(|t| t.as_str().to_owned()), Some(u.clone()));
    let deletes: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, path);
    // No `delay`: the node answers with its task, which a journal can follow.
    assert_eq!(deletes[0].query, None);

    // A node that removed it before answering.
    fake.route("DELETE", &path, vec![ok(json!(null))]);
    assert_eq!(
        backend(&fake)?
            .remove_storage_volume(&target, volid)
            .await?,
        None
    );

    // The node's refusal, in its words.
    fake.route(
        "DELETE",
        &path,
        vec![pve_error(
            403,
            "Permission check failed (/storage/shared, Datastore.Allocate)",
        )],
    );
    let e = class_of(backend(&fake)?.remove_storage_volume(&target, volid).await)?;
    assert_eq!(e.class, FailureClass::Retry, "{e}");
    assert!(e.message.contains("Datastore.Allocate"), "{e}");

    // Sent, and perhaps carried out: an answer that is no task is not a refusal.
    fake.route("DELETE", &path, vec![ok(json!("removed"))]);
    let e = class_of(backend(&fake)?.remove_storage_volume(&target, volid).await)?;
    assert_eq!(e.class, FailureClass::Unknown, "{e}");

    // The storage vanished between the listing and the removal.
    fake.route(
        "DELETE",
        &path,
        vec![pve_error(500, "storage 'shared' does not exist")],
    );
    let e = class_of(backend(&fake)?.remove_storage_volume(&target, volid).await)?;
    assert_eq!(e.class, FailureClass::Gone, "{e}");
    Ok(())
}
