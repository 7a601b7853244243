//! pvesim over real HTTP: endpoints, PVE quirks, errors, faults, TLS, control endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{NODE, SEED, TOKEN, enc, start};
use pvesim::{Fault, FaultRule, Seed};
use serde_json::{Value, json};

fn rule(
    vmid: Option<u32>,
    method: Option<&str>,
    suffix: Option<&str>,
    times: Option<u32>,
    fault: Fault,
) -> FaultRule {
    FaultRule {
        vmid,
        method: method.map(str::to_string),
        path_suffix: suffix.map(str::to_string),
        times,
        fault,
    }
}

#[tokio::test]
async fn lxc_vmid_is_a_string_qemu_vmid_an_integer() {
    let sim = start(SEED).await;
    let (s, v) = sim.get("/nodes/pve-01/lxc").await;
    assert_eq!(s, 200);
    let ct = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == "101")
        .expect("ct 101");
    assert_eq!(ct["vmid"], json!("101"));
    assert_eq!(ct["status"], "running");
    assert_eq!(ct["name"], "web");
    assert_eq!(ct["type"], "lxc");
    assert_eq!(ct["template"], 0);
    assert_eq!(ct["cpus"], 2.0);
    assert_eq!(ct["maxmem"], 1024u64 << 20);
    assert_eq!(ct["maxdisk"], 8u64 << 30);
    assert_eq!(ct["tags"], "a;b");
    let (_, v) = sim.get("/nodes/pve-01/qemu").await;
    let vm = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["vmid"] == 100)
        .expect("vm 100");
    assert_eq!(vm["vmid"], json!(100));
    assert_eq!(vm["maxmem"], 2048u64 << 20);
    assert_eq!(vm["maxdisk"], 32u64 << 30);
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn version_resources_nextid_status_current() {
    let sim = start(SEED).await;
    let (s, v) = sim.get("/version").await;
    assert_eq!(s, 200);
    assert!(v["data"]["version"].as_str().unwrap().starts_with("9."));
    let (_, v) = sim
        .call("GET", "/cluster/resources", &[("type", "vm")])
        .await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["qemu/100", "lxc/101", "lxc/102", "qemu/103"]);
    let (_, v) = sim.get("/cluster/resources").await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "node")
    );
    let (_, v) = sim.get("/cluster/nextid").await;
    assert_eq!(v["data"], json!("104"));
    let (s, v) = sim.call("GET", "/cluster/nextid", &[("vmid", "101")]).await;
    assert_eq!(s, 400);
    assert_eq!(v["errors"]["vmid"], "VM 101 already exists");
    let (s, v) = sim.get("/nodes/pve-01/lxc/101/status/current").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["status"], "running");
    assert_eq!(v["data"]["vmid"], "101");
    let (_, v) = sim.get("/nodes/pve-01/qemu/103/status/current").await;
    assert_eq!(v["data"]["status"], "stopped");
    assert_eq!(v["data"]["qmpstatus"], "stopped");
}

