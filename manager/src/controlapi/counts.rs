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
    // Running and not being stopped (jobs' tasks are desired complete): a
    // task being scaled away is not counted, as swarmkit's
    // ListServiceStatuses does.
    let running = tasks()
        .filter(up)
        .filter(|x| state(x) == TaskState::Running && x.desired_state() < TaskState::Shutdown)
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

#[cfg(test)]
mod tests {
    use shoal_proto::objects::node_status::State as NodeState;
    use shoal_proto::objects::{Service, TaskState};

    use super::service_counts;
    use crate::orchestrator::testkit::*;
    use crate::store::Store;

    fn counts(store: &Store, service: &Service) -> (u64, u64, u64) {
        let c = store.view(|t| service_counts(t, service));
        (c.running_tasks, c.desired_tasks, c.completed_tasks)
    }

    #[test]
    fn running_tasks_on_down_nodes_or_being_removed_do_not_count() {
        let web = replicated("web", 3);
        let tasks = vec![
            slot_task("t1", &web, 1, TaskState::Running, "n1"),
            slot_task("t2", &web, 2, TaskState::Running, "n2"),
            desired(
                slot_task("t3", &web, 3, TaskState::Running, "n1"),
                TaskState::Shutdown,
            ),
            slot_task("t4", &web, 4, TaskState::Preparing, "n1"),
        ];
        let nodes = vec![node("n1"), state(node("n2"), NodeState::Down)];
        let store = world(nodes, vec![web.clone()], tasks);
        assert_eq!(counts(&store, &web), (1, 3, 0));
    }

    #[test]
    fn jobs_count_what_is_left_and_what_completed() {
        let batch = replicated_job("batch", 10, 5);
        let mut tasks: Vec<_> = (1..=3)
            .map(|i| slot_task(&format!("done{i}"), &batch, i, TaskState::Complete, "n1"))
            .collect();
        tasks.push(slot_task("run", &batch, 4, TaskState::Running, "n1"));
        let store = world(vec![node("n1")], vec![batch.clone()], tasks);
        // 7 left to run, at most 5 at a time.
        assert_eq!(counts(&store, &batch), (1, 5, 3));

        let agent = global("agent");
        let tasks = vec![
            slot_task("a1", &agent, 0, TaskState::Running, "n1"),
            slot_task("a2", &agent, 0, TaskState::Running, "n2"),
            desired(
                slot_task("a3", &agent, 0, TaskState::Running, "n3"),
                TaskState::Shutdown,
            ),
        ];
        let nodes = vec![node("n1"), node("n2"), node("n3")];
        let store = world(nodes, vec![agent.clone()], tasks);
        assert_eq!(counts(&store, &agent), (2, 2, 0));
    }
}
