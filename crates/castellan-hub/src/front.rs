//! The hub's HTTP/1.1 front: TLS connections in, requests into the axum [`Router`].
//!
//! A hub's connections are mostly agents waiting in a long-poll, ten thousand of them
//! on a large fleet. A general-purpose HTTP server keeps read and write buffers for
//! every connection while its request waits (hyper: 8 KiB each, its minimum); this front
//! holds no buffer at all while a request is being answered, so a waiting agent costs
//! its TLS state and little else (see BENCHMARKS.md). It speaks a deliberately small
//! HTTP/1.1, and refuses what it does not speak:
//! - request heads of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, parsed by
//!   `httparse`, origin-form targets only (`/v1/...`), HTTP/1.0 and 1.1;
//! - bodies framed by one `Content-Length` only: any `Transfer-Encoding` is refused (so
//!   a request can never be framed two ways: no smuggling), and a body larger than
//!   [`MAX_BODY`] is refused before it is read; the router's per-route limits then apply;
//! - `Expect: 100-continue` is answered; pipelined requests are answered in order;
//! - a connection gets [`HANDSHAKE_TIMEOUT`] for its TLS handshake, [`IDLE_TIMEOUT`]
//!   between requests and [`HEAD_TIMEOUT`] to finish a head (and a body) once it started,
//!   so a slow client cannot hold a connection open without sending;
//! - a client that goes away while its request is answered (an agent restarting in a
//!   long-poll) is noticed at once and its request dropped.
//!
//! Responses are written whole with a `Content-Length` (every answer of this API is a
//! bounded JSON or text body).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body read at all (the router's per-route limits are smaller).
pub const MAX_BODY: usize = crate::server::DESIRED_BODY;

/// The largest body the front reads for a request to `target`: the few routes that take
/// large documents may send up to their own limit, every other route (log-in and
/// enrolment among them, open to anyone) at most [`crate::server::SMALL_BODY`], so an
/// unauthenticated client cannot make the hub hold megabytes per connection.
pub fn body_limit(target: &str) -> usize {
    use crate::server::{DESIRED_BODY, LEDGER_BODY, REPORT_BODY, SMALL_BODY};
    let path = target.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "v1", "hosts", _, "desired"] => DESIRED_BODY,
        ["", "v1", "ledger"] => LEDGER_BODY,
        ["", "v1", "agent", "report"] | ["", "v1", "agent", "audit"] => REPORT_BODY,
        _ => SMALL_BODY,
    }
    .min(MAX_BODY)
}
/// Largest response body written.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// Time for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a kept-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Time to finish a head, and then a body, once its first byte came.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one TLS connection until the client closes it, breaks the protocol, idles out,
/// or the hub stops.
pub async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(event = "tls_handshake_failed", peer = %peer, error = %e);
            return;
        }
        Err(_) => return,
    };
    let (mut rd, mut wr) = tokio::io::split(tls);
    // Bytes read but not yet used (a pipelined request); empty, and unallocated, while a
    // request is answered.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let head = tokio::select! {
            h = read_head(&mut rd, &mut pending) => h,
            _ = stop.changed() => return,
        };
        let head = match head {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(refusal) => {
                let _ = write_refusal(&mut wr, refusal).await;
                return;
            }
        };
        let parsed = match parse(&pending[..head]) {
            Ok(p) => p,
            Err(refusal) => {
                let _ = write_refusal(&mut wr, refusal).await;
                return;
            }
        };
        pending.drain(..head);
        if parsed.content_length > body_limit(&parsed.target) {
            let _ = write_refusal(
                &mut wr,
                Refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large",
                ),
            )
            .await;
            return;
        }
        if parsed.expect_continue
            && parsed.content_length > pending.len()
            && wr
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let body = match read_body(&mut rd, &mut pending, parsed.content_length).await {
            Ok(b) => b,
            Err(()) => return,
        };
        if pending.is_empty() {
            pending = Vec::new();
        }
        let close = parsed.close;
        let head_only = parsed.method == Method::HEAD;
        let request = match build(parsed, body, peer) {
            Ok(r) => r,
            Err(refusal) => {
                let _ = write_refusal(&mut wr, refusal).await;
                return;
            }
        };
        // Answer, unless the client goes away first (then the request is dropped).
        let answer = router.clone().oneshot(request);
        let response = tokio::select! {
            r = answer => match r {
                Ok(r) => r,
                Err(never) => match never {},
            },
            () = client_gone(&mut rd, &mut pending) => return,
        };
        let stopping = *stop.borrow();
        if write_response(&mut wr, response, close || stopping, head_only)
            .await
            .is_err()
            || close
            || stopping
        {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// A request refused by the front itself: answered, then the connection is closed.
#[derive(Debug, Clone, Copy)]
struct Refusal(StatusCode, &'static str);

/// Reads until `pending` holds a whole head; returns its length. `None`: the client
/// closed (or idled out) between requests.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    pending: &mut Vec<u8>,
) -> Result<Option<usize>, Refusal> {
    let mut started: Option<tokio::time::Instant> =
        (!pending.is_empty()).then(tokio::time::Instant::now);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(pending) {
            return Ok(Some(end));
        }
        if pending.len() >= MAX_HEAD {
            return Err(Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "the request head is too large",
            ));
        }
        let deadline = match started {
            Some(t) => t + HEAD_TIMEOUT,
            None => tokio::time::Instant::now() + IDLE_TIMEOUT,
        };
        let n = match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return Ok(None),
            Err(_) if started.is_some() => {
                return Err(Refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request head took too long",
                ));
            }
            Err(_) => return Ok(None),
        };
        if n == 0 {
            return Ok(None);
        }
        started.get_or_insert_with(tokio::time::Instant::now);
        pending.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Reads a body of exactly `len` bytes (some may already be in `pending`).
