//! The hub's HTTP API (axum, JSON, under `/v1`).
//!
//! Every route but the OpenAPI document and enrolment (which carries its one-time token
//! in the body) needs a bearer token: a host credential for `/v1/agent/...`, an operator
//! token for `/v1/hosts/...`. A host reads only its own desired state and ops: the host
//! is taken from its credential, never from the request. Bodies are size-limited per
//! route, unknown fields are refused, and every failure is a JSON [`ApiError`] naming
//! what is wrong.
//!
//! The hub stores and relays; it never decides anything destructive. A desired state it
//! serves is validated with the agent's own parser before it is stored, and a relayed op
//! is checked for form (so an operator hears about a typo at once), but the host
//! verifies both again for itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use castellan_core::op::SignedOp;
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::client::HUB_ID_HEADER;
use crate::metrics::{AnswerLabels, KindLabels, OutcomeLabels, RequestLabels};
use crate::proto::{
    AgentReport, ApiError, AuditHead, AuditPage, AuditProblem, AuditProblemKind, AuditUpload,
    DesiredRevision, EnrolRequest, EnrolResponse, HostState, HostStatus, MAX_AUDIT_BATCH,
    MAX_OPS_PER_POLL, MAX_WAIT_MS, OpAck, OpDelivery, PollResponse, PutDesired, PutDesiredResponse,
    RelayedOpStatus, SubmitOp, SubmitOpResponse,
};
use crate::store::{HubStore, Revision, StoreError};
use crate::token::{self, Token, TokenKind};

/// Largest body of most requests.
pub const SMALL_BODY: usize = 64 * 1024;
/// Largest desired-state write: the agent's own limit on a document, plus JSON escaping.
pub const DESIRED_BODY: usize = castellan_core::desired::MAX_FILE_BYTES * 2;
/// Largest report.
pub const REPORT_BODY: usize = 4 * 1024 * 1024;
/// Largest acceptance report of the host-service ledger.
pub const LEDGER_BODY: usize = DESIRED_BODY;
/// Largest signature accepted for relay.
pub const MAX_SIG_BYTES: usize = 64 * 1024;
/// Most signatures on one relayed op.
pub const MAX_SIGS: usize = 16;

/// The hub's shared state: its store and who is waiting for what.
#[derive(Debug)]
pub struct Hub<S> {
    store: S,
    metrics: crate::metrics::HubMetrics,
    id: tokio::sync::OnceCell<String>,
    notify: Notifier,
    enrol_limit: RateLimit,
    /// The web UI's sessions.
    pub(crate) sessions: crate::ui::session::Sessions,
    /// Log-in attempts on the web UI.
    pub(crate) login_limit: RateLimit,
}

