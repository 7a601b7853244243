//! The hub's web UI: server-rendered pages for operators, read-only by design.
//!
//! Templates are compiled into the binary (askama) and escape every value; there is no
//! script on any page and no front-end build. Every answer carries a strict
//! Content-Security-Policy (`default-src 'none'`, the one stylesheet from the hub
//! itself), `nosniff`, `same-origin`, `no-store` and a frame ban.
//!
//! An operator logs in with their operator token ([`session`]); every page re-checks it,
//! so a revoked token locks its sessions out at once. The only forms are log-in and
//! log-out, both CSRF-protected (a double-submit cookie for log-in, the session's secret
//! for log-out) and refused when the browser says they come from another site. There is,
//! deliberately, no form that approves, signs or destroys anything: a destructive op is
//! signed on the operator's own machine and the host verifies it.

pub mod session;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde::Deserialize;

use crate::proto::{AgentReport, AuditProblemKind};
use crate::server::{Hub, host_status};
use crate::store::{HubStore, StoreError};
use crate::token::{self, TokenKind};
use session::{LOGIN_COOKIE, SESSION_COOKIE, SessionView, random_secret, same_secret};

/// The policy every UI answer carries: nothing but the hub's own stylesheet loads, no
/// script runs, no form posts elsewhere, no page frames it.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../assets/ui.css");

/// The UI's routes (merged into the API router).
pub fn routes<S: HubStore>() -> Router<Arc<Hub<S>>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(fleet::<S>))
        .route("/ui/ui.css", get(stylesheet))
        .route("/ui/login", get(login_page).post(login::<S>))
        .route("/ui/logout", post(logout::<S>))
        .route("/ui/pending", get(pending::<S>))
        .route("/ui/services", get(services::<S>))
        .route("/ui/hosts/{host}", get(host::<S>))
        .route("/ui/hosts/{host}/history", get(history::<S>))
        .route("/ui/hosts/{host}/audit", get(audit::<S>))
        .route("/ui/hosts/{host}/pending/{file}", get(download::<S>))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

/// A page's answer: the rendered template, or a plain error page.
fn page(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(event = "ui_render_failed", error = %e);
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the hub's log",
            )
        }
    }
}

#[derive(Template)]
#[template(
    source = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{ status }} · castellan</title><link rel=\"stylesheet\" href=\"/ui/ui.css\"></head><body><main><h1>{{ status }}</h1><p class=\"error\">{{ message }}</p><p><a href=\"/ui/\">Fleet</a></p></main></body></html>",
    ext = "html"
)]
struct ProblemPage<'a> {
    status: String,
    message: &'a str,
}

/// A plain error page.
fn problem(status: StatusCode, message: &str) -> Response {
    let body = ProblemPage {
        status: status.to_string(),
        message,
    }
    .render()
    .unwrap_or_else(|_| "error".to_owned());
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(what) => problem(StatusCode::NOT_FOUND, &format!("{what} not found")),
        StoreError::Backend(detail) => {
            tracing::error!(event = "hub_store_failed", error = %detail);
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the hub's database failed; see the hub's log",
            )
        }
        other => problem(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string()),
    }
}

/// The value of cookie `name` in the request, if it holds exactly one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    // Two cookies of one name: someone planted one. Trust neither.
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a form post comes from the hub's own pages, as far as the browser says:
/// `Sec-Fetch-Site` (when sent) is `same-origin`, and `Origin` (when sent) is the hub.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
        && site.as_bytes() != b"none"
    {
        return false;
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.as_bytes() == format!("https://{}", host.to_str().unwrap_or("")).as_bytes()
        }
        (Some(_), None) => false,
    }
}

/// Where a login returns to: a UI path of this hub, never anywhere else.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/ui/")
        && !next.starts_with("//")
        && next.len() <= 512
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { next } else { "/ui/" }
}

/// A page's query string, refused with a plain error page naming what is wrong (an
/// unknown field, a number that is not one).
#[derive(Debug)]
pub struct UiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> FromRequestParts<St> for UiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| UiQuery(v))
            .map_err(|r| {
                problem(
                    StatusCode::BAD_REQUEST,
                    &format!("the address does not read: {}", r.body_text()),
                )
            })
    }
}