#[tokio::test]
async fn description_newline_lxc_vs_qemu_and_rendering() {
    let sim = start(SEED).await;
    let (_, v) = sim.get("/nodes/pve-01/lxc/101/config").await;
    assert_eq!(v["data"]["description"], "web: front\n");
    assert_eq!(v["data"]["cores"], 2);
    assert_eq!(v["data"]["onboot"], 1);
    let raw = sim.handle.guest(101).unwrap().raw;
    assert!(raw.starts_with("#web%3A front\n"), "{raw}");
    // sorted keys after the description
    let keys: Vec<&str> = raw
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let (s, _) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/config",
            &[("description", "line1\nline2")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = sim.get("/nodes/pve-01/lxc/101/config").await;
    assert_eq!(v["data"]["description"], "line1\nline2\n");
    // QEMU strips trailing whitespace and memory is a string
    let (_, v) = sim.get("/nodes/pve-01/qemu/100/config").await;
    assert_eq!(v["data"]["description"], "db vm");
    assert_eq!(v["data"]["memory"], "2048");
    assert_eq!(v["data"]["cores"], 2);
    let digest = v["data"]["digest"].as_str().unwrap();
    let g = sim.handle.guest(100).unwrap();
    assert_eq!(digest, g.digest);
    assert_eq!(digest.len(), 40);
}

#[tokio::test]
async fn tags_are_normalised_and_validated() {
    let sim = start(SEED).await;
    let (s, _) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/102/config",
            &[("tags", "Prod,web;prod db")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = sim.get("/nodes/pve-01/lxc/102/config").await;
    assert_eq!(v["data"]["tags"], "db;Prod;web");
    let (s, v) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/102/config",
            &[("tags", "bad@tag")],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["errors"]["tags"],
        "invalid format - invalid characters in tag\n"
    );
}

#[tokio::test]
async fn lxc_put_applies_cores_memory_live_and_keeps_others_pending() {
    let sim = start(SEED).await;
    let (s, v) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/config",
            &[("cores", "4"), ("memory", "2048"), ("hostname", "web2")],
        )
        .await;
    assert_eq!((s, &v["data"]), (200, &Value::Null));
    let g = sim.handle.guest(101).unwrap();
    assert_eq!(g.config["cores"], "4");
    assert_eq!(g.config["memory"], "2048");
    assert_eq!(g.pending["hostname"], "web2");
    assert!(
        g.raw.contains("\n[pve:pending]\nhostname: web2\n"),
        "{}",
        g.raw
    );
    let (_, v) = sim
        .call("GET", "/nodes/pve-01/lxc/101/config", &[("current", "1")])
        .await;
    assert_eq!(v["data"]["hostname"], "web");
    let (_, v) = sim.get("/nodes/pve-01/lxc/101/config").await;
    assert_eq!(v["data"]["hostname"], "web2");
    let (_, v) = sim.get("/nodes/pve-01/lxc/101/pending").await;
    let item = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "hostname")
        .unwrap();
    assert_eq!(item["value"], "web");
    assert_eq!(item["pending"], "web2");
    // reboot applies pending
    let (_, status) = sim
        .task("POST", "/nodes/pve-01/lxc/101/status/reboot", &[])
        .await;
    assert_eq!(status, "OK");
    assert_eq!(sim.handle.guest(101).unwrap().config["hostname"], "web2");
    // delete on a stopped CT applies at once
    let (s, _) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/102/config",
            &[("delete", "memory")],
        )
        .await;
    assert_eq!(s, 200);
    assert!(!sim.handle.guest(102).unwrap().config.contains_key("memory"));
}

#[tokio::test]
async fn qemu_pending_on_running_vm_applied_at_start() {
    let sim = start(SEED).await;
    let (upid, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu/100/config",
            &[
                ("cores", "4"),
                ("memory", "4096"),
                ("description", "new"),
                ("tags", "z,y"),
            ],
        )
        .await;
    assert!(upid.contains(":qmconfig:100:root@pam!castellan:"), "{upid}");
    assert_eq!(status, "OK");
    let g = sim.handle.guest(100).unwrap();
    assert_eq!(g.config["cores"], "2");
    assert_eq!(g.pending["cores"], "4");
    assert_eq!(g.pending["memory"], "4096");
    assert_eq!(g.config["description"], "new");
    assert_eq!(g.config["tags"], "y;z");
    assert!(
        g.raw.contains("\n[PENDING]\ncores: 4\nmemory: 4096\n"),
        "{}",
        g.raw
    );
    let (_, v) = sim
        .call("GET", "/nodes/pve-01/qemu/100/config", &[("current", "1")])
        .await;
    assert_eq!(v["data"]["cores"], 2);
    let (_, v) = sim.get("/nodes/pve-01/qemu/100/config").await;
    assert_eq!(v["data"]["cores"], 4);
    let (_, v) = sim.get("/nodes/pve-01/qemu/100/pending").await;
    let item = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "cores")
        .unwrap();
    assert_eq!(
        (item["value"].clone(), item["pending"].clone()),
        (json!(2), json!(4))
    );
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["key"] == "digest")
    );
    // stop, start: pending applied
    assert_eq!(
        sim.task("POST", "/nodes/pve-01/qemu/100/status/shutdown", &[])
            .await
            .1,
        "OK"
    );
    assert_eq!(
        sim.task("POST", "/nodes/pve-01/qemu/100/status/start", &[])
            .await
            .1,
        "OK"
    );
    let g = sim.handle.guest(100).unwrap();
    assert_eq!(g.config["cores"], "4");
    assert!(g.pending.is_empty());
    assert!(!g.raw.contains("[PENDING]"));
    // PUT is synchronous and returns null; stopped VM applies directly
    let (s, v) = sim
        .call("PUT", "/nodes/pve-01/qemu/103/config", &[("cores", "3")])
        .await;
    assert_eq!((s, &v["data"]), (200, &Value::Null));
    assert_eq!(sim.handle.guest(103).unwrap().config["cores"], "3");
    // deleting an unset option warns
    let (_, status) = sim
        .task(
            "POST",
            "/nodes/pve-01/qemu/103/config",
            &[("delete", "balloon")],
        )
        .await;
    assert_eq!(status, "WARNINGS: 1");
}

