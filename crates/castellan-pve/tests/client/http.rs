//! Client behaviour against the scripted fake node: requests, decoding, errors, retries.

use crate::support::*;
use castellan_pve::{
    ConfigUpdate, Error, GuestKind, RetryPolicy, ShutdownOptions, TaskOk, Upid, WaitOptions,
};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn version_sends_the_token_header() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        "/version",
        vec![ok(
            json!({"version": "9.1.3", "release": "9.1", "repoid": "a1b2c3d4e5f6"}),
        )],
    );
    let v = fake.client()?.version().await?;
    assert_eq!(v.version, "9.1.3");
    assert_eq!(v.release, "9.1");
    assert_eq!(v.console, None);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].auth.as_deref(),
        Some(format!("PVEAPIToken={TOKEN}").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn lists_tolerate_pve_inconsistencies() -> TestResult {
    let fake = Fake::start().await?;
    // Shapes as a real node sends them: LXC vmids as strings, `lock: ""`, numbers as
    // strings; QEMU vmids as numbers, template as 1.
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![ok(json!([
            {"vmid": "102", "type": "lxc", "status": "stopped", "name": "db", "lock": "",
             "maxmem": "1073741824", "cpus": "2", "template": "", "tags": "castellan"},
            {"vmid": "101", "type": "lxc", "status": "running", "name": "web", "lock": "backup",
             "maxmem": 536870912, "cpus": 1, "uptime": 1234, "template": 0}
        ]))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/qemu",
        vec![ok(json!([
            {"vmid": 100, "status": "stopped", "name": "tmpl", "template": 1, "maxmem": 2147483648u64,
             "cpus": 2, "qmpstatus": "stopped"},
            {"vmid": 105, "status": "running", "name": 4711, "template": true}
        ]))],
    );
    let client = fake.client()?;
    let lxc = client.list_guests(NODE, GuestKind::Lxc).await?;
    assert_eq!(lxc.iter().map(|g| g.vmid).collect::<Vec<_>>(), [101, 102]);
    assert!(lxc.iter().all(|g| g.kind == GuestKind::Lxc));
    assert_eq!(lxc[0].lock.as_deref(), Some("backup"));
    assert_eq!(lxc[1].lock, None);
    assert_eq!(lxc[1].maxmem, Some(1 << 30));
    assert_eq!(lxc[1].cpus, Some(2.0));
    assert_eq!(lxc[1].tags.as_deref(), Some("castellan"));
    assert!(!lxc[1].template);
    let qemu = client.list_guests(NODE, GuestKind::Qemu).await?;
    assert_eq!(qemu.len(), 2);
    assert!(qemu[0].template && qemu[1].template);
    assert_eq!(qemu[0].kind, GuestKind::Qemu);
    assert_eq!(qemu[1].name.as_deref(), Some("4711"));
    assert_eq!(qemu[1].maxmem, None);
    Ok(())
}

#[tokio::test]
async fn status_config_and_pending() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        "/nodes/pve-01/qemu/100/status/current",
        vec![ok(json!({
            "vmid": 100, "status": "running", "qmpstatus": "paused", "name": "vm", "template": "0",
            "ha": {"managed": 0}, "uptime": "77", "tags": "a;b"
        }))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/101/config",
        vec![ok(json!({
            "digest": "8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4", "hostname": "web", "memory": 512,
            "cores": "2", "onboot": 1, "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
            "description": "managed\n"
        }))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/101/pending",
        vec![ok(json!([
            {"key": "memory", "value": 512, "pending": 1024},
            {"key": "swap", "value": "0", "delete": 1},
            {"key": "hostname", "value": "web"}
        ]))],
    );
    let client = fake.client()?;
    let st = client.guest_status(NODE, GuestKind::Qemu, 100).await?;
    assert_eq!(st.status, "running");
    assert_eq!(st.qmpstatus.as_deref(), Some("paused"));
    assert!(!st.template);
    assert_eq!(st.uptime, Some(77));
    let cfg = client.guest_config(NODE, GuestKind::Lxc, 101).await?;
    assert_eq!(cfg.digest, "8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4");
    assert!(!cfg.values.contains_key("digest"));
    assert_eq!(cfg.get_str("memory").as_deref(), Some("512"));
    assert_eq!(cfg.get_u64("cores"), Some(2));
    assert_eq!(cfg.get_str("description").as_deref(), Some("managed\n"));
    let pending = client.pending(NODE, GuestKind::Lxc, 101).await?;
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[0].pending, Some(json!(1024)));
    assert!(pending[1].delete);
    assert!(!pending[2].delete && pending[2].pending.is_none());
    Ok(())
}

