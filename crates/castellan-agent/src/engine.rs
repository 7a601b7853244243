//! The reconcile engine: a level-triggered loop over the per-guest queue.
//!
//! Each reconcile of a guest reads the *latest* desired state and a fresh observation of
//! that one guest, plans, executes the first action, and repeats until the guest has
//! nothing left to do (or a step limit, so one guest cannot monopolise a slot). Between
//! actions it re-observes, so a configuration write is always conditional on the digest
//! just read and a concurrent change is never overwritten.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use castellan_core::Normalizers;
use castellan_core::model::{DesiredState, Vmid};
use castellan_core::plan::{NoticeKind, Plan, plan, plan_guest, plan_missing};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::{FailureClass, GuestBackend};
use crate::config::Tuning;
use crate::gatekeeper::{DestructiveOutcome, Gatekeeper};

/// How often the inbox is checked for new signed ops.
const INBOX_POLL: Duration = Duration::from_millis(500);
use crate::observe::{list_node, observe_node};
use crate::scheduler::{Finished, Scheduler};

/// Run until shut down, or until converged / nothing more can be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep reconciling, resync periodically.
    Continuous,
    /// Reconcile until every guest is done or given up, then report.
    Once,
}

/// One action the agent executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The guest.
    pub vmid: Vmid,
    /// What was done: a benign action kind (`set_config`, `start`, ...) or a signed
    /// destructive operation (`destroy`).
    pub kind: String,
    /// Why.
    pub reason: String,
    /// Warnings the task reported.
    pub warnings: u32,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Actions executed, in completion order.
    pub applied: Vec<Applied>,
    /// Guests given up on, with their last error.
    pub failed: BTreeMap<Vmid, String>,
    /// Failures of the node as a whole (crash recovery, observing the node), which stopped
    /// the run; never keyed by a vmid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_failed: Vec<String>,
    /// The plan against the node as observed at the end (`--once`), or `None`.
    pub final_plan: Option<Plan>,
    /// The host's containers, when the agent manages its Docker Engine: the last pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<crate::containers::ContainerPass>,
    /// Signed operations on the node's storages (wipes) carried out: target, operation,
    /// why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_applied: Vec<(String, String, String)>,
    /// Signed operations on the node's storages that failed at their last attempt, by
    /// target, with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_failed: BTreeMap<String, String>,
}

impl RunReport {
    /// Whether the node converged: no failures, nothing left to do, nothing blocking.
    pub fn converged(&self) -> bool {
        self.failed.is_empty()
            && self.node_failed.is_empty()
            && self.storage_failed.is_empty()
            && self.final_plan.as_ref().is_some_and(Plan::converged)
            && self
                .containers
                .as_ref()
                .is_none_or(crate::containers::ContainerPass::converged)
    }

    /// Why the run did not converge, one line per reason.
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .node_failed
            .iter()
            .map(|e| format!("node: {e}"))
            .collect();
        out.extend(
            self.failed
                .iter()
                .map(|(v, e)| format!("{v}: gave up: {e}")),
        );
        out.extend(
            self.storage_failed
                .iter()
                .map(|(t, e)| format!("{t}: failed: {e}")),
        );
        if let Some(p) = &self.final_plan {
            for a in &p.actions {
                out.push(format!(
                    "{}: {} still needed ({})",
                    a.vmid,
                    a.kind.as_str(),
                    a.reason
                ));
            }
            for n in p.notices.iter().filter(|n| n.blocks_convergence()) {
                out.push(n.to_string());
            }
            for n in &p.storage_notices {
                out.push(n.to_string());
            }
            for d in &p.destructive {
                out.push(format!(
                    "{}: {} pending a signed op (bound to state digest {})",
                    d.target.id(),
                    d.op,
                    d.state_digest
                ));
            }
        }
        out
    }
}

enum GuestOutcome {
    Done,
    Requeue,
    Failed(String),
}

/// The engine: one per node.
pub struct Engine<B: GuestBackend> {
    backend: Arc<B>,
    keeper: Arc<Gatekeeper>,
    desired: watch::Receiver<Arc<DesiredState>>,
    norm: Normalizers,
    tuning: Tuning,
}

impl<B: GuestBackend> std::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl<B: GuestBackend> Engine<B> {
    /// An engine over `backend`, following `desired`.
    pub fn new(
        backend: Arc<B>,
        keeper: Arc<Gatekeeper>,
        desired: watch::Receiver<Arc<DesiredState>>,
        norm: Normalizers,
        tuning: Tuning,
    ) -> Self {
        Engine {
            backend,
            keeper,
            desired,
            norm,
            tuning,
        }
    }

