//! Rolling updates and rollbacks. While a service's `UpdateStatus` says
//! `updating` (or `rollback_started`), its live tasks whose spec is not
//! the service's are replaced, at most `parallelism` at a time, as
//! swarmkit's updater does:
//!
//! ```text
//!  a free lane takes a slot ─> replace (stop-first: old shuts down as new
//!      ^                       is created; start-first: once new runs)
//!      │                                  │
//!      └──────── delay <── the new task runs (and is healthy)
//!  no slot left, every lane free ─> monitor once more ─> completed
//! ```
//!
//! The monitor period does not hold the next slot back: failures are
//! watched for alongside. A new task that fails, is rejected or exits
//! before it ran, or within the monitor period after it ran, counts as a
//! failure; past `max_failure_ratio` the failure action applies: pause,
//! continue, or roll back to the previous spec (which then proceeds with
//! the rollback config). Unlike swarmkit, a lane moves on only once its
//! task is healthy when it has a health check (swarmkit: running). The
//! run's progress lives in memory on the leader; a new leader starts the
//! remaining slots afresh from what the store says.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use shoal_proto::objects::{
    Service, Task, TaskState, UpdateConfig, task_status, update_config, update_status,
};
use shoal_proto::task_state::observed;

use super::reconcile::eligible_nodes;
use super::task::{Mode, SlotKey, by_slot, is_live, new_task};
use crate::store::Tables;

/// Docker's default monitor period.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);