#[tokio::test]
async fn config_without_digest_is_a_decode_error() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "GET",
        "/nodes/pve-01/lxc/101/config",
        vec![ok(json!({"memory": 512}))],
    );
    let err = fake.client()?.guest_config(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Decode { what, .. }) if what.contains("lxc 101")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn lxc_update_is_a_synchronous_put_with_digest() -> TestResult {
    let fake = Fake::start().await?;
    fake.route("PUT", "/nodes/pve-01/lxc/101/config", vec![ok(json!(null))]);
    let update = ConfigUpdate::new("8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4")
        .set("memory", "1024")
        .set("description", "line one\nline two & more")
        .delete("swap")
        .delete("nameserver");
    let res = fake
        .client()?
        .update_config(NODE, GuestKind::Lxc, 101, &update)
        .await?;
    assert_eq!(res, None);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let params = seen[0].params();
    assert_eq!(
        params.get("digest").map(String::as_str),
        Some("8b0e27ef0f7c3c1bd4f1e0a7a0d5b6c9e2f1a3b4")
    );
    assert_eq!(params.get("memory").map(String::as_str), Some("1024"));
    assert_eq!(
        params.get("description").map(String::as_str),
        Some("line one\nline two & more")
    );
    assert_eq!(
        params.get("delete").map(String::as_str),
        Some("swap,nameserver")
    );
    assert_eq!(params.len(), 4);
    Ok(())
}

#[tokio::test]
async fn qemu_update_is_an_asynchronous_post() -> TestResult {
    let fake = Fake::start().await?;
    let u = upid("qmconfig", 100);
    fake.route("POST", "/nodes/pve-01/qemu/100/config", vec![ok(json!(u))]);
    let update = ConfigUpdate::new("abc123").set("cores", "4");
    let res = fake
        .client()?
        .update_config(NODE, GuestKind::Qemu, 100, &update)
        .await?;
    let got = res.ok_or("qemu update returned no upid")?;
    assert_eq!(got.to_string(), u);
    assert_eq!(got.kind(), "qmconfig");
    assert_eq!(
        fake.seen()[0].params().get("digest").map(String::as_str),
        Some("abc123")
    );
    Ok(())
}

#[tokio::test]
async fn invalid_updates_send_nothing() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    let no_digest = ConfigUpdate::new("").set("memory", "1");
    let err = client
        .update_config(NODE, GuestKind::Lxc, 101, &no_digest)
        .await;
    assert!(
        matches!(&err, Err(Error::Config(m)) if m.contains("no digest")),
        "{err:?}"
    );
    let err = client.guest_config(NODE, GuestKind::Lxc, 42).await;
    assert!(
        matches!(&err, Err(Error::Config(m)) if m.contains("invalid vmid 42")),
        "{err:?}"
    );
    assert!(fake.seen().is_empty());
    Ok(())
}

#[tokio::test]
async fn power_actions_and_delete_return_upids() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    for (kind, vmid, prefix) in [(GuestKind::Lxc, 101, "vz"), (GuestKind::Qemu, 100, "qm")] {
        for action in ["start", "stop", "shutdown", "reboot"] {
            let path = format!("/nodes/pve-01/{}/{vmid}/status/{action}", kind.as_str());
            fake.route(
                "POST",
                &path,
                vec![ok(json!(upid(&format!("{prefix}{action}"), vmid)))],
            );
        }
        let path = format!("/nodes/pve-01/{}/{vmid}", kind.as_str());
        fake.route(
            "DELETE",
            &path,
            vec![ok(json!(upid(&format!("{prefix}destroy"), vmid)))],
        );

        assert_eq!(
            client.start(NODE, kind, vmid).await?.kind(),
            format!("{prefix}start")
        );
        assert_eq!(
            client.stop(NODE, kind, vmid).await?.kind(),
            format!("{prefix}stop")
        );
        assert_eq!(
            client.shutdown(NODE, kind, vmid).await?.kind(),
            format!("{prefix}shutdown")
        );
        assert_eq!(
            client.reboot(NODE, kind, vmid).await?.kind(),
            format!("{prefix}reboot")
        );
        let opts = ShutdownOptions {
            timeout: Some(30),
            force_stop: true,
        };
        client.shutdown_with(NODE, kind, vmid, opts).await?;
        let d = client
            .delete_guest(
                NODE,
                kind,
                vmid,
                castellan_pve::DeleteOptions {
                    purge: true,
                    ..Default::default()
                },
            )
            .await?;
        assert_eq!(d.kind(), format!("{prefix}destroy"));
        assert_eq!(d.id(), vmid.to_string());
        client
            .delete_guest(NODE, kind, vmid, castellan_pve::DeleteOptions::default())
            .await?;
    }
    let seen = fake.seen();
    let shutdown_with: Vec<_> = seen
        .iter()
        .filter(|s| s.path.ends_with("/status/shutdown") && !s.body.is_empty())
        .collect();
    assert_eq!(shutdown_with.len(), 2);
    for s in shutdown_with {
        let p = s.params();
        assert_eq!(p.get("timeout").map(String::as_str), Some("30"));
        assert_eq!(p.get("forceStop").map(String::as_str), Some("1"));
    }
    let deletes: Vec<_> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 4);
    assert_eq!(deletes[0].query.as_deref(), Some("purge=1"));
    assert_eq!(deletes[1].query, None);
    // Plain actions send no parameters at all.
    assert!(
        seen.iter()
            .filter(|s| s.path.ends_with("/status/start"))
            .all(|s| s.body.is_empty())
    );
    Ok(())
}

