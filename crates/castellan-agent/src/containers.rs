//! The agent's Docker side: the declared containers of the desired state
//! (`[[container]]`, `[[volume]]`) converged through the same gatekeeper, journal and
//! audit log as guests.
//!
//! One pass observes every container and volume, plans with the pure container planner
//! (`castellan_docker::plan`), carries out the benign steps in order — each classified
//! again by the gatekeeper against what was observed, audited and journaled — and
//! re-plans, until nothing benign is left (or a round limit). Each destructive step (a
//! container that holds a volume removed, a volume removed) becomes a
//! [`DestructiveAction`] bound to the digest of its target as observed, and goes through
//! [`Gatekeeper::destructive`]: it waits for a signed op, and runs once when one is
//! accepted.

use std::collections::BTreeMap;

use castellan_core::gate::DestructiveAction;
use castellan_core::model::DesiredState;
use castellan_core::{Operation, Target};
use castellan_docker::{
    ContainerPlan, DockerBackend, ObservedContainer, ObservedVolume, Step, container_digest,
    volume_digest,
};
use serde::Serialize;

use crate::backend::BackendError;
use crate::gatekeeper::{DestructiveOutcome, Gatekeeper};

/// Re-plans after the benign steps of a round at most this many times in one pass.
const MAX_ROUNDS: usize = 4;

/// One operation the pass carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// What it acted on.
    pub target: Target,
    /// The operation.
    pub op: Operation,
    /// Why (the planner's reason, or who signed).
    pub reason: String,
}

/// What one pass did and what is left.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerPass {
    /// Operations carried out, in order.
    pub applied: Vec<Done>,
    /// Destructive operations waiting for a signed op, with the payload to sign.
    pub pending: Vec<(Target, Operation, String)>,
    /// What failed (a target, `kind/id`), and why.
    pub failed: Vec<(String, String)>,
    /// What the planner reported (containers castellan did not create, candidates).
    pub notices: Vec<String>,
    /// The plan as it stood at the end of the pass.
    pub last_plan: ContainerPlan,
}

impl ContainerPass {
    /// The pass in brief, for the agent's reports.
    pub fn summary(&self) -> crate::status::ContainerSummary {
        crate::status::ContainerSummary {
            converged: self.converged(),
            steps: self
                .last_plan
                .steps
                .iter()
                .map(|st| format!("container/{}: {} ({})", st.target, st.op, st.reason))
                .collect(),
            pending: self.pending.iter().map(|(_, _, p)| p.into()).collect(),
            failed: self.failed.clone(),
        }
    }

    /// Whether the host's containers are as declared: nothing left to do, sign or retry.
    pub fn converged(&self) -> bool {
        self.failed.is_empty() && self.last_plan.converged()
    }
}

fn holds_data(step: &Step, containers: &[ObservedContainer]) -> Option<bool> {
    let c = containers.iter().find(|c| c.name == step.target)?;
    match step.op {
        Operation::Recreate => Some(c.holds_anonymous()),
        Operation::Destroy => Some(c.holds_data()),
        _ => None,
    }
}

fn digest_of(
    step: &Step,
    containers: &[ObservedContainer],
    volumes: &[ObservedVolume],
) -> Option<String> {
    match step.op {
        Operation::RemoveVolume => volumes
            .iter()
            .find(|v| v.name == step.target)
            .map(volume_digest),
        _ => containers
            .iter()
            .find(|c| c.name == step.target)
            .map(container_digest),
    }
}

/// One pass over the host's declared containers (see the module docs).
pub async fn converge(
    backend: &DockerBackend,
    keeper: &Gatekeeper,
    desired: &DesiredState,
) -> Result<ContainerPass, BackendError> {
    let mut pass = ContainerPass::default();
    let mut given_up: Vec<String> = Vec::new();
    for round in 0..=MAX_ROUNDS {
        let (containers, volumes) = backend.observe_all().await?;
        let plan = castellan_docker::plan_desired(&desired.containers, &containers, &volumes);
        let todo: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| !given_up.contains(&s.target))
            .collect();
        if todo.is_empty() || round == MAX_ROUNDS {
            for n in &plan.notices {
                let text = n.to_string();
                tracing::info!(event = "container_notice", "{text}");
                pass.notices.push(text);
            }
            held(
                keeper,
                backend,
                desired,
                &plan,
                &containers,
                &volumes,
                &mut pass,
            )
            .await;
            let mut plan = plan;
            // What the gate carried out is no longer left to do.
            plan.held.retain(|s| {
                !pass
                    .applied
                    .iter()
                    .any(|d| d.op == s.op && d.target.id() == s.target)
            });
            pass.last_plan = plan;
            return Ok(pass);
        }
        for step in todo {
            let target = match step.target() {
                Ok(t) => t,
                Err(e) => {
                    given_up.push(step.target.clone());
                    pass.failed.push((step.target.clone(), e.to_string()));
                    continue;
                }
            };
            let done = keeper
                .benign_step(
                    target.clone(),
                    step.op,
                    holds_data(step, &containers),
                    &step.reason,
                    backend.apply(step),
                )
                .await;
            match done {
                Ok(()) => {
                    tracing::info!(event = "action_applied", %target, action = %step.op, reason = %step.reason);
                    pass.applied.push(Done {
                        target,
                        op: step.op,
                        reason: step.reason.clone(),
                    });
                }
                Err(e) => {
                    tracing::warn!(event = "action_failed", %target, action = %step.op, error = %e);
                    // Nothing more for this container in this pass.
                    given_up.push(step.target.clone());
                    pass.failed
                        .push((target.to_string(), format!("{}: {e}", step.op)));
                }
            }
        }
    }
    Ok(pass)
}

