//! The hub's HTTP/1.1 front, attacked over real TLS with hand-written requests: two
//! framings of one body (request smuggling), oversize heads and bodies, too many headers,
//! absolute-form targets, unknown expectations, pipelining, keep-alive, a client that
//! leaves in the middle of a long-poll, a slow client. Every refusal is answered once and
//! closes the connection; nothing reaches the API.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use castellan_hub::store::HubStore as _;
use castellan_hub::token::{Token, TokenKind};
use castellan_hub::{Hub, SqliteStore, tls};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

struct Front {
    _dir: tempfile::TempDir,
    hub: Arc<Hub<SqliteStore>>,
    _running: castellan_hub::Running,
    addr: std::net::SocketAddr,
    operator: String,
}

impl Front {
    async fn start() -> Result<Front, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let hub = Hub::new(SqliteStore::open(dir.path())?);
        let tls = tls::self_signed(dir.path(), &["127.0.0.1".into()])?;
        let running = castellan_hub::serve(
            Arc::clone(&hub),
            std::net::TcpListener::bind("127.0.0.1:0")?,
            &tls,
        )?;
        let op = Token::generate(TokenKind::Operator);
        hub.store()
            .create_operator_token("alice", op.hash(), jiff::Timestamp::now())
            .await?;
        Ok(Front {
            addr: running.addr(),
            _dir: dir,
            hub,
            _running: running,
            operator: op.reveal().to_owned(),
        })
    }

    /// A blocking TLS connection (run it off the runtime).
    fn connect(&self) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), "127.0.0.1".try_into().expect("name"))
                .expect("client");
        let tcp = TcpStream::connect(self.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(40)))
            .expect("timeout");
        rustls::StreamOwned::new(conn, tcp)
    }
}

