//! What the page shows, read from the control API's lists: every node,
//! every service (with its counts), and the tasks that are meant to run
//! now, not the history `service ps -a` keeps. [`View`] is the whole
//! cluster; [`View::render`] cuts it to one viewer's filters and to at
//! most [`MAX_CARDS`] task cards.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{
    ListFilters, ListNodesRequest, ListServicesRequest, ListTasksRequest, ServiceCounts,
};
use shoal_proto::listing::Joined as _;
use shoal_proto::objects::{
    self, NodeRole, TaskState, manager_status::Reachability, node_spec::Availability,
    node_status::State, service_spec::Mode,
};
use shoal_proto::task_state::observed;
use tonic::Status;
use tonic::transport::Channel;

/// The most task cards one page gets: past this, each node column shows
/// its share and the page says how many it left out.
pub const MAX_CARDS: usize = 1000;

/// One node: a column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub id: String,
    /// The host name (the node's spec name when it has none).
    pub name: String,
    /// `manager` or `worker`.
    pub role: &'static str,
    /// `Leader`, `Reachable`, `Unreachable`, `Unknown`; empty for a worker.
    pub manager: &'static str,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub status: &'static str,
    /// `active`, `pause` or `drain`.
    pub availability: &'static str,
    /// The engine's kind and version (`docker 27.3.1`, `embedded 0.1.0`).
    pub engine: String,
    /// The address the node reported.
    pub addr: String,
}

/// One service: a colour and a line in the legend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    /// `replicated`, `global`, `replicated-job` or `global-job`.
    pub mode: &'static str,
    pub image: String,
    /// The colour's hue (0–359), from the name: the same service keeps its
    /// colour across reloads, daemons and viewers.
    pub hue: u16,
    /// Tasks running on nodes that are up, and tasks wanted.
    pub running: u64,
    pub desired: u64,
}

/// One task: a card in its node's column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub id: String,
    pub service_id: String,
    pub service: String,
    /// `web.3`, or `web.<node id>` (12 characters) for a global
    /// service's task.
    pub label: String,
    /// The replica's slot; absent for a global service's task.
    pub slot: Option<u64>,
    /// Empty while no node is assigned.
    pub node_id: String,
    /// The observed state, in Docker's words (`running`, `preparing`).
    pub state: &'static str,
    /// The desired state.
    pub desired: &'static str,
    /// The status message, or the error when there is one.
    pub message: String,
    pub hue: u16,
}

/// The cluster as the page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub nodes: Vec<NodeView>,
    pub services: Vec<ServiceView>,
    pub tasks: Vec<TaskView>,
}

/// A viewer's filters (`?node=&service=`): a name or an id each; empty
/// shows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Filter {
    pub node: String,
    pub service: String,
}

/// What one viewer is sent.
#[derive(Debug, Serialize)]
pub struct Rendered<'a> {
    pub nodes: &'a [NodeView],
    pub services: &'a [ServiceView],
    pub tasks: Vec<&'a TaskView>,
    pub filter: &'a Filter,
    /// Tasks that pass the filters, and how many of them are in `tasks`.
    pub total: usize,
    pub shown: usize,
}

impl View {
    /// Reads the cluster through the control API (the leader answers).
    pub async fn fetch(control: &ControlClient<Channel>) -> Result<View, Status> {
        let (mut c1, mut c2, mut c3) = (control.clone(), control.clone(), control.clone());
        let nodes = c1.list_nodes(ListNodesRequest::default()).joined();
        let services = c2
            .list_services(ListServicesRequest {
                filters: None,
                status: true,
            })
            .joined();
        // Jobs want `complete`; the finished ones are dropped below.
        let tasks = c3
            .list_tasks(ListTasksRequest {
                filters: Some(ListFilters {
                    desired_states: vec![TaskState::Running as i32, TaskState::Complete as i32],
                    ..Default::default()
                }),
            })
            .joined();
        let (nodes, services, tasks) = tokio::try_join!(nodes, services, tasks)?;
        Ok(View::build(
            nodes.nodes,
            services.services,
            services.statuses,
            tasks.tasks,
        ))
    }

    /// The view of these lists; `counts` are the services' counts, in the
    /// same order (missing ones read as zero).
    pub fn build(
        nodes: Vec<objects::Node>,
        services: Vec<objects::Service>,
        counts: Vec<ServiceCounts>,
        tasks: Vec<objects::Task>,
    ) -> View {
        let mut counts = counts.into_iter();
        let services: Vec<ServiceView> = services
            .iter()
            .map(|s| service_view(s, counts.next().unwrap_or_default()))
            .collect();
        let by_id: HashMap<&str, &ServiceView> =
            services.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut tasks: Vec<TaskView> = tasks
            .iter()
            .filter(|t| is_current(t))
            .map(|t| task_view(t, by_id.get(t.service_id.as_str()).copied()))
            .collect();
        tasks.sort_by(|a, b| {
            (&a.node_id, &a.service, a.slot, &a.id).cmp(&(&b.node_id, &b.service, b.slot, &b.id))
        });
        View {
            nodes: nodes.iter().map(node_view).collect(),
            services,
            tasks,
        }
    }

