//! The scheduler's decision, pure: the store's tables and the pending tasks
//! in, a plan out. No I/O, no clock, so tests run it on hand-built tables
//! and the loop around it (`run`) stays thin.
//!
//! Tasks are placed one at a time and each placement is counted before
//! the next, so a batch spreads as evenly as tasks created one by one
//! would. Among the nodes that pass every filter, a task goes to the one
//! whose placement-preference groups hold fewest of its service's tasks,
//! then which holds fewest of them itself, then fewest tasks in all, then
//! the lowest id (so plans are reproducible).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use shoal_proto::objects::{Node, Task};

use super::filter::{Filter, PIPELINE, first_refusal};
use super::node_info::{Demand, NodeInfo};
use crate::store::Tables;

/// What the scheduler decided for one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (task id, node id): tasks to move to Assigned on the node.
    pub assign: Vec<(String, String)>,
    /// (task id, why): tasks that stay Pending, with the error to show.
    pub unschedulable: Vec<(String, String)>,
    /// How many of `unschedulable` each reason ([`REASONS`]) holds back.
    pub reasons: BTreeMap<&'static str, usize>,
}

/// A task no node takes because there are no nodes at all.
const NO_NODES: &str = "no_nodes";
/// A task whose placement constraints do not parse.
const BAD_CONSTRAINT: &str = "bad_constraint";
/// A preassigned task (global service) whose node is gone.
const NODE_GONE: &str = "node_gone";

/// Every reason a plan may give, in a word: one per filter (the one that
/// refused most nodes), and the cases no filter decides. A metric's
/// label, so a short fixed list rather than the explanation users see.
pub const REASONS: [&str; 9] = [
    "unavailable",
    "resources",
    "constraints",
    "platform",
    "host_port",
    "max_replicas",
    NO_NODES,
    BAD_CONSTRAINT,
    NODE_GONE,
];

/// Why a task stays pending: its reason's word and the message to show.
type Refusal = (&'static str, String);

impl Plan {
    fn refuse(&mut self, task: &Task, (reason, why): Refusal) {
        self.unschedulable.push((task.id.clone(), why));
        *self.reasons.entry(reason).or_default() += 1;
    }
}

/// Plans where `pending` tasks go. Preassigned tasks (global services,
/// `node_id` already set) are checked against their node first, so they
/// claim their node's resources before replicas spread over it.
pub fn plan(tables: &Tables, pending: &[&Task]) -> Plan {
    let mut nodes: Vec<NodeInfo<'_>> = tables
        .all::<Node>()
        .map(|n| NodeInfo::new(n, tables))
        .collect();
    let by_id: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node.id.as_str(), i))
        .collect();

    let (preassigned, free): (Vec<&Task>, Vec<&Task>) =
        pending.iter().partition(|t| !t.node_id.is_empty());
    let mut plan = Plan::default();
    for task in preassigned {
        let decision = Demand::new(task)
            .map_err(|e| (BAD_CONSTRAINT, e.to_string()))
            .and_then(|demand| {
                let i = check_preassigned(&nodes, &by_id, &demand)?;
                nodes[i].place(&demand);
                Ok(i)
            });
        match decision {
            Ok(i) => plan
                .assign
                .push((task.id.clone(), nodes[i].node.id.clone())),
            Err(refusal) => plan.refuse(task, refusal),
        }
    }
    for run in free.chunk_by(|a, b| same_demand(a, b)) {
        place_run(&mut nodes, run, &mut plan);
    }
    plan
}

/// Whether two tasks ask the same of a node: the same service and spec
/// (replicas of one service version do).
fn same_demand(a: &Task, b: &Task) -> bool {
    a.service_id == b.service_id && a.spec == b.spec && a.endpoint == b.endpoint
}

