//! The container planner: declared containers against observed ones, as operations of the
//! operation table, each classified by its row and by what was observed of its target.
//! Pure: no I/O, no clock.
//!
//! Rules:
//! - A declared container that does not exist is provisioned (created, then started when
//!   it should run).
//! - One that exists but is not castellan's for this host is reported and never touched.
//! - One whose declaration hash differs from the one in its labels is re-created (then
//!   started when it should run). Re-creation keeps named volumes (they are mounted again
//!   by name) but loses anonymous ones, so it is benign only when the container has none.
//! - Otherwise its run state is converged: started, or shut down cleanly.
//! - One declared absent is removed: benign when it mounts no volume, destructive
//!   otherwise (it waits for a signed op). A volume declared absent is always destructive.
//! - A container of castellan's that is not declared at all is a candidate: reported,
//!   never acted on (as with guests).
//!
//! A container's own writable layer is not counted as data: containers are re-created
//! from their declaration on drift (as Compose does), so what is worth keeping lives in
//! a volume, and what decides whether removing or re-creating one loses data is the
//! volumes it mounts.

use castellan_core::classify::{Class, classify_target};
use castellan_core::model::DesiredContainers;
use castellan_core::{Operation, Target};
use serde::Serialize;

use crate::client::{ObservedContainer, ObservedVolume};
use castellan_core::container::ContainerSpec;

/// One operation on one container or volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The container's (or volume's) name.
    pub target: String,
    /// What to do: a row of the operation table.
    pub op: Operation,
    /// The declaration to create it from (provision and re-create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<ContainerSpec>,
    /// The id of the container observed when the step was planned: a removal (destroy,
    /// re-create) acts on that container only.
    #[serde(skip)]
    pub observed_id: Option<String>,
    /// Why, for people.
    pub reason: String,
}

/// Why something is reported rather than acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// It exists but castellan did not create it for this host.
    NotOurs {
        /// Its name.
        target: String,
    },
    /// castellan's, but no longer declared: would need removing.
    Candidate {
        /// Its name.
        target: String,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::NotOurs { target } => write!(
                f,
                "{target}: exists but castellan did not create it for this host; never touched"
            ),
            Notice::Candidate { target } => write!(
                f,
                "{target}: castellan's but no longer declared; declare it absent to remove it"
            ),
        }
    }
}

/// What converging the declared containers takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ContainerPlan {
    /// Benign steps, in order: carried out on the declaration's word.
    pub steps: Vec<Step>,
    /// Destructive steps: each waits for a signed op.
    pub held: Vec<Step>,
    /// What is reported.
    pub notices: Vec<Notice>,
}

impl Step {
    /// What it acts on: the volume for `remove_volume`, the container otherwise.
    pub fn target(&self) -> Result<Target, castellan_core::target::TargetError> {
        match self.op {
            Operation::RemoveVolume => Target::volume(&self.target),
            _ => Target::container(&self.target),
        }
    }
}

impl ContainerPlan {
    /// Whether nothing is left to do or to sign.
    pub fn converged(&self) -> bool {
        self.steps.is_empty() && self.held.is_empty()
    }

    fn push(&mut self, step: Step, holds_data: Option<bool>) {
        match classify_target(step.op, &[], holds_data, None, None).class {
            Class::Benign => self.steps.push(step),
            Class::Destructive => self.held.push(step),
        }
    }
}

/// Plans a host's desired containers (`[[container]]`, `[[volume]]`) against what was
/// observed: [`plan`] over the desired state's declarations.
pub fn plan_desired(
    desired: &DesiredContainers,
    observed: &[ObservedContainer],
    volumes: &[ObservedVolume],
) -> ContainerPlan {
    let declared: Vec<ContainerSpec> = desired.declared.values().cloned().collect();
    let absent: Vec<String> = desired.absent.iter().cloned().collect();
    let absent_volumes: Vec<String> = desired.absent_volumes.iter().cloned().collect();
    plan(&declared, &absent, &absent_volumes, observed, volumes)
}