/// What an update step changes.
#[derive(Debug, Default)]
pub struct UpdatePlan {
    /// Replacement tasks.
    pub create: Vec<Task>,
    /// Old tasks to stop.
    pub desire: Vec<(String, TaskState)>,
    /// The service with a new update status (or rolled-back spec).
    pub service: Option<Service>,
    /// When to look again if nothing happens before.
    pub wake_at: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Run {
    /// The spec being rolled out (a new one restarts the run).
    target: Option<shoal_proto::objects::TaskSpec>,
    /// The lanes in use: at most `parallelism` new tasks at a time.
    lanes: Vec<Lane>,
    /// Every new task of the run, with when it was first seen running:
    /// one that fails before it runs, or within the monitor period after,
    /// is a failure.
    started: HashMap<String, Option<SystemTime>>,
    /// New tasks that failed.
    failed: BTreeSet<String>,
    /// When the last slot was done: the run is monitored once more from
    /// then before it completes.
    finishing_since: Option<SystemTime>,
}

/// One replacement in flight: the new task, and the old one it replaces
/// (start-first: stopped once the new one runs). The lane is free `delay`
/// after the new task ran ([`Run::started`]).
#[derive(Debug)]
struct Lane {
    task: String,
    old: Option<String>,
}

/// The rolling updates in progress, by service id.
#[derive(Debug, Default)]
pub struct Updates {
    runs: HashMap<String, Run>,
}

fn config(service: &Service, rollback: bool) -> UpdateConfig {
    let spec = service.spec.as_ref();
    let given = if rollback {
        spec.and_then(|s| s.rollback)
    } else {
        spec.and_then(|s| s.update)
    };
    // Without a config of its own, Docker's default: one task at a time
    // (an explicit 0 means all at once).
    given.unwrap_or(UpdateConfig {
        parallelism: 1,
        ..Default::default()
    })
}

fn dur(d: Option<prost_types::Duration>, default: Duration) -> Duration {
    d.as_ref()
        .map(shoal_proto::limits::duration)
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

fn healthy_enough(task: &Task) -> bool {
    observed(task) == TaskState::Running
        && task.status.as_ref().is_none_or(|s| {
            matches!(
                s.health(),
                task_status::Health::None | task_status::Health::Healthy
            )
        })
}

impl Updates {
    /// Forgets a service (removed, or its update ended).
    pub fn forget(&mut self, service_id: &str) {
        self.runs.remove(service_id);
    }

    /// One step of the service's update, if one is in progress. `leaving`
    /// are the tasks the reconciler is stopping in the same pass (they
    /// ended, or their slot is scaled away): their slots are the
    /// reconciler's, not the update's to replace.
    pub fn step(
        &mut self,
        t: &Tables,
        service: &Service,
        now: SystemTime,
        leaving: &BTreeSet<String>,
    ) -> UpdatePlan {
        let mut plan = UpdatePlan::default();
        let state = service
            .update_status
            .as_ref()
            .map_or(update_status::State::Unknown, |s| s.state());
        let rollback = match state {
            update_status::State::Updating => false,
            update_status::State::RollbackStarted => true,
            _ => {
                self.runs.remove(&service.id);
                return plan;
            }
        };
        let target = service.spec.as_ref().and_then(|s| s.task.clone());
        let run = self.runs.entry(service.id.clone()).or_default();
        if run.target != target {
            *run = Run {
                target: target.clone(),
                ..Default::default()
            };
        }
        let cfg = config(service, rollback);
        let mode = Mode::of(service);
        let slots = by_slot(t, &service.id);
        let wanted: usize = match mode {
            Mode::Replicated(n) => n as usize,
            Mode::ReplicatedJob { total, .. } => total as usize,
            Mode::Global | Mode::GlobalJob => eligible_nodes(t, service).len(),
        };

        let monitor = dur(cfg.monitor, DEFAULT_MONITOR);
        let delay = dur(cfg.delay, Duration::ZERO);

        // Failures among the run's new tasks, in their monitor window.
        for (id, ran_at) in &run.started {
            let Some(task) = t.get::<Task>(id) else {
                continue;
            };
            let state = observed(task);
            let done_well = mode.is_job() && state == TaskState::Complete;
            let watched = ran_at.is_none_or(|at| now <= shoal_proto::limits::later(at, monitor));
            if state.is_terminal() && !done_well && watched {
                run.failed.insert(id.clone());
            }
        }
        let ratio = run.failed.len() as f32 / wanted.max(1) as f32;
        if !run.failed.is_empty() && ratio > cfg.max_failure_ratio {
            let culprit = run.failed.iter().next().cloned().unwrap_or_default();
            match cfg.failure_action() {
                update_config::FailureAction::Continue => {}
                update_config::FailureAction::Rollback if !rollback => {
                    let mut s = service.clone();
                    let bad = s.spec.take();
                    s.spec = s.previous_spec.take();
                    s.previous_spec = bad;
                    s.endpoint = s.spec.as_ref().and_then(|x| x.endpoint.as_ref()).map(|e| {
                        shoal_proto::objects::Endpoint {
                            spec: Some(e.clone()),
                            ports: e.ports.clone(),
                            virtual_ips: Vec::new(),
                        }
                    });
                    set_status(
                        &mut s,
                        update_status::State::RollbackStarted,
                        format!(
                            "update rolled back due to failure or early termination of task {culprit}"
                        ),
                        now,
                    );
                    self.runs.remove(&service.id);
                    plan.service = Some(s);
                    return plan;
                }
                _ => {
                    let mut s = service.clone();
                    let (state, what) = if rollback {
                        (update_status::State::RollbackPaused, "rollback")
                    } else {
                        (update_status::State::Paused, "update")
                    };
                    set_status(
                        &mut s,
                        state,
                        format!(
                            "{what} paused due to failure or early termination of task {culprit}"
                        ),
                        now,
                    );
                    self.runs.remove(&service.id);
                    plan.service = Some(s);
                    return plan;
                }
            }
        }

        // The lanes: a lane is free `delay` after its task runs, or once
        // its task is over (a failure, counted above, or a job's success).
        let mut wake: Option<SystemTime> = None;
        let mut busy = Vec::new();
        for lane in std::mem::take(&mut run.lanes) {
            let Some(task) = t.get::<Task>(&lane.task) else {
                continue;
            };
            if observed(task).is_terminal() {
                continue;
            }
            if !healthy_enough(task) {
                busy.push(lane);
                continue;
            }
            let ran_at = *run
                .started
                .entry(lane.task.clone())
                .or_default()
                .get_or_insert(now);
            if let Some(old) = &lane.old
                && t.get::<Task>(old).is_some_and(is_live)
            {
                plan.desire.push((old.clone(), TaskState::Shutdown));
            }
            let free_at = shoal_proto::limits::later(ran_at, delay);
            if free_at > now {
                wake = Some(wake.map_or(free_at, |w| w.min(free_at)));
                busy.push(lane);
            }
        }
        run.lanes = busy;
        plan.wake_at = wake;

        // Slots still running the old spec, and not being replaced.
        let dirty: Vec<(&SlotKey, &Task)> = slots
            .iter()
            .filter_map(|(slot, tasks)| {
                let live: Vec<&&Task> = tasks
                    .iter()
                    .filter(|t| is_live(t) && !leaving.contains(&t.id))
                    .collect();
                if live.iter().any(|t| t.spec == target) {
                    return None;
                }
                live.first().map(|t| (slot, **t))
            })
            .collect();
        if dirty.is_empty() {
            if !run.lanes.is_empty() {
                return plan;
            }
            // Every slot done: watch the new tasks for failures one monitor
            // period more (a run that replaced nothing is done at once).
            if !run.started.is_empty() {
                let since = *run.finishing_since.get_or_insert(now);
                let due = shoal_proto::limits::later(since, monitor);
                if due > now {
                    plan.wake_at = Some(due);
                    return plan;
                }
            }
            let mut s = service.clone();
            let (state, message) = if rollback {
                (
                    update_status::State::RollbackCompleted,
                    "rollback completed",
                )
            } else {
                (update_status::State::Completed, "update completed")
            };
            set_status(&mut s, state, message.to_string(), now);
            s.update_status.get_or_insert_default().completed_at = Some(now.into());
            self.runs.remove(&service.id);
            plan.service = Some(s);
            return plan;
        }
        run.finishing_since = None;
        let free = if cfg.parallelism == 0 {
            dirty.len()
        } else {
            (cfg.parallelism as usize).saturating_sub(run.lanes.len())
        };
        let start_first = cfg.order() == update_config::Order::StartFirst;
        for (slot, old) in dirty.into_iter().take(free) {
            let new = new_task(service, slot);
            run.started.insert(new.id.clone(), None);
            run.lanes.push(Lane {
                task: new.id.clone(),
                old: start_first.then(|| old.id.clone()),
            });
            if !start_first {
                plan.desire.push((old.id.clone(), TaskState::Shutdown));
            }
            plan.create.push(new);
        }
        plan
    }
}

fn set_status(s: &mut Service, state: update_status::State, message: String, now: SystemTime) {
    let status = s.update_status.get_or_insert_default();
    status.set_state(state);
    status.message = message;
    if matches!(
        state,
        update_status::State::RollbackStarted | update_status::State::Updating
    ) {
        status.started_at = Some(now.into());
        status.completed_at = None;
    }
}

#[cfg(test)]
mod tests;
