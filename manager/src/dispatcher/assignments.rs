//! A node's assignment set and the stream that keeps the worker's copy of
//! it: first the complete set, then only what changed, each message
//! numbered so a worker can tell it missed one (it then reconnects and
//! gets a complete set again).
//!
//! The set is every task the scheduler gave the node that the worker still
//! has business with (to run, or to stop), plus the secrets and configs
//! those tasks reference, data included: secret data reaches only the
//! nodes that run a task needing it.
//!
//! After the first message, only what commits touched is looked at again
//! (their task, secret and config ids, which [`super::router`] finds in
//! their events and leaves in the stream's inbox): the work
//! per commit grows with the commit, not with the tasks the node holds. A
//! leader with 100,000 tasks on 3 nodes spent most of its CPU rebuilding
//! each node's whole set on every commit. Secrets and configs are counted
//! by the tasks that use them, so one leaves the node with its last task.

use std::collections::{HashMap, HashSet};

use shoal_proto::dispatcher::{
    Assignment, AssignmentChange, AssignmentsMessage, assignment, assignment_change,
    assignments_message,
};
use shoal_proto::objects::{Config, Secret, Task, TaskState};
use shoal_proto::task_state::observed;

use crate::store::Tables;

/// What commits touched, since the last message: the ids to look at again,
/// or everything (a snapshot replaced the store, or commits were missed).
#[derive(Debug, Default)]
pub struct Touched {
    tasks: HashSet<String>,
    secrets: HashSet<String>,
    configs: HashSet<String>,
    all: bool,
}

impl Touched {
    /// Look at everything again.
    pub fn everything(&mut self) {
        self.all = true;
    }

    /// Look at task `id` again.
    pub fn task(&mut self, id: &str) {
        self.tasks.insert(id.to_string());
    }

    /// Look at secret `id` again, if the node holds it.
    pub fn secret(&mut self, id: &str) {
        self.secrets.insert(id.to_string());
    }

    /// Look at config `id` again, if the node holds it.
    pub fn config(&mut self, id: &str) {
        self.configs.insert(id.to_string());
    }

    /// Adds what `other` names.
    pub fn merge(&mut self, other: &Touched) {
        self.tasks.extend(other.tasks.iter().cloned());
        self.secrets.extend(other.secrets.iter().cloned());
        self.configs.extend(other.configs.iter().cloned());
        self.all |= other.all;
    }

    /// Whether there is nothing to look at.
    pub fn is_empty(&self) -> bool {
        !self.all && self.tasks.is_empty() && self.secrets.is_empty() && self.configs.is_empty()
    }
}

/// Whether the worker on the task's node must know of it.
fn belongs(task: &Task) -> bool {
    let state = observed(task);
    state >= TaskState::Assigned
        && !(state.is_terminal() && task.desired_state() > TaskState::Running)
}

fn version(meta: Option<&shoal_proto::objects::Meta>) -> u64 {
    meta.map_or(0, |m| m.version)
}

/// The secret and config ids a task's spec names.
fn files_of(task: &Task) -> (Vec<String>, Vec<String>) {
    let Some(container) = task.spec.as_ref().and_then(|s| s.container.as_ref()) else {
        return (Vec::new(), Vec::new());
    };
    (
        container
            .secrets
            .iter()
            .map(|r| r.secret_id.clone())
            .collect(),
        container
            .configs
            .iter()
            .map(|r| r.config_id.clone())
            .collect(),
    )
}

/// A task the worker holds.
#[derive(Debug)]
struct Held {
    version: u64,
    secrets: Vec<String>,
    configs: Vec<String>,
}

/// A secret or config the node's tasks use: the version the worker holds
/// (none while the store has no such object) and how many tasks use it.
#[derive(Debug)]
struct Used {
    version: Option<u64>,
    users: usize,
}

/// The changes of one message, in the order the worker applies them:
/// files first (a new task finds its secrets), removed files last.
#[derive(Default)]
struct Changes {
    files: Vec<AssignmentChange>,
    tasks: Vec<AssignmentChange>,
    removed_files: Vec<AssignmentChange>,
}

impl Changes {
    fn into_vec(self) -> Vec<AssignmentChange> {
        let mut all = self.files;
        all.extend(self.tasks);
        all.extend(self.removed_files);
        all
    }
}

/// Secrets or configs, by id: which the worker holds and who uses them.
#[derive(Debug, Default)]
struct Files(HashMap<String, Used>);

/// Secrets and configs alike, for [`Files`].
trait FileKind: Clone + Default + crate::store::Stored {
    fn item(self) -> assignment::Item;
    fn with_id(id: String) -> Self;
}

impl FileKind for Secret {
    fn item(self) -> assignment::Item {
        assignment::Item::Secret(self)
    }
    fn with_id(id: String) -> Self {
        Secret {
            id,
            ..Default::default()
        }
    }
}

impl FileKind for Config {
    fn item(self) -> assignment::Item {
        assignment::Item::Config(self)
    }
    fn with_id(id: String) -> Self {
        Config {
            id,
            ..Default::default()
        }
    }
}

impl Files {
    /// One more task uses `id`: the first sends it.
    fn acquire<F: FileKind>(&mut self, t: &Tables, id: &str, out: &mut Changes) {
        let used = self.0.entry(id.to_string()).or_insert(Used {
            version: None,
            users: 0,
        });
        used.users += 1;
        if used.users == 1 {
            Self::refresh::<F>(used, t, id, out);
        }
    }

