//! A client of the hub's API, for the agent and the operator's CLI. TLS is verified by
//! pinning the hub's certificate fingerprint (what `castellan hub` prints), by a CA
//! file, or by the system's roots.

use std::fmt;
use std::time::Duration;

use castellan_pve::TlsMode;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::proto::{
    AgentReport, ApiError, AuditHead, AuditPage, AuditUpload, DesiredRevision, EnrolRequest,
    EnrolResponse, HostStatus, OpAck, PollResponse, PutDesired, PutDesiredResponse,
    RelayedOpStatus, SubmitOp, SubmitOpResponse,
};

/// Why a call to the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be set up.
    #[error("hub client: {0}")]
    Config(String),
    /// The hub could not be reached, or the connection failed.
    #[error("cannot reach the hub at {url}: {message}")]
    Transport {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The hub answered with an error.
    #[error("{}", ApiText(*.status, .error))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The hub's explanation.
        error: ApiError,
    },
    /// The hub's answer could not be read.
    #[error("unexpected answer from the hub at {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        message: String,
    },
}

struct ApiText<'a>(StatusCode, &'a ApiError);

impl fmt::Display for ApiText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hub refused ({}): {}", self.0.as_u16(), self.1.message)?;
        for p in &self.1.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl ClientError {
    /// The HTTP status, when the hub answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A long-poll's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// The identity of the hub's database (the same for every hub process sharing one
    /// database, new when the database is): an agent's cursor is only meaningful
    /// against the database it came from.
    pub hub_id: Option<String>,
    /// What is new (`None`: nothing came before the wait ran out).
    pub news: Option<PollResponse>,
}

/// A connection to one hub, with one bearer token.
#[derive(Clone)]
pub struct HubClient {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Per-request timeout for everything but long-polls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl HubClient {
    /// A client for the hub at `base` (`https://hub:8443`), trusting it as `tls` says.
    pub fn new(base: Url, tls: &TlsMode) -> Result<HubClient, ClientError> {
        if base.scheme() != "https" {
            return Err(ClientError::Config(format!(
                "{base}: the hub is reached over https only"
            )));
        }
        let tls = castellan_pve::tls_client_config(tls)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        // One request at a time per agent (its long-poll, now and then a report):
        // HTTP/1.1 keeps the hub's state per connection smallest, which is what a hub
        // holding ten thousand open long-polls pays for.
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(HubClient {
            base,
            http,
            token: None,
        })
    }

    /// The same client, calling with `token`.
    pub fn with_token(mut self, token: String) -> HubClient {
        self.token = Some(token);
        self
    }

    /// The hub's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::Config(format!("{path}: {e}")))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        self.call_with_id(method, path, body, timeout)
            .await
            .map(|(_, body)| body)
    }

