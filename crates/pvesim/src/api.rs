//! The HTTP layer: auth, parameter decoding, schema validation, faults, routing, and PVE's
//! response shapes.
//!
//! Response shapes (pve-http-server `PVE::APIServer::AnyEvent`):
//! - success: `200`, `{"data": ...}` plus attributes such as `total`;
//! - parameter errors: `400 Parameter verification failed.`, `{"data":null,"errors":{...}}`;
//! - other errors: `500 <message>` — the message is the HTTP reason phrase; newer versions also
//!   put it in the body as `{"data":null,"message":"...\n"}` (the default here; a
//!   `status_line_only` fault gives the older `{"data":null}`);
//! - unknown method/path: `501 Method 'GET /path' not implemented`;
//! - bad or missing credentials: `401` with the reason in the status line.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use pve_schema::{Schema, validate_resolved};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Fault, FaultRule, GuestKind};
use crate::state::{ApiError, Ctx, Reply, RequestRecord, State};

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub node: String,
    /// Token id (`user@realm!name`) → secret.
    pub tokens: HashMap<String, String>,
    pub schema: Arc<Schema>,
    pub state: Mutex<State>,
}

impl Shared {
    /// Locks the state and brings it up to date (finished tasks applied).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tick(Instant::now());
        st
    }
}

const API_PREFIX: &str = "/api2/json";

/// The single entry point for every request.
pub(crate) async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let auth = authenticate(&shared, &headers);
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return match auth {
            Ok(_) => control(&shared, &method, rest, &body),
            Err(e) => error_response(e),
        };
    }
    let mut params = BTreeMap::new();
    let result = match auth {
        Err(e) => Err(e),
        Ok(user) => match decode_params(&uri, &headers, &body) {
            Err(e) => Err(e),
            Ok(p) => {
                params = p;
                serve(&shared, &method, &path, &params, user).await
            }
        },
    };
    let resp = match result {
        Ok(reply) => ok_response(reply),
        Err(e) => error_response(e),
    };
    let status = resp.status().as_u16();
    tracing::info!(method = %method, path = %path, status, "request");
    shared.lock().record(RequestRecord {
        method: method.to_string(),
        path,
        params,
        status,
    });
    resp
}