/// A logged-in operator. Without a live session (or when the token it was opened with
/// has been revoked) a page answers with a redirect to the login page.
#[derive(Debug)]
pub struct Operator(pub SessionView);

impl<S: HubStore> FromRequestParts<Arc<Hub<S>>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub<S>>) -> Result<Self, Response> {
        let to_login = || {
            let here = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
            let next: String =
                url::form_urlencoded::byte_serialize(safe_next(here).as_bytes()).collect();
            Redirect::to(&format!("/ui/login?next={next}")).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let Some(view) = hub.sessions.get(id, Instant::now()) else {
            return Err(to_login());
        };
        match hub.store().operator_for_token(view.token).await {
            Ok(Some(name)) if name == view.operator => Ok(Operator(view)),
            Ok(_) => {
                hub.sessions.close(id);
                Err(to_login())
            }
            Err(e) => Err(store_problem(e)),
        }
    }
}

/// What every page's frame shows.
pub struct Chrome {
    /// The operator's name.
    pub operator: String,
    /// The log-out form's CSRF value.
    pub csrf: String,
    /// The section the page is in (for the navigation).
    pub section: &'static str,
    /// The hub's version.
    pub version: &'static str,
}

impl std::fmt::Debug for Chrome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chrome")
            .field("operator", &self.operator)
            .field("csrf", &"<redacted>")
            .field("section", &self.section)
            .finish()
    }
}

fn chrome(op: &Operator, section: &'static str) -> Chrome {
    Chrome {
        operator: op.0.operator.clone(),
        csrf: op.0.csrf.clone(),
        section,
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: String,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_form(next: &str, error: &str, status: StatusCode) -> Response {
    let csrf = random_secret();
    let mut res = page(&LoginPage {
        csrf: csrf.clone(),
        next: safe_next(next).to_owned(),
        error: error.to_owned(),
    });
    *res.status_mut() = status;
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, 600));
    res
}

async fn login_page(UiQuery(q): UiQuery<LoginQuery>) -> Response {
    login_form(&q.next, "", StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn login<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers)
        || !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &form.csrf))
    {
        tracing::warn!(event = "ui_login_refused", reason = "csrf", peer = %peer.ip());
        return login_form(
            &form.next,
            "The login form expired or did not come from this hub; try again.",
            StatusCode::FORBIDDEN,
        );
    }
    if !hub.login_limit.allow(peer.ip()) {
        tracing::warn!(event = "ui_login_refused", reason = "rate_limited", peer = %peer.ip());
        return login_form(
            &form.next,
            "Too many attempts; wait a little and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let refused = |why: &str| {
        tracing::warn!(event = "ui_login_refused", reason = why, peer = %peer.ip());
        login_form(
            &form.next,
            "That is not a live operator token.",
            StatusCode::UNAUTHORIZED,
        )
    };
    let Ok(hash) = token::check(form.token.trim(), TokenKind::Operator) else {
        return refused("not_an_operator_token");
    };
    let name = match hub.store().operator_for_token(hash).await {
        Ok(Some(name)) => name,
        Ok(None) => return refused("unknown_or_revoked"),
        Err(e) => return store_problem(e),
    };
    let Some(id) = hub.sessions.open(&name, hash, Instant::now()) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many sessions are open; try again later",
        );
    };
    tracing::info!(event = "ui_login", operator = %name, peer = %peer.ip());
    let mut res = Redirect::to(safe_next(&form.next)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, session::ABSOLUTE.as_secs()),
    );
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
    res
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !same_origin(&headers) || !same_secret(&op.0.csrf, &form.csrf) {
        return problem(
            StatusCode::FORBIDDEN,
            "the form did not come from this session; nothing was done",
        );
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        hub.sessions.close(id);
    }
    tracing::info!(event = "ui_logout", operator = %op.0.operator);
    let mut res = Redirect::to("/ui/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    res
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    pager: Pager,
    totals: view::FleetTotals,
    rows: Vec<view::FleetRow>,
    query: view::FleetQuery,
    states: Vec<Choice>,
    sorts: Vec<Choice>,
}

/// Where a page of the fleet stands among the hosts the filter selects.
struct Pager {
    matching: usize,
    first: usize,
    last: usize,
    previous: Option<String>,
    next: Option<String>,
}

