//! Web UI benchmark: how long the hub takes to answer its heaviest pages for a fleet of
//! N hosts, each with a report listing 10 guests field by field, every tenth with a
//! pending destroy. The hub runs in this process on its embedded SQLite store, over its
//! real TLS front; a logged-in client (session cookie) asks for each page in turn.
//! Reported per page: median and p90 latency over the requests, and the page's size (the
//! fleet page lists 500 hosts a page; its totals count them all).
//!
//! `cargo bench -p castellan-hub --bench ui` runs 100, 1,000 and 10,000 hosts
//! (`UI_BENCH_HOSTS=1000` to choose); under `cargo test` it runs a 20-host smoke version
//! and checks every page answers 200 with its hosts on it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_core::op::SignedOp;
use castellan_hub::proto::{AgentReport, GuestField, GuestReport, PendingReport};
use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, SqliteStore, tls};
use castellan_pve::TlsMode;
use jiff::Timestamp;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("UI_BENCH_HOSTS") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if bench => vec![100, 1000, 10_000],
        Err(_) => vec![20],
    };
    let requests = if bench { 30 } else { 3 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("| hosts | page | median | p90 | size |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        rt.block_on(run(n, requests))?;
    }
    Ok(())
}

fn report(host: &str, pending: bool) -> AgentReport {
    let now = Timestamp::now();
    let guests = (0..10)
        .map(|i| GuestReport {
            target: format!("lxc/{}", 100 + i),
            fields: [
                "exists",
                "run",
                "cores",
                "memory",
                "description",
                "disk rootfs",
            ]
            .iter()
            .map(|f| GuestField {
                field: (*f).to_owned(),
                desired: "declared value".into(),
                actual: "observed value".into(),
                matches: i != 3,
            })
            .collect(),
            error: (i == 3).then(|| "start refused: locked (backup)".to_owned()),
            busy: i == 3,
        })
        .collect();
    let pending = if pending {
        vec![PendingReport {
            name: format!("{host}-lxc-109-destroy.op"),
            payload: SignedOp {
                op: "destroy".into(),
                host: host.into(),
                target: "lxc/109".parse().expect("target"),
                precondition: Some("d".repeat(40)),
                nonce: "0123456789abcdef0123456789abcdef".into(),
                not_before: now,
                not_after: now + jiff::SignedDuration::from_hours(24),
                params: Default::default(),
            }
            .render(),
            takes: vec!["CT 109's disk rootfs: local-lvm:vm-109-disk-0 (8GiB)".into()],
        }]
    } else {
        Vec::new()
    };
    AgentReport {
        agent_version: "0.1.0".into(),
        applied_revision: None,
        converged: !pending.is_empty(),
        plan: vec!["guest 103: being reconciled".into()],
        pending,
        errors: vec!["guest 103: start refused: locked (backup)".into()],
        guests,
        guests_left_out: 0,
    }
}

async fn run(n: usize, requests: usize) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let hub = Hub::new(SqliteStore::open(dir.path())?);
    let tls = tls::self_signed(dir.path(), &["127.0.0.1".into()])?;
    let running = castellan_hub::serve(Arc::clone(&hub), TcpListener::bind("127.0.0.1:0")?, &tls)?;
    let url = running.url();
    let token = Token::generate(TokenKind::Operator);
    let now = Timestamp::now();
    hub.store()
        .create_operator_token("bench", token.hash(), now)
        .await?;
    // The fleet, written straight into the store (enrolment is not what is measured).
    for i in 0..n {
        let host = format!("h-{i:05}");
        let enrol = Token::generate(TokenKind::Enrol);
        hub.store()
            .create_enrol_token(
                &host,
                enrol.hash(),
                now,
                now + jiff::SignedDuration::from_hours(1),
            )
            .await?;
        let cred = Token::generate(TokenKind::Host);
        hub.store()
            .redeem_enrol_token(&host, enrol.hash(), cred.hash(), now)
            .await?;
        let text = serde_json::to_string(&report(&host, i % 10 == 0))?;
        hub.store().put_report(&host, &text, now).await?;
    }
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(castellan_pve::tls_client_config(&TlsMode::Fingerprint(
            tls.fingerprint,
        ))?)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let session = login(&http, &url, token.reveal()).await?;
    for (name, path) in [
        ("fleet", "/ui/".to_owned()),
        ("pending", "/ui/pending".to_owned()),
        ("host", format!("/ui/hosts/h-{:05}", n / 2)),
    ] {
        let mut times = Vec::with_capacity(requests);
        let mut size = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let res = http
                .get(format!("{url}{path}"))
                .header("cookie", &session)
                .send()
                .await?;
            let status = res.status();
            let body = res.text().await?;
            times.push(started.elapsed());
            if status != reqwest::StatusCode::OK {
                return Err(format!("{path} answered {status}").into());
            }
            let listed = n.min(castellan_hub::ui::view::FLEET_PAGE);
            if name == "fleet" && body.matches("class=\"host").count() != listed {
                return Err(format!("the fleet page does not list {listed} hosts").into());
            }
            size = body.len();
        }
        times.sort();
        let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {n} | {name} | {} | {} | {} KiB |",
            ms(pick(0.5)),
            ms(pick(0.9)),
            size / 1024
        );
    }
    running.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn login(http: &reqwest::Client, url: &str, token: &str) -> Res<String> {
    let page = http.get(format!("{url}/ui/login")).send().await?;
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|p| p.starts_with("__Host-castellan_login="))
        })
        .ok_or("no login cookie")?
        .to_owned();
    let body = page.text().await?;
    let at = body.find("name=\"csrf\" value=\"").ok_or("no csrf")? + 19;
    let csrf = &body[at..at + body[at..].find('"').ok_or("csrf")?];
    let res = http
        .post(format!("{url}/ui/login"))
        .header("cookie", cookie)
        .form(&[("token", token), ("csrf", csrf)])
        .send()
        .await?;
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|p| p.starts_with("__Host-castellan_session="))
        })
        .map(str::to_owned)
        .ok_or_else(|| "login refused".into())
}