#[tokio::test]
async fn digest_mismatch_texts() {
    let sim = start(SEED).await;
    let bad = "0000000000000000000000000000000000000000";
    let (s, v) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/config",
            &[("cores", "3"), ("digest", bad)],
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "detected modified configuration - file changed by other user? Try again.\n"
    );
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/qemu/100/config",
            &[("cores", "3"), ("digest", bad)],
        )
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "checksum missmatch (file change by other user?)\n"
    );
    let digest = sim.handle.guest(101).unwrap().digest;
    let (s, _) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/config",
            &[("cores", "3"), ("digest", &digest)],
        )
        .await;
    assert_eq!(s, 200);
    assert_ne!(sim.handle.guest(101).unwrap().digest, digest);
}

#[tokio::test]
async fn locks_and_lock_timeouts() {
    let sim = start(SEED).await;
    sim.handle.set_faults(vec![rule(
        Some(101),
        None,
        None,
        Some(1),
        Fault::Locked {
            lock: "backup".into(),
        },
    )]);
    let (s, v) = sim
        .call("PUT", "/nodes/pve-01/lxc/101/config", &[("cores", "3")])
        .await;
    assert_eq!(s, 500);
    assert_eq!(v["message"], "CT is locked (backup)\n");
    assert_eq!(
        sim.handle.guest(101).unwrap().lock.as_deref(),
        Some("backup")
    );
    let (_, v) = sim.get("/nodes/pve-01/lxc").await;
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["vmid"] == "101")
            .unwrap()["lock"],
        "backup"
    );
    // a locked stopped CT fails to start in the worker
    sim.handle.set_faults(vec![rule(
        Some(102),
        None,
        None,
        Some(1),
        Fault::Locked {
            lock: "backup".into(),
        },
    )]);
    let (_, status) = sim
        .task("POST", "/nodes/pve-01/lxc/102/status/start", &[])
        .await;
    assert_eq!(status, "CT is locked (backup)");
    // qemu config write on a locked VM
    sim.handle.set_faults(vec![rule(
        Some(100),
        None,
        None,
        Some(1),
        Fault::Locked {
            lock: "migrate".into(),
        },
    )]);
    let (_, v) = sim
        .call("POST", "/nodes/pve-01/qemu/100/config", &[("cores", "3")])
        .await;
    assert_eq!(v["message"], "VM is locked (migrate)\n");
    // lock timeouts
    sim.handle.set_faults(vec![rule(
        None,
        Some("put"),
        Some("config"),
        None,
        Fault::LockTimeout,
    )]);
    let (s, v) = sim
        .call("PUT", "/nodes/pve-01/lxc/102/config", &[("cores", "3")])
        .await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "can't lock file '/run/lock/lxc/pve-config-102.lock' - got timeout\n"
    );
    let (_, v) = sim
        .call("PUT", "/nodes/pve-01/qemu/103/config", &[("cores", "3")])
        .await;
    assert_eq!(
        v["message"],
        "can't lock file '/var/lock/qemu-server/lock-103.conf' - got timeout\n"
    );
}

#[tokio::test]
async fn missing_guest_and_vanish() {
    let sim = start(SEED).await;
    let (s, v) = sim.get("/nodes/pve-01/lxc/999/config").await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "Configuration file 'nodes/pve-01/lxc/999.conf' does not exist\n"
    );
    let (_, v) = sim.get("/nodes/pve-01/qemu/101/config").await;
    assert_eq!(
        v["message"],
        "Configuration file 'nodes/pve-01/qemu-server/101.conf' does not exist\n"
    );
    sim.handle.set_faults(vec![rule(
        Some(102),
        None,
        Some("config"),
        Some(1),
        Fault::Vanish,
    )]);
    let (s, v) = sim.get("/nodes/pve-01/lxc/102/config").await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "Configuration file 'nodes/pve-01/lxc/102.conf' does not exist\n"
    );
    assert!(sim.handle.guest(102).is_none());
    assert!(sim.handle.faults().is_empty(), "times=1 rule consumed");
}

