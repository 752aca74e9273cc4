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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::{Task, TaskState};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

pub use constraint::node_matches;
pub use filter::{ConstraintError, parse_constraints};
pub use pipeline::{Plan, plan};

use crate::context::ManagerContext;
use crate::store::{Commit, EventAction, Object, Tables};
use node_info::holds_resources;
use write::{Versions, Written, write_plan};

/// Quiet time after a change before planning, so a `--replicas 100`
/// create (one commit, or a few close together) is placed in one pass.
const QUIET: Duration = Duration::from_millis(50);
/// The longest a steady stream of changes may hold a pass back.
const MAX_DELAY: Duration = Duration::from_millis(300);
/// First and longest wait after a failed commit.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Runs the scheduler until `shutdown`. Started when this manager becomes
/// leader and cancelled when it stops leading; it does not check
/// leadership itself (a commit that fails for lost leadership is retried
/// until the token is cancelled).
pub async fn run(ctx: ManagerContext, shutdown: CancellationToken) {
    Loop::new(ctx, shutdown)
        .run()
        .instrument(tracing::info_span!("scheduler"))
        .await
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
    shutdown: CancellationToken,
    watch: Receiver<Arc<Commit>>,
    /// The log index of our last write, whose echo must not wake us.
    own_index: Option<u64>,
    /// Some tasks could not be placed: freed resources are worth a pass.
    waiting: bool,
}

/// Whether the loop should go on.
enum Flow {
    Go,
    Stop,
}

impl Loop {
    fn new(ctx: ManagerContext, shutdown: CancellationToken) -> Loop {
        let ((), watch) = ctx.store.view_and_watch(|_| ());
        Loop {
            ctx,
            shutdown,
            watch,
            own_index: None,
            waiting: false,
        }
    }

    async fn run(mut self) {
        // A previous leader may have left tasks pending: plan at once.
        let mut dirty = true;
        let mut backoff = BACKOFF.0;
        loop {
            if dirty {
                if let Flow::Stop = self.gather().await {
                    return;
                }
                // On failure `dirty` stays set: back off, then plan again.
                if let Err(e) = self.pass().await {
                    tracing::debug!(error = %e.message(), ?backoff, "scheduling pass failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
                backoff = BACKOFF.0;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                received = self.watch.recv() => match received {
                    Ok(commit) => dirty = self.wakes(&commit),
                    // Behind: we re-read everything anyway.
                    Err(RecvError::Lagged(_)) => dirty = true,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// The batching window: waits until changes pause for [`QUIET`], or
    /// [`MAX_DELAY`] has passed, consuming what arrives meanwhile.
    async fn gather(&mut self) -> Flow {
        let start = Instant::now();
        let mut quiet_until = start + QUIET;
        loop {
            let deadline = quiet_until.min(start + MAX_DELAY);
            tokio::select! {
                _ = self.shutdown.cancelled() => return Flow::Stop,
                _ = sleep_until(deadline) => return Flow::Go,
                received = self.watch.recv() => match received {
                    Ok(commit) if self.wakes(&commit) => quiet_until = Instant::now() + QUIET,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Flow::Stop,
                },
            }
        }
    }

    /// Whether a commit may change what the scheduler would do.
    fn wakes(&self, commit: &Commit) -> bool {
        if commit.reset {
            return true;
        }
        if Some(commit.index) == self.own_index {
            return false;
        }
        commit.events.iter().any(|event| match &event.object {
            Object::Node(_) => true,
            Object::Task(task) => {
                let frees = event.action == EventAction::Remove || !holds_resources(task);
                wants_node(task) || (self.waiting && frees)
            }
            _ => false,
        })
    }

    /// One pass: plan on a view, record the plan in one update.
    async fn pass(&mut self) -> Result<(), Status> {
        let (plan, versions) = self.ctx.store.view(|tables| {
            let plan = plan(tables, &pending_tasks(tables));
            let versions = Versions::of(tables, &plan);
            (plan, versions)
        });
        self.waiting = !plan.unschedulable.is_empty();
        if plan.assign.is_empty() && plan.unschedulable.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        let (batch, written): (_, Written) = self
            .ctx
            .store
            .build(|tx| write_plan(tx, &plan, &versions, now).map_err(Status::from))?;
        if batch.actions.is_empty() {
            return Ok(());
        }
        let index = self.ctx.commit(batch).await?;
        self.own_index = Some(index);
        tracing::debug!(
            assigned = written.assigned,
            explained = written.explained,
            stale = written.stale,
            index,
            "scheduling pass committed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
