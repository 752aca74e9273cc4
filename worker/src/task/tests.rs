//! The task actor on the sim engine (wrapped to record what it is asked),
//! with paused time: a missing report fails at once instead of hanging.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::objects::{ContainerSpec, HealthConfig, TaskSpec};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::exec::sim::recorder::{Call, Recorder};

/// A task the manager assigned (desired running), scripted by `labels`.
fn task(id: &str, labels: &[(&str, &str)]) -> Task {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut status = TaskStatus::default();
    status.set_state(TaskState::Assigned);
    let mut t = Task {
        id: id.into(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                labels,
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(status),
        ..Default::default()
    };
    t.set_desired_state(TaskState::Running);
    t
}

fn with_state(mut t: Task, state: TaskState) -> Task {
    t.status.get_or_insert_default().set_state(state);
    t
}

fn desire(mut t: Task, state: TaskState) -> Task {
    t.set_desired_state(state);
    t
}

fn container(t: &mut Task) -> &mut ContainerSpec {
    t.spec
        .get_or_insert_default()
        .container
        .get_or_insert_default()
}

fn secs(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

fn run_of(task: Task) -> TaskRun {
    TaskRun {
        task,
        files: vec![],
    }
}

/// A running actor and what it is fed and reports.
struct Harness {
    id: String,
    engine: Arc<Recorder>,
    input: watch::Sender<Option<TaskRun>>,
    reports: mpsc::UnboundedReceiver<Report>,
    actor: JoinHandle<()>,
}

/// Long enough for anything a test waits for; in paused time a report
/// that never comes fails the test at once.
const PATIENCE: Duration = Duration::from_secs(600);

impl Harness {
    fn spawn(task: Task) -> Harness {
        Harness::spawn_on(Arc::new(Recorder::default()), task, None)
    }

    fn spawn_on(engine: Arc<Recorder>, task: Task, adopted: Option<EngineTask>) -> Harness {
        let id = task.id.clone();
        let (input, rx) = watch::channel(Some(run_of(task)));
        let (tx, reports) = mpsc::unbounded_channel();
        let actor = tokio::spawn(run(engine.clone(), rx, tx, adopted, None));
        Harness {
            id,
            engine,
            input,
            reports,
            actor,
        }
    }

    /// The next report; panics when none comes.
    async fn next(&mut self) -> TaskStatus {
        let (id, status) = tokio::time::timeout(PATIENCE, self.reports.recv())
            .await
            .expect("a report")
            .expect("the actor is alive");
        assert_eq!(id, self.id);
        status
    }

    /// The states reported up to and including `last`.
    async fn states_until(&mut self, last: TaskState) -> Vec<TaskState> {
        let mut out = Vec::new();
        loop {
            let s = self.next().await.state();
            out.push(s);
            if s == last {
                return out;
            }
            assert!(out.len() < 20, "never reached {last:?}: {out:?}");
        }
    }

    fn send(&self, task: Task) {
        self.input.send_replace(Some(run_of(task)));
    }

    /// The task leaves the set; the actor must end without another report.
    async fn leave(mut self) -> Arc<Recorder> {
        self.input.send_replace(None);
        tokio::time::timeout(PATIENCE, self.actor)
            .await
            .expect("the actor ends once the task left the set")
            .unwrap();
        let rest: Vec<_> = std::iter::from_fn(|| self.reports.try_recv().ok()).collect();
        assert!(rest.is_empty(), "reports after the end: {rest:?}");
        self.engine
    }
}

const FROM_ASSIGNED_TO_RUNNING: [TaskState; 5] = [
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
];

#[tokio::test(start_paused = true)]
async fn an_assigned_task_reports_every_state_up_to_running_in_order() {
    let mut h = Harness::spawn(task("t", &[]));
    assert_eq!(
        h.states_until(TaskState::Running).await,
        FROM_ASSIGNED_TO_RUNNING
    );
    // The running report says how users find it.
    let c = h.engine.sim.list().await.unwrap();
    assert!(c[0].running);
    assert_eq!(
        h.engine.calls(),
        vec![Call::Prepare("t".into()), Call::Start("t".into())]
    );
    // A running task stays running: nothing more is reported meanwhile.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(h.reports.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn the_running_report_carries_the_engine_handle() {
    let mut h = Harness::spawn(task("t", &[]));
    let mut last = TaskStatus::default();
    for _ in FROM_ASSIGNED_TO_RUNNING {
        last = h.next().await;
    }
    assert_eq!(last.state(), TaskState::Running);
    assert_eq!(last.container.unwrap().container_id, "sim-t");
    assert!(last.timestamp.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_prepare_failure_rejects_the_task_with_the_error() {
    let mut h = Harness::spawn(task("t", &[("shoal.sim.reject", "no such image: nope")]));
    assert_eq!(
        h.states_until(TaskState::Rejected).await,
        [
            TaskState::Accepted,
            TaskState::Preparing,
            TaskState::Rejected
        ]
    );
    let engine = h.engine.clone();
    let calls = engine.calls();
    assert!(!calls.contains(&Call::Start("t".into())), "{calls:?}");
    // The actor keeps the ended task until it leaves the set, then removes it.
    assert!(!calls.contains(&Call::Remove("t".into())), "{calls:?}");
    let engine = h.leave().await;
    assert_eq!(engine.calls().last(), Some(&Call::Remove("t".into())));
}

#[tokio::test(start_paused = true)]
async fn the_rejection_carries_the_engine_error() {
    let mut h = Harness::spawn(task("t", &[("shoal.sim.reject", "no such image: nope")]));
    let status = loop {
        let s = h.next().await;
        if s.state().is_terminal() {
            break s;
        }
    };
    assert_eq!(status.state(), TaskState::Rejected);
    assert_eq!(status.err, "no such image: nope");
}

#[tokio::test(start_paused = true)]
async fn a_start_failure_fails_the_task_with_the_error() {
    let mut h = Harness::spawn(task("t", &[("shoal.sim.fail-start", "boom")]));
    let mut states = Vec::new();
    let status = loop {
        let s = h.next().await;
        states.push(s.state());
        if s.state().is_terminal() {
            break s;
        }
    };
    assert_eq!(
        states,
        [
            TaskState::Accepted,
            TaskState::Preparing,
            TaskState::Ready,
            TaskState::Starting,
            TaskState::Failed
        ]
    );
    assert_eq!(status.err, "boom");
    let engine = h.leave().await;
    assert_eq!(engine.calls().last(), Some(&Call::Remove("t".into())));
}

#[tokio::test(start_paused = true)]
async fn exit_zero_completes_the_task() {
    let mut h = Harness::spawn(task("t", &[("shoal.sim.exit-after", "5s")]));
    h.states_until(TaskState::Running).await;
    let started = tokio::time::Instant::now();
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Complete);
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(status.err, "");
    assert_eq!(status.container.unwrap().exit_code, 0);
    // It exited on its own: nobody stopped it.
    let engine = h.leave().await;
    let calls = engine.calls();
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Stop(..))),
        "{calls:?}"
    );
    assert_eq!(
        &calls[2..],
        [Call::Release("t".into()), Call::Remove("t".into())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_zero_exit_fails_the_task_with_the_code() {
    let mut h = Harness::spawn(task(
        "t",
        &[("shoal.sim.exit-after", "1s"), ("shoal.sim.exit-code", "3")],
    ));
    h.states_until(TaskState::Running).await;
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Failed);
    assert!(status.err.contains("non-zero exit (3)"), "{status:?}");
    let c = status.container.unwrap();
    assert_eq!(c.exit_code, 3);
    // The handle survives the exit report.
    assert_eq!(c.container_id, "sim-t");
}

#[tokio::test(start_paused = true)]
async fn desired_shutdown_stops_with_the_specs_signal_and_grace_then_removes() {
    let mut t = task("t", &[]);
    container(&mut t).stop_grace_period = secs(7);
    container(&mut t).stop_signal = "SIGINT".into();
    let mut h = Harness::spawn(t.clone());
    h.states_until(TaskState::Running).await;
    h.send(desire(t, TaskState::Shutdown));
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Shutdown);
    assert_eq!(status.err, "");
    let calls = h.engine.calls();
    assert_eq!(
        &calls[2..],
        [
            Call::Stop("t".into(), Some("SIGINT".into()), Duration::from_secs(7)),
            Call::Release("t".into()),
        ]
    );
    // The stopped task stays (logs, exit) until it leaves the set.
    assert_eq!(h.engine.sim.list().await.unwrap().len(), 1);
    let engine = h.leave().await;
    assert_eq!(engine.calls().last(), Some(&Call::Remove("t".into())));
    assert!(engine.sim.list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn desired_shutdown_without_a_grace_period_uses_dockers_ten_seconds() {
    let t = task("t", &[]);
    let mut h = Harness::spawn(t.clone());
    h.states_until(TaskState::Running).await;
    h.send(desire(t, TaskState::Shutdown));
    assert_eq!(h.next().await.state(), TaskState::Shutdown);
    assert!(
        h.engine
            .calls()
            .contains(&Call::Stop("t".into(), None, Duration::from_secs(10)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_spec_change_that_keeps_it_running_does_not_stop_it() {
    let t = task("t", &[]);
    let mut h = Harness::spawn(t.clone());
    h.states_until(TaskState::Running).await;
    let mut changed = t.clone();
    changed.slot = 4;
    h.send(changed);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.reports.try_recv().is_err());
    assert_eq!(h.engine.starts(), 1);
    assert!(
        !h.engine.calls().iter().any(|c| matches!(c, Call::Stop(..))),
        "{:?}",
        h.engine.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn leaving_the_set_while_running_stops_and_removes_it() {
    let mut h = Harness::spawn(task("t", &[]));
    h.states_until(TaskState::Running).await;
    h.input.send_replace(None);
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Shutdown);
    let engine = h.leave().await;
    let calls = engine.calls();
    assert!(
        matches!(&calls[2], Call::Stop(id, _, _) if id == "t"),
        "{calls:?}"
    );
    assert_eq!(calls.last(), Some(&Call::Remove("t".into())));
    assert!(engine.sim.list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_task_desired_shut_down_before_it_started_is_never_started() {
    let mut h = Harness::spawn(desire(task("t", &[]), TaskState::Shutdown));
    assert_eq!(h.next().await.state(), TaskState::Shutdown);
    assert_eq!(h.engine.prepares(), 0);
    assert_eq!(h.engine.starts(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_task_that_already_ended_is_not_run_again() {
    let mut h = Harness::spawn(with_state(task("t", &[]), TaskState::Complete));
    let engine = h.engine.clone();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.reports.try_recv().is_err());
    assert_eq!(engine.prepares() + engine.starts(), 0);
    h.leave().await;
}

fn with_healthcheck(mut t: Task, retries: u32) -> Task {
    container(&mut t).healthcheck = Some(HealthConfig {
        test: vec!["CMD".into(), "check".into()],
        interval: secs(1),
        retries,
        ..Default::default()
    });
    t
}

#[tokio::test(start_paused = true)]
async fn a_health_check_reports_starting_then_healthy() {
    let t = with_healthcheck(task("t", &[("shoal.sim.exec-exit-code", "0")]), 3);
    let mut h = Harness::spawn(t);
    h.states_until(TaskState::Running).await;
    let starting = h.next().await;
    assert_eq!(
        (starting.state(), starting.health()),
        (TaskState::Running, task_status::Health::Starting)
    );
    let healthy = h.next().await;
    assert_eq!(
        (healthy.state(), healthy.health()),
        (TaskState::Running, task_status::Health::Healthy)
    );
    // The next probes change nothing, so nothing more is reported.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(h.reports.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_task_is_reported_stopped_and_failed() {
    let t = with_healthcheck(task("t", &[("shoal.sim.exec-exit-code", "1")]), 2);
    let mut h = Harness::spawn(t);
    h.states_until(TaskState::Running).await;
    assert_eq!(h.next().await.health(), task_status::Health::Starting);
    let unhealthy = h.next().await;
    assert_eq!(
        (unhealthy.state(), unhealthy.health()),
        (TaskState::Running, task_status::Health::Unhealthy)
    );
    let failed = h.next().await;
    assert_eq!(failed.state(), TaskState::Failed);
    assert_eq!(failed.health(), task_status::Health::Unhealthy);
    assert!(failed.err.contains("unhealthy"), "{failed:?}");
    assert!(
        h.engine
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Stop(id, ..) if id == "t")),
        "{:?}",
        h.engine.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn health_check_none_reports_no_health() {
    let mut t = task("t", &[]);
    container(&mut t).healthcheck = Some(HealthConfig {
        test: vec!["NONE".into()],
        ..Default::default()
    });
    let mut h = Harness::spawn(t);
    h.states_until(TaskState::Running).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(h.reports.try_recv().is_err());
}

/// An engine already running `t` (as a restarted daemon finds it).
async fn engine_running(t: &Task) -> (Arc<Recorder>, EngineTask) {
    let engine = Arc::new(Recorder::default());
    engine.sim.prepare(&run_of(t.clone())).await.unwrap();
    engine.sim.start(&t.id).await.unwrap();
    let found = engine.sim.list().await.unwrap().remove(0);
    assert!(found.running);
    (engine, found)
}

#[tokio::test(start_paused = true)]
async fn an_adopted_running_task_is_not_started_twice() {
    let t = with_state(task("t", &[]), TaskState::Running);
    let (engine, found) = engine_running(&t).await;
    let mut h = Harness::spawn_on(engine, t.clone(), Some(found));
    // The manager already knows it runs: nothing to report, nothing to do.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.reports.try_recv().is_err());
    assert_eq!(h.engine.calls(), vec![]);
    // It is watched all the same: a stop request stops it.
    h.send(desire(t, TaskState::Shutdown));
    assert_eq!(h.next().await.state(), TaskState::Shutdown);
    assert_eq!(h.engine.starts(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_task_the_manager_saw_starting_is_reported_running_once() {
    let t = with_state(task("t", &[]), TaskState::Starting);
    let (engine, found) = engine_running(&t).await;
    let mut h = Harness::spawn_on(engine, t, Some(found));
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Running);
    assert_eq!(status.container.unwrap().container_id, "sim-t");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.reports.try_recv().is_err());
    assert_eq!(h.engine.prepares() + h.engine.starts(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_task_that_exited_meanwhile_reports_its_exit() {
    let t = with_state(task("t", &[]), TaskState::Running);
    let (engine, _) = engine_running(&t).await;
    engine
        .sim
        .stop("t", Some("SIGKILL"), Duration::ZERO)
        .await
        .unwrap();
    let found = engine.sim.list().await.unwrap().remove(0);
    assert!(!found.running);
    let mut h = Harness::spawn_on(engine, t, Some(found));
    let status = h.next().await;
    assert_eq!(status.state(), TaskState::Failed);
    assert_eq!(status.container.unwrap().exit_code, 137);
    assert_eq!(h.engine.prepares() + h.engine.starts(), 0);
}

/// A task the manager wanted stopped while the daemon was down is stopped
/// once adopted: the first input's desired state counts, not only changes.
#[tokio::test(start_paused = true)]
async fn an_adopted_task_desired_shut_down_is_stopped() {
    let t = desire(
        with_state(task("t", &[]), TaskState::Running),
        TaskState::Shutdown,
    );
    let (engine, found) = engine_running(&t).await;
    let mut h = Harness::spawn_on(engine, t, Some(found));
    assert_eq!(h.next().await.state(), TaskState::Shutdown);
    assert!(h.engine.calls().iter().any(|c| matches!(c, Call::Stop(..))));
}
