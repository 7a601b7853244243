//! The hub's API over real TLS on loopback. Every test that does not depend on the
//! backend runs twice: on the embedded SQLite store and on a real PostgreSQL (the server
//! `cargo xtask test` starts; its URL in `CASTELLAN_TEST_POSTGRES`, each test in a fresh
//! database). Under `CI=true` a missing PostgreSQL fails the PostgreSQL half.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_core::op::SignedOp;
use castellan_hub::proto::{
    AgentReport, AuditHead, AuditProblemKind, AuditUpload, HostState, PendingReport,
};
use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, PgStore, SqliteStore, tls};
use castellan_pve::{Fingerprint, TlsMode};
use jiff::Timestamp;
use reqwest::StatusCode;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A store the tests can make afresh.
trait Fresh: HubStore + Sized {
    async fn fresh(dir: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>>;
}

impl Fresh for SqliteStore {
    async fn fresh(dir: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(SqliteStore::open(dir)?)
    }
}

impl Fresh for PgStore {
    async fn fresh(_dir: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(PgStore::connect(&castellan_testkit::postgres::fresh_database().await).await?)
    }
}

/// Runs each named generic test on both stores.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() -> TestResult {
                    super::$name(TestHub::<SqliteStore>::start().await?).await
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() -> TestResult {
                    if !castellan_testkit::postgres::available() {
                        return Ok(());
                    }
                    super::$name(TestHub::<PgStore>::start().await?).await
                }
            )*
        }
    };
}

on_both_stores!(
    enrolment_is_one_time_per_host_and_revocable,
    enrolment_attempts_are_rate_limited,
    desired_state_is_validated_versioned_and_conflicts_are_refused,
    a_waiting_agent_gets_a_new_revision_at_once_and_only_its_own,
    tokens_only_open_their_own_doors,
    ops_are_checked_for_form_relayed_to_their_host_and_acknowledged,
    reports_feed_the_fleet_status,
    bad_bodies_get_clear_errors_and_change_nothing,
    the_openapi_document_matches_the_routes,
    the_hub_keeps_each_hosts_verified_audit_chain_and_flags_forks_gaps_and_rewinds,
    metrics_count_what_the_hub_does_and_describe_the_fleet,
    the_ledger_report_is_checked_kept_and_served_to_operators_only,
    relayed_ops_are_found_newest_first_and_by_their_text,
);

struct TestHub<S: HubStore> {
    _dir: tempfile::TempDir,
    hub: Arc<Hub<S>>,
    running: Option<castellan_hub::Running>,
    url: url::Url,
    pin: Fingerprint,
    operator: String,
}

impl<S: Fresh> TestHub<S> {
    async fn start() -> Result<TestHub<S>, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = S::fresh(dir.path()).await?;
        let hub = Hub::new(store);
        let tls = tls::self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()])?;
        let running =
            castellan_hub::serve(Arc::clone(&hub), TcpListener::bind("127.0.0.1:0")?, &tls)?;
        let url: url::Url = running.url().parse()?;
        let op = Token::generate(TokenKind::Operator);
        hub.store()
            .create_operator_token("alice", op.hash(), Timestamp::now())
            .await?;
        Ok(TestHub {
            _dir: dir,
            hub,
            running: Some(running),
            url,
            pin: tls.fingerprint,
            operator: op.reveal().to_owned(),
        })
    }

    fn client(&self) -> Result<HubClient, Box<dyn std::error::Error>> {
        Ok(HubClient::new(
            self.url.clone(),
            &TlsMode::Fingerprint(self.pin),
        )?)
    }

    fn operator(&self) -> Result<HubClient, Box<dyn std::error::Error>> {
        Ok(self.client()?.with_token(self.operator.clone()))
    }

    async fn enrol_token(&self, host: &str) -> Result<String, Box<dyn std::error::Error>> {
        let t = Token::generate(TokenKind::Enrol);
        let now = Timestamp::now();
        self.hub
            .store()
            .create_enrol_token(
                host,
                t.hash(),
                now,
                now + jiff::SignedDuration::from_hours(1),
            )
            .await?;
        Ok(t.reveal().to_owned())
    }

    /// A client holding `host`'s credential.
    async fn agent(&self, host: &str) -> Result<HubClient, Box<dyn std::error::Error>> {
        let token = self.enrol_token(host).await?;
        let cred = self.client()?.enrol(host, &token).await?;
        assert!(cred.credential.starts_with("cst_host_"));
        Ok(self.client()?.with_token(cred.credential))
    }
}

