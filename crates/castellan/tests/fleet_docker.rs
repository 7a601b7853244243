//! A real fleet on a private Docker network: one hub, three agents and three pvesim nodes,
//! each in its own container, from an image built here from the binaries this build made
//! (their shared libraries beside them; no registry is reachable). The operator reaches
//! the hub through a published port on Docker's default bridge; the agents reach it, and
//! their nodes, only over the fleet network.
//!
//! - The fleet converges to revision 1; a destroy in revision 2 is only held.
//! - The hub is cut off the fleet network (`docker network disconnect`): every agent
//!   repairs drift (a stopped guest) from its cached revision and destroys nothing.
//! - A revision 3 is written meanwhile; the hub is reconnected: every agent catches up.
//!
//! Without a Docker Engine the test prints a note and passes, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use castellan_hub::HubClient;
use castellan_pve::{Fingerprint, TlsMode};
use castellan_testkit::{need_docker, run_ok};

const TOKEN: &str = "root@pam!castellan=fleet-secret-5b1d";
const NODES: [&str; 3] = ["pve-01", "pve-02", "pve-03"];

fn docker(args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(Command::new("docker").args(args)).stdout)
        .trim()
        .to_owned()
}

/// Removes the test's containers and network, whatever happens.
struct Fleet {
    prefix: String,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for c in out.lines().filter(|c| c.starts_with(&self.prefix)) {
            let _ = Command::new("docker").args(["rm", "-f", "-v", c]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.prefix])
            .output();
        let _ = Command::new("docker")
            .args(["image", "rm", &format!("{}:img", self.prefix)])
            .output();
    }
}

/// The directory holding this build's binaries, with `pvesim` built if it is not there.
fn binaries() -> (PathBuf, PathBuf) {
    let castellan = PathBuf::from(env!("CARGO_BIN_EXE_castellan"));
    let pvesim = castellan.with_file_name("pvesim");
    if !pvesim.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_ok(Command::new(cargo).args(["build", "-p", "pvesim"]));
    }
    assert!(pvesim.exists(), "{} was not built", pvesim.display());
    (castellan, pvesim)
}

/// The shared libraries `bin` loads, as `ldd` names them.
fn libraries(bin: &Path) -> BTreeSet<PathBuf> {
    let out = run_ok(Command::new("ldd").arg(bin));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// An image holding the two binaries and what they load: `docker import` of a root
/// filesystem assembled here.
fn build_image(name: &str, work: &Path) {
    let (castellan, pvesim) = binaries();
    let root = work.join("rootfs");
    let bin = root.join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::copy(&castellan, bin.join("castellan")).unwrap();
    std::fs::copy(&pvesim, bin.join("pvesim")).unwrap();
    let mut libs = libraries(&castellan);
    libs.extend(libraries(&pvesim));
    for lib in libs {
        let dest = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &dest).unwrap();
    }
    // /etc/hostname is read by the hub for its certificate's names.
    std::fs::create_dir_all(root.join("etc")).unwrap();
    castellan_testkit::import_rootfs(&root, name, "ENV PATH=/usr/local/bin");
}

fn seed() -> &'static str {
    "[[guest]]\nvmid = 101\nkind = \"lxc\"\nstatus = \"running\"\n[guest.config]\nhostname = \"web\"\ncores = 1\n\n\
     [[guest]]\nvmid = 102\nkind = \"lxc\"\nstatus = \"running\"\n[guest.config]\nhostname = \"old\"\ncores = 1\n"
}

fn desired(node: &str, cores: u32, destroy_102: bool) -> String {
    let second = if destroy_102 {
        "[[guest]]\nvmid = 102\nkind = \"lxc\"\nensure = \"absent\"\n"
    } else {
        "[[guest]]\nvmid = 102\nkind = \"lxc\"\n"
    };
    format!(
        "node = \"{node}\"\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {cores}\nrun = \"running\"\n{second}"
    )
}

/// A pvesim node as the test sees it, through its published port.
struct Node {
    base: String,
    node: String,
    http: reqwest::Client,
}

