//! The pure half of orchestration: one service and a view of the store in,
//! the changes that bring its tasks to what the spec asks for out. The
//! orchestrator loop does the I/O; everything here is testable on
//! hand-built tables.
//!
//! Per service, in order:
//! 1. restart supervision: a live task that ended (exited, failed, was
//!    rejected, or its node went down) is told to shut down;
//! 2. slots: each wanted slot (replica number, or eligible node) without a
//!    live task gets a new one when the restart policy allows (now, or at
//!    a time the loop wakes up for); live tasks in slots no longer wanted
//!    are removed (scale down, node drained or gone);
//! 3. rolling updates are left to [`super::update`]: tasks whose spec is
//!    not the service's are only touched there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use shoal_proto::objects::{Node, Service, Task, TaskState, node_spec, node_status};
use shoal_proto::task_state::observed;

use super::task::{Mode, Restart, SlotKey, by_slot, has_ended, is_live, new_task, restart_verdict};
use crate::store::Tables;

/// What to change for one service.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// New tasks.
    pub create: Vec<Task>,
    /// Existing tasks to move to a new desired state.
    pub desire: Vec<(String, TaskState)>,
    /// The earliest time a delayed restart is due.
    pub wake_at: Option<SystemTime>,
}

impl Plan {
    fn wake(&mut self, at: SystemTime) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.desire.is_empty()
    }
}

/// Nodes a global service runs on: up, not drained or paused, and (once
/// the scheduler's constraints are checked) matching the placement.
pub fn eligible_nodes(t: &Tables, service: &Service) -> BTreeSet<String> {
    global_nodes(t, service, &[node_spec::Availability::Active])
}

/// The up nodes matching the service's placement whose availability is
/// one of `availability`.
fn global_nodes(
    t: &Tables,
    service: &Service,
    availability: &[node_spec::Availability],
) -> BTreeSet<String> {
    let constraints = service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.placement.as_ref())
        .map(|p| p.constraints.clone())
        .unwrap_or_default();
    t.all::<Node>()
        .filter(|n| {
            let a = n
                .spec
                .as_ref()
                .map_or(node_spec::Availability::Active, |s| s.availability());
            n.status
                .as_ref()
                .is_some_and(|s| s.state() == node_status::State::Ready)
                && availability.contains(&a)
                && crate::scheduler::node_matches(n, &constraints)
        })
        .map(|n| n.id.clone())
        .collect()
}

/// Computes the changes for `service` (which must exist).
pub fn reconcile(t: &Tables, service: &Service, now: SystemTime) -> Plan {
    let mode = Mode::of(service);
    let mut plan = Plan::default();
    let slots = by_slot(t, &service.id);

    // 1. Live tasks that ended are told to shut down.
    let mut ended: BTreeSet<&str> = BTreeSet::new();
    for task in slots.values().flatten() {
        if is_live(task) && has_ended(t, task, mode) {
            plan.desire.push((task.id.clone(), TaskState::Shutdown));
            ended.insert(&task.id);
        }
    }
    let live = |task: &Task| is_live(task) && !ended.contains(task.id.as_str());

    // 2. Which slots are wanted.
    let wanted: BTreeSet<SlotKey> = match mode {
        Mode::Replicated(n) => (1..=n).map(SlotKey::Slot).collect(),
        Mode::ReplicatedJob { total, .. } => (1..=total).map(SlotKey::Slot).collect(),
        Mode::Global | Mode::GlobalJob => {
            // A paused node takes no new task but keeps the one it runs,
            // as in Docker.
            let paused = global_nodes(t, service, &[node_spec::Availability::Pause]);
            let keeps = |n: &String| {
                slots
                    .get(&SlotKey::Node(n.clone()))
                    .is_some_and(|tasks| tasks.iter().any(|t| live(t)))
            };
            let kept: Vec<String> = paused.into_iter().filter(|n| keeps(n)).collect();
            eligible_nodes(t, service)
                .into_iter()
                .chain(kept)
                .map(SlotKey::Node)
                .collect()
        }
    };

    // Live tasks in unwanted slots go: removed when the slot is gone for
    // good (scale down), shut down when their node is (global).
    for (slot, tasks) in &slots {
        if wanted.contains(slot) {
            continue;
        }
        for task in tasks.iter().filter(|t| live(t)) {
            let to = match slot {
                SlotKey::Slot(_) => TaskState::Remove,
                SlotKey::Node(_) => TaskState::Shutdown,
            };
            plan.desire.push((task.id.clone(), to));
        }
    }

    // Jobs: a slot that completed is done; at most `concurrent` at once.
    let mut budget = match mode {
        Mode::ReplicatedJob { concurrent, .. } => {
            // A task that completed is done, not running: it frees its place.
            let active = slots
                .values()
                .flatten()
                .filter(|t| live(t) && observed(t) < TaskState::Complete)
                .count() as u64;
            concurrent.saturating_sub(active)
        }
        _ => u64::MAX,
    };
    let policy = service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.restart.as_ref());
    let empty = Vec::new();
    for slot in &wanted {
        let tasks = slots.get(slot).unwrap_or(&empty);
        if tasks.iter().any(|t| live(t)) {
            continue;
        }
        if mode.is_job()
            && tasks.iter().any(|t| {
                observed(t) == TaskState::Complete && t.desired_state() <= TaskState::Complete
            })
        {
            continue;
        }
        if budget == 0 {
            break;
        }
        let verdict = match tasks.first() {
            None => Restart::Now,
            Some(last) => restart_verdict(policy, last, &tasks[1..], mode, now),
        };
        match verdict {
            Restart::Now => {
                plan.create.push(new_task(service, slot));
                budget -= 1;
            }
            Restart::At(at) => plan.wake(at),
            Restart::Never => {}
        }
    }
    plan
}

/// Tasks of a service, by slot, that the reaper may delete: ended and
/// beyond the history limit, or asked to be removed and no longer running.
pub fn reap(t: &Tables, service: Option<&Service>, tasks: &[&Task], limit: usize) -> Vec<String> {
    let mut doomed = Vec::new();
    // A slot's own ends past the history limit stay while `max_attempts`
    // counts them: reaped, they would let a stopped slot restart again.
    let policy = service
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.restart.as_ref());
    let attempts = super::task::attempts_kept(policy);
    let mut per_slot: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        per_slot
            .entry(super::task::slot_of(task))
            .or_default()
            .push(task);
    }
    for (_, mut slot_tasks) in per_slot {
        slot_tasks.sort_by_key(|t| std::cmp::Reverse(super::task::created_at(t)));
        let mut kept = 0usize;
        let mut own_ends = 0usize;
        for task in slot_tasks {
            let state = observed(task);
            let stopped = state.is_terminal()
                || state < TaskState::Assigned
                || super::task::node_lost(t, task);
            let gone = service.is_none() || task.desired_state() >= TaskState::Remove;
            if gone && stopped {
                doomed.push(task.id.clone());
                continue;
            }
            if is_live(task) {
                continue;
            }
            kept += 1;
            let mut counted = false;
            if super::task::ended_on_its_own(task) {
                own_ends += 1;
                counted = own_ends <= attempts;
            }
            if kept > limit && stopped && !counted {
                doomed.push(task.id.clone());
            }
        }
    }
    doomed
}

#[cfg(test)]
mod tests;
