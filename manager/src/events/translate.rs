//! Store changes into cluster events. A store event carries only the
//! object after the change, while Docker's attributes describe what an
//! update changed, so the translator remembers the last services and
//! nodes it saw (shared with the store, so this costs pointers) and the
//! last state of each task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use shoal_proto::objects::{Node, Service, Task, TaskState};

use super::ClusterEvent;
use super::attributes::{self, Attributes};
use crate::store::{Changed, Commit, Event, EventAction, Stored, Tables};

/// What the translator remembers between commits.
#[derive(Debug, Default)]
pub(super) struct Translator {
    services: HashMap<String, Arc<Service>>,
    nodes: HashMap<String, Arc<Node>>,
    tasks: HashMap<String, TaskState>,
}

impl Translator {
    /// A translator that knows the objects in `tables` (at start, and
    /// after a snapshot restore, when the events in between are unknown).
    pub(super) fn seeded(tables: &Tables) -> Translator {
        Translator {
            services: by_id(tables.all::<Service>()),
            nodes: by_id(tables.all::<Node>()),
            tasks: tables
                .all::<Task>()
                .map(|t| (t.id.clone(), shoal_proto::task_state::observed(t)))
                .collect(),
        }
    }

    /// The events of one commit, in its order; `now` is the time of
    /// removals. A reset commit has none: the caller re-seeds.
    pub(super) fn commit(&mut self, commit: &Commit, now: SystemTime) -> Vec<ClusterEvent> {
        commit
            .events
            .iter()
            .filter_map(|e| self.event(e, now))
            .collect()
    }

    /// One store event as a cluster event; the cluster object has none
    /// (Docker reports none, and it holds the CA key).
    fn event(&mut self, event: &Event, now: SystemTime) -> Option<ClusterEvent> {
        let action = event.action;
        let (meta, attributes) = match &event.object {
            Changed::Service(s) => (s.meta(), self.service(action, s)),
            Changed::Node(n) => (n.meta(), self.node(action, n)),
            Changed::Task(t) => (t.meta(), self.task(action, t)),
            Changed::Network(n) => (n.meta(), attributes::named(n.name())),
            Changed::Secret(s) => (s.meta(), attributes::named(s.name())),
            Changed::Config(c) => (c.meta(), attributes::named(c.name())),
            Changed::Cluster(_) => return None,
        };
        Some(ClusterEvent {
            time: attributes::event_time(action, meta, now),
            action,
            object: event.object.clone(),
            attributes,
        })
    }

    fn service(&mut self, action: EventAction, service: &Arc<Service>) -> Attributes {
        let old = remember(&mut self.services, action, service);
        attributes::service(action, service, old.as_deref())
    }

    fn node(&mut self, action: EventAction, node: &Arc<Node>) -> Attributes {
        let old = remember(&mut self.nodes, action, node);
        attributes::node(action, node, old.as_deref())
    }

    fn task(&mut self, action: EventAction, task: &Task) -> Attributes {
        let old = if action == EventAction::Remove {
            self.tasks.remove(&task.id)
        } else {
            let state = shoal_proto::task_state::observed(task);
            self.tasks.insert(task.id.clone(), state)
        };
        let service_name = self
            .services
            .get(&task.service_id)
            .map_or(task.service_id.as_str(), |s| s.name());
        attributes::task(action, task, old, service_name)
    }
}

fn by_id<'a, T: Stored>(objects: impl Iterator<Item = &'a T>) -> HashMap<String, Arc<T>> {
    objects
        .map(|o| (o.id().to_string(), Arc::new(o.clone())))
        .collect()
}

/// Records `object` as the last seen of its id (forgets it on removal)
/// and returns the one seen before.
fn remember<T: Stored>(
    seen: &mut HashMap<String, Arc<T>>,
    action: EventAction,
    object: &Arc<T>,
) -> Option<Arc<T>> {
    if action == EventAction::Remove {
        seen.remove(object.id())
    } else {
        seen.insert(object.id().to_string(), object.clone())
    }
}