/// An option of a select.
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn choices(all: &[(&'static str, &'static str)], current: &str) -> Vec<Choice> {
    all.iter()
        .map(|&(value, label)| Choice {
            value,
            label,
            selected: value == current,
        })
        .collect()
}

async fn fleet<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    UiQuery(query): UiQuery<view::FleetQuery>,
) -> Response {
    let hosts = match hub.store().hosts().await {
        Ok(h) => h,
        Err(e) => return store_problem(e),
    };
    let statuses: Vec<_> = hosts.into_iter().map(host_status).collect();
    let (totals, rows) = view::fleet(&statuses, &query, Timestamp::now());
    let matching = rows.len();
    let (rows, at, pages) = view::fleet_page(rows, query.page);
    let link = |p: usize| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &query.q)
            .append_pair("state", &query.state)
            .append_pair("sort", &query.sort)
            .append_pair("page", &p.to_string())
            .finish();
        format!("/ui/?{q}")
    };
    let pager = Pager {
        matching,
        first: if matching == 0 {
            0
        } else {
            at * view::FLEET_PAGE + 1
        },
        last: at * view::FLEET_PAGE + rows.len(),
        previous: (at > 0).then(|| link(at - 1)),
        next: (at + 1 < pages).then(|| link(at + 1)),
    };
    page(&FleetPage {
        chrome: chrome(&op, "fleet"),
        pager,
        totals,
        rows,
        states: choices(
            &[
                ("", "any"),
                ("converged", "converged"),
                ("drifting", "drifting"),
                ("pending", "pending signature"),
                ("error", "error"),
                ("unknown", "never reported"),
                ("quiet", "gone quiet"),
            ],
            &query.state,
        ),
        sorts: choices(
            &[
                ("", "host"),
                ("state", "state (worst first)"),
                ("last_seen", "last seen (longest silent first)"),
                ("pending", "pending"),
                ("errors", "errors"),
            ],
            &query.sort,
        ),
        query,
    })
}

fn bad_host(host: &str) -> Option<Response> {
    (!castellan_core::op::valid_host(host))
        .then(|| problem(StatusCode::BAD_REQUEST, "that is not a host name"))
}

fn parse_report(text: &str) -> Option<AgentReport> {
    serde_json::from_str(text).ok()
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    chrome: Chrome,
    host: String,
    row: view::FleetRow,
    report: view::ReportView,
    guests: Vec<(String, Vec<String>)>,
    document: String,
    desired_author: String,
    actions: Vec<view::AuditRow>,
    relayed: Vec<view::RelayedView>,
}

/// Audit events that are actions and their outcomes (the host page's "recent actions").
const ACTION_EVENTS: &[&str] = &[
    "action_allowed",
    "action_succeeded",
    "action_failed",
    "signature_pending",
    "signature_accepted",
    "signature_rejected",
    "guest_destroyed",
    "volume_removed",
    "backup_taken",
    "undo_started",
];

async fn host<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    Path(host): Path<String>,
) -> Response {
    if let Some(r) = bad_host(&host) {
        return r;
    }
    let now = Timestamp::now();
    let store = hub.store();
    let record = match store.host(&host).await {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "the hub knows no such host"),
        Err(e) => return store_problem(e),
    };
    let report = record
        .report
        .as_ref()
        .and_then(|(at, text)| parse_report(text).map(|r| (*at, r)));
    let row = view::fleet_row(&host_status(record.clone()), now);
    let latest = match store.latest_revision(&host).await {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let (document, desired_author) = latest.map(|r| (r.document, r.author)).unwrap_or_default();
    let guests = view::declared_guests(&document).unwrap_or_default();
    let head = record.audit_seq.unwrap_or(0);
    let lines = match store
        .audit_lines(&host, head.saturating_sub(200), 200)
        .await
    {
        Ok(l) => l,
        Err(e) => return store_problem(e),
    };
    let records: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut actions: Vec<view::AuditRow> =
        view::audit_rows(&records, &view::AuditQuery::default(), head)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| ACTION_EVENTS.contains(&r.event.as_str()))
            .collect();
    actions.reverse();
    actions.truncate(25);
    let relayed = match store.ops_newest(&host, None, 20).await {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    page(&HostPage {
        chrome: chrome(&op, "fleet"),
        report: view::report_view(report.as_ref().map(|(at, r)| (*at, r)), now),
        row,
        guests,
        document,
        desired_author,
        actions,
        relayed: relayed.iter().map(|r| view::relayed_view(r, now)).collect(),
        host,
    })
}

