//! The orchestrator: a leader-only loop that turns services into tasks and
//! keeps them there. It watches the store; a commit that touches a
//! service, the nodes or the cluster, or a task in a way its service must
//! answer (see [`concerns`]), marks services dirty; after
//! a short batching window it reconciles them ([`reconcile`]), steps their
//! rolling updates ([`update`]), reaps old tasks and commits all of it in
//! one batch. A batch that loses a race (another writer moved a task) is
//! simply computed again from the new state.
//!
//! Restart delays are deadlines the loop sleeps toward, not timers per
//! task: the earliest one wakes it and every dirty service is looked at.

pub mod reconcile;
pub mod task;
#[cfg(test)]
pub(crate) mod testkit;
pub mod update;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::{Node, Service, Task, TaskState, update_status};
use shoal_proto::task_state::observed;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::context::ManagerContext;
use crate::store::{Changed, EventAction, Tables};

/// How long changes are gathered before reconciling (a burst of commits,
/// like `--replicas 100` being scheduled, becomes one pass).
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Wait after a failed commit before computing again.
const RETRY: Duration = Duration::from_millis(100);
/// Default task history per slot (Docker's `--task-history-limit`), for
/// a cluster that sets none; `swarm init` writes it into the spec.
pub const DEFAULT_HISTORY: usize = 5;