/// Checks `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; returns the token id.
/// The secret is never logged or echoed.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::Unauthorized("No ticket".into()));
    };
    let Some(token) = value.strip_prefix("PVEAPIToken=") else {
        return Err(ApiError::Unauthorized("No ticket".into()));
    };
    // PVE::AccessControl::verify_token texts.
    let Some((tokenid, secret)) = token.split_once('=') else {
        return Err(ApiError::Unauthorized("no tokenid specified".into()));
    };
    match shared.tokens.get(tokenid) {
        None => {
            let (user, name) = tokenid.split_once('!').unwrap_or((tokenid, ""));
            Err(ApiError::Unauthorized(format!(
                "no such token '{name}' for user '{user}'"
            )))
        }
        Some(expected) if constant_time_eq(expected.as_bytes(), secret.as_bytes()) => {
            Ok(tokenid.to_string())
        }
        Some(_) => Err(ApiError::Unauthorized("invalid token value!".into())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Query parameters, plus the body for POST/PUT: form-urlencoded or JSON (real nodes take
/// both). JSON numbers become their text, booleans `1`/`0`.
fn decode_params(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut params = BTreeMap::new();
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    if body.is_empty() {
        return Ok(params);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::Param(BTreeMap::from([(
                "_root".to_string(),
                format!("unable to parse JSON body - {e}"),
            )]))
        })?;
        let Value::Object(map) = v else {
            return Err(ApiError::Param(BTreeMap::from([(
                "_root".to_string(),
                "JSON body must be an object".to_string(),
            )])));
        };
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            params.insert(k, s);
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(params)
}

async fn serve(
    shared: &Shared,
    method: &Method,
    path: &str,
    params: &BTreeMap<String, String>,
    user: String,
) -> Result<Reply, ApiError> {
    let rel = match path.strip_prefix(API_PREFIX) {
        Some(r) if r.starts_with('/') => r,
        _ => return Err(not_implemented(method, path)),
    };
    let rel_trimmed = if rel.len() > 1 {
        rel.trim_end_matches('/')
    } else {
        rel
    };
    let Some(resolved) = shared.schema.resolve(method.as_str(), rel_trimmed) else {
        return Err(not_implemented(method, rel_trimmed));
    };
    validate_resolved(&resolved, params).map_err(|e| ApiError::Param(e.errors))?;
    let template = resolved.template.to_string();
    let pp = resolved.path_params.clone();
    let vmid: Option<u32> = pp.get("vmid").and_then(|v| v.parse().ok());
    // Create and vzdump calls name their guest in the body: faults may match on it.
    let fault_vmid = vmid.or_else(|| {
        matches!(
            template.as_str(),
            "/nodes/{node}/lxc" | "/nodes/{node}/qemu" | "/nodes/{node}/vzdump"
        )
        .then(|| params.get("vmid").and_then(|v| v.parse().ok()))
        .flatten()
    });

    let mut ctx = Ctx {
        user,
        ..Default::default()
    };
    let fault = shared
        .lock()
        .take_fault(method.as_str(), rel_trimmed, fault_vmid);
    if let Some(f) = &fault {
        match f {
            Fault::Latency { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Fault::InternalError { message } => {
                return Err(ApiError::Internal(with_newline(message)));
            }
            Fault::StatusLineOnly { message } => {
                return Err(ApiError::StatusLineOnly(message.clone()));
            }
            Fault::LockTimeout => ctx.lock_timeout = true,
            Fault::TaskFailure { .. } | Fault::TaskWarnings { .. } => {
                ctx.task_fault = Some(f.clone())
            }
            Fault::ShutdownIgnored => ctx.shutdown_ignored = true,
            Fault::Locked { .. } | Fault::Vanish => {}
        }
    }

    if let Some(node) = pp.get("node")
        && *node != shared.node
    {
        // proxyto => 'node' for an unknown node name.
        return Err(ApiError::Internal(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
        )));
    }

    let now = Instant::now();
    let mut st = shared.lock();
    if let Some(f) = &fault {
        st.apply_guest_fault(f, fault_vmid);
    }
    let kind = if template.starts_with("/nodes/{node}/lxc") {
        Some(GuestKind::Lxc)
    } else if template.starts_with("/nodes/{node}/qemu") {
        Some(GuestKind::Qemu)
    } else {
        None
    };
    let m = method.as_str();
    let get = |k: &str| params.get(k).map(String::as_str);
    let flag = |k: &str| {
        params
            .get(k)
            .is_some_and(|v| pve_schema::parse_boolean(v) == Some(true))
    };
    let upid = pp.get("upid").cloned().unwrap_or_default();
    let pstr = |k: &str| pp.get(k).map(String::as_str).unwrap_or("");
    let suffix = template
        .strip_prefix("/nodes/{node}/lxc")
        .or_else(|| template.strip_prefix("/nodes/{node}/qemu"))
        .unwrap_or("");
    match (m, template.as_str(), kind, vmid) {
        ("GET", "/version", _, _) => st.version(),
        ("GET", "/cluster/resources", _, _) => st.resources(get("type")),
        ("GET", "/cluster/nextid", _, _) => st.nextid(get("vmid")),
        ("GET", "/nodes/{node}/tasks", _, _) => st.task_list(params),
        ("GET", "/nodes/{node}/tasks/{upid}/status", _, _) => st.task_status(&upid),
        ("GET", "/nodes/{node}/tasks/{upid}/log", _, _) => st.task_log(&upid, params),
        ("GET", "/nodes/{node}/storage/{storage}/content", _, _) => {
            st.storage_content(pstr("storage"), params)
        }
        ("GET", "/nodes/{node}/storage/{storage}/content/{volume}", _, _) => {
            st.volume_info(pstr("storage"), pstr("volume"))
        }
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", _, _) => {
            st.volume_delete(&ctx, pstr("storage"), pstr("volume"), params, now)
        }
        ("POST", "/nodes/{node}/vzdump", _, _) => st.vzdump(&ctx, params, now),
        ("GET", _, Some(k), None) if suffix.is_empty() => st.list(k, flag("full")),
        ("POST", _, Some(GuestKind::Lxc), None) if suffix.is_empty() => {
            st.lxc_create(&ctx, params, now)
        }
        ("POST", _, Some(GuestKind::Qemu), None) if suffix.is_empty() => {
            st.qemu_create(&ctx, params, now)
        }
        (_, _, Some(k), Some(vmid)) => match (m, suffix) {
            ("DELETE", "/{vmid}") => st.destroy(&ctx, k, vmid, params, now),
            ("POST", "/{vmid}/clone") => st.clone_guest(&ctx, k, vmid, params, now),
            ("POST", "/{vmid}/template") => st.template(&ctx, k, vmid, params, now),
            ("PUT", "/{vmid}/resize") => st.resize(&ctx, k, vmid, params, now),
            ("GET", "/{vmid}/config") => {
                if get("snapshot").is_some() {
                    Err(ApiError::Internal(format!(
                        "snapshot '{}' does not exist\n",
                        get("snapshot").unwrap_or("")
                    )))
                } else {
                    st.get_config(k, vmid, flag("current"))
                }
            }
            ("PUT", "/{vmid}/config") if k == GuestKind::Lxc => st.lxc_update(&ctx, vmid, params),
            ("PUT", "/{vmid}/config") => st.qemu_update(&ctx, vmid, params, true, now),
            ("POST", "/{vmid}/config") if k == GuestKind::Qemu => {
                st.qemu_update(&ctx, vmid, params, false, now)
            }
            ("GET", "/{vmid}/pending") => st.get_pending(k, vmid),
            ("GET", "/{vmid}/status/current") => st.status_current(k, vmid),
            ("POST", s) if s.starts_with("/{vmid}/status/") => {
                let action = s.trim_start_matches("/{vmid}/status/");
                match action {
                    "start" | "stop" | "shutdown" | "reboot" => {
                        st.power(&ctx, k, vmid, action, params, now)
                    }
                    _ => Err(not_implemented(method, rel_trimmed)),
                }
            }
            _ => Err(not_implemented(method, rel_trimmed)),
        },
        _ => Err(not_implemented(method, rel_trimmed)),
    }
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

fn not_implemented(method: &Method, path: &str) -> ApiError {
    ApiError::NotImplemented(format!("Method '{method} {path}' not implemented"))
}

fn json_body(status: StatusCode, reason: Option<&str>, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(r) = reason {
        // The status line cannot hold newlines; PVE's reason phrase is the message's first
        // part with the trailing newline stripped.
        let line: String = r
            .trim_end()
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(line) {
            resp.extensions_mut().insert(rp);
        }
    }
    resp
}

fn ok_response(reply: Reply) -> Response {
    let mut body = json!({ "data": reply.data });
    if let Some(t) = reply.total {
        body["total"] = json!(t);
    }
    json_body(StatusCode::OK, None, body)
}

pub(crate) fn error_response(e: ApiError) -> Response {
    match e {
        ApiError::Param(errors) => json_body(
            StatusCode::BAD_REQUEST,
            Some("Parameter verification failed."),
            json!({"data": null, "errors": errors}),
        ),
        ApiError::Internal(msg) => json_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&msg),
            json!({"data": null, "message": msg}),
        ),
        ApiError::StatusLineOnly(msg) => json_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&msg),
            json!({"data": null}),
        ),
        ApiError::NotImplemented(msg) => json_body(
            StatusCode::NOT_IMPLEMENTED,
            Some(&msg),
            json!({"data": null}),
        ),
        ApiError::Unauthorized(msg) => {
            json_body(StatusCode::UNAUTHORIZED, Some(&msg), json!({"data": null}))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    rules: Vec<FaultRule>,
}

