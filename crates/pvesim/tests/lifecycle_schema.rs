//! The lifecycle calls (storage content, resize, ...) served with the full real schema
//! (`--schema crates/pve-schema/data/api-schema-subset.json`) as with the embedded subset;
//! `pve-schema`'s own tests check the embedded subset entry by entry against the real one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// With `--schema` on the real file the same lifecycle calls are served.
#[tokio::test]
async fn lifecycle_calls_work_with_the_full_schema() {
    let mut cfg = common::config(common::SEED);
    cfg.schema_file = Some(common::full_schema_path());
    let sim = common::start_cfg(cfg).await;
    let (s, v) = sim.get("/nodes/pve-01/storage/local-lvm/content").await;
    assert_eq!(s, 200, "{v}");
    let (_, status) = sim
        .task(
            "PUT",
            "/nodes/pve-01/lxc/101/resize",
            &[("disk", "rootfs"), ("size", "+1G")],
        )
        .await;
    assert_eq!(status, "OK");
    let (s, v) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/resize",
            &[("disk", "rootfs"), ("size", "1X")],
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["errors"]["size"],
        "value does not match the regex pattern"
    );
}