/// Places tasks that ask the same of a node. Without spread preferences
/// the best node is the least loaded by (tasks of the service, tasks,
/// id), so the nodes that pass the filters go into a heap on that key,
/// once for the whole run, and each placement updates only its node. A
/// node that stops passing (full, port taken, at max replicas) never
/// passes again in the run: placing only adds. The same choices as
/// [`choose`] per task, without looking at every node for every task:
/// 100,000 replicas on 1,000 nodes were 10^8 filter checks.
fn place_run<'a>(nodes: &mut [NodeInfo<'a>], run: &[&'a Task], plan: &mut Plan) {
    let Some(first) = run.first() else {
        return;
    };
    let demand = match Demand::new(first) {
        Ok(d) => d,
        Err(e) => {
            let why = e.to_string();
            run.iter()
                .for_each(|t| plan.refuse(t, (BAD_CONSTRAINT, why.clone())));
            return;
        }
    };
    if !preferences(first).is_empty() {
        for task in run {
            match choose(nodes, &demand) {
                Ok(i) => {
                    nodes[i].place(&demand);
                    plan.assign
                        .push((task.id.clone(), nodes[i].node.id.clone()));
                }
                Err(refusal) => plan.refuse(task, refusal),
            }
        }
        return;
    }
    let service = first.service_id.as_str();
    let key = |info: &NodeInfo<'a>, i: usize| {
        let node: &'a Node = info.node;
        Reverse((info.tasks_of(service), info.total, node.id.as_str(), i))
    };
    let mut heap: BinaryHeap<_> = (0..nodes.len())
        .filter(|&i| first_refusal(&demand, &nodes[i]).is_none())
        .map(|i| key(&nodes[i], i))
        .collect();
    let mut refused: Option<Refusal> = None;
    for task in run {
        let placed = loop {
            let Some(Reverse((.., i))) = heap.pop() else {
                break None;
            };
            if first_refusal(&demand, &nodes[i]).is_none() {
                nodes[i].place(&demand);
                heap.push(key(&nodes[i], i));
                break Some(i);
            }
        };
        match placed {
            Some(i) => plan
                .assign
                .push((task.id.clone(), nodes[i].node.id.clone())),
            None => {
                let why = refused.get_or_insert_with(|| refusal(&refusals(nodes, &demand)));
                plan.refuse(task, why.clone());
            }
        }
    }
}

