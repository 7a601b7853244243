//! The agent's Prometheus metrics, served at `[metrics] listen` (`GET /metrics`).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `castellan_agent_reconcile_passes_total` | counter | `side` (`guests`, `containers`) | passes over the node (resyncs) and over the containers |
//! | `castellan_agent_audit_records_total` | counter | `event` | audit records, by event |
//! | `castellan_agent_gate_decisions_total` | counter | `decision`, `reason` | `allowed` (benign), `pending` (held for a signature), `accepted` (a signed op verified), `rejected` (by reason) |
//! | `castellan_agent_actions_total` | counter | `op`, `outcome` | actions carried out: `succeeded`, `failed`, `rolled_back` |
//! | `castellan_agent_ops_settled_total` | counter | `to` (`done`, `rejected`) | signed ops moved out of the inbox (a replay of an executed op goes to `done`) |
//! | `castellan_agent_queue_depth` | gauge | | guests queued, in flight or backing off |
//! | `castellan_agent_pending_signatures` | gauge | | destructive actions held for a signature |
//! | `castellan_agent_errors` | gauge | | errors in the agent's current state |
//! | `castellan_agent_hub_connected` | gauge | | 1 while the hub answers, 0 while it does not (absent without a hub) |
//! | `castellan_agent_desired_revision` | gauge | | the hub revision in force (absent without a hub) |
//!
//! The audit-derived counters are read from the audit log itself (a follower tails it
//! through a read-only connection), so they count every decision ever recorded in this
//! data directory, across restarts, and can never disagree with the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use castellan_store::{AuditEvent, AuditRecord};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// `side`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabels {
    /// `guests` or `containers`.
    pub side: &'static str,
}

/// `event`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The audit event's kind.
    pub event: &'static str,
}

/// `decision`, `reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allowed`, `pending`, `accepted`, `rejected`.
    pub decision: &'static str,
    /// For a rejection, why (`unknown_signer`, `replayed`, ...); empty otherwise.
    pub reason: &'static str,
}

/// `op`, `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The operation (`destroy`, `update_config`, ...).
    pub op: String,
    /// `succeeded`, `failed`, `rolled_back`.
    pub outcome: &'static str,
}

/// `to`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SettledLabels {
    /// `done` or `rejected`.
    pub to: &'static str,
}