async fn read_body<R: AsyncRead + Unpin>(
    rd: &mut R,
    pending: &mut Vec<u8>,
    len: usize,
) -> Result<Vec<u8>, ()> {
    if pending.len() >= len {
        return Ok(pending.drain(..len).collect());
    }
    let mut body = std::mem::take(pending);
    body.reserve_exact(len - body.len());
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let mut chunk = [0u8; 8192];
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(()),
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(body)
}

/// Resolves when the client closes its side (or the connection fails) while its request
/// is answered. Bytes it sends meanwhile (a pipelined request) are kept, up to a head's
/// worth; past that, nothing more is read until the answer is out.
async fn client_gone<R: AsyncRead + Unpin>(rd: &mut R, pending: &mut Vec<u8>) {
    let mut chunk = [0u8; 512];
    loop {
        if pending.len() >= MAX_HEAD {
            std::future::pending::<()>().await;
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A parsed head, owned.
#[derive(Debug)]
struct Parsed {
    method: Method,
    target: String,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
    content_length: usize,
    close: bool,
    expect_continue: bool,
}

fn parse(head: &[u8]) -> Result<Parsed, Refusal> {
    let bad = |what: &'static str| Refusal(StatusCode::BAD_REQUEST, what);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("an incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many request headers",
            ));
        }
        Err(_) => return Err(bad("a malformed request head")),
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| bad("an unknown method"))?;
    let target = req.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(bad("the request target must be a path"));
    }
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(bad("only HTTP/1.0 and HTTP/1.1 are spoken here")),
    };
    let mut content_length: Option<usize> = None;
    let mut close = version == Version::HTTP_10;
    let mut expect_continue = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad("a malformed header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| bad("a malformed header value"))?;
        if name == axum::http::header::TRANSFER_ENCODING {
            return Err(Refusal(
                StatusCode::NOT_IMPLEMENTED,
                "transfer-encoding is not accepted: send the body with a Content-Length",
            ));
        }
        if name == axum::http::header::CONTENT_LENGTH {
            let text = value
                .to_str()
                .map_err(|_| bad("a malformed content-length"))?;
            if content_length.is_some()
                || text.is_empty()
                || text.len() > 12
                || !text.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad("one content-length, in digits, is required"));
            }
            content_length = Some(
                text.parse()
                    .map_err(|_| bad("a malformed content-length"))?,
            );
        }
        if name == axum::http::header::CONNECTION {
            let text = value.to_str().unwrap_or("").to_ascii_lowercase();
            for token in text.split(',').map(str::trim) {
                match token {
                    "close" => close = true,
                    "keep-alive" if version == Version::HTTP_10 => close = false,
                    _ => {}
                }
            }
        }
        if name == axum::http::header::EXPECT {
            if !value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
                return Err(Refusal(
                    StatusCode::EXPECTATION_FAILED,
                    "only 100-continue is expected here",
                ));
            }
            expect_continue = true;
        }
        headers.push((name, value));
    }
    Ok(Parsed {
        method,
        target: target.to_owned(),
        version,
        headers,
        content_length: content_length.unwrap_or(0),
        close,
        expect_continue,
    })
}

