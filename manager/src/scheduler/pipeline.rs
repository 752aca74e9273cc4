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

use std::collections::HashMap;

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
    for task in preassigned.into_iter().chain(free) {
        let demand = match Demand::new(task) {
            Ok(d) => d,
            Err(e) => {
                plan.unschedulable.push((task.id.clone(), e.to_string()));
                continue;
            }
        };
        let decision = if task.node_id.is_empty() {
            choose(&nodes, &demand)
        } else {
            check_preassigned(&nodes, &by_id, &demand)
        };
        match decision {
            Ok(i) => {
                nodes[i].place(&demand);
                plan.assign
                    .push((task.id.clone(), nodes[i].node.id.clone()));
            }
            Err(why) => plan.unschedulable.push((task.id.clone(), why)),
        }
    }
    plan
}

/// A preassigned task may only go to its node; the reason it cannot is
/// that node's single refusal (swarmkit words it without "no suitable node").
fn check_preassigned(
    nodes: &[NodeInfo<'_>],
    by_id: &HashMap<&str, usize>,
    demand: &Demand<'_>,
) -> Result<usize, String> {
    let node_id = &demand.task.node_id;
    let i = *by_id
        .get(node_id.as_str())
        .ok_or_else(|| format!("node {node_id} assigned to the task no longer exists"))?;
    match first_refusal(demand, &nodes[i]) {
        None => Ok(i),
        Some(filter) => Err(filter.explain(1)),
    }
}

/// The best node for `demand`, or why there is none.
fn choose(nodes: &[NodeInfo<'_>], demand: &Demand<'_>) -> Result<usize, String> {
    let mut refused: HashMap<Filter, usize> = HashMap::new();
    let candidates: Vec<usize> = (0..nodes.len())
        .filter(|&i| match first_refusal(demand, &nodes[i]) {
            None => true,
            Some(f) => {
                *refused.entry(f).or_default() += 1;
                false
            }
        })
        .collect();
    if candidates.is_empty() {
        return Err(explain(&refused));
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
    best.ok_or_else(|| explain(&refused))
}

/// Docker's message for a task no node takes: the filters that refused
/// most nodes first, ties in pipeline order.
pub fn explain(refused: &HashMap<Filter, usize>) -> String {
    let mut reasons: Vec<(Filter, usize)> = PIPELINE
        .iter()
        .filter_map(|f| refused.get(f).map(|&n| (*f, n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    reasons.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
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