    /// Runs until `shutdown` resolves (or, in [`Mode::Once`], until done). Crash recovery
    /// runs first, before anything new is mutated; in-flight reconciles finish their
    /// current action before the engine returns.
    pub async fn run(mut self, mode: Mode, shutdown: impl Future<Output = ()>) -> RunReport {
        let t = self.tuning;
        let mut report = RunReport::default();
        match self.keeper.recover(&*self.backend).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(event = "recovery_completed", intents = n),
            Err(e) => {
                // Nothing new may run while the journal holds unsettled intents.
                tracing::error!(event = "recovery_failed", error = %e);
                report
                    .node_failed
                    .push(format!("crash recovery failed: {e}"));
                return report;
            }
        }
        let mut inbox_stamp = self.keeper.inbox_stamp().await;
        let mut inbox_tick = tokio::time::interval(INBOX_POLL);
        inbox_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sched = Scheduler::new(
            Duration::from_millis(t.backoff_base_ms),
            Duration::from_secs(t.backoff_max_secs),
            (mode == Mode::Once).then_some(t.once_attempts),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut joins: JoinSet<(Vmid, GuestOutcome, Vec<Applied>)> = JoinSet::new();
        let resync_every = Duration::from_secs(t.resync_secs);
        let mut next_resync = Instant::now();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopping = false;
        // A failed resync (node unreachable) in --once mode counts against an attempt budget
        // like a guest would.
        let mut resync_failures = 0u32;
        // Whether the next resync follows a new desired state or a new signed op: then it
        // cancels back-offs. The periodic one does not, or a failing guest's back-off
        // could never grow past the resync interval.
        let mut urgent = false;

        loop {
            if !stopping && Instant::now() >= next_resync {
                let was_urgent = std::mem::take(&mut urgent);
                match self.resync(&mut sched, was_urgent).await {
                    Ok(storage_ops) => {
                        self.storage_ops(&storage_ops, &mut report).await;
                        self.keeper.status().metrics().pass("guests");
                        resync_failures = 0;
                        next_resync = Instant::now() + resync_every;
                    }
                    Err(e) => {
                        // Still urgent for the retry.
                        urgent |= was_urgent;
                        resync_failures += 1;
                        tracing::error!(event = "resync_failed", error = %e);
                        self.keeper
                            .status()
                            .update(|s| s.node_error = Some(format!("cannot list the node: {e}")));
                        if mode == Mode::Once && resync_failures >= t.once_attempts {
                            report
                                .node_failed
                                .push(format!("cannot observe the node: {e}"));
                            break;
                        }
                        next_resync = Instant::now()
                            + crate::scheduler::backoff(
                                Duration::from_millis(t.backoff_base_ms),
                                Duration::from_secs(t.backoff_max_secs),
                                resync_failures,
                                0,
                            );
                    }
                }
            }
            if !stopping {
                let free = t.max_parallel.saturating_sub(sched.in_flight());
                for vmid in sched.take_ready(Instant::now(), free) {
                    let backend = Arc::clone(&self.backend);
                    let keeper = Arc::clone(&self.keeper);
                    let desired = self.desired.clone();
                    let norm = self.norm;
                    let stop = Arc::clone(&stop);
                    let steps = t.max_steps;
                    joins.spawn(async move {
                        let mut applied = Vec::new();
                        let outcome = reconcile_guest(
                            &*backend,
                            &keeper,
                            &desired,
                            &norm,
                            vmid,
                            steps,
                            &stop,
                            &mut applied,
                        )
                        .await;
                        (vmid, outcome, applied)
                    });
                }
            }
            let busy = sched.busy();
            self.keeper.status().update(|s| {
                s.guests_busy = busy;
                s.guest_errors.retain(|v, _| s.guests_busy.contains(v));
            });
            if mode == Mode::Once && sched.idle() && resync_failures == 0 {
                break;
            }
            if stopping && joins.is_empty() {
                break;
            }
            let wake = sched
                .next_wakeup()
                .into_iter()
                .chain((mode == Mode::Continuous || resync_failures > 0).then_some(next_resync))
                .min();
            let sleep = tokio::time::sleep_until(
                wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                Some(joined) = joins.join_next(), if !joins.is_empty() => {
                    match joined {
                        Ok((vmid, outcome, applied)) => {
                            report.applied.extend(applied);
                            let finished = match outcome {
                                GuestOutcome::Done => Finished::Done,
                                GuestOutcome::Requeue => Finished::Requeue,
                                GuestOutcome::Failed(e) => {
                                    tracing::warn!(event = "guest_failed", vmid, error = %e, failures = sched.failures(vmid) + 1);
                                    Finished::Failed(e)
                                }
                            };
                            self.keeper.status().update(|s| match &finished {
                                Finished::Failed(e) => {
                                    s.guest_errors.insert(vmid, e.clone());
                                }
                                _ => {
                                    s.guest_errors.remove(&vmid);
                                }
                            });
                            sched.finish(vmid, finished, Instant::now());
                        }
                        Err(e) => tracing::error!(event = "reconcile_panicked", error = %e),
                    }
                }
                changed = self.desired.changed(), if !stopping => {
                    if changed.is_err() {
                        // The desired-state source is gone: nothing more will change.
                        stopping = mode == Mode::Continuous;
                    } else {
                        tracing::info!(event = "desired_state_changed");
                        next_resync = Instant::now();
                        urgent = true;
                    }
                }
                _ = sleep => {}
                _ = inbox_tick.tick(), if !stopping && self.keeper.inbox().is_some() => {
                    let now = self.keeper.inbox_stamp().await;
                    if now != inbox_stamp {
                        tracing::info!(event = "inbox_changed");
                        inbox_stamp = now;
                        next_resync = Instant::now();
                        urgent = true;
                    }
                }
                _ = &mut shutdown, if !stopping => {
                    tracing::info!(event = "shutdown_requested", in_flight = joins.len());
                    stopping = true;
                    stop.store(true, Ordering::SeqCst);
                }
            }
        }
        report.failed.extend(sched.given_up());
        if mode == Mode::Once && report.node_failed.is_empty() {
            let desired = self.desired.borrow().clone();
            match observe_node(&self.backend, &desired, t.max_parallel).await {
                Ok(mut actual) => {
                    if let Err(e) = self.keeper.fill_restored(&desired, &mut actual).await {
                        report.node_failed.push(e.to_string());
                    }
                    report.final_plan = Some(plan(&desired, &actual, &self.norm));
                }
                Err(e) => {
                    report
                        .node_failed
                        .push(format!("cannot observe the node: {e}"));
                }
            }
        }
        report
    }