/// Runs until `shutdown` (the end of this manager's leadership).
pub async fn run(ctx: ManagerContext, shutdown: CancellationToken) {
    let (services, mut events) = ctx
        .store
        .view_and_watch(|t| t.all::<Service>().map(|s| s.id.clone()).collect::<Vec<_>>());
    let mut dirty: BTreeSet<String> = services.into_iter().collect();
    let mut all_dirty = true;
    let mut updates = update::Updates::default();
    let mut wake_at: Option<SystemTime> = None;
    loop {
        if !dirty.is_empty() || all_dirty {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(BATCH_WINDOW) => {}
            }
            // Take what arrived during the window too.
            loop {
                match events.try_recv() {
                    Ok(commit) => mark(&ctx, &commit, &mut dirty, &mut all_dirty),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => all_dirty = true,
                    Err(_) => break,
                }
            }
            if all_dirty {
                dirty.extend(
                    ctx.store
                        .view(|t| t.all::<Service>().map(|s| s.id.clone()).collect::<Vec<_>>()),
                );
            }
            let now = SystemTime::now();
            let timer = crate::metrics::timer(&crate::metrics::METRICS.orchestrator_pass);
            let (batch, next_wake) = match ctx.store.build(|tx| {
                let t = tx.tables();
                let mut next_wake: Option<SystemTime> = None;
                for id in &dirty {
                    pass(tx, t, id, &mut updates, now, &mut next_wake)?;
                }
                if all_dirty {
                    // Not the tasks of services just passed: their pass
                    // reaped them already (twice in one batch is refused).
                    reap_orphans(tx, t, &dirty)?;
                }
                Ok::<_, crate::store::StoreError>(next_wake)
            }) {
                Ok(built) => built,
                Err(e) => {
                    tracing::warn!(error = %e, "orchestrator could not build its changes; retrying");
                    sleep_or_stop(&shutdown, RETRY).await;
                    continue;
                }
            };
            let changes = batch.actions.len();
            // Computed once (a pass walks every task of its services), but
            // committed in bounded parts: 100,000 replicas are 50 entries.
            let committed = ctx.commit_parts(batch).await;
            drop(timer);
            if let Err(e) = committed {
                tracing::debug!(error = %e, "orchestrator commit lost a race; recomputing");
                sleep_or_stop(&shutdown, RETRY).await;
                continue;
            }
            if changes > 0 {
                tracing::debug!(changes, services = dirty.len(), "orchestrator committed");
            }
            wake_at = next_wake;
            dirty.clear();
            all_dirty = false;
        }
        let sleep = wake_at
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sleep), if wake_at.is_some() => {
                all_dirty = true;
                wake_at = None;
            }
            received = events.recv() => match received {
                Ok(commit) => mark(&ctx, &commit, &mut dirty, &mut all_dirty),
                Err(RecvError::Lagged(_)) => all_dirty = true,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Marks the services a commit concerns.
fn mark(
    ctx: &ManagerContext,
    commit: &crate::store::Commit,
    dirty: &mut BTreeSet<String>,
    all: &mut bool,
) {
    if commit.reset {
        *all = true;
        return;
    }
    ctx.store.view(|tables| {
        for event in &commit.events {
            match &event.object {
                Changed::Service(s) => {
                    dirty.insert(s.id.clone());
                }
                Changed::Task(t) => match tables.get::<Service>(&t.service_id) {
                    Some(service) if concerns(service, t, event.action) => {
                        dirty.insert(t.service_id.clone());
                    }
                    Some(_) => {}
                    // A task of a removed service: the reaper's business.
                    None => *all = true,
                },
                // Nodes come and go, go down, drain: every service may care.
                Changed::Node(_) | Changed::Cluster(_) => *all = true,
                _ => {}
            }
        }
    });
}

/// Whether a change to `task` may give its service's pass something to
/// do. Outside a rolling update, only a task that ended, was removed or
/// was told to stop does: the climb from pending to running is the
/// scheduler's and the worker's. Reconciling a 100,000-task service on
/// each of those steps was most of a leader's CPU while it started.
fn concerns(service: &Service, task: &Task, action: EventAction) -> bool {
    let updating = service.update_status.as_ref().is_some_and(|u| {
        matches!(
            u.state(),
            update_status::State::Updating | update_status::State::RollbackStarted
        )
    });
    updating
        || action == EventAction::Remove
        || observed(task).is_terminal()
        || task.desired_state() > TaskState::Running
}

fn history_limit(t: &Tables) -> usize {
    t.cluster()
        .and_then(|c| c.spec.as_ref()?.orchestration.as_ref())
        .map(|o| o.task_history_retention_limit)
        .filter(|l| *l > 0)
        .map_or(DEFAULT_HISTORY, |l| l as usize)
}

/// One service's pass: restarts and slots, its update, its reaping.
fn pass(
    tx: &mut crate::store::Tx<'_>,
    t: &Tables,
    service_id: &str,
    updates: &mut update::Updates,
    now: SystemTime,
    next_wake: &mut Option<SystemTime>,
) -> Result<(), crate::store::StoreError> {
    let mut wake = |at: Option<SystemTime>| {
        if let Some(at) = at {
            *next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
        }
    };
    let Some(service) = t.get::<Service>(service_id) else {
        updates.forget(service_id);
        let tasks: Vec<&Task> = t.tasks_of_service(service_id).collect();
        for id in reconcile::reap(t, None, &tasks, 0) {
            tx.remove::<Task>(&id)?;
        }
        return Ok(());
    };
    let plan = reconcile::reconcile(t, service, now);
    wake(plan.wake_at);
    let leaving: BTreeSet<String> = plan.desire.iter().map(|(id, _)| id.clone()).collect();
    let step = updates.step(t, service, now, &leaving);
    wake(step.wake_at);

    let mut desired: std::collections::BTreeMap<String, TaskState> = Default::default();
    for (id, state) in plan.desire.into_iter().chain(step.desire) {
        let e = desired.entry(id).or_insert(state);
        *e = (*e).max(state);
    }
    // Tasks the pass creates or stops are not reaped in the same batch.
    let mut touched: BTreeSet<String> = desired.keys().cloned().collect();
    for (id, state) in desired {
        if let Some(task) = t.get::<Task>(&id)
            && task.desired_state() < state
        {
            let mut task = task.clone();
            task.set_desired_state(state);
            tx.update(task)?;
        }
    }
    for task in plan.create.into_iter().chain(step.create) {
        touched.insert(task.id.clone());
        tx.create(task)?;
    }
    if let Some(s) = step.service {
        tx.update(s)?;
    }
    let tasks: Vec<&Task> = t
        .tasks_of_service(service_id)
        .filter(|task| !touched.contains(&task.id))
        .collect();
    for id in reconcile::reap(t, Some(service), &tasks, history_limit(t)) {
        tx.remove::<Task>(&id)?;
    }
    Ok(())
}

/// Tasks whose service or node is gone and which no longer run, but
/// those of the services in `passed` (their own pass reaps them).
fn reap_orphans(
    tx: &mut crate::store::Tx<'_>,
    t: &Tables,
    passed: &BTreeSet<String>,
) -> Result<(), crate::store::StoreError> {
    let orphans: Vec<String> = t
        .all::<Task>()
        .filter(|task| !passed.contains(&task.service_id))
        .filter(|task| {
            let no_service = t.get::<Service>(&task.service_id).is_none();
            let no_node = !task.node_id.is_empty() && t.get::<Node>(&task.node_id).is_none();
            let stopped = shoal_proto::task_state::observed(task).is_terminal()
                || shoal_proto::task_state::observed(task) < TaskState::Assigned;
            (no_service && (stopped || no_node)) || (no_node && !task::is_live(task))
        })
        .map(|task| task.id.clone())
        .collect();
    for id in orphans {
        tx.remove::<Task>(&id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shoal_proto::objects::TaskStatus;

    use super::*;
    use crate::store::Store;

    /// A task of a removed service that has stopped: both its service's
    /// pass and the orphan reaper would remove it.
    fn stopped_task(id: &str, service: &str) -> Task {
        let mut status = TaskStatus::default();
        status.set_state(TaskState::Shutdown);
        let mut task = Task {
            id: id.into(),
            service_id: service.into(),
            status: Some(status),
            ..Default::default()
        };
        task.set_desired_state(TaskState::Shutdown);
        task
    }

    #[test]
    fn a_removed_services_tasks_are_reaped_once_when_everything_is_dirty() {
        let store = Store::new();
        let (batch, ()) = store
            .build(|tx| tx.create(stopped_task("t1", "gone")))
            .unwrap();
        store.apply(1, batch).unwrap();
        let dirty = BTreeSet::from(["gone".to_string()]);
        let (batch, ()) = store
            .build(|tx| {
                let t = tx.tables();
                let mut updates = update::Updates::default();
                let mut wake = None;
                pass(tx, t, "gone", &mut updates, SystemTime::now(), &mut wake)?;
                reap_orphans(tx, t, &dirty)
            })
            .expect("one removal, not two");
        store.apply(2, batch).unwrap();
        assert!(store.view(|t| t.get::<Task>("t1").is_none()));

        // A task no pass saw is still the reaper's.
        let (batch, ()) = store
            .build(|tx| tx.create(stopped_task("t2", "also-gone")))
            .unwrap();
        store.apply(3, batch).unwrap();
        let (batch, ()) = store
            .build(|tx| {
                let t = tx.tables();
                reap_orphans(tx, t, &BTreeSet::new())
            })
            .unwrap();
        store.apply(4, batch).unwrap();
        assert!(store.view(|t| t.get::<Task>("t2").is_none()));
    }
}
