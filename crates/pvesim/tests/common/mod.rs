//! Shared setup for pvesim's HTTP tests: start a simulator, talk to it with reqwest.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pvesim::{Seed, SimConfig, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "root@pam!castellan=s3cr3t-value";
pub const NODE: &str = "pve-01";

/// Two CTs and two VMs, one of each running.
pub const SEED: &str = r#"
[[guest]]
vmid = 101
kind = "lxc"
status = "running"
[guest.config]
hostname = "web"
cores = 2
memory = 1024
description = "web: front"
tags = "b;a"
rootfs = "local-lvm:vm-101-disk-0,size=8G"
net0 = "name=eth0,bridge=vmbr0,ip=dhcp"
onboot = true

[[guest]]
vmid = 100
kind = "qemu"
status = "running"
[guest.config]
name = "db"
cores = 2
memory = "2048"
scsi0 = "local-lvm:vm-100-disk-0,size=32G"
description = "db vm  "

[[guest]]
vmid = 102
kind = "lxc"
status = "stopped"
[guest.config]
hostname = "batch"
memory = 512

[[guest]]
vmid = 103
kind = "qemu"
status = "stopped"
[guest.config]
name = "idle"
memory = 1024
"#;

/// A started simulator plus a client for it.
pub struct Sim {
    pub handle: SimHandle,
    pub client: reqwest::Client,
}

/// The full PVE API schema subset, vendored in `crates/pve-schema/data/`.
pub fn full_schema_path() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pve-schema/data/api-schema-subset.json");
    assert!(p.is_file(), "the pve api schema {} is missing", p.display());
    p
}

pub fn config(seed: &str) -> SimConfig {
    let mut cfg = SimConfig::new(NODE, TOKEN, Seed::from_toml_str(seed).expect("seed"));
    cfg.task_duration = Duration::from_millis(20);
    cfg
}

pub async fn start(seed: &str) -> Sim {
    start_cfg(config(seed)).await
}

pub async fn start_cfg(cfg: SimConfig) -> Sim {
    let handle = pvesim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start");
    let client = client(handle.ca_pem().as_deref());
    Sim { handle, client }
}

/// reqwest is built with `rustls-no-provider`: give it a ring-based config.
pub fn client(ca_pem: Option<&str>) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
        roots.add(der).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("client")
}

impl Sim {
    pub fn url(&self, rel: &str) -> String {
        format!("{}/api2/json{rel}", self.handle.base_url())
    }

    pub async fn call(&self, method: &str, rel: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(m.clone(), self.url(rel))
            .header("Authorization", format!("PVEAPIToken={TOKEN}"));
        rb = if m == reqwest::Method::GET || m == reqwest::Method::DELETE {
            rb.query(params)
        } else {
            rb.form(params)
        };
        let resp = rb.send().await.expect("send");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, rel: &str) -> (u16, Value) {
        self.call("GET", rel, &[]).await
    }

    /// Polls a task until it has stopped; returns its status object.
    pub async fn wait_task(&self, upid: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (s, v) = self
                .get(&format!("/nodes/{NODE}/tasks/{}/status", enc(upid)))
                .await;
            assert_eq!(s, 200, "{v}");
            if v["data"]["status"] == "stopped" {
                return v["data"].clone();
            }
            assert!(Instant::now() < deadline, "task {upid} did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs a task-returning call and waits for it; returns (upid, exitstatus).
    pub async fn task(&self, method: &str, rel: &str, params: &[(&str, &str)]) -> (String, String) {
        let (s, v) = self.call(method, rel, params).await;
        assert_eq!(s, 200, "{method} {rel}: {v}");
        let upid = v["data"].as_str().expect("upid").to_string();
        let st = self.wait_task(&upid).await;
        (
            upid,
            st["exitstatus"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Raw HTTP/1.1 exchange to see the status line (plain HTTP only).
    pub async fn raw(&self, method: &str, rel: &str, auth: bool) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(self.handle.addr())
            .await
            .unwrap();
        let auth = if auth {
            format!("Authorization: PVEAPIToken={TOKEN}\r\n")
        } else {
            String::new()
        };
        let req = format!(
            "{method} /api2/json{rel} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status_line = text.lines().next().unwrap_or_default().to_string();
        let body = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        (status_line, body)
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
