//! What the scheduler knows about one node while it plans: the node, and
//! what the tasks already on it hold (reservations, host ports, counts per
//! service). A plan adds every task it places to its node's info, so later
//! decisions in the same batch see earlier ones without touching the store.
//!
//! Also what a task asks for ([`Demand`]), derived once per task so the
//! filters compare plain numbers and sets.

use std::collections::{HashMap, HashSet};

use shoal_proto::objects::port_config::PublishMode;
use shoal_proto::objects::{Node, Platform, Task, TaskState};

use super::constraint::{Constraint, ConstraintError, parse_constraints};
use crate::store::Tables;

/// A published host-mode port: (protocol, port).
pub type HostPort = (i32, u32);

/// Whether a task on a node holds its resources there: it has been given
/// to the node (Assigned or later), has not finished, and is not being
/// stopped. Job tasks (desired Complete) hold theirs until they finish.
pub fn holds_resources(task: &Task) -> bool {
    let state = task.status.as_ref().map_or(TaskState::New, |s| s.state());
    (TaskState::Assigned..=TaskState::Running).contains(&state)
        && task.desired_state() <= TaskState::Complete
}

/// One node, and the load the plan has seen on it so far.
#[derive(Debug, Clone)]
pub struct NodeInfo<'a> {
    /// The node.
    pub node: &'a Node,
    /// CPU reserved by its tasks, in billionths of a CPU.
    pub reserved_cpus: i64,
    /// Memory reserved by its tasks, in bytes.
    pub reserved_memory: i64,
    /// Host-mode ports its tasks publish.
    pub host_ports: HashSet<HostPort>,
    /// Its active tasks, per service id.
    pub per_service: HashMap<String, usize>,
    /// All its active tasks.
    pub total: usize,
}

impl<'a> NodeInfo<'a> {
    /// The node with the tasks the store has on it.
    pub fn new(node: &'a Node, tables: &Tables) -> NodeInfo<'a> {
        let mut info = NodeInfo {
            node,
            reserved_cpus: 0,
            reserved_memory: 0,
            host_ports: HashSet::new(),
            per_service: HashMap::new(),
            total: 0,
        };
        for task in tables
            .tasks_of_node(&node.id)
            .filter(|t| holds_resources(t))
        {
            let (cpus, memory) = reservations(task);
            info.add(&task.service_id, cpus, memory, host_ports(task));
        }
        info
    }

    /// Counts a task the plan places here.
    pub fn place(&mut self, demand: &Demand<'_>) {
        self.add(
            &demand.task.service_id,
            demand.nano_cpus,
            demand.memory_bytes,
            demand.host_ports.iter().copied(),
        );
    }

    fn add(
        &mut self,
        service_id: &str,
        cpus: i64,
        memory: i64,
        ports: impl IntoIterator<Item = HostPort>,
    ) {
        self.reserved_cpus = self.reserved_cpus.saturating_add(cpus);
        self.reserved_memory = self.reserved_memory.saturating_add(memory);
        self.host_ports.extend(ports);
        *self.per_service.entry(service_id.to_string()).or_default() += 1;
        self.total += 1;
    }

    /// Active tasks of `service_id` here.
    pub fn tasks_of(&self, service_id: &str) -> usize {
        self.per_service.get(service_id).copied().unwrap_or(0)
    }

    /// The node's (cpus, memory) capacity as it describes itself.
    pub fn capacity(&self) -> (i64, i64) {
        self.node
            .description
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .map_or((0, 0), |r| (r.nano_cpus, r.memory_bytes))
    }
}

/// What one task asks of a node.
#[derive(Debug, Clone)]
pub struct Demand<'a> {
    /// The task.
    pub task: &'a Task,
    /// Reserved CPU, in billionths.
    pub nano_cpus: i64,
    /// Reserved memory, in bytes.
    pub memory_bytes: i64,
    /// Parsed placement constraints.
    pub constraints: Vec<Constraint>,
    /// Platforms it runs on (empty: any).
    pub platforms: &'a [Platform],
    /// Host-mode ports it publishes.
    pub host_ports: Vec<HostPort>,
    /// At most this many of its service's tasks per node (0: no limit).
    pub max_replicas: u64,
}

impl<'a> Demand<'a> {
    /// Derives a task's demand; fails only on a malformed constraint.
    pub fn new(task: &'a Task) -> Result<Demand<'a>, ConstraintError> {
        let placement = task.spec.as_ref().and_then(|s| s.placement.as_ref());
        let (nano_cpus, memory_bytes) = reservations(task);
        Ok(Demand {
            task,
            nano_cpus,
            memory_bytes,
            constraints: parse_constraints(placement.map_or(&[], |p| &p.constraints))?,
            platforms: placement.map_or(&[], |p| &p.platforms),
            host_ports: host_ports(task).collect(),
            max_replicas: placement.map_or(0, |p| p.max_replicas),
        })
    }
}

fn reservations(task: &Task) -> (i64, i64) {
    task.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .map_or((0, 0), |r| (r.nano_cpus, r.memory_bytes))
}

/// The host-mode ports a task publishes. The allocator fills
/// `endpoint.ports`; until it has, the requested `endpoint.spec.ports`
/// are what the task will ask the node for.
fn host_ports(task: &Task) -> impl Iterator<Item = HostPort> + '_ {
    let endpoint = task.endpoint.as_ref();
    let ports = endpoint
        .map(|e| e.ports.as_slice())
        .filter(|p| !p.is_empty())
        .or_else(|| {
            endpoint
                .and_then(|e| e.spec.as_ref())
                .map(|s| s.ports.as_slice())
        })
        .unwrap_or(&[]);
    ports
        .iter()
        .filter(|p| p.publish_mode() == PublishMode::Host && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
}