    /// Lists the node, reports candidates, and queues every desired guest present.
    /// Re-lists the node and queues every desired guest it holds; `urgent` (a new desired
    /// state or signed op) also cancels their back-offs.
    async fn resync(
        &mut self,
        sched: &mut Scheduler,
        urgent: bool,
    ) -> Result<Vec<crate::status::PendingAction>, crate::backend::BackendError> {
        let desired = self.desired.borrow_and_update().clone();
        let mut actual = if desired.decommission.is_some() {
            // A decommission names every guest with its digest, and the node's own storages.
            observe_node(&self.backend, &desired, self.tuning.max_parallel).await?
        } else {
            list_node(&*self.backend).await?
        };
        crate::observe::observe_storages(&*self.backend, &desired, &mut actual).await;
        // Only a declared guest the node lacks, with a source, may be provisioned: ask
        // the cluster then (and only then) which vmids other nodes have.
        let wants_provisioning = desired
            .guests
            .iter()
            .any(|(vmid, d)| d.source.is_some() && !actual.guests.contains_key(vmid));
        if wants_provisioning {
            // Without the cluster's answer the plan cannot report guests elsewhere; the
            // backend still asks the cluster about each vmid before creating it.
            match self.backend.elsewhere().await {
                Ok(e) => actual.elsewhere = e,
                Err(e) => tracing::warn!(event = "cluster_unreadable", error = %e),
            }
        }
        self.keeper.sweep().await;
        let overview = plan(&desired, &actual, &self.norm);
        self.keeper.status().update(|s| {
            s.guests_synced = true;
            s.node_error = None;
            // A guest gone, or no longer declared, has nothing pending any more.
            s.guest_pending
                .retain(|v, _| actual.guests.contains_key(v) && desired.guests.contains_key(v));
            s.guest_fields
                .retain(|v, (kind, _)| desired.guests.get(v).is_some_and(|d| d.kind == *kind));
        });
        for c in &overview.candidates {
            tracing::info!(event = "candidate_refused", vmid = c.vmid, candidate = ?c.kind, guest_type = %c.guest,
            "not acted on: {}", match c.kind {
                castellan_core::plan::CandidateKind::Destroy => "destroying a guest is destructive and needs a signed operation",
                castellan_core::plan::CandidateKind::Provisioning => "no source is declared to provision it from",
            });
        }
        let mut known = Vec::new();
        for (&vmid, d) in &desired.guests {
            if actual.guests.get(&vmid).is_some_and(|a| a.kind == d.kind) {
                sched.mark_dirty(vmid, urgent);
                known.push(vmid);
            }
        }
        // Declared guests to create: queued like the others, so that provisioning is
        // bounded by the same parallelism and backs off the same way.
        for a in overview
            .actions
            .iter()
            .filter(|a| a.kind == castellan_core::Operation::Provision)
        {
            sched.mark_dirty(a.vmid, urgent);
            known.push(a.vmid);
        }
        for n in overview.notices.iter().filter(|n| {
            matches!(
                n.kind,
                NoticeKind::KindMismatch { .. } | NoticeKind::ElsewhereInCluster { .. }
            )
        }) {
            tracing::warn!(event = "guest_skipped", vmid = n.vmid, "{n}");
        }
        for n in &overview.storage_notices {
            tracing::warn!(event = "wipe_held_back", "{n}");
        }
        tracing::debug!(
            event = "resynced",
            listed = actual.guests.len(),
            queued = known.len()
        );
        // Signed operations on the node's storages are the node's, not a guest's: the run
        // carries them out after the resync, one at a time.
        let node_ops: Vec<crate::status::PendingAction> = overview
            .destructive
            .into_iter()
            .filter(|d| d.target.as_guest().is_none())
            .map(|d| crate::status::PendingAction {
                takes: overview
                    .affects
                    .get(&d.target.to_string())
                    .cloned()
                    .unwrap_or_default(),
                action: d,
            })
            .collect();
        // What is no longer planned is no longer pending.
        self.keeper.status().update(|s| {
            s.node_pending.retain(|t, p| {
                node_ops
                    .iter()
                    .any(|o| o.action.target.to_string() == *t && o.action == p.action)
            });
        });
        Ok(node_ops)
    }