    /// The part of the view `filter` selects, with at most `cap` tasks:
    /// when there are more, every node keeps an equal share (what a node
    /// does not use goes to the others), so no column is left empty.
    pub fn render<'a>(&'a self, filter: &'a Filter, cap: usize) -> Rendered<'a> {
        let nodes: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| filter.node == n.id || filter.node == n.name)
            .map(|n| n.id.as_str())
            .collect();
        let selected = self.tasks.iter().filter(|t| {
            (filter.node.is_empty()
                || nodes.contains(&t.node_id.as_str())
                || filter.node == t.node_id)
                && (filter.service.is_empty()
                    || filter.service == t.service
                    || filter.service == t.service_id)
        });
        // Tasks are sorted by node: one queue per node, taken in turns.
        let mut queues: BTreeMap<&str, VecDeque<&TaskView>> = BTreeMap::new();
        let mut total = 0;
        for task in selected {
            total += 1;
            queues.entry(&task.node_id).or_default().push_back(task);
        }
        let mut tasks = Vec::with_capacity(total.min(cap));
        while tasks.len() < cap && !queues.is_empty() {
            queues.retain(|_, queue| {
                if tasks.len() < cap
                    && let Some(task) = queue.pop_front()
                {
                    tasks.push(task);
                }
                !queue.is_empty()
            });
        }
        tasks.sort_by(|a, b| {
            (&a.node_id, &a.service, a.slot, &a.id).cmp(&(&b.node_id, &b.service, b.slot, &b.id))
        });
        Rendered {
            nodes: &self.nodes,
            services: &self.services,
            shown: tasks.len(),
            tasks,
            filter,
            total,
        }
    }
}

/// Whether a task belongs on the board: it is meant to run (a job's task
/// until it has finished). Tasks being stopped or replaced, and the
/// history, are left out.
fn is_current(task: &objects::Task) -> bool {
    match task.desired_state() {
        TaskState::Running => true,
        TaskState::Complete => !observed(task).is_terminal(),
        _ => false,
    }
}

/// A stable hue for `name` (FNV-1a), spread over the colour wheel.
pub fn hue(name: &str) -> u16 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % 360) as u16
}

fn node_view(n: &objects::Node) -> NodeView {
    let description = n.description.as_ref();
    let hostname = description.map_or("", |d| d.hostname.as_str());
    let spec_name = n
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str());
    let name = [hostname, spec_name, &n.id]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let engine = description
        .and_then(|d| d.engine.as_ref())
        .map(|e| format!("{} {}", e.kind, e.version).trim().to_string())
        .unwrap_or_default();
    NodeView {
        id: n.id.clone(),
        name: name.to_string(),
        role: match n.role() {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        },
        manager: match &n.manager_status {
            None => "",
            Some(m) if m.leader => "Leader",
            Some(m) => match m.reachability() {
                Reachability::Reachable => "Reachable",
                Reachability::Unreachable => "Unreachable",
                Reachability::Unknown => "Unknown",
            },
        },
        status: match n.status.as_ref().map_or(State::Unknown, |s| s.state()) {
            State::Ready => "ready",
            State::Down => "down",
            State::Disconnected => "disconnected",
            State::Unknown => "unknown",
        },
        availability: match n
            .spec
            .as_ref()
            .map_or(Availability::Active, |s| s.availability())
        {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        },
        engine,
        addr: n.status.as_ref().map_or(String::new(), |s| s.addr.clone()),
    }
}

fn service_view(s: &objects::Service, counts: ServiceCounts) -> ServiceView {
    let spec = s.spec.clone().unwrap_or_default();
    let name = spec.annotations.map(|a| a.name).unwrap_or_default();
    ServiceView {
        id: s.id.clone(),
        hue: hue(&name),
        name,
        mode: match spec.mode {
            None | Some(Mode::Replicated(_)) => "replicated",
            Some(Mode::Global(_)) => "global",
            Some(Mode::ReplicatedJob(_)) => "replicated-job",
            Some(Mode::GlobalJob(_)) => "global-job",
        },
        image: spec
            .task
            .and_then(|t| t.container)
            .map(|c| c.image)
            .unwrap_or_default(),
        running: counts.running_tasks,
        desired: counts.desired_tasks,
    }
}

/// Global services' tasks have no slot: the node tells them apart.
fn task_view(t: &objects::Task, service: Option<&ServiceView>) -> TaskView {
    let name = match service {
        Some(s) => s.name.clone(),
        None => t
            .service_annotations
            .as_ref()
            .map_or(String::new(), |a| a.name.clone()),
    };
    let global = service.is_some_and(|s| s.mode.starts_with("global"));
    let slot = (!global && t.slot > 0).then_some(t.slot);
    // The node id as `service ps` prints it: its first 12 characters.
    let label = match slot {
        Some(slot) => format!("{name}.{slot}"),
        None => format!("{name}.{}", t.node_id.get(..12).unwrap_or(&t.node_id)),
    };
    let status = t.status.clone().unwrap_or_default();
    TaskView {
        id: t.id.clone(),
        service_id: t.service_id.clone(),
        hue: hue(&name),
        service: name,
        label,
        slot,
        node_id: t.node_id.clone(),
        state: observed(t).docker_name(),
        desired: t.desired_state().docker_name(),
        message: if status.err.is_empty() {
            status.message
        } else {
            status.err
        },
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
