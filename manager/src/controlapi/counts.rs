//! Replica counts of a service (Docker's `ServiceStatus`), computed where
//! the tasks are, so `service ls` never ships every task to its client.
//!
//! As Docker counts them: running tasks (desired running too) on nodes that
//! are not down; the
//! replica count (replicated), the live tasks on up nodes (global), or
//! what is left to run (jobs); completed tasks.

use shoal_proto::control::ServiceCounts;
use shoal_proto::objects::{Node, Service, Task, TaskState, node_status, service_spec::Mode};

use crate::store::Tables;

/// The counts of `service` in `t`.
pub fn service_counts(t: &Tables, service: &Service) -> ServiceCounts {
    let up = |task: &&Task| {
        t.get::<Node>(&task.node_id).is_none_or(|n| {
            n.status
                .as_ref()
                .is_none_or(|s| s.state() != node_status::State::Down)
        })
    };
    let state = |task: &Task| task.status.as_ref().map_or(TaskState::New, |s| s.state());
    let tasks = || t.tasks_of_service(&service.id);
    // Running and meant to keep running: a task being scaled away is not
    // counted (swarmkit's ListServiceStatuses does the same).
    let running = tasks()
        .filter(up)
        .filter(|x| state(x) == TaskState::Running && x.desired_state() == TaskState::Running)
        .count() as u64;
    let completed = tasks().filter(|x| state(x) == TaskState::Complete).count() as u64;
    let live = || {
        tasks()
            .filter(up)
            .filter(|x| !matches!(x.desired_state(), TaskState::Shutdown | TaskState::Remove))
    };
    let desired = match service.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(Mode::Replicated(r)) => r.replicas,
        Some(Mode::Global(_)) => live().count() as u64,
        Some(Mode::ReplicatedJob(j)) => j
            .max_concurrent
            .min(j.total_completions.saturating_sub(completed)),
        Some(Mode::GlobalJob(_)) => (live().count() as u64).saturating_sub(completed),
        None => 0,
    };
    ServiceCounts {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: completed,
    }
}