#[tokio::test]
async fn power_ops_mirror_pve() {
    let sim = start(SEED).await;
    // LXC: start running / stop stopped are synchronous errors
    let (s, v) = sim
        .call("POST", "/nodes/pve-01/lxc/101/status/start", &[])
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("CT 101 already running\n"))
    );
    let (_, v) = sim
        .call("POST", "/nodes/pve-01/lxc/102/status/stop", &[])
        .await;
    assert_eq!(v["message"], "CT 102 not running\n");
    let (_, v) = sim
        .call("POST", "/nodes/pve-01/lxc/102/status/reboot", &[])
        .await;
    assert_eq!(v["message"], "VM 102 not running\n");
    // QEMU: start of a running VM fails in the task; stop of a stopped VM is OK
    let (upid, status) = sim
        .task("POST", "/nodes/pve-01/qemu/100/status/start", &[])
        .await;
    assert_eq!(status, "VM 100 already running");
    assert!(upid.contains(":qmstart:100:"));
    assert_eq!(
        sim.task("POST", "/nodes/pve-01/qemu/103/status/stop", &[])
            .await
            .1,
        "OK"
    );
    // state changes at task end
    let (s, v) = sim
        .call("POST", "/nodes/pve-01/lxc/102/status/start", &[])
        .await;
    assert_eq!(s, 200);
    let upid = v["data"].as_str().unwrap().to_string();
    let re = regex::Regex::new(
        r"^UPID:pve-01:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzstart:102:root@pam!castellan:$",
    )
    .unwrap();
    assert!(re.is_match(&upid), "{upid}");
    sim.wait_task(&upid).await;
    assert_eq!(
        sim.handle.guest(102).unwrap().status,
        pvesim::GuestStatus::Running
    );
    assert_eq!(
        sim.task("POST", "/nodes/pve-01/lxc/102/status/shutdown", &[])
            .await
            .1,
        "OK"
    );
    assert_eq!(
        sim.handle.guest(102).unwrap().status,
        pvesim::GuestStatus::Stopped
    );
}

#[tokio::test]
async fn tasks_success_warnings_failure_log_and_list() {
    let sim = start(SEED).await;
    sim.handle.set_faults(vec![
        rule(
            Some(102),
            Some("POST"),
            Some("status/start"),
            Some(1),
            Fault::TaskWarnings { count: 2 },
        ),
        rule(
            Some(103),
            Some("POST"),
            Some("status/start"),
            Some(1),
            Fault::TaskFailure {
                exitstatus: "start failed: QEMU exited with code 1".into(),
            },
        ),
    ]);
    let (s, v) = sim
        .call("POST", "/nodes/pve-01/lxc/102/status/start", &[])
        .await;
    assert_eq!(s, 200);
    let upid = v["data"].as_str().unwrap().to_string();
    let (_, st) = sim
        .get(&format!("/nodes/pve-01/tasks/{}/status", enc(&upid)))
        .await;
    assert_eq!(st["data"]["status"], "running");
    assert!(st["data"].get("exitstatus").is_none());
    let st = sim.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "WARNINGS: 2");
    assert_eq!(st["type"], "vzstart");
    assert_eq!(st["id"], "102");
    assert_eq!(st["user"], "root@pam!castellan");
    assert_eq!(st["node"], NODE);
    assert_eq!(
        sim.handle.guest(102).unwrap().status,
        pvesim::GuestStatus::Running
    );
    let (_, log) = sim
        .get(&format!("/nodes/pve-01/tasks/{}/log", enc(&upid)))
        .await;
    assert_eq!(log["total"], 3);
    assert_eq!(log["data"][2], json!({"n": 3, "t": "TASK WARNINGS: 2"}));
    let (_, status) = sim
        .task("POST", "/nodes/pve-01/qemu/103/status/start", &[])
        .await;
    assert_eq!(status, "start failed: QEMU exited with code 1");
    assert_eq!(
        sim.handle.guest(103).unwrap().status,
        pvesim::GuestStatus::Stopped
    );
    let (_, list) = sim
        .call("GET", "/nodes/pve-01/tasks", &[("vmid", "103")])
        .await;
    assert_eq!(list["total"], 1);
    assert_eq!(
        list["data"][0]["status"],
        "start failed: QEMU exited with code 1"
    );
    assert!(list["data"][0]["endtime"].is_u64());
    let (_, list) = sim
        .call("GET", "/nodes/pve-01/tasks", &[("errors", "1")])
        .await;
    assert_eq!(list["total"], 2, "{list}");
    // unknown / malformed UPIDs
    let (s, v) = sim.get("/nodes/pve-01/tasks/nonsense/status").await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("unable to parse worker upid 'nonsense'\n"))
    );
    let unknown = "UPID:pve-01:00000001:00000002:00000003:vzstart:999:root@pam:";
    let (s, v) = sim
        .get(&format!("/nodes/pve-01/tasks/{}/status", enc(unknown)))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["status"], "stopped");
}