/// Sends `raw`, reads until the server closes (or the read times out); the text.
fn exchange(mut s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>, raw: &[u8]) -> String {
    s.write_all(raw).expect("write");
    s.flush().expect("flush");
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Each answer's `HTTP/1.1 NNN ` (bodies carry no newline, so an answer may begin
/// mid-line).
fn status_lines(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i..i + 13))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_ambiguous_requests_are_refused_once_and_the_connection_closed() -> TestResult
{
    let f = Arc::new(Front::start().await?);
    let op = f.operator.clone();
    let desired = "node = \"pve-01\"\n";
    let body = serde_json::json!({ "document": desired, "based_on": 0 }).to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Smuggling: a body framed by both Content-Length and chunked encoding.
        (
            format!(
                "PUT /v1/hosts/pve-01/desired HTTP/1.1\r\nauthorization: Bearer {op}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            "HTTP/1.1 501 ",
        ),
        // Two different lengths.
        (
            format!(
                "PUT /v1/hosts/pve-01/desired HTTP/1.1\r\nauthorization: Bearer {op}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncontent-length: 5\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            "HTTP/1.1 400 ",
        ),
        // A signed length.
        (
            format!(
                "PUT /v1/hosts/pve-01/desired HTTP/1.1\r\nauthorization: Bearer {op}\r\ncontent-length: +{}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            "HTTP/1.1 400 ",
        ),
        // A head too large, and too many headers.
        (
            format!("GET /v1/hosts HTTP/1.1\r\nx-pad: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            "HTTP/1.1 431 ",
        ),
        (
            format!("GET /v1/hosts HTTP/1.1\r\n{}\r\n", "x-h: 1\r\n".repeat(100)).into_bytes(),
            "HTTP/1.1 431 ",
        ),
        // A body announced far past any limit: refused before it is read.
        (
            b"PUT /v1/hosts/pve-01/desired HTTP/1.1\r\ncontent-length: 999999999999\r\n\r\n".to_vec(),
            "HTTP/1.1 413 ",
        ),
        // A body past 64 KiB on a route that takes none that large (log-in, enrolment,
        // here the UI's log-in form): refused before it is read.
        (
            b"POST /ui/login HTTP/1.1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 1048576\r\n\r\n".to_vec(),
            "HTTP/1.1 413 ",
        ),
        (
            b"POST /v1/enrol?x=/v1/ledger HTTP/1.1\r\ncontent-length: 70000\r\n\r\n".to_vec(),
            "HTTP/1.1 413 ",
        ),
        // Not a path; not HTTP/1; an unknown expectation; garbage.
        (b"GET http://evil/v1/hosts HTTP/1.1\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (b"GET /v1/hosts HTTP/2.0\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (
            b"GET /v1/hosts HTTP/1.1\r\nexpect: something\r\n\r\n".to_vec(),
            "HTTP/1.1 417 ",
        ),
        (b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
    ];
    for (raw, want) in cases {
        let f2 = Arc::clone(&f);
        let text = tokio::task::spawn_blocking(move || exchange(f2.connect(), &raw)).await?;
        let lines = status_lines(&text);
        assert_eq!(lines.len(), 1, "one answer, then closed: {text}");
        assert!(lines[0].starts_with(want), "want {want}: {text}");
    }
    // Nothing got through to the API.
    assert!(f.hub.store().latest_revision("pve-01").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_kept_alive_requests_are_answered_in_order() -> TestResult {
    let f = Arc::new(Front::start().await?);
    let op = f.operator.clone();
    let body = serde_json::json!({ "document": "node = \"pve-01\"\n", "based_on": 0 }).to_string();
    let raw = format!(
        "GET /v1/openapi.json HTTP/1.1\r\n\r\n\
         PUT /v1/hosts/pve-01/desired HTTP/1.1\r\nauthorization: Bearer {op}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n{body}\
         GET /v1/hosts/pve-01/desired HTTP/1.1\r\nauthorization: Bearer {op}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let f2 = Arc::clone(&f);
    let text = tokio::task::spawn_blocking(move || exchange(f2.connect(), raw.as_bytes())).await?;
    let lines: Vec<&str> = status_lines(&text)
        .into_iter()
        .filter(|l| !l.starts_with("HTTP/1.1 100"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("HTTP/1.1 200"), "{text}");
    assert!(lines[1].starts_with("HTTP/1.1 201"), "{text}");
    assert!(lines[2].starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert_eq!(
        f.hub
            .store()
            .latest_revision("pve-01")
            .await?
            .map(|r| r.revision),
        Some(1)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_a_long_poll_is_noticed_at_once() -> TestResult {
    let f = Arc::new(Front::start().await?);
    let enrol = Token::generate(TokenKind::Enrol);
    let cred = Token::generate(TokenKind::Host);
    let now = jiff::Timestamp::now();
    f.hub
        .store()
        .create_enrol_token(
            "pve-01",
            enrol.hash(),
            now,
            now + jiff::SignedDuration::from_hours(1),
        )
        .await?;
    f.hub
        .store()
        .redeem_enrol_token("pve-01", enrol.hash(), cred.hash(), now)
        .await?;
    let raw = format!(
        "GET /v1/agent/poll?revision=0&ops=0&wait_ms=60000 HTTP/1.1\r\nauthorization: Bearer {}\r\n\r\n",
        cred.reveal()
    );
    let f2 = Arc::clone(&f);
    let conn = tokio::task::spawn_blocking(move || {
        let mut s = f2.connect();
        s.write_all(raw.as_bytes()).expect("write");
        s.flush().expect("flush");
        s
    })
    .await?;
    let open = |f: &Front| {
        f.hub
            .metrics()
            .render(&[])
            .lines()
            .any(|l| l == "castellan_hub_long_polls 1")
    };
    let mut waited = 0;
    while !open(&f) {
        assert!(waited < 100, "the long-poll never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    // The agent goes away: its request is dropped at once, not after 60 s.
    drop(conn);
    let mut waited = 0;
    while open(&f) {
        assert!(waited < 100, "the dropped long-poll is still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_cut_off() -> TestResult {
    let f = Arc::new(Front::start().await?);
    let f2 = Arc::clone(&f);
    // One byte, then nothing: refused once the head deadline passes.
    let text = tokio::task::spawn_blocking(move || exchange(f2.connect(), b"G")).await?;
    let lines = status_lines(&text);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("HTTP/1.1 408"), "{text}");
    Ok(())
}