impl<S: HubStore> Hub<S> {
    /// A hub over `store`.
    pub fn new(store: S) -> Arc<Hub<S>> {
        Arc::new(Hub {
            store,
            metrics: crate::metrics::HubMetrics::default(),
            id: tokio::sync::OnceCell::new(),
            notify: Notifier::default(),
            enrol_limit: RateLimit::new(20.0, 5.0, 5.0, 1.0),
            // Per address it bites; the global bucket is only a ceiling, wide enough that
            // a few addresses cannot use it to lock every operator out.
            login_limit: RateLimit::new(1000.0, 200.0, 10.0, 0.5),
            sessions: crate::ui::session::Sessions::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The hub's metrics.
    pub fn metrics(&self) -> &crate::metrics::HubMetrics {
        &self.metrics
    }

    /// The store's identity (read once).
    pub async fn id(&self) -> Result<&str, StoreError> {
        self.id
            .get_or_try_init(|| self.store.hub_id())
            .await
            .map(String::as_str)
    }

    /// Wakes every long-poll (another hub's changes may have been missed).
    pub fn changed_all(&self) {
        self.notify.bump_all();
    }

    /// Wakes the long-polls of `host`: something for it changed (called after every
    /// write that concerns a host, and by a database change feed when several hubs
    /// share one store).
    pub fn changed(&self, host: &str) {
        self.notify.bump(host);
    }
}

/// Per-host change counters that long-polls wait on.
#[derive(Debug, Default)]
struct Notifier {
    hosts: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Notifier {
    fn subscribe(&self, host: &str) -> watch::Receiver<u64> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn bump_all(&self) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        for tx in hosts.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn bump(&self, host: &str) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = hosts.get(host) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Token buckets: one for everyone, one per client address (kept for a bounded number
/// of addresses; when full, the oldest idle ones go first).
#[derive(Debug)]
pub(crate) struct RateLimit {
    global: Mutex<Bucket>,
    per_ip: Mutex<HashMap<std::net::IpAddr, Bucket>>,
    global_rate: (f64, f64),
    ip_rate: (f64, f64),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn take(&mut self, (burst, per_sec): (f64, f64), now: std::time::Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

const MAX_TRACKED_IPS: usize = 10_000;

impl RateLimit {
    fn new(global_burst: f64, global_per_sec: f64, ip_burst: f64, ip_per_sec: f64) -> Self {
        let now = std::time::Instant::now();
        RateLimit {
            global: Mutex::new(Bucket {
                tokens: global_burst,
                at: now,
            }),
            per_ip: Mutex::new(HashMap::new()),
            global_rate: (global_burst, global_per_sec),
            ip_rate: (ip_burst, ip_per_sec),
        }
    }

    pub(crate) fn allow(&self, ip: std::net::IpAddr) -> bool {
        let now = std::time::Instant::now();
        let ip = client_key(ip);
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if per_ip.len() >= MAX_TRACKED_IPS && !per_ip.contains_key(&ip) {
                let full = self.ip_rate.0;
                per_ip.retain(|_, b| {
                    let mut b = *b;
                    b.take((full, self.ip_rate.1), now);
                    b.tokens + 1.0 < full
                });
                if per_ip.len() >= MAX_TRACKED_IPS {
                    // Every tracked client is still limited: a newcomer waits too.
                    return false;
                }
            }
            let bucket = per_ip.entry(ip).or_insert(Bucket {
                tokens: self.ip_rate.0,
                at: now,
            });
            if !bucket.take(self.ip_rate, now) {
                return false;
            }
        }
        self.global
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(self.global_rate, now)
    }
}

/// The key a client is limited by: its IPv4 address, or its IPv6 /64 (one site's
/// prefix, which a client can fill with addresses at will).
fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                std::net::Ipv6Addr::from(seg).into()
            }
        },
        v4 => v4,
    }
}

/// A failed request: its status and JSON body.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    body: ApiError,
}

impl Failure {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            body: ApiError {
                error: error.to_owned(),
                message: message.into(),
                problems: Vec::new(),
            },
        }
    }

    fn unauthorized(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"castellan\""),
            );
        }
        resp
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Conflict { .. } => {
                Failure::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::EnrolRefused => {
                Failure::new(StatusCode::FORBIDDEN, "enrol_refused", e.to_string())
            }
            StoreError::NotFound(_) => {
                Failure::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::Exists(_) => Failure::new(StatusCode::CONFLICT, "exists", e.to_string()),
            StoreError::Backend(detail) => {
                tracing::error!(event = "hub_store_failed", error = %detail);
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the hub's database failed; see the hub's log",
                )
            }
        }
    }
}

/// A JSON body, refused with an [`ApiError`] naming the problem (syntax, an unknown
/// field, a wrong type, too large, not JSON).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &St) -> Result<Self, Failure> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Failure {
    let status = r.status();
    let word = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    Failure::new(status, word, r.body_text())
}

/// Query parameters, refused with an [`ApiError`] when malformed.
#[derive(Debug)]
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for QueryArgs<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Failure> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryArgs(v))
            .map_err(|r| Failure::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text()))
    }
}

