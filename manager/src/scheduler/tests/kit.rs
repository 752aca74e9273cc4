//! Hand-built nodes and tasks, and a store to hold them.

use std::collections::HashMap;

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::port_config::PublishMode;
use shoal_proto::objects::{
    Annotations, Endpoint, EngineDescription, Node, NodeDescription, NodeRole, NodeSpec,
    NodeStatus, Placement, PlacementPreference, Platform, PortConfig, ResourceRequirements,
    Resources, Task, TaskSpec, TaskState, TaskStatus,
};

use crate::scheduler::{Plan, pending_tasks, plan};
use crate::store::{Store, Stored, Tx};

pub const GB: i64 = 1 << 30;
pub const CPU: i64 = 1_000_000_000;

/// A Ready, Active linux/amd64 worker with 4 CPUs and 8 GB.
pub fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec {
            annotations: Some(Annotations::default()),
            ..Default::default()
        }),
        description: Some(NodeDescription {
            hostname: format!("host-{id}"),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            resources: Some(Resources {
                nano_cpus: 4 * CPU,
                memory_bytes: 8 * GB,
                pids: 0,
            }),
            engine: Some(EngineDescription::default()),
        }),
        status: Some(NodeStatus {
            state: NodeState::Ready as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn with_label(mut n: Node, k: &str, v: &str) -> Node {
    n.spec
        .get_or_insert_default()
        .annotations
        .get_or_insert_default()
        .labels
        .insert(k.into(), v.into());
    n
}

pub fn with_engine_label(mut n: Node, k: &str, v: &str) -> Node {
    n.description
        .get_or_insert_default()
        .engine
        .get_or_insert_default()
        .labels
        .insert(k.into(), v.into());
    n
}

pub fn availability(mut n: Node, a: Availability) -> Node {
    n.spec.get_or_insert_default().set_availability(a);
    n
}

pub fn state(mut n: Node, s: NodeState) -> Node {
    n.status.get_or_insert_default().set_state(s);
    n
}

pub fn manager(mut n: Node) -> Node {
    n.set_role(NodeRole::Manager);
    n
}

/// A Pending task of `service` that wants to run, on no node yet.
pub fn task(id: &str, service: &str) -> Task {
    Task {
        id: id.into(),
        service_id: service.into(),
        spec: Some(TaskSpec::default()),
        status: Some(TaskStatus {
            state: TaskState::Pending as i32,
            ..Default::default()
        }),
        desired_state: TaskState::Running as i32,
        ..Default::default()
    }
}

/// `task` as a running task on `node`.
pub fn running(mut t: Task, node: &str) -> Task {
    t.node_id = node.into();
    t.status
        .get_or_insert_default()
        .set_state(TaskState::Running);
    t
}

pub fn on(mut t: Task, node: &str) -> Task {
    t.node_id = node.into();
    t
}

pub fn placement(t: &mut Task) -> &mut Placement {
    t.spec
        .get_or_insert_default()
        .placement
        .get_or_insert_default()
}

pub fn constrained(mut t: Task, c: &[&str]) -> Task {
    placement(&mut t).constraints = c.iter().map(|s| s.to_string()).collect();
    t
}

pub fn spread(mut t: Task, descriptors: &[&str]) -> Task {
    placement(&mut t).preferences = descriptors
        .iter()
        .map(|d| PlacementPreference {
            spread_descriptor: d.to_string(),
        })
        .collect();
    t
}

pub fn reserving(mut t: Task, nano_cpus: i64, memory_bytes: i64) -> Task {
    t.spec.get_or_insert_default().resources = Some(ResourceRequirements {
        limits: None,
        reservations: Some(Resources {
            nano_cpus,
            memory_bytes,
            pids: 0,
        }),
    });
    t
}

pub fn host_port(mut t: Task, port: u32) -> Task {
    t.endpoint = Some(Endpoint {
        ports: vec![PortConfig {
            target_port: 80,
            published_port: port,
            publish_mode: PublishMode::Host as i32,
            ..Default::default()
        }],
        ..Default::default()
    });
    t
}

/// A store holding `nodes` and `tasks`, as one commit.
pub fn store(nodes: Vec<Node>, tasks: Vec<Task>) -> Store {
    let store = Store::new();
    commit(&store, |tx| {
        for n in nodes {
            tx.create(n)?;
        }
        for t in tasks {
            tx.create(t)?;
        }
        Ok(())
    });
    store
}

/// Applies a batch at the next index, as Raft would.
pub fn commit(store: &Store, f: impl FnOnce(&mut Tx<'_>) -> Result<(), crate::store::StoreError>) {
    let (batch, ()) = store.build(f).expect("build");
    store
        .apply(store.applied_index() + 1, batch)
        .expect("apply");
}

/// The plan for every pending task in `store`.
pub fn plan_all(store: &Store) -> Plan {
    store.view(|t| plan(t, &pending_tasks(t)))
}

/// How many tasks the plan sends to each node.
pub fn per_node(plan: &Plan) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (_, n) in &plan.assign {
        *counts.entry(n.clone()).or_default() += 1;
    }
    counts
}

/// The reason the plan gives for `task`.
pub fn why(plan: &Plan, task: &str) -> String {
    plan.unschedulable
        .iter()
        .find(|(t, _)| t == task)
        .map(|(_, w)| w.clone())
        .unwrap_or_else(|| panic!("{task} is not unschedulable in {plan:?}"))
}

pub fn version<T: Stored>(store: &Store, id: &str) -> u64 {
    store.view(|t| t.get::<T>(id).map(|x| x.version()).unwrap_or(0))
}
