//! Tasks as the orchestrators see them: making a new one for a slot,
//! finding a service's slots, and the restart policy's verdict on a task
//! that ended.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use shoal_proto::identity::new_id;
use shoal_proto::limits::{MAX_REPLICAS, later};
use shoal_proto::objects::{
    Annotations, Node, RestartPolicy, Service, Task, TaskState, TaskStatus, node_spec, node_status,
    restart_policy, service_spec,
};
use shoal_proto::task_state::observed;

use crate::store::Tables;

/// Docker's default restart delay.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(5);

/// Where a task belongs in its service: a replica number, or a node for
/// global services.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotKey {
    /// Replicated services and jobs: slot 1..=N.
    Slot(u64),
    /// Global services and jobs: one per node.
    Node(String),
}

/// What kind of service this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `replicated`: N long-running tasks.
    Replicated(u64),
    /// `global`: one long-running task per eligible node.
    Global,
    /// `replicated-job`: run to completion `total` times, `concurrent` at once.
    ReplicatedJob {
        /// Completions wanted.
        total: u64,
        /// Tasks at once.
        concurrent: u64,
    },
    /// `global-job`: run to completion once per eligible node.
    GlobalJob,
}

impl Mode {
    /// The mode of a service. Counts are capped at [`MAX_REPLICAS`]: the
    /// control API refuses more, and a spec stored before it did must not
    /// make a leader allocate every slot it names.
    pub fn of(service: &Service) -> Mode {
        let cap = |n: u64| n.min(MAX_REPLICAS);
        match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
            None => Mode::Replicated(1),
            Some(service_spec::Mode::Replicated(r)) => Mode::Replicated(cap(r.replicas)),
            Some(service_spec::Mode::Global(_)) => Mode::Global,
            Some(service_spec::Mode::ReplicatedJob(j)) => Mode::ReplicatedJob {
                total: cap(j.total_completions),
                concurrent: cap(j.max_concurrent).max(1),
            },
            Some(service_spec::Mode::GlobalJob(_)) => Mode::GlobalJob,
        }
    }

    /// Jobs run to completion; services run until told to stop.
    pub fn is_job(self) -> bool {
        matches!(self, Mode::ReplicatedJob { .. } | Mode::GlobalJob)
    }

    /// The state a task of this mode is asked to reach.
    pub fn desired(self) -> TaskState {
        if self.is_job() {
            TaskState::Complete
        } else {
            TaskState::Running
        }
    }
}

/// The slot a task fills.
pub fn slot_of(task: &Task) -> SlotKey {
    if task.slot == 0 {
        SlotKey::Node(task.node_id.clone())
    } else {
        SlotKey::Slot(task.slot)
    }
}

/// The service's name.
pub fn service_name(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// A new task for `slot` of `service`, waiting for the allocator (which
/// gives it its network addresses and makes it Pending for the scheduler).
pub fn new_task(service: &Service, slot: &SlotKey) -> Task {
    let spec = service.spec.clone().unwrap_or_default();
    let mode = Mode::of(service);
    let (slot_number, node_id, suffix) = match slot {
        SlotKey::Slot(n) => (*n, String::new(), n.to_string()),
        SlotKey::Node(node) => (0, node.clone(), node.clone()),
    };
    let mut task = Task {
        id: new_id(),
        spec: spec.task.clone(),
        service_id: service.id.clone(),
        slot: slot_number,
        node_id,
        annotations: Some(Annotations {
            name: format!("{}.{suffix}", service_name(service)),
            labels: Default::default(),
        }),
        service_annotations: spec.annotations.clone(),
        status: Some(TaskStatus {
            timestamp: Some(SystemTime::now().into()),
            message: "created".into(),
            ..Default::default()
        }),
        endpoint: service.endpoint.clone(),
        ..Default::default()
    };
    task.status
        .get_or_insert_default()
        .set_state(TaskState::New);
    task.set_desired_state(mode.desired());
    task
}

/// Whether the task still counts toward its slot: asked to run (or to
/// complete, for jobs) and not yet told to stop.
pub fn is_live(task: &Task) -> bool {
    task.desired_state() <= TaskState::Complete && task.desired_state() >= TaskState::Running
}

/// Whether a task's node is gone or down, so the task cannot be running.
pub fn node_lost(t: &Tables, task: &Task) -> bool {
    if task.node_id.is_empty() || observed(task) < TaskState::Assigned && task.slot != 0 {
        return false;
    }
    match t.get::<Node>(&task.node_id) {
        None => true,
        Some(node) => node
            .status
            .as_ref()
            .is_some_and(|s| s.state() == node_status::State::Down),
    }
}

/// Whether the task's node was drained: its tasks must move elsewhere.
pub fn node_drained(t: &Tables, task: &Task) -> bool {
    !task.node_id.is_empty()
        && t.get::<Node>(&task.node_id).is_some_and(|n| {
            n.spec
                .as_ref()
                .is_some_and(|s| s.availability() == node_spec::Availability::Drain)
        })
}

/// Whether a live task has ended: it stopped by itself, its node died, or
/// its node was drained. A job's task that completed has not "ended" in
/// this sense: it is done.
pub fn has_ended(t: &Tables, task: &Task, mode: Mode) -> bool {
    let state = observed(task);
    if mode.is_job() && state == TaskState::Complete {
        return false;
    }
    state.is_terminal() || node_lost(t, task) || node_drained(t, task)
}

/// The restart policy's verdict on a slot whose last task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Start a replacement now.
    Now,
    /// Start one at this time.
    At(SystemTime),
    /// Leave the slot empty.
    Never,
}

