//! Crash recovery's rules: how an intent the journal holds without a terminal record is
//! settled, as a pure step function.
//!
//! The agent drives it: it fills [`Facts`] with what the journal says, asks [`next`] what
//! to find out or do, does that one thing (list the target's tasks, look at a task once,
//! wait for it, look at the target), records what it learnt in the facts and asks again,
//! until [`next`] answers [`Step::Settle`]. Every rule is here, so every rule is tested by
//! table without a node, a journal or a clock; the operation's row of the operation table
//! ([`crate::operation::Recovery`]) says which rules apply.
//!
//! The rules, for an operation that settles once (a destroy):
//! - its task is the one recorded at dispatch, or, when the agent died between the
//!   request and recording its answer, the one task of that operation on the target that
//!   the node lists now and did not list when the request was prepared (the task mark);
//!   no clock is compared. Several new tasks, an unreadable list, or a mark from a version
//!   that kept none: held for an operator;
//! - a known task settles it by its own end (waited for while it runs; a wait whose end
//!   cannot be learnt leaves it in flight);
//! - with no task of its own: a target that is gone means it happened; a target that is
//!   still there while its task was known is held (whether it ran cannot be told); one that
//!   is exactly as approved, unlocked, with the approval still valid, was never sent and is
//!   completed once; anything else is rolled back, not retried. A locked target is looked
//!   at again a bounded number of times first (a destroy in progress holds the lock).
//!
//! A benign operation that is re-planned settles by its task when it has one, and is
//! otherwise rolled back for the planner to re-plan from a fresh observation.
//!
//! An operation that is rolled back when it fails (a provisioning) finds its task the same
//! way. Its task's success settles it; without a task of its own nothing was sent, so
//! nothing is undone (a target there now is someone else's). When its task failed, or
//! ended unknown to the node, the target tells: gone, nothing was left behind; there and
//! unlocked after a failed task, it is what this intent half-made and is removed
//! ([`Settlement::Undo`], benign by the intent's own provenance); still locked after
//! looking again, or there after a task the node no longer knows, it is held.

use std::fmt;

use crate::operation::{Operation, Recovery};

/// How many times a locked target is looked at again before it is judged (a destroy in
/// progress holds the guest's lock until it ends).
pub const MAX_LOCKED_LOOKS: u32 = 50;

/// A backend task's state at one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Still running.
    Running,
    /// Finished successfully, with this many warnings.
    Succeeded {
        /// Warnings reported.
        warnings: u32,
    },
    /// Finished with an error.
    Failed {
        /// Its exit status.
        exitstatus: String,
    },
    /// The backend does not know the task (it never started, or its record is gone).
    Unknown,
}

/// What the journal recorded just before the request was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Nothing: the request was never prepared, so never sent.
    NotPrepared,
    /// Prepared by a version that kept no list of the target's tasks.
    Legacy,
    /// Prepared; these tasks of the operation existed on the target already.
    Seen(Vec<String>),
}

/// How waiting for a running task ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFailure {
    /// Whether the end could not be learnt (as opposed to a task that failed).
    pub unknown: bool,
    /// What happened.
    pub message: String,
}

/// A fresh look at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLook {
    /// Whether it exists.
    pub exists: bool,
    /// Its state digest, where it could be read.
    pub digest: Option<String>,
    /// Whether something holds a lock on it.
    pub locked: bool,
}

