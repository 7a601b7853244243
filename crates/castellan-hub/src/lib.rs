//! castellan's hub: the one place a fleet declares what should run, sees where each host
//! stands, and routes signatures.
//!
//! The hub holds desired-state revisions per host (validated with the agent's own
//! parser, optimistic concurrency by revision, history kept), pushes each new revision to
//! its host by long-poll, relays signed ops that operators upload, and keeps the agents'
//! reports. It is never trusted to destroy anything: it cannot sign, every host verifies
//! every op against its own signers, and a desired state can only ever make a host
//! *propose* a destructive action.
//!
//! - [`store`]: the storage trait and its backends (SQLite embedded, PostgreSQL).
//! - [`front`]: the HTTP/1.1-over-TLS front the API is served through.
//! - [`server`]: the HTTP API (axum) over a store.
//! - [`client`]: the API's client, for the agent and the CLI.
//! - [`proto`]: the wire types. [`openapi`]: the document served at `/v1/openapi.json`.
//! - [`token`]: bearer tokens, stored hashed. [`tls`]: the hub's certificate.
//! - [`ui`]: the operators' web UI (server-rendered, read-only, no script).

pub mod audit;
pub mod client;
pub mod front;
pub mod metrics;
pub mod openapi;
pub mod proto;
pub mod server;
pub mod store;
pub mod tls;
pub mod token;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

pub use client::{ClientError, HubClient, Polled};
pub use server::{Hub, router};
pub use store::{HubStore, PgStore, SqliteStore, StoreError};

/// A hub serving on a socket.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    grace: Arc<std::sync::Mutex<std::time::Duration>>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish (up to `grace`), and waits.
    pub async fn shutdown(mut self, grace: std::time::Duration) -> std::io::Result<()> {
        *self.grace.lock().unwrap_or_else(|p| p.into_inner()) = grace;
        let _ = self.stop.send(true);
        match (&mut self.join).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Waits until the server stops (it only does on shutdown).
    pub async fn wait(mut self) -> std::io::Result<()> {
        match (&mut self.join).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop at once.
        let _ = self.stop.send(true);
        self.join.abort();
    }
}

/// Serves `hub` over TLS on `listener` (through [`front`]).
pub fn serve<S: HubStore>(
    hub: Arc<Hub<S>>,
    listener: std::net::TcpListener,
    tls: &tls::ServerTls,
) -> std::io::Result<Running> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    if let Some(mut changes) = hub.store().changes() {
        // Other hubs' writes wake this hub's long-polls.
        let hub = Arc::downgrade(&hub);
        tokio::spawn(async move {
            loop {
                let change = changes.recv().await;
                let Some(hub) = hub.upgrade() else { return };
                match change {
                    Ok(store::Change::Host(host)) => hub.changed(&host),
                    Ok(store::Change::All)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        hub.changed_all();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let grace = Arc::new(std::sync::Mutex::new(std::time::Duration::ZERO));
    let join = tokio::spawn(front::accept_loop(
        listener,
        acceptor,
        router(hub),
        stop_rx,
        Arc::clone(&grace),
    ));
    Ok(Running {
        addr,
        stop,
        grace,
        join,
    })
}