#[tokio::test]
async fn effects_happen_at_task_end_even_unobserved() {
    let sim = start(SEED).await;
    let (s, _) = sim
        .call("POST", "/nodes/pve-01/lxc/102/status/start", &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        sim.handle.guest(102).unwrap().status,
        pvesim::GuestStatus::Stopped
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        sim.handle.guest(102).unwrap().status,
        pvesim::GuestStatus::Running
    );
}

#[tokio::test]
async fn both_500_shapes_and_status_line() {
    let sim = start(SEED).await;
    sim.handle.set_faults(vec![rule(
        Some(101),
        None,
        Some("config"),
        Some(1),
        Fault::InternalError {
            message: "boom happened".into(),
        },
    )]);
    let (line, body) = sim.raw("GET", "/nodes/pve-01/lxc/101/config", true).await;
    assert_eq!(line, "HTTP/1.1 500 boom happened");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": null, "message": "boom happened\n"})
    );
    sim.handle.set_faults(vec![rule(
        Some(101),
        None,
        Some("config"),
        Some(1),
        Fault::StatusLineOnly {
            message: "old style".into(),
        },
    )]);
    let (line, body) = sim.raw("GET", "/nodes/pve-01/lxc/101/config", true).await;
    assert_eq!(line, "HTTP/1.1 500 old style");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": null})
    );
    let (line, _) = sim.raw("GET", "/nodes/pve-01/lxc/999/config", true).await;
    assert_eq!(
        line,
        "HTTP/1.1 500 Configuration file 'nodes/pve-01/lxc/999.conf' does not exist"
    );
    let (line, body) = sim.raw("GET", "/nodes/pve-01/lxc/1/config", true).await;
    assert_eq!(line, "HTTP/1.1 400 Parameter verification failed.");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["errors"]["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    let (line, _) = sim.raw("GET", "/nodes/x/foo", true).await;
    assert_eq!(
        line,
        "HTTP/1.1 501 Method 'GET /nodes/x/foo' not implemented"
    );
    let (line, _) = sim.raw("GET", "/version", false).await;
    assert!(line.starts_with("HTTP/1.1 401 "), "{line}");
}