fn bearer(parts: &Parts) -> Result<&str, Failure> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Failure::unauthorized("missing Authorization: Bearer token"))?;
    let text = value
        .to_str()
        .map_err(|_| Failure::unauthorized("Authorization header is not text"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| Failure::unauthorized("Authorization must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Failure::unauthorized(
            "Authorization must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// The host a request comes from, by its credential.
#[derive(Debug)]
pub struct HostAuth(pub String);

impl<S: HubStore> FromRequestParts<Arc<Hub<S>>> for HostAuth {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub<S>>) -> Result<Self, Failure> {
        let hash = token::check(bearer(parts)?, TokenKind::Host)
            .map_err(|e| Failure::unauthorized(e.to_string()))?;
        match hub
            .store
            .host_for_credential(hash, Timestamp::now())
            .await?
        {
            Some(host) => Ok(HostAuth(host)),
            None => Err(Failure::unauthorized("unknown or revoked host credential")),
        }
    }
}

/// The operator a request comes from, by their token.
#[derive(Debug)]
pub struct OperatorAuth(pub String);

impl<S: HubStore> FromRequestParts<Arc<Hub<S>>> for OperatorAuth {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub<S>>) -> Result<Self, Failure> {
        let hash = token::check(bearer(parts)?, TokenKind::Operator)
            .map_err(|e| Failure::unauthorized(e.to_string()))?;
        match hub.store.operator_for_token(hash).await? {
            Some(name) => Ok(OperatorAuth(name)),
            None => Err(Failure::unauthorized("unknown or revoked operator token")),
        }
    }
}

/// The API's routes over `hub`.
pub fn router<S: HubStore>(hub: Arc<Hub<S>>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/enrol", post(enrol::<S>))
        .route("/v1/agent/poll", get(poll::<S>))
        .route("/v1/agent/ops/ack", post(ack_ops::<S>))
        .route(
            "/v1/agent/report",
            post(report::<S>).layer(DefaultBodyLimit::max(REPORT_BODY)),
        )
        .route("/v1/hosts", get(hosts::<S>))
        .route(
            "/v1/hosts/{host}/desired",
            get(get_desired::<S>)
                .put(put_desired::<S>)
                .layer(DefaultBodyLimit::max(DESIRED_BODY)),
        )
        .route("/v1/hosts/{host}/desired/history", get(history::<S>))
        .route(
            "/v1/hosts/{host}/desired/{revision}",
            get(get_revision::<S>),
        )
        .route(
            "/v1/hosts/{host}/ops",
            post(submit_op::<S>).get(list_ops::<S>),
        )
        .route("/v1/hosts/{host}/report", get(host_report::<S>))
        .route("/v1/hosts/{host}/audit", get(host_audit::<S>))
        .route("/v1/agent/audit/head", get(agent_audit_head::<S>))
        .route("/metrics", get(metrics::<S>))
        .route(
            "/v1/ledger",
            get(get_ledger::<S>)
                .put(put_ledger::<S>)
                .layer(DefaultBodyLimit::max(LEDGER_BODY)),
        )
        .merge(crate::ui::routes::<S>())
        .route(
            "/v1/agent/audit",
            post(upload_audit::<S>).layer(DefaultBodyLimit::max(REPORT_BODY)),
        )
        .fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&hub),
            count_requests::<S>,
        ))
        .with_state(hub)
}

/// Counts every answer by route template and status.
async fn count_requests<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    hub.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// `GET /metrics`: Prometheus text format, for an operator token (a scraper's
/// `authorization: credentials_file`), since it names every host.
async fn metrics<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
) -> Result<Response, Failure> {
    let hosts: Vec<HostStatus> = hub
        .store
        .hosts()
        .await?
        .into_iter()
        .map(host_status)
        .collect();
    let text = hub.metrics.render(&hosts);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

fn check_host(host: &str) -> Result<(), Failure> {
    if castellan_core::op::valid_host(host) {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{host:?} is not a valid host name"),
        ))
    }
}

async fn enrol<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Json<EnrolResponse>, Failure> {
    if !hub.enrol_limit.allow(peer.ip()) {
        tracing::warn!(event = "enrol_rate_limited", peer = %peer.ip());
        hub.metrics
            .enrolments
            .get_or_create(&OutcomeLabels { outcome: "limited" })
            .inc();
        return Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many enrolment attempts; wait and retry",
        ));
    }
    check_host(&req.host)?;
    let refused = || {
        hub.metrics
            .enrolments
            .get_or_create(&OutcomeLabels { outcome: "refused" })
            .inc();
    };
    let hash = token::check(&req.token, TokenKind::Enrol).map_err(|e| {
        refused();
        Failure::new(
            StatusCode::FORBIDDEN,
            "enrol_refused",
            format!("enrolment refused: {e}"),
        )
    })?;
    let credential = Token::generate(TokenKind::Host);
    match hub
        .store
        .redeem_enrol_token(&req.host, hash, credential.hash(), Timestamp::now())
        .await
    {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(event = "enrol_refused", host = %req.host, peer = %peer.ip());
            refused();
            return Err(e.into());
        }
    }
    tracing::info!(event = "host_enrolled", host = %req.host, peer = %peer.ip());
    hub.metrics
        .enrolments
        .get_or_create(&OutcomeLabels {
            outcome: "enrolled",
        })
        .inc();
    Ok(Json(EnrolResponse {
        host: req.host,
        credential: credential.reveal().to_owned(),
    }))
}

