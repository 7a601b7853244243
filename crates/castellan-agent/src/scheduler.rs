//! The per-guest work queue, without I/O or clocks: the engine passes `now` in.
//!
//! Invariants: at most one reconcile in flight per guest; a guest marked dirty while in
//! flight runs again after (so the latest desired state wins); a failing guest waits an
//! exponentially growing delay that resets on success, and never delays the others.

use std::collections::BTreeMap;
use std::time::Duration;

use castellan_core::model::Vmid;
use tokio::time::Instant;

/// How a reconcile of one guest ended, as the scheduler needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Converged, or as far as it can go without an operator: back-off resets.
    Done,
    /// Made progress but yielded (step limit); run again without delay.
    Requeue,
    /// Failed; retry after a back-off.
    Failed(String),
}

#[derive(Debug, Clone, Default)]
struct Slot {
    dirty: bool,
    in_flight: bool,
    failures: u32,
    not_before: Option<Instant>,
    gave_up: Option<String>,
}

/// The queue.
#[derive(Debug, Clone)]
pub struct Scheduler {
    slots: BTreeMap<Vmid, Slot>,
    base: Duration,
    max: Duration,
    attempts: Option<u32>,
}

impl Scheduler {
    /// A queue with back-off from `base` doubling to `max`; with `attempts`, a guest is
    /// given up after that many consecutive failures (used by `--once`).
    pub fn new(base: Duration, max: Duration, attempts: Option<u32>) -> Self {
        Scheduler {
            slots: BTreeMap::new(),
            base,
            max,
            attempts,
        }
    }

    /// Asks for a guest to be reconciled. `urgent` (a new desired state) also cancels a
    /// pending back-off and revives a guest that was given up.
    pub fn mark_dirty(&mut self, vmid: Vmid, urgent: bool) {
        let slot = self.slots.entry(vmid).or_default();
        slot.dirty = true;
        if urgent {
            slot.not_before = None;
            slot.gave_up = None;
            slot.failures = 0;
        }
    }

    /// Forgets a guest that is no longer desired (an in-flight reconcile finishes first).
    pub fn forget(&mut self, vmid: Vmid) {
        if let Some(slot) = self.slots.get_mut(&vmid) {
            if slot.in_flight {
                slot.dirty = false;
            } else {
                self.slots.remove(&vmid);
            }
        }
    }

    /// Takes up to `capacity` guests that are due, in vmid order, and marks them in flight.
    pub fn take_ready(&mut self, now: Instant, capacity: usize) -> Vec<Vmid> {
        let mut out = Vec::new();
        for (&vmid, slot) in &mut self.slots {
            if out.len() >= capacity {
                break;
            }
            if slot.dirty
                && !slot.in_flight
                && slot.gave_up.is_none()
                && slot.not_before.is_none_or(|t| t <= now)
            {
                slot.dirty = false;
                slot.in_flight = true;
                out.push(vmid);
            }
        }
        out
    }

    /// Records the end of a reconcile.
    pub fn finish(&mut self, vmid: Vmid, result: Finished, now: Instant) {
        let Some(slot) = self.slots.get_mut(&vmid) else {
            return;
        };
        slot.in_flight = false;
        match result {
            Finished::Done => {
                slot.failures = 0;
                slot.not_before = None;
            }
            Finished::Requeue => slot.dirty = true,
            Finished::Failed(error) => {
                slot.failures += 1;
                if self.attempts.is_some_and(|n| slot.failures >= n) {
                    slot.gave_up = Some(error);
                } else {
                    slot.not_before = Some(now + backoff(self.base, self.max, slot.failures, vmid));
                    slot.dirty = true;
                }
            }
        }
    }

