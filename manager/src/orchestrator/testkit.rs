//! Builders for the orchestrator's unit tests: services in every mode,
//! tasks in a slot at a given state, a store that keeps their creation
//! order, and the plumbing to apply a plan and edit a task the way the
//! workers would. Nodes and the store come from the scheduler's kit.

use std::time::{Duration, SystemTime};

use shoal_proto::objects::{
    Annotations, ContainerSpec, ContainerStatus, GlobalJob, GlobalService, Node, Placement,
    ReplicatedJob, ReplicatedService, RestartPolicy, Service, ServiceSpec, Task, TaskSpec,
    TaskState, UpdateConfig, UpdateStatus, restart_policy, service_spec, task_status,
    update_status,
};

use crate::store::Store;

pub use crate::scheduler::tests::kit::{availability, commit, node, state, with_label};

/// The task spec of image `image`.
pub fn spec(image: &str) -> TaskSpec {
    TaskSpec {
        container: Some(ContainerSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(id: &str, mode: service_spec::Mode) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: format!("{id}-name"),
                ..Default::default()
            }),
            task: Some(spec("img:1")),
            mode: Some(mode),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn replicated(id: &str, replicas: u64) -> Service {
    service(
        id,
        service_spec::Mode::Replicated(ReplicatedService { replicas }),
    )
}

pub fn global(id: &str) -> Service {
    service(id, service_spec::Mode::Global(GlobalService {}))
}

pub fn replicated_job(id: &str, total: u64, concurrent: u64) -> Service {
    service(
        id,
        service_spec::Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent: concurrent,
            total_completions: total,
        }),
    )
}

pub fn global_job(id: &str) -> Service {
    service(id, service_spec::Mode::GlobalJob(GlobalJob {}))
}

pub fn task_spec(s: &mut Service) -> &mut TaskSpec {
    s.spec.get_or_insert_default().task.get_or_insert_default()
}

pub fn pd(d: Duration) -> prost_types::Duration {
    d.try_into().expect("duration")
}

/// `s` with a restart policy.
pub fn restart(
    mut s: Service,
    condition: restart_policy::Condition,
    delay: Option<Duration>,
    max_attempts: u64,
    window: Option<Duration>,
) -> Service {
    let mut p = RestartPolicy {
        delay: delay.map(pd),
        max_attempts,
        window: window.map(pd),
        ..Default::default()
    };
    p.set_condition(condition);
    task_spec(&mut s).restart = Some(p);
    s
}

pub fn constrained(mut s: Service, c: &[&str]) -> Service {
    task_spec(&mut s).placement = Some(Placement {
        constraints: c.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    });
    s
}

/// `s` in the middle of an update from `img:1` to `image` (or of a
/// rollback when `state` says so), with `update` as its update config.
pub fn updating(
    mut s: Service,
    image: &str,
    update: Option<UpdateConfig>,
    state: update_status::State,
) -> Service {
    let previous = s.spec.clone();
    let spec = s.spec.get_or_insert_default();
    spec.task = Some(self::spec(image));
    spec.update = update;
    s.previous_spec = previous;
    let mut status = UpdateStatus::default();
    status.set_state(state);
    s.update_status = Some(status);
    s
}

/// A task of `service` in `slot` (0: a global task on `node`), desired
/// running (complete for jobs), observed in `state`, on `node` ("" for
/// none), with the service's current task spec.
pub fn slot_task(id: &str, service: &Service, slot: u64, state: TaskState, node: &str) -> Task {
    let mut t = Task {
        id: id.into(),
        service_id: service.id.clone(),
        slot,
        node_id: node.into(),
        spec: service.spec.as_ref().and_then(|s| s.task.clone()),
        ..Default::default()
    };
    t.status.get_or_insert_default().set_state(state);
    t.set_desired_state(super::task::Mode::of(service).desired());
    t
}

/// `t` as it ended at `at` with `exit_code`.
pub fn ended(mut t: Task, state: TaskState, exit_code: i32, at: SystemTime) -> Task {
    let status = t.status.get_or_insert_default();
    status.set_state(state);
    status.timestamp = Some(at.into());
    status.container = Some(ContainerStatus {
        exit_code,
        ..Default::default()
    });
    t
}

pub fn desired(mut t: Task, state: TaskState) -> Task {
    t.set_desired_state(state);
    t
}

pub fn with_spec(mut t: Task, spec: TaskSpec) -> Task {
    t.spec = Some(spec);
    t
}

/// A store with `nodes` and `services`, then each task in its own commit
/// in list order (so a later task is the newer one of its slot).
pub fn world(nodes: Vec<Node>, services: Vec<Service>, tasks: Vec<Task>) -> Store {
    let store = Store::new();
    commit(&store, |tx| {
        for n in nodes {
            tx.create(n)?;
        }
        for s in services {
            tx.create(s)?;
        }
        Ok(())
    });
    for t in tasks {
        commit(&store, |tx| tx.create(t));
    }
    store
}

/// Applies new tasks and desired states, as the orchestrator loop would
/// (desired states only ever go up).
pub fn apply(store: &Store, create: &[Task], desire: &[(String, TaskState)]) {
    commit(store, |tx| {
        let t = tx.tables();
        for (id, to) in desire {
            let mut task = t.get::<Task>(id).expect("desired task exists").clone();
            if task.desired_state() < *to {
                task.set_desired_state(*to);
                tx.update(task)?;
            }
        }
        for task in create {
            tx.create(task.clone())?;
        }
        Ok(())
    });
}

/// Edits a stored task (as a worker's status report would).
pub fn edit(store: &Store, id: &str, f: impl FnOnce(&mut Task)) {
    commit(store, |tx| {
        let mut task = tx.tables().get::<Task>(id).expect("task exists").clone();
        f(&mut task);
        tx.update(task)
    });
}

/// Reports `state` (and `health`) for a task, on node `n1`.
pub fn report(store: &Store, id: &str, state: TaskState, health: task_status::Health) {
    edit(store, id, |t| {
        if t.node_id.is_empty() {
            t.node_id = "n1".into();
        }
        let status = t.status.get_or_insert_default();
        status.set_state(state);
        status.set_health(health);
    });
}

pub fn get(store: &Store, id: &str) -> Option<Task> {
    store.view(|t| t.get::<Task>(id).cloned())
}

/// The slot numbers of `tasks`, sorted.
pub fn slots(tasks: &[Task]) -> Vec<u64> {
    let mut s: Vec<u64> = tasks.iter().map(|t| t.slot).collect();
    s.sort();
    s
}

/// The node ids of `tasks`, sorted.
pub fn nodes_of(tasks: &[Task]) -> Vec<String> {
    let mut s: Vec<String> = tasks.iter().map(|t| t.node_id.clone()).collect();
    s.sort();
    s
}

/// `desire` as (id, state) sorted by id, with `&str` for easy comparing.
pub fn desires(desire: &[(String, TaskState)]) -> Vec<(&str, TaskState)> {
    let mut d: Vec<(&str, TaskState)> = desire.iter().map(|(i, s)| (i.as_str(), *s)).collect();
    d.sort();
    d
}