impl<S: HubStore> Drop for TestHub<S> {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            drop(r);
        }
    }
}

fn doc(node: &str, cores: u32) -> String {
    format!("node = \"{node}\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {cores}\n")
}

fn op_text(host: &str) -> String {
    let now = Timestamp::now();
    SignedOp {
        op: "destroy".into(),
        host: host.into(),
        target: "lxc/101".parse().expect("target"),
        precondition: Some("a".repeat(40)),
        nonce: "0123456789abcdef0123456789abcdef".into(),
        not_before: now,
        not_after: now + jiff::SignedDuration::from_hours(1),
        params: Default::default(),
    }
    .render()
}

const SIG: &str = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";

async fn enrolment_is_one_time_per_host_and_revocable<S: Fresh>(h: TestHub<S>) -> TestResult {
    let token = h.enrol_token("pve-01").await?;
    // For another host: refused, and the token is not spent by the attempt.
    let e = h
        .client()?
        .enrol("pve-02", &token)
        .await
        .expect_err("wrong host");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    let cred = h.client()?.enrol("pve-01", &token).await?;
    // Used once: refused again.
    let e = h
        .client()?
        .enrol("pve-01", &token)
        .await
        .expect_err("reused");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    assert!(e.to_string().contains("already used"), "{e}");
    // A credential is not an enrolment token, and says so without echoing it.
    let e = h
        .client()?
        .enrol("pve-01", &cred.credential)
        .await
        .expect_err("kind");
    assert!(
        e.to_string()
            .contains("expected an enrolment token, got a host credential"),
        "{e}"
    );
    assert!(!e.to_string().contains(&cred.credential));

    let agent = h.client()?.with_token(cred.credential.clone());
    assert!(agent.poll(0, 0, Duration::ZERO).await?.news.is_none());
    h.hub
        .store()
        .revoke_host("pve-01", Timestamp::now())
        .await?;
    let e = agent.poll(0, 0, Duration::ZERO).await.expect_err("revoked");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));

    // An expired token is refused.
    let t = Token::generate(TokenKind::Enrol);
    let past = Timestamp::now() - jiff::SignedDuration::from_hours(2);
    h.hub
        .store()
        .create_enrol_token(
            "pve-03",
            t.hash(),
            past,
            past + jiff::SignedDuration::from_hours(1),
        )
        .await?;
    let e = h
        .client()?
        .enrol("pve-03", t.reveal())
        .await
        .expect_err("expired");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    Ok(())
}

async fn enrolment_attempts_are_rate_limited<S: Fresh>(h: TestHub<S>) -> TestResult {
    let c = h.client()?;
    let fake = Token::generate(TokenKind::Enrol);
    let mut limited = 0;
    for _ in 0..12 {
        match c.enrol("pve-01", fake.reveal()).await {
            Err(e) if e.status() == Some(StatusCode::TOO_MANY_REQUESTS) => limited += 1,
            Err(e) => assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}"),
            Ok(_) => panic!("a made-up token enrolled"),
        }
    }
    assert!(
        limited >= 5,
        "only {limited} of 12 rapid attempts were limited"
    );
    Ok(())
}

