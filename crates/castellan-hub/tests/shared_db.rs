//! Several hubs behind one PostgreSQL database, as separate processes would be: each
//! with its own pool and its own LISTEN connection, sharing one certificate (as behind
//! a load balancer). A write through one hub wakes a long-poll held by the other; an
//! agent moves between them without noticing; concurrent writes for one host through
//! both serialise.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, PgStore, tls};
use castellan_pve::TlsMode;
use jiff::Timestamp;
use reqwest::StatusCode;

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Pair {
    _dir: tempfile::TempDir,
    a: (Arc<Hub<PgStore>>, castellan_hub::Running),
    b: (Arc<Hub<PgStore>>, castellan_hub::Running),
    pin: castellan_pve::Fingerprint,
    operator: String,
}

impl Pair {
    async fn start() -> Result<Pair, Box<dyn std::error::Error>> {
        let url = castellan_testkit::postgres::fresh_database().await;
        let dir = tempfile::tempdir()?;
        let tls = tls::self_signed(dir.path(), &["127.0.0.1".into()])?;
        let mut hubs = Vec::new();
        for _ in 0..2 {
            let hub = Hub::new(PgStore::connect(&url).await?);
            let running =
                castellan_hub::serve(Arc::clone(&hub), TcpListener::bind("127.0.0.1:0")?, &tls)?;
            hubs.push((hub, running));
        }
        let b = hubs.pop().ok_or("hub b")?;
        let a = hubs.pop().ok_or("hub a")?;
        let op = Token::generate(TokenKind::Operator);
        a.0.store()
            .create_operator_token("alice", op.hash(), Timestamp::now())
            .await?;
        Ok(Pair {
            _dir: dir,
            a,
            b,
            pin: tls.fingerprint,
            operator: op.reveal().to_owned(),
        })
    }

    fn client(
        &self,
        running: &castellan_hub::Running,
    ) -> Result<HubClient, Box<dyn std::error::Error>> {
        Ok(HubClient::new(
            running.url().parse()?,
            &TlsMode::Fingerprint(self.pin),
        )?)
    }
}

fn doc(cores: u32) -> String {
    format!("node = \"pve-01\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {cores}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_serve_one_fleet_and_an_agent_moves_between_them() -> TestResult {
    if !castellan_testkit::postgres::available() {
        return Ok(());
    }
    let p = Pair::start().await?;
    let op_a = p.client(&p.a.1)?.with_token(p.operator.clone());
    let op_b = p.client(&p.b.1)?.with_token(p.operator.clone());

    // Enrolled through A; its credential works on B, and both name one database.
    let enrol = Token::generate(TokenKind::Enrol);
    let now = Timestamp::now();
    p.a.0
        .store()
        .create_enrol_token(
            "pve-01",
            enrol.hash(),
            now,
            now + jiff::SignedDuration::from_hours(1),
        )
        .await?;
    let cred = p.client(&p.a.1)?.enrol("pve-01", enrol.reveal()).await?;
    let agent_a = p.client(&p.a.1)?.with_token(cred.credential.clone());
    let agent_b = p.client(&p.b.1)?.with_token(cred.credential);
    let id_a = agent_a.poll(0, 0, Duration::ZERO).await?.hub_id;
    let id_b = agent_b.poll(0, 0, Duration::ZERO).await?.hub_id;
    assert!(id_a.is_some());
    assert_eq!(id_a, id_b, "one database, one identity");

    // A long-poll held by B is woken by a write through A (LISTEN/NOTIFY).
    let waiting = tokio::spawn({
        let agent_b = agent_b.clone();
        async move { agent_b.poll(0, 0, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = Instant::now();
    op_a.put_desired("pve-01", &doc(2), 0).await?;
    let got = waiting.await??.news.ok_or("B's poll ended without news")?;
    let lag = written.elapsed();
    assert!(
        lag < Duration::from_secs(2),
        "woken {lag:?} after the write"
    );
    assert_eq!(got.desired.ok_or("a revision")?.revision, 1);

    // An op relayed through B reaches the agent polling A; acknowledged on A, B sees it.
    let text = castellan_core::op::SignedOp {
        op: "destroy".into(),
        host: "pve-01".into(),
        target: "lxc/101".parse()?,
        precondition: Some("a".repeat(40)),
        nonce: "0123456789abcdef0123456789abcdef".into(),
        not_before: now,
        not_after: now + jiff::SignedDuration::from_hours(1),
        params: Default::default(),
    }
    .render();
    let sig = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
    let waiting = tokio::spawn({
        let agent_a = agent_a.clone();
        async move { agent_a.poll(1, 0, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relayed = op_b.submit_op("pve-01", &text, vec![sig.into()]).await?;
    let got = waiting
        .await??
        .news
        .ok_or("A's poll ended without the op")?;
    assert_eq!(got.ops.first().map(|o| o.id), Some(relayed.id));
    agent_a.ack_ops(relayed.id).await?;
    let ops = op_b.ops("pve-01").await?;
    assert!(ops.iter().all(|o| o.delivered_at.is_some()), "{ops:?}");

    // Two operators write at once for one host, one through each hub: exactly one wins.
    let (doc3, doc4) = (doc(3), doc(4));
    let (ra, rb) = tokio::join!(
        op_a.put_desired("pve-01", &doc3, 1),
        op_b.put_desired("pve-01", &doc4, 1)
    );
    let outcomes = [ra.is_ok(), rb.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "{ra:?} {rb:?}"
    );
    let loser = ra.err().or(rb.err()).ok_or("a loser")?;
    assert_eq!(loser.status(), Some(StatusCode::CONFLICT));
    let history = op_b.desired("pve-01").await?.ok_or("latest")?;
    assert_eq!(history.revision, 2);

    // The agent's audit head uploaded through A is the one B serves.
    assert_eq!(agent_a.audit_head().await?, agent_b.audit_head().await?);
    Ok(())
}

#[tokio::test]
async fn a_database_from_a_newer_hub_is_refused() -> TestResult {
    if !castellan_testkit::postgres::available() {
        return Ok(());
    }
    let url = castellan_testkit::postgres::fresh_database().await;
    drop(PgStore::connect(&url).await?);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute("UPDATE castellan_hub_schema SET version = 99")
        .await?;
    let e = PgStore::connect(&url).await.expect_err("a newer schema");
    assert!(e.to_string().contains("refusing to downgrade"), "{e}");
    Ok(())
}