/// Total: a stored duration too long is clamped, a negative one is as
/// none (the default applies); never a panic.
fn duration(d: Option<prost_types::Duration>) -> Option<Duration> {
    use shoal_proto::limits::{DurationError, MAX_DURATION, check_duration};
    match check_duration(&d?, MAX_DURATION) {
        Ok(d) => Some(d),
        Err(DurationError::Negative) => None,
        Err(_) => Some(MAX_DURATION),
    }
}

/// Decides whether the slot whose newest task is `last` gets a new task.
/// `history` holds the slot's other ended tasks (for max attempts).
pub fn restart_verdict(
    policy: Option<&RestartPolicy>,
    last: &Task,
    history: &[&Task],
    mode: Mode,
    now: SystemTime,
) -> Restart {
    let default = RestartPolicy::default();
    let policy = policy.unwrap_or(&default);
    let state = observed(last);
    // A task stopped by the orchestrator itself (scale, update, lost node)
    // never ran to its end: no policy applies, replace it at once.
    if !state.is_terminal() {
        return Restart::Now;
    }
    let exit_code = last
        .status
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map_or(0, |c| c.exit_code);
    if state == TaskState::Shutdown {
        // Stopped on purpose (by the worker at our request: drain, scale,
        // update): a replacement, not a restart, whatever the condition.
        return Restart::Now;
    }
    let failed = state != TaskState::Complete || exit_code != 0;
    let condition = match policy.condition() {
        // Jobs are never restarted after success, whatever the policy says.
        restart_policy::Condition::Any if mode.is_job() => restart_policy::Condition::OnFailure,
        c => c,
    };
    match condition {
        restart_policy::Condition::None => return Restart::Never,
        restart_policy::Condition::OnFailure if !failed => return Restart::Never,
        _ => {}
    }
    if policy.max_attempts > 0 {
        let window = duration(policy.window).filter(|w| !w.is_zero());
        let counted = std::iter::once(&last)
            .chain(history.iter())
            // Attempts are the task's own ends: not stops we asked for,
            // nor tasks lost with their node.
            .filter(|t| ended_on_its_own(t))
            .filter(|t| match window {
                None => true,
                Some(w) => {
                    ended_at(t).is_some_and(|at| now.duration_since(at).unwrap_or_default() <= w)
                }
            })
            .count() as u64;
        if counted > policy.max_attempts {
            return Restart::Never;
        }
    }
    let delay = duration(policy.delay).unwrap_or(DEFAULT_RESTART_DELAY);
    // `at` is the worker's clock: saturating, whatever it reported.
    match ended_at(last).map(|at| later(at, delay)) {
        Some(due) if due > now => Restart::At(due),
        _ => Restart::Now,
    }
}

