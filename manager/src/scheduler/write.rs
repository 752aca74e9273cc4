//! Turns a plan into store writes. The plan was made on an earlier view, so
//! each decision is re-checked against the transaction's tables: a task
//! that moved since (another writer, or a later version) is skipped, and
//! so is an assignment to a node that changed; the commit that moved them
//! wakes the scheduler again. Errors are only rewritten when they change,
//! so an unschedulable task does not churn the log.

use std::collections::HashMap;
use std::time::SystemTime;

use shoal_proto::objects::{Node, Task, TaskState};

use super::pipeline::Plan;
use crate::store::{StoreError, Stored, Tables, Tx};

/// The status message of a task the scheduler placed (Docker's words).
pub const ASSIGNED_MESSAGE: &str = "scheduler assigned task to node";

/// The versions a plan was made on, to detect what moved since.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    tasks: HashMap<String, u64>,
    nodes: HashMap<String, u64>,
}

impl Versions {
    /// Records the versions of everything `plan` names, as `tables` has them.
    pub fn of(tables: &Tables, plan: &Plan) -> Versions {
        let task_ids = plan
            .assign
            .iter()
            .chain(&plan.unschedulable)
            .map(|(t, _)| t);
        Versions {
            tasks: task_ids
                .filter_map(|id| tables.get::<Task>(id).map(|t| (id.clone(), t.version())))
                .collect(),
            nodes: plan
                .assign
                .iter()
                .filter_map(|(_, n)| tables.get::<Node>(n).map(|x| (n.clone(), x.version())))
                .collect(),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Tasks moved to Assigned.
    pub assigned: usize,
    /// Tasks whose error changed.
    pub explained: usize,
    /// Decisions dropped because their task or node moved.
    pub stale: usize,
}

/// Records `plan` in `tx`, skipping what moved since `versions`.
pub fn write_plan(
    tx: &mut Tx<'_>,
    plan: &Plan,
    versions: &Versions,
    now: SystemTime,
) -> Result<Written, StoreError> {
    let tables = tx.tables();
    let mut written = Written::default();
    let still_pending = |id: &str| {
        tables
            .get::<Task>(id)
            .filter(|t| versions.tasks.get(id) == Some(&t.version()))
            .filter(|t| t.status.as_ref().map(|s| s.state()) == Some(TaskState::Pending))
    };
    for (task_id, node_id) in &plan.assign {
        let node_unchanged = tables
            .get::<Node>(node_id)
            .is_some_and(|n| versions.nodes.get(node_id) == Some(&n.version()));
        let Some(task) = still_pending(task_id).filter(|_| node_unchanged) else {
            written.stale += 1;
            continue;
        };
        let mut task = task.clone();
        task.node_id = node_id.clone();
        let status = task.status.get_or_insert_default();
        status.set_state(TaskState::Assigned);
        status.message = ASSIGNED_MESSAGE.to_string();
        status.err.clear();
        status.timestamp = Some(now.into());
        tx.update(task)?;
        written.assigned += 1;
    }
    for (task_id, why) in &plan.unschedulable {
        let Some(task) = still_pending(task_id) else {
            written.stale += 1;
            continue;
        };
        if task.status.as_ref().is_some_and(|s| &s.err == why) {
            continue;
        }
        let mut task = task.clone();
        let status = task.status.get_or_insert_default();
        status.err = why.clone();
        status.timestamp = Some(now.into());
        tx.update(task)?;
        written.explained += 1;
    }
    Ok(written)
}