/// `GET /v1/agent/poll` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollArgs {
    /// The revision the agent has (0: none).
    #[serde(default)]
    revision: u64,
    /// The highest op id the agent has taken.
    #[serde(default)]
    ops: u64,
    /// How long to hold the request open when nothing is new.
    #[serde(default)]
    wait_ms: u64,
}

fn revision_out(r: Revision) -> DesiredRevision {
    DesiredRevision {
        revision: r.revision,
        document: r.document,
        author: r.author,
        created_at: r.created_at.to_string(),
    }
}

async fn poll<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    HostAuth(host): HostAuth,
    QueryArgs(args): QueryArgs<PollArgs>,
) -> Result<Response, Failure> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(args.wait_ms.min(MAX_WAIT_MS));
    // Subscribed before the first read, so a write between the read and the wait wakes us.
    let mut changes = hub.notify.subscribe(&host);
    let _open = crate::metrics::OpenPoll::new(&hub.metrics.long_polls);
    let idle = || {
        hub.metrics
            .poll_answers
            .get_or_create(&AnswerLabels { answer: "idle" })
            .inc();
    };
    let id = axum::http::HeaderValue::from_str(hub.id().await?)
        .map_err(|_| StoreError::Backend("the stored hub id is not a header value".into()))?;
    let stamp = |mut r: Response| {
        r.headers_mut().insert(HUB_ID_HEADER, id.clone());
        r
    };
    loop {
        changes.borrow_and_update();
        let desired = hub.store.revision_after(&host, args.revision).await?;
        let ops = hub
            .store
            .ops_after(&host, args.ops, MAX_OPS_PER_POLL)
            .await?
            .into_iter()
            .map(|op| {
                let text = String::from_utf8(op.op).map_err(|_| {
                    StoreError::Backend(format!("stored op {} is not UTF-8", op.id))
                })?;
                let sigs = op
                    .sigs
                    .into_iter()
                    .map(|s| {
                        String::from_utf8(s).map_err(|_| {
                            StoreError::Backend(format!(
                                "stored signature of op {} is not UTF-8",
                                op.id
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok::<_, StoreError>(OpDelivery {
                    id: op.id,
                    op: text,
                    sigs,
                    submitted_by: op.submitted_by,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if desired.is_some() || !ops.is_empty() {
            hub.metrics
                .poll_answers
                .get_or_create(&AnswerLabels { answer: "news" })
                .inc();
            return Ok(stamp(
                Json(PollResponse {
                    desired: desired.map(revision_out),
                    ops,
                })
                .into_response(),
            ));
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    idle();
                    return Ok(stamp(StatusCode::NO_CONTENT.into_response()));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                idle();
                return Ok(stamp(StatusCode::NO_CONTENT.into_response()));
            }
        }
    }
}

async fn ack_ops<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    HostAuth(host): HostAuth,
    JsonBody(ack): JsonBody<OpAck>,
) -> Result<StatusCode, Failure> {
    hub.store
        .mark_delivered(&host, ack.upto, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    HostAuth(host): HostAuth,
    JsonBody(report): JsonBody<AgentReport>,
) -> Result<StatusCode, Failure> {
    let text = serde_json::to_string(&report)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    hub.store.put_report(&host, &text, Timestamp::now()).await?;
    hub.metrics.reports.inc();
    Ok(StatusCode::NO_CONTENT)
}

async fn held_head<S: HubStore>(hub: &Hub<S>, host: &str) -> Result<AuditHead, Failure> {
    Ok(match hub.store.audit_head(host).await? {
        Some((seq, hash)) => AuditHead { seq, hash },
        None => crate::audit::genesis(),
    })
}

async fn agent_audit_head<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    HostAuth(host): HostAuth,
) -> Result<Json<AuditHead>, Failure> {
    Ok(Json(held_head(&hub, &host).await?))
}

/// Takes the next records of a host's chain, or refuses them and keeps the problem.
async fn upload_audit<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    HostAuth(host): HostAuth,
    JsonBody(upload): JsonBody<AuditUpload>,
) -> Result<Json<AuditHead>, Failure> {
    if upload.records.len() > MAX_AUDIT_BATCH as usize {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("at most {MAX_AUDIT_BATCH} audit records per upload"),
        ));
    }
    let held = held_head(&hub, &host).await?;
    match crate::audit::check_upload(&held, &upload.head, &upload.records) {
        Ok(records) => {
            let Some(last) = records.last().map(|r| AuditHead {
                seq: r.seq,
                hash: r.hash.clone(),
            }) else {
                return Ok(Json(held));
            };
            let n = records.len() as u64;
            hub.store
                .append_audit(&host, held.seq, records, Timestamp::now())
                .await?;
            hub.metrics.audit_records.inc_by(n);
            Ok(Json(last))
        }
        Err(refusal) => {
            let kind = refusal.kind.as_str();
            tracing::warn!(event = "audit_upload_refused", host = %host, kind = %kind,
                seq = refusal.seq, detail = %refusal.detail);
            hub.metrics
                .audit_refused
                .get_or_create(&KindLabels { kind })
                .inc();
            hub.store
                .flag_audit(&host, kind, refusal.seq, &refusal.detail, Timestamp::now())
                .await?;
            Err(Failure::new(
                StatusCode::CONFLICT,
                "audit_rejected",
                format!(
                    "audit upload refused ({kind} at record {}): {}; the hub holds this host's chain up to record {}",
                    refusal.seq, refusal.detail, held.seq
                ),
            ))
        }
    }
}

/// `GET /v1/hosts/{host}/audit` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditArgs {
    /// Records after this seq.
    #[serde(default)]
    after: u64,
    /// At most this many (capped at [`MAX_AUDIT_BATCH`]).
    #[serde(default)]
    limit: Option<u32>,
}

async fn host_audit<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path(host): Path<String>,
    QueryArgs(args): QueryArgs<AuditArgs>,
) -> Result<Json<AuditPage>, Failure> {
    check_host(&host)?;
    if hub.store.host(&host).await?.is_none() {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the hub knows no host {host:?}"),
        ));
    }
    let limit = args.limit.unwrap_or(MAX_AUDIT_BATCH).min(MAX_AUDIT_BATCH);
    let verified = held_head(&hub, &host).await?;
    let records = hub
        .store
        .audit_lines(&host, args.after, limit)
        .await?
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| StoreError::Backend(format!("a stored audit line of {host}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let problems = hub
        .store
        .audit_problems(&host)
        .await?
        .into_iter()
        .map(|p| AuditProblem {
            kind: AuditProblemKind::parse(&p.kind).unwrap_or(AuditProblemKind::Invalid),
            seq: p.seq,
            detail: p.detail,
            first_seen: p.first_seen.to_string(),
            last_seen: p.last_seen.to_string(),
            count: p.count,
        })
        .collect();
    Ok(Json(AuditPage {
        verified,
        records,
        problems,
    }))
}

/// What the fleet view needs of a stored report: counts, not contents. Reading this
/// skips the guests, payloads and texts without building them, which is most of the cost
/// of listing a large fleet.
#[derive(Deserialize)]
struct ReportSummary {
    agent_version: String,
    applied_revision: Option<u64>,
    converged: bool,
    plan: Vec<serde::de::IgnoredAny>,
    pending: Vec<serde::de::IgnoredAny>,
    errors: Vec<serde::de::IgnoredAny>,
}

/// Summarises a host for `GET /v1/hosts`.
pub fn host_status(h: crate::store::HostRecord) -> HostStatus {
    let report: Option<ReportSummary> = h
        .report
        .as_ref()
        .and_then(|(_, text)| serde_json::from_str(text).ok());
    let state = match &report {
        None => HostState::Unknown,
        Some(r) if !r.errors.is_empty() => HostState::Error,
        Some(r) if !r.pending.is_empty() => HostState::Pending,
        Some(r) if !r.converged || r.applied_revision != h.desired_revision => HostState::Drifting,
        Some(_) => HostState::Converged,
    };
    HostStatus {
        enrolled: h.enrolled_at.is_some() && h.revoked_at.is_none(),
        last_seen: h.last_seen.map(|t| t.to_string()),
        desired_revision: h.desired_revision,
        applied_revision: report.as_ref().and_then(|r| r.applied_revision),
        state,
        plan: report.as_ref().map_or(0, |r| r.plan.len()),
        pending: report.as_ref().map_or(0, |r| r.pending.len()),
        errors: report.as_ref().map_or(0, |r| r.errors.len()),
        agent_version: report.map(|r| r.agent_version),
        audit_seq: h.audit_seq,
        audit_problems: h.audit_problems,
        host: h.host,
    }
}

async fn hosts<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
) -> Result<Json<Vec<HostStatus>>, Failure> {
    let hosts = hub.store.hosts().await?;
    Ok(Json(hosts.into_iter().map(host_status).collect()))
}

async fn get_desired<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path(host): Path<String>,
) -> Result<Json<DesiredRevision>, Failure> {
    check_host(&host)?;
    match hub.store.latest_revision(&host).await? {
        Some(r) => Ok(Json(revision_out(r))),
        None => Err(StoreError::NotFound(format!("a desired state for {host}")).into()),
    }
}