/// How many nodes each filter refuses `demand` on.
fn refusals(nodes: &[NodeInfo<'_>], demand: &Demand<'_>) -> HashMap<Filter, usize> {
    let mut refused: HashMap<Filter, usize> = HashMap::new();
    for node in nodes {
        if let Some(f) = first_refusal(demand, node) {
            *refused.entry(f).or_default() += 1;
        }
    }
    refused
}

/// A preassigned task may only go to its node; the reason it cannot is
/// that node's single refusal (swarmkit words it without "no suitable node").
fn check_preassigned(
    nodes: &[NodeInfo<'_>],
    by_id: &HashMap<&str, usize>,
    demand: &Demand<'_>,
) -> Result<usize, Refusal> {
    let node_id = &demand.task.node_id;
    let i = *by_id.get(node_id.as_str()).ok_or_else(|| {
        let why = format!("node {node_id} assigned to the task no longer exists");
        (NODE_GONE, why)
    })?;
    match first_refusal(demand, &nodes[i]) {
        None => Ok(i),
        Some(filter) => Err((filter.reason(), filter.explain(1))),
    }
}

/// The best node for `demand`, or why there is none.
pub(super) fn choose(nodes: &[NodeInfo<'_>], demand: &Demand<'_>) -> Result<usize, Refusal> {
    let candidates: Vec<usize> = (0..nodes.len())
        .filter(|&i| first_refusal(demand, &nodes[i]).is_none())
        .collect();
    let refused = || refusals(nodes, demand);
    if candidates.is_empty() {
        return Err(refusal(&refused()));
    }

    let service = demand.task.service_id.as_str();
    let prefs = preferences(demand.task);
    // Each candidate's path down the preference tree: its value for each
    // spread label in turn (`None` for nodes without the label).
    let paths: Vec<Vec<Option<&str>>> = candidates
        .iter()
        .map(|&i| prefs.iter().map(|p| p.value(nodes[i].node)).collect())
        .collect();
    let mut group_load: HashMap<&[Option<&str>], usize> = HashMap::new();
    for (&i, path) in candidates.iter().zip(&paths) {
        for depth in 1..=path.len() {
            *group_load.entry(&path[..depth]).or_default() += nodes[i].tasks_of(service);
        }
    }
    let best = candidates
        .iter()
        .zip(&paths)
        .min_by_key(|(i, path)| {
            let node = &nodes[**i];
            let groups: Vec<usize> = (1..=path.len())
                .map(|depth| group_load.get(&path[..depth]).copied().unwrap_or(0))
                .collect();
            (groups, node.tasks_of(service), node.total, &node.node.id)
        })
        .map(|(i, _)| *i);
    best.ok_or_else(|| refusal(&refused()))
}

/// Why no node takes a task: the filter that refused most nodes (or
/// "no nodes"), and [`explain`]'s message.
fn refusal(refused: &HashMap<Filter, usize>) -> Refusal {
    let reason = by_count(refused)
        .first()
        .map_or(NO_NODES, |(f, _)| f.reason());
    (reason, explain(refused))
}

/// The filters that refused nodes, those that refused most first, ties in
/// pipeline order.
fn by_count(refused: &HashMap<Filter, usize>) -> Vec<(Filter, usize)> {
    let mut reasons: Vec<(Filter, usize)> = PIPELINE
        .iter()
        .filter_map(|f| refused.get(f).map(|&n| (*f, n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    reasons.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    reasons
}

/// Docker's message for a task no node takes: the filters that refused
/// most nodes first, ties in pipeline order.
pub fn explain(refused: &HashMap<Filter, usize>) -> String {
    let reasons = by_count(refused);
    if reasons.is_empty() {
        return "no suitable node".to_string();
    }
    let parts: Vec<String> = reasons.iter().map(|(f, n)| f.explain(*n)).collect();
    format!("no suitable node ({})", parts.join("; "))
}

/// A `spread=` placement preference: the label whose values tasks spread over.
#[derive(Debug, Clone, Copy)]
enum SpreadLabel<'a> {
    Node(&'a str),
    Engine(&'a str),
    /// A descriptor Shoal does not know spreads nothing: one group.
    None,
}

impl<'a> SpreadLabel<'a> {
    fn parse(descriptor: &'a str) -> SpreadLabel<'a> {
        let d = descriptor
            .strip_prefix("spread=")
            .unwrap_or(descriptor)
            .trim();
        let after = |prefix: &str| {
            d.get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| &d[prefix.len()..])
        };
        if let Some(label) = after("node.labels.") {
            SpreadLabel::Node(label)
        } else if let Some(label) = after("engine.labels.") {
            SpreadLabel::Engine(label)
        } else {
            SpreadLabel::None
        }
    }

    fn value(self, node: &Node) -> Option<&str> {
        let labels = match self {
            SpreadLabel::Node(l) => node
                .spec
                .as_ref()
                .and_then(|s| s.annotations.as_ref())
                .map(|a| (&a.labels, l)),
            SpreadLabel::Engine(l) => node
                .description
                .as_ref()
                .and_then(|d| d.engine.as_ref())
                .map(|e| (&e.labels, l)),
            SpreadLabel::None => None,
        };
        labels
            .and_then(|(labels, l)| labels.get(l))
            .map(String::as_str)
    }
}

fn preferences(task: &Task) -> Vec<SpreadLabel<'_>> {
    task.spec
        .as_ref()
        .and_then(|s| s.placement.as_ref())
        .map(|p| {
            p.preferences
                .iter()
                .map(|p| SpreadLabel::parse(&p.spread_descriptor))
                .collect()
        })
        .unwrap_or_default()
}