async fn desired_state_is_validated_versioned_and_conflicts_are_refused<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let op = h.operator()?;
    // Invalid: every problem listed, nothing stored.
    let bad = "node = \"pve-01\"\n\n[[guest]]\nvmid = 1\nkind = \"lxc\"\ncores = 0\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\nmemory = \"lots\"\n";
    let e = op.put_desired("pve-01", bad, 0).await.expect_err("invalid");
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    let text = e.to_string();
    assert!(
        text.matches("\n  - ").count() >= 2,
        "every problem listed: {text}"
    );
    assert!(op.desired("pve-01").await?.is_none(), "nothing stored");
    // For another node.
    let e = op
        .put_desired("pve-01", &doc("pve-02", 2), 0)
        .await
        .expect_err("node");
    assert!(e.to_string().contains("not \"pve-01\""), "{e}");

    let r1 = op.put_desired("pve-01", &doc("pve-01", 2), 0).await?;
    assert_eq!((r1.revision, r1.changed), (1, true));
    // The same document again: nothing new.
    let same = op.put_desired("pve-01", &doc("pve-01", 2), 1).await?;
    assert_eq!((same.revision, same.changed), (1, false));
    let r2 = op.put_desired("pve-01", &doc("pve-01", 4), 1).await?;
    assert_eq!(r2.revision, 2);
    // Based on a stale revision: refused, nothing written.
    let e = op
        .put_desired("pve-01", &doc("pve-01", 8), 1)
        .await
        .expect_err("stale");
    assert_eq!(e.status(), Some(StatusCode::CONFLICT));
    assert!(
        e.to_string().contains("latest revision of pve-01 is 2"),
        "{e}"
    );
    let latest = op.desired("pve-01").await?.expect("latest");
    assert_eq!((latest.revision, latest.author.as_str()), (2, "alice"));
    assert!(latest.document.contains("cores = 4"));
    let history = h.hub.store().history("pve-01", 10).await?;
    assert_eq!(
        history.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [2, 1]
    );
    Ok(())
}

