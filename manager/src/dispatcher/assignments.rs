//! A node's assignment set and the stream that keeps the worker's copy of
//! it: first the complete set, then only what changed, each message
//! numbered so a worker can tell it missed one (it then reconnects and
//! gets a complete set again).
//!
//! The set is every task the scheduler gave the node that the worker still
//! has business with (to run, or to stop), plus the secrets and configs
//! those tasks reference, data included: secret data reaches only the
//! nodes that run a task needing it.

use std::collections::HashMap;

use shoal_proto::dispatcher::{
    Assignment, AssignmentChange, AssignmentsMessage, assignment, assignment_change,
    assignments_message,
};
use shoal_proto::objects::{Config, Secret, Task, TaskState};
use shoal_proto::task_state::observed;

use crate::store::{Changed, Commit, Tables};

/// Whether the worker on the task's node must know of it.
fn belongs(task: &Task) -> bool {
    let state = observed(task);
    state >= TaskState::Assigned
        && !(state.is_terminal() && task.desired_state() > TaskState::Running)
}

/// What the worker on `node_id` must hold now.
fn current(t: &Tables, node_id: &str) -> (Vec<Task>, Vec<Secret>, Vec<Config>) {
    let tasks: Vec<Task> = t
        .tasks_of_node(node_id)
        .filter(|x| belongs(x))
        .cloned()
        .collect();
    let mut secrets: HashMap<String, Secret> = HashMap::new();
    let mut configs: HashMap<String, Config> = HashMap::new();
    for task in &tasks {
        let Some(container) = task.spec.as_ref().and_then(|s| s.container.as_ref()) else {
            continue;
        };
        for r in &container.secrets {
            if let Some(s) = t.get::<Secret>(&r.secret_id) {
                secrets.insert(s.id.clone(), s.clone());
            }
        }
        for r in &container.configs {
            if let Some(c) = t.get::<Config>(&r.config_id) {
                configs.insert(c.id.clone(), c.clone());
            }
        }
    }
    (
        tasks,
        secrets.into_values().collect(),
        configs.into_values().collect(),
    )
}

fn version(meta: Option<&shoal_proto::objects::Meta>) -> u64 {
    meta.map_or(0, |m| m.version)
}

/// The worker's copy, as far as the dispatcher knows: id → version.
#[derive(Debug, Default)]
pub struct AssignmentSet {
    node_id: String,
    tasks: HashMap<String, u64>,
    secrets: HashMap<String, u64>,
    configs: HashMap<String, u64>,
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

    /// Whether a commit may change this node's set.
    pub fn concerns(&self, commit: &Commit) -> bool {
        commit.reset
            || commit.events.iter().any(|e| match &e.object {
                Changed::Task(t) => t.node_id == self.node_id || self.tasks.contains_key(&t.id),
                Changed::Secret(s) => self.secrets.contains_key(&s.id),
                Changed::Config(c) => self.configs.contains_key(&c.id),
                _ => false,
            })
    }

    /// The first message: everything.
    pub fn complete(&mut self, t: &Tables) -> AssignmentsMessage {
        let (tasks, secrets, configs) = current(t, &self.node_id);
        self.tasks.clear();
        self.secrets.clear();
        self.configs.clear();
        let mut changes = Vec::new();
        let update = assignment_change::Action::Update;
        for s in secrets {
            self.secrets.insert(s.id.clone(), version(s.meta.as_ref()));
            changes.push(change(assignment::Item::Secret(s), update));
        }
        for c in configs {
            self.configs.insert(c.id.clone(), version(c.meta.as_ref()));
            changes.push(change(assignment::Item::Config(c), update));
        }
        for task in tasks {
            self.tasks
                .insert(task.id.clone(), version(task.meta.as_ref()));
            changes.push(change(assignment::Item::Task(task), update));
        }
        self.sequence += 1;
        AssignmentsMessage {
            r#type: assignments_message::Type::Complete as i32,
            applies_to: 0,
            results_in: self.sequence,
            changes,
            more: false,
        }
    }

    /// What changed since the last message, if anything.
    pub fn incremental(&mut self, t: &Tables) -> Option<AssignmentsMessage> {
        let (tasks, secrets, configs) = current(t, &self.node_id);
        let update = assignment_change::Action::Update;
        let remove = assignment_change::Action::Remove;
        let mut changes = Vec::new();
        // Secrets and configs first, so a new task finds its files.
        let mut seen_secrets = HashMap::new();
        for s in secrets {
            let v = version(s.meta.as_ref());
            seen_secrets.insert(s.id.clone(), v);
            if self.secrets.get(&s.id) != Some(&v) {
                changes.push(change(assignment::Item::Secret(s), update));
            }
        }
        let mut seen_configs = HashMap::new();
        for c in configs {
            let v = version(c.meta.as_ref());
            seen_configs.insert(c.id.clone(), v);
            if self.configs.get(&c.id) != Some(&v) {
                changes.push(change(assignment::Item::Config(c), update));
            }
        }
        let mut seen_tasks = HashMap::new();
        for task in tasks {
            let v = version(task.meta.as_ref());
            seen_tasks.insert(task.id.clone(), v);
            if self.tasks.get(&task.id) != Some(&v) {
                changes.push(change(assignment::Item::Task(task), update));
            }
        }
        for id in self.tasks.keys().filter(|id| !seen_tasks.contains_key(*id)) {
            let gone = Task {
                id: id.clone(),
                ..Default::default()
            };
            changes.push(change(assignment::Item::Task(gone), remove));
        }
        for id in self
            .secrets
            .keys()
            .filter(|id| !seen_secrets.contains_key(*id))
        {
            let gone = Secret {
                id: id.clone(),
                ..Default::default()
            };
            changes.push(change(assignment::Item::Secret(gone), remove));
        }
        for id in self
            .configs
            .keys()
            .filter(|id| !seen_configs.contains_key(*id))
        {
            let gone = Config {
                id: id.clone(),
                ..Default::default()
            };
            changes.push(change(assignment::Item::Config(gone), remove));
        }
        self.tasks = seen_tasks;
        self.secrets = seen_secrets;
        self.configs = seen_configs;
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
}
