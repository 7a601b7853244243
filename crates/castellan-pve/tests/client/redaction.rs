//! The token secret never shows in Debug/Display output, error messages or logs.

use crate::support::*;
use castellan_pve::{ApiToken, ClientConfig, Error, GuestKind, RetryPolicy};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

// Current-thread runtime: the subscriber set with `set_default` sees every event the
// client's futures emit.
#[tokio::test]
async fn the_secret_never_leaks() -> TestResult {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = Fake::start().await?;
    fake.route(
        "GET",
        "/version",
        vec![ok(
            json!({"version": "9.1.3", "release": "9.1", "repoid": "abcdef12"}),
        )],
    );
    fake.route(
        "GET",
        "/nodes/pve-01/lxc",
        vec![status_line_only(401, "authentication failure")],
    );
    fake.route(
        "POST",
        "/nodes/pve-01/lxc/101/status/start",
        vec![pve_error(500, "CT 101 is locked (backup)")],
    );
    let client = fake.client()?;
    let mut outputs = Vec::new();
    outputs.push(format!("{client:?}"));
    client.version().await?;
    outputs.push(format!(
        "{:?}",
        client.list_guests(NODE, GuestKind::Lxc).await
    ));
    let locked = client.start(NODE, GuestKind::Lxc, 101).await;
    outputs.push(format!("{locked:?}"));
    if let Err(e) = &locked {
        outputs.push(e.to_string());
    }

    // A transport error and a TLS error carry URLs and causes, never the header.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let token: ApiToken = TOKEN.parse()?;
    let mut cfg = ClientConfig::new(format!("http://127.0.0.1:{port}").parse()?, token.clone());
    cfg.retry = RetryPolicy::none();
    cfg.timeout = Duration::from_secs(2);
    outputs.push(format!("{cfg:?} {:?} {token} {token:?}", cfg.token));
    let refused = castellan_pve::PveClient::new(cfg)?.version().await;
    assert!(matches!(refused, Err(Error::Transport(_))), "{refused:?}");
    outputs.push(format!("{refused:?}"));

    // A malformed token string mentions neither its secret nor its text.
    let bad = format!("root@pam!1castellan={SECRET}").parse::<ApiToken>();
    outputs.push(format!("{bad:?}"));

    let logs = capture.text();
    assert!(logs.contains("pve request"), "no logs captured: {logs}");
    assert!(logs.contains("retrying pve request"), "{logs}");
    for out in outputs.iter().chain(std::iter::once(&logs)) {
        assert!(!out.contains(SECRET), "secret leaked: {out}");
        assert!(!out.contains("s3cr3t"), "secret leaked: {out}");
    }
    Ok(())
}
