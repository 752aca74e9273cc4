//! The worker: the node's assignment set turned into task actors. It holds
//! what the dispatcher sent (tasks, and the secrets and configs they
//! need), starts an actor per new task, hands each actor its task again
//! when the task changes, and tells it when the task left the set.
//!
//! On start it asks the engine what it already runs: those tasks are
//! adopted by their actors when the first complete set names them, and
//! stopped and removed when it does not (they belong to nobody now).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use shoal_proto::dispatcher::{
    AssignmentsMessage, assignment, assignment_change, assignments_message,
};
use shoal_proto::objects::{Config, Secret, Task};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::exec::{Engine, EngineTask, TaskFile, TaskRun};
use crate::task::{self, Report};

/// What the worker is told.
#[derive(Debug)]
pub enum Command {
    /// A message from the dispatcher's assignment stream.
    Assignments(AssignmentsMessage),
    /// The node leaves the swarm: stop and remove every task, then answer.
    RemoveAll(tokio::sync::oneshot::Sender<()>),
}

struct Worker {
    engine: Arc<dyn Engine>,
    plane: task::Plane,
    reports: mpsc::UnboundedSender<Report>,
    tasks: HashMap<String, watch::Sender<Option<TaskRun>>>,
    secrets: HashMap<String, Secret>,
    configs: HashMap<String, Config>,
    /// What the engine ran when the worker started, until the first
    /// complete set says whose they are.
    found: Option<HashMap<String, EngineTask>>,
}

/// Runs the worker until `shutdown`. Tasks keep running after it ends
/// (a daemon restart adopts them); only [`Command::RemoveAll`] stops them.
pub async fn run(
    engine: Arc<dyn Engine>,
    plane: task::Plane,
    mut commands: mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
    shutdown: CancellationToken,
) {
    let found = match engine.list().await {
        Ok(list) => list.into_iter().map(|t| (t.task_id.clone(), t)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the engine's tasks; none adopted");
            HashMap::new()
        }
    };
    if !found.is_empty() {
        tracing::info!(tasks = found.len(), "found tasks from before the restart");
    }
    let mut worker = Worker {
        engine,
        plane,
        reports,
        tasks: HashMap::new(),
        secrets: HashMap::new(),
        configs: HashMap::new(),
        found: Some(found),
    };
    loop {
        let command = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = commands.recv() => match c { Some(c) => c, None => return },
        };
        match command {
            Command::Assignments(message) => worker.apply(message),
            Command::RemoveAll(done) => {
                worker.remove_all().await;
                let _ = done.send(());
            }
        }
        worker.tasks.retain(|_, tx| !tx.is_closed());
    }
}

impl Worker {
    fn apply(&mut self, message: AssignmentsMessage) {
        let complete = message.r#type() == assignments_message::Type::Complete;
        let mut named: HashSet<String> = HashSet::new();
        let mut updated: Vec<Task> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        if complete {
            self.secrets.clear();
            self.configs.clear();
        }
        for change in message.changes {
            let remove = change.action() == assignment_change::Action::Remove;
            let Some(item) = change.assignment.and_then(|a| a.item) else {
                continue;
            };
            match item {
                assignment::Item::Secret(s) if remove => {
                    self.secrets.remove(&s.id);
                }
                assignment::Item::Secret(s) => {
                    self.secrets.insert(s.id.clone(), s);
                }
                assignment::Item::Config(c) if remove => {
                    self.configs.remove(&c.id);
                }
                assignment::Item::Config(c) => {
                    self.configs.insert(c.id.clone(), c);
                }
                assignment::Item::Task(t) if remove => removed.push(t.id),
                assignment::Item::Task(t) => {
                    named.insert(t.id.clone());
                    updated.push(t);
                }
            }
        }
        if complete {
            removed.extend(self.tasks.keys().filter(|id| !named.contains(*id)).cloned());
        }
        for id in removed {
            if let Some(tx) = self.tasks.remove(&id) {
                let _ = tx.send(None);
            }
        }
        for task in updated {
            let run = self.task_run(task);
            match self.tasks.get(&run.task.id) {
                Some(tx) => {
                    let _ = tx.send(Some(run));
                }
                None => self.start(run),
            }
        }
        if complete && let Some(found) = self.found.take() {
            // What the engine runs that nobody assigned any more.
            for (id, _) in found.into_iter().filter(|(id, _)| !named.contains(id)) {
                let engine = self.engine.clone();
                tokio::spawn(async move {
                    tracing::info!(task = %id, "removing a task that is no longer assigned here");
                    let _ = engine
                        .stop(&id, None, std::time::Duration::from_secs(10))
                        .await;
                    if let Err(e) = engine.remove(&id).await {
                        tracing::warn!(task = %id, error = %e, "could not remove an unassigned task");
                    }
                });
            }
        }
    }

    fn start(&mut self, run: TaskRun) {
        let id = run.task.id.clone();
        let adopted = self.found.as_mut().and_then(|f| f.remove(&id));
        let (tx, rx) = watch::channel(Some(run));
        self.tasks.insert(id, tx);
        tokio::spawn(task::run(
            self.engine.clone(),
            rx,
            self.reports.clone(),
            adopted,
            self.plane.clone(),
        ));
    }

    async fn remove_all(&mut self) {
        for (_, tx) in self.tasks.drain() {
            let _ = tx.send(None);
        }
        if let Ok(list) = self.engine.list().await {
            for t in list {
                let _ = self
                    .engine
                    .stop(&t.task_id, None, std::time::Duration::from_secs(10))
                    .await;
                let _ = self.engine.remove(&t.task_id).await;
            }
        }
    }

    /// The task with the data of the secrets and configs it references.
    fn task_run(&self, task: Task) -> TaskRun {
        let mut files = Vec::new();
        if let Some(c) = task.spec.as_ref().and_then(|s| s.container.as_ref()) {
            for r in &c.secrets {
                if let Some(secret) = self.secrets.get(&r.secret_id) {
                    let data = secret
                        .spec
                        .as_ref()
                        .map(|s| s.data.clone())
                        .unwrap_or_default();
                    files.push(file(
                        r.target.clone(),
                        &r.secret_name,
                        "/run/secrets",
                        data,
                        true,
                    ));
                }
            }
            for r in &c.configs {
                if let Some(config) = self.configs.get(&r.config_id) {
                    let data = config
                        .spec
                        .as_ref()
                        .map(|s| s.data.clone())
                        .unwrap_or_default();
                    files.push(file(r.target.clone(), &r.config_name, "/", data, false));
                }
            }
        }
        if !task.networks.is_empty() {
            // Names resolve through the node's resolver in the task.
            files.push(TaskFile {
                path: PathBuf::from("/etc/resolv.conf"),
                data: crate::net::dns::RESOLV_CONF.as_bytes().to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
                secret: false,
            });
        }
        TaskRun { task, files }
    }
}

/// A secret or config as the task sees it: at its target (relative names
/// under `dir`), mode 0444 unless the spec says otherwise.
fn file(
    target: Option<shoal_proto::objects::FileTarget>,
    name: &str,
    dir: &str,
    data: Vec<u8>,
    secret: bool,
) -> TaskFile {
    let target = target.unwrap_or_default();
    let name = if target.name.is_empty() {
        name
    } else {
        &target.name
    };
    let path = if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from(dir).join(name)
    };
    TaskFile {
        path,
        data,
        uid: target.uid,
        gid: target.gid,
        mode: if target.mode == 0 { 0o444 } else { target.mode },
        secret,
    }
}

#[cfg(test)]
mod tests;