    /// Decides and, where approved, carries out the signed operations on the node's
    /// storages the last resync planned (storage wipes), one at a time.
    async fn storage_ops(&self, ops: &[crate::status::PendingAction], report: &mut RunReport) {
        for pending in ops {
            let d = &pending.action;
            let outcome = self.keeper.destructive(&*self.backend, d).await;
            self.keeper.status().update(|s| {
                if matches!(outcome, DestructiveOutcome::Pending { .. }) {
                    s.node_pending.insert(d.target.to_string(), pending.clone());
                } else {
                    s.node_pending.remove(&d.target.to_string());
                }
            });
            match outcome {
                DestructiveOutcome::Executed { signers, .. } => {
                    report.storage_failed.remove(&d.target.to_string());
                    report.storage_applied.push((
                        d.target.to_string(),
                        d.op.as_str().to_owned(),
                        format!("signed by {}", signers.join(", ")),
                    ));
                }
                DestructiveOutcome::Pending { payload } => {
                    tracing::info!(event = "signature_pending", target = %d.target, op = %d.op, payload = %payload.display());
                }
                DestructiveOutcome::Failed(e) => {
                    tracing::warn!(event = "signed_op_failed", target = %d.target, op = %d.op, error = %e);
                    report.storage_failed.insert(d.target.to_string(), e);
                }
            }
        }
    }
}

/// Puts `want` beside what the node has on the status board (the hub's host page).
fn show_fields(
    keeper: &Gatekeeper,
    want: &castellan_core::model::DesiredGuest,
    actual: Option<&castellan_core::model::ActualGuest>,
    p: &Plan,
) {
    let fields = castellan_core::compare::side_by_side(want, actual, p);
    keeper.status().update(|s| {
        s.guest_fields.insert(want.vmid, (want.kind, fields));
    });
}

