//! The worker on the sim engine (wrapped to record what it is asked),
//! with paused time: a missing report fails at once instead of hanging.

use std::time::Duration;

use shoal_proto::dispatcher::{Assignment, AssignmentChange};
use shoal_proto::objects::{
    ConfigReference, ConfigSpec, ContainerSpec, FileTarget, NetworkAttachment, SecretReference,
    SecretSpec, TaskSpec, TaskState, TaskStatus,
};

use super::*;
use crate::exec::sim::recorder::{Call, Recorder};

fn task(id: &str) -> Task {
    let mut status = TaskStatus::default();
    status.set_state(TaskState::Assigned);
    let mut t = Task {
        id: id.into(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec::default()),
            ..Default::default()
        }),
        status: Some(status),
        ..Default::default()
    };
    t.set_desired_state(TaskState::Running);
    t
}

fn container(t: &mut Task) -> &mut ContainerSpec {
    t.spec
        .get_or_insert_default()
        .container
        .get_or_insert_default()
}

fn secret(id: &str, data: &[u8]) -> Secret {
    Secret {
        id: id.into(),
        spec: Some(SecretSpec {
            data: data.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn config(id: &str, data: &[u8]) -> Config {
    Config {
        id: id.into(),
        spec: Some(ConfigSpec {
            data: data.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn change(item: assignment::Item, action: assignment_change::Action) -> AssignmentChange {
    let mut c = AssignmentChange {
        assignment: Some(Assignment { item: Some(item) }),
        ..Default::default()
    };
    c.set_action(action);
    c
}

fn update(item: assignment::Item) -> AssignmentChange {
    change(item, assignment_change::Action::Update)
}

fn message(kind: assignments_message::Type, changes: Vec<AssignmentChange>) -> Command {
    let mut m = AssignmentsMessage {
        changes,
        ..Default::default()
    };
    m.set_type(kind);
    Command::Assignments(m)
}

fn complete(changes: Vec<AssignmentChange>) -> Command {
    message(assignments_message::Type::Complete, changes)
}

fn incremental(changes: Vec<AssignmentChange>) -> Command {
    message(assignments_message::Type::Incremental, changes)
}

fn tasks(ts: &[Task]) -> Vec<AssignmentChange> {
    ts.iter()
        .map(|t| update(assignment::Item::Task(t.clone())))
        .collect()
}

/// A running worker and what it reports.
struct Harness {
    engine: Arc<Recorder>,
    commands: mpsc::Sender<Command>,
    reports: mpsc::UnboundedReceiver<Report>,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
    /// The last state each task reported.
    seen: HashMap<String, TaskState>,
}

const PATIENCE: Duration = Duration::from_secs(600);

impl Harness {
    fn spawn() -> Harness {
        Harness::spawn_on(Arc::new(Recorder::default()))
    }

    fn spawn_on(engine: Arc<Recorder>) -> Harness {
        let (commands, rx) = mpsc::channel(16);
        let (tx, reports) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(run(engine.clone(), None, rx, tx, shutdown.clone()));
        Harness {
            engine,
            commands,
            reports,
            shutdown,
            worker,
            seen: HashMap::new(),
        }
    }

    async fn send(&self, command: Command) {
        self.commands.send(command).await.unwrap();
    }

    /// Reads reports until `id` reported `state`.
    async fn wait_for(&mut self, id: &str, state: TaskState) {
        tokio::time::timeout(PATIENCE, async {
            while self.seen.get(id) != Some(&state) {
                let (task, status) = self.reports.recv().await.expect("reports");
                self.seen.insert(task, status.state());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{id} never reported {state:?}; saw {:?}", self.seen));
    }

    /// Reads what is reported in the next minute.
    async fn settle(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some((task, status)) = self.reports.recv().await {
                self.seen.insert(task, status.state());
            }
        })
        .await;
    }

    /// Waits (in paused time) until the engine was called so.
    async fn wait_call(&self, call: Call) {
        tokio::time::timeout(PATIENCE, async {
            while !self.engine.called(&call) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never called {call:?}; calls {:?}", self.engine.calls()));
    }
}

#[tokio::test(start_paused = true)]
async fn a_complete_set_starts_its_tasks_and_the_next_one_stops_the_rest() {
    let mut h = Harness::spawn();
    h.send(complete(tasks(&[task("a"), task("b")]))).await;
    h.wait_for("a", TaskState::Running).await;
    h.wait_for("b", TaskState::Running).await;

    // "a" is no longer assigned: stopped, reported shut down, removed.
    h.send(complete(tasks(&[task("b")]))).await;
    h.wait_for("a", TaskState::Shutdown).await;
    h.wait_call(Call::Remove("a".into())).await;
    h.settle().await;
    assert_eq!(h.seen["b"], TaskState::Running);
    let left: Vec<String> = h
        .engine
        .sim
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(left, ["b"]);
    // "b", named again, got no second actor.
    let calls = h.engine.calls();
    let b = |c: &&Call| matches!(c, Call::Prepare(id) | Call::Start(id) if id == "b");
    assert_eq!(calls.iter().filter(b).count(), 2, "{calls:?}");
    assert!(!h.engine.stopped("b"), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn incremental_changes_add_update_and_remove_tasks() {
    let mut h = Harness::spawn();
    h.send(complete(tasks(&[task("a")]))).await;
    h.wait_for("a", TaskState::Running).await;

    // An incremental message adds without touching what it does not name.
    h.send(incremental(tasks(&[task("b")]))).await;
    h.wait_for("b", TaskState::Running).await;
    assert!(!h.engine.stopped("a"));

    // A new desired state goes to the task's actor.
    let mut stop_b = task("b");
    stop_b.set_desired_state(TaskState::Shutdown);
    h.send(incremental(tasks(&[stop_b]))).await;
    h.wait_for("b", TaskState::Shutdown).await;
    assert!(h.engine.stopped("b"));
    // Stopped, not removed, while it is still assigned.
    h.settle().await;
    assert!(!h.engine.called(&Call::Remove("b".into())));

    // Removing it from the set removes it from the engine.
    h.send(incremental(vec![change(
        assignment::Item::Task(task("b")),
        assignment_change::Action::Remove,
    )]))
    .await;
    h.wait_call(Call::Remove("b".into())).await;
    h.settle().await;
    assert_eq!(h.seen["a"], TaskState::Running);
    assert!(!h.engine.stopped("a"));
}

#[tokio::test(start_paused = true)]
async fn secrets_and_configs_reach_only_the_tasks_that_reference_them() {
    let mut h = Harness::spawn();
    let mut a = task("a");
    container(&mut a).secrets = vec![
        SecretReference {
            secret_id: "s1".into(),
            secret_name: "db-password".into(),
            target: None,
        },
        SecretReference {
            secret_id: "s2".into(),
            secret_name: "api-key".into(),
            target: Some(FileTarget {
                name: "key".into(),
                uid: 5,
                gid: 6,
                mode: 0o400,
            }),
        },
    ];
    container(&mut a).configs = vec![ConfigReference {
        config_id: "c1".into(),
        config_name: "app.toml".into(),
        target: Some(FileTarget {
            name: "/etc/app.toml".into(),
            ..Default::default()
        }),
    }];
    let b = task("b");
    // The secrets come after the task in the message.
    let mut changes = tasks(&[a, b]);
    changes.push(update(assignment::Item::Secret(secret("s1", b"hunter2"))));
    changes.push(update(assignment::Item::Secret(secret("s2", b"k"))));
    changes.push(update(assignment::Item::Secret(secret("s3", b"other"))));
    changes.push(update(assignment::Item::Config(config("c1", b"x = 1"))));
    h.send(complete(changes)).await;
    h.wait_for("a", TaskState::Running).await;
    h.wait_for("b", TaskState::Running).await;

    let mut files = h.engine.files("a");
    files.sort_by(|x, y| x.path.cmp(&y.path));
    let got: Vec<_> = files
        .iter()
        .map(|f| {
            (
                f.path.to_str().unwrap().to_string(),
                f.data.clone(),
                (f.uid, f.gid, f.mode),
                f.secret,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "/etc/app.toml".to_string(),
                b"x = 1".to_vec(),
                (0, 0, 0o444),
                false
            ),
            (
                "/run/secrets/db-password".to_string(),
                b"hunter2".to_vec(),
                (0, 0, 0o444),
                true
            ),
            (
                "/run/secrets/key".to_string(),
                b"k".to_vec(),
                (5, 6, 0o400),
                true
            ),
        ]
    );
    assert!(h.engine.files("b").is_empty(), "{:?}", h.engine.files("b"));
}

#[tokio::test(start_paused = true)]
async fn a_complete_set_forgets_the_secrets_it_no_longer_names() {
    let mut h = Harness::spawn();
    let mut a = task("a");
    container(&mut a).secrets = vec![SecretReference {
        secret_id: "s1".into(),
        secret_name: "pw".into(),
        target: None,
    }];
    let mut changes = tasks(&[task("x")]);
    changes.push(update(assignment::Item::Secret(secret("s1", b"old"))));
    h.send(complete(changes)).await;
    h.wait_for("x", TaskState::Running).await;
    // The next complete set no longer carries s1: a task needing it now
    // gets nothing of it.
    h.send(complete(tasks(&[task("x"), a]))).await;
    h.wait_for("a", TaskState::Running).await;
    assert!(h.engine.files("a").is_empty(), "{:?}", h.engine.files("a"));
}

#[tokio::test(start_paused = true)]
async fn resolv_conf_is_added_only_for_tasks_on_networks() {
    let mut h = Harness::spawn();
    let mut a = task("a");
    a.networks = vec![NetworkAttachment {
        addresses: vec!["10.0.1.5/24".into()],
        ..Default::default()
    }];
    h.send(complete(tasks(&[a, task("b")]))).await;
    h.wait_for("a", TaskState::Running).await;
    h.wait_for("b", TaskState::Running).await;
    let files = h.engine.files("a");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, PathBuf::from("/etc/resolv.conf"));
    assert_eq!(files[0].data, crate::net::dns::RESOLV_CONF.as_bytes());
    assert!(!files[0].secret);
    assert_eq!(files[0].mode, 0o644);
    assert!(h.engine.files("b").is_empty());
}

#[tokio::test(start_paused = true)]
async fn tasks_found_running_are_adopted_or_removed_by_the_first_complete_set() {
    let engine = Arc::new(Recorder::default());
    for id in ["kept", "orphan"] {
        engine
            .sim
            .prepare(&TaskRun {
                task: task(id),
                files: vec![],
            })
            .await
            .unwrap();
        engine.sim.start(id).await.unwrap();
    }
    let mut h = Harness::spawn_on(engine);
    let mut kept = task("kept");
    kept.status.as_mut().unwrap().set_state(TaskState::Running);
    h.send(complete(tasks(&[kept, task("new")]))).await;
    h.wait_for("new", TaskState::Running).await;
    h.wait_call(Call::Remove("orphan".into())).await;
    assert!(h.engine.stopped("orphan"));
    h.settle().await;
    // Adopted: neither prepared nor started again, still running.
    let calls = h.engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Prepare(id) | Call::Start(id) if id == "kept")),
        "{calls:?}"
    );
    let running: Vec<String> = h
        .engine
        .sim
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.running)
        .map(|t| t.task_id)
        .collect();
    assert_eq!(running, ["kept", "new"]);
}

#[tokio::test(start_paused = true)]
async fn remove_all_stops_and_removes_every_task_then_answers() {
    let mut h = Harness::spawn();
    h.send(complete(tasks(&[task("a"), task("b")]))).await;
    h.wait_for("a", TaskState::Running).await;
    h.wait_for("b", TaskState::Running).await;
    let (done, answered) = tokio::sync::oneshot::channel();
    h.send(Command::RemoveAll(done)).await;
    tokio::time::timeout(PATIENCE, answered)
        .await
        .expect("an answer")
        .unwrap();
    assert!(h.engine.sim.list().await.unwrap().is_empty());
    h.settle().await;
    // Shutdown or, when the worker's own stop wins the race with the
    // actor's, failed with the stop signal's exit code: ended either way.
    assert!(h.seen["a"].is_terminal(), "{:?}", h.seen);
    assert!(h.seen["b"].is_terminal(), "{:?}", h.seen);
    // Each actor ended and left, so later commands find no stale task.
    assert!(h.engine.stopped("a"));
    assert!(h.engine.called(&Call::Remove("b".into())));
}

/// Tasks keep running after the worker ends (the daemon stops): the next
/// daemon adopts them, as after a crash. Only `RemoveAll` (swarm leave)
/// or the manager's word stops them.
#[tokio::test(start_paused = true)]
async fn shutting_the_worker_down_leaves_its_tasks_running() {
    let mut h = Harness::spawn();
    h.send(complete(tasks(&[task("a")]))).await;
    h.wait_for("a", TaskState::Running).await;
    h.shutdown.cancel();
    tokio::time::timeout(PATIENCE, &mut h.worker)
        .await
        .expect("the worker ends")
        .unwrap();
    h.settle().await;
    assert_eq!(h.seen["a"], TaskState::Running);
    assert!(h.engine.sim.list().await.unwrap()[0].running);
    assert!(!h.engine.stopped("a"));
}