async fn a_waiting_agent_gets_a_new_revision_at_once_and_only_its_own<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let a = h.agent("pve-01").await?;
    let b = h.agent("pve-02").await?;
    let op = h.operator()?;
    op.put_desired("pve-02", &doc("pve-02", 2), 0).await?;
    // Nothing for pve-01 yet: the poll waits out its time.
    let started = Instant::now();
    let idle = a.poll(0, 0, Duration::from_millis(300)).await?;
    assert!(idle.news.is_none());
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Every answer names the database, so an agent notices when it is another one.
    let id = idle.hub_id.expect("the hub's id on a 204");
    assert_eq!(id.len(), 32);
    assert_eq!(Some(id.as_str()), Some(h.hub.id().await?));
    let other = TestHub::<S>::start().await?;
    assert_ne!(other.hub.id().await?, id, "each database has its own id");

    let waiting = tokio::spawn({
        let a = a.clone();
        async move { a.poll(0, 0, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = Instant::now();
    op.put_desired("pve-01", &doc("pve-01", 3), 0).await?;
    let got = waiting.await??.news.expect("a revision");
    let lag = written.elapsed();
    assert!(
        lag < Duration::from_secs(5),
        "woken {lag:?} after the write"
    );
    let rev = got.desired.expect("desired");
    assert_eq!(rev.revision, 1);
    assert!(rev.document.contains("node = \"pve-01\""));
    // pve-02 sees its own document, never pve-01's.
    let polled_b = b.poll(0, 0, Duration::ZERO).await?;
    assert_eq!(polled_b.hub_id.as_deref(), Some(id.as_str()));
    let got_b = polled_b.news.expect("b's revision");
    assert!(
        got_b
            .desired
            .expect("desired")
            .document
            .contains("node = \"pve-02\"")
    );
    // Up to date: nothing.
    assert!(a.poll(1, 0, Duration::ZERO).await?.news.is_none());
    Ok(())
}

async fn tokens_only_open_their_own_doors<S: Fresh>(h: TestHub<S>) -> TestResult {
    let agent = h.agent("pve-01").await?;
    let op = h.operator()?;
    // A host credential cannot write desired state or list hosts.
    let e = agent
        .put_desired("pve-01", &doc("pve-01", 2), 0)
        .await
        .expect_err("host writes");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(
        e.to_string()
            .contains("expected an operator token, got a host credential"),
        "{e}"
    );
    assert_eq!(
        agent.hosts().await.expect_err("host lists").status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    // An operator token cannot poll as a host.
    let e = op
        .poll(0, 0, Duration::ZERO)
        .await
        .expect_err("operator polls");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    // No token, a made-up token, a revoked operator.
    assert_eq!(
        h.client()?.hosts().await.expect_err("none").status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let fake = h
        .client()?
        .with_token(Token::generate(TokenKind::Operator).reveal().to_owned());
    assert_eq!(
        fake.hosts().await.expect_err("fake").status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    h.hub
        .store()
        .revoke_operator("alice", Timestamp::now())
        .await?;
    assert_eq!(
        op.hosts().await.expect_err("revoked").status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    Ok(())
}

async fn ops_are_checked_for_form_relayed_to_their_host_and_acknowledged<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let a = h.agent("pve-01").await?;
    let b = h.agent("pve-02").await?;
    let op = h.operator()?;
    let e = op
        .submit_op("pve-01", "not an op", vec![SIG.into()])
        .await
        .expect_err("garbage");
    assert!(e.to_string().contains("not a signed-op file"), "{e}");
    let e = op
        .submit_op("pve-01", &op_text("pve-02"), vec![SIG.into()])
        .await
        .expect_err("other host");
    assert!(
        e.to_string()
            .contains("the op is for host \"pve-02\", not \"pve-01\""),
        "{e}"
    );
    let e = op
        .submit_op("pve-01", &op_text("pve-01"), vec![])
        .await
        .expect_err("unsigned");
    assert!(e.to_string().contains("no signature"), "{e}");
    let e = op
        .submit_op("pve-01", &op_text("pve-01"), vec!["hello".into()])
        .await
        .expect_err("sig");
    assert!(
        e.to_string()
            .contains("signature 1 is not an armored SSH signature"),
        "{e}"
    );

    let waiting = tokio::spawn({
        let a = a.clone();
        async move { a.poll(0, 0, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = op
        .submit_op("pve-01", &op_text("pve-01"), vec![SIG.into()])
        .await?;
    let got = waiting.await??.news.expect("the op");
    assert_eq!(got.ops.len(), 1);
    assert_eq!(got.ops[0].id, sent.id);
    assert_eq!(got.ops[0].sigs, [SIG]);
    assert_eq!(got.ops[0].submitted_by, "alice");
    // Not pve-02's.
    assert!(b.poll(0, 0, Duration::ZERO).await?.news.is_none());
    assert!(op.ops("pve-01").await?[0].delivered_at.is_none());
    a.ack_ops(sent.id).await?;
    assert!(op.ops("pve-01").await?[0].delivered_at.is_some());
    // Paged by id.
    let first = op.ops("pve-01").await?[0].id;
    assert!(op.ops_page("pve-01", first).await?.is_empty());
    assert_eq!(op.ops_page("pve-01", first - 1).await?.len(), 1);
    assert!(a.poll(0, sent.id, Duration::ZERO).await?.news.is_none());
    Ok(())
}

async fn reports_feed_the_fleet_status<S: Fresh>(h: TestHub<S>) -> TestResult {
    let a = h.agent("pve-01").await?;
    let b = h.agent("pve-02").await?;
    let op = h.operator()?;
    op.put_desired("pve-01", &doc("pve-01", 2), 0).await?;
    op.put_desired("pve-02", &doc("pve-02", 2), 0).await?;
    a.report(&AgentReport {
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        converged: true,
        ..AgentReport::default()
    })
    .await?;
    b.report(&AgentReport {
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        converged: false,
        pending: vec![PendingReport {
            name: "pve-02-lxc-101-destroy.op".into(),
            payload: op_text("pve-02"),
            takes: Vec::new(),
        }],
        ..AgentReport::default()
    })
    .await?;
    let hosts = op.hosts().await?;
    let state = |n: &str| hosts.iter().find(|h| h.host == n).map(|h| h.state);
    assert_eq!(state("pve-01"), Some(HostState::Converged));
    assert_eq!(state("pve-02"), Some(HostState::Pending));
    // A newer revision the host has not applied yet: drifting.
    op.put_desired("pve-01", &doc("pve-01", 3), 1).await?;
    let hosts = op.hosts().await?;
    assert_eq!(
        hosts.iter().find(|h| h.host == "pve-01").map(|h| h.state),
        Some(HostState::Drifting)
    );
    Ok(())
}

async fn bad_bodies_get_clear_errors_and_change_nothing<S: Fresh>(h: TestHub<S>) -> TestResult {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(castellan_pve::tls_client_config(&TlsMode::Fingerprint(
            h.pin,
        ))?)
        .build()?;
    let url = |p: &str| h.url.join(p).expect("url");
    // An unknown field is named.
    let r = http
        .put(url("/v1/hosts/pve-01/desired"))
        .bearer_auth(&h.operator)
        .json(&serde_json::json!({ "document": doc("pve-01", 2), "based_on": 0, "force": true }))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = r.json().await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown field `force`"),
        "{body}"
    );
    // Too large for the route.
    let a = h.agent("pve-01").await?;
    let huge = "x".repeat(server_report_limit() + 1);
    let e = a
        .report(&AgentReport {
            agent_version: huge,
            ..AgentReport::default()
        })
        .await
        .expect_err("oversize");
    assert_eq!(e.status(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    // Not JSON.
    let r = http
        .post(url("/v1/hosts/pve-01/ops"))
        .bearer_auth(&h.operator)
        .body("op=1")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A bad host name in the path.
    let r = http
        .get(url("/v1/hosts/bad%20host/desired"))
        .bearer_auth(&h.operator)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(h.operator()?.desired("pve-01").await?.is_none());
    Ok(())
}

fn server_report_limit() -> usize {
    castellan_hub::server::REPORT_BODY
}

async fn the_openapi_document_matches_the_routes<S: Fresh>(h: TestHub<S>) -> TestResult {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(castellan_pve::tls_client_config(&TlsMode::Fingerprint(
            h.pin,
        ))?)
        .build()?;
    let doc: serde_json::Value = http
        .get(h.url.join("/v1/openapi.json")?)
        .send()
        .await?
        .json()
        .await?;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = castellan_hub::openapi::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, listed);
    // Every listed route is served (a missing one answers 404 "no such route", a wrong
    // method 405); every $ref resolves.
    for (method, path) in &listed {
        let concrete = path.replace("{host}", "pve-01").replace("{revision}", "1");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
        let r = http.request(m, h.url.join(&concrete)?).send().await?;
        assert!(
            r.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            r.status()
        );
        if r.status() == StatusCode::NOT_FOUND {
            let body: serde_json::Value = r.json().await?;
            assert_ne!(
                body["message"], "no such route",
                "{method} {path} is not served"
            );
        }
    }
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or("");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    let r = http.get(h.url.join("/v1/nothing")?).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn the_pin_is_checked_and_the_certificate_survives_restarts() -> TestResult {
    let h = TestHub::<SqliteStore>::start().await?;
    let wrong = HubClient::new(h.url.clone(), &TlsMode::Fingerprint(Fingerprint([7; 32])))?;
    let e = wrong.hosts().await.expect_err("wrong pin");
    assert!(e.status().is_none(), "refused in the handshake: {e}");
    let dir = tempfile::tempdir()?;
    let first = tls::self_signed(dir.path(), &["localhost".into()])?;
    let again = tls::self_signed(dir.path(), &["localhost".into()])?;
    assert_eq!(first.fingerprint, again.fingerprint);
    let mode = std::fs::metadata(dir.path().join(tls::KEY_FILE))?.permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    Ok(())
}

#[tokio::test]
async fn a_database_from_a_newer_hub_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    drop(SqliteStore::open(dir.path())?);
    let conn = rusqlite::Connection::open(dir.path().join("hub.db"))?;
    conn.pragma_update(None, "user_version", 99)?;
    drop(conn);
    let e = SqliteStore::open(dir.path()).expect_err("newer schema");
    assert!(e.to_string().contains("refusing to downgrade"), "{e}");
    Ok(())
}

/// A real agent audit log of `n` records (tagged so two logs differ), as export lines.
fn audit_log(dir: &std::path::Path, n: usize, tag: &str) -> Vec<serde_json::Value> {
    std::fs::create_dir_all(dir).expect("dir");
    let mut store = castellan_store::Store::open(dir).expect("store");
    for i in 0..n {
        store
            .append_audit(
                castellan_store::AuditEvent::ActionFailed {
                    error: format!("{tag} {i}"),
                },
                Timestamp::now(),
            )
            .expect("append");
    }
    store
        .export_lines(1, 10_000)
        .expect("export")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn head_of(records: &[serde_json::Value], seq: usize) -> AuditHead {
    AuditHead {
        seq: seq as u64,
        hash: records[seq - 1]["hash"].as_str().expect("hash").to_owned(),
    }
}

async fn the_hub_keeps_each_hosts_verified_audit_chain_and_flags_forks_gaps_and_rewinds<
    S: Fresh,
>(
    h: TestHub<S>,
) -> TestResult {
    let agent = h.agent("pve-01").await?;
    let other = h.agent("pve-02").await?;
    let op = h.operator()?;
    let logs = tempfile::tempdir()?;
    let recs = audit_log(&logs.path().join("a"), 6, "a");
    let forged = audit_log(&logs.path().join("b"), 6, "b");

    assert_eq!(agent.audit_head().await?.seq, 0);
    // In two pieces, the second extending the first.
    let upload = |head: AuditHead, records: &[serde_json::Value]| AuditUpload {
        head,
        records: records.to_vec(),
    };
    let held = agent
        .upload_audit(&upload(head_of(&recs, 4), &recs[..3]))
        .await?;
    assert_eq!(held, head_of(&recs, 3));
    let held = agent
        .upload_audit(&upload(head_of(&recs, 4), &recs[3..4]))
        .await?;
    assert_eq!(held, head_of(&recs, 4));
    assert_eq!(agent.audit_head().await?, head_of(&recs, 4));
    // Another host's chain is its own.
    assert_eq!(other.audit_head().await?.seq, 0);

    // The operator reads it back and it verifies on its own.
    let page = op.host_audit("pve-01", 0).await?;
    assert_eq!(page.verified, head_of(&recs, 4));
    assert_eq!(page.records, recs[..4].to_vec());
    let text: String = page.records.iter().map(|r| format!("{r}\n")).collect();
    let report = castellan_store::verify_jsonl(text.as_bytes())?;
    assert_eq!(report.head_hash, head_of(&recs, 4).hash);
    assert!(page.problems.is_empty());

    // A rewritten history (a chain that forks at record 5), a gap, a rewind: each
    // refused with 409, nothing stored, the problem kept and shown.
    let e = agent
        .upload_audit(&upload(head_of(&forged, 6), &forged[4..]))
        .await
        .expect_err("a fork");
    assert_eq!(e.status(), Some(StatusCode::CONFLICT));
    assert!(e.to_string().contains("fork"), "{e}");
    let e = agent
        .upload_audit(&upload(head_of(&recs, 6), &recs[5..]))
        .await
        .expect_err("a gap");
    assert!(e.to_string().contains("gap"), "{e}");
    let e = agent
        .upload_audit(&upload(head_of(&recs, 2), &[]))
        .await
        .expect_err("a rewind");
    assert!(e.to_string().contains("rewind"), "{e}");
    // The same fork again is counted, not repeated.
    agent
        .upload_audit(&upload(head_of(&forged, 6), &forged[4..]))
        .await
        .expect_err("a fork again");
    assert_eq!(agent.audit_head().await?, head_of(&recs, 4));
    let page = op.host_audit("pve-01", 4).await?;
    assert!(page.records.is_empty());
    // Listed as first seen (problems seen within the same millisecond by record).
    let seen: Vec<(jiff::Timestamp, u64)> = page
        .problems
        .iter()
        .map(|p| (p.first_seen.parse().expect("RFC 3339"), p.seq))
        .collect();
    assert!(seen.is_sorted(), "{seen:?}");
    let mut kinds: Vec<(AuditProblemKind, u64, u64)> = page
        .problems
        .iter()
        .map(|p| (p.kind, p.seq, p.count))
        .collect();
    kinds.sort_by_key(|k| (k.1, k.2));
    assert_eq!(
        kinds,
        [
            (AuditProblemKind::Rewind, 4, 1),
            (AuditProblemKind::Gap, 5, 1),
            (AuditProblemKind::Fork, 5, 2),
        ]
    );
    let hosts = op.hosts().await?;
    let pve01 = hosts.iter().find(|s| s.host == "pve-01").expect("pve-01");
    assert_eq!((pve01.audit_seq, pve01.audit_problems), (Some(4), 3));

    // The genuine continuation is still taken.
    let held = agent
        .upload_audit(&upload(head_of(&recs, 6), &recs[4..]))
        .await?;
    assert_eq!(held, head_of(&recs, 6));

    // A host reinstalled starts a new chain: refused as a rewind until an administrator
    // resets the host's chain on the hub (archived, problems cleared); then taken.
    let fresh = audit_log(&logs.path().join("c"), 2, "c");
    agent
        .upload_audit(&upload(head_of(&fresh, 2), &fresh))
        .await
        .expect_err("a new chain is a rewind");
    assert_eq!(
        h.hub
            .store()
            .reset_audit("pve-01", Timestamp::now())
            .await?,
        6
    );
    let page = op.host_audit("pve-01", 0).await?;
    assert!(page.problems.is_empty() && page.records.is_empty());
    let held = agent
        .upload_audit(&upload(head_of(&fresh, 2), &fresh))
        .await?;
    assert_eq!(held, head_of(&fresh, 2));
    let held = agent
        .upload_audit(&upload(head_of(&recs, 6), &recs[4..]))
        .await;
    assert!(held.is_err(), "the old chain does not extend the new one");

    // An oversize batch is refused whole.
    let many = vec![recs[0].clone(); castellan_hub::proto::MAX_AUDIT_BATCH as usize + 1];
    let e = agent
        .upload_audit(&upload(head_of(&recs, 6), &many))
        .await
        .expect_err("too many");
    assert_eq!(e.status(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    // Operators only read; hosts only write their own.
    assert_eq!(
        agent
            .host_audit("pve-01", 0)
            .await
            .expect_err("a host")
            .status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    Ok(())
}

async fn metrics_count_what_the_hub_does_and_describe_the_fleet<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let agent = h.agent("pve-01").await?;
    let op = h.operator()?;
    op.put_desired("pve-01", &doc("pve-01", 2), 0).await?;
    op.put_desired("pve-01", &doc("pve-01", 3), 1).await?;
    agent
        .report(&AgentReport {
            agent_version: "test".into(),
            applied_revision: Some(1),
            converged: true,
            ..AgentReport::default()
        })
        .await?;
    let polled = agent.poll(0, 0, Duration::ZERO).await?;
    assert!(polled.news.is_some());
    // Without an operator token: refused (the metrics name every host).
    let e = h.client()?.metrics().await.expect_err("no token");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        agent.metrics().await.expect_err("a host token").status(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let text = op.metrics().await?;
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    };
    assert_eq!(value("castellan_hub_revisions_total "), 2.0);
    assert_eq!(value("castellan_hub_reports_total "), 1.0);
    assert_eq!(
        value("castellan_hub_enrolments_total{outcome=\"enrolled\"}"),
        1.0
    );
    assert_eq!(
        value("castellan_hub_poll_answers_total{answer=\"news\"}"),
        1.0
    );
    assert_eq!(value("castellan_hub_long_polls "), 0.0);
    assert_eq!(
        value("castellan_hub_host_revision_lag{host=\"pve-01\"}"),
        1.0
    );
    assert_eq!(value("castellan_hub_hosts{state=\"drifting\"}"), 1.0);
    assert!(
        value("castellan_hub_requests_total{route=\"/v1/hosts/{host}/desired\",code=\"201\"}")
            >= 2.0
    );
    // A long-poll in progress is counted while it waits.
    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move { agent.poll(2, 0, Duration::from_secs(5)).await }
    });
    let mut seen = false;
    for _ in 0..50 {
        let text = op.metrics().await?;
        if text.lines().any(|l| l == "castellan_hub_long_polls 1") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the open long-poll is counted");
    waiting.abort();
    Ok(())
}

fn ledger_report(label: &str) -> serde_json::Value {
    serde_json::json!({
        "schema_version": castellan_ledger::schema::ACCEPTANCE_SCHEMA,
        "acceptance_candidates": [{ "surface_id": "compose:web", "label": label, "status": "waiting_owner_response" }],
        "summary": { "acceptance_candidate_count": 1 },
    })
}

async fn the_ledger_report_is_checked_kept_and_served_to_operators_only<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let op = h.operator()?;
    let e = op.ledger().await.expect_err("none yet");
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND), "{e}");
    // Not a report: refused, naming what is wrong, nothing kept.
    let mut wrong_schema = ledger_report("web");
    wrong_schema["schema_version"] = "host_service_config_inventory_v1".into();
    let mut no_candidates = ledger_report("web");
    no_candidates["acceptance_candidates"] = serde_json::json!({});
    for (bad, says) in [
        (serde_json::json!([1, 2]), "a JSON object"),
        (wrong_schema, "schema_version must be"),
        (no_candidates, "acceptance_candidates must be an array"),
    ] {
        let e = op.put_ledger(&bad).await.expect_err("refused");
        assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(op.ledger().await.is_err());
    // A host cannot push one, nor read it.
    let agent = h.agent("pve-01").await?;
    let e = agent
        .put_ledger(&ledger_report("web"))
        .await
        .expect_err("host");
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    // Kept, numbered, the latest served.
    assert_eq!(op.put_ledger(&ledger_report("first")).await?.number, 1);
    let second = op.put_ledger(&ledger_report("second")).await?;
    assert_eq!((second.number, second.candidates), (2, 1));
    assert_eq!(op.ledger().await?, ledger_report("second"));
    assert!(agent.ledger().await.is_err());
    let kept = h.hub.store().latest_ledger_report().await?.ok_or("kept")?;
    assert_eq!((kept.number, kept.author.as_str()), (2, "alice"));
    Ok(())
}

async fn relayed_ops_are_found_newest_first_and_by_their_text<S: Fresh>(
    h: TestHub<S>,
) -> TestResult {
    let store = h.hub.store();
    let now = Timestamp::now();
    let sig = vec![SIG.as_bytes().to_vec()];
    let a = store
        .submit_op("pve-01", b"op a", &sig, "alice", now)
        .await?;
    let b = store
        .submit_op("pve-01", b"op b", &sig, "alice", now)
        .await?;
    let a2 = store
        .submit_op(
            "pve-01",
            b"op a",
            &[sig[0].clone(), sig[0].clone()],
            "bob",
            now,
        )
        .await?;
    store
        .submit_op("pve-02", b"op a", &sig, "alice", now)
        .await?;
    let ids =
        |ops: Vec<castellan_hub::store::RelayedOp>| ops.iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(ids(store.ops_newest("pve-01", None, 2).await?), [a2, b]);
    let copies = store.ops_newest("pve-01", Some(b"op a"), 10).await?;
    assert_eq!(ids(copies.clone()), [a2, a]);
    assert_eq!(copies.iter().map(|o| o.sigs.len()).sum::<usize>(), 3);
    assert!(store.ops_newest("pve-03", None, 10).await?.is_empty());
    assert!(
        store
            .ops_newest("pve-01", Some(b"op c"), 10)
            .await?
            .is_empty()
    );
    Ok(())
}
