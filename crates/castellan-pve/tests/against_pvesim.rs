//! The client against the stateful simulator `pvesim`: every call, every fault kind, and the
//! requests pvesim saw checked against the PVE API schema (`crates/pve-schema/data/`).

mod common;

use castellan_pve::{
    ApiToken, ClientConfig, ConfigUpdate, Error, Fingerprint, GuestKind, PveClient, RetryPolicy,
    ShutdownOptions, TaskOk, TlsMode, WaitOptions,
};
use pvesim::{Fault, FaultRule, Seed, SimConfig, SimHandle};
use std::time::Duration;
use url::Url;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NODE: &str = "pve-01";
const TOKEN: &str = "root@pam!castellan=4f1c2b7e-8d3a-4e5f-9a6b-0c1d2e3f4a5b";

const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "web"
memory = 512
swap = 512
cores = 1
ostype = "debian"
rootfs = "local-lvm:vm-101-disk-0,size=8G"
net0 = "name=eth0,bridge=vmbr0,ip=dhcp"
description = "web container\n"

[[guest]]
vmid = 100
kind = "qemu"
status = "stopped"
[guest.config]
name = "db"
memory = "2048"
cores = 2
sockets = 1
ostype = "l26"
scsi0 = "local-lvm:vm-100-disk-0,size=32G"
net0 = "virtio=BC:24:11:00:00:01,bridge=vmbr0"

[[guest]]
vmid = 102
kind = "lxc"
status = "running"
[guest.config]
hostname = "cache"
memory = 256
tags = "castellan;cache"

[[guest]]
vmid = 103
kind = "qemu"
status = "running"
[guest.config]
name = "app"
memory = "1024"
cores = 1
"#;

fn wait() -> WaitOptions {
    WaitOptions {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(10),
    }
}

async fn sim_with(
    faults: Vec<FaultRule>,
    tls: bool,
) -> Result<SimHandle, Box<dyn std::error::Error>> {
    let mut cfg = SimConfig::new(NODE, TOKEN, Seed::from_toml_str(SEED)?);
    cfg.task_duration = Duration::from_millis(20);
    cfg.faults = faults;
    cfg.tls = tls;
    Ok(pvesim::start(cfg, "127.0.0.1:0".parse()?).await?)
}

fn client_for(
    sim: &SimHandle,
    f: impl FnOnce(&mut ClientConfig),
) -> Result<PveClient, Box<dyn std::error::Error>> {
    let base: Url = sim.base_url().to_string().parse()?;
    let token: ApiToken = TOKEN.parse()?;
    let mut cfg = ClientConfig::new(base, token);
    cfg.tls = match sim.fingerprint() {
        Some(fp) => TlsMode::Fingerprint(fp.parse::<Fingerprint>()?),
        None => TlsMode::Insecure,
    };
    cfg.timeout = Duration::from_secs(5);
    cfg.retry = fast_retry();
    f(&mut cfg);
    Ok(PveClient::new(cfg)?)
}

fn rule(
    vmid: Option<u32>,
    method: Option<&str>,
    suffix: Option<&str>,
    times: Option<u32>,
    fault: Fault,
) -> FaultRule {
    FaultRule {
        vmid,
        method: method.map(str::to_owned),
        path_suffix: suffix.map(str::to_owned),
        times,
        fault,
    }
}