async fn put_desired<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(operator): OperatorAuth,
    Path(host): Path<String>,
    JsonBody(req): JsonBody<PutDesired>,
) -> Result<(StatusCode, Json<PutDesiredResponse>), Failure> {
    check_host(&host)?;
    let parsed = castellan_core::parse_desired(&req.document).map_err(|e| {
        let mut f = Failure::invalid(format!("desired state for {host} refused"));
        f.body.problems = match e {
            castellan_core::DesiredError::Invalid(problems) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        };
        f
    })?;
    if parsed.node != host {
        return Err(Failure::invalid(format!(
            "the document is for node {:?}, not {host:?}",
            parsed.node
        )));
    }
    if let Some(latest) = hub.store.latest_revision(&host).await?
        && latest.document == req.document
    {
        return Ok((
            StatusCode::OK,
            Json(PutDesiredResponse {
                host,
                revision: latest.revision,
                changed: false,
            }),
        ));
    }
    let revision = hub
        .store
        .put_revision(
            &host,
            &req.document,
            &operator,
            req.based_on,
            Timestamp::now(),
        )
        .await?;
    tracing::info!(event = "desired_state_written", host = %host, revision, author = %operator);
    hub.metrics.revisions.inc();
    hub.changed(&host);
    Ok((
        StatusCode::CREATED,
        Json(PutDesiredResponse {
            host,
            revision,
            changed: true,
        }),
    ))
}

