//! The hub's web UI, attacked over HTTP and used in a real headless Chromium.
//!
//! The HTTP half needs nothing but the hub: log-in, sessions, CSRF, the security headers,
//! revocation and escaping, checked on the raw answers. The browser half drives Debian's
//! `chromium` through `chromedriver` (WebDriver, with fantoccini) over the hub's real TLS:
//! it logs in, reads every page, sees a change pushed through the API appear, finds the
//! sign command of a pending op, and checks that hostile strings from a host and from a
//! desired state render as text and run nothing. Screenshots of every page are saved to
//! `target/ui-screenshots/`. Under `CI=true` a missing Chromium fails the browser half.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_core::op::SignedOp;
use castellan_hub::proto::{AgentReport, AuditHead, AuditUpload, PendingReport};
use castellan_hub::store::HubStore;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, HubClient, SqliteStore, tls};
use castellan_pve::{Fingerprint, TlsMode};
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Strings a host or an operator could put on a page, each of which would run script
/// or break out of its element if it were not escaped.
const HOSTILE: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'">"#;
const HOSTILE_ATTR: &str = r#""><svg onload="document.title='pwned'">"#;

struct UiHub {
    _dir: tempfile::TempDir,
    hub: Arc<Hub<SqliteStore>>,
    _running: castellan_hub::Running,
    url: String,
    pin: Fingerprint,
    token: String,
}

impl UiHub {
    async fn start() -> Result<UiHub, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::new(SqliteStore::open(dir.path())?);
        let tls = tls::self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()])?;
        let running =
            castellan_hub::serve(Arc::clone(&hub), TcpListener::bind("127.0.0.1:0")?, &tls)?;
        let token = Token::generate(TokenKind::Operator);
        hub.store()
            .create_operator_token("alice", token.hash(), Timestamp::now())
            .await?;
        Ok(UiHub {
            _dir: dir,
            url: running.url(),
            _running: running,
            hub,
            pin: tls.fingerprint,
            token: token.reveal().to_owned(),
        })
    }

    fn api(&self) -> Result<HubClient, Box<dyn std::error::Error>> {
        Ok(HubClient::new(
            self.url.parse()?,
            &TlsMode::Fingerprint(self.pin),
        )?)
    }

    fn operator(&self) -> Result<HubClient, Box<dyn std::error::Error>> {
        Ok(self.api()?.with_token(self.token.clone()))
    }

    async fn agent(&self, host: &str) -> Result<HubClient, Box<dyn std::error::Error>> {
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
        let cred = self.api()?.enrol(host, t.reveal()).await?;
        Ok(self.api()?.with_token(cred.credential))
    }

    /// A raw HTTP client: no redirects followed, cookies handled by the test.
    fn http(&self) -> Result<reqwest::Client, Box<dyn std::error::Error>> {
        let tls = castellan_pve::tls_client_config(&TlsMode::Fingerprint(self.pin))?;
        Ok(reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .build()?)
    }

    /// Logs in over HTTP; returns the session cookie (`name=value`).
    async fn login(&self, http: &reqwest::Client) -> Result<String, Box<dyn std::error::Error>> {
        let (csrf, login_cookie) = login_form(http, &self.url).await?;
        let res = http
            .post(format!("{}/ui/login", self.url))
            .header("cookie", login_cookie)
            .form(&[
                ("token", self.token.as_str()),
                ("csrf", &csrf),
                ("next", "/ui/"),
            ])
            .send()
            .await?;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "login answered {}",
            res.status()
        );
        cookie_named(res.headers(), "__Host-castellan_session")
            .ok_or_else(|| "no session cookie".into())
    }
}

/// The `name=value` of the cookie `name` an answer sets (with a value).
fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let pair = text.split(';').next()?.trim();
        let (k, val) = pair.split_once('=')?;
        (k == name && !val.is_empty()).then(|| pair.to_owned())
    })
}

/// The attributes every cookie the UI sets must carry.
fn assert_strict_cookie(headers: &HeaderMap) {
    for v in headers.get_all(SET_COOKIE) {
        let text = v.to_str().expect("text");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(text.contains(attr), "cookie without {attr}: {text}");
        }
        assert!(text.starts_with("__Host-"), "{text}");
    }
}