/// Plans `declared` containers (and the containers and volumes declared `absent`)
/// against what was `observed`.
pub fn plan(
    declared: &[ContainerSpec],
    absent: &[String],
    absent_volumes: &[String],
    observed: &[ObservedContainer],
    volumes: &[ObservedVolume],
) -> ContainerPlan {
    let mut out = ContainerPlan::default();
    let find = |name: &str| observed.iter().find(|c| c.name == name);
    let declared_names: std::collections::BTreeSet<&str> =
        declared.iter().map(|s| s.name.as_str()).collect();
    let absent_names: std::collections::BTreeSet<&str> =
        absent.iter().map(String::as_str).collect();
    let mut declared: Vec<&ContainerSpec> = declared.iter().collect();
    declared.sort_by(|a, b| a.name.cmp(&b.name));
    for spec in declared {
        let seen = find(&spec.name);
        let step = |op: Operation, with_spec: bool, reason: &str| Step {
            target: spec.name.clone(),
            op,
            spec: with_spec.then(|| spec.clone()),
            observed_id: seen.map(|c| c.id.clone()),
            reason: reason.to_owned(),
        };
        let Some(c) = seen else {
            out.push(step(Operation::Provision, true, "declared, absent"), None);
            if spec.running {
                out.push(step(Operation::Start, false, "run stopped->running"), None);
            }
            continue;
        };
        if !c.ours {
            out.notices.push(Notice::NotOurs {
                target: c.name.clone(),
            });
            continue;
        }
        if c.spec_hash.as_deref() != Some(spec.spec_hash().as_str()) {
            // Named volumes are mounted again by name; anonymous ones would be lost.
            out.push(
                step(Operation::Recreate, true, "declaration changed"),
                Some(c.holds_anonymous()),
            );
            if spec.running {
                out.push(step(Operation::Start, false, "run stopped->running"), None);
            }
            continue;
        }
        match (spec.running, c.running) {
            (true, false) => out.push(step(Operation::Start, false, "run stopped->running"), None),
            (false, true) => out.push(
                step(Operation::Shutdown, false, "run running->stopped"),
                None,
            ),
            _ => {}
        }
    }
    let mut absent: Vec<&String> = absent.iter().collect();
    absent.sort();
    for name in absent {
        match find(name) {
            None => {}
            Some(c) if !c.ours => out.notices.push(Notice::NotOurs {
                target: c.name.clone(),
            }),
            Some(c) => out.push(
                Step {
                    target: c.name.clone(),
                    op: Operation::Destroy,
                    spec: None,
                    observed_id: Some(c.id.clone()),
                    reason: "declared absent".into(),
                },
                Some(c.holds_data()),
            ),
        }
    }
    let mut absent_volumes: Vec<&String> = absent_volumes.iter().collect();
    absent_volumes.sort();
    for name in absent_volumes {
        match volumes.iter().find(|v| v.name == *name) {
            None => {}
            Some(v) if !v.ours => out.notices.push(Notice::NotOurs {
                target: v.name.clone(),
            }),
            Some(v) => out.push(
                Step {
                    target: v.name.clone(),
                    op: Operation::RemoveVolume,
                    spec: None,
                    observed_id: None,
                    reason: "declared absent".into(),
                },
                Some(true),
            ),
        }
    }
    for c in observed {
        let mentioned =
            declared_names.contains(c.name.as_str()) || absent_names.contains(c.name.as_str());
        if c.ours && !mentioned {
            out.notices.push(Notice::Candidate {
                target: c.name.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::client::VolumeRef;

    fn seen(spec: &ContainerSpec, running: bool, volumes: &[(&str, bool)]) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{}", spec.name),
            name: spec.name.clone(),
            ours: true,
            spec_hash: Some(spec.spec_hash()),
            running,
            state: if running { "running" } else { "exited" }.into(),
            volumes: volumes
                .iter()
                .map(|(n, anonymous)| VolumeRef {
                    name: (*n).into(),
                    destination: "/data".into(),
                    anonymous: *anonymous,
                })
                .collect(),
            labels: BTreeMap::new(),
        }
    }

    fn ops(steps: &[Step]) -> Vec<(String, Operation)> {
        steps.iter().map(|s| (s.target.clone(), s.op)).collect()
    }

    fn named(n: &str) -> (String, Operation) {
        (n.to_owned(), Operation::Start)
    }

    #[test]
    fn rules() {
        let web = ContainerSpec::new("web", "img:1");
        let mut db = ContainerSpec::new("db", "img:1");
        db.volumes.insert("db-data".into(), "/data".into());
        let mut stopped = ContainerSpec::new("batch", "img:1");
        stopped.running = false;

        // Nothing exists: provisioned, then started where it should run.
        let p = plan(&[web.clone(), stopped.clone()], &[], &[], &[], &[]);
        assert_eq!(
            ops(&p.steps),
            vec![
                ("batch".into(), Operation::Provision),
                ("web".into(), Operation::Provision),
                named("web"),
            ]
        );
        assert!(p.held.is_empty());

        // Exactly as declared: nothing.
        let p = plan(
            &[web.clone(), stopped.clone()],
            &[],
            &[],
            &[seen(&web, true, &[]), seen(&stopped, false, &[])],
            &[],
        );
        assert!(p.converged() && p.notices.is_empty(), "{p:?}");

        // Run-state drift both ways: start, clean shutdown.
        let p = plan(
            &[web.clone(), stopped.clone()],
            &[],
            &[],
            &[seen(&web, false, &[]), seen(&stopped, true, &[])],
            &[],
        );
        assert_eq!(
            ops(&p.steps),
            vec![("batch".into(), Operation::Shutdown), named("web")]
        );

        // A changed declaration is re-created: benign with named volumes only...
        let mut db2 = db.clone();
        db2.env.insert("V".into(), "2".into());
        let p = plan(
            &[db2.clone()],
            &[],
            &[],
            &[seen(&db, true, &[("db-data", false)])],
            &[],
        );
        assert_eq!(
            ops(&p.steps),
            vec![("db".into(), Operation::Recreate), named("db")]
        );
        assert_eq!(p.steps[0].spec.as_ref(), Some(&db2));
        // ...destructive when an anonymous volume would be lost.
        let p = plan(
            &[db2.clone()],
            &[],
            &[],
            &[seen(&db, true, &[("0f", true)])],
            &[],
        );
        assert_eq!(ops(&p.held), vec![("db".into(), Operation::Recreate)]);

        // Removal: benign without volumes, held with one.
        let p = plan(
            &[],
            &["web".into(), "db".into()],
            &[],
            &[
                seen(&web, true, &[]),
                seen(&db, true, &[("db-data", false)]),
            ],
            &[],
        );
        assert_eq!(ops(&p.steps), vec![("web".into(), Operation::Destroy)]);
        assert_eq!(ops(&p.held), vec![("db".into(), Operation::Destroy)]);

        // A volume declared absent: always held, and only castellan's.
        let vols = [
            ObservedVolume {
                name: "db-data".into(),
                ours: true,
                created_at: String::new(),
            },
            ObservedVolume {
                name: "theirs".into(),
                ours: false,
                created_at: String::new(),
            },
        ];
        let p = plan(&[], &[], &["db-data".into(), "theirs".into()], &[], &vols);
        assert_eq!(
            ops(&p.held),
            vec![("db-data".into(), Operation::RemoveVolume)]
        );
        assert_eq!(
            p.notices,
            vec![Notice::NotOurs {
                target: "theirs".into()
            }]
        );
    }

    #[test]
    fn what_castellan_did_not_create_is_never_planned() {
        let web = ContainerSpec::new("web", "img:1");
        let mut theirs = seen(&ContainerSpec::new("web", "other:9"), false, &[("x", true)]);
        theirs.ours = false;
        theirs.spec_hash = None;
        for (declared, absent) in [
            (vec![web.clone()], vec![]),
            (vec![], vec!["web".to_owned()]),
        ] {
            let p = plan(&declared, &absent, &[], std::slice::from_ref(&theirs), &[]);
            assert!(p.converged(), "{p:?}");
            assert_eq!(
                p.notices,
                vec![Notice::NotOurs {
                    target: "web".into()
                }]
            );
        }
        // castellan's but undeclared: a candidate, never acted on.
        let p = plan(&[], &[], &[], &[seen(&web, true, &[])], &[]);
        assert!(p.converged());
        assert_eq!(
            p.notices,
            vec![Notice::Candidate {
                target: "web".into()
            }]
        );
    }
}