#[tokio::test]
async fn schema_errors_auth_and_unknown_paths() {
    let sim = start(SEED).await;
    let (s, v) = sim
        .call(
            "PUT",
            "/nodes/pve-01/lxc/101/config",
            &[("cores", "0"), ("bogus", "1")],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["errors"]["cores"], "value must have a minimum value of 1");
    assert_eq!(
        v["errors"]["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    let (s, v) = sim
        .call(
            "POST",
            "/nodes/pve-01/qemu/100/config",
            &[("onboot", "maybe")],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["errors"]["onboot"],
        "type check ('boolean') failed - got 'maybe'"
    );
    let (s, _) = sim.get("/nodes/pve-01/lxc/101/snapshot").await;
    assert_eq!(
        s, 501,
        "served by the schema but not by the embedded subset"
    );
    let (s, _) = sim.get("/nodes/pve-01/frobnicate").await;
    assert_eq!(s, 501);
    // bad tokens
    for auth in [
        None,
        Some("PVEAPIToken=root@pam!castellan=wrong"),
        Some("PVEAPIToken=root@pam!other=s3cr3t-value"),
        Some("Bearer x"),
    ] {
        let mut rb = sim.client.get(sim.url("/version"));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let resp = rb.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
    }
    // wrong node
    let (s, v) = sim.get("/nodes/other/lxc").await;
    assert_eq!(s, 500);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("hostname lookup 'other' failed")
    );
    // no options
    let (_, v) = sim.call("PUT", "/nodes/pve-01/lxc/101/config", &[]).await;
    assert_eq!(v["message"], "no options specified\n");
}

#[tokio::test]
async fn json_bodies_and_boolean_spellings_are_accepted() {
    let sim = start(SEED).await;
    let resp = sim
        .client
        .put(sim.url("/nodes/pve-01/lxc/102/config"))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .json(&json!({"cores": 3, "onboot": true, "protection": "off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let g = sim.handle.guest(102).unwrap();
    assert_eq!(g.config["cores"], "3");
    assert_eq!(g.config["onboot"], "1");
    assert_eq!(g.config["protection"], "0");
}

#[tokio::test]
async fn destroy_refuses_running_and_removes_stopped() {
    let sim = start(SEED).await;
    let (s, v) = sim.call("DELETE", "/nodes/pve-01/lxc/101", &[]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("unable to destroy CT 101 - container is running\n")
        )
    );
    let (_, v) = sim.call("DELETE", "/nodes/pve-01/qemu/100", &[]).await;
    assert_eq!(v["message"], "VM 100 is running - destroy failed\n");
    let (upid, status) = sim
        .task(
            "DELETE",
            "/nodes/pve-01/lxc/102",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    assert!(upid.contains(":vzdestroy:102:"));
    assert_eq!(status, "OK");
    assert!(sim.handle.guest(102).is_none());
    let (upid, _) = sim.task("DELETE", "/nodes/pve-01/qemu/103", &[]).await;
    assert!(upid.contains(":qmdestroy:103:"));
    assert_eq!(sim.handle.guest_ids(), vec![100, 101]);
    let (_, v) = sim.call("DELETE", "/nodes/pve-01/lxc/102", &[]).await;
    assert_eq!(
        v["message"],
        "Configuration file 'nodes/pve-01/lxc/102.conf' does not exist\n"
    );
}

#[tokio::test]
async fn tls_with_fingerprint() {
    let mut cfg = common::config(SEED);
    cfg.tls = true;
    let sim = common::start_cfg(cfg).await;
    assert!(sim.handle.base_url().starts_with("https://127.0.0.1:"));
    let fp = sim.handle.fingerprint().unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(
        fp.chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    use rustls::pki_types::pem::PemObject;
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(sim.handle.ca_pem().unwrap().as_bytes())
            .unwrap();
    use sha2::Digest;
    let computed: Vec<String> = sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(computed.join(":"), fp);
    let (s, v) = sim.get("/version").await;
    assert_eq!(s, 200, "{v}");
    // a client that does not trust the cert fails
    let untrusting = common::client(None);
    assert!(untrusting.get(sim.url("/version")).send().await.is_err());
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn control_endpoint() {
    let sim = start(SEED).await;
    let base = sim.handle.base_url();
    let auth = format!("PVEAPIToken={TOKEN}");
    let v: Value = sim
        .client
        .get(format!("{base}/_sim/state"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["guests"].as_array().unwrap().len(), 4);
    assert_eq!(v["guests"][0]["vmid"], 100);
    let resp = sim
        .client
        .get(format!("{base}/_sim/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body = json!({"rules": [{"kind": "latency", "ms": 1, "vmid": 101}, {"kind": "lock_timeout", "path_suffix": "config", "times": 2}]});
    let v: Value = sim
        .client
        .put(format!("{base}/_sim/faults"))
        .header("Authorization", &auth)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["rules"].as_array().unwrap().len(), 2);
    assert_eq!(sim.handle.faults().len(), 2);
    let resp = sim
        .client
        .put(format!("{base}/_sim/faults"))
        .header("Authorization", &auth)
        .json(&json!({"rules": [{"kind": "latency"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    sim.handle.clear_requests();
    sim.get("/version").await;
    let v: Value = sim
        .client
        .get(format!("{base}/_sim/requests"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["requests"][0]["path"], "/api2/json/version");
    assert_eq!(v["requests"][0]["status"], 200);
    let recs = sim.handle.requests();
    assert_eq!(recs.len(), 1);
}

#[tokio::test]
async fn request_records_carry_params() {
    let sim = start(SEED).await;
    sim.call("PUT", "/nodes/pve-01/lxc/101/config", &[("cores", "3")])
        .await;
    let r = sim.handle.requests();
    let last = r.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str(), last.status),
        ("PUT", "/api2/json/nodes/pve-01/lxc/101/config", 200)
    );
    assert_eq!(last.params["cores"], "3");
}

#[tokio::test]
async fn full_schema_accepts_what_the_embedded_subset_does_not() {
    let embedded = start(SEED).await;
    let (s, v) = embedded
        .call(
            "POST",
            "/nodes/pve-01/qemu/103/config",
            &[("keephugepages", "1")],
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let path = common::full_schema_path();
    let mut cfg = common::config(SEED);
    cfg.schema_file = Some(path);
    let full = common::start_cfg(cfg).await;
    let (_, status) = full
        .task(
            "POST",
            "/nodes/pve-01/qemu/103/config",
            &[("keephugepages", "1")],
        )
        .await;
    assert_eq!(status, "OK");
    assert_eq!(full.handle.guest(103).unwrap().config["keephugepages"], "1");
}

#[test]
fn seed_errors_name_guest_and_field() {
    let cases = [
        (
            "[[guest]]\nvmid = 50\nkind = \"lxc\"\nstatus = \"running\"\n",
            "guest 50: field 'vmid'",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"vm\"\nstatus = \"running\"\n",
            "guest 101: field 'kind'",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"paused\"\n",
            "guest 101: field 'status'",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\n[guest.config]\ncores = 0\n",
            "guest 101: field 'config.cores': value must have a minimum value of 1",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\n[guest.config]\nname = \"x\"\n",
            "guest 101: field 'config.name': property is not defined",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"qemu\"\nstatus = \"running\"\nlock = \"bogus\"\n",
            "guest 101: field 'lock'",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
        (
            "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\n",
            "duplicate vmid",
        ),
        (
            "[[fault]]\nkind = \"latency\"\n",
            "fault 0: fault kind `latency` needs field `ms`",
        ),
        (
            "[[fault]]\nkind = \"vanish\"\nms = 3\n",
            "fault 0: field `ms` is not valid",
        ),
        (
            "[[fault]]\nkind = \"explode\"\n",
            "unknown fault kind `explode`",
        ),
        (
            "[[fault]]\nkind = \"vanish\"\nvmdi = 3\n",
            "unknown field `vmdi`",
        ),
    ];
    for (toml, want) in cases {
        let err = Seed::from_toml_str(toml).expect_err(toml).to_string();
        assert!(err.contains(want), "{toml}\n=> {err}\nwanted {want}");
    }
    let ok = Seed::from_toml_str(SEED).unwrap();
    assert_eq!(ok.guests.len(), 4);
    let f = Seed::from_toml_str(
        "[[fault]]\nkind = \"task_warnings\"\ncount = 2\nvmid = 101\ntimes = 1\n",
    )
    .unwrap();
    assert_eq!(
        f.faults[0],
        FaultRule {
            vmid: Some(101),
            method: None,
            path_suffix: None,
            times: Some(1),
            fault: Fault::TaskWarnings { count: 2 }
        }
    );
}

#[tokio::test]
async fn thousand_guests_and_many_requests() {
    let mut seed = String::new();
    for i in 0..1200u32 {
        let kind = if i % 2 == 0 { "lxc" } else { "qemu" };
        let name = if kind == "lxc" { "hostname" } else { "name" };
        seed.push_str(&format!("[[guest]]\nvmid = {}\nkind = \"{kind}\"\nstatus = \"running\"\n[guest.config]\n{name} = \"g{i}\"\ncores = 1\n", 1000 + i));
    }
    let sim = start(&seed).await;
    let t0 = std::time::Instant::now();
    let (_, v) = sim.get("/nodes/pve-01/lxc").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 600);
    let mut handles = Vec::new();
    for i in 0..300u32 {
        let client = sim.client.clone();
        let url = sim.url(&format!(
            "/nodes/pve-01/lxc/{}/config",
            1000 + (i % 600) * 2
        ));
        handles.push(tokio::spawn(async move {
            client
                .get(url)
                .header("Authorization", format!("PVEAPIToken={TOKEN}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
}
