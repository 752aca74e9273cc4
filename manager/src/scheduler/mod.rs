//! The scheduler: gives Pending tasks a node.
//!
//! ```text
//!  commits (tasks, nodes) ──> wake ──> batching window ──> plan (pure) ──> one update
//!        ^                                                                    │
//!        └──────────────── its own commit is ignored ─────────────────────────┘
//! ```
//!
//! Layout: [`filter`] says whether a node may take a task and why not;
//! [`pipeline`] plans a batch over a snapshot of the store; [`write`]
//! re-checks the plan inside the transaction that records it; this module
//! is the leader-only loop that watches the store and drives the three.
//!
//! The loop keeps no state of its own between passes: every pass re-reads
//! the store, so a snapshot restore, a lagging watch or a failed commit
//! all recover the same way, by planning again.

pub mod constraint;
pub mod filter;
pub mod node_info;
pub mod pipeline;
pub mod write;

use std::time::{Duration, SystemTime};

use shoal_proto::objects::{Task, TaskState};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use constraint::node_matches;
pub use filter::{ConstraintError, parse_constraints};
pub use pipeline::{Plan, plan};

use crate::context::{CommitError, ManagerContext};
use crate::passes::{Passes, Timing, drive};
use crate::raft::node::Applied;
use crate::store::{Changed, Commit, EventAction, Tables};
use node_info::holds_resources;
use write::{Versions, Written, write_plan};

/// Quiet time after a change before planning (50 ms), so a `--replicas
/// 100` create (one commit, or a few close together) is placed in one
/// pass; at most 300 ms under a stream of changes.
const TIMING: Timing = Timing {
    quiet: Duration::from_millis(50),
    max_delay: Duration::from_millis(300),
    backoff: (Duration::from_millis(100), Duration::from_secs(5)),
};

/// Runs the scheduler until `shutdown`. Started when this manager becomes
/// leader and cancelled when it stops leading; it does not check
/// leadership itself (a commit that fails for lost leadership is retried
/// until the token is cancelled).
pub async fn run(ctx: ManagerContext, shutdown: CancellationToken) {
    let ((), watch) = ctx.store.view_and_watch(|_| ());
    let me = Loop {
        ctx,
        own_writes: Vec::new(),
        waiting: false,
    };
    drive(me, watch, shutdown, TIMING, "scheduling")
        .instrument(tracing::info_span!("scheduler"))
        .await;
    // Not leading any more: the next leader's scheduler counts them.
    crate::metrics::set_unschedulable(&Default::default());
}

/// Tasks waiting for a node: Pending, and meant to run (or, for jobs,
/// to run to completion).
pub fn pending_tasks(tables: &Tables) -> Vec<&Task> {
    let mut pending: Vec<&Task> = tables.all::<Task>().filter(|t| wants_node(t)).collect();
    pending.sort_by(|a, b| (&a.service_id, a.slot, &a.id).cmp(&(&b.service_id, b.slot, &b.id)));
    pending
}

fn wants_node(task: &Task) -> bool {
    task.status.as_ref().map(|s| s.state()) == Some(TaskState::Pending)
        && matches!(
            task.desired_state(),
            TaskState::Running | TaskState::Complete
        )
}

struct Loop {
    ctx: ManagerContext,
    /// Where our last pass's writes landed: their echoes must not wake us.
    own_writes: Vec<Applied>,
    /// Some tasks could not be placed: freed resources are worth a pass.
    waiting: bool,
}

impl Passes for Loop {
    /// Whether a commit may change what the scheduler would do.
    fn wakes(&self, commit: &Commit) -> bool {
        if commit.reset {
            return true;
        }
        if self.own_writes.iter().any(|w| w.is(commit)) {
            return false;
        }
        commit.events.iter().any(|event| match &event.object {
            Changed::Node(_) => true,
            Changed::Task(task) => {
                let frees = event.action == EventAction::Remove || !holds_resources(task);
                wants_node(task) || (self.waiting && frees)
            }
            _ => false,
        })
    }

    /// One pass: plan on a view, record the plan in one update.
    async fn pass(&mut self) -> Result<(), CommitError> {
        crate::metrics::METRICS.scheduler_passes.inc();
        let (plan, versions) = self.ctx.store.view(|tables| {
            let plan = plan(tables, &pending_tasks(tables));
            let versions = Versions::of(tables, &plan);
            (plan, versions)
        });
        crate::metrics::set_unschedulable(&plan.reasons);
        self.waiting = !plan.unschedulable.is_empty();
        if plan.assign.is_empty() && plan.unschedulable.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        let (batch, written): (_, Written) = self
            .ctx
            .store
            .build(|tx| write_plan(tx, &plan, &versions, now).map_err(CommitError::from))?;
        if batch.actions.is_empty() {
            return Ok(());
        }
        // Planned once, committed in bounded parts.
        self.own_writes = self.ctx.commit_parts(batch).await?;
        let parts = self.own_writes.len();
        tracing::debug!(
            assigned = written.assigned,
            explained = written.explained,
            stale = written.stale,
            parts,
            "scheduling pass committed"
        );
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