    /// One task fewer uses `id`: the last removes it.
    fn release<F: FileKind>(&mut self, id: &str, out: &mut Changes) {
        let Some(used) = self.0.get_mut(id) else {
            return;
        };
        used.users -= 1;
        if used.users == 0 {
            let held = self.0.remove(id).and_then(|u| u.version);
            if held.is_some() {
                let gone = F::with_id(id.to_string()).item();
                out.removed_files
                    .push(change(gone, assignment_change::Action::Remove));
            }
        }
    }

    /// Sends `id` again if the store's version is not the worker's.
    fn touched<F: FileKind>(&mut self, t: &Tables, id: &str, out: &mut Changes) {
        if let Some(used) = self.0.get_mut(id) {
            Self::refresh::<F>(used, t, id, out);
        }
    }

    fn refresh<F: FileKind>(used: &mut Used, t: &Tables, id: &str, out: &mut Changes) {
        let Some(object) = t.get::<F>(id) else {
            return;
        };
        let v = version(object.meta());
        if used.version != Some(v) {
            used.version = Some(v);
            out.files.push(change(
                object.clone().item(),
                assignment_change::Action::Update,
            ));
        }
    }
}

/// The worker's copy, as far as the dispatcher knows.
#[derive(Debug, Default)]
pub struct AssignmentSet {
    node_id: String,
    tasks: HashMap<String, Held>,
    secrets: Files,
    configs: Files,
    sequence: u64,
}

fn change(item: assignment::Item, action: assignment_change::Action) -> AssignmentChange {
    AssignmentChange {
        assignment: Some(Assignment { item: Some(item) }),
        action: action as i32,
    }
}

impl AssignmentSet {
    /// An empty set for `node_id`.
    pub fn new(node_id: &str) -> AssignmentSet {
        AssignmentSet {
            node_id: node_id.to_string(),
            ..Default::default()
        }
    }

    /// The first message: everything.
    pub fn complete(&mut self, t: &Tables) -> AssignmentsMessage {
        self.tasks.clear();
        self.secrets = Files::default();
        self.configs = Files::default();
        let mut out = Changes::default();
        let ids: Vec<String> = t
            .tasks_of_node(&self.node_id)
            .filter(|x| belongs(x))
            .map(|x| x.id.clone())
            .collect();
        for id in &ids {
            self.look_again(t, id, &mut out);
        }
        self.sequence += 1;
        AssignmentsMessage {
            r#type: assignments_message::Type::Complete as i32,
            applies_to: 0,
            results_in: self.sequence,
            changes: out.into_vec(),
            more: false,
        }
    }

    /// What changed since the last message, if anything: the ids
    /// `touched` names, or every task of the node and every task held.
    pub fn incremental(&mut self, t: &Tables, touched: Touched) -> Option<AssignmentsMessage> {
        let mut out = Changes::default();
        if touched.all {
            let mut ids: HashSet<String> = self.tasks.keys().cloned().collect();
            ids.extend(t.tasks_of_node(&self.node_id).map(|x| x.id.clone()));
            for id in &ids {
                self.look_again(t, id, &mut out);
            }
            let secrets: Vec<String> = self.secrets.0.keys().cloned().collect();
            for id in &secrets {
                self.secrets.touched::<Secret>(t, id, &mut out);
            }
            let configs: Vec<String> = self.configs.0.keys().cloned().collect();
            for id in &configs {
                self.configs.touched::<Config>(t, id, &mut out);
            }
        } else {
            for id in &touched.tasks {
                self.look_again(t, id, &mut out);
            }
            for id in &touched.secrets {
                self.secrets.touched::<Secret>(t, id, &mut out);
            }
            for id in &touched.configs {
                self.configs.touched::<Config>(t, id, &mut out);
            }
        }
        let changes = out.into_vec();
        if changes.is_empty() {
            return None;
        }
        let applies_to = self.sequence;
        self.sequence += 1;
        Some(AssignmentsMessage {
            r#type: assignments_message::Type::Incremental as i32,
            applies_to,
            results_in: self.sequence,
            changes,
            more: false,
        })
    }

    /// Brings task `id` on the worker in line with the store: sends it if
    /// it is new or changed, removes it if it left the node or is done.
    fn look_again(&mut self, t: &Tables, id: &str, out: &mut Changes) {
        let now = t
            .get::<Task>(id)
            .filter(|x| x.node_id == self.node_id && belongs(x));
        match now {
            Some(task) => {
                let v = version(task.meta.as_ref());
                if self.tasks.get(id).is_some_and(|h| h.version == v) {
                    return;
                }
                let (secrets, configs) = files_of(task);
                // Take the new references before dropping the old, so a
                // file the task keeps is neither removed nor sent again.
                for s in &secrets {
                    self.secrets.acquire::<Secret>(t, s, out);
                }
                for c in &configs {
                    self.configs.acquire::<Config>(t, c, out);
                }
                let held = Held {
                    version: v,
                    secrets,
                    configs,
                };
                if let Some(old) = self.tasks.insert(id.to_string(), held) {
                    self.release(&old, out);
                }
                out.tasks.push(change(
                    assignment::Item::Task(task.clone()),
                    assignment_change::Action::Update,
                ));
            }
            None => {
                if let Some(old) = self.tasks.remove(id) {
                    self.release(&old, out);
                    let gone = Task {
                        id: id.to_string(),
                        ..Default::default()
                    };
                    out.tasks.push(change(
                        assignment::Item::Task(gone),
                        assignment_change::Action::Remove,
                    ));
                }
            }
        }
    }

    fn release(&mut self, held: &Held, out: &mut Changes) {
        for s in &held.secrets {
            self.secrets.release::<Secret>(s, out);
        }
        for c in &held.configs {
            self.configs.release::<Config>(c, out);
        }
    }
}

#[cfg(test)]
mod tests;