/// Every request pvesim served, checked against the real schema.
fn check_logged_requests(sim: &SimHandle) -> TestResult {
    let text = common::schema_text();
    let raw: serde_json::Value = serde_json::from_str(&text)?;
    let schema = pve_schema::Schema::from_json_str(&text)?;
    let requests = sim.requests();
    assert!(!requests.is_empty());
    let mut problems = Vec::new();
    for r in &requests {
        let path = r.path.strip_prefix("/api2/json").unwrap_or(&r.path);
        let Some((template, path_params)) = schema.match_path(path) else {
            problems.push(format!("{} {path}: no such path in the schema", r.method));
            continue;
        };
        let mut all = r.params.clone();
        all.extend(path_params);
        problems.extend(common::independent_check(&raw, &r.method, template, &all));
        if let Err(e) = schema.validate(&r.method, path, &r.params) {
            problems.push(format!("{} {path} {:?}: {e}", r.method, r.params));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[tokio::test]
async fn every_call_against_the_simulator() -> TestResult {
    let sim = sim_with(Vec::new(), false).await?;
    let client = client_for(&sim, |_| {})?;

    let version = client.version().await?;
    assert!(!version.version.is_empty());

    let lxc = client.list_guests(NODE, GuestKind::Lxc).await?;
    assert_eq!(lxc.iter().map(|g| g.vmid).collect::<Vec<_>>(), [101, 102]);
    assert_eq!(lxc[0].status, "stopped");
    assert_eq!(lxc[0].name.as_deref(), Some("web"));
    // PVE sorts tags when it writes the config.
    assert_eq!(lxc[1].tags.as_deref(), Some("cache;castellan"));
    let qemu = client.list_guests(NODE, GuestKind::Qemu).await?;
    assert_eq!(qemu.iter().map(|g| g.vmid).collect::<Vec<_>>(), [100, 103]);
    assert!(
        qemu.iter()
            .all(|g| g.kind == GuestKind::Qemu && !g.template)
    );

    let st = client.guest_status(NODE, GuestKind::Qemu, 103).await?;
    assert_eq!(st.status, "running");
    assert_eq!(st.name.as_deref(), Some("app"));

    // LXC: synchronous PUT with digest.
    let cfg = client.guest_config(NODE, GuestKind::Lxc, 101).await?;
    assert_eq!(cfg.get_u64("memory"), Some(512));
    assert_eq!(cfg.get_str("hostname").as_deref(), Some("web"));
    let update = ConfigUpdate::new(cfg.digest.clone())
        .set("memory", "1024")
        .set("description", "web container, resized\n")
        .delete("swap");
    assert_eq!(
        client
            .update_config(NODE, GuestKind::Lxc, 101, &update)
            .await?,
        None
    );
    let after = client.guest_config(NODE, GuestKind::Lxc, 101).await?;
    assert_eq!(after.get_u64("memory"), Some(1024));
    assert!(!after.contains("swap"));
    assert_ne!(after.digest, cfg.digest);
    let view = sim.guest(101).ok_or("guest 101 missing in pvesim")?;
    assert_eq!(view.config.get("memory").map(String::as_str), Some("1024"));
    assert_eq!(view.digest, after.digest);

    // The old digest is now stale.
    let stale = ConfigUpdate::new(cfg.digest.clone()).set("memory", "768");
    let err = client
        .update_config(NODE, GuestKind::Lxc, 101, &stale)
        .await;
    assert!(matches!(err, Err(Error::DigestMismatch)), "{err:?}");

    // QEMU: asynchronous POST returning a qmconfig task.
    let cfg = client.guest_config(NODE, GuestKind::Qemu, 100).await?;
    let upid = client
        .update_config(
            NODE,
            GuestKind::Qemu,
            100,
            &ConfigUpdate::new(cfg.digest).set("cores", "4"),
        )
        .await?
        .ok_or("qemu config update returned no upid")?;
    assert_eq!(upid.kind(), "qmconfig");
    assert_eq!(upid.node(), NODE);
    assert_eq!(upid.user(), "root@pam!castellan");
    client.wait_task(NODE, &upid, wait()).await?;
    let cfg = client.guest_config(NODE, GuestKind::Qemu, 100).await?;
    assert_eq!(cfg.get_u64("cores"), Some(4));

    // A running VM keeps a hot-unpluggable change pending.
    let cfg = client.guest_config(NODE, GuestKind::Qemu, 103).await?;
    let upid = client
        .update_config(
            NODE,
            GuestKind::Qemu,
            103,
            &ConfigUpdate::new(cfg.digest).set("sockets", "2"),
        )
        .await?
        .ok_or("qemu config update returned no upid")?;
    client.wait_task(NODE, &upid, wait()).await?;
    let pending = client.pending(NODE, GuestKind::Qemu, 103).await?;
    assert!(
        pending
            .iter()
            .any(|p| p.key == "sockets" && p.pending.is_some()),
        "{pending:?}"
    );

    // Power actions on both kinds.
    for (kind, vmid) in [(GuestKind::Lxc, 101), (GuestKind::Qemu, 100)] {
        let u = client.start(NODE, kind, vmid).await?;
        assert_eq!(
            client.wait_task(NODE, &u, wait()).await?,
            TaskOk { warnings: 0 }
        );
        assert_eq!(
            client.guest_status(NODE, kind, vmid).await?.status,
            "running"
        );
        let u = client.reboot(NODE, kind, vmid).await?;
        client.wait_task(NODE, &u, wait()).await?;
        let u = client
            .shutdown_with(
                NODE,
                kind,
                vmid,
                ShutdownOptions {
                    timeout: Some(30),
                    force_stop: true,
                },
            )
            .await?;
        client.wait_task(NODE, &u, wait()).await?;
        assert_eq!(
            client.guest_status(NODE, kind, vmid).await?.status,
            "stopped"
        );
        let u = client.start(NODE, kind, vmid).await?;
        client.wait_task(NODE, &u, wait()).await?;
        let u = client.shutdown(NODE, kind, vmid).await?;
        client.wait_task(NODE, &u, wait()).await?;
        let u = client.start(NODE, kind, vmid).await?;
        client.wait_task(NODE, &u, wait()).await?;
        let u = client.stop(NODE, kind, vmid).await?;
        let st = client.task_status(NODE, &u).await?;
        assert_eq!(st.kind.as_deref(), Some(u.kind()));
        client.wait_task(NODE, &u, wait()).await?;
        assert_eq!(
            client.guest_status(NODE, kind, vmid).await?.status,
            "stopped"
        );
    }

    // Deletion, with and without purge; the guest is then gone.
    let u = client
        .delete_guest(
            NODE,
            GuestKind::Lxc,
            101,
            castellan_pve::DeleteOptions {
                purge: true,
                ..Default::default()
            },
        )
        .await?;
    client.wait_task(NODE, &u, wait()).await?;
    let u = client
        .delete_guest(
            NODE,
            GuestKind::Qemu,
            100,
            castellan_pve::DeleteOptions::default(),
        )
        .await?;
    client.wait_task(NODE, &u, wait()).await?;
    assert!(sim.guest(101).is_none() && sim.guest(100).is_none());
    let err = client.guest_config(NODE, GuestKind::Lxc, 101).await;
    assert!(matches!(err, Err(Error::NotFound { .. })), "{err:?}");
    assert_eq!(client.list_guests(NODE, GuestKind::Lxc).await?.len(), 1);

    check_logged_requests(&sim)?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tls_with_the_simulators_pinned_fingerprint() -> TestResult {
    let sim = sim_with(Vec::new(), true).await?;
    assert!(sim.fingerprint().is_some());
    let client = client_for(&sim, |_| {})?;
    assert!(!client.version().await?.version.is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error() -> TestResult {
    let sim = sim_with(Vec::new(), false).await?;
    let client = client_for(&sim, |c| {
        if let Ok(t) = "root@pam!castellan=00000000-0000-0000-0000-000000000000".parse() {
            c.token = t;
        }
    })?;
    let err = client.version().await;
    assert!(
        matches!(err, Err(Error::Auth { status: 401, .. })),
        "{err:?}"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn latency_below_the_timeout_is_tolerated_and_above_it_retried_for_reads() -> TestResult {
    let slow = sim_with(
        vec![rule(
            None,
            Some("GET"),
            None,
            None,
            Fault::Latency { ms: 50 },
        )],
        false,
    )
    .await?;
    let client = client_for(&slow, |_| {})?;
    assert_eq!(client.list_guests(NODE, GuestKind::Qemu).await?.len(), 2);
    slow.shutdown().await;

    let sim = sim_with(
        vec![
            rule(
                Some(102),
                Some("GET"),
                Some("status/current"),
                Some(1),
                Fault::Latency { ms: 800 },
            ),
            rule(
                Some(101),
                Some("POST"),
                Some("status/start"),
                Some(1),
                Fault::Latency { ms: 800 },
            ),
        ],
        false,
    )
    .await?;
    let client = client_for(&sim, |c| c.timeout = Duration::from_millis(300))?;
    // The read times out once and is re-sent.
    let started = std::time::Instant::now();
    let st = client.guest_status(NODE, GuestKind::Lxc, 102).await?;
    assert_eq!(st.status, "running");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The action times out and is not re-sent. pvesim abandons a request whose client went
    // away (a real node would have carried it out), so a re-send would be the only start
    // pvesim serves: none may show up, and the container stays stopped.
    let err = client.start(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Transport(m)) if m.contains("timed out")),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let starts = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lxc/101/status/start"))
        .count();
    assert_eq!(starts, 0, "a timed-out POST was re-sent");
    let status = sim.guest(101).map(|g| g.status);
    assert_eq!(status, Some(pvesim::GuestStatus::Stopped));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn internal_errors_in_both_shapes() -> TestResult {
    let sim = sim_with(
        vec![
            rule(
                Some(101),
                Some("POST"),
                Some("status/start"),
                Some(1),
                Fault::InternalError {
                    message: "storage 'local-lvm' is not online".into(),
                },
            ),
            rule(
                Some(100),
                Some("POST"),
                Some("status/start"),
                Some(1),
                Fault::StatusLineOnly {
                    message: "unable to activate storage".into(),
                },
            ),
        ],
        false,
    )
    .await?;
    let client = client_for(&sim, |_| {})?;
    let err = client.start(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 500, message, .. }) if message == "storage 'local-lvm' is not online"),
        "{err:?}"
    );
    let err = client.start(NODE, GuestKind::Qemu, 100).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 500, message, .. }) if message == "unable to activate storage"),
        "{err:?}"
    );
    // Neither POST was re-sent.
    let starts = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/status/start"))
        .count();
    assert_eq!(starts, 2);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn lock_contention_is_retried_until_it_clears() -> TestResult {
    let sim = sim_with(
        vec![rule(
            Some(101),
            Some("PUT"),
            Some("config"),
            Some(2),
            Fault::LockTimeout,
        )],
        false,
    )
    .await?;
    let client = client_for(&sim, |_| {})?;
    let cfg = client.guest_config(NODE, GuestKind::Lxc, 101).await?;
    let update = ConfigUpdate::new(cfg.digest).set("cores", "2");
    assert_eq!(
        client
            .update_config(NODE, GuestKind::Lxc, 101, &update)
            .await?,
        None
    );
    let puts: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, [500, 500, 200]);
    assert_eq!(
        client
            .guest_config(NODE, GuestKind::Lxc, 101)
            .await?
            .get_u64("cores"),
        Some(2)
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_locked_guest_fails_after_the_retries() -> TestResult {
    let sim = sim_with(
        vec![rule(
            Some(102),
            None,
            None,
            Some(1),
            Fault::Locked {
                lock: "backup".into(),
            },
        )],
        false,
    )
    .await?;
    let client = client_for(&sim, |_| {})?;
    // The first request sets the lock; it stays until something removes it.
    let cfg = client.guest_config(NODE, GuestKind::Lxc, 102).await?;
    let update = ConfigUpdate::new(cfg.digest).set("memory", "512");
    let err = client
        .update_config(NODE, GuestKind::Lxc, 102, &update)
        .await;
    match &err {
        Err(e @ Error::Locked { message }) => {
            assert_eq!(message, "CT is locked (backup)");
            assert!(e.is_lock());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let puts = sim.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 4, "every attempt of the retry policy is used");
    let summary = client.list_guests(NODE, GuestKind::Lxc).await?;
    let lock = summary
        .iter()
        .find(|g| g.vmid == 102)
        .and_then(|g| g.lock.clone());
    assert_eq!(lock.as_deref(), Some("backup"));

    // Power actions check the lock in their worker, as PVE does: the task fails, and the
    // error still reads as a lock conflict.
    let u = client.stop(NODE, GuestKind::Lxc, 102).await?;
    let err = client.wait_task(NODE, &u, wait()).await;
    match &err {
        Err(e @ Error::TaskFailed { exitstatus, .. }) => {
            assert_eq!(exitstatus, "CT is locked (backup)");
            assert!(e.is_lock());
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn task_failure_and_task_warnings() -> TestResult {
    let exit = "command 'lxc-start -n 101' failed: exit code 1";
    let sim = sim_with(
        vec![
            rule(
                Some(101),
                Some("POST"),
                Some("status/start"),
                Some(1),
                Fault::TaskFailure {
                    exitstatus: exit.into(),
                },
            ),
            rule(
                Some(100),
                Some("POST"),
                Some("status/start"),
                Some(1),
                Fault::TaskWarnings { count: 2 },
            ),
        ],
        false,
    )
    .await?;
    let client = client_for(&sim, |_| {})?;
    let u = client.start(NODE, GuestKind::Lxc, 101).await?;
    let err = client.wait_task(NODE, &u, wait()).await;
    match &err {
        Err(Error::TaskFailed { upid, exitstatus }) => {
            assert_eq!(upid, u.as_str());
            assert_eq!(exitstatus, exit);
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    let u = client.start(NODE, GuestKind::Qemu, 100).await?;
    assert_eq!(
        client.wait_task(NODE, &u, wait()).await?,
        TaskOk { warnings: 2 }
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_guest_vanishing_mid_flight_is_not_found() -> TestResult {
    let sim = sim_with(
        vec![rule(
            Some(103),
            None,
            Some("config"),
            Some(1),
            Fault::Vanish,
        )],
        false,
    )
    .await?;
    let client = client_for(&sim, |_| {})?;
    assert_eq!(
        client
            .guest_status(NODE, GuestKind::Qemu, 103)
            .await?
            .status,
        "running"
    );
    let err = client.guest_config(NODE, GuestKind::Qemu, 103).await;
    assert!(
        matches!(&err, Err(e @ Error::NotFound { .. }) if e.is_not_found()),
        "{err:?}"
    );
    let configs = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/103/config"))
        .count();
    assert_eq!(configs, 1, "not found is not retried");
    assert!(sim.guest(103).is_none());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn faults_can_be_changed_at_run_time() -> TestResult {
    let sim = sim_with(Vec::new(), false).await?;
    let client = client_for(&sim, |_| {})?;
    sim.set_faults(vec![rule(
        None,
        Some("GET"),
        Some("qemu"),
        Some(1),
        Fault::InternalError {
            message: "boom".into(),
        },
    )]);
    // A 500 on a read is not a gateway error: reported, not retried.
    let err = client.list_guests(NODE, GuestKind::Qemu).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 500, message, .. }) if message == "boom"),
        "{err:?}"
    );
    assert_eq!(client.list_guests(NODE, GuestKind::Qemu).await?.len(), 2);
    sim.shutdown().await;
    Ok(())
}