/// `GET .../desired/history` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryArgs {
    #[serde(default = "default_history")]
    limit: u32,
}

fn default_history() -> u32 {
    50
}

async fn history<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path(host): Path<String>,
    QueryArgs(args): QueryArgs<HistoryArgs>,
) -> Result<Json<Vec<crate::store::RevisionMeta>>, Failure> {
    check_host(&host)?;
    Ok(Json(hub.store.history(&host, args.limit.min(1000)).await?))
}

async fn get_revision<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path((host, revision)): Path<(String, u64)>,
) -> Result<Json<DesiredRevision>, Failure> {
    check_host(&host)?;
    match hub.store.revision(&host, revision).await? {
        Some(r) => Ok(Json(revision_out(r))),
        None => Err(StoreError::NotFound(format!("revision {revision} of {host}")).into()),
    }
}

/// Checks an op for relay: well-formed, for this host, with plausible signatures. The
/// host checks it all again (and the signatures for real); this is only so an operator
/// hears about a mistake now rather than in the host's audit log.
fn check_op(host: &str, req: &SubmitOp) -> Result<(), Failure> {
    let op = SignedOp::parse(req.op.as_bytes())
        .map_err(|e| Failure::invalid(format!("not a signed-op file: {e}")))?;
    if op.host != host {
        return Err(Failure::invalid(format!(
            "the op is for host {:?}, not {host:?}",
            op.host
        )));
    }
    if req.sigs.is_empty() {
        return Err(Failure::invalid(
            "no signature: sign the op first (castellan op sign)",
        ));
    }
    if req.sigs.len() > MAX_SIGS {
        return Err(Failure::invalid(format!(
            "{} signatures, at most {MAX_SIGS} are relayed",
            req.sigs.len()
        )));
    }
    for (i, sig) in req.sigs.iter().enumerate() {
        if sig.len() > MAX_SIG_BYTES
            || !sig
                .trim_start()
                .starts_with("-----BEGIN SSH SIGNATURE-----")
        {
            return Err(Failure::invalid(format!(
                "signature {} is not an armored SSH signature of at most {MAX_SIG_BYTES} bytes",
                i + 1
            )));
        }
    }
    Ok(())
}