impl Node {
    async fn get(&self, path: &str) -> Option<serde_json::Value> {
        let r = self
            .http
            .get(format!(
                "{}/api2/json/nodes/{}/{path}",
                self.base, self.node
            ))
            .header("Authorization", format!("PVEAPIToken={TOKEN}"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json::<serde_json::Value>().await.ok()
    }

    async fn cores(&self, vmid: u32) -> Option<String> {
        let v = self.get(&format!("lxc/{vmid}/config")).await?;
        v["data"]["cores"]
            .as_u64()
            .map(|c| c.to_string())
            .or_else(|| v["data"]["cores"].as_str().map(str::to_owned))
    }

    async fn running(&self, vmid: u32) -> bool {
        self.get(&format!("lxc/{vmid}/status/current"))
            .await
            .is_some_and(|v| v["data"]["status"] == "running")
    }

    async fn exists(&self, vmid: u32) -> bool {
        self.get(&format!("lxc/{vmid}/config")).await.is_some()
    }

    async fn stop(&self, vmid: u32) {
        let r = self
            .http
            .post(format!(
                "{}/api2/json/nodes/{}/lxc/{vmid}/status/stop",
                self.base, self.node
            ))
            .header("Authorization", format!("PVEAPIToken={TOKEN}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "stop {vmid}: {}", r.status());
    }
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        if Instant::now() >= deadline {
            // What each container said, to see why.
            let out = Command::new("docker")
                .args(["ps", "-a", "--format", "{{.Names}}"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for c in out.lines().filter(|c| c.starts_with("cstfleet")) {
                let logs = Command::new("docker")
                    .args(["logs", "--tail", "30", c])
                    .output();
                if let Ok(l) = logs {
                    eprintln!(
                        "--- {c}\n{}{}",
                        String::from_utf8_lossy(&l.stdout),
                        String::from_utf8_lossy(&l.stderr)
                    );
                }
            }
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn published(container: &str, port: &str) -> String {
    let out = docker(&["port", container, port]);
    let first = out
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{container} publishes no {port} on 127.0.0.1: {out}"));
    first.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_cut_off_from_its_hub_keeps_converging_destroys_nothing_and_catches_up() {
    need_docker!();
    let prefix = format!("cstfleet{}", std::process::id());
    let fleet = Fleet {
        prefix: prefix.clone(),
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let image = format!("{prefix}:img");
    build_image(&image, w);
    docker(&["network", "create", "--internal", &prefix]);

    // The hub: on the default bridge (published for the operator) and on the fleet
    // network under the name `hub`.
    let hub = format!("{prefix}-hub");
    docker(&[
        "run",
        "-d",
        "--name",
        &hub,
        "-p",
        "127.0.0.1::8443",
        &image,
        "castellan",
        "hub",
        "--listen",
        "0.0.0.0:8443",
        "--data-dir",
        "/data",
        "--san",
        "hub",
    ]);
    docker(&["network", "connect", "--alias", "hub", &prefix, &hub]);
    let mut fingerprint = String::new();
    eventually("the hub's fingerprint", Duration::from_secs(20), || {
        let logs = docker(&["logs", &hub]);
        if let Some(line) = logs
            .lines()
            .find(|l| l.starts_with("certificate fingerprint"))
        {
            fingerprint = line.rsplit(' ').next().unwrap().to_owned();
        }
        std::future::ready(!fingerprint.is_empty())
    })
    .await;
    let token = docker(&[
        "exec",
        &hub,
        "castellan",
        "hub",
        "operator-token",
        "create",
        "alice",
        "--data-dir",
        "/data",
    ]);
    let operator = HubClient::new(
        format!("https://{}", published(&hub, "8443/tcp"))
            .parse()
            .unwrap(),
        &TlsMode::Fingerprint(fingerprint.parse::<Fingerprint>().unwrap()),
    )
    .unwrap()
    .with_token(token);

    // Three nodes and their agents.
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(castellan_pve::tls_client_config(&TlsMode::System).unwrap())
        .build()
        .unwrap();
    let mut nodes = Vec::new();
    for node in NODES {
        let cfg = w.join(node);
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("seed.toml"), seed()).unwrap();
        let sim = format!("{prefix}-sim-{node}");
        docker(&[
            "run",
            "-d",
            "--name",
            &sim,
            "-p",
            "127.0.0.1::8006",
            "-v",
            &format!("{}:/cfg:ro", cfg.display()),
            &image,
            "pvesim",
            "--listen",
            "0.0.0.0:8006",
            "--node",
            node,
            "--token",
            TOKEN,
            "--seed",
            "/cfg/seed.toml",
            "--task-duration-ms",
            "20",
        ]);
        docker(&[
            "network",
            "connect",
            "--alias",
            &format!("{node}-api"),
            &prefix,
            &sim,
        ]);
        let enrol = docker(&[
            "exec",
            &hub,
            "castellan",
            "hub",
            "enrol-token",
            "--host",
            node,
            "--data-dir",
            "/data",
        ]);
        std::fs::write(cfg.join("enrol-token"), enrol).unwrap();
        std::fs::write(
            cfg.join("agent.toml"),
            format!(
                "node = \"{node}\"\ndata_dir = \"/data\"\n\
                 [pve]\nurl = \"http://{node}-api:8006\"\ntoken = \"{TOKEN}\"\n\
                 [hub]\nurl = \"https://hub:8443\"\nfingerprint = \"{fingerprint}\"\n\
                 enrol_token_file = \"/cfg/enrol-token\"\npoll_secs = 20\n\
                 [agent]\nbackoff_base_ms = 50\nresync_secs = 1\n"
            ),
        )
        .unwrap();
        let agent = format!("{prefix}-agent-{node}");
        docker(&[
            "run",
            "-d",
            "--name",
            &agent,
            "--network",
            &prefix,
            "-v",
            &format!("{}:/cfg:ro", cfg.display()),
            &image,
            "castellan",
            "agent",
            "--config",
            "/cfg/agent.toml",
        ]);
        nodes.push(Node {
            base: format!("http://{}", published(&sim, "8006/tcp")),
            node: node.to_owned(),
            http: http.clone(),
        });
    }

    // Revision 1 everywhere; then a destroy for pve-01, held.
    for node in NODES {
        operator
            .put_desired(node, &desired(node, 2, false), 0)
            .await
            .unwrap();
    }
    for n in &nodes {
        eventually(
            &format!("{} at revision 1", n.node),
            Duration::from_secs(60),
            || async { n.cores(101).await.as_deref() == Some("2") },
        )
        .await;
    }
    operator
        .put_desired("pve-01", &desired("pve-01", 2, true), 1)
        .await
        .unwrap();
    eventually(
        "the destroy reported pending",
        Duration::from_secs(30),
        || async {
            operator
                .host_report("pve-01")
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.applied_revision == Some(2) && !r.pending.is_empty())
        },
    )
    .await;
    assert!(nodes[0].exists(102).await, "held, not run");

    // Cut off: drift is still repaired from the cached revision; nothing destroyed.
    docker(&["network", "disconnect", &prefix, &hub]);
    for n in &nodes {
        n.stop(101).await;
    }
    for n in &nodes {
        eventually(
            &format!("{} repairs drift without the hub", n.node),
            Duration::from_secs(30),
            || async { n.running(101).await },
        )
        .await;
        assert!(n.exists(102).await, "{}: nothing destroyed", n.node);
    }
    // A new revision is written while they cannot see it.
    for (i, node) in NODES.iter().enumerate() {
        let based = if i == 0 { 2 } else { 1 };
        operator
            .put_desired(node, &desired(node, 3, i == 0), based)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in &nodes {
        assert_eq!(
            n.cores(101).await.as_deref(),
            Some("2"),
            "{} cannot know yet",
            n.node
        );
    }

    // Back: every agent takes the latest revision.
    let back = Instant::now();
    docker(&["network", "connect", "--alias", "hub", &prefix, &hub]);
    for n in &nodes {
        eventually(
            &format!("{} catches up", n.node),
            Duration::from_secs(30),
            || async { n.cores(101).await.as_deref() == Some("3") },
        )
        .await;
    }
    eprintln!(
        "every node at the latest revision {:?} after the hub was reconnected",
        back.elapsed()
    );
    assert!(nodes[0].exists(102).await, "still held: nobody signed");
    drop(fleet);
}