/// Hands each destructive step of `plan` to the gate.
async fn held(
    keeper: &Gatekeeper,
    backend: &DockerBackend,
    desired: &DesiredState,
    plan: &ContainerPlan,
    containers: &[ObservedContainer],
    volumes: &[ObservedVolume],
    pass: &mut ContainerPass,
) {
    for step in &plan.held {
        let Ok(target) = step.target() else { continue };
        if !step.op.spec().executable {
            let text = format!(
                "{target}: {} would lose data ({}) and needs a signed op, which this version does not carry out",
                step.op, step.reason
            );
            tracing::warn!(event = "container_notice", "{text}");
            pass.notices.push(text);
            continue;
        }
        let Some(state_digest) = digest_of(step, containers, volumes) else {
            continue;
        };
        let action = DestructiveAction {
            op: step.op,
            host: desired.node.clone(),
            target: target.clone(),
            params: BTreeMap::new(),
            state_digest,
        };
        match keeper.destructive(backend, &action).await {
            DestructiveOutcome::Executed { signers, .. } => {
                pass.applied.push(Done {
                    target,
                    op: step.op,
                    reason: format!("signed by {}", signers.join(", ")),
                });
            }
            DestructiveOutcome::Pending { payload } => {
                pass.pending
                    .push((target, step.op, payload.display().to_string()));
            }
            DestructiveOutcome::Failed(e) => pass.failed.push((target.to_string(), e)),
        }
    }
}

/// How often the inbox is checked for new signed ops between passes.
const INBOX_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs the container side until `stop` turns true (or, in [`crate::Mode::Once`], for
/// one pass): crash recovery of the intents on containers and volumes first, then a pass
/// at start, on every new desired state, on every change of the inbox and every
/// `resync` otherwise. `alone` (no guest engine runs beside it): its recovery audits the
/// agent's start, and it sweeps the inbox before each pass. Returns the last pass, or why the
/// container side could not go on (its crash recovery failed: nothing new runs then, as
/// for guests).
pub async fn run(
    backend: DockerBackend,
    keeper: std::sync::Arc<Gatekeeper>,
    mut desired: tokio::sync::watch::Receiver<std::sync::Arc<DesiredState>>,
    mode: crate::Mode,
    resync: std::time::Duration,
    alone: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<ContainerPass, String> {
    // On a host without guests this is the agent's start (audited once, here).
    let recovered = if alone {
        keeper.recover(&backend).await
    } else {
        keeper.recover_served(&backend).await
    };
    match recovered {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            event = "recovery_completed",
            intents = n,
            backend = "docker"
        ),
        Err(e) => {
            tracing::error!(event = "recovery_failed", backend = "docker", error = %e);
            return Err(format!("crash recovery failed: {e}"));
        }
    }
    let mut inbox_stamp = keeper.inbox_stamp().await;
    loop {
        let want = desired.borrow_and_update().clone();
        if alone {
            // No guest engine on this host: the inbox's settled, replayed and
            // unmatched ops are swept here.
            keeper.sweep().await;
        }
        let pass = match converge(&backend, &keeper, &want).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(event = "resync_failed", backend = "docker", error = %e);
                if mode == crate::Mode::Once {
                    return Err(format!("cannot observe the Docker Engine: {e}"));
                }
                ContainerPass {
                    failed: vec![("docker".into(), e.to_string())],
                    ..ContainerPass::default()
                }
            }
        };
        keeper.status().metrics().pass("containers");
        keeper
            .status()
            .update(|s| s.containers = Some(pass.summary()));
        if mode == crate::Mode::Once || *stop.borrow() {
            return Ok(pass);
        }
        let next = tokio::time::Instant::now() + resync;
        loop {
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        return Ok(pass);
                    }
                    break;
                }
                _ = stop.changed() => return Ok(pass),
                () = tokio::time::sleep_until(next) => break,
                () = tokio::time::sleep(INBOX_POLL), if keeper.inbox().is_some() => {
                    let now = keeper.inbox_stamp().await;
                    if now != inbox_stamp {
                        inbox_stamp = now;
                        break;
                    }
                }
            }
        }
    }
}