#[tokio::test]
async fn a_non_upid_answer_is_a_decode_error() -> TestResult {
    let fake = Fake::start().await?;
    fake.route(
        "POST",
        "/nodes/pve-01/lxc/101/status/start",
        vec![ok(json!("started"))],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![ok(json!({"not": "a list"}))],
    );
    let client = fake.client()?;
    let err = client.start(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Decode { what, .. }) if what.contains("start of lxc 101")),
        "{err:?}"
    );
    let err = client.list_guests(NODE, GuestKind::Lxc).await;
    assert!(
        matches!(&err, Err(Error::Decode { message, .. }) if message.contains("expected an array")),
        "{err:?}"
    );
    Ok(())
}

fn task_path(u: &str) -> String {
    format!("/nodes/pve-01/tasks/{u}/status")
}

fn task(u: &str, status: &str, exit: Option<&str>) -> Canned {
    let mut v = json!({
        "upid": u, "node": NODE, "pid": 123456, "pstart": 10860231, "starttime": 1710268850,
        "type": "vzstart", "id": "101", "user": "root@pam!castellan", "status": status
    });
    if let Some(e) = exit {
        v["exitstatus"] = json!(e);
    }
    ok(v)
}

fn fast_wait() -> WaitOptions {
    WaitOptions {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn wait_task_polls_until_ok_or_warnings() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    let u = upid("vzstart", 101);
    fake.route(
        "GET",
        &task_path(&u),
        vec![
            task(&u, "running", None),
            task(&u, "running", None),
            task(&u, "stopped", Some("OK")),
        ],
    );
    let parsed: Upid = u.parse()?;
    assert_eq!(
        client.wait_task(NODE, &parsed, fast_wait()).await?,
        TaskOk { warnings: 0 }
    );
    assert_eq!(fake.count("GET", &task_path(&u)), 3);

    let w = upid("vzstop", 101);
    fake.route(
        "GET",
        &task_path(&w),
        vec![task(&w, "stopped", Some("WARNINGS: 2"))],
    );
    let st = client.task_status(NODE, &w.parse()?).await?;
    assert!(!st.running);
    assert_eq!(st.kind.as_deref(), Some("vzstart"));
    assert_eq!(st.starttime, Some(1710268850));
    assert_eq!(
        client.wait_task(NODE, &w.parse()?, fast_wait()).await?,
        TaskOk { warnings: 2 }
    );
    Ok(())
}

#[tokio::test]
async fn wait_task_reports_failure_text_and_timeout() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    let f = upid("vzstart", 101);
    let text = "startup for container '101' failed";
    fake.route(
        "GET",
        &task_path(&f),
        vec![task(&f, "running", None), task(&f, "stopped", Some(text))],
    );
    let err = client.wait_task(NODE, &f.parse()?, fast_wait()).await;
    match err {
        Err(Error::TaskFailed { upid, exitstatus }) => {
            assert_eq!(upid, f);
            assert_eq!(exitstatus, text);
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }

    let r = upid("qmstart", 100);
    fake.route("GET", &task_path(&r), vec![task(&r, "running", None)]);
    let wait = WaitOptions {
        timeout: Duration::from_millis(200),
        ..fast_wait()
    };
    let started = std::time::Instant::now();
    let err = client.wait_task(NODE, &r.parse()?, wait).await;
    assert!(
        matches!(&err, Err(Error::TaskTimeout { upid }) if *upid == r),
        "{err:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(fake.count("GET", &task_path(&r)) >= 3);
    Ok(())
}

#[tokio::test]
async fn error_texts_come_from_the_body_or_the_status_line() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client_with(|c| c.retry = RetryPolicy::none())?;

    // 400 with the errors map.
    fake.route(
        "PUT",
        "/nodes/pve-01/lxc/101/config",
        vec![param_error(&[(
            "memory",
            "value must have a minimum value of 16",
        )])],
    );
    let err = client
        .update_config(
            NODE,
            GuestKind::Lxc,
            101,
            &ConfigUpdate::new("abc").set("memory", "1"),
        )
        .await;
    match &err {
        Err(Error::Api {
            status: 400,
            message,
            errors,
        }) => {
            assert_eq!(message, "Parameter verification failed.");
            assert_eq!(
                errors.get("memory").map(String::as_str),
                Some("value must have a minimum value of 16")
            );
        }
        other => panic!("expected a 400 Api error, got {other:?}"),
    }

    // 500 with the text in the body's `message` (and the status line).
    fake.route(
        "POST",
        "/nodes/pve-01/lxc/101/status/start",
        vec![pve_error(500, "CT 101 already running")],
    );
    let err = client.start(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 500, message, .. }) if message == "CT 101 already running"),
        "{err:?}"
    );

    // 500 with the text only in the status line's custom reason phrase.
    fake.route(
        "POST",
        "/nodes/pve-01/qemu/100/status/stop",
        vec![status_line_only(500, "VM 100 not running")],
    );
    let err = client.stop(NODE, GuestKind::Qemu, 100).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 500, message, .. }) if message == "VM 100 not running"),
        "{err:?}"
    );

    // 401 from a bad token.
    fake.route(
        "GET",
        "/version",
        vec![status_line_only(401, "authentication failure")],
    );
    let err = client.version().await;
    assert!(
        matches!(&err, Err(Error::Auth { status: 401, message }) if message == "authentication failure"),
        "{err:?}"
    );

    // An unknown path: pveproxy's 501.
    let err = client.guest_status(NODE, GuestKind::Lxc, 999).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 501, message, .. }) if message.contains("not implemented")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn reason_phrase_is_read_from_a_raw_status_line() -> TestResult {
    // No HTTP library on the server side: exactly the bytes an old pveproxy sends.
    let base = raw_server(
        "HTTP/1.1 500 Configuration file 'nodes/pve-01/lxc/101.conf' does not exist\r\n\
         Content-Type: application/json;charset=UTF-8\r\n\
         Content-Length: 13\r\n\
         Connection: close\r\n\r\n\
         {\"data\":null}",
    )
    .await?;
    let mut cfg = castellan_pve::ClientConfig::new(base, TOKEN.parse()?);
    cfg.retry = RetryPolicy::none();
    let client = castellan_pve::PveClient::new(cfg)?;
    let err = client.guest_config(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::NotFound { message }) if message == "Configuration file 'nodes/pve-01/lxc/101.conf' does not exist"),
        "{err:?}"
    );

    // A canonical reason phrase carries no text; the client falls back to it.
    let base =
        raw_server("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
    let mut cfg = castellan_pve::ClientConfig::new(base, TOKEN.parse()?);
    cfg.retry = RetryPolicy::none();
    let err = castellan_pve::PveClient::new(cfg)?.version().await;
    assert!(
        matches!(&err, Err(Error::Api { status: 502, message, .. }) if message == "Bad Gateway"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn lock_conflicts_are_retried_until_success() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    let path = "/nodes/pve-01/lxc/101/status/start";
    fake.route(
        "POST",
        path,
        vec![
            pve_error(500, "CT 101 is locked (backup)"),
            status_line_only(
                500,
                "can't lock file '/var/lock/lxc/pve-config-101.lock' - got timeout",
            ),
            ok(json!(upid("vzstart", 101))),
        ],
    );
    let u = client.start(NODE, GuestKind::Lxc, 101).await?;
    assert_eq!(u.kind(), "vzstart");
    assert_eq!(fake.count("POST", path), 3);
    Ok(())
}

#[tokio::test]
async fn a_persistent_lock_fails_after_the_configured_attempts() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client_with(|c| {
        c.retry = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        }
    })?;
    let path = "/nodes/pve-01/qemu/100/config";
    fake.route(
        "POST",
        path,
        vec![pve_error(500, "VM 100 is locked (backup)")],
    );
    let err = client
        .update_config(
            NODE,
            GuestKind::Qemu,
            100,
            &ConfigUpdate::new("abc").set("cores", "2"),
        )
        .await;
    match &err {
        Err(e @ Error::Locked { message }) => {
            assert_eq!(message, "VM 100 is locked (backup)");
            assert!(e.is_lock() && e.is_retryable());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(fake.count("POST", path), 3);

    fake.route(
        "GET",
        "/nodes/pve-01/qemu/100/config",
        vec![status_line_only(
            500,
            "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
        )],
    );
    let err = client.guest_config(NODE, GuestKind::Qemu, 100).await;
    assert!(matches!(&err, Err(Error::LockTimeout { .. })), "{err:?}");
    assert_eq!(fake.count("GET", "/nodes/pve-01/qemu/100/config"), 3);
    Ok(())
}

#[tokio::test]
async fn vanished_guest_and_digest_mismatch_are_typed_and_not_retried() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    let status = "/nodes/pve-01/qemu/100/status/current";
    fake.route(
        "GET",
        status,
        vec![pve_error(
            500,
            "Configuration file 'nodes/pve-01/qemu-server/100.conf' does not exist",
        )],
    );
    let err = client.guest_status(NODE, GuestKind::Qemu, 100).await;
    assert!(
        matches!(&err, Err(e @ Error::NotFound { .. }) if e.is_not_found()),
        "{err:?}"
    );
    assert_eq!(fake.count("GET", status), 1);

    let config = "/nodes/pve-01/lxc/101/config";
    fake.route(
        "PUT",
        config,
        vec![pve_error(
            500,
            "detected modified configuration - file changed by other user? Try again.",
        )],
    );
    let err = client
        .update_config(
            NODE,
            GuestKind::Lxc,
            101,
            &ConfigUpdate::new("abc").set("cores", "2"),
        )
        .await;
    assert!(matches!(&err, Err(Error::DigestMismatch)), "{err:?}");
    assert_eq!(fake.count("PUT", config), 1);
    Ok(())
}

#[tokio::test]
async fn reads_are_retried_on_gateway_errors_but_actions_are_not() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client()?;
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![status_line_only(503, "Service Unavailable"), ok(json!([]))],
    );
    assert!(client.list_guests(NODE, GuestKind::Lxc).await?.is_empty());
    assert_eq!(fake.count("GET", "/nodes/pve-01/lxc"), 2);

    let path = "/nodes/pve-01/lxc/101/status/stop";
    fake.route(
        "POST",
        path,
        vec![
            status_line_only(595, "Connection timed out"),
            ok(json!(upid("vzstop", 101))),
        ],
    );
    let err = client.stop(NODE, GuestKind::Lxc, 101).await;
    assert!(
        matches!(&err, Err(Error::Api { status: 595, .. })),
        "{err:?}"
    );
    assert_eq!(fake.count("POST", path), 1);
    Ok(())
}

