//! The hub's Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `castellan_hub_requests_total` | counter | `route`, `code` | requests answered, by route template and status |
//! | `castellan_hub_long_polls` | gauge | | agents holding a long-poll open now (connected agents) |
//! | `castellan_hub_poll_answers_total` | counter | `answer` (`news`, `idle`) | long-polls answered with something new, or at the end of their wait |
//! | `castellan_hub_revisions_total` | counter | | desired-state revisions written |
//! | `castellan_hub_ops_relayed_total` | counter | | signed ops taken for relay |
//! | `castellan_hub_reports_total` | counter | | agent reports stored |
//! | `castellan_hub_enrolments_total` | counter | `outcome` (`enrolled`, `refused`, `limited`) | enrolment attempts |
//! | `castellan_hub_audit_records_total` | counter | | audit records verified and stored |
//! | `castellan_hub_audit_refused_total` | counter | `kind` (`gap`, `fork`, `rewind`, `invalid`) | audit uploads refused |
//! | `castellan_hub_hosts` | gauge | `state` | hosts by state, as `castellan status` shows them (read at scrape) |
//! | `castellan_hub_host_revision_lag` | gauge | `host` | how many revisions a host is behind its latest (read at scrape) |
//!
//! Counters count what this hub process did since it started; the gauges read at scrape
//! describe the whole fleet in the database.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::proto::HostStatus;

/// `route`, `code`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/hosts/{host}/desired`), or `unmatched`.
    pub route: String,
    /// The HTTP status.
    pub code: u16,
}

/// One label, `name="value"`, under a fixed name per family.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    /// `news` or `idle`.
    pub answer: &'static str,
}

/// `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What came of it.
    pub outcome: &'static str,
}

/// `kind`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: &'static str,
}

/// `state`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The host state.
    pub state: String,
}

/// `host`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The host.
    pub host: String,
}

/// Every metric the hub keeps.
#[derive(Debug)]
pub struct HubMetrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Long-polls open now.
    pub long_polls: Gauge,
    /// Long-polls answered, by answer.
    pub poll_answers: Family<AnswerLabels, Counter>,
    /// Revisions written.
    pub revisions: Counter,
    /// Ops taken for relay.
    pub ops_relayed: Counter,
    /// Reports stored.
    pub reports: Counter,
    /// Enrolments by outcome.
    pub enrolments: Family<OutcomeLabels, Counter>,
    /// Audit records stored.
    pub audit_records: Counter,
    /// Audit uploads refused, by kind.
    pub audit_refused: Family<KindLabels, Counter>,
    hosts: Family<StateLabels, Gauge>,
    lag: Family<HostLabels, Gauge>,
    /// Serialises scrapes (the fleet gauges are reset and refilled per scrape).
    scrape: Mutex<()>,
}

impl Default for HubMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = HubMetrics {
            requests: Family::default(),
            long_polls: Gauge::default(),
            poll_answers: Family::default(),
            revisions: Counter::default(),
            ops_relayed: Counter::default(),
            reports: Counter::default(),
            enrolments: Family::default(),
            audit_records: Counter::default(),
            audit_refused: Family::default(),
            hosts: Family::default(),
            lag: Family::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "castellan_hub_requests",
            "Requests answered, by route template and status",
            m.requests.clone(),
        );
        registry.register(
            "castellan_hub_long_polls",
            "Agents holding a long-poll open now",
            m.long_polls.clone(),
        );
        registry.register(
            "castellan_hub_poll_answers",
            "Long-polls answered with something new (news) or at the end of their wait (idle)",
            m.poll_answers.clone(),
        );
        registry.register(
            "castellan_hub_revisions",
            "Desired-state revisions written",
            m.revisions.clone(),
        );
        registry.register(
            "castellan_hub_ops_relayed",
            "Signed ops taken for relay",
            m.ops_relayed.clone(),
        );
        registry.register(
            "castellan_hub_reports",
            "Agent reports stored",
            m.reports.clone(),
        );
        registry.register(
            "castellan_hub_enrolments",
            "Enrolment attempts by outcome",
            m.enrolments.clone(),
        );
        registry.register(
            "castellan_hub_audit_records",
            "Audit records verified and stored",
            m.audit_records.clone(),
        );
        registry.register(
            "castellan_hub_audit_refused",
            "Audit uploads refused, by problem kind",
            m.audit_refused.clone(),
        );
        registry.register(
            "castellan_hub_hosts",
            "Hosts by state (read from the database at scrape)",
            m.hosts.clone(),
        );
        registry.register(
            "castellan_hub_host_revision_lag",
            "Revisions a host is behind its latest (read from the database at scrape)",
            m.lag.clone(),
        );
        HubMetrics { registry, ..m }
    }
}

impl HubMetrics {
    /// The text exposition of every metric, the fleet gauges set from `hosts`.
    pub fn render(&self, hosts: &[HostStatus]) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.hosts.clear();
        self.lag.clear();
        for state in ["converged", "drifting", "pending", "error", "unknown"] {
            self.hosts
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(0);
        }
        for h in hosts {
            let state = h.state.as_str().to_owned();
            self.hosts.get_or_create(&StateLabels { state }).inc();
            if let Some(latest) = h.desired_revision {
                let behind = latest.saturating_sub(h.applied_revision.unwrap_or(0));
                self.lag
                    .get_or_create(&HostLabels {
                        host: h.host.clone(),
                    })
                    .set(i64::try_from(behind).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts one open long-poll while it lives.
#[derive(Debug)]
pub struct OpenPoll<'a>(&'a Gauge);

impl<'a> OpenPoll<'a> {
    /// Counts a long-poll as open.
    pub fn new(g: &'a Gauge) -> Self {
        g.inc();
        OpenPoll(g)
    }
}

impl Drop for OpenPoll<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
