//! One actor per task: it walks the task through its life on the engine
//! and reports every state it reaches. The worker feeds it the task as
//! the dispatcher last sent it (desired state changes arrive that way) and
//! `None` once the task left the node's assignment set.
//!
//! ```text
//!  assigned ─> accepted ─> preparing ─> ready ─> starting ─> running ─┬─> complete
//!                  │            │                    │                ├─> failed
//!                  └────────────┴──> rejected/failed ┘                └─> shutdown
//! ```
//!
//! A task never goes back: the actor starts from the state the manager
//! last recorded, and a task the engine already runs (a restarted daemon)
//! is adopted at `running` instead of being started twice.

use std::time::{Duration, SystemTime};

use shoal_proto::objects::{Task, TaskState, TaskStatus, task_status};
use shoal_proto::task_state::observed;
use tokio::sync::{mpsc, watch};

use crate::exec::{Engine, EngineTask, ExecError, Exit, Started, TaskRun};
use crate::health;

/// A status the actor wants the managers to know.
pub type Report = (String, TaskStatus);

/// Docker's default stop grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What the actor is told.
pub type Input = watch::Receiver<Option<TaskRun>>;

/// The data plane, where the node has one.
pub type Plane = Option<std::sync::Arc<dyn crate::net::plane::DataPlane>>;

struct Actor {
    engine: std::sync::Arc<dyn Engine>,
    plane: Plane,
    id: String,
    reports: mpsc::UnboundedSender<Report>,
    state: TaskState,
    /// The task counted under `state` in the node's metrics.
    counted: crate::metrics::Counted,
    last: TaskStatus,
}

impl Actor {
    fn report(&mut self, state: TaskState, message: &str, err: &str, exit: Option<&Exit>) {
        if state < self.state {
            return;
        }
        self.state = state;
        self.counted.set(state);
        let mut status = TaskStatus {
            timestamp: Some(SystemTime::now().into()),
            message: message.to_string(),
            err: err.to_string(),
            container: self.last.container.clone(),
            health: self.last.health,
            ..Default::default()
        };
        status.set_state(state);
        if let Some(exit) = exit {
            status.container.get_or_insert_default().exit_code = exit.code;
        }
        self.last = status.clone();
        let _ = self.reports.send((self.id.clone(), status));
    }

    fn report_health(&mut self, health: task_status::Health) {
        if self.last.health() == health {
            return;
        }
        self.last.set_health(health);
        self.last.timestamp = Some(SystemTime::now().into());
        let _ = self.reports.send((self.id.clone(), self.last.clone()));
    }

    fn fail(&mut self, e: &ExecError) {
        if e.is_rejection() {
            self.report(TaskState::Rejected, "rejected", &e.to_string(), None);
        } else {
            self.report(TaskState::Failed, "failed", &e.to_string(), None);
        }
    }

    fn handle(&mut self, found: &EngineTask) {
        self.started(&Started {
            handle: found.handle.clone(),
            pid: found.pid,
        });
    }

    fn started(&mut self, started: &Started) {
        let c = self.last.container.get_or_insert_default();
        c.container_id = started.handle.clone();
        c.pid = started.pid.unwrap_or_default();
    }

    async fn stop(&mut self, task: &Task) {
        let container = task.spec.as_ref().and_then(|s| s.container.as_ref());
        let signal = container
            .map(|c| c.stop_signal.as_str())
            .filter(|s| !s.is_empty());
        let grace = container
            .and_then(|c| c.stop_grace_period)
            .map(|d| shoal_proto::limits::duration(&d))
            .unwrap_or(DEFAULT_GRACE);
        if let Err(e) = self.engine.stop(&self.id, signal, grace).await {
            tracing::warn!(task = %self.id, error = %e, "stopping task failed");
        }
    }
}

fn exit_outcome(exit: &Exit) -> (TaskState, String, String) {
    if exit.code == 0 {
        (TaskState::Complete, "finished".into(), String::new())
    } else {
        let mut err = format!("task: non-zero exit ({})", exit.code);
        if !exit.message.is_empty() && !exit.message.starts_with("exit code") {
            err = format!("{err}: {}", exit.message);
        }
        (TaskState::Failed, "failed".into(), err)
    }
}

/// Runs the task until it has ended and left the assignment set.
pub async fn run(
    engine: std::sync::Arc<dyn Engine>,
    mut input: Input,
    reports: mpsc::UnboundedSender<Report>,
    adopted: Option<EngineTask>,
    plane: Plane,
) {
    let Some(first) = input.borrow().clone() else {
        return;
    };
    let id = first.task.id.clone();
    let mut actor = Actor {
        engine: engine.clone(),
        plane: plane.clone(),
        state: observed(&first.task),
        counted: crate::metrics::Counted::new(observed(&first.task)),
        last: first.task.status.clone().unwrap_or_default(),
        id: id.clone(),
        reports,
    };

    // 1. Bring it to running (or as far as the desired state allows).
    let mut running = false;
    if let Some(found) = adopted.as_ref() {
        actor.handle(found);
        if found.running {
            running = true;
            // A restarted daemon serves the adopted task's DNS again.
            if let Some(plane) = plane.as_ref()
                && let Some(netns) = engine.netns(&id).await
                && let Err(e) = plane.attach(&first.task, &netns).await
            {
                tracing::warn!(task = %id, error = %e, "re-wiring an adopted task failed");
            }
            if actor.state < TaskState::Running {
                actor.report(TaskState::Running, "started", "", None);
            }
        } else if let Some(exit) = found
            .exit
            .as_ref()
            .filter(|_| actor.state <= TaskState::Running)
        {
            let (state, message, err) = exit_outcome(exit);
            actor.report(state, &message, &err, Some(exit));
        }
    }
    if !running && !actor.state.is_terminal() {
        running = bring_up(&mut actor, &mut input).await;
    }

    // 2. While it runs: wait for its exit, a stop request, health changes.
    if running && watch_running(&mut actor, &mut input).await == Watched::Abandoned {
        // The worker ended (the daemon stops): the task keeps running for
        // the next daemon to adopt, as after a crash.
        return;
    }

    // 3. Ended: its network goes now (as Docker releases a stopped
    // container's), the rest once it left the set.
    if let Some(plane) = plane.as_ref() {
        plane.detach(&id).await;
    }
    if let Err(e) = engine.release(&id).await {
        tracing::warn!(task = %id, error = %e, "releasing an ended task's sandbox failed");
    }
    loop {
        let gone = input.borrow().is_none();
        if gone {
            break;
        }
        if input.changed().await.is_err() {
            break;
        }
    }
    if let Err(e) = engine.remove(&id).await {
        tracing::warn!(task = %id, error = %e, "removing task from the engine failed");
    }
}