/// Every metric the agent keeps.
#[derive(Debug)]
pub struct AgentMetrics {
    /// Reconcile passes by side.
    pub passes: Family<SideLabels, Counter>,
    audit_records: Family<EventLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    settled: Family<SettledLabels, Counter>,
    queue_depth: Gauge,
    pending: Gauge,
    errors: Gauge,
    /// 1 while the hub answers.
    pub hub_connected: Gauge,
    /// The hub revision in force.
    pub desired_revision: Gauge,
    with_hub: std::sync::atomic::AtomicBool,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics {
            passes: Family::default(),
            audit_records: Family::default(),
            decisions: Family::default(),
            actions: Family::default(),
            settled: Family::default(),
            queue_depth: Gauge::default(),
            pending: Gauge::default(),
            errors: Gauge::default(),
            hub_connected: Gauge::default(),
            desired_revision: Gauge::default(),
            with_hub: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl AgentMetrics {
    /// Counts one reconcile pass.
    pub fn pass(&self, side: &'static str) {
        self.passes.get_or_create(&SideLabels { side }).inc();
    }

    /// Marks the agent as following a hub (its gauges are then exported).
    pub fn follow_hub(&self) {
        self.with_hub
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts what one audit record says.
    pub fn observe(&self, r: &AuditRecord) {
        self.audit_records
            .get_or_create(&EventLabels {
                event: r.event.kind(),
            })
            .inc();
        let decision = |decision: &'static str, reason: &'static str| {
            self.decisions
                .get_or_create(&DecisionLabels { decision, reason })
                .inc();
        };
        let action = |outcome: &'static str| {
            self.actions
                .get_or_create(&ActionLabels {
                    op: r.fields.op.clone().unwrap_or_default(),
                    outcome,
                })
                .inc();
        };
        match &r.event {
            AuditEvent::ActionAllowed => decision("allowed", ""),
            AuditEvent::SignaturePending => decision("pending", ""),
            AuditEvent::SignatureAccepted => decision("accepted", ""),
            AuditEvent::OpRejected { reason, .. } => decision("rejected", reason.as_str()),
            AuditEvent::ActionSucceeded => action("succeeded"),
            AuditEvent::ActionFailed { .. } => action("failed"),
            AuditEvent::ActionRolledBack { .. } => action("rolled_back"),
            AuditEvent::OpSettled { to, .. } => {
                let to = match to.as_str() {
                    "done" => "done",
                    "rejected" => "rejected",
                    _ => "other",
                };
                self.settled.get_or_create(&SettledLabels { to }).inc();
            }
            _ => {}
        }
    }

    /// The text exposition, the state gauges set from `status`.
    pub fn render(&self, status: &crate::status::Snapshot) -> String {
        let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.queue_depth.set(gauge(status.guests_busy.len()));
        let container_pending = status.containers.as_ref().map_or(0, |c| c.pending.len());
        self.pending.set(gauge(
            status.guest_pending.len() + status.node_pending.len() + container_pending,
        ));
        let errors = status.guest_errors.len()
            + usize::from(status.node_error.is_some())
            + usize::from(status.desired_refused.is_some())
            + status.containers.as_ref().map_or(0, |c| c.failed.len());
        self.errors.set(gauge(errors));
        let mut registry = Registry::default();
        registry.register(
            "castellan_agent_reconcile_passes",
            "Reconcile passes, by side",
            self.passes.clone(),
        );
        registry.register(
            "castellan_agent_audit_records",
            "Audit records in this data directory, by event",
            self.audit_records.clone(),
        );
        registry.register(
            "castellan_agent_gate_decisions",
            "Gate decisions: allowed (benign), pending (held for a signature), accepted (a signed op verified), rejected (by reason)",
            self.decisions.clone(),
        );
        registry.register(
            "castellan_agent_actions",
            "Actions carried out, by operation and outcome",
            self.actions.clone(),
        );
        registry.register(
            "castellan_agent_ops_settled",
            "Signed ops moved out of the inbox, by where they went",
            self.settled.clone(),
        );
        registry.register(
            "castellan_agent_queue_depth",
            "Guests queued, in flight or backing off",
            self.queue_depth.clone(),
        );
        registry.register(
            "castellan_agent_pending_signatures",
            "Destructive actions held for a signature",
            self.pending.clone(),
        );
        registry.register(
            "castellan_agent_errors",
            "Errors in the agent's current state",
            self.errors.clone(),
        );
        if self.with_hub.load(std::sync::atomic::Ordering::Relaxed) {
            registry.register(
                "castellan_agent_hub_connected",
                "1 while the hub answers",
                self.hub_connected.clone(),
            );
            registry.register(
                "castellan_agent_desired_revision",
                "The hub revision in force",
                self.desired_revision.clone(),
            );
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// How often the audit log is read for new records.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Counts every audit record of the data directory into `metrics`, then follows the log.
pub async fn follow_audit(
    data_dir: PathBuf,
    metrics: Arc<AgentMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = 1u64;
    loop {
        let more = read_batch(&data_dir, next, &metrics).await;
        let full = match more {
            Ok((n, seen)) => {
                next = n;
                seen == BATCH
            }
            Err(e) => {
                tracing::debug!(event = "metrics_audit_unreadable", error = %e);
                false
            }
        };
        if !full {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

const BATCH: usize = 1000;

async fn read_batch(
    data_dir: &Path,
    next: u64,
    metrics: &Arc<AgentMetrics>,
) -> Result<(u64, usize), String> {
    let dir = data_dir.to_owned();
    let metrics = Arc::clone(metrics);
    tokio::task::spawn_blocking(move || {
        let store = castellan_store::Store::open_readonly(&dir).map_err(|e| e.to_string())?;
        let records = store
            .audit_records(next, BATCH)
            .map_err(|e| e.to_string())?;
        let mut n = next;
        for r in &records {
            metrics.observe(r);
            n = r.seq + 1;
        }
        Ok((n, records.len()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<AgentMetrics>,
    keeper: Arc<crate::gatekeeper::Gatekeeper>,
    mut stop: watch::Receiver<bool>,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, keeper) = (Arc::clone(&metrics), Arc::clone(&keeper));
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(&keeper.status().get()),
                )
            }
        }),
    );
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(event = "metrics_server_failed", error = %e);
    }
}
