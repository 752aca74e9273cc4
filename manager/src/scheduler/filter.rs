//! The filters a node must pass to take a task, in the order they run.
//! Each can say, in Docker's words, why it refused some number of nodes;
//! a node is counted against the first filter it fails, so the counts in
//! an explanation add up to the number of nodes.

use shoal_proto::objects::Platform;
use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;

pub use super::constraint::{
    Constraint, ConstraintError, ConstraintKey, Operator, parse_constraints,
};
use super::node_info::{Demand, NodeInfo};

/// One reason a node may not take a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// The node is Ready and Active (Pause and Drain take no new tasks).
    Ready,
    /// The node has the CPU and memory the task reserves left over.
    Resources,
    /// The node satisfies the task's placement constraints.
    Constraints,
    /// The node's platform is one the task runs on.
    Platform,
    /// No task on the node publishes the same host-mode port.
    HostPorts,
    /// The node holds fewer of the service's tasks than `max_replicas`.
    MaxReplicas,
}

/// Every filter, in the order they run (swarmkit's order: cheap and most
/// telling first).
pub const PIPELINE: [Filter; 6] = [
    Filter::Ready,
    Filter::Resources,
    Filter::Constraints,
    Filter::Platform,
    Filter::HostPorts,
    Filter::MaxReplicas,
];

impl Filter {
    /// Whether `node` passes this filter for `demand`.
    pub fn passes(self, demand: &Demand<'_>, node: &NodeInfo<'_>) -> bool {
        match self {
            Filter::Ready => ready(node),
            Filter::Resources => resources(demand, node),
            Filter::Constraints => demand.constraints.iter().all(|c| c.matches(node.node)),
            Filter::Platform => platform(demand, node),
            Filter::HostPorts => demand
                .host_ports
                .iter()
                .all(|p| !node.host_ports.contains(p)),
            Filter::MaxReplicas => {
                demand.max_replicas == 0
                    || (node.tasks_of(&demand.task.service_id) as u64) < demand.max_replicas
            }
        }
    }

    /// Why `nodes` nodes failed this filter, as Docker says it.
    pub fn explain(self, nodes: usize) -> String {
        let on = if nodes == 1 {
            "1 node".to_string()
        } else {
            format!("{nodes} nodes")
        };
        match self {
            Filter::Ready => format!("{on} not available for new tasks"),
            Filter::Resources => format!("insufficient resources on {on}"),
            Filter::Constraints => format!("scheduling constraints not satisfied on {on}"),
            Filter::Platform => format!("unsupported platform on {on}"),
            Filter::HostPorts => format!("host-mode port already in use on {on}"),
            // Docker's words, grammar included, so scripts that match them work.
            Filter::MaxReplicas => "max replicas per node limit exceed".to_string(),
        }
    }

    /// The filter in a word or two: the `reason` label of the
    /// unschedulable-tasks metric (few values, unlike [`Filter::explain`]).
    pub fn reason(self) -> &'static str {
        match self {
            Filter::Ready => "unavailable",
            Filter::Resources => "resources",
            Filter::Constraints => "constraints",
            Filter::Platform => "platform",
            Filter::HostPorts => "host_port",
            Filter::MaxReplicas => "max_replicas",
        }
    }
}

/// The first filter `node` fails for `demand`, or `None` if it may take it.
pub fn first_refusal(demand: &Demand<'_>, node: &NodeInfo<'_>) -> Option<Filter> {
    PIPELINE.into_iter().find(|f| !f.passes(demand, node))
}

fn ready(node: &NodeInfo<'_>) -> bool {
    let node = node.node;
    let state = node
        .status
        .as_ref()
        .map_or(NodeState::Unknown, |s| s.state());
    let availability = node
        .spec
        .as_ref()
        .map_or(Availability::Active, |s| s.availability());
    state == NodeState::Ready && availability == Availability::Active
}

fn resources(demand: &Demand<'_>, node: &NodeInfo<'_>) -> bool {
    let (cpus, memory) = node.capacity();
    let fits = |asked: i64, reserved: i64, total: i64| {
        asked <= 0 || reserved.saturating_add(asked) <= total
    };
    fits(demand.nano_cpus, node.reserved_cpus, cpus)
        && fits(demand.memory_bytes, node.reserved_memory, memory)
}

fn platform(demand: &Demand<'_>, node: &NodeInfo<'_>) -> bool {
    if demand.platforms.is_empty() {
        return true;
    }
    let ours = node
        .node
        .description
        .as_ref()
        .and_then(|d| d.platform.clone())
        .unwrap_or_default();
    demand.platforms.iter().any(|p| platform_fits(p, &ours))
}

/// Whether a task asking for `wanted` runs on a node of platform `node`:
/// an empty field asks for anything; architectures have aliases.
pub fn platform_fits(wanted: &Platform, node: &Platform) -> bool {
    let arch = |a: &str| match a.to_ascii_lowercase().as_str() {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    (wanted.architecture.is_empty() || arch(&wanted.architecture) == arch(&node.architecture))
        && (wanted.os.is_empty() || wanted.os.eq_ignore_ascii_case(&node.os))
}