/// Everything recovery knows about one intent so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The journaled operation, or `None` for a name the table does not hold.
    pub op: Option<Operation>,
    /// The operation's name as journaled (for messages).
    pub op_name: String,
    /// The target, as people name it (for messages): `101`.
    pub target_label: String,
    /// Whether it was journaled as destructive.
    pub destructive: bool,
    /// Its task, recorded at dispatch or adopted from the task list.
    pub task: Option<String>,
    /// What was recorded just before the request.
    pub mark: Mark,
    /// The target's tasks of the operation now: `None` until asked, `Some(None)` when the
    /// backend cannot list them.
    pub listed: Option<Option<Vec<String>>>,
    /// The task's state at one look, once asked.
    pub status: Option<TaskState>,
    /// How waiting for the running task ended, once waited for.
    pub waited: Option<Result<(), WaitFailure>>,
    /// How many times the target was looked at.
    pub looks: u32,
    /// The last look at the target.
    pub target: Option<TargetLook>,
    /// The target's digest the operation was approved against.
    pub approved_digest: Option<String>,
    /// Whether the approval is still valid by the clock that cannot go backwards.
    pub approval_valid: bool,
    /// Whether the target's backend converges its benign work by re-planning from a
    /// fresh observation, so a benign step cut short needs nothing undone (Docker: a
    /// container half-made is castellan's, labelled, and the planner finishes it).
    pub backend_replans: bool,
}

impl Facts {
    /// These facts, for a backend that re-plans its benign work.
    pub fn with_replanning(mut self) -> Facts {
        self.backend_replans = true;
        self
    }

    /// The facts the journal gives, before anything is asked.
    pub fn journaled(op_name: &str, target_label: impl Into<String>) -> Facts {
        Facts {
            op: Operation::from_name(op_name),
            op_name: op_name.to_owned(),
            target_label: target_label.into(),
            destructive: false,
            task: None,
            mark: Mark::NotPrepared,
            listed: None,
            status: None,
            waited: None,
            looks: 0,
            target: None,
            approved_digest: None,
            approval_valid: false,
            backend_replans: false,
        }
    }
}

/// What recovery does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// List the target's tasks of the operation (into [`Facts::listed`]).
    ListTasks,
    /// Journal this task as the intent's own (as the dispatch would have), then set
    /// [`Facts::task`].
    Adopt(String),
    /// Look at the task once (into [`Facts::status`]).
    AskTask(String),
    /// Wait for the running task (into [`Facts::waited`]).
    WaitTask(String),
    /// Look at the target (into [`Facts::target`], counting [`Facts::looks`]); after a
    /// pause when `pause`.
    LookAtTarget {
        /// Whether to wait a moment first (the target was locked).
        pause: bool,
    },
    /// Done: settle it so.
    Settle(Settlement),
}

/// How an intent is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// It happened.
    Succeeded,
    /// It failed, with this error.
    Failed(String),
    /// It did not happen and will not be retried by recovery.
    RolledBack(String),
    /// Its task failed and left the target it was making behind: remove what this intent
    /// made (benign: the intent is its provenance), then record it rolled back with this
    /// reason.
    Undo(String),
    /// Never sent, target exactly as approved, approval valid: carry it out once now.
    /// `prepared` when the request had been prepared before (its mark is written once,
    /// so it is sent from recovery, after a last look).
    Complete {
        /// Whether a task mark was recorded before the crash.
        prepared: bool,
    },
    /// The evidence cannot tell what happened: held for an operator.
    Hold(String),
    /// Whether it happened is not known yet: it stays in flight.
    InFlight(String),
}

impl fmt::Display for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Settlement::Succeeded => f.write_str("succeeded"),
            Settlement::Failed(e) => write!(f, "failed: {e}"),
            Settlement::RolledBack(why) => write!(f, "rolled back: {why}"),
            Settlement::Undo(why) => write!(f, "undone: {why}"),
            Settlement::Complete { .. } => f.write_str("completed once"),
            Settlement::Hold(why) => write!(f, "held: {why}"),
            Settlement::InFlight(why) => write!(f, "in flight: {why}"),
        }
    }
}

fn settle(s: Settlement) -> Step {
    Step::Settle(s)
}

