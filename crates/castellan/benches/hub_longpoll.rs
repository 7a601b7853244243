//! Hub long-poll benchmark: N simulated agents, each on its own TLS connection (its own
//! client, the hub's certificate pinned), long-poll one `castellan hub` process; an
//! operator then writes a new desired-state revision for every host (32 writes in
//! flight). For each host the latency is from the moment its write was sent to the
//! moment its agent holds the revision. Reported: p50 / p99 / max latency, the time until
//! every agent has its revision, the hub's RSS with every agent connected and its peak
//! (VmHWM), and the hub's CPU use during the write wave. Run on SQLite and, when
//! `CASTELLAN_TEST_POSTGRES` names a server (as `cargo xtask bench` arranges), on
//! PostgreSQL.
//!
//! `cargo bench -p castellan --bench hub_longpoll` runs 1,000 and 10,000 agents
//! (`HUB_BENCH_AGENTS=1000,10000` to choose; `HUB_BENCH_RAMP=250` connects them 250 at a
//! time instead of all at once); under `cargo test` it runs a 50-agent smoke
//! version and checks every agent got its revision.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{HubClient, PgStore, SqliteStore};
use castellan_pve::{Fingerprint, TlsMode};
use jiff::Timestamp;

const WRITERS: usize = 32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("HUB_BENCH_AGENTS") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if bench => vec![1000, 10_000],
        Err(_) => vec![50],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>10} {:>12} {:>12} {:>9}",
        "store", "agents", "p50", "p99", "max", "all have", "RSS conn.", "peak RSS", "hub CPU"
    );
    for &n in &sizes {
        rt.block_on(run(Backend::Sqlite, n))?;
        if std::env::var_os("CASTELLAN_TEST_POSTGRES").is_some() {
            rt.block_on(run(Backend::Postgres, n))?;
        } else if bench {
            eprintln!("note: CASTELLAN_TEST_POSTGRES not set: PostgreSQL not measured");
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Kills the hub when dropped.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn doc(host: &str, cores: u32) -> String {
    format!("node = \"{host}\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {cores}\n")
}

/// Makes `n` enrolled hosts, each with revision 1, and an operator; returns the hosts'
/// credentials and the operator's token.
async fn populate<S: HubStore>(
    store: &S,
    n: usize,
) -> Result<(Vec<(String, String)>, String), Box<dyn std::error::Error>> {
    let now = Timestamp::now();
    let op = Token::generate(TokenKind::Operator);
    store.create_operator_token("bench", op.hash(), now).await?;
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        let host = format!("h{i:05}");
        let enrol = Token::generate(TokenKind::Enrol);
        let cred = Token::generate(TokenKind::Host);
        store
            .create_enrol_token(
                &host,
                enrol.hash(),
                now,
                now + jiff::SignedDuration::from_hours(1),
            )
            .await?;
        store
            .redeem_enrol_token(&host, enrol.hash(), cred.hash(), now)
            .await?;
        store
            .put_revision(&host, &doc(&host, 1), "bench", 0, now)
            .await?;
        hosts.push((host, cred.reveal().to_owned()));
    }
    Ok((hosts, op.reveal().to_owned()))
}

async fn fresh_pg() -> Result<String, Box<dyn std::error::Error>> {
    let admin = std::env::var("CASTELLAN_TEST_POSTGRES")?;
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    let name = format!("castellan_bench_{}", hex::encode(rand::random::<[u8; 6]>()));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = conn.await;
    let mut url: url::Url = admin.parse()?;
    url.set_path(&name);
    Ok(url.to_string())
}

fn start_hub(
    dir: &Path,
    db: Option<&str>,
) -> Result<(Hub, String, String), Box<dyn std::error::Error>> {
    use std::io::BufRead as _;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.env_remove("CASTELLAN_HUB_DATABASE_URL")
        .env("RUST_LOG", "warn");
    if let Some(db) = db {
        cmd.env("CASTELLAN_HUB_DATABASE_URL", db);
    }
    let mut child = cmd
        .args(["hub", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let hub = Hub(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().ok_or("hub said nothing")??;
    let second = lines.next().ok_or("no fingerprint")??;
    let url = first
        .strip_prefix("castellan hub listening on ")
        .ok_or_else(|| format!("unexpected: {first}"))?
        .to_owned();
    let fp = second
        .rsplit(' ')
        .next()
        .ok_or("no fingerprint")?
        .to_owned();
    Ok((hub, url, fp))
}

async fn run(backend: Backend, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_pg().await?),
    };
    let (hosts, operator) = match &db {
        None => populate(&SqliteStore::open(dir.path())?, n).await?,
        Some(url) => populate(&PgStore::connect(url).await?, n).await?,
    };
    let (hub, url, fp) = start_hub(dir.path(), db.as_deref())?;
    let pid = hub.0.id();
    let tls = TlsMode::Fingerprint(fp.parse::<Fingerprint>()?);
    let base: url::Url = url.parse()?;

    // Every agent connects and waits on revision 1.
    let got: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut agents = Vec::with_capacity(n);
    // Agents connect in waves of `HUB_BENCH_RAMP` (all at once by default), as a fleet
    // coming up over time would.
    let ramp: usize = std::env::var("HUB_BENCH_RAMP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
        .max(1);
    let mut connected = 0usize;
    for (i, (host, cred)) in hosts.iter().enumerate() {
        if i > 0 && i % ramp == 0 {
            while connected < i {
                ready_rx.recv().await;
                connected += 1;
            }
        }
        let client = HubClient::new(base.clone(), &tls)?.with_token(cred.clone());
        let (got, host, ready) = (Arc::clone(&got), host.clone(), ready_tx.clone());
        agents.push(tokio::spawn(async move {
            // Connect (TLS) with a first, immediate poll; then wait.
            let _ = client.poll(1, 0, Duration::ZERO).await;
            let _ = ready.send(()).await;
            loop {
                match client.poll(1, 0, Duration::from_secs(60)).await {
                    Ok(p) if p.news.is_some() => {
                        got.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(host, Instant::now());
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }));
    }
    drop(ready_tx);
    while connected < n {
        ready_rx.recv().await;
        connected += 1;
    }
    // Let the last polls settle into their wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = proc_status_kib(pid, "VmRSS:");

    // The write wave: a new revision for every host.
    let op = HubClient::new(base.clone(), &tls)?.with_token(operator);
    let cpu_before = cpu_ticks(pid);
    let wave = Instant::now();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let queue = Arc::new(Mutex::new(
        hosts.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
    ));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (op, queue, sent) = (op.clone(), Arc::clone(&queue), Arc::clone(&sent));
        writers.push(tokio::spawn(async move {
            loop {
                let Some(host) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return Ok::<_, String>(());
                };
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.clone(), Instant::now());
                op.put_desired(&host, &doc(&host, 2), 1)
                    .await
                    .map_err(|e| format!("{host}: {e}"))?;
            }
        }));
    }
    for w in writers {
        w.await??;
    }
    for a in agents {
        tokio::time::timeout(Duration::from_secs(120), a).await??;
    }
    let all_have = wave.elapsed();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks_per_sec() / all_have.as_secs_f64();
    let peak = proc_status_kib(pid, "VmHWM:");
    let got = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(got.len(), n, "every agent has its revision");
    let mut lat: Vec<Duration> = got
        .iter()
        .map(|(h, at)| at.saturating_duration_since(sent[h]))
        .collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>10} {:>8.1} MiB {:>8.1} MiB {:>8.0}%",
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        n,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        format!("{:.2} s", all_have.as_secs_f64()),
        rss_connected as f64 / 1024.0,
        peak as f64 / 1024.0,
        cpu * 100.0
    );
    drop(hub);
    Ok(())
}