async fn submit_op<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(operator): OperatorAuth,
    Path(host): Path<String>,
    JsonBody(req): JsonBody<SubmitOp>,
) -> Result<(StatusCode, Json<SubmitOpResponse>), Failure> {
    check_host(&host)?;
    check_op(&host, &req)?;
    let sigs: Vec<Vec<u8>> = req.sigs.iter().map(|s| s.as_bytes().to_vec()).collect();
    let id = hub
        .store
        .submit_op(&host, req.op.as_bytes(), &sigs, &operator, Timestamp::now())
        .await?;
    tracing::info!(event = "op_relayed", host = %host, id, by = %operator);
    hub.metrics.ops_relayed.inc();
    hub.changed(&host);
    Ok((StatusCode::CREATED, Json(SubmitOpResponse { id, host })))
}

/// `GET /v1/hosts/{host}/ops` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListOpsArgs {
    /// Ops with an id above this (pages of 1,000, oldest first).
    #[serde(default)]
    after: u64,
}

async fn list_ops<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path(host): Path<String>,
    QueryArgs(args): QueryArgs<ListOpsArgs>,
) -> Result<Json<Vec<RelayedOpStatus>>, Failure> {
    check_host(&host)?;
    let ops = hub.store.ops_after(&host, args.after, 1000).await?;
    Ok(Json(
        ops.into_iter()
            .map(|op| RelayedOpStatus {
                id: op.id,
                op: String::from_utf8_lossy(&op.op).into_owned(),
                signatures: op.sigs.len(),
                submitted_by: op.submitted_by,
                submitted_at: op.submitted_at.to_string(),
                delivered_at: op.delivered_at.map(|t| t.to_string()),
            })
            .collect(),
    ))
}

async fn host_report<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
    Path(host): Path<String>,
) -> Result<Json<AgentReport>, Failure> {
    check_host(&host)?;
    let report = hub
        .store
        .host(&host)
        .await?
        .and_then(|h| h.report)
        .and_then(|(_, text)| serde_json::from_str(&text).ok());
    report
        .map(Json)
        .ok_or_else(|| StoreError::NotFound(format!("a report from {host}")).into())
}

/// Checks that `body` is an acceptance report of the host-service ledger; returns how
/// many candidates it holds. The hub only shows it; this is so an operator hears about a
/// wrong file at once.
pub fn check_ledger_report(body: &[u8]) -> Result<u64, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = doc
        .as_object()
        .ok_or("an acceptance report is a JSON object")?;
    let schema = obj.get("schema_version").and_then(|v| v.as_str());
    if schema != Some(castellan_ledger::schema::ACCEPTANCE_SCHEMA) {
        return Err(format!(
            "schema_version must be {:?} (castellan ledger acceptance writes it), found {}",
            castellan_ledger::schema::ACCEPTANCE_SCHEMA,
            schema.map_or_else(|| "none".to_owned(), |s| format!("{s:?}"))
        ));
    }
    let candidates = obj
        .get("acceptance_candidates")
        .and_then(|v| v.as_array())
        .ok_or("acceptance_candidates must be an array")?;
    if let Some(i) = candidates.iter().position(|c| !c.is_object()) {
        return Err(format!("acceptance_candidates[{i}] is not an object"));
    }
    if !obj.get("summary").is_some_and(serde_json::Value::is_object) {
        return Err("summary must be an object".into());
    }
    Ok(candidates.len() as u64)
}

async fn put_ledger<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(operator): OperatorAuth,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<crate::proto::PutLedgerResponse>), Failure> {
    let body = body.map_err(|r| {
        let status = r.status();
        let word = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        Failure::new(status, word, r.body_text())
    })?;
    let candidates = check_ledger_report(&body)
        .map_err(|e| Failure::invalid(format!("acceptance report refused: {e}")))?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| Failure::invalid("acceptance report refused: not UTF-8"))?;
    let number = hub
        .store
        .put_ledger_report(&text, &operator, Timestamp::now())
        .await?;
    tracing::info!(event = "ledger_report_pushed", number, candidates, by = %operator);
    Ok((
        StatusCode::CREATED,
        Json(crate::proto::PutLedgerResponse { number, candidates }),
    ))
}

async fn get_ledger<S: HubStore>(
    State(hub): State<Arc<Hub<S>>>,
    OperatorAuth(_): OperatorAuth,
) -> Result<Response, Failure> {
    match hub.store.latest_ledger_report().await? {
        Some(r) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r.document,
        )
            .into_response()),
        None => Err(
            StoreError::NotFound("an acceptance report (castellan ledger publish)".into()).into(),
        ),
    }
}