/// What to do next about the intent described by `f`.
pub fn next(f: &Facts) -> Step {
    let Some(op) = f.op else {
        return settle(Settlement::Hold(format!(
            "its operation {:?} is not one this castellan knows, so how to settle it cannot be told",
            f.op_name
        )));
    };
    let mut undoes = false;
    let settles_once = match op.spec().recovery {
        Recovery::Resume => {
            return settle(if f.approval_valid {
                Settlement::Complete {
                    prepared: f.mark != Mark::NotPrepared,
                }
            } else {
                Settlement::RolledBack(format!(
                    "the approval expired before the {op} finished; what it had not removed yet stays"
                ))
            });
        }
        Recovery::Replan => f.destructive,
        Recovery::CompleteOnce => true,
        // Benign and cut short on a backend that re-plans: nothing to undo.
        Recovery::RollBack if !f.destructive && f.backend_replans => false,
        Recovery::RollBack if !f.destructive => {
            undoes = true;
            true
        }
        rule @ (Recovery::RollBack | Recovery::AskOperator) => {
            return settle(Settlement::Hold(format!(
                "{op} is settled by {rule:?}, which this version does not carry out: held for an operator"
            )));
        }
    };
    if undoes {
        return undo_rules(f, op);
    }

    // Its task: recorded, or found by the node's own list before and after.
    if f.task.is_none() && settles_once {
        if let Some(step) = find_task(f, op) {
            return step;
        }
        if f.listed == Some(None) {
            // Without a task list only the target can tell, and only one way: gone,
            // there is nothing left to send; still there, the request may or may not
            // have been made (and may still be under way).
            match &f.target {
                None => return Step::LookAtTarget { pause: false },
                Some(t) if !t.exists => return gone(f, op),
                Some(_) => {
                    return settle(Settlement::Hold(format!(
                        "the backend's task list cannot be read and {} still exists, so whether the {op} was sent cannot be told",
                        f.target_label
                    )));
                }
            }
        }
    }

    // A known task settles it by its own end.
    if let Some(task) = &f.task {
        match &f.status {
            None => return Step::AskTask(task.clone()),
            Some(TaskState::Running) => {
                return match &f.waited {
                    None => Step::WaitTask(task.clone()),
                    Some(Ok(())) => settle(Settlement::Succeeded),
                    Some(Err(w)) if w.unknown => settle(Settlement::InFlight(w.message.clone())),
                    Some(Err(w)) => settle(Settlement::Failed(w.message.clone())),
                };
            }
            Some(TaskState::Succeeded { .. }) => return settle(Settlement::Succeeded),
            Some(TaskState::Failed { exitstatus }) => {
                return settle(Settlement::Failed(exitstatus.clone()));
            }
            Some(TaskState::Unknown) => {} // the target tells
        }
    }

    if !settles_once {
        // Benign and idempotent: the planner re-plans against a fresh observation.
        return settle(Settlement::RolledBack(
            "interrupted before its task was known; re-planned".into(),
        ));
    }

    // No task of its own on the node: the target tells.
    let Some(t) = &f.target else {
        return Step::LookAtTarget { pause: false };
    };
    if t.exists && t.locked && f.looks < MAX_LOCKED_LOOKS {
        return Step::LookAtTarget { pause: true };
    }
    if !t.exists {
        return gone(f, op);
    }
    if f.task.is_some() {
        // Its task is known but the node no longer knows it, and the target is still
        // there: whether it ran and failed or never ran cannot be told.
        return settle(Settlement::Hold(
            "its task is no longer known to the node and the guest still exists".into(),
        ));
    }
    let unchanged = t.digest.is_some() && t.digest == f.approved_digest;
    if unchanged && f.approval_valid && !t.locked {
        return settle(Settlement::Complete {
            prepared: f.mark != Mark::NotPrepared,
        });
    }
    settle(Settlement::RolledBack(if !unchanged {
        "the guest changed since approval; not retried".into()
    } else if !f.approval_valid {
        format!("the approval expired before the {op} was sent")
    } else {
        "the guest is locked; not retried".into()
    }))
}

/// The target of an operation that settles once is gone and no task of its own tells
/// what happened: done, for an operation that removes its target; otherwise unexplained.
fn gone(f: &Facts, op: Operation) -> Step {
    if op.spec().removes_target {
        settle(Settlement::Succeeded)
    } else {
        settle(Settlement::Hold(format!(
            "{} is gone and no task of its {op} tells what removed it",
            f.target_label
        )))
    }
}