/// Fetches the login form: its CSRF value and the cookie that pairs with it.
async fn login_form(
    http: &reqwest::Client,
    url: &str,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    let res = http.get(format!("{url}/ui/login")).send().await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_strict_cookie(res.headers());
    let cookie = cookie_named(res.headers(), "__Host-castellan_login").ok_or("no login cookie")?;
    let body = res.text().await?;
    let csrf = hidden(&body, "csrf").ok_or("no csrf field")?;
    Ok((csrf, cookie))
}

/// The value of the hidden input `name` in a page.
fn hidden(body: &str, name: &str) -> Option<String> {
    let at = body.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &body[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn desired(node: &str, cores: u32, description: &str) -> String {
    let description = description.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "node = \"{node}\"\n\n[[guest]]\nvmid = 101\nkind = \"lxc\"\ncores = {cores}\ndescription = \"{description}\"\n\n[[guest]]\nvmid = 102\nkind = \"qemu\"\nensure = \"absent\"\n"
    )
}

fn destroy_payload(host: &str) -> String {
    let now = Timestamp::now();
    SignedOp {
        op: "destroy".into(),
        host: host.into(),
        target: "qemu/102".parse().expect("target"),
        precondition: Some("b".repeat(40)),
        nonce: "0123456789abcdef0123456789abcdef".into(),
        not_before: now,
        not_after: now + jiff::SignedDuration::from_hours(24),
        params: [("purge".to_owned(), "1".to_owned())].into_iter().collect(),
    }
    .render()
}

/// A real agent audit log of `n` records as export lines, with a hostile error text.
fn audit_records(dir: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let mut store = castellan_store::Store::open(dir).expect("store");
    for i in 0..n {
        store
            .append_audit(
                castellan_store::AuditEvent::ActionFailed {
                    error: format!("lxc/10{i}: start refused {HOSTILE}"),
                },
                Timestamp::now(),
            )
            .expect("append");
    }
    store
        .export_lines(1, 100)
        .expect("export")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn field(
    name: &str,
    desired: &str,
    actual: &str,
    matches: bool,
) -> castellan_hub::proto::GuestField {
    castellan_hub::proto::GuestField {
        field: name.into(),
        desired: desired.into(),
        actual: actual.into(),
        matches,
    }
}

/// pve-01 with a desired state, a report (plan, a hostile error, a pending destroy), and
/// an audit chain; pve-02 enrolled but never heard from again.
async fn populate(h: &UiHub) -> Result<(), Box<dyn std::error::Error>> {
    let op = h.operator()?;
    op.put_desired("pve-01", &desired("pve-01", 2, HOSTILE_ATTR), 0)
        .await?;
    let agent = h.agent("pve-01").await?;
    agent
        .report(&AgentReport {
            agent_version: "0.9.0".into(),
            applied_revision: Some(1),
            converged: false,
            plan: vec!["guest 101: being reconciled".into()],
            pending: vec![
                PendingReport {
                    name: "pve-01-qemu-102-destroy.op".into(),
                    payload: destroy_payload("pve-01"),
                    takes: vec![
                        "qemu/102's disk scsi0: local-lvm:vm-102-disk-0 (32 GiB)".into(),
                        format!("qemu/102's HA entry {HOSTILE}"),
                    ],
                },
                PendingReport {
                    name: format!("../../{HOSTILE_ATTR}.op"),
                    payload: HOSTILE.into(),
                    takes: Vec::new(),
                },
            ],
            errors: vec![format!("guest 101: {HOSTILE}")],
            guests: vec![castellan_hub::proto::GuestReport {
                target: "lxc/101".into(),
                fields: vec![
                    field("exists", "present", "present", true),
                    field("cores", "2", "1", false),
                    field("description", HOSTILE_ATTR, HOSTILE, false),
                ],
                error: Some(format!("start refused: {HOSTILE}")),
                busy: true,
            }],
            guests_left_out: 0,
        })
        .await?;
    let dir = tempfile::tempdir()?;
    let recs = audit_records(dir.path(), 3);
    agent
        .upload_audit(&AuditUpload {
            head: AuditHead {
                seq: 3,
                hash: recs[2]["hash"].as_str().ok_or("hash")?.to_owned(),
            },
            records: recs,
        })
        .await?;
    h.agent("pve-02").await?;
    // The host-service ledger's report, with an owner's hostile label.
    h.operator()?.put_ledger(&serde_json::json!({
        "schema_version": castellan_ledger::schema::ACCEPTANCE_SCHEMA,
        "generated_at": "2026-12-06T10:00:00+08:00",
        "acceptance_candidates": [
            {
                "acceptance_candidate_id": "host_service_owner_response_acceptance:compose-web",
                "surface_id": "compose-web",
                "label": HOSTILE,
                "config_kind": "docker_compose",
                "expected_host_scope": "pve-01",
                "write_capable_surface": true,
                "status": "request_supplement",
                "required_owner_fields": ["owner_role_or_team", "rollback_owner", "post_check_plan"],
                "owner_role_or_team": "platform",
                "rollback_owner": castellan_ledger::schema::PENDING,
                "post_check_plan": null,
                "reviewer_outcome": null
            },
            {
                "acceptance_candidate_id": "host_service_owner_response_acceptance:timer-backup",
                "surface_id": "timer-backup",
                "label": "nightly backup timer",
                "status": "waiting_owner_response",
                "required_owner_fields": []
            }
        ],
        "summary": { "acceptance_candidate_count": 2, "owner_response_accepted_count": 0 },
        "execution_boundaries": { "host_write_authorized": false, "not_authorization": true }
    })).await?;
    Ok(())
}

#[tokio::test]
async fn a_logged_out_request_is_sent_to_log_in_and_a_bad_token_opens_nothing() -> TestResult {
    let h = UiHub::start().await?;
    populate(&h).await?;
    let http = h.http()?;
    for path in [
        "/ui/",
        "/ui/pending",
        "/ui/hosts/pve-01",
        "/ui/hosts/pve-01/audit?q=x",
        "/ui/hosts/pve-01/pending/pve-01-qemu-102-destroy.op",
    ] {
        let res = http.get(format!("{}{path}", h.url)).send().await?;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let to = res.headers()[LOCATION].to_str()?;
        assert!(to.starts_with("/ui/login?next=%2Fui%2F"), "{path} -> {to}");
        let body = res.text().await?;
        assert!(!body.contains("pve-01-qemu-102"), "{path} leaked content");
    }
    // A forged or stale session cookie is no session.
    let res = http
        .get(format!("{}/ui/", h.url))
        .header(
            "cookie",
            "__Host-castellan_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // A wrong token, a host credential, an empty one: refused, named, no session cookie.
    let agent_token = Token::generate(TokenKind::Host);
    for bad in ["cst_op_nope", agent_token.reveal(), ""] {
        let (csrf, cookie) = login_form(&http, &h.url).await?;
        let res = http
            .post(format!("{}/ui/login", h.url))
            .header("cookie", cookie)
            .form(&[("token", bad), ("csrf", &csrf)])
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(cookie_named(res.headers(), "__Host-castellan_session").is_none());
        let body = res.text().await?;
        assert!(body.contains("not a live operator token"), "{body}");
        if !bad.is_empty() {
            assert!(!body.contains(bad), "the token is echoed back");
        }
    }
    // The next= of a login only ever leads back into the UI.
    let (csrf, cookie) = login_form(&http, &h.url).await?;
    let res = http
        .post(format!("{}/ui/login", h.url))
        .header("cookie", cookie)
        .form(&[
            ("token", h.token.as_str()),
            ("csrf", &csrf),
            ("next", "//evil.example/ui/"),
        ])
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/");
    Ok(())
}

#[tokio::test]
async fn forms_need_their_csrf_value_and_a_same_origin_browser() -> TestResult {
    let h = UiHub::start().await?;
    let http = h.http()?;
    let (csrf, cookie) = login_form(&http, &h.url).await?;
    // Log-in without the cookie, with another value, or from another site: refused.
    // (login cookie, form value, an extra header)
    type Attempt<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);
    let attempts: [Attempt; 4] = [
        ("", csrf.as_str(), None),
        (cookie.as_str(), "forged", None),
        (
            cookie.as_str(),
            csrf.as_str(),
            Some(("origin", "https://evil.example")),
        ),
        (
            cookie.as_str(),
            csrf.as_str(),
            Some(("sec-fetch-site", "cross-site")),
        ),
    ];
    for (c, value, extra) in attempts {
        let mut req = http
            .post(format!("{}/ui/login", h.url))
            .form(&[("token", h.token.as_str()), ("csrf", value)]);
        if !c.is_empty() {
            req = req.header("cookie", c);
        }
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        let res = req.send().await?;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{value} {extra:?}");
        assert!(cookie_named(res.headers(), "__Host-castellan_session").is_none());
    }
    assert!(h.hub.store().hosts().await?.is_empty());

    // Log-out with the wrong value does nothing: the session still opens pages.
    let session = h.login(&http).await?;
    let res = http
        .post(format!("{}/ui/logout", h.url))
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let page = http
        .get(format!("{}/ui/", h.url))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden(&page.text().await?, "csrf").ok_or("no csrf")?;
    // With the session's own value it ends the session, for good.
    let res = http
        .post(format!("{}/ui/logout", h.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_strict_cookie(res.headers());
    let res = http
        .get(format!("{}/ui/", h.url))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a closed session still opens pages"
    );
    Ok(())
}

#[tokio::test]
async fn every_page_is_escaped_scriptless_and_sent_with_a_strict_policy() -> TestResult {
    let h = UiHub::start().await?;
    populate(&h).await?;
    let http = h.http()?;
    let session = h.login(&http).await?;
    let pages = [
        "/ui/",
        "/ui/?sort=state&state=pending&q=pve",
        "/ui/pending",
        "/ui/hosts/pve-01",
        "/ui/hosts/pve-01/history",
        "/ui/hosts/pve-01/audit",
        "/ui/hosts/pve-01/audit?q=lxc%2F101",
        "/ui/services",
        "/ui/services?lane=request_supplement&q=web",
        "/ui/login",
    ];
    for path in pages {
        let res = http
            .get(format!("{}{path}", h.url))
            .header("cookie", &session)
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let csp = res.headers()["content-security-policy"]
            .to_str()?
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !csp.contains("script-src"),
            "no script is allowed at all: {csp}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["referrer-policy"], "same-origin");
        let body = res.text().await?;
        for raw in ["<script", "<img", "<svg", "onerror=\"", "onload=\""] {
            assert!(!body.contains(raw), "{path} carries raw {raw:?}");
        }
    }
    // What the host and the desired state said is there, as text.
    let host = http
        .get(format!("{}/ui/hosts/pve-01", h.url))
        .header("cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        host.contains("&#60;script&#62;document.title="),
        "the hostile error is not shown escaped:\n{host}"
    );
    assert!(
        host.contains("&#34;&#62;&#60;svg onload="),
        "the hostile description is not shown escaped"
    );
    let pending = http
        .get(format!("{}/ui/pending", h.url))
        .header("cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    // The hostile payload name never reaches a URL or a command: it gets a safe name.
    assert!(pending.contains("pve-01-pending.op"));
    assert!(!pending.contains("../../"));
    assert!(pending.contains("castellan op sign pve-01-qemu-102-destroy.op --key"));

    // The download hands out exactly the agent's payload, as an attachment.
    let res = http
        .get(format!(
            "{}/ui/hosts/pve-01/pending/pve-01-qemu-102-destroy.op",
            h.url
        ))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"pve-01-qemu-102-destroy.op\""
    );
    let text = res.text().await?;
    let op = SignedOp::parse(text.as_bytes())?;
    assert_eq!(
        (op.op.as_str(), op.target.to_string().as_str()),
        ("destroy", "qemu/102")
    );
    // A signed copy relayed through the hub counts on the pending page.
    let sig = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
    h.operator()?
        .submit_op("pve-01", &text, vec![sig.to_owned()])
        .await?;
    let pending = http
        .get(format!("{}/ui/pending", h.url))
        .header("cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    assert!(pending.contains("1 relayed so far"), "{pending}");
    for path in [
        "/ui/hosts/pve-01/pending/nope.op",
        "/ui/hosts/pve-01/pending/..%2F..%2Fhub.db",
    ] {
        let res = http
            .get(format!("{}{path}", h.url))
            .header("cookie", &session)
            .send()
            .await?;
        assert!(
            res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::BAD_REQUEST,
            "{path}: {}",
            res.status()
        );
    }
    // A malformed or unknown filter is named on a plain page, escaped.
    for (path, says) in [
        ("/ui/?bogus=%3Cb%3E", "unknown field `bogus`"),
        ("/ui/hosts/pve-01/history?from=x", "invalid digit"),
        (
            "/ui/hosts/pve-01/audit?since=yesterday",
            "\"yesterday\" is not a time",
        ),
    ] {
        let res = http
            .get(format!("{}{path}", h.url))
            .header("cookie", &session)
            .send()
            .await?;
        let status = res.status();
        let body = res.text().await?;
        assert!(
            body.contains(&says.replace('"', "&#34;")) || body.contains(says),
            "{path}: {body}"
        );
        assert!(!body.contains("<b>"), "{path}");
        if !path.contains("since") {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        }
    }
    // The stylesheet is the one resource a page loads.
    let css = http.get(format!("{}/ui/ui.css", h.url)).send().await?;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    Ok(())
}

#[tokio::test]
async fn revoking_the_operator_token_ends_its_sessions_at_once() -> TestResult {
    let h = UiHub::start().await?;
    let http = h.http()?;
    let session = h.login(&http).await?;
    let res = http
        .get(format!("{}/ui/", h.url))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    h.hub
        .store()
        .revoke_operator("alice", Timestamp::now())
        .await?;
    let res = http
        .get(format!("{}/ui/", h.url))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// In a real browser.

/// A headless Chromium under chromedriver, stopped when dropped.
struct Browser {
    driver: std::process::Child,
    client: fantoccini::Client,
}

impl Browser {
    async fn start() -> Result<Option<Browser>, Box<dyn std::error::Error>> {
        let Some((driver_bin, chromium)) = castellan_testkit::chromium() else {
            return Ok(None);
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = std::process::Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1360,900",
                         "--user-data-dir=/tmp/castellan-ui-test-profile-".to_owned() + &port.to_string()]
            }),
        );
        let started = Instant::now();
        let client = loop {
            match fantoccini::ClientBuilder::new(
                hyper_util::client::legacy::connect::HttpConnector::new(),
            )
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(format!("chromedriver did not start a session: {e}").into()),
            }
        };
        Ok(Some(Browser { driver, client }))
    }

    async fn js(&self, script: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    async fn text(&self, css: &str) -> Result<String, Box<dyn std::error::Error>> {
        Ok(self
            .client
            .find(fantoccini::Locator::Css(css))
            .await?
            .text()
            .await?)
    }

    async fn path(&self) -> Result<String, Box<dyn std::error::Error>> {
        let u = self.client.current_url().await?;
        Ok(match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        })
    }

    /// Waits (up to 10 s) until the browser is at `want` (path and query).
    async fn wait_path(&self, want: &str) -> TestResult {
        let started = Instant::now();
        loop {
            let at = self.path().await?;
            if at == want {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("the browser is at {at}, not {want}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png`.
    async fn shot(&self, name: &str) -> TestResult {
        let png = self.client.screenshot().await?;
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        Ok(())
    }

    /// Nothing hostile ran: the title is the page's own and no script element exists.
    async fn assert_inert(&self, page: &str) -> TestResult {
        let title = self.js("return document.title").await?;
        assert!(
            !title.as_str().unwrap_or("").contains("pwned"),
            "{page}: script ran ({title})"
        );
        let scripts = self
            .js("return document.querySelectorAll('script, img, svg, iframe').length")
            .await?;
        assert_eq!(
            scripts,
            serde_json::json!(0),
            "{page}: an injected element exists"
        );
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn an_operator_reads_the_fleet_in_a_real_browser() -> TestResult {
    let Some(b) = Browser::start().await? else {
        return Ok(());
    };
    let result = browse(&b).await;
    let _ = b.client.clone().close().await;
    result
}

async fn browse(b: &Browser) -> TestResult {
    let h = UiHub::start().await?;
    populate(&h).await?;

    // Logged out: any page leads to the login form, which comes back to that page.
    b.client.goto(&format!("{}/ui/hosts/pve-01", h.url)).await?;
    assert_eq!(b.path().await?, "/ui/login?next=%2Fui%2Fhosts%2Fpve-01");
    b.shot("login").await?;
    let form = b
        .client
        .form(fantoccini::Locator::Css("form[action='/ui/login']"))
        .await?;
    form.set_by_name("token", "cst_op_wrong")
        .await?
        .submit()
        .await?;
    // A form's submit does not wait for the page it leads to: wait for it.
    b.client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css("p.error"))
        .await?;
    let refused = b.client.source().await?;
    assert!(refused.contains("not a live operator token"), "{refused}");
    let form = b
        .client
        .form(fantoccini::Locator::Css("form[action='/ui/login']"))
        .await?;
    form.set_by_name("token", &h.token).await?.submit().await?;
    b.wait_path("/ui/hosts/pve-01").await?;
    // The session cookie is out of script's reach.
    assert_eq!(b.js("return document.cookie").await?, serde_json::json!(""));

    // Host page: the desired state, the plan, the hostile strings as text.
    assert_eq!(b.text("#desired-revision").await?, "1");
    assert!(
        b.text("#plan")
            .await?
            .contains("guest 101: being reconciled")
    );
    assert!(
        b.text("#errors")
            .await?
            .contains("<script>document.title='pwned'</script>")
    );
    // Each guest declared beside the node, field by field, and its back-off.
    let cores = b
        .text("#side-by-side tr[data-guest='lxc/101'][data-field='cores']")
        .await?;
    assert!(
        cores.contains("2") && cores.contains("1") && cores.contains("differs"),
        "{cores}"
    );
    let exists = b
        .text("#side-by-side tr[data-guest='lxc/101'][data-field='exists']")
        .await?;
    assert!(
        exists.contains("as declared") && exists.contains("being reconciled"),
        "{exists}"
    );
    let description = b.text("#side-by-side tr[data-field='description']").await?;
    assert!(
        description.contains(HOSTILE_ATTR) && description.contains(HOSTILE),
        "{description}"
    );
    assert!(
        b.text("#side-by-side tr[data-field='error']")
            .await?
            .contains("retried with back-off")
    );
    b.assert_inert("host").await?;
    b.shot("host").await?;

    // A change pushed through the API shows up on the host page.
    h.operator()?
        .put_desired("pve-01", &desired("pve-01", 4, HOSTILE_ATTR), 1)
        .await?;
    b.client.refresh().await?;
    assert_eq!(b.text("#desired-revision").await?, "2");
    assert!(
        b.text("#document").await.is_ok(),
        "the document is on the page"
    );
    let doc = b
        .js("return document.getElementById('document').textContent")
        .await?;
    assert!(doc.as_str().unwrap_or("").contains("cores = 4"), "{doc}");
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#applied-revision.behind"))
            .await
            .is_ok()
    );

    // History: the diff between the two revisions.
    b.client
        .goto(&format!("{}/ui/hosts/pve-01/history", h.url))
        .await?;
    let diff = b.text("#diff").await?;
    assert!(
        diff.contains("- cores = 2") && diff.contains("+ cores = 4"),
        "{diff}"
    );
    b.assert_inert("history").await?;
    b.shot("history").await?;

    // Fleet: both hosts; pve-02 never reported and stands out.
    b.client.goto(&format!("{}/ui/", h.url)).await?;
    // Its report lists an error, which outranks its two pending ops.
    let row = b.text("tr[data-host='pve-01']").await?;
    assert!(row.contains("error") && row.contains(" 2 "), "{row}");
    let quiet = b
        .js("return document.querySelector(\"tr[data-host='pve-02']\").className")
        .await?;
    assert_eq!(quiet, serde_json::json!("host quiet"));
    let totals = b.text("#totals").await?;
    assert!(
        totals.contains("2 hosts")
            && totals.contains("1 error")
            && totals.contains("1 never reported"),
        "{totals}"
    );
    b.shot("fleet").await?;
    // Filtered to the hosts gone quiet.
    b.client.goto(&format!("{}/ui/?state=quiet", h.url)).await?;
    let rows = b
        .js("return Array.from(document.querySelectorAll('tr.host')).map(r => r.dataset.host)")
        .await?;
    assert_eq!(rows, serde_json::json!(["pve-02"]));

    // Pending: what the op destroys, its expiry, signatures vs threshold, and the
    // commands to sign it; nothing on the page can approve it.
    b.client.goto(&format!("{}/ui/pending", h.url)).await?;
    let section = b
        .text("section[id='pve-01--pve-01-qemu-102-destroy.op']")
        .await?;
    for want in [
        "destroy qemu/102",
        "qemu/102's disk scsi0: local-lvm:vm-102-disk-0 (32 GiB)",
        "taken and verified before anything is removed",
        "0 relayed so far · needs 1 distinct signer key",
        "castellan op sign pve-01-qemu-102-destroy.op --key ~/.ssh/id_ed25519",
        "ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n castellan-op pve-01-qemu-102-destroy.op",
        "castellan op submit pve-01-qemu-102-destroy.op",
    ] {
        assert!(
            section.contains(want),
            "pending section lacks {want:?}:\n{section}"
        );
    }
    let forms = b
        .js("return Array.from(document.forms).map(f => f.getAttribute('action'))")
        .await?;
    assert_eq!(
        forms,
        serde_json::json!(["/ui/logout"]),
        "a form other than log-out"
    );
    let buttons = b
        .js("return document.querySelectorAll('button').length")
        .await?;
    assert_eq!(buttons, serde_json::json!(1), "a button other than log-out");
    b.assert_inert("pending").await?;
    b.shot("pending").await?;

    // Audit: the verified chain, searchable.
    b.client
        .goto(&format!("{}/ui/hosts/pve-01/audit?q=lxc%2F101", h.url))
        .await?;
    assert!(b.text("#chain").await?.contains("record 3"));
    assert!(
        b.text("#chain")
            .await?
            .contains("no gap, fork or rewind found")
    );
    let rows = b
        .js("return document.querySelectorAll('#audit tbody tr').length")
        .await?;
    assert_eq!(rows, serde_json::json!(1));
    b.assert_inert("audit").await?;
    b.shot("audit").await?;

    // Host services: lanes with counts, each candidate with what its owner response
    // still lacks; the owner's hostile label is text.
    b.client.goto(&format!("{}/ui/services", h.url)).await?;
    assert!(
        b.text("#lanes tr[data-lane='request_supplement']")
            .await?
            .contains('1')
    );
    assert!(
        b.text("#ledger-facts")
            .await?
            .contains("closed: nothing authorised")
    );
    let web = b.text("#candidates tr[data-surface='compose-web']").await?;
    assert!(
        web.contains("rollback_owner")
            && web.contains("post_check_plan")
            && !web.contains("owner_role_or_team"),
        "{web}"
    );
    assert!(
        web.contains("<script>document.title='pwned'</script>"),
        "{web}"
    );
    b.assert_inert("services").await?;
    b.shot("services").await?;
    b.client
        .goto(&format!(
            "{}/ui/services?lane=waiting_owner_response",
            h.url
        ))
        .await?;
    let rows = b.js("return Array.from(document.querySelectorAll('#candidates tbody tr')).map(r => r.dataset.surface)").await?;
    assert_eq!(rows, serde_json::json!(["timer-backup"]));

    // Log out: the pages are closed again.
    b.client
        .find(fantoccini::Locator::Css("form.logout button"))
        .await?
        .click()
        .await?;
    b.wait_path("/ui/login").await?;
    b.client.goto(&format!("{}/ui/pending", h.url)).await?;
    assert!(b.path().await?.starts_with("/ui/login?next="));
    Ok(())
}

/// A host that reports two ops under one name (the one it wants signed hidden first)
/// gets neither offered: no sign command on the page, no download.
#[tokio::test]
async fn ops_a_host_reports_under_one_name_are_never_offered_for_signing() -> TestResult {
    let h = UiHub::start().await?;
    let agent = h.agent("pve-01").await?;
    let name = "pve-01-qemu-102-destroy.op";
    let mut foreign = destroy_payload("pve-02");
    foreign.push('\n');
    agent
        .report(&AgentReport {
            agent_version: "0.9.0".into(),
            pending: vec![
                PendingReport {
                    name: name.into(),
                    payload: foreign,
                    takes: Vec::new(),
                },
                PendingReport {
                    name: name.into(),
                    payload: destroy_payload("pve-01"),
                    takes: Vec::new(),
                },
            ],
            ..AgentReport::default()
        })
        .await?;
    let http = h.http()?;
    let session = h.login(&http).await?;
    let page = http
        .get(format!("{}/ui/pending", h.url))
        .header("cookie", &session)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("several pending ops under this one name"),
        "{page}"
    );
    assert!(!page.contains("castellan op sign"), "{page}");
    let res = http
        .get(format!("{}/ui/hosts/pve-01/pending/{name}", h.url))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    Ok(())
}
