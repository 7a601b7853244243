//! A scripted fake PVE node: answers each (method, path) from a queue of canned responses in
//! the exact shapes a real node uses, including error text in a custom HTTP reason phrase,
//! and records every request it receives.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use castellan_pve::{ApiToken, ClientConfig, PveClient, RetryPolicy, TlsMode};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A distinctive secret, so a leak is easy to spot.
pub const SECRET: &str = "s3cr3t-DO-NOT-LEAK-7f9a0c2e-51b4";
pub const TOKEN: &str = "root@pam!castellan=s3cr3t-DO-NOT-LEAK-7f9a0c2e-51b4";
pub const NODE: &str = "pve-01";

/// One canned response.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    /// A custom reason phrase for the status line, as pveproxy sends error texts.
    pub reason: Option<String>,
    pub body: String,
    pub delay: Duration,
}

impl Canned {
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// `200 OK` with `{"data": data}`.
pub fn ok(data: Value) -> Canned {
    Canned {
        status: 200,
        reason: None,
        body: json!({ "data": data }).to_string(),
        delay: Duration::ZERO,
    }
}

/// An error as current pve-http-server sends it: the text in the status line and in the
/// body's `message` (with PVE's trailing newline).
pub fn pve_error(status: u16, message: &str) -> Canned {
    Canned {
        status,
        reason: Some(message.to_owned()),
        body: json!({ "data": null, "message": format!("{message}\n") }).to_string(),
        delay: Duration::ZERO,
    }
}

/// An error as older nodes and proxied requests send it: the text only in the status line.
pub fn status_line_only(status: u16, message: &str) -> Canned {
    Canned {
        status,
        reason: Some(message.to_owned()),
        body: json!({ "data": null }).to_string(),
        delay: Duration::ZERO,
    }
}

/// `400 Parameter verification failed.` with an `errors` map.
pub fn param_error(errors: &[(&str, &str)]) -> Canned {
    let map: serde_json::Map<String, Value> = errors
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(format!("{v}\n"))))
        .collect();
    Canned {
        status: 400,
        reason: Some("Parameter verification failed.".to_owned()),
        body: json!({ "data": null, "errors": map, "message": "Parameter verification failed.\n" })
            .to_string(),
        delay: Duration::ZERO,
    }
}

/// A request as the fake node saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path after `/api2/json`.
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    pub auth: Option<String>,
    pub content_type: Option<String>,
}

impl Seen {
    /// The query or form parameters, decoded.
    pub fn params(&self) -> HashMap<String, String> {
        let raw = if self.method == "GET" || self.method == "DELETE" {
            self.query.clone().unwrap_or_default()
        } else {
            self.body.clone()
        };
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Default)]
struct Script {
    routes: HashMap<(String, String), VecDeque<Canned>>,
    seen: Vec<Seen>,
}

/// The fake node.
pub struct Fake {
    pub base: Url,
    script: Arc<Mutex<Script>>,
}

fn lock(script: &Mutex<Script>) -> std::sync::MutexGuard<'_, Script> {
    // A panicking handler poisons the mutex; the data is still fine for a test.
    script.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fake {
    /// Starts a plain-HTTP fake node on 127.0.0.1.
    pub async fn start() -> Result<Fake, Box<dyn std::error::Error>> {
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = router(script.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Fake {
            base: format!("http://{addr}").parse()?,
            script,
        })
    }

    /// Starts an HTTPS fake node on 127.0.0.1 with the given server TLS configuration.
    pub async fn start_tls(tls: rustls::ServerConfig) -> Result<Fake, Box<dyn std::error::Error>> {
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = router(script.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
        let server = axum_server::from_tcp_rustls(listener, config)?;
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        Ok(Fake {
            base: format!("https://{addr}").parse()?,
            script,
        })
    }

    /// Scripts the answers to `method path` (path after `/api2/json`). Answers are used in
    /// order; the last one repeats.
    pub fn route(&self, method: &str, path: &str, answers: Vec<Canned>) {
        lock(&self.script)
            .routes
            .insert((method.to_owned(), path.to_owned()), answers.into());
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.script).seen.clone()
    }

    /// How many requests `method path` received.
    pub fn count(&self, method: &str, path: &str) -> usize {
        lock(&self.script)
            .seen
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    /// A client for this node with fast retries.
    pub fn client(&self) -> Result<PveClient, castellan_pve::Error> {
        self.client_with(|_| {})
    }

    /// A client for this node, configured further by `f`.
    pub fn client_with(
        &self,
        f: impl FnOnce(&mut ClientConfig),
    ) -> Result<PveClient, castellan_pve::Error> {
        let token: ApiToken = TOKEN.parse()?;
        let mut cfg = ClientConfig::new(self.base.clone(), token);
        cfg.tls = TlsMode::Insecure;
        cfg.timeout = Duration::from_secs(5);
        cfg.retry = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        };
        f(&mut cfg);
        PveClient::new(cfg)
    }
}

fn router(script: Arc<Mutex<Script>>) -> Router {
    Router::new().fallback(handle).with_state(script)
}

async fn handle(State(script): State<Arc<Mutex<Script>>>, req: Request<Body>) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let full_path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    // Taken in a block: a reference to the request must not live across an await (the
    // body is not Sync).
    let (auth, content_type) = {
        let headers = req.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header("authorization"), header("content-type"))
    };
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let path = full_path
        .strip_prefix("/api2/json")
        .unwrap_or(&full_path)
        .to_owned();
    let answer = {
        let mut s = lock(&script);
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query,
            body: String::from_utf8_lossy(&body).into_owned(),
            auth,
            content_type,
        });
        match s.routes.get_mut(&(method.clone(), path.clone())) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    // What pveproxy answers for a path or method it does not know.
    let answer = answer.unwrap_or_else(|| {
        status_line_only(
            501,
            &format!("Method '{method} {full_path}' not implemented"),
        )
    });
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(reason) = answer.reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// A raw TCP server that answers every connection with `raw` verbatim, for checking the
/// status-line parsing independently of any HTTP server library.
pub async fn raw_server(raw: &'static str) -> Result<Url, Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = Vec::new();
                // Read the request head (no body on GET), then answer.
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(raw.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(format!("http://{addr}").parse()?)
}

/// A realistic UPID for `kind` on the fake node.
pub fn upid(kind: &str, vmid: u32) -> String {
    format!("UPID:{NODE}:0001E240:00A5B6C7:65F0A1B2:{kind}:{vmid}:root@pam!castellan:")
}