/// The copies of each of `pending` the hub relayed to `host` (with their signatures).
async fn relayed_copies<S: HubStore>(
    store: &S,
    host: &str,
    pending: &[crate::proto::PendingReport],
) -> Result<Vec<crate::store::RelayedOp>, StoreError> {
    let mut out = Vec::new();
    for p in pending {
        out.extend(
            store
                .ops_newest(host, Some(p.payload.as_bytes()), 100)
                .await?,
        );
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "pending.html")]
struct PendingPage {
    chrome: Chrome,
    ops: Vec<view::PendingView>,
}

async fn pending<S: HubStore>(State(hub): State<Arc<Hub<S>>>, op: Operator) -> Response {
    let now = Timestamp::now();
    let hosts = match hub.store().hosts().await {
        Ok(h) => h,
        Err(e) => return store_problem(e),
    };
    let mut ops = Vec::new();
    for h in hosts {
        let Some(report) = h.report.as_ref().and_then(|(_, t)| parse_report(t)) else {
            continue;
        };
        if report.pending.is_empty() {
            continue;
        }
        let relayed = match relayed_copies(hub.store(), &h.host, &report.pending).await {
            Ok(r) => r,
            Err(e) => return store_problem(e),
        };
        ops.extend(view::host_pending(&h.host, &report.pending, &relayed, now));
    }
    page(&PendingPage {
        chrome: chrome(&op, "pending"),
        ops,
    })
}

/// `GET /ui/hosts/{host}/pending/{file}`: the payload of a pending op, as a file to sign.
async fn download<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    _op: Operator,
    Path((host, file)): Path<(String, String)>,
) -> Response {
    if let Some(r) = bad_host(&host) {
        return r;
    }
    let report = match hub.store().host(&host).await {
        Ok(h) => h.and_then(|h| h.report).and_then(|(_, t)| parse_report(&t)),
        Err(e) => return store_problem(e),
    };
    let Some(report) = report else {
        return problem(StatusCode::NOT_FOUND, "no such pending operation");
    };
    // The same views the pending page shows: only an op offered there can be downloaded,
    // under the name it is offered under.
    let Some(found) = view::host_pending(&host, &report.pending, &[], Timestamp::now())
        .into_iter()
        .find(|v| v.problem.is_none() && v.file == file)
    else {
        return problem(
            StatusCode::NOT_FOUND,
            "no such pending operation (it may have been signed, refused or withdrawn)",
        );
    };
    let Some(name) = view::safe_file_name(&found.file) else {
        return problem(StatusCode::BAD_REQUEST, "not a file name");
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        found.payload,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    host: String,
    rows: Vec<view::RevisionRow>,
    from: u64,
    to: u64,
    diff: Vec<view::DiffLine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    from: Option<u64>,
    to: Option<u64>,
}

async fn history<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    Path(host): Path<String>,
    UiQuery(q): UiQuery<HistoryQuery>,
) -> Response {
    if let Some(r) = bad_host(&host) {
        return r;
    }
    let now = Timestamp::now();
    let metas = match hub.store().history(&host, 1000).await {
        Ok(m) => m,
        Err(e) => return store_problem(e),
    };
    // Newest first; by default the latest change (the one before the newest, to it).
    let mut metas = metas;
    metas.sort_by_key(|m| std::cmp::Reverse(m.revision));
    let newest = metas.first().map_or(0, |m| m.revision);
    let to = q.to.unwrap_or(newest);
    let from = q.from.unwrap_or_else(|| {
        metas
            .iter()
            .find(|m| m.revision < to)
            .map_or(0, |m| m.revision)
    });
    let mut diff = Vec::new();
    if from != 0 && to != 0 {
        let (a, b) = match (
            hub.store().revision(&host, from).await,
            hub.store().revision(&host, to).await,
        ) {
            (Ok(Some(a)), Ok(Some(b))) => (a, b),
            (Err(e), _) | (_, Err(e)) => return store_problem(e),
            _ => return problem(StatusCode::NOT_FOUND, "no such revision of this host"),
        };
        // Bounded (a deadline and a line cap), but still CPU work: off the async threads.
        diff = tokio::task::spawn_blocking(move || view::diff(&a.document, &b.document))
            .await
            .unwrap_or_default();
    }
    page(&HistoryPage {
        chrome: chrome(&op, "fleet"),
        rows: metas.iter().map(|m| view::revision_row(m, now)).collect(),
        host,
        from,
        to,
        diff,
    })
}