/// Reconciles one guest: observe, plan, execute the first action, repeat.
#[allow(clippy::too_many_arguments)]
async fn reconcile_guest<B: GuestBackend>(
    backend: &B,
    keeper: &Gatekeeper,
    desired: &watch::Receiver<Arc<DesiredState>>,
    norm: &Normalizers,
    vmid: Vmid,
    max_steps: u32,
    stop: &AtomicBool,
    applied: &mut Vec<Applied>,
) -> GuestOutcome {
    for _ in 0..max_steps {
        if stop.load(Ordering::SeqCst) {
            return GuestOutcome::Done;
        }
        // The latest desired state, read now rather than when the guest was queued.
        let (want, node) = {
            let d = desired.borrow();
            (d.guests.get(&vmid).cloned(), d.node.clone())
        };
        let Some(want) = want else {
            return GuestOutcome::Done;
        };
        let mut p = Plan::default();
        match backend.observe(want.kind, vmid).await {
            Ok(Some(mut actual)) => {
                if want.restore_over.is_some() {
                    let target = castellan_core::Target::guest(actual.kind, vmid);
                    match keeper.last_restored(&target).await {
                        Ok(r) => actual.restored = r,
                        Err(e) => return GuestOutcome::Failed(format!("journal: {e}")),
                    }
                }
                plan_guest(&node, &want, &actual, norm, &mut p);
                show_fields(keeper, &want, Some(&actual), &p);
            }
            // Missing: provisioned if it has a source (the backend asks the cluster
            // first), otherwise the next resync reports it.
            Ok(None) => {
                plan_missing(&want, None, &mut p);
                show_fields(keeper, &want, None, &p);
            }
            Err(e) => return GuestOutcome::Failed(format!("observe: {e}")),
        }
        if let Some(n) = p
            .notices
            .iter()
            .find(|n| matches!(n.kind, NoticeKind::Locked { .. }))
        {
            return GuestOutcome::Failed(n.to_string());
        }
        if p.destructive.is_empty() {
            keeper.status().update(|s| {
                s.guest_pending.remove(&vmid);
            });
        }
        if let Some(d) = p.destructive.first() {
            let outcome = keeper.destructive(backend, d).await;
            keeper.status().update(|s| {
                if matches!(outcome, DestructiveOutcome::Pending { .. }) {
                    let takes = p
                        .affects
                        .get(&d.target.to_string())
                        .cloned()
                        .unwrap_or_default();
                    s.guest_pending.insert(
                        vmid,
                        crate::status::PendingAction {
                            action: d.clone(),
                            takes,
                        },
                    );
                } else {
                    s.guest_pending.remove(&vmid);
                }
            });
            return match outcome {
                DestructiveOutcome::Executed { signers, backup } => {
                    let mut reason = if signers.is_empty() {
                        "scratch recorded by this agent's journal".to_owned()
                    } else {
                        format!("signed by {}", signers.join(", "))
                    };
                    if let Some(b) = backup {
                        reason.push_str(&format!("; safety backup {b}"));
                    }
                    applied.push(Applied {
                        vmid,
                        kind: d.op.as_str().to_owned(),
                        reason,
                        warnings: 0,
                    });
                    GuestOutcome::Done
                }
                DestructiveOutcome::Pending { .. } => GuestOutcome::Done,
                DestructiveOutcome::Failed(e) => GuestOutcome::Failed(e),
            };
        }
        let Some(action) = p.actions.into_iter().next() else {
            for n in &p.notices {
                tracing::info!(event = "guest_notice", vmid, "{n}");
            }
            return GuestOutcome::Done;
        };
        let started = Instant::now();
        let done = if action.kind == castellan_core::Operation::Provision {
            keeper.provision(backend, &action).await
        } else {
            keeper.benign(backend, &action).await
        };
        match done {
            Ok(warnings) => {
                tracing::info!(
                    event = "action_applied", vmid, action = action.kind.as_str(),
                    reason = %action.reason, warnings, elapsed_ms = started.elapsed().as_millis() as u64
                );
                applied.push(Applied {
                    vmid,
                    kind: action.kind.as_str().to_owned(),
                    reason: action.reason,
                    warnings,
                });
            }
            Err(e) => match e.class {
                FailureClass::Conflict => {
                    tracing::info!(
                        event = "action_conflicted",
                        vmid,
                        action = action.kind.as_str(),
                        "configuration changed underneath; re-reading"
                    );
                }
                FailureClass::Gone => return GuestOutcome::Done,
                FailureClass::Retry | FailureClass::Unknown => {
                    tracing::warn!(event = "action_failed", vmid, action = action.kind.as_str(), error = %e);
                    return GuestOutcome::Failed(format!("{}: {e}", action.kind.as_str()));
                }
            },
        }
    }
    GuestOutcome::Requeue
}
