//! The set built from commit events against the oracle that rebuilds it
//! from the whole store: after every random commit, a worker that applies
//! the messages holds exactly what the oracle says the node must hold.

use std::collections::BTreeMap;

use shoal_proto::dispatcher::{AssignmentsMessage, assignment, assignment_change};
use shoal_proto::objects::{
    Annotations, Config, ConfigReference, ConfigSpec, ContainerSpec, Secret, SecretReference,
    SecretSpec, Task, TaskSpec, TaskState, TaskStatus,
};

use super::*;
use crate::dispatcher::router::Streams;
use crate::store::Store;
use crate::testing::Rng;

/// What the worker on `node_id` must hold now.
pub(super) fn current(t: &Tables, node_id: &str) -> (Vec<Task>, Vec<Secret>, Vec<Config>) {
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

/// The worker's copy: id → version, by kind.
#[derive(Debug, Default, PartialEq)]
struct Worker {
    tasks: BTreeMap<String, u64>,
    secrets: BTreeMap<String, u64>,
    configs: BTreeMap<String, u64>,
}

impl Worker {
    fn apply(&mut self, message: &AssignmentsMessage) {
        if message.r#type == assignments_message::Type::Complete as i32 {
            *self = Worker::default();
        }
        for c in &message.changes {
            let remove = c.action == assignment_change::Action::Remove as i32;
            let item = c.assignment.as_ref().and_then(|a| a.item.as_ref());
            let (map, id, v) = match item {
                Some(assignment::Item::Task(t)) => {
                    (&mut self.tasks, &t.id, version(t.meta.as_ref()))
                }
                Some(assignment::Item::Secret(s)) => {
                    (&mut self.secrets, &s.id, version(s.meta.as_ref()))
                }
                Some(assignment::Item::Config(x)) => {
                    (&mut self.configs, &x.id, version(x.meta.as_ref()))
                }
                None => panic!("a change without an item"),
            };
            if remove {
                assert!(
                    map.remove(id).is_some(),
                    "removed {id}, which it did not hold"
                );
            } else {
                map.insert(id.clone(), v);
            }
        }
    }

    fn oracle(t: &Tables, node: &str) -> Worker {
        let (tasks, secrets, configs) = current(t, node);
        Worker {
            tasks: tasks
                .iter()
                .map(|x| (x.id.clone(), version(x.meta.as_ref())))
                .collect(),
            secrets: secrets
                .iter()
                .map(|x| (x.id.clone(), version(x.meta.as_ref())))
                .collect(),
            configs: configs
                .iter()
                .map(|x| (x.id.clone(), version(x.meta.as_ref())))
                .collect(),
        }
    }
}

const NODES: [&str; 2] = ["n1", "n2"];
const STATES: [TaskState; 6] = [
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Failed,
    TaskState::Shutdown,
];

fn task(id: &str, rng: &mut Rng) -> Task {
    let secrets = (0..rng.below(3))
        .map(|_| SecretReference {
            secret_id: format!("s{}", rng.below(4)),
            ..Default::default()
        })
        .collect();
    let configs = (0..rng.below(2))
        .map(|_| ConfigReference {
            config_id: format!("c{}", rng.below(3)),
            ..Default::default()
        })
        .collect();
    let mut t = Task {
        id: id.into(),
        node_id: NODES[rng.below(2) as usize].into(),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                secrets,
                configs,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    restate(&mut t, rng);
    t
}

fn restate(t: &mut Task, rng: &mut Rng) {
    t.status = Some(TaskStatus {
        state: STATES[rng.below(STATES.len() as u64) as usize] as i32,
        ..Default::default()
    });
    t.desired_state = if rng.below(4) == 0 {
        TaskState::Shutdown as i32
    } else {
        TaskState::Running as i32
    };
}

fn named(name: &str) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        ..Default::default()
    })
}

/// One random write: tasks come, change state, move, go; secrets and
/// configs come (sometimes after the tasks naming them) and change.
fn write(store: &Store, index: u64, rng: &mut Rng) {
    let batch = store.build(|tx| -> Result<(), crate::store::StoreError> {
        {
            let id = format!("t{}", rng.below(12));
            let kind = rng.below(10);
            let existing = tx.tables().get::<Task>(&id).cloned();
            match (kind, existing) {
                (0..=3, None) => tx.create(task(&id, rng))?,
                (0..=4, Some(mut t)) => {
                    restate(&mut t, rng);
                    tx.update(t)?
                }
                (5, Some(mut t)) => {
                    t.node_id = NODES[rng.below(2) as usize].into();
                    tx.update(t)?
                }
                (6, Some(_)) => tx.remove::<Task>(&id)?,
                (7, _) => {
                    let sid = format!("s{}", rng.below(4));
                    match tx.tables().get::<Secret>(&sid).cloned() {
                        Some(s) => tx.update(s)?,
                        None => tx.create(Secret {
                            id: sid.clone(),
                            spec: Some(SecretSpec {
                                annotations: named(&sid),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })?,
                    }
                }
                (8, _) => {
                    let cid = format!("c{}", rng.below(3));
                    match tx.tables().get::<Config>(&cid).cloned() {
                        Some(c) => tx.update(c)?,
                        None => tx.create(Config {
                            id: cid.clone(),
                            spec: Some(ConfigSpec {
                                annotations: named(&cid),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })?,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    });
    match batch {
        Ok((batch, ())) if !batch.actions.is_empty() => store.apply(index, batch).unwrap(),
        _ => store.skip(index),
    }
}

#[test]
fn messages_from_commit_events_keep_the_worker_equal_to_the_store() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let store = Store::new();
        let node = NODES[(seed % 2) as usize];
        let mut set = AssignmentSet::new(node);
        let mut worker = Worker::default();
        let (mut router, inbox) = Streams::for_assignments(node, &store);
        let (first, mut commits) = store.view_and_watch(|t| set.complete(t));
        worker.apply(&first);
        for index in 1..=300 {
            write(&store, index, &mut rng);
            while let Ok(commit) = commits.try_recv() {
                router.route(&commit, &store);
            }
            let mut touched = inbox.take();
            // Now and then everything is looked at again (a missed commit).
            if rng.below(25) == 0 {
                touched.everything();
            }
            if !touched.is_empty()
                && let Some(message) = store.view(|t| set.incremental(t, touched))
            {
                assert_eq!(message.applies_to + 1, message.results_in);
                worker.apply(&message);
            }
            let expected = store.view(|t| Worker::oracle(t, node));
            assert_eq!(worker, expected, "seed {seed}, after write {index}");
        }
    }
}