/// Finds the intent's own task by its record or the task mark; `None` when it has one (or
/// none can exist), otherwise the step that finds it out.
fn find_task(f: &Facts, op: Operation) -> Option<Step> {
    if f.task.is_some() {
        return None;
    }
    match &f.mark {
        Mark::NotPrepared => None,
        Mark::Legacy => Some(settle(Settlement::Hold(format!(
            "journaled by an earlier version without a task mark: whether its {op} was sent cannot be told"
        )))),
        Mark::Seen(before) => match &f.listed {
            None => Some(Step::ListTasks),
            Some(None) => None,
            Some(Some(now)) => {
                let new: Vec<&String> = now.iter().filter(|t| !before.contains(t)).collect();
                match new.as_slice() {
                    [] => None,
                    [one] => Some(Step::Adopt((*one).clone())),
                    many => {
                        let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                        Some(settle(Settlement::Hold(format!(
                            "{} {op} tasks for {} appeared since it was prepared ({}); which is its own cannot be told",
                            many.len(),
                            f.target_label,
                            list.join(", ")
                        ))))
                    }
                }
            }
        },
    }
}

/// The rules of an operation rolled back when it fails (see the module docs).
fn undo_rules(f: &Facts, op: Operation) -> Step {
    if let Some(step) = find_task(f, op) {
        return step;
    }
    let Some(task) = &f.task else {
        if f.listed == Some(None) {
            // The task list cannot be read: only a target that is not there tells.
            return match &f.target {
                None => Step::LookAtTarget { pause: false },
                Some(t) if !t.exists => settle(Settlement::RolledBack(format!(
                    "its {op} left nothing on the node"
                ))),
                Some(_) => settle(Settlement::Hold(format!(
                    "the backend's task list cannot be read and {} exists, so whether this {op} made it cannot be told",
                    f.target_label
                ))),
            };
        }
        // No task of its own: the request never reached the node, so nothing it made
        // can be there (a target there now is someone else's and is left alone).
        return settle(Settlement::RolledBack(format!(
            "interrupted before its {op} was sent; nothing was made"
        )));
    };
    let failure = match &f.status {
        None => return Step::AskTask(task.clone()),
        Some(TaskState::Succeeded { .. }) => return settle(Settlement::Succeeded),
        Some(TaskState::Running) => match &f.waited {
            None => return Step::WaitTask(task.clone()),
            Some(Ok(())) => return settle(Settlement::Succeeded),
            Some(Err(w)) if w.unknown => return settle(Settlement::InFlight(w.message.clone())),
            Some(Err(w)) => Some(w.message.clone()),
        },
        Some(TaskState::Failed { exitstatus }) => Some(exitstatus.clone()),
        Some(TaskState::Unknown) => None,
    };
    let Some(t) = &f.target else {
        return Step::LookAtTarget { pause: false };
    };
    if t.exists && t.locked && f.looks < MAX_LOCKED_LOOKS {
        return Step::LookAtTarget { pause: true };
    }
    match (failure, t.exists) {
        (Some(e), false) => settle(Settlement::Failed(e)),
        (None, false) => settle(Settlement::Failed(format!(
            "its task is no longer known to the node and {} does not exist",
            f.target_label
        ))),
        (Some(e), true) if !t.locked => settle(Settlement::Undo(e)),
        (Some(e), true) => settle(Settlement::Hold(format!(
            "its {op} failed ({}) and left {} locked; unlock or remove it by hand",
            e.trim_end(),
            f.target_label
        ))),
        (None, true) => settle(Settlement::Hold(format!(
            "its task is no longer known to the node and {} exists: whether the {op} finished cannot be told",
            f.target_label
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "d101";

    fn destroy() -> Facts {
        Facts {
            destructive: true,
            approved_digest: Some(D.into()),
            approval_valid: true,
            ..Facts::journaled("destroy", "101")
        }
    }

    fn restore() -> Facts {
        Facts {
            destructive: true,
            approved_digest: Some(D.into()),
            approval_valid: true,
            ..Facts::journaled("restore_overwrite", "101")
        }
    }

    fn look(exists: bool, digest: Option<&str>, locked: bool) -> Option<TargetLook> {
        Some(TargetLook {
            exists,
            digest: digest.map(str::to_owned),
            locked,
        })
    }

    fn seen(tasks: &[&str]) -> Mark {
        Mark::Seen(tasks.iter().map(|s| (*s).to_owned()).collect())
    }

    fn listed(tasks: &[&str]) -> Option<Option<Vec<String>>> {
        Some(Some(tasks.iter().map(|s| (*s).to_owned()).collect()))
    }

    fn held(step: &Step) -> bool {
        matches!(step, Step::Settle(Settlement::Hold(_)))
    }

    /// Every rule, one row each: the facts so far and what must come next.
    #[test]
    fn table() {
        let cases: Vec<(&str, Facts, Step)> = vec![
            (
                "an operation the table does not hold is held",
                Facts::journaled("obliterate", "101"),
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a rule this version does not carry out is held",
                Facts::journaled("rotate_keys", "signers"),
                settle(Settlement::Hold(String::new())),
            ),
            (
                "an interrupted decommission is finished while its approval is valid",
                Facts {
                    destructive: true,
                    approval_valid: true,
                    ..Facts::journaled("decommission", "node/pve-01")
                },
                settle(Settlement::Complete { prepared: false }),
            ),
            (
                "an interrupted decommission whose approval expired is rolled back",
                Facts {
                    destructive: true,
                    approval_valid: false,
                    ..Facts::journaled("decommission", "node/pve-01")
                },
                settle(Settlement::RolledBack(
                    "the approval expired before the decommission finished; what it had not removed yet stays".into(),
                )),
            ),
            (
                "a benign action without a task is re-planned",
                Facts::journaled("set_config", "101"),
                settle(Settlement::RolledBack(
                    "interrupted before its task was known; re-planned".into(),
                )),
            ),
            (
                "a benign action's recorded task is asked about",
                Facts {
                    task: Some("T1".into()),
                    ..Facts::journaled("start", "101")
                },
                Step::AskTask("T1".into()),
            ),
            (
                "a benign action's task that ended settles it",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "boom".into(),
                    }),
                    ..Facts::journaled("start", "101")
                },
                settle(Settlement::Failed("boom".into())),
            ),
            (
                "a destroy never prepared: look at the guest",
                destroy(),
                Step::LookAtTarget { pause: false },
            ),
            (
                "never prepared, unchanged, valid: completed once, fresh",
                Facts {
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Complete { prepared: false }),
            ),
            (
                "prepared: the task list is read",
                Facts {
                    mark: seen(&["OLD"]),
                    ..destroy()
                },
                Step::ListTasks,
            ),
            (
                "a benign provision cut short where the backend re-plans: re-planned",
                Facts::journaled("provision", "container/web").with_replanning(),
                settle(Settlement::RolledBack(
                    "interrupted before its task was known; re-planned".into(),
                )),
            ),
            (
                "a provision never prepared made nothing: rolled back, nothing undone",
                Facts::journaled("provision", "lxc/101"),
                settle(Settlement::RolledBack(
                    "interrupted before its provision was sent; nothing was made".into(),
                )),
            ),
            (
                "a prepared provision looks for its task",
                Facts {
                    mark: seen(&[]),
                    ..Facts::journaled("provision", "lxc/101")
                },
                Step::ListTasks,
            ),
            (
                "a prepared provision adopts the one new task",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD", "T9"]),
                    ..Facts::journaled("provision", "lxc/101")
                },
                Step::Adopt("T9".into()),
            ),
            (
                "a prepared provision with no new task sent nothing: a guest there is not its own",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD"]),
                    target: look(true, Some(D), false),
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::RolledBack(
                    "interrupted before its provision was sent; nothing was made".into(),
                )),
            ),
            (
                "a provision whose task succeeded succeeded",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Succeeded { warnings: 0 }),
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Succeeded),
            ),
            (
                "a provision whose task runs is waited for",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Running),
                    ..Facts::journaled("provision", "lxc/101")
                },
                Step::WaitTask("T1".into()),
            ),
            (
                "a provision whose task failed looks at the guest",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "no space".into(),
                    }),
                    ..Facts::journaled("provision", "lxc/101")
                },
                Step::LookAtTarget { pause: false },
            ),
            (
                "a failed provision that left nothing failed",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "no space".into(),
                    }),
                    target: look(false, None, false),
                    looks: 1,
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Failed("no space".into())),
            ),
            (
                "a failed provision that left the guest behind is undone",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "no space".into(),
                    }),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Undo("no space".into())),
            ),
            (
                "a failed provision whose guest is locked is looked at again",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "no space".into(),
                    }),
                    target: look(true, Some(D), true),
                    looks: 1,
                    ..Facts::journaled("provision", "lxc/101")
                },
                Step::LookAtTarget { pause: true },
            ),
            (
                "a failed provision whose guest stays locked is held",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Failed {
                        exitstatus: "no space".into(),
                    }),
                    target: look(true, Some(D), true),
                    looks: MAX_LOCKED_LOOKS,
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a provision whose task the node forgot, guest there: held",
                Facts {
                    task: Some("T1".into()),
                    status: Some(TaskState::Unknown),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a provision whose task list cannot be read, guest there: held",
                Facts {
                    mark: seen(&[]),
                    listed: Some(None),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..Facts::journaled("provision", "lxc/101")
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "prepared, the list cannot be read: the target is looked at",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: Some(None),
                    ..destroy()
                },
                Step::LookAtTarget { pause: false },
            ),
            (
                "prepared, no list, the target still there (even unchanged): held",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: Some(None),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "prepared, no list, the target gone: nothing is left to send",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: Some(None),
                    target: look(false, None, false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Succeeded),
            ),
            (
                "prepared, one new task: it is adopted",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD", "NEW"]),
                    ..destroy()
                },
                Step::Adopt("NEW".into()),
            ),
            (
                "prepared, two new tasks: which is its own cannot be told",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD", "N1", "N2"]),
                    ..destroy()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "prepared, no new task, guest unchanged: sent from recovery",
                Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD"]),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Complete { prepared: true }),
            ),
            (
                "a legacy mark is ambiguous: held",
                Facts {
                    mark: Mark::Legacy,
                    ..destroy()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a running task is waited for",
                Facts {
                    task: Some("T".into()),
                    status: Some(TaskState::Running),
                    ..destroy()
                },
                Step::WaitTask("T".into()),
            ),
            (
                "a wait whose end cannot be learnt stays in flight",
                Facts {
                    task: Some("T".into()),
                    status: Some(TaskState::Running),
                    waited: Some(Err(WaitFailure {
                        unknown: true,
                        message: "timeout".into(),
                    })),
                    ..destroy()
                },
                settle(Settlement::InFlight("timeout".into())),
            ),
            (
                "a task the node forgot, guest gone: it happened",
                Facts {
                    task: Some("T".into()),
                    status: Some(TaskState::Unknown),
                    target: look(false, None, false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Succeeded),
            ),
            (
                "a task the node forgot, guest still there: held",
                Facts {
                    task: Some("T".into()),
                    status: Some(TaskState::Unknown),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a locked guest is looked at again",
                Facts {
                    target: look(true, Some(D), true),
                    looks: 3,
                    ..destroy()
                },
                Step::LookAtTarget { pause: true },
            ),
            (
                "a guest locked for good is rolled back, not retried",
                Facts {
                    target: look(true, Some(D), true),
                    looks: MAX_LOCKED_LOOKS,
                    ..destroy()
                },
                settle(Settlement::RolledBack(
                    "the guest is locked; not retried".into(),
                )),
            ),
            (
                "a changed guest is rolled back",
                Facts {
                    target: look(true, Some("other"), false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::RolledBack(
                    "the guest changed since approval; not retried".into(),
                )),
            ),
            (
                "an unreadable digest is not 'unchanged'",
                Facts {
                    target: look(true, None, false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::RolledBack(
                    "the guest changed since approval; not retried".into(),
                )),
            ),
            (
                "an expired approval is rolled back",
                Facts {
                    target: look(true, Some(D), false),
                    looks: 1,
                    approval_valid: false,
                    ..destroy()
                },
                settle(Settlement::RolledBack(
                    "the approval expired before the destroy was sent".into(),
                )),
            ),
            (
                "a restore-overwrite whose target vanished without a task of its own is held",
                Facts {
                    target: look(false, None, false),
                    looks: 1,
                    ..restore()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "a restore-overwrite never sent, target as approved, is completed once",
                Facts {
                    mark: seen(&["T0"]),
                    listed: listed(&["T0"]),
                    target: look(true, Some(D), false),
                    looks: 1,
                    ..restore()
                },
                settle(Settlement::Complete { prepared: true }),
            ),
            (
                "a restore-overwrite's own task found by the mark is adopted",
                Facts {
                    mark: seen(&["T0"]),
                    listed: listed(&["T0", "T1"]),
                    ..restore()
                },
                Step::Adopt("T1".into()),
            ),
            (
                "a restore-overwrite whose guest changed without a task of its own is rolled back",
                Facts {
                    mark: seen(&[]),
                    listed: listed(&[]),
                    target: look(true, Some("other"), false),
                    looks: 1,
                    ..restore()
                },
                settle(Settlement::RolledBack(
                    "the guest changed since approval; not retried".into(),
                )),
            ),
            (
                "a restore-overwrite without a task list and its guest gone is held",
                Facts {
                    mark: seen(&[]),
                    listed: Some(None),
                    target: look(false, None, false),
                    ..restore()
                },
                settle(Settlement::Hold(String::new())),
            ),
            (
                "an interrupted wipe is finished while its approval is valid",
                Facts {
                    destructive: true,
                    approval_valid: true,
                    ..Facts::journaled("wipe_storage", "local-lvm")
                },
                settle(Settlement::Complete { prepared: false }),
            ),
            (
                "an interrupted wipe whose approval expired is rolled back",
                Facts {
                    destructive: true,
                    approval_valid: false,
                    ..Facts::journaled("wipe_storage", "local-lvm")
                },
                settle(Settlement::RolledBack(
                    "the approval expired before the wipe_storage finished; what it had not removed yet stays".into(),
                )),
            ),
            (
                "a benign destroy (scratch) settles once too",
                Facts {
                    destructive: false,
                    target: look(false, None, false),
                    looks: 1,
                    ..destroy()
                },
                settle(Settlement::Succeeded),
            ),
        ];
        for (what, facts, want) in cases {
            let got = next(&facts);
            if held(&want) {
                assert!(held(&got), "{what}: {got:?}");
            } else {
                assert_eq!(got, want, "{what}");
            }
        }
    }

    /// Driving the rules to the end never sends twice: from every prepared state where a
    /// task of its own exists on the node, the answer is never `Complete`.
    #[test]
    fn a_task_of_its_own_is_never_completed_again() {
        for status in [
            TaskState::Running,
            TaskState::Succeeded { warnings: 0 },
            TaskState::Failed {
                exitstatus: "x".into(),
            },
            TaskState::Unknown,
        ] {
            for exists in [false, true] {
                let mut f = Facts {
                    mark: seen(&["OLD"]),
                    listed: listed(&["OLD", "MINE"]),
                    ..destroy()
                };
                let mut steps = 0;
                let end = loop {
                    steps += 1;
                    assert!(steps < 10, "no end: {f:?}");
                    match next(&f) {
                        Step::Adopt(t) => f.task = Some(t),
                        Step::AskTask(_) => f.status = Some(status.clone()),
                        Step::WaitTask(_) => f.waited = Some(Ok(())),
                        Step::LookAtTarget { .. } => {
                            f.looks += 1;
                            f.target = look(exists, Some(D), false);
                        }
                        Step::ListTasks => unreachable!("listed already"),
                        Step::Settle(s) => break s,
                    }
                };
                assert!(
                    !matches!(end, Settlement::Complete { .. }),
                    "{status:?} exists={exists}: {end:?}"
                );
            }
        }
    }
}