#[tokio::test]
async fn a_timed_out_action_is_not_resent_but_a_read_is() -> TestResult {
    let fake = Fake::start().await?;
    let client = fake.client_with(|c| c.timeout = Duration::from_millis(150))?;
    let slow = Duration::from_millis(600);
    let post = "/nodes/pve-01/qemu/100/status/shutdown";
    fake.route(
        "POST",
        post,
        vec![ok(json!(upid("qmshutdown", 100))).delayed(slow)],
    );
    let err = client.shutdown(NODE, GuestKind::Qemu, 100).await;
    assert!(
        matches!(&err, Err(Error::Transport(m)) if m.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(
        fake.count("POST", post),
        1,
        "a non-idempotent POST must not be re-sent"
    );

    let get = "/nodes/pve-01/qemu/100/status/current";
    fake.route(
        "GET",
        get,
        vec![
            ok(json!({"status": "running"})).delayed(slow),
            ok(json!({"status": "running"})),
        ],
    );
    let st = client.guest_status(NODE, GuestKind::Qemu, 100).await?;
    assert_eq!(st.status, "running");
    assert_eq!(fake.count("GET", get), 2);
    Ok(())
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() -> TestResult {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cfg = castellan_pve::ClientConfig::new(
        format!("http://127.0.0.1:{port}").parse()?,
        TOKEN.parse()?,
    );
    cfg.retry = RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
    };
    let client = castellan_pve::PveClient::new(cfg)?;
    let err = client.start(NODE, GuestKind::Lxc, 101).await;
    match &err {
        Err(e @ Error::Transport(m)) => {
            assert!(
                m.starts_with("POST /nodes/pve-01/lxc/101/status/start"),
                "{m}"
            );
            assert!(e.is_retryable());
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn upids_travel_unencoded_in_task_paths() -> TestResult {
    let fake = Fake::start().await?;
    let u = upid("vzstart", 101);
    fake.route("GET", &task_path(&u), vec![task(&u, "stopped", Some("OK"))]);
    fake.client()?.task_status(NODE, &u.parse()?).await?;
    assert_eq!(fake.seen()[0].path, task_path(&u));
    Ok(())
}
