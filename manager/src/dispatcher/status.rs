//! Task status reports from workers, folded into the store in batches: a
//! hundred workers reporting at once make a few Raft entries, not a
//! hundred. One loop owns the batching; each report waits for the commit
//! that carries it, so a worker only forgets a report the store has.
//!
//! Reports are checked: a node may only report its own tasks, a task
//! never goes back to an earlier state (a late report is dropped), and
//! every report is cut to [`super::bounds`] before it is stored.
//!
//! Errors are typed ([`ReportError`]); the dispatcher's handler turns them
//! into a status ([`crate::grpc_status`]).

use std::time::Duration;

use shoal_proto::dispatcher::TaskStatusUpdate;
use shoal_proto::objects::Task;
use shoal_proto::task_state::observed;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::context::{CommitError, Conflict, ManagerContext};
use crate::store::{MAX_TASK_WRITES, StoreError, Tx};

/// How long the batcher gathers reports after the first one.
const GATHER: Duration = Duration::from_millis(10);
/// Attempts at committing a batch that lost a race.
const ATTEMPTS: usize = 5;

/// Why a report was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The manager is stopping; the worker reports again to the leader.
    #[error("the dispatcher is shutting down")]
    ShuttingDown,
    /// The batch carrying it did not commit.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// One worker's report, waiting for its commit.
pub struct Report {
    /// The reporting node.
    pub node_id: String,
    /// Its updates.
    pub updates: Vec<TaskStatusUpdate>,
    /// Answered once committed (or failed).
    pub done: oneshot::Sender<Result<(), ReportError>>,
}

/// A handle to the batcher.
#[derive(Debug, Clone)]
pub struct StatusBatcher {
    tx: mpsc::Sender<Report>,
}

impl StatusBatcher {
    /// Starts the batching loop; it ends with `shutdown`.
    pub fn start(ctx: ManagerContext, shutdown: CancellationToken) -> StatusBatcher {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(ctx, rx, shutdown));
        StatusBatcher { tx }
    }

    /// Records `updates` from `node_id`; returns once they are committed.
    pub async fn report(
        &self,
        node_id: String,
        updates: Vec<TaskStatusUpdate>,
    ) -> Result<(), ReportError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Report {
                node_id,
                updates,
                done,
            })
            .await
            .map_err(|_| ReportError::ShuttingDown)?;
        wait.await.unwrap_or(Err(ReportError::ShuttingDown))
    }
}

async fn run(ctx: ManagerContext, mut rx: mpsc::Receiver<Report>, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let mut reports = vec![first];
        let deadline = tokio::time::Instant::now() + GATHER;
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            reports.push(r);
        }
        let mut result = Ok(());
        for attempt in 0..ATTEMPTS {
            result = commit(&ctx, &reports).await;
            match &result {
                Ok(()) => break,
                Err(e) if e.is_conflict() && attempt + 1 < ATTEMPTS => continue,
                Err(_) => break,
            }
        }
        let result = result.map_err(ReportError::from);
        for r in reports {
            let _ = r.done.send(result.clone());
        }
    }
}

/// Commits the reports' updates in order, at most
/// [`MAX_TASK_WRITES`] of them per batch (a worker that starts thousands
/// of tasks reports them at once).
async fn commit(ctx: &ManagerContext, reports: &[Report]) -> Result<(), CommitError> {
    let updates: Vec<(&str, &TaskStatusUpdate)> = reports
        .iter()
        .flat_map(|r| r.updates.iter().map(move |u| (r.node_id.as_str(), u)))
        .collect();
    for part in updates.chunks(MAX_TASK_WRITES) {
        commit_part(ctx, part).await?;
    }
    Ok(())
}

async fn commit_part(
    ctx: &ManagerContext,
    updates: &[(&str, &TaskStatusUpdate)],
) -> Result<(), CommitError> {
    ctx.update(|tx| Ok(fold(tx, updates)?)).await
}

/// Writes `updates` (each with the node that reported it) into `tx`, as
/// the checks allow: a report for another node's task, for a task that
/// is gone, or one that would move a task backwards is dropped, and each
/// kept one is cut to [`super::bounds`]. Public for the fuzz targets.
pub fn fold(tx: &mut Tx<'_>, updates: &[(&str, &TaskStatusUpdate)]) -> Result<(), StoreError> {
    // The newest report of a task wins within a batch.
    let mut latest: std::collections::HashMap<&str, Task> = Default::default();
    for &(node_id, u) in updates {
        let Some(status) = u.status.as_ref() else {
            continue;
        };
        let current = match latest.get(u.task_id.as_str()) {
            Some(t) => t.clone(),
            None => match tx.tables().get::<Task>(&u.task_id) {
                Some(t) => t.clone(),
                None => continue,
            },
        };
        if current.node_id != node_id {
            tracing::warn!(task = %u.task_id, node = %node_id, "status report for a task of another node ignored");
            continue;
        }
        let mut status = status.clone();
        let cut = super::bounds::status(&current, &mut status);
        if !cut.is_empty() {
            tracing::warn!(task = %u.task_id, node = %node_id, fields = ?cut, "task status over its bounds; cut before it is stored");
        }
        if status.state() < observed(&current) || current.status.as_ref() == Some(&status) {
            continue;
        }
        let mut task = current;
        task.status = Some(status);
        latest.insert(u.task_id.as_str(), task);
    }
    for (_, task) in latest {
        tx.update(task)?;
    }
    Ok(())
}