/// `/_sim/...`: `GET state` (guests and storages with their volumes), `GET|PUT faults`, `GET|DELETE requests`.
fn control(shared: &Shared, method: &Method, rest: &str, body: &[u8]) -> Response {
    let plain = |status: StatusCode, v: Value| {
        let mut r = (status, v.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    match (method.as_str(), rest.trim_end_matches('/')) {
        ("GET", "state") => {
            let st = shared.lock();
            plain(
                StatusCode::OK,
                json!({
                    "node": shared.node,
                    "guests": st.all_views(),
                    "storages": st.storage_views(),
                }),
            )
        }
        ("GET", "faults") => plain(StatusCode::OK, json!({ "rules": shared.lock().faults })),
        ("PUT", "faults") => match serde_json::from_slice::<FaultsBody>(body) {
            Ok(b) => {
                let mut st = shared.lock();
                st.faults = b.rules;
                plain(StatusCode::OK, json!({ "rules": st.faults }))
            }
            Err(e) => plain(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
        },
        ("GET", "requests") => plain(
            StatusCode::OK,
            json!({ "requests": shared.lock().requests() }),
        ),
        ("DELETE", "requests") => {
            shared.lock().clear_requests();
            plain(StatusCode::OK, json!({ "requests": [] }))
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no control endpoint {method} /_sim/{rest}") }),
        ),
    }
}