    /// When the earliest backed-off guest becomes due.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter(|s| s.dirty && !s.in_flight && s.gave_up.is_none())
            .filter_map(|s| s.not_before)
            .min()
    }

    /// Guests currently being reconciled.
    pub fn in_flight(&self) -> usize {
        self.slots.values().filter(|s| s.in_flight).count()
    }

    /// True when nothing is in flight or waiting to run.
    pub fn idle(&self) -> bool {
        self.slots
            .values()
            .all(|s| !s.in_flight && (!s.dirty || s.gave_up.is_some()))
    }

    /// Guests queued, in flight or backing off (not those given up).
    pub fn busy(&self) -> Vec<Vmid> {
        self.slots
            .iter()
            .filter(|(_, s)| (s.in_flight || s.dirty) && s.gave_up.is_none())
            .map(|(v, _)| *v)
            .collect()
    }

    /// Guests given up on, with their last error.
    pub fn given_up(&self) -> BTreeMap<Vmid, String> {
        self.slots
            .iter()
            .filter_map(|(v, s)| s.gave_up.clone().map(|e| (*v, e)))
            .collect()
    }

    /// Consecutive failures of a guest.
    pub fn failures(&self, vmid: Vmid) -> u32 {
        self.slots.get(&vmid).map_or(0, |s| s.failures)
    }
}

/// `base * 2^(failures-1)`, capped at `max`, plus up to 10% jitter derived from the vmid
/// so that guests failing together do not retry in lock-step.
pub fn backoff(base: Duration, max: Duration, failures: u32, vmid: Vmid) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let spread = (u64::from(vmid).wrapping_mul(2_654_435_761) % 1000) as u32;
    raw + raw / 10 * spread / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn one_in_flight_per_guest_and_latest_wins() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(BASE, MAX, None);
        s.mark_dirty(101, false);
        assert_eq!(s.take_ready(t0, 10), vec![101]);
        s.mark_dirty(101, false);
        assert_eq!(
            s.take_ready(t0, 10),
            Vec::<Vmid>::new(),
            "already in flight"
        );
        s.finish(101, Finished::Done, t0);
        assert_eq!(
            s.take_ready(t0, 10),
            vec![101],
            "dirtied while in flight: runs again"
        );
        s.finish(101, Finished::Done, t0);
        assert!(s.idle());
    }

    #[test]
    fn failing_guest_backs_off_without_blocking_others() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(BASE, MAX, None);
        s.mark_dirty(101, false);
        s.mark_dirty(102, false);
        assert_eq!(s.take_ready(t0, 10), vec![101, 102]);
        s.finish(101, Finished::Failed("locked".into()), t0);
        s.finish(102, Finished::Done, t0);
        s.mark_dirty(102, false);
        assert_eq!(s.take_ready(t0, 10), vec![102], "101 waits, 102 goes on");
        let due = s.next_wakeup().expect("101 is waiting");
        assert!(due >= t0 + BASE && due <= t0 + BASE + BASE / 10);
        assert_eq!(s.take_ready(due, 10), vec![101]);
        s.finish(101, Finished::Failed("locked".into()), due);
        let due2 = s.next_wakeup().expect("still waiting");
        assert!(due2 - due >= 2 * BASE, "doubles");
        assert_eq!(s.take_ready(due2, 10), vec![101]);
        s.finish(101, Finished::Done, due2);
        assert_eq!(s.failures(101), 0, "resets on success");
    }

    #[test]
    fn capacity_and_order() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(BASE, MAX, None);
        for v in [300, 100, 200] {
            s.mark_dirty(v, false);
        }
        assert_eq!(s.take_ready(t0, 2), vec![100, 200]);
        assert_eq!(s.in_flight(), 2);
        assert_eq!(s.take_ready(t0, 1), vec![300]);
    }

    #[test]
    fn attempts_limit_gives_up_and_urgent_revives() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(BASE, MAX, Some(2));
        s.mark_dirty(101, false);
        s.take_ready(t0, 1);
        s.finish(101, Finished::Failed("one".into()), t0);
        let t1 = s.next_wakeup().expect("waiting");
        s.take_ready(t1, 1);
        s.finish(101, Finished::Failed("two".into()), t1);
        assert!(s.idle());
        assert_eq!(s.given_up().get(&101).map(String::as_str), Some("two"));
        s.mark_dirty(101, true);
        assert_eq!(s.take_ready(t1, 1), vec![101]);
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(BASE, MAX, 1, 0), BASE);
        assert_eq!(backoff(BASE, MAX, 3, 0), 4 * BASE);
        assert!(backoff(BASE, MAX, 40, 7) <= MAX + MAX / 10);
    }
}
