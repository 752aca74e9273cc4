//! Nodes as Docker's `Node`, and the `NodeSpec` that `node update` sends.

use bollard::models::{
    EngineDescription, ManagerStatus, Node, NodeDescription, NodeSpec, NodeSpecAvailabilityEnum,
    NodeSpecRoleEnum, NodeState, NodeStatus, Platform, Reachability, ResourceObject,
};
use shoal_proto::objects::{self, NodeRole, node_spec::Availability};

use super::{times, version};

/// A node as `GET /nodes` answers it.
pub fn node_to_docker(node: &objects::Node) -> Node {
    let (created_at, updated_at) = times(node.meta.as_ref());
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    Node {
        id: Some(node.id.clone()),
        version: version(node.meta.as_ref()),
        created_at,
        updated_at,
        spec: Some(spec_to_docker(&spec)),
        description: Some(NodeDescription {
            hostname: Some(description.hostname.clone()),
            platform: description.platform.map(|p| Platform {
                architecture: Some(p.architecture),
                os: Some(p.os),
            }),
            resources: description.resources.map(|r| ResourceObject {
                nano_cpus: Some(r.nano_cpus),
                memory_bytes: Some(r.memory_bytes),
                generic_resources: None,
            }),
            engine: description.engine.map(|e| EngineDescription {
                engine_version: Some(e.version),
                labels: Some(e.labels.into_iter().collect()),
                plugins: None,
            }),
            tls_info: None,
        }),
        status: Some(NodeStatus {
            state: Some(node_state(status.state())),
            message: Some(status.message.clone()),
            addr: Some(status.addr.clone()),
        }),
        manager_status: node.manager_status.as_ref().map(|m| ManagerStatus {
            leader: Some(m.leader),
            reachability: Some(match m.reachability() {
                objects::manager_status::Reachability::Reachable => Reachability::REACHABLE,
                objects::manager_status::Reachability::Unreachable => Reachability::UNREACHABLE,
                objects::manager_status::Reachability::Unknown => Reachability::UNKNOWN,
            }),
            addr: Some(m.addr.clone()),
        }),
    }
}

fn node_state(state: objects::node_status::State) -> NodeState {
    use objects::node_status::State;
    match state {
        State::Unknown => NodeState::UNKNOWN,
        State::Down => NodeState::DOWN,
        State::Ready => NodeState::READY,
        State::Disconnected => NodeState::DISCONNECTED,
    }
}

/// The spec as Docker shows it.
pub fn spec_to_docker(spec: &objects::NodeSpec) -> NodeSpec {
    let annotations = spec.annotations.clone().unwrap_or_default();
    NodeSpec {
        name: (!annotations.name.is_empty()).then_some(annotations.name),
        labels: Some(annotations.labels.into_iter().collect()),
        role: Some(match spec.desired_role() {
            NodeRole::Worker => NodeSpecRoleEnum::WORKER,
            NodeRole::Manager => NodeSpecRoleEnum::MANAGER,
        }),
        availability: Some(match spec.availability() {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        }),
    }
}

/// What `POST /nodes/{id}/update` sends, as Shoal's spec. Docker replaces
/// the whole spec, so absent fields take their defaults.
pub fn spec_from_docker(spec: NodeSpec) -> Result<objects::NodeSpec, String> {
    let mut out = objects::NodeSpec {
        annotations: Some(objects::Annotations {
            name: spec.name.unwrap_or_default(),
            labels: spec.labels.unwrap_or_default().into_iter().collect(),
        }),
        ..Default::default()
    };
    out.set_desired_role(match spec.role {
        Some(NodeSpecRoleEnum::MANAGER) => NodeRole::Manager,
        Some(NodeSpecRoleEnum::WORKER) | None => NodeRole::Worker,
        Some(NodeSpecRoleEnum::EMPTY) => {
            return Err("invalid Role: it must be worker or manager".into());
        }
    });
    out.set_availability(match spec.availability {
        Some(NodeSpecAvailabilityEnum::ACTIVE) | None => Availability::Active,
        Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
        Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
        Some(NodeSpecAvailabilityEnum::EMPTY) => {
            return Err("invalid Availability: it must be active, pause or drain".into());
        }
    });
    Ok(out)
}

/// Whether `node` passes Docker's node filters (`id`, `name`, `role`,
/// `membership`, `node.label`, `label`: the engine's labels).
pub fn matches(node: &objects::Node, f: &crate::docker_api::filters::Filters) -> bool {
    let spec = node.spec.clone().unwrap_or_default();
    let annotations = spec.annotations.clone().unwrap_or_default();
    let hostname = node
        .description
        .as_ref()
        .map_or("", |d| d.hostname.as_str());
    let engine_labels = node
        .description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .map(|e| e.labels.clone())
        .unwrap_or_default();
    let role = match spec.desired_role() {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
    };
    f.pass("id", |p| node.id.starts_with(p))
        && f.pass("name", |n| {
            annotations.name.starts_with(n) || hostname.starts_with(n)
        })
        && f.pass("role", |r| r == role)
        && f.pass("membership", |m| m == "accepted")
        && f.labels_pass("node.label", |k| {
            annotations.labels.get(k).map(String::as_str)
        })
        && f.labels_pass("label", |k| engine_labels.get(k).map(String::as_str))
}