/// Whether the task ended by itself (completed, failed, rejected), as a
/// restart attempt counts it.
pub fn ended_on_its_own(task: &Task) -> bool {
    matches!(
        observed(task),
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

/// How many of a slot's own ends the reaper keeps so that `max_attempts`
/// can still be counted (none without a limit on attempts).
pub fn attempts_kept(policy: Option<&RestartPolicy>) -> usize {
    policy
        .map(|p| p.max_attempts)
        .filter(|&n| n > 0)
        .map_or(0, |n| {
            usize::try_from(n).unwrap_or(usize::MAX).saturating_add(1)
        })
}

/// When the task reached its current state.
pub fn ended_at(task: &Task) -> Option<SystemTime> {
    task.status
        .as_ref()
        .and_then(|s| s.timestamp)
        .and_then(|t| SystemTime::try_from(t).ok())
}

/// When the task was created.
pub fn created_at(task: &Task) -> SystemTime {
    task.meta
        .as_ref()
        .and_then(|m| m.created_at)
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A service's tasks grouped by slot, newest first in each.
pub fn by_slot<'a>(t: &'a Tables, service_id: &str) -> BTreeMap<SlotKey, Vec<&'a Task>> {
    let mut slots: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
    for task in t.tasks_of_service(service_id) {
        slots.entry(slot_of(task)).or_default().push(task);
    }
    for tasks in slots.values_mut() {
        tasks.sort_by_key(|t| {
            std::cmp::Reverse((created_at(t), t.meta.as_ref().map_or(0, |m| m.version)))
        });
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::ContainerStatus;

    fn ended(state: TaskState, code: i32, ago: Duration) -> Task {
        let mut t = Task::default();
        let status = t.status.get_or_insert_default();
        status.set_state(state);
        status.timestamp = Some((SystemTime::now() - ago).into());
        status.container = Some(ContainerStatus {
            exit_code: code,
            ..Default::default()
        });
        t
    }

    #[test]
    fn restart_policy_decides() {
        let now = SystemTime::now();
        let any = RestartPolicy::default();
        let failed = ended(TaskState::Failed, 1, Duration::from_secs(1));
        assert!(matches!(
            restart_verdict(Some(&any), &failed, &[], Mode::Replicated(1), now),
            Restart::At(_)
        ));
        let old = ended(TaskState::Failed, 1, Duration::from_secs(60));
        assert_eq!(
            restart_verdict(Some(&any), &old, &[], Mode::Replicated(1), now),
            Restart::Now
        );
        let mut on_failure = RestartPolicy::default();
        on_failure.set_condition(restart_policy::Condition::OnFailure);
        let ok = ended(TaskState::Complete, 0, Duration::from_secs(60));
        assert_eq!(
            restart_verdict(Some(&on_failure), &ok, &[], Mode::Replicated(1), now),
            Restart::Never
        );
        let mut none = RestartPolicy::default();
        none.set_condition(restart_policy::Condition::None);
        assert_eq!(
            restart_verdict(Some(&none), &old, &[], Mode::Replicated(1), now),
            Restart::Never
        );
        // A job that completed is done even with condition any.
        assert_eq!(
            restart_verdict(Some(&any), &ok, &[], Mode::GlobalJob, now),
            Restart::Never
        );
        let limited = RestartPolicy {
            max_attempts: 1,
            ..Default::default()
        };
        assert_eq!(
            restart_verdict(
                Some(&limited),
                &old,
                &[&old.clone()],
                Mode::Replicated(1),
                now
            ),
            Restart::Never
        );
        // Not ended by itself (lost node, scaled, updated): at once.
        let running = ended(TaskState::Running, 0, Duration::ZERO);
        assert_eq!(
            restart_verdict(Some(&none), &running, &[], Mode::Replicated(1), now),
            Restart::Now
        );
    }

    /// Values the API refuses, stored by an older version or a crafted
    /// peer: read without panicking, clamped.
    #[test]
    fn stored_extremes_never_panic() {
        let now = SystemTime::now();
        let pd = |seconds| prost_types::Duration { seconds, nanos: 0 };
        let mut failed = ended(TaskState::Failed, 1, Duration::ZERO);
        for (delay, window) in [(i64::MIN, i64::MIN), (i64::MAX, i64::MAX), (-1, 0)] {
            let policy = RestartPolicy {
                delay: Some(pd(delay)),
                window: Some(pd(window)),
                max_attempts: 3,
                ..Default::default()
            };
            let verdict = restart_verdict(Some(&policy), &failed, &[], Mode::Replicated(1), now);
            assert!(matches!(verdict, Restart::At(_)), "{delay}: {verdict:?}");
        }
        // A worker's timestamp at the end of time, plus the longest delay.
        failed.status.as_mut().unwrap().timestamp = Some(prost_types::Timestamp {
            seconds: i64::MAX / 2,
            nanos: 0,
        });
        let policy = RestartPolicy {
            delay: Some(pd(i64::MAX)),
            ..Default::default()
        };
        let _ = restart_verdict(Some(&policy), &failed, &[], Mode::Replicated(1), now);

        let mut huge = Service::default();
        huge.spec.get_or_insert_default().mode = Some(service_spec::Mode::Replicated(
            shoal_proto::objects::ReplicatedService {
                replicas: 1_000_000_000,
            },
        ));
        assert_eq!(Mode::of(&huge), Mode::Replicated(MAX_REPLICAS));
        huge.spec.get_or_insert_default().mode = Some(service_spec::Mode::ReplicatedJob(
            shoal_proto::objects::ReplicatedJob {
                max_concurrent: u64::MAX,
                total_completions: u64::MAX,
            },
        ));
        assert_eq!(
            Mode::of(&huge),
            Mode::ReplicatedJob {
                total: MAX_REPLICAS,
                concurrent: MAX_REPLICAS
            }
        );
    }
}