fn build(p: Parsed, body: Vec<u8>, peer: SocketAddr) -> Result<Request<Body>, Refusal> {
    let mut req = Request::builder()
        .method(p.method)
        .uri(p.target.as_str())
        .version(p.version)
        .body(Body::from(body))
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "a malformed request target"))?;
    let headers = req.headers_mut();
    for (name, value) in p.headers {
        headers.append(name, value);
    }
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    Ok(req)
}

async fn write_response<W: AsyncWrite + Unpin>(
    wr: &mut W,
    response: axum::response::Response,
    close: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_RESPONSE)
        .await
        .map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(256 + if head_only { 0 } else { body.len() });
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
            || name == axum::http::header::CONNECTION
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let no_body = parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || parts.status.is_informational();
    if !no_body {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !no_body {
        out.extend_from_slice(&body);
    }
    wr.write_all(&out).await?;
    wr.flush().await
}

async fn write_refusal<W: AsyncWrite + Unpin>(wr: &mut W, r: Refusal) -> std::io::Result<()> {
    let body = serde_json::json!({ "error": "http", "message": r.1 }).to_string();
    let text = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        r.0.as_u16(),
        r.0.canonical_reason().unwrap_or(""),
        body.len()
    );
    wr.write_all(text.as_bytes()).await?;
    wr.flush().await?;
    wr.shutdown().await
}

/// Accepts connections on `listener` until `stop`, then gives open connections `grace`
/// to finish.
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    mut stop: watch::Receiver<bool>,
    grace: Arc<std::sync::Mutex<Duration>>,
) -> std::io::Result<()> {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(connection(tcp, peer, acceptor.clone(), router.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    tracing::warn!(event = "accept_failed", error = %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let grace = *grace.lock().unwrap_or_else(|p| p.into_inner());
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{DESIRED_BODY, LEDGER_BODY, REPORT_BODY, SMALL_BODY};

    #[test]
    fn only_the_document_routes_may_send_large_bodies() {
        assert_eq!(body_limit("/v1/hosts/pve-01/desired"), DESIRED_BODY);
        assert_eq!(body_limit("/v1/ledger"), LEDGER_BODY);
        assert_eq!(body_limit("/v1/agent/report"), REPORT_BODY);
        assert_eq!(body_limit("/v1/agent/audit?x=1"), REPORT_BODY);
        for small in [
            "/ui/login",
            "/v1/enrol",
            "/v1/enrol?x=/v1/ledger",
            "/v1/hosts/pve-01/desired/extra",
            "/v1/hosts/pve-01/ops",
            "/v1/ledger/",
            "",
        ] {
            assert_eq!(body_limit(small), SMALL_BODY, "{small}");
        }
    }
}