struct ProblemRow {
    kind: AuditProblemKind,
    seq: u64,
    detail: String,
    count: u64,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    host: String,
    verified_seq: u64,
    verified_hash: String,
    problems: Vec<ProblemRow>,
    query: view::AuditQuery,
    error: String,
    rows: Vec<view::AuditRow>,
    after: u64,
    older: Option<u64>,
    newer: Option<u64>,
}

/// Records per audit page.
const AUDIT_PAGE: u64 = 500;

async fn audit<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    Path(host): Path<String>,
    UiQuery(query): UiQuery<view::AuditQuery>,
) -> Response {
    if let Some(r) = bad_host(&host) {
        return r;
    }
    let store = hub.store();
    let record = match store.host(&host).await {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "the hub knows no such host"),
        Err(e) => return store_problem(e),
    };
    let (verified_seq, verified_hash) = match store.audit_head(&host).await {
        Ok(h) => h.unwrap_or((0, String::new())),
        Err(e) => return store_problem(e),
    };
    let head = record.audit_seq.unwrap_or(verified_seq);
    let after = query
        .after
        .unwrap_or_else(|| head.saturating_sub(AUDIT_PAGE))
        .min(head);
    let lines = match store.audit_lines(&host, after, AUDIT_PAGE as u32).await {
        Ok(l) => l,
        Err(e) => return store_problem(e),
    };
    let records: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (mut rows, error) = match view::audit_rows(&records, &query, verified_seq) {
        Ok(r) => (r, String::new()),
        Err(e) => (Vec::new(), e),
    };
    rows.reverse();
    let problems = match store.audit_problems(&host).await {
        Ok(p) => p
            .into_iter()
            .map(|p| ProblemRow {
                kind: AuditProblemKind::parse(&p.kind).unwrap_or(AuditProblemKind::Invalid),
                seq: p.seq,
                detail: p.detail,
                count: p.count,
                last_seen: p.last_seen.to_string(),
            })
            .collect(),
        Err(e) => return store_problem(e),
    };
    page(&AuditPage {
        chrome: chrome(&op, "fleet"),
        host,
        verified_seq,
        verified_hash,
        problems,
        query,
        error,
        rows,
        after,
        older: (after > 0).then(|| after.saturating_sub(AUDIT_PAGE)),
        newer: (after + AUDIT_PAGE < head).then_some(after + AUDIT_PAGE),
    })
}

/// The pushed report's facts for the Host services page.
struct LedgerFacts {
    number: u64,
    author: String,
    at: String,
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    chrome: Chrome,
    report: Option<LedgerFacts>,
    view: view::ServicesView,
    query: view::ServicesQuery,
}

async fn services<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    op: Operator,
    UiQuery(query): UiQuery<view::ServicesQuery>,
) -> Response {
    let latest = match hub.store().latest_ledger_report().await {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let (report, view) = match latest {
        Some(r) => match serde_json::from_str::<serde_json::Value>(&r.document) {
            Ok(doc) => (
                Some(LedgerFacts {
                    number: r.number,
                    author: r.author,
                    at: view::relative(r.created_at, Timestamp::now()),
                }),
                view::services(&doc, &query),
            ),
            Err(e) => {
                tracing::error!(event = "ledger_report_unreadable", number = r.number, error = %e);
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the stored acceptance report is not JSON; see the hub's log",
                );
            }
        },
        None => (None, view::ServicesView::default()),
    };
    page(&ServicesPage {
        chrome: chrome(&op, "services"),
        report,
        view,
        query,
    })
}