fn desired(input: &Input) -> Option<TaskState> {
    input.borrow().as_ref().map(|r| r.task.desired_state())
}

/// Prepares and starts the task; true when it runs.
async fn bring_up(actor: &mut Actor, input: &mut Input) -> bool {
    let Some(run) = input.borrow().clone() else {
        return false;
    };
    if desired(input).is_none_or(|d| d > TaskState::Complete) {
        actor.report(TaskState::Shutdown, "shutdown", "", None);
        return false;
    }
    let began = std::time::Instant::now();
    actor.report(TaskState::Accepted, "accepted", "", None);
    actor.report(TaskState::Preparing, "preparing", "", None);
    if let Err(e) = actor.engine.prepare(&run).await {
        actor.fail(&e);
        return false;
    }
    // Networking (overlays, egress) is ready before the process starts.
    if let Some(plane) = actor.plane.clone()
        && let Some(netns) = actor.engine.netns(&actor.id).await
        && let Err(e) = plane.attach(&run.task, &netns).await
    {
        actor.report(
            TaskState::Failed,
            "failed",
            &format!("network attach failed: {e}"),
            None,
        );
        return false;
    }
    let prepared = began.elapsed();
    actor.report(TaskState::Ready, "prepared", "", None);
    if desired(input).is_none_or(|d| d > TaskState::Complete) {
        actor.report(TaskState::Shutdown, "shutdown", "", None);
        return false;
    }
    actor.report(TaskState::Starting, "starting", "", None);
    match actor.engine.start(&actor.id).await {
        Ok(started) => actor.started(&started),
        Err(e) => {
            actor.fail(&e);
            return false;
        }
    }
    actor.report(TaskState::Running, "started", "", None);
    tracing::debug!(task = %actor.id, ?prepared, total = ?began.elapsed(), "task running");
    true
}

/// How watching a running task ended.
#[derive(Debug, PartialEq, Eq)]
enum Watched {
    /// The task ended (exited, stopped on request, replaced as unhealthy).
    Ended,
    /// The worker ended: nobody asks anything of this task any more.
    Abandoned,
}

async fn watch_running(actor: &mut Actor, input: &mut Input) -> Watched {
    // The input as it is now counts too: a task adopted after a restart
    // may already be desired shut down.
    input.mark_changed();
    let engine = actor.engine.clone();
    let id = actor.id.clone();
    let mut exited = Box::pin(async move { engine.wait(&id).await });
    let service_check = input.borrow().as_ref().and_then(|r| {
        r.task
            .spec
            .as_ref()?
            .container
            .as_ref()?
            .healthcheck
            .clone()
    });
    let healthcheck = health::HealthConfig::effective(
        service_check.as_ref(),
        actor.engine.image_healthcheck(&actor.id).await,
    );
    let config = healthcheck.and_then(|h| match health::HealthConfig::from_spec(&h) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(task = %actor.id, error = %e, "health check ignored");
            None
        }
    });
    let mut health = config.map(|c| health::spawn(actor.engine.clone(), actor.id.clone(), c));
    if health.is_some() {
        actor.report_health(task_status::Health::Starting);
    }
    loop {
        let next_health = async {
            match health.as_mut() {
                Some(rx) => match rx.changed().await {
                    Ok(()) => Some(match rx.borrow().status {
                        health::Health::Starting => task_status::Health::Starting,
                        health::Health::Healthy => task_status::Health::Healthy,
                        health::Health::Unhealthy => task_status::Health::Unhealthy,
                    }),
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            exit = &mut exited => {
                match exit {
                    Ok(exit) => {
                        let (state, message, err) = exit_outcome(&exit);
                        actor.report(state, &message, &err, Some(&exit));
                    }
                    Err(e) => actor.report(TaskState::Failed, "failed", &e.to_string(), None),
                }
                return Watched::Ended;
            }
            changed = input.changed() => {
                if changed.is_err() {
                    return Watched::Abandoned;
                }
                if desired(input).is_none_or(|d| d > TaskState::Complete) {
                    let task = input.borrow().as_ref().map(|r| r.task.clone()).unwrap_or_default();
                    actor.stop(&task).await;
                    actor.report(TaskState::Shutdown, "shutdown", "", None);
                    return Watched::Ended;
                }
            }
            h = next_health => {
                let Some(h) = h else { continue };
                actor.report_health(h);
                if h == task_status::Health::Unhealthy {
                    // Docker's swarm mode replaces an unhealthy task.
                    let task = input.borrow().as_ref().map(|r| r.task.clone()).unwrap_or_default();
                    actor.stop(&task).await;
                    actor.report(TaskState::Failed, "failed", "task: container is unhealthy", None);
                    return Watched::Ended;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