    async fn call_with_id<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(Option<String>, Option<T>), ClientError> {
        let url = self.url(path)?;
        let mut req = self.http.request(method, url.clone()).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.to_string(),
            message: error_chain(&e),
        };
        let resp = req.send().await.map_err(transport)?;
        decode(&url, resp).await
    }

    async fn expect<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call(method, path, body, CALL_TIMEOUT)
            .await?
            .ok_or_else(|| ClientError::Decode {
                url: path.to_owned(),
                message: "an empty answer".into(),
            })
    }

    /// Redeems an enrolment token for `host`; returns the host's credential.
    pub async fn enrol(&self, host: &str, token: &str) -> Result<EnrolResponse, ClientError> {
        let body = EnrolRequest {
            host: host.to_owned(),
            token: token.to_owned(),
        };
        self.expect(reqwest::Method::POST, "/v1/enrol", Some(&body))
            .await
    }

    /// Waits up to `wait` for a revision newer than `revision` or ops above `ops`.
    pub async fn poll(
        &self,
        revision: u64,
        ops: u64,
        wait: Duration,
    ) -> Result<Polled, ClientError> {
        let path = format!(
            "/v1/agent/poll?revision={revision}&ops={ops}&wait_ms={}",
            wait.as_millis()
        );
        let (hub_id, news) = self
            .call_with_id::<(), _>(
                reqwest::Method::GET,
                &path,
                None,
                wait + Duration::from_secs(15),
            )
            .await?;
        Ok(Polled { hub_id, news })
    }

    /// Tells the hub every op up to `upto` is in the agent's inbox.
    pub async fn ack_ops(&self, upto: u64) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(
            reqwest::Method::POST,
            "/v1/agent/ops/ack",
            Some(&OpAck { upto }),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Sends the agent's report.
    pub async fn report(&self, report: &AgentReport) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(
            reqwest::Method::POST,
            "/v1/agent/report",
            Some(report),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Every host and where it stands.
    pub async fn hosts(&self) -> Result<Vec<HostStatus>, ClientError> {
        self.expect::<(), _>(reqwest::Method::GET, "/v1/hosts", None)
            .await
    }

    /// The latest desired revision of `host`, if it has one.
    pub async fn desired(&self, host: &str) -> Result<Option<DesiredRevision>, ClientError> {
        match self
            .expect::<(), _>(
                reqwest::Method::GET,
                &format!("/v1/hosts/{host}/desired"),
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a desired-state revision for `host`, based on revision `based_on`.
    pub async fn put_desired(
        &self,
        host: &str,
        document: &str,
        based_on: u64,
    ) -> Result<PutDesiredResponse, ClientError> {
        let body = PutDesired {
            document: document.to_owned(),
            based_on,
        };
        self.expect(
            reqwest::Method::PUT,
            &format!("/v1/hosts/{host}/desired"),
            Some(&body),
        )
        .await
    }

    /// Pushes an acceptance report of the host-service ledger.
    pub async fn put_ledger(
        &self,
        report: &serde_json::Value,
    ) -> Result<crate::proto::PutLedgerResponse, ClientError> {
        self.expect(reqwest::Method::PUT, "/v1/ledger", Some(report))
            .await
    }

    /// The latest acceptance report pushed to the hub.
    pub async fn ledger(&self) -> Result<serde_json::Value, ClientError> {
        self.expect::<(), _>(reqwest::Method::GET, "/v1/ledger", None)
            .await
    }

    /// Relays a signed op to `host`.
    pub async fn submit_op(
        &self,
        host: &str,
        op: &str,
        sigs: Vec<String>,
    ) -> Result<SubmitOpResponse, ClientError> {
        let body = SubmitOp {
            op: op.to_owned(),
            sigs,
        };
        self.expect(
            reqwest::Method::POST,
            &format!("/v1/hosts/{host}/ops"),
            Some(&body),
        )
        .await
    }

    /// The latest report from `host`, if it has sent one.
    pub async fn host_report(&self, host: &str) -> Result<Option<AgentReport>, ClientError> {
        match self
            .expect::<(), _>(
                reqwest::Method::GET,
                &format!("/v1/hosts/{host}/report"),
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The last audit record the hub verified for this agent's host.
    pub async fn audit_head(&self) -> Result<AuditHead, ClientError> {
        self.expect::<(), _>(reqwest::Method::GET, "/v1/agent/audit/head", None)
            .await
    }

    /// Uploads the next audit records; returns the head the hub holds now.
    pub async fn upload_audit(&self, upload: &AuditUpload) -> Result<AuditHead, ClientError> {
        self.expect(reqwest::Method::POST, "/v1/agent/audit", Some(upload))
            .await
    }

    /// A page of `host`'s audit chain as the hub holds it: records after `after`.
    pub async fn host_audit(&self, host: &str, after: u64) -> Result<AuditPage, ClientError> {
        self.expect::<(), _>(
            reqwest::Method::GET,
            &format!("/v1/hosts/{host}/audit?after={after}"),
            None,
        )
        .await
    }

    /// The hub's Prometheus metrics, as text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = self.url("/metrics")?;
        let mut req = self.http.get(url.clone()).timeout(CALL_TIMEOUT);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            message: error_chain(&e),
        })?;
        let status = resp.status();
        let bytes =
            read_bounded(resp, MAX_ANSWER)
                .await
                .map_err(|message| ClientError::Transport {
                    url: url.to_string(),
                    message,
                })?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| ApiError {
                error: "http".into(),
                message: status.to_string(),
                problems: Vec::new(),
            });
            return Err(ClientError::Api { status, error });
        }
        String::from_utf8(bytes).map_err(|_| ClientError::Decode {
            url: url.to_string(),
            message: "metrics are not utf-8 text".into(),
        })
    }

    /// Every op relayed to `host` and whether it has taken them, oldest first.
    pub async fn ops(&self, host: &str) -> Result<Vec<RelayedOpStatus>, ClientError> {
        let mut all: Vec<RelayedOpStatus> = Vec::new();
        loop {
            let after = all.last().map_or(0, |o| o.id);
            let page = self.ops_page(host, after).await?;
            // A page that does not move forward ends the listing (a hub must not loop us).
            if page.first().is_none_or(|o| o.id <= after) {
                return Ok(all);
            }
            let full = page.len() >= 1000;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// One page (up to 1,000) of the ops relayed to `host` with an id above `after`.
    pub async fn ops_page(
        &self,
        host: &str,
        after: u64,
    ) -> Result<Vec<RelayedOpStatus>, ClientError> {
        self.expect::<(), _>(
            reqwest::Method::GET,
            &format!("/v1/hosts/{host}/ops?after={after}"),
            None,
        )
        .await
    }
}

/// The hub's id header on a poll's answer (see [`Polled::hub_id`]).
pub const HUB_ID_HEADER: &str = "castellan-hub-id";

/// Reads an answer: `None` for 204, the decoded body for another 2xx, the hub's error
/// otherwise; with the hub's id header, if it sent one.
async fn decode<T: DeserializeOwned>(
    url: &Url,
    resp: reqwest::Response,
) -> Result<(Option<String>, Option<T>), ClientError> {
    let status = resp.status();
    let hub_id = resp
        .headers()
        .get(HUB_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned);
    if status == StatusCode::NO_CONTENT {
        return Ok((hub_id, None));
    }
    let bytes = read_bounded(resp, MAX_ANSWER)
        .await
        .map_err(|message| ClientError::Transport {
            url: url.to_string(),
            message,
        })?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map(|b| (hub_id, Some(b)))
            .map_err(|e| ClientError::Decode {
                url: url.to_string(),
                message: e.to_string(),
            });
    }
    let error = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| ApiError {
        error: "http".into(),
        message: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
        problems: Vec::new(),
    });
    Err(ClientError::Api { status, error })
}

/// Largest answer read from a hub: a desired state at the agent's limit, escaped, and a
/// poll's worth of ops. A hub that sends more is cut off, not buffered.
const MAX_ANSWER: usize = castellan_core::desired::MAX_FILE_BYTES * 2 + 4 * 1024 * 1024;

/// Reads a body of at most `limit` bytes.
async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("answer larger than {limit} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An error and its causes on one line (reqwest's own message hides the cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
